"""Compare the curriculum's optimizers (SGD, SGD with momentum, RMSProp, Adam) on one model, data set and seed.

Each optimizer trains the same configuration into its own run directory; the comparison is one plot
of validation curves and one table (CSV and JSON). Early stopping is off, so every curve spans every
epoch. Finished runs are reused when the comparison runs again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from kerasdl.evaluation import plot_validation_curves, save_table
from kerasdl.evaluation.table import Row
from kerasdl.training import TrainConfig
from kerasdl.training.config import OPTIMIZERS
from kerasdl.tuning.runs import train_once

# Keras's default learning rate of each optimizer: plain SGD at Adam's 1e-3 would barely move in a few epochs.
DEFAULT_LEARNING_RATES = {"sgd": 1e-2, "momentum": 1e-2, "rmsprop": 1e-3, "adam": 1e-3}


@dataclass(frozen=True)
class OptimizerComparison:
    rows: list[Row]
    plot: Path
    tables: tuple[Path, Path]


def compare_optimizers(
    config: TrainConfig,
    out: str | Path,
    *,
    optimizers: tuple[str, ...] = OPTIMIZERS,
    learning_rate: float | None = None,
    overwrite: bool = False,
    verbose: int | str = 0,
) -> OptimizerComparison:
    """Train `config` once per optimizer into `out`/<optimizer>/ and compare their validation curves.

    `learning_rate` None gives each optimizer its Keras default (DEFAULT_LEARNING_RATES); a number
    gives all of them that one.
    """
    out = Path(out)
    histories, rows = {}, []
    for name in optimizers:
        run_config = dataclasses.replace(
            config,
            optimizer=name,
            learning_rate=learning_rate or DEFAULT_LEARNING_RATES[name],
            patience=config.epochs,
        )
        run, metrics = train_once(run_config, out / name, overwrite=overwrite, verbose=verbose)
        histories[name] = history = run.history_rows()
        val_accuracy = [float(row["val_accuracy"]) for row in history]
        rows.append(
            {
                "optimizer": name,
                "learning_rate": run_config.learning_rate,
                "best_val_accuracy": max(val_accuracy),
                "best_epoch": 1 + val_accuracy.index(max(val_accuracy)),
                "final_val_loss": float(history[-1]["val_loss"]),
                "test_accuracy": metrics["test_accuracy"],
                "train_seconds": metrics["train_seconds"],
            }
        )
    plot = plot_validation_curves(histories, out / "validation_curves.png")
    return OptimizerComparison(rows, plot, save_table(rows, out / "optimizers"))
