"""Train a registered model by name into a run directory: data -> model -> loop -> evaluation -> plots."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from kerasdl.data import DataBundle, is_folder, load
from kerasdl.errors import KerasdlError
from kerasdl.registry import model_spec
from kerasdl.training.config import TrainConfig
from kerasdl.training.loops import LoopContext, get_loop
from kerasdl.training.run_dir import RunDirectory


@dataclass(frozen=True)
class RunResult:
    run: RunDirectory
    metrics: dict[str, Any]
    model: keras.Model


def default_run_dir(config: TrainConfig) -> Path:
    data = Path(config.data).name if is_folder(config.data) else config.data  # a folder: its own name
    return Path("runs") / f"{config.model}-{data}-{config.loop}"


def load_for(config: TrainConfig | dict[str, Any], data: str | None = None) -> DataBundle:
    """The data a run trains on (or `data` instead), split and sized as in its config (config.json too)."""
    values = config.to_json() if isinstance(config, TrainConfig) else config
    return load(
        data or values["data"],
        validation_fraction=values["validation_fraction"],
        seed=values["seed"],
        image_size=values.get("image_size"),
    )


def resolve(config: TrainConfig) -> TrainConfig:
    """`config` with the model's default data set, loop and XLA setting filled in, as config.json saves it."""
    spec = model_spec(config.model)
    data = config.data or spec.default_data
    if is_folder(data):  # saved absolute, so evaluate and export find it from any folder
        data = str(Path(data).expanduser().resolve())
    jit_compile = spec.jit_compile if config.jit_compile is None else config.jit_compile
    return dataclasses.replace(config, data=data, loop=config.loop or spec.loops[0], jit_compile=jit_compile)


def train(
    config: TrainConfig,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
) -> RunResult:
    """Train `config.model`, resuming an interrupted run in the same directory; returns its test metrics."""
    from kerasdl.evaluation import plot_learning_curves
    from kerasdl.evaluation.report import evaluate_model

    spec = model_spec(config.model)
    config = resolve(config)
    if config.loop not in spec.loops:
        raise KerasdlError(f"model {spec.name!r} trains with --loop {' or '.join(spec.loops)}, not {config.loop!r}")
    loop = get_loop(config.loop)
    data = load_for(config)
    run = RunDirectory(out or default_run_dir(config))
    resuming = run.prepare({**config.to_json(), "dataset": data.info.to_json()}, overwrite=overwrite)

    ctx = LoopContext(spec, data, config, run, resuming, list(callbacks or []), verbose)
    started = time.perf_counter()
    result = loop(ctx)
    seconds = time.perf_counter() - started

    result.model.save(run.model_path)
    history = run.history_rows()
    metrics = {
        "model": spec.name,
        "loop": config.loop,
        **evaluate_model(result.model, data, plots_dir=run.plots_dir),
        "epochs": len(history),
        "best_epoch": 1 + min(range(len(history)), key=lambda i: float(history[i]["val_loss"])) if history else 0,
        "resumed": resuming,
        "train_seconds": round(seconds, 3),
        "train_samples_per_second": round(result.epochs_run * data.info.split_sizes["train"] / seconds, 1),
    }
    plot_learning_curves(history, run.plots_dir / "learning_curves.png")
    run.write_json(run.metrics_path, metrics)  # written last: its presence marks the run finished
    return RunResult(run, metrics, result.model)
