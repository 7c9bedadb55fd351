"""A Keras Tuner HyperModel over any registered model: the registry's builder, our compile, our tf.data.

A model's search space (`register_model(..., search_space=fn)`) maps Keras Tuner hyperparameters to
`TrainConfig` overrides, so every trial is an ordinary `TrainConfig` and the best one can be retrained
by `kerasdl.training.train` unchanged.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from kerasdl import files
from kerasdl.data import DataBundle
from kerasdl.errors import KerasdlError
from kerasdl.registry import ModelSpec
from kerasdl.tasks import get_task
from kerasdl.training.config import TrainConfig
from kerasdl.training.loops import build_model, compile_model, steps_per_epoch

# What a search may not change: the tuner sets the epochs, the command the rest.
FIXED_FIELDS = ("model", "data", "loop", "seed", "epochs")
TUNABLE_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in FIXED_FIELDS)


class RegistryHyperModel(keras_tuner.HyperModel):
    """Builds, compiles and fits `spec` exactly as `kerasdl train --loop fit` does, with one trial's values."""

    def __init__(self, spec: ModelSpec, data: DataBundle, base: TrainConfig):
        if spec.search_space is None:
            raise KerasdlError(f"model {spec.name!r} has no search space to tune (register_model(search_space=...))")
        if "fit" not in spec.loops:
            raise KerasdlError(f"model {spec.name!r} does not train with model.fit, which every trial uses")
        super().__init__(name=spec.name)
        self.spec, self.data, self.base = spec, data, base
        self.task = get_task(spec.task)

    def config(self, hp: keras_tuner.HyperParameters) -> TrainConfig:
        """`base` with the search space's overrides for the values in `hp` (its defaults where unset)."""
        try:
            overrides = dict(self.spec.search_space(hp))
        except (TypeError, ValueError) as err:  # Keras Tuner's own checks (e.g. a default not among the values)
            raise KerasdlError(f"search space of model {self.spec.name!r}: {err}") from err
        unknown = sorted(set(overrides) - {"model_params", *TUNABLE_FIELDS})
        if unknown:
            raise KerasdlError(
                f"search space of model {self.spec.name!r} sets {', '.join(unknown)}; "
                f"it may set model_params and {', '.join(TUNABLE_FIELDS)}"
            )
        model_params = {**self.base.model_params, **overrides.pop("model_params", {})}
        return dataclasses.replace(self.base, **overrides, model_params=model_params)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        return self._compiled(self.config(hp))

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any):
        """`model.fit` on the data's tf.data pipelines, with early stopping on val_loss as in `train`."""
        config = self.config(hp)
        stopping = keras.callbacks.EarlyStopping(
            monitor=self.task.monitor, mode=self.task.monitor_mode, patience=config.patience
        )
        callbacks = [
            *self.task.search_callbacks(self.data, config.task_params),  # first: the others see the logs they add
            *kwargs.pop("callbacks", []),
            *([stopping] if self.task.early_stopping else []),
        ]
        started = time.perf_counter()
        train = self.data.dataset("train", config.batch_size, shuffle_seed=config.seed, augment=config.augment)
        history = model.fit(
            self._pairs(train, config, training=True),
            validation_data=self._pairs(self.data.dataset("validation", config.batch_size), config, training=False),
            shuffle=False,
            callbacks=callbacks,
            **kwargs,
        )
        # Keras Tuner keeps the metrics of the best epoch only: the trial's wall time and the peak memory of the
        # process that ran it go on every epoch.
        history.history["seconds"] = [round(time.perf_counter() - started, 2)] * len(history.epoch)
        history.history["peak_rss_mb"] = [peak_rss_mb()] * len(history.epoch)
        return history

    def logged_metrics(self) -> set[str]:
        """What `fit` logs for this model, found by evaluating the default configuration on two samples.

        This also builds the search space's defaults and the task's search callbacks (a GAN's classifier), so a
        bad space or a missing task parameter fails here, before any trial.
        """
        model = self._compiled(dataclasses.replace(self.config(keras_tuner.HyperParameters()), jit_compile=False))
        config = self.config(keras_tuner.HyperParameters())
        self.task.search_callbacks(self.data, config.task_params)
        two = self._pairs(self.data.dataset("validation", 2).take(1), config, training=False)
        logs = model.evaluate(two, return_dict=True, verbose=0)
        return {*logs, *(f"val_{name}" for name in logs), *self.task.search_logs}

    def _compiled(self, config: TrainConfig) -> keras.Model:
        model = build_model(self.spec, self.data.info, config)  # seeded: same values, same initial weights
        compile_model(model, config, steps_per_epoch(self.data.info, config), self.task)
        return model

    def _pairs(self, batches, config: TrainConfig, *, training: bool):
        return self.task.pairs(batches, training=training, params=config.task_params, seed=config.seed)


class EpochLog(keras.callbacks.Callback):
    """A trial's per-epoch logs in `history.json` (replaced whole each epoch): its learning curves, for the
    search's plots and TensorBoard, which Keras Tuner (best epoch only) does not keep."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows.append({"epoch": epoch, **{key: float(value) for key, value in sorted((logs or {}).items())}})
        files.write_json(self.path, self.rows)


def peak_rss_mb() -> float:
    """The most resident memory this process has held so far, in MiB.

    Linux: VmHWM, this program's own high-water mark (`ru_maxrss` would include the memory of the parent it
    was forked from, so an isolated trial would report the search process's size). Elsewhere: `ru_maxrss`.
    """
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return round(int(line.split()[1]) / 1024, 1)  # kB
    divisor = 2**20 if sys.platform == "darwin" else 2**10  # macOS reports bytes, the BSDs KiB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / divisor, 1)
