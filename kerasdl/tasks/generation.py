"""Generation: a GAN learns to draw the data set's images, judged by a Frechet distance and label coverage.

Training shows the GAN real images only (labels are dropped); the model's own `adversarial_step` (two
GradientTapes, two optimizers) is both `fit`'s train_step and the `--loop tape` step. Its logs are `d_loss`,
`g_loss` and `loss` (= g_loss). Neither loss measures sample quality (each player's loss rises as the other
improves), so early stopping is off and quality is measured after training: a trained classifier (task
parameter `classifier_run`, a `cnn-mnist` run directory) embeds generated and real test images, and the
Frechet distance between the two feature sets (an MNIST analogue of FID, see
kerasdl.evaluation.sample_quality) is the main metric, with how many labels the samples cover. What ships
is the generator: noise in, image out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np

from kerasdl import files
from kerasdl.data import ArrayBundle, DataBundle, DatasetInfo
from kerasdl.edge.runner import sample_noise, write_image_grid
from kerasdl.errors import KerasdlError
from kerasdl.tasks.base import PREDICT_BATCH, Bound, ParityTargets, Task, predict, register_task

PARAMS = ("classifier_run", "train_samples", "validation_samples", "eval_samples")  # the task_params this task reads
GRID_SAMPLES = 64  # images in each sample grid
PARITY_SAMPLES = 512  # noise vectors an export is compared on
EVAL_SEED, PARITY_SEED = 0, 1
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4),))
GRAY_LEVEL = 2.0 / 255.0  # one step of an 8-bit image, on the generator's [-1, 1] scale
# Mean |pixel difference| to the Keras generator per quantization, in gray levels. Measured on the dcgan of
# tests/test_gan.py (512 noise vectors): fp16 0.0045, dynamic range 0.20, int8 0.65 gray levels.
QUANTIZED_TARGETS = {
    "float16": ParityTargets((Bound("mean_abs_diff", 0.1 * GRAY_LEVEL),)),
    "dynamic-range": ParityTargets((Bound("mean_abs_diff", GRAY_LEVEL),)),
    "int8": ParityTargets((Bound("mean_abs_diff", 2 * GRAY_LEVEL),)),
}


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, the generator's images from one fixed batch of noise: plots/samples_epoch_NNN.png."""

    def __init__(self, plots_dir: Path, samples: int = GRID_SAMPLES, seed: int = EVAL_SEED):
        super().__init__()
        self.plots_dir, self.samples, self.seed = Path(plots_dir), samples, seed

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from kerasdl.models.gan import generate

        images = generate(self.model, self.samples, self.seed)
        save_image_grid(images, self.plots_dir / f"samples_epoch_{epoch + 1:03d}.png")


class ValidationFrechetDistance(keras.callbacks.Callback):
    """After each epoch, `val_frechet_distance` in the logs: the Frechet distance, in `classifier`'s features,
    between as many generated images as there are `real` validation ones and those images (the search's
    objective: the GAN's losses do not measure sample quality)."""

    def __init__(self, classifier: keras.Model, real: np.ndarray):
        super().__init__()
        from kerasdl.evaluation.sample_quality import penultimate_features

        self.features = penultimate_features(classifier)
        self.real_features, self.samples = predict(self.features, real), len(real)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from kerasdl.evaluation.sample_quality import frechet_distance
        from kerasdl.models.gan import generate

        fake = generate(self.model, self.samples, EVAL_SEED)
        if logs is not None:
            logs["val_frechet_distance"] = frechet_distance(predict(self.features, fake), self.real_features)


class Generation(Task):
    name = "generation"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS
    main_metric = "test_frechet_distance"
    higher_is_better = False
    objective = "val_frechet_distance"  # what a search minimizes: ValidationFrechetDistance adds it to fit's logs
    search_logs = ("val_frechet_distance",)
    early_stopping = False  # the adversarial losses do not fall as samples improve
    log_names = ("d_loss", "g_loss")

    # --- data --------------------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> DataBundle:
        """The first `train_samples` training and `validation_samples` validation images only (task
        parameters; all by default): a GAN is slow to train on CPU, and its validation losses say little."""
        limits = {split: _checked(params).get(f"{split}_samples") for split in ("train", "validation")}
        limits = {split: count for split, count in limits.items() if count is not None}
        if not limits:
            return data
        for split, count in limits.items():
            if not isinstance(count, int) or count < 1:
                raise KerasdlError(f"{split}_samples must be a positive integer, got {count!r}")
        if not isinstance(data, ArrayBundle):
            raise KerasdlError(f"{' and '.join(f'{s}_samples' for s in limits)} need a data set held in memory "
                               f"(mnist, digits), not {data.info.name!r}")
        limited = {split: tuple(array[:count] for array in data.split(split)) for split, count in limits.items()}
        arrays = {**data.arrays, **limited}
        sizes = {split: len(labels) for split, (_, labels) in arrays.items()}
        return ArrayBundle(dataclasses.replace(data.info, split_sizes=sizes), arrays)

    def pairs(self, dataset: Any, *, training: bool, params: dict[str, Any], seed: int) -> Any:
        """(images, labels) -> (images, images): real images only, in the (x, y) shape the loops expect."""
        return dataset.map(lambda images, labels: (images, images))

    # --- training ----------------------------------------------------------------------------------------
    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, **options: Any) -> None:
        """`optimizer` (the run's) trains the generator; a twin of it, same class and settings, the
        discriminator. Adam gets beta_1 = 0.5 for both players, DCGAN's choice: 0.9 makes the game oscillate."""
        if isinstance(optimizer, keras.optimizers.Adam):
            optimizer = keras.optimizers.Adam.from_config({**optimizer.get_config(), "beta_1": 0.5})
        twin = optimizer.__class__.from_config(optimizer.get_config())
        model.compile(d_optimizer=twin, g_optimizer=optimizer, **options)

    def train_step(self, model: keras.Model, optimizer: keras.optimizers.Optimizer):
        """The model's two-player update (its own two optimizers; `optimizer` is the generator's)."""
        return lambda x, y: model.adversarial_step(x)

    def test_step(self, model: keras.Model):
        return lambda x, y: model.adversarial_losses(x, model.noise(keras.ops.shape(x)[0]))

    def callbacks(self, model_params: dict[str, Any], plots_dir: Path) -> list[keras.callbacks.Callback]:
        return [SampleGrid(plots_dir)]

    def search_callbacks(self, data: DataBundle, params: dict[str, Any]) -> list[keras.callbacks.Callback]:
        """The Frechet distance to the validation images each epoch, in the features of `classifier_run`'s
        classifier, which a search therefore needs."""
        classifier_run = _checked(params).get("classifier_run")
        if not classifier_run:
            raise KerasdlError(
                "a GAN search minimizes the Frechet distance to real images, measured by a trained classifier: "
                "give task parameter classifier_run (a cnn-mnist run directory)"
            )
        real, _ = data.split("validation")
        return [ValidationFrechetDistance(_load_classifier(classifier_run, data.info), real)]

    # --- evaluation --------------------------------------------------------------------------------------
    def check_data(self, model: keras.Model, data: DataBundle) -> None:
        expected = tuple(model.discriminator.input_shape[1:])
        if expected != tuple(data.info.input_shape):
            raise KerasdlError(
                f"this GAN draws images of shape {expected} but data set {data.info.name!r} has {data.info.input_shape}"
            )

    def evaluate(self, model, data: DataBundle, params, plots_dir: Path | None, suffix: str = "") -> dict[str, Any]:
        """On `eval_samples` test images (all by default) and as many generated ones: both losses; with a
        classifier, the Frechet distance between its features of the two sets, the same distance between real
        validation and test images (the floor at these sample sizes), and the label coverage. Plots: a sample
        grid and the label histogram."""
        from kerasdl.models.gan import generate

        params = _checked(params)
        count = params.get("eval_samples", len(data.labels("test")))
        if not isinstance(count, int) or count < 2:
            raise KerasdlError(f"eval_samples must be an integer >= 2, got {count!r}")
        classifier_run = params.get("classifier_run")
        classifier = _load_classifier(classifier_run, data.info) if classifier_run else None  # fails before any work
        real = data.take("test", count, seed=EVAL_SEED)
        fake = generate(model, len(real), EVAL_SEED)
        metrics = {**_test_losses(model, real), "test_samples": len(real)}
        if plots_dir is not None:
            save_image_grid(fake[:GRID_SAMPLES], plots_dir / f"samples{suffix}.png")
        if classifier is None:
            return {
                **metrics, "test_frechet_distance": None, "test_label_coverage": None,
                "frechet_skipped": "no classifier_run in task_params (a trained cnn-mnist run directory)",
            }
        return {**metrics, **_classifier_metrics(classifier, classifier_run, real, fake, data, plots_dir, suffix)}

    def headline(self, metrics: dict[str, Any]) -> str:
        loss = f"g loss {metrics['test_g_loss']:.4f}, d loss {metrics['test_d_loss']:.4f}"
        if metrics["test_frechet_distance"] is None:
            return f"Frechet distance skipped ({metrics['frechet_skipped']}), {loss}"
        return (
            f"Frechet distance {metrics['test_frechet_distance']:.3f} (real vs real "
            f"{metrics['test_frechet_distance_real']:.3f}), {metrics['test_label_coverage']}/"
            f"{len(metrics['test_label_histogram'])} labels covered, {loss}"
        )

    def report(self, metrics: dict[str, Any]) -> str:
        lines = [f"test {self.headline(metrics)} ({metrics['test_samples']} generated and real samples)"]
        if metrics["test_frechet_distance"] is not None:
            lines.append(f"features: {metrics['frechet_features']} (an MNIST analogue of FID, not FID)")
            histogram = metrics["test_label_histogram"]
            counts = ", ".join(f"{label}: {count}" for label, count in histogram.items())
            lines.append(f"labels the classifier gives the samples: {counts}")
        return "\n".join(lines)

    # --- export ------------------------------------------------------------------------------------------
    def edge_part(self, model: keras.Model) -> keras.Model:
        return model.generator

    def signature_shape(self, edge: keras.Model, info: DatasetInfo) -> tuple[int, ...]:
        return tuple(edge.input_shape[1:])

    def export_batches(self, edge: keras.Model, data: DataBundle, batch_size: int) -> Iterator[np.ndarray]:
        noise = sample_noise(PARITY_SAMPLES, self.signature_shape(edge, data.info), PARITY_SEED)
        return (noise[start : start + batch_size] for start in range(0, len(noise), batch_size))

    def sample_inputs(self, edge: keras.Model, data: DataBundle, split: str, count: int, seed: int) -> np.ndarray:
        """Noise, whatever the split: a generator's inputs are N(0, I) in training and on the device."""
        return sample_noise(count, self.signature_shape(edge, data.info), seed)

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Largest and mean |pixel difference| (on [-1, 1]) between the artifact's images and Keras's."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives images of shape {outputs.shape}, Keras {reference.shape}")
        difference = np.abs(reference - outputs)
        return {
            "split": "fixed noise",  # what parity is measured on: seeded N(0, I) vectors, not a data split
            "samples": len(reference),
            "max_abs_diff": float(difference.max()),
            "mean_abs_diff": float(difference.mean()),
        }


    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """Noise in (the runner draws N(0, I) itself: no normalization), images in [-1, 1] out."""
        return {
            "task": self.name,
            "input": {
                "kind": "noise", "name": input_name, "shape": list(shape), "dtype": input_dtype,
                "scale": 1.0, "offset": 0.0, "pixel_max": data.info.pixel_max,
            },
            "output": "images in [-1, 1]",
            "image_shape": list(data.info.input_shape),
            "data": data.info.name,
        }

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |pixel diff| {measured['max_abs_diff']:.3g}, mean {measured['mean_abs_diff']:.3g} "
            f"({measured['mean_abs_diff'] / GRAY_LEVEL:.2f} gray levels) on {measured['samples']} noise vectors"
        )


def _checked(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise KerasdlError(f"unknown task parameter(s) {', '.join(unknown)} for generation; known: {', '.join(PARAMS)}")
    return params


def _test_losses(model: keras.Model, real: np.ndarray) -> dict[str, float]:
    """Both players' losses on real test images against fakes from seeded noise (no update); test_loss is G's."""
    import tensorflow as tf

    losses = tf.function(model.adversarial_losses)
    noise = sample_noise(len(real), (model.latent_dim,), EVAL_SEED)
    totals = {"d_loss": 0.0, "g_loss": 0.0}
    for start in range(0, len(real), PREDICT_BATCH):
        batch = slice(start, start + PREDICT_BATCH)
        logs = losses(tf.constant(real[batch]), tf.constant(noise[batch]))
        for name in totals:
            totals[name] += float(logs[name]) * len(real[batch])
    means = {f"test_{name}": total / len(real) for name, total in totals.items()}
    return {**means, "test_loss": means["test_g_loss"]}


def _classifier_metrics(
    classifier: keras.Model, classifier_run: str, real: np.ndarray, fake: np.ndarray, data: DataBundle,
    plots_dir: Path | None, suffix: str,
) -> dict[str, Any]:
    """Frechet distances and label coverage in the eyes of `classifier` (trained in `classifier_run`)."""
    from kerasdl.evaluation.sample_quality import (
        frechet_distance,
        label_coverage,
        label_histogram,
        penultimate_features,
    )

    features = penultimate_features(classifier)
    validation = data.take("validation", min(len(real), len(data.labels("validation"))), seed=EVAL_SEED)
    fake_features, test_features = predict(features, fake), predict(features, real)
    histogram = label_histogram(predict(classifier, fake), data.info.num_classes)
    names = list(data.info.class_names)
    if plots_dir is not None:
        _plot_label_histogram(histogram, names, plots_dir / f"label_histogram{suffix}.png")
    return {
        "test_frechet_distance": frechet_distance(fake_features, test_features),
        "test_frechet_distance_real": frechet_distance(predict(features, validation), test_features),
        "test_label_coverage": label_coverage(histogram),
        "test_label_histogram": dict(zip(names, histogram.tolist())),
        "frechet_features": f"{features.output.shape[-1]} penultimate-layer features of {classifier_run}",
    }


def _load_classifier(run_dir: str, info: DatasetInfo) -> keras.Model:
    """The trained classifier of `run_dir`, checked to classify this data set's images."""
    from kerasdl.errors import RunDirError
    from kerasdl.models.loading import load_model_file
    from kerasdl.training.run_dir import RunDirectory

    try:
        path = RunDirectory(run_dir).require_model()
    except RunDirError as err:
        raise RunDirError(f"classifier_run: {err}") from None
    classifier = load_model_file(path)
    if tuple(classifier.input_shape[1:]) != tuple(info.input_shape) or classifier.output_shape[-1] != info.num_classes:
        raise KerasdlError(
            f"classifier_run {run_dir} classifies {classifier.input_shape[1:]} inputs into "
            f"{classifier.output_shape[-1]} classes; {info.name!r} needs {info.input_shape} into {info.num_classes} "
            "(train cnn-mnist on it)"
        )
    return classifier


def save_image_grid(images: np.ndarray, path: Path) -> None:
    """The runner's PNG grid of `images`, written crash-safely (the temporary keeps .png, which sets the format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.replacing(path) as temporary:
        write_image_grid(images, temporary)


def _plot_label_histogram(histogram: np.ndarray, names: list[str], path: Path) -> Path:
    from kerasdl.evaluation.plots import _save, plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(names, histogram)
    ax.axhline(histogram.sum() / len(names), color="gray", linestyle="--", label="even share")
    ax.set(title="labels the classifier gives generated samples", xlabel="label", ylabel="samples")
    ax.legend()
    return _save(fig, path)


GENERATION = register_task(Generation())
