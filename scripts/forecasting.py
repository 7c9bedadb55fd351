"""Forecast Melbourne's daily minimum temperature with an LSTM or GRU, against persistence and seasonal naive.

    python scripts/forecasting.py --model lstm-forecast --horizons 1 7 --epochs 10 --out runs/forecasting

Trains on 1981-1988 (1989 validates, early stopping), one run per horizon: the past `--sequence-length` days
in, the next 1 (or 7) days out. Prints the test-year (1990) MAE in degrees C of the model and of the two
baselines on the same targets, per step ahead for multi-step runs, and saves the table as CSV and JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm-forecast", help="lstm-forecast or gru-forecast")
    parser.add_argument("--horizons", type=positive_int, nargs="+", default=[1, 7], help="days ahead, one run each")
    parser.add_argument("--sequence-length", type=positive_int, default=30, help="past days per window")
    parser.add_argument("--units", type=positive_int, default=32)
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/forecasting")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation.table import format_table, save_table
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    rows = []
    for horizon in args.horizons:
        # 1. Windows of sequence_length past days -> horizon days ahead, normalized with 1981-1988's mean and std.
        config = TrainConfig(
            args.model, epochs=args.epochs, seed=args.seed, model_params={"units": args.units},
            task_params={"sequence_length": args.sequence_length, "horizon": horizon},
        )
        try:
            # 2. Train (a finished run is reused, an interrupted one resumes) and evaluate on 1990.
            run, metrics = train_once(config, Path(args.out) / f"{args.model}-h{horizon}", verbose="auto")
        except KerasdlError as err:
            raise SystemExit(f"forecasting: error: {err}") from None
        # 3. The model against the baselines, on the same test targets, in degrees C.
        rows.append({
            "model": args.model, "horizon": horizon, "test_windows": metrics["test_samples"],
            "mae": metrics["test_mae"], "persistence_mae": metrics["test_persistence_mae"],
            "seasonal_naive_mae": metrics["test_seasonal_naive_mae"], "rmse": metrics["test_rmse"],
            "mae_by_step": metrics.get("test_mae_by_step"), "run": str(run.path),
        })
    print(format_table(rows))
    csv_path, _ = save_table(rows, Path(args.out) / "forecast_errors")
    print(f"table: {csv_path}; plots: each run's plots/forecast.png (and error_by_step.png for horizons > 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
