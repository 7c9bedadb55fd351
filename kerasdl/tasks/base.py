"""What a task is: everything about a model's job that training, evaluation, tuning and export must ask.

A registered model names its task (`register_model(..., task="segmentation")`). The loops, `evaluate`,
`tune`, `export` and the edge runner never assume classification: they call the task for the data pairs,
the loss and metrics, the GradientTape step, the test metrics and plots, the part of the model that ships,
the inputs parity is measured on, the parity measure and its targets, and what the runner does with the
artifact's output (named in preprocessing.json). A new kind of model is one task module plus models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import keras
import numpy as np

from kerasdl.data import DataBundle, DatasetInfo
from kerasdl.errors import KerasdlError, UnknownNameError

PREDICT_BATCH = 256
StepLogs = dict[str, Any]  # per-batch scalars (tensors) a tape step returns: "loss" and the task's log names


@dataclass(frozen=True)
class Bound:
    """One parity target: `measured[metric] <= limit` (upper) or `>= limit` (lower)."""

    metric: str
    limit: float
    upper: bool = True

    @property
    def key(self) -> str:
        """The name export.json gives it: max_abs_diff, min_top1_agreement, max_accuracy_drop..."""
        prefix = "max" if self.upper else "min"
        return self.metric if self.metric.startswith(f"{prefix}_") else f"{prefix}_{self.metric}"

    def failure(self, measured: dict[str, Any]) -> str | None:
        value = measured[self.metric]
        missed = value > self.limit if self.upper else value < self.limit
        return f"{self.metric.replace('_', ' ')} {value:.4g} {'>' if self.upper else '<'} {self.limit:g}" if missed else None


@dataclass(frozen=True)
class ParityTargets:
    """The bounds an exported artifact must meet against the Keras model on held-out data."""

    bounds: tuple[Bound, ...] = ()

    def failures(self, measured: dict[str, Any]) -> list[str]:
        """A readable line per missed bound (empty when all are met)."""
        return [failure for bound in self.bounds if (failure := bound.failure(measured)) is not None]

    def to_json(self) -> dict[str, float]:
        return {bound.key: bound.limit for bound in self.bounds}


class Task:
    """Classification-agnostic defaults; each task module subclasses this and registers an instance.

    Data bundles yield batches of (inputs, labels) as their source stores them; `pairs` turns them into
    what the model trains on (a denoising autoencoder: noisy image -> clean image).
    """

    name: str = ""
    main_metric: str = "test_loss"  # metrics.json's headline test metric
    higher_is_better: bool = False  # of main_metric
    objective: str = "val_loss"  # what tuning optimizes by default
    objective_mode: str = "min"
    monitor: str = "val_loss"  # what early stopping and the best checkpoint watch
    monitor_mode: str = "min"
    early_stopping: bool = True  # False where the monitored loss says little about quality (a GAN's)
    log_names: tuple[str, ...] = ()  # per-batch metrics a tape step logs besides "loss"
    float_targets = ParityTargets()  # what float32 artifacts (TFLite, ONNX, SavedModel) must meet
    quantized_targets: ParityTargets | dict[str, ParityTargets] = ParityTargets()  # one for all, or per mode

    # --- data --------------------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> DataBundle:
        """The bundle this task trains on (e.g. without a held-out class); `data` unchanged by default."""
        return data

    def pairs(self, dataset: Any, *, training: bool, params: dict[str, Any], seed: int) -> Any:
        """Batches of (inputs, labels) -> batches of (model inputs, targets)."""
        return dataset

    # --- training ----------------------------------------------------------------------------------------
    def loss(self) -> keras.losses.Loss | None:
        """The training loss on (targets, outputs); None where the model computes its own in train_step."""
        return None

    def metrics(self) -> list[Any]:
        """Metrics `model.fit` logs besides the loss (their names must match `log_names`)."""
        return []

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, **options: Any) -> None:
        """Compile for `model.fit`; `options` are steps_per_execution and jit_compile."""
        model.compile(optimizer=optimizer, loss=self.loss(), metrics=self.metrics(), **options)

    def batch_logs(self, targets: Any, outputs: Any) -> StepLogs:
        """The `log_names` metrics of one batch, as means over its samples (the tape loop averages them)."""
        return {}

    def train_step(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> Callable[[Any, Any], StepLogs]:
        """One GradientTape update on a batch, for `--loop tape`: forward, loss (+ the layers' own losses),
        gradients, apply; returns the batch's logs."""
        import tensorflow as tf

        loss_fn = self.loss()

        def step(x, y) -> StepLogs:
            with tf.GradientTape() as tape:
                outputs = model(x, training=True)
                loss = unscaled(loss_fn(y, outputs)) + tf.add_n([0.0, *model.losses])
                differentiated = loss_to_differentiate(loss, optimizer)  # on the tape, or it has no gradient
            gradients = tape.gradient(differentiated, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return {"loss": loss, **self.batch_logs(y, outputs)}

        return step

    def test_step(self, model: keras.Model) -> Callable[[Any, Any], StepLogs]:
        """The validation logs of one batch, for `--loop tape` (the same loss as training, no update)."""
        import tensorflow as tf

        loss_fn = self.loss()

        def step(x, y) -> StepLogs:
            outputs = model(x, training=False)
            return {"loss": unscaled(loss_fn(y, outputs)) + tf.add_n([0.0, *model.losses]), **self.batch_logs(y, outputs)}

        return step

    def callbacks(self, model_params: dict[str, Any], plots_dir: Path) -> list[keras.callbacks.Callback]:
        """Extra callbacks both loops run (e.g. a GAN's sample grid each epoch)."""
        return []

    # Validation logs that `search_callbacks` add to each epoch's logs (so a search may optimize them).
    search_logs: tuple[str, ...] = ()

    def search_callbacks(self, data: DataBundle, params: dict[str, Any]) -> list[keras.callbacks.Callback]:
        """Callbacks each search trial runs first, adding `search_logs` (e.g. a GAN's Frechet distance) to
        every epoch's logs, where the objective is not something `fit` logs itself."""
        return []

    # --- evaluation --------------------------------------------------------------------------------------
    def check_data(self, model: keras.Model, data: DataBundle) -> None:
        """Fail in one line when the data does not fit the model's input."""
        expected = tuple(model.input_shape[1:])
        if expected != tuple(data.info.input_shape):
            raise KerasdlError(
                f"model expects inputs of shape {expected} but data set {data.info.name!r} gives {data.info.input_shape}"
            )

    def evaluate(
        self, model: keras.Model, data: DataBundle, params: dict[str, Any], plots_dir: Path | None, suffix: str = ""
    ) -> dict[str, Any]:
        """Test metrics for metrics.json (at least `main_metric`, "test_loss", "test_samples"), and with
        `plots_dir` the task's plots, their names ending in `suffix`."""
        raise NotImplementedError

    def headline(self, metrics: dict[str, Any]) -> str:
        """One line: the main test metric and the loss."""
        return f"{self.main_metric.removeprefix('test_')} {metrics[self.main_metric]:.4f}, loss {metrics['test_loss']:.4f}"

    def report(self, metrics: dict[str, Any]) -> str:
        """The printed evaluation report."""
        return f"test {self.headline(metrics)} ({metrics['test_samples']} samples)"

    # --- export ------------------------------------------------------------------------------------------
    def edge_part(self, model: keras.Model) -> keras.Model:
        """The part of the trained model that ships to a device (a GAN: its generator)."""
        return model

    def signature_shape(self, edge: keras.Model, info: DatasetInfo) -> tuple[int, ...]:
        """The exported input's shape without the batch dimension."""
        return tuple(info.input_shape)

    def export_batches(self, edge: keras.Model, data: DataBundle, batch_size: int) -> Iterator[np.ndarray]:
        """Held-out inputs parity is measured on (the test split; a generator: fixed noise)."""
        return data.batches("test", batch_size)

    def sample_inputs(self, edge: keras.Model, data: DataBundle, split: str, count: int, seed: int) -> np.ndarray:
        """`count` inputs of `split` (int8 calibration, latency)."""
        return data.take(split, count, seed=seed)

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """How close the artifact's outputs are to the Keras model's, in the task's own terms."""
        raise NotImplementedError

    def targets(self, quantization: str | None) -> ParityTargets:
        """Parity targets for a float artifact (None) or a quantized one ("float16", "int8"...)."""
        if quantization is None:
            return self.float_targets
        quantized = self.quantized_targets
        return quantized[quantization] if isinstance(quantized, dict) else quantized

    def preprocessing(self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
        """preprocessing.json: how the TF-free runner prepares inputs (the data's own description: pixel
        scaling, a vocabulary...) and post-processes outputs (the task's)."""
        return {
            "task": self.name,
            "input": {"name": input_name, "shape": list(shape), "dtype": input_dtype, **data.runner_input()},
            "output": "logits",
            "class_names": list(data.info.class_names),
            "data": data.info.name,
        }

    def parity_summary(self, measured: dict[str, Any]) -> str:
        """The line `kerasdl export` prints about parity."""
        return ", ".join(f"{key} {value:.4g}" for key, value in measured.items() if isinstance(value, float))


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register a task instance under its name."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    import kerasdl.tasks  # noqa: F401  (each task module registers itself on import)

    if name not in _TASKS:
        raise UnknownNameError("task", name, list(_TASKS))
    return _TASKS[name]


def predict(model: keras.Model, x: Any) -> np.ndarray:
    """The model's outputs for an array of inputs or a batched tf.data.Dataset."""
    return np.asarray(model.predict(x, batch_size=None if hasattr(x, "element_spec") else PREDICT_BATCH, verbose=0))


def argmax_accuracy(targets: Any, outputs: Any) -> Any:
    """The share of targets (class ids: a sample's, or each position's) that the outputs' argmax hits, as a tensor."""
    import tensorflow as tf

    predicted = tf.argmax(outputs, axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(predicted == tf.cast(targets, tf.int32), tf.float32))


def argmax_parity(reference: np.ndarray, outputs: np.ndarray, labels: np.ndarray, agreement: str) -> dict[str, Any]:
    """Parity of per-class scores (a sample's, or each pixel's, on the last axis): max abs difference, the share
    of argmax classes that agree (named `agreement`), and both accuracies against `labels`."""
    if reference.shape != outputs.shape:
        raise ValueError(f"artifact gives outputs of shape {outputs.shape}, Keras {reference.shape}")
    predicted, expected = outputs.argmax(axis=-1), reference.argmax(axis=-1)
    accuracy, keras_accuracy = float(np.mean(predicted == labels)), float(np.mean(expected == labels))
    return {
        "samples": int(len(labels)),
        "max_abs_diff": float(np.max(np.abs(reference - outputs))),
        agreement: float(np.mean(predicted == expected)),
        "accuracy": accuracy,
        "keras_accuracy": keras_accuracy,
        "accuracy_drop": keras_accuracy - accuracy,
    }


def step_parity(reference: np.ndarray, outputs: np.ndarray, vocabulary: int, state: str, state_start: int) -> dict[str, Any]:
    """Parity of a packed single-step model's outputs, [next-token logits (vocabulary), state...]: the largest
    |difference| overall, of the logits and of the state from `state_start` on (named max_abs_<state>_diff),
    and how often the most likely next token agrees."""
    if reference.shape != outputs.shape:
        raise ValueError(f"artifact gives outputs of shape {outputs.shape}, Keras {reference.shape}")
    difference = np.abs(reference - outputs)
    return {
        "samples": len(reference),
        "max_abs_diff": float(difference.max()),
        "max_abs_logit_diff": float(difference[:, :vocabulary].max()),
        f"max_abs_{state}_diff": float(difference[:, state_start:].max()),
        "next_token_agreement": float(np.mean(
            reference[:, :vocabulary].argmax(axis=-1) == outputs[:, :vocabulary].argmax(axis=-1)
        )),
    }


def unscaled(loss: Any) -> Any:
    """A Keras loss's batch mean: under tf.distribute a `keras.losses.Loss` returns it already divided by the
    replicas (Keras's own step sums their gradients); undone, so logs show the mean and `loss_to_differentiate`
    divides once."""
    from keras.src.losses.loss import unscale_loss_for_distribution  # Keras's inverse of its own scaling

    return unscale_loss_for_distribution(loss)


def loss_to_differentiate(loss: Any, optimizer: keras.optimizers.Optimizer) -> Any:
    """The batch loss a GradientTape step differentiates: under tf.distribute, divided by the replicas, whose
    gradients the optimizer sums (so the update is the global batch's mean, as on one device); then scaled by
    a mixed-precision optimizer's loss scale, which its update divides out again."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
    return optimizer.scale_loss(loss)
