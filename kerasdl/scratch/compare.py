"""Compare gradient-descent regimes and optimizers on one problem, from the same initial weights.

Two experiments: plain GD with batch / stochastic / mini-batch updates, and GD / momentum /
RMSProp / Adam on mini-batches. Every run starts from the same weights (same seed) and sees the
same shuffling, so the curves differ only by the update rule. Results: a PNG of loss curves, and a
table (updates, final loss, seconds) as JSON and CSV.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from kerasdl import files
from kerasdl.scratch.descent import REGIMES, History, train
from kerasdl.scratch.mlp import MLP
from kerasdl.scratch.optimizers import OPTIMIZERS

COLUMNS = ("experiment", "name", "batch_size", "updates", "final_loss", "seconds")


def compare(
    x: np.ndarray,
    y: np.ndarray,
    out_dir: str | Path,
    *,
    layer_sizes: Sequence[int],
    output: str = "softmax",
    epochs: int = 20,
    learning_rate: float = 0.01,
    mini_batch_size: int = 32,
    seed: int = 0,
) -> list[dict]:
    """Run both experiments, write loss_curves.png, comparison.json and comparison.csv; return the rows."""
    regimes = {**REGIMES, "mini-batch": mini_batch_size}
    runs = [("regime", name, "gd", size) for name, size in regimes.items()]
    runs += [("optimizer", name, name, mini_batch_size) for name in OPTIMIZERS]
    rows, curves, histories = [], {}, {}
    for experiment, name, optimizer, batch_size in runs:
        if (optimizer, batch_size) not in histories:  # mini-batch GD appears in both experiments
            model = MLP(layer_sizes, output=output, seed=seed)
            histories[optimizer, batch_size] = train(
                model, x, y, OPTIMIZERS[optimizer](learning_rate), epochs=epochs, batch_size=batch_size, seed=seed
            )
        history = histories[optimizer, batch_size]
        rows.append(_row(experiment, name, batch_size or len(x), history))
        curves.setdefault(experiment, {})[name] = history.series("loss")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot(curves, out_dir / "loss_curves.png")
    settings = {"layer_sizes": list(layer_sizes), "epochs": epochs, "learning_rate": learning_rate, "seed": seed}
    report = {"settings": settings, "rows": rows, "curves": curves}
    files.write_json(out_dir / "comparison.json", report)
    table = io.StringIO()  # written whole, then renamed: a crash leaves no half of a table
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(out_dir / "comparison.csv", table.getvalue())
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table."""
    cells = [COLUMNS] + [tuple(_format(row[c]) for c in COLUMNS) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in cells)


def _row(experiment: str, name: str, batch_size: int, history: History) -> dict:
    final_loss = history.epochs[-1]["loss"]
    return dict(zip(COLUMNS, (experiment, name, batch_size, history.updates, final_loss, history.seconds)))


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plot(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    # The object-oriented API renders with Agg and never touches pyplot's global state or a display.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    for axes, (experiment, series) in zip(figure.subplots(1, len(curves)), curves.items()):
        for name, losses in series.items():
            axes.plot(range(1, len(losses) + 1), losses, label=name)
        axes.set(title=f"by {experiment}", xlabel="epoch", ylabel="training loss", yscale="log")
        axes.legend()
    with files.replacing(path) as temporary:  # the temporary keeps .png, which sets the format
        figure.savefig(temporary, dpi=100)
