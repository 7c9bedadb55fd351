"""A Keras Tuner HyperModel over any registered model: the registry's builder, our compile, our tf.data.

A model's search space (`register_model(..., search_space=fn)`) maps Keras Tuner hyperparameters to
`TrainConfig` overrides, so every trial is an ordinary `TrainConfig` and the best one can be retrained
by `kerasdl.training.train` unchanged.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import keras
import keras_tuner

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
        callbacks = [*kwargs.pop("callbacks", []), *([stopping] if self.task.early_stopping else [])]
        started = time.perf_counter()
        train = self.data.dataset("train", config.batch_size, shuffle_seed=config.seed, augment=config.augment)
        history = model.fit(
            self._pairs(train, config, training=True),
            validation_data=self._pairs(self.data.dataset("validation", config.batch_size), config, training=False),
            shuffle=False,
            callbacks=callbacks,
            **kwargs,
        )
        # Keras Tuner keeps the metrics of the best epoch only: the trial's wall time goes on every epoch.
        history.history["seconds"] = [round(time.perf_counter() - started, 2)] * len(history.epoch)
        return history

    def logged_metrics(self) -> set[str]:
        """What `fit` logs for this model, found by evaluating the default configuration on two samples.

        This also builds the search space's defaults, so a bad space fails here, before any trial.
        """
        model = self._compiled(dataclasses.replace(self.config(keras_tuner.HyperParameters()), jit_compile=False))
        config = self.config(keras_tuner.HyperParameters())
        two = self._pairs(self.data.dataset("validation", 2).take(1), config, training=False)
        logs = model.evaluate(two, return_dict=True, verbose=0)
        return {*logs, *(f"val_{name}" for name in logs)}

    def _compiled(self, config: TrainConfig) -> keras.Model:
        model = build_model(self.spec, self.data.info, config)  # seeded: same values, same initial weights
        compile_model(model, config, steps_per_epoch(self.data.info, config), self.task)
        return model

    def _pairs(self, batches, config: TrainConfig, *, training: bool):
        return self.task.pairs(batches, training=training, params=config.task_params, seed=config.seed)
