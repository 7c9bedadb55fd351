"""Optimizers in action: SGD, SGD with momentum, RMSProp and Adam on the same model, data and seed.

    python scripts/compare_optimizers.py --model mlp --epochs 20 --out runs/compare-optimizers

Writes one run directory per optimizer, `validation_curves.png` and `optimizers.csv` / `.json` in
--out, and prints the table. Run it again to reuse the finished runs (--overwrite retrains them).
"""

from __future__ import annotations

import argparse

from kerasdl.commands import positive_float, positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", help="registered model name (default mlp)")
    parser.add_argument("--data", help="data set name (default: the model's)")
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--learning-rate", type=positive_float, help="one rate for all (default: each optimizer's Keras default)"
    )
    parser.add_argument("--out", default="runs/compare-optimizers")
    parser.add_argument("--overwrite", action="store_true", help="retrain runs that already finished")
    parser.add_argument("--no-jit", action="store_true", help="skip XLA compilation (default: XLA for models it speeds up)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation import format_table
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.compare import compare_optimizers

    config = TrainConfig(
        model=args.model,
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        jit_compile=False if args.no_jit else None,
    )
    try:
        comparison = compare_optimizers(config, args.out, learning_rate=args.learning_rate, overwrite=args.overwrite)
    except KerasdlError as err:
        raise SystemExit(f"compare_optimizers: error: {err}") from None
    print(format_table(comparison.rows))
    print(f"written: {comparison.plot}, {', '.join(str(path) for path in comparison.tables)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
