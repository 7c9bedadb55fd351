"""Training loops by name, and what the fit and GradientTape loops share (optimizer, compile, callbacks).

A loop is a function `(LoopContext) -> LoopResult` that trains the model, writing `history.csv` and
resume state into the run directory. `kerasdl.training.train` does the rest (evaluation, plots, metrics).
What the model learns (data pairs, loss, metrics, the GradientTape step) comes from its task (kerasdl.tasks).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import keras

from kerasdl import files
from kerasdl.data import DataBundle, DatasetInfo
from kerasdl.data.bundle import SHARDS_PREFIX
from kerasdl.errors import KerasdlError, TrainingError, UnknownNameError
from kerasdl.registry import ModelSpec
from kerasdl.tasks import Task, get_task
from kerasdl.training.config import TrainConfig
from kerasdl.training.distribute import Distribution, one_device
from kerasdl.training.run_dir import RunDirectory


def build_model(spec: ModelSpec, info: DatasetInfo, config: TrainConfig) -> keras.Model:
    """The registered model for this data and config, with weights seeded by the config's seed."""
    keras.utils.set_random_seed(config.seed)
    try:
        with dtype_policy(config.precision):
            return spec.build(info, **config.model_params)
    except TypeError as err:  # an option this builder does not take
        raise KerasdlError(f"model {spec.name!r}: {err}") from err


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers made inside take Keras's dtype policy `name` ("mixed_bfloat16": bfloat16 compute, float32
    variables); the global policy is restored after, so one mixed run leaves the next float32."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def steps_per_epoch(info: DatasetInfo, config: TrainConfig) -> int:
    return math.ceil(info.split_sizes["train"] / config.batch_size)


@dataclass
class LoopContext:
    """Everything a loop needs for one run."""

    spec: ModelSpec
    data: DataBundle
    config: TrainConfig
    run: RunDirectory
    resuming: bool
    callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    verbose: int | str = "auto"
    distribution: Distribution = field(default_factory=one_device)

    @property
    def task(self) -> Task:
        return get_task(self.spec.task)

    def build_model(self) -> keras.Model:
        """The model, its variables mirrored on every replica of the run's strategy."""
        with self.distribution.scope():
            return build_model(self.spec, self.data.info, self.config)

    def compile(self, model: keras.Model) -> None:
        """Compile under the strategy, so the optimizer's variables are mirrored too."""
        with self.distribution.scope():
            compile_model(model, self.config, self.steps_per_epoch, self.task)

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.data.info, self.config)

    def train_dataset(self, epochs_done: int = 0):
        """Training pairs: reshuffled each epoch (seeded), augmented when the data set and config say so.

        A run resumed after `epochs_done` epochs gets the order the uninterrupted run had from there: each new
        iterator draws the next epoch's shuffle seed, so one is made (and dropped) per epoch already done."""
        batches = self.data.dataset(
            "train", self.config.batch_size, shuffle_seed=self.config.seed, augment=self.config.augment
        )
        pairs = self.task.pairs(batches, training=True, params=self.config.task_params, seed=self.config.seed)
        dataset = self._sharded(pairs)
        for _ in range(epochs_done):
            iter(dataset)
        return dataset

    def validation_dataset(self):
        batches = self.data.dataset("validation", self.config.batch_size)
        pairs = self.task.pairs(batches, training=False, params=self.config.task_params, seed=self.config.seed)
        return self._sharded(pairs)

    def _sharded(self, dataset):
        return self.distribution.sharded(dataset, files=(self.config.data or "").startswith(SHARDS_PREFIX))


@dataclass(frozen=True)
class LoopResult:
    """The trained model, how many epochs this process ran (fewer than the run's after a resume), and the loop's
    resume state, which `train` removes only once metrics.json is written: a run killed while it is evaluated
    or saved resumes after its last epoch instead of training again from the start."""

    model: keras.Model
    epochs_run: int
    resume_state: Path | None = None


Loop = Callable[[LoopContext], LoopResult]
_LOOPS: dict[str, Loop] = {}


def register_loop(name: str) -> Callable[[Loop], Loop]:
    def decorate(loop: Loop) -> Loop:
        _LOOPS[name] = loop
        return loop

    return decorate


def get_loop(name: str) -> Loop:
    import kerasdl.training.fit_loop  # noqa: F401  (registers "fit")
    import kerasdl.training.numpy_loop  # noqa: F401  (registers "numpy")
    import kerasdl.training.tape_loop  # noqa: F401  (registers "tape")

    if name not in _LOOPS:
        raise UnknownNameError("training loop", name, list(_LOOPS))
    return _LOOPS[name]


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The curriculum's optimizers (SGD, SGD with momentum 0.9, RMSProp, Adam), schedule and clipping."""
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    total_steps = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total_steps)
    elif config.lr_schedule == "exponential":  # x0.1 over the whole run
        learning_rate = keras.optimizers.schedules.ExponentialDecay(config.learning_rate, total_steps, 0.1)
    options = {"learning_rate": learning_rate, "clipnorm": config.clipnorm}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(**options)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(momentum=0.9, **options)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(**options)
    return keras.optimizers.Adam(**options)


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int, task: Task) -> None:
    """Compile as the task says, with the config's optimizer and speed settings."""
    task.compile(
        model,
        make_optimizer(config, steps_per_epoch),
        # Never more than an epoch: Keras's progress bar would count past the epoch's end.
        steps_per_execution=min(config.steps_per_execution, steps_per_epoch),
        jit_compile=config.jit_compile,
    )


class StopOnNaN(keras.callbacks.Callback):
    """Abort with a clear error when the loss is NaN or infinite; the last good backup stays on disk."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingError(
                f"training loss became {float(loss)} at batch {batch}; the last finished epoch is kept "
                "in the run's checkpoints: lower --learning-rate and run again to resume"
            )


class HistoryLogger(keras.callbacks.Callback):
    """history.csv, one row an epoch (as Keras's CSVLogger writes it), replaced whole after each epoch so that a
    crash never leaves half a row; a resumed run continues the rows its checkpoint includes."""

    def __init__(self, run: RunDirectory):
        super().__init__()
        self.run = run

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.rows = self.run.history_rows()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = {key: float(value) for key, value in sorted((logs or {}).items())}
        self.rows.append({"epoch": epoch, **values})
        self.run.write_history(self.rows)


class BestModel(keras.callbacks.Callback):
    """The model of the best epoch so far by `monitor`, saved as ModelCheckpoint(save_best_only=True) would,
    but through a temporary file, so the saved best model is never half-written."""

    def __init__(self, path: Path, monitor: str, mode: str):
        super().__init__()
        self.path, self.monitor, self.mode = path, monitor, mode
        self.best: float | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self.best is None or (float(value) < self.best if self.mode == "min" else float(value) > self.best):
            self.best = float(value)
            with files.replacing(self.path) as temporary:
                self.model.save(temporary)


def standard_callbacks(ctx: LoopContext) -> list[keras.callbacks.Callback]:
    """Callbacks both loops run, so both write the same history, checkpoints and TensorBoard logs."""
    task = ctx.task
    watch = {"monitor": task.monitor, "mode": task.monitor_mode}
    stopping = [keras.callbacks.EarlyStopping(patience=ctx.config.patience, restore_best_weights=True, **watch)]
    return [
        StopOnNaN(),
        *(stopping if task.early_stopping else []),
        BestModel(ctx.run.checkpoints_dir / "best.keras", **watch),
        HistoryLogger(ctx.run),
        keras.callbacks.TensorBoard(log_dir=str(ctx.run.logs_dir), write_graph=False),
        *task.callbacks(ctx.config.task_params, ctx.run.plots_dir),
        *ctx.callbacks,
    ]


def callback_list(ctx: LoopContext, model: keras.Model) -> keras.callbacks.CallbackList:
    """The standard callbacks with a history and progress bar, for loops that call them by hand."""
    return keras.callbacks.CallbackList(
        standard_callbacks(ctx),
        add_history=True,
        add_progbar=ctx.verbose != 0,
        model=model,
        verbose=1 if ctx.verbose == "auto" else ctx.verbose,
        epochs=ctx.config.epochs,
        steps=ctx.steps_per_epoch,
    )
