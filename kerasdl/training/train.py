"""Train a registered model by name into a run directory: data -> model -> loop -> evaluation -> plots."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from kerasdl import files
from kerasdl.data import DataBundle, is_folder, is_text_file, load
from kerasdl.data.bundle import SHARDS_PREFIX
from kerasdl.errors import KerasdlError
from kerasdl.locking import folder_lock
from kerasdl.registry import ModelSpec, model_spec
from kerasdl.tasks import Task, get_task
from kerasdl.training.config import TrainConfig
from kerasdl.training.distribute import Distribution, strategy_for
from kerasdl.training.loops import Loop, LoopContext, get_loop
from kerasdl.training.run_dir import RunDirectory


@dataclass(frozen=True)
class RunResult:
    run: RunDirectory
    metrics: dict[str, Any]
    model: keras.Model


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.model}-{data_name(config.data)}-{config.loop}"


def data_name(data: str) -> str:
    """A data set's name as output folders use it: a folder's or file's own name (no suffix), else `data`."""
    return Path(_path_of(data)).stem if _is_path(data) else data


def _is_path(data: str) -> bool:
    return data.startswith(SHARDS_PREFIX) or is_folder(data) or is_text_file(data)


def _path_of(data: str) -> str:
    return data.removeprefix(SHARDS_PREFIX)


def load_for(
    config: TrainConfig | dict[str, Any], data: str | None = None, state: dict[str, Any] | None = None
) -> DataBundle:
    """The data a run trains on (or `data` instead), split and sized as in its config (config.json too), as
    the model's task prepares it (e.g. without a held-out class); with a run's saved `state` (its
    vocabulary), inputs are prepared exactly as in training."""
    values = config.to_json() if isinstance(config, TrainConfig) else config
    bundle = load(
        data or values["data"],
        validation_fraction=values["validation_fraction"],
        seed=values["seed"],
        image_size=values.get("image_size"),
        target=values.get("target"),
    )
    return get_task(model_spec(values["model"]).task).adapt_data(bundle, values.get("task_params", {})).restored(state)


def resolve(config: TrainConfig) -> TrainConfig:
    """`config` with the model's default data set, loop and XLA setting filled in, as config.json saves it."""
    spec = model_spec(config.model)
    data = config.data or spec.default_data
    if _is_path(data):  # saved absolute, so evaluate and export find it from any folder
        prefix = SHARDS_PREFIX if data.startswith(SHARDS_PREFIX) else ""
        data = prefix + str(Path(_path_of(data)).expanduser().resolve())
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
    """Train `config.model`, resuming an interrupted run in the same directory; returns its test metrics.

    The run directory is locked while it is written: a second process on it refuses (FolderLockedError)."""
    spec = model_spec(config.model)
    config = resolve(config)
    if config.loop not in spec.loops:
        raise KerasdlError(f"model {spec.name!r} trains with --loop {' or '.join(spec.loops)}, not {config.loop!r}")
    loop = get_loop(config.loop)
    distribution = strategy_for(config)  # first: a cluster's collectives start before any other TensorFlow work
    config = distribution.adapted(config)
    run = RunDirectory(distribution.run_path(Path(out or default_run_dir(config))))
    with folder_lock(run.path):  # before the data loads: a second writer is told at once
        return _train(spec, config, loop, distribution, run, overwrite, list(callbacks or []), verbose)


def _train(
    spec: ModelSpec,
    config: TrainConfig,
    loop: Loop,
    distribution: Distribution,
    run: RunDirectory,
    overwrite: bool,
    callbacks: list[keras.callbacks.Callback],
    verbose: int | str,
) -> RunResult:
    from kerasdl.evaluation import plot_learning_curves

    data = load_for(config)
    resuming = run.prepare({**config.to_json(), "dataset": data.info.to_json()}, overwrite=overwrite)
    if resuming:  # the vocabulary the interrupted epochs learned with, not one adapted again
        data = data.restored(run.read_data_state())
    else:
        run.write_data_state(data.state())

    ctx = LoopContext(spec, data, config, run, resuming, callbacks, verbose, distribution)
    started = time.perf_counter()
    result = loop(ctx)
    seconds = time.perf_counter() - started

    with files.replacing(run.model_path) as temporary:
        result.model.save(temporary)  # every worker: saving may read variables through collectives
    model = distribution.evaluation_model(result.model, run.model_path)
    history = run.history_rows()
    task = get_task(spec.task)
    metrics = {
        "model": spec.name,
        "task": spec.task,
        "loop": config.loop,
        "data": data.info.name,
        **evaluate(task, model, data, config.task_params, run.plots_dir),
        "epochs": len(history),
        "best_epoch": best_epoch(history, task.monitor, task.monitor_mode),
        "resumed": resuming,
        "train_seconds": round(seconds, 3),
        "train_samples_per_second": round(result.epochs_run * data.info.split_sizes["train"] / seconds, 1),
    }
    plot_learning_curves(history, run.plots_dir / "learning_curves.png", ("loss", *task.log_names))
    run.write_json(run.metrics_path, metrics)  # written last: its presence marks the run finished
    if result.resume_state is not None:
        _remove(result.resume_state)
    distribution.finish(run.path)
    return RunResult(run, metrics, model)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def evaluate(
    task: Task, model: keras.Model, data: DataBundle, params: dict[str, Any], plots_dir: Path | None, suffix: str = ""
) -> dict[str, Any]:
    """The task's test metrics of `model` on `data`, after checking that the data fits the model."""
    task.check_data(model, data)
    return task.evaluate(model, data, params, plots_dir, suffix)


def best_epoch(history: list[dict[str, str]], monitor: str, mode: str) -> int:
    """The 1-based epoch with the best `monitor` value in history.csv (0 without history)."""
    if not history or monitor not in history[0]:
        return 0
    values = [float(row[monitor]) for row in history]
    return 1 + values.index(min(values) if mode == "min" else max(values))