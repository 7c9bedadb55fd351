"""Evaluate a model on a data set's test split, and a finished run directory on any compatible data.

The task (kerasdl.tasks) decides what is measured and drawn: `evaluate_model` gives the metrics that
`metrics.json` holds, `format_report` the text that `kerasdl train`, `kerasdl evaluate` and `kerasdl tune`
print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from kerasdl.data import DataBundle
from kerasdl.models.loading import load_model_file
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.training.run_dir import RunDirectory
from kerasdl.training.train import evaluate, load_for


def evaluate_model(
    model: keras.Model,
    data: DataBundle,
    plots_dir: Path | None = None,
    plot_suffix: str = "",
    *,
    task: str = "classification",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Test metrics of `model` on `data` as `task` measures them; with `plots_dir`, the task's plots there
    (names ending in `plot_suffix`)."""
    return {"data": data.info.name, **evaluate(get_task(task), model, data, params or {}, plots_dir, plot_suffix)}


def evaluate_run(run_dir: str, data_name: str | None = None) -> tuple[dict[str, Any], RunDirectory]:
    """Reload a run's model.keras (safe mode, no custom objects), evaluate it, write evaluation_<data>.json."""
    run = RunDirectory(run_dir)
    model_path = run.require_model()
    config = run.read_config()
    spec = model_spec(config["model"])  # imports the model modules, so our layers deserialize
    model = load_model_file(model_path)
    data = load_for(config, data_name, run.read_data_state())
    metrics = {
        "model": spec.name,
        "task": spec.task,
        **evaluate_model(
            model, data, run.plots_dir, f"_{data.info.name}", task=spec.task, params=config.get("task_params", {})
        ),
    }
    run.write_json(run.path / f"evaluation_{data.info.name}.json", metrics)
    return metrics, run


def format_report(metrics: dict[str, Any]) -> str:
    """The task's printed report of these metrics (metrics.json without a task: a classifier's)."""
    return get_task(metrics.get("task", "classification")).report(metrics)


def headline(metrics: dict[str, Any]) -> str:
    """One line: the task's main test metric and the loss."""
    return get_task(metrics.get("task", "classification")).headline(metrics)
