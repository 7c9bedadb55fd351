"""Vanishing gradients, shown: how much a SimpleRNN's and an LSTM's last-step loss depends on each earlier input.

    python scripts/vanishing_gradients.py --length 150 --out runs/vanishing-gradients

Measures ||dL_T / dx_t|| for every step t of held-out Tiny Shakespeare windows, at initialization and after a
brief training; prints each model's earliest/latest gradient ratio and the earliest steps' ratio against
the LSTM, and writes vanishing_gradients.png and vanishing_gradients.json in --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kerasdl.commands import positive_float, positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="shakespeare", help="a running text (default shakespeare)")
    parser.add_argument("--models", nargs="+", default=["simple_rnn", "lstm"],
                        help="recurrent layers: simple_rnn, lstm, gru (the last is the reference)")
    parser.add_argument("--length", type=positive_int, default=150, help="time steps per window")
    parser.add_argument("--windows", type=positive_int, default=32, help="held-out windows measured")
    parser.add_argument("--units", type=positive_int, default=64)
    parser.add_argument("--embedding-dim", type=positive_int, default=16)
    parser.add_argument("--train-windows", type=positive_int, default=2048)
    parser.add_argument("--epochs", type=positive_int, default=2)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--learning-rate", type=positive_float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/vanishing-gradients")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.data import load
    from kerasdl.evaluation import format_table
    from kerasdl.evaluation.vanishing_gradients import GradientProbe, measure_vanishing_gradients, plot_gradient_norms

    try:
        probe = GradientProbe(length=args.length, windows=args.windows, units=args.units,
                              embedding_dim=args.embedding_dim, train_windows=args.train_windows, epochs=args.epochs,
                              batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed)
        result = measure_vanishing_gradients(load(args.data, seed=args.seed), tuple(args.models), probe)
    except KerasdlError as err:
        raise SystemExit(f"vanishing_gradients: error: {err}") from None
    out = Path(args.out)
    plot = plot_gradient_norms(result, out / "vanishing_gradients.png")
    summary = out / "vanishing_gradients.json"
    summary.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    print(format_table(result.rows()))
    print(f"written: {plot}, {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
