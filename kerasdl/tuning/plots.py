"""A search's pictures: the objective over trials (with the best so far), and the best trial's learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kerasdl.evaluation.plots import plot_learning_curves, plt, save_figure


def plot_objective(rows: list[dict[str, Any]], objective: str, direction: str, path: Path) -> Path:
    """Each finished trial's score in the order trials started, and the best score so far."""
    scored = [(index, row[objective]) for index, row in enumerate(rows) if row[objective] is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    if scored:
        order, scores = zip(*scored)
        best = max if direction == "max" else min
        running = [best(scores[: i + 1]) for i in range(len(scores))]
        ax.plot(order, scores, "o", label="trial")
        ax.step(order, running, where="post", label=f"best so far ({'higher' if direction == 'max' else 'lower'} is better)")
        ax.legend()
    failed = [index for index, row in enumerate(rows) if row[objective] is None]
    for index in failed:
        ax.axvline(index, color="tab:red", alpha=0.3)
    ax.set(title=f"{objective} per trial" + (f" ({len(failed)} failed, red)" if failed else ""),
           xlabel="trial (in start order)", ylabel=objective)
    ax.set_xticks(range(len(rows)), [row["trial"] for row in rows])
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_best_curves(history: list[dict[str, float]], objective: str, path: Path) -> Path:
    """The best trial's training and validation curves of its loss and of the objective's metric."""
    metric = objective.removeprefix("val_")
    return plot_learning_curves(history, path, metrics=tuple(dict.fromkeys(("loss", metric))))
