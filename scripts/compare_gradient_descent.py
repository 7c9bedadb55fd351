"""Batch vs stochastic vs mini-batch gradient descent, and GD vs momentum vs RMSProp vs Adam.

Trains the same NumPy MLP (same seed, same initial weights) on scikit-learn's digits once per
variant, then writes loss_curves.png, comparison.json and comparison.csv and prints the table.

    python scripts/compare_gradient_descent.py --epochs 20 --out runs/compare_gradient_descent
"""

from __future__ import annotations

import argparse

from kerasdl.commands import positive_float, positive_int
from kerasdl.data import load
from kerasdl.scratch.compare import compare, format_table


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/compare_gradient_descent", help="folder for the PNG and tables")
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--learning-rate", type=positive_float, default=0.01, help="the same for every variant")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="mini-batch size")
    parser.add_argument("--hidden", type=positive_int, default=32, help="hidden units of the one-hidden-layer MLP")
    parser.add_argument("--samples", type=positive_int, help="use only this many training samples (a quick look)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data = load("digits", seed=args.seed)
    x, y = data.split("train")
    x, y = x[: args.samples], y[: args.samples]
    n_features = x[0].size
    rows = compare(
        x,
        y,
        args.out,
        layer_sizes=(n_features, args.hidden, data.info.num_classes),
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        mini_batch_size=args.batch_size,
        seed=args.seed,
    )
    print(format_table(rows))
    print(f"written: {args.out}/loss_curves.png, comparison.json, comparison.csv")


if __name__ == "__main__":
    main()
