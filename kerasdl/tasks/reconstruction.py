"""Reconstruction: an autoencoder gives back its input; MSE on the model's [-1, 1] pixel scale.

Task params (`TrainConfig.task_params`):
  noise            stddev of Gaussian noise added to the inputs only (the [-1, 1] scale, clipped back into it),
                   seeded, in training, validation and test alike: a denoising autoencoder. 0 (default): none.
  held_out_class   a class name or index left out of train and validation (test keeps it): evaluation then
                   scores each test image by its reconstruction error and reports the ROC-AUC of "this image
                   is of the held-out class" (anomaly detection).
  train_samples    train on this many training images (a seeded random subset; quick runs and tests).
An autoencoder model holds nested models named ENCODER and DECODER; a VAE's encoder gives (mean, log-variance).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np

from kerasdl.data import ArrayBundle, DataBundle, DatasetInfo, ImageBundle
from kerasdl.errors import KerasdlError, UnknownNameError
from kerasdl.evaluation.reconstruction import plot_anomaly_scores, plot_image_grid, plot_latent_scatter, plot_rows
from kerasdl.tasks.base import Bound, ParityTargets, Task, register_task

ENCODER, DECODER = "encoder", "decoder"
PARAMS = ("noise", "held_out_class", "train_samples")
SUBSET_SEED = 0  # the train_samples subset; the run's seed already fixes the validation split
TEST_NOISE_SEED = 0  # the test split's noise is the same in every run, so runs compare
EVALUATION_BATCH = 256
GRID_IMAGES = 10  # test images the reconstruction grid shows
PRIOR_SAMPLES = 64  # VAE decodings of N(0, I) samples in prior_samples.png
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4),))
# Quantized artifacts: single pixels may move (int8: up to 0.62 of the [-1, 1] scale), so the bound is on the
# artifact's own test MSE, which may exceed Keras's by 0.002. Measured on the denoising conv autoencoder
# (Keras MSE 0.0408): fp16 +0.00000, dynamic-range +0.00009, int8 -0.00002.
QUANTIZED_TARGETS = ParityTargets((Bound("mse_increase", 0.002),))


class Reconstruction(Task):
    name = "reconstruction"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS
    main_metric = "test_mse"
    objective = "val_mse"  # a search compares reconstructions; a VAE's val_loss adds its KL term
    log_names = ("mse",)  # the loss without a VAE's KL term

    # --- data ----------------------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> DataBundle:
        """Without the held-out class in train and validation, and train cut to `train_samples`; checks every
        param, so a bad one fails before training starts."""
        noise(params)
        held_out, train_samples = held_out_class(params, data.info), _train_samples(params)
        keep = {split: _without(data.labels(split), held_out) for split in ("train", "validation")}
        if train_samples is not None:
            if train_samples > len(keep["train"]):
                raise KerasdlError(f"train_samples {train_samples} exceeds the {len(keep['train'])} training images")
            chosen = np.random.default_rng(SUBSET_SEED).choice(keep["train"], train_samples, replace=False)
            keep["train"] = np.sort(chosen)
        return data if held_out is None and train_samples is None else subset(data, keep)

    def pairs(self, dataset: Any, *, training: bool, params: dict[str, Any], seed: int) -> Any:
        """(image, label) batches -> (input, clean image): the input noisy when params["noise"] > 0, with new
        noise each training epoch (a sequence the run's seeds fix) and, on validation and test, the same noise
        on every pass and in every process (batch i's noise is seeded by (seed, i) alone)."""
        import tensorflow as tf

        stddev = noise(params)
        if not stddev:
            return dataset.map(lambda x, _: (x, x))
        if training:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        else:
            seeds = tf.data.Dataset.counter().map(lambda i: tf.stack([tf.constant(seed, tf.int64), i]))

        def noisy(batch, pair_seed):
            x, _ = batch
            shifted = x + tf.random.stateless_normal(tf.shape(x), seed=pair_seed, stddev=stddev, dtype=x.dtype)
            return tf.clip_by_value(shifted, -1.0, 1.0), x

        return tf.data.Dataset.zip((dataset, seeds)).map(noisy, num_parallel_calls=tf.data.AUTOTUNE)

    # --- training ------------------------------------------------------------------------------------------
    def loss(self) -> keras.losses.Loss:
        return keras.losses.MeanSquaredError()

    def metrics(self) -> list[Any]:
        return [keras.metrics.MeanSquaredError(name="mse")]

    def batch_logs(self, targets, outputs):
        import tensorflow as tf

        return {"mse": tf.reduce_mean(tf.square(targets - outputs))}

    # --- evaluation ----------------------------------------------------------------------------------------
    def evaluate(
        self, model: keras.Model, data: DataBundle, params: dict[str, Any], plots_dir: Path | None, suffix: str = ""
    ) -> dict[str, Any]:
        """Test MSE against the clean images (the loss adds a VAE's KL); with noise, the noisy inputs' MSE and
        the denoising factor; with a held-out class, the anomaly ROC-AUC. Plots: the reconstruction grid, the
        anomaly scores, a 2-D latent scatter and a VAE's prior samples."""
        stddev, held_out = noise(params), held_out_class(params, data.info)
        batches = data.dataset("test", EVALUATION_BATCH)
        scores = reconstruct(model, self.pairs(batches, training=False, params=params, seed=TEST_NOISE_SEED))
        labels = data.labels("test")
        metrics: dict[str, Any] = {
            "test_mse": float(scores.errors.mean()),
            "test_loss": float(scores.errors.mean() + scores.added_loss),
            "test_samples": int(len(scores.errors)),
        }
        if scores.added_loss:
            metrics["test_added_loss"] = scores.added_loss  # the layers' own losses: a VAE's weighted KL
        if stddev:
            noisy_mse = float(scores.noisy_errors.mean())
            metrics.update(
                test_noise=stddev, test_noisy_mse=noisy_mse, test_denoising_factor=noisy_mse / metrics["test_mse"]
            )
        if held_out is not None:
            metrics.update(anomaly_metrics(scores.errors, labels == held_out, data.info.class_names[held_out]))
        if plots_dir is not None:
            write_plots(model, data, scores, bool(stddev), held_out, plots_dir, suffix)
        return metrics

    def headline(self, metrics: dict[str, Any]) -> str:
        parts = [f"mse {metrics['test_mse']:.4f}"]
        if "test_noisy_mse" in metrics:
            parts.append(f"noisy input mse {metrics['test_noisy_mse']:.4f} ({metrics['test_denoising_factor']:.1f}x)")
        if "test_anomaly_roc_auc" in metrics:
            parts.append(f"anomaly ROC-AUC {metrics['test_anomaly_roc_auc']:.4f} (class {metrics['anomaly_class']})")
        return ", ".join([*parts, f"loss {metrics['test_loss']:.4f}"])

    # --- export --------------------------------------------------------------------------------------------
    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs difference of the reconstructions, and both test MSEs against the (clean) test images."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives reconstructions of shape {outputs.shape}, Keras {reference.shape}")
        clean = np.concatenate(list(data.batches("test", EVALUATION_BATCH))).reshape(reference.shape)
        mse, keras_mse = float(np.mean((outputs - clean) ** 2)), float(np.mean((reference - clean) ** 2))
        return {
            "samples": int(len(reference)),
            "max_abs_diff": float(np.max(np.abs(reference - outputs))),
            "mse": mse,
            "keras_mse": keras_mse,
            "mse_increase": mse - keras_mse,
        }


    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """The input's fields, with an image output on the input's scale: pixels = (output - offset) / scale,
        clipped to [0, pixel_max]; the runner reports MSE on the model's scale."""
        spec = super().preprocessing(data, input_name, input_dtype, shape)
        del spec["class_names"]
        info = data.info
        spec["output"] = {"kind": "image", "shape": list(shape), "scale": info.scale, "offset": info.offset,
                          "pixel_max": info.pixel_max}
        return spec

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |reconstruction diff| {measured['max_abs_diff']:.3g}, "
            f"test mse {measured['mse']:.4f} (Keras {measured['keras_mse']:.4f})"
        )


# --- params ------------------------------------------------------------------------------------------------
def _checked(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise KerasdlError(f"unknown reconstruction task param(s) {', '.join(unknown)}; known: {', '.join(PARAMS)}")
    return params


def noise(params: dict[str, Any]) -> float:
    """The input noise's stddev (0: a plain autoencoder)."""
    value = _checked(params).get("noise", 0.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise KerasdlError(f"noise must be a stddev >= 0 (on the [-1, 1] pixel scale), got {value!r}")
    return float(value)


def held_out_class(params: dict[str, Any], info: DatasetInfo) -> int | None:
    """The held-out class's index, from its name or index; None when no class is held out."""
    value = _checked(params).get("held_out_class")
    if value is None:
        return None
    names = [str(name) for name in info.class_names]
    if str(value) in names:
        return names.index(str(value))
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    raise UnknownNameError("held-out class", str(value), names, f"or an index below {len(names)}")


def _train_samples(params: dict[str, Any]) -> int | None:
    value = _checked(params).get("train_samples")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise KerasdlError(f"train_samples must be a whole number >= 1, got {value!r}")
    return value


# --- data ------------------------------------------------------------------------------------------------
def _without(labels: np.ndarray, held_out: int | None) -> np.ndarray:
    return np.arange(len(labels)) if held_out is None else np.flatnonzero(labels != held_out)


def subset(data: DataBundle, keep: dict[str, np.ndarray]) -> DataBundle:
    """The bundle with only the samples at `keep[split]` of the splits named there (others whole)."""

    def part(split: str, samples: Any, labels: np.ndarray) -> tuple[Any, np.ndarray]:
        if split not in keep:
            return samples, labels
        chosen = keep[split]
        return ([samples[i] for i in chosen] if isinstance(samples, list) else samples[chosen]), labels[chosen]

    if isinstance(data, (ArrayBundle, ImageBundle)):
        splits = data.arrays if isinstance(data, ArrayBundle) else data.files
        parts = {split: part(split, *pair) for split, pair in splits.items()}
        return type(data)(_resized(data.info, parts), parts)
    raise KerasdlError(f"data set {data.info.name!r} cannot be subset (held_out_class, train_samples): not images")


def _resized(info: DatasetInfo, parts: dict[str, tuple[Any, np.ndarray]]) -> DatasetInfo:
    return dataclasses.replace(info, split_sizes={split: len(y) for split, (_, y) in parts.items()})


# --- evaluation ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scores:
    """Per test image: reconstruction MSE against the clean image (and the noisy input's); the batch-mean
    of the layers' own losses; the first GRID_IMAGES inputs, reconstructions and clean images."""

    errors: np.ndarray
    noisy_errors: np.ndarray
    added_loss: float
    grid_inputs: np.ndarray
    grid_outputs: np.ndarray
    grid_clean: np.ndarray


def _per_sample_mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.mean(np.square(a - b).reshape(len(a), -1), axis=1)


def reconstruct(model: keras.Model, pairs: Any) -> Scores:
    """Run the model (inference mode: a VAE decodes its mean) over batches of (input, clean image)."""
    errors, noisy_errors, added, grid = [], [], 0.0, ([], [], [])
    for x, clean in pairs.as_numpy_iterator():
        outputs = np.asarray(model(x, training=False))
        errors.append(_per_sample_mse(outputs, clean))
        noisy_errors.append(_per_sample_mse(x, clean))
        added += float(sum(np.asarray(loss) for loss in model.losses)) * len(x)
        for kept, batch in zip(grid, (x, outputs, clean)):
            kept.append(batch[: GRID_IMAGES - sum(len(part) for part in kept)])
    errors_all = np.concatenate(errors)
    return Scores(
        errors_all, np.concatenate(noisy_errors), added / len(errors_all), *(np.concatenate(part) for part in grid)
    )


def anomaly_metrics(errors: np.ndarray, is_anomaly: np.ndarray, class_name: str) -> dict[str, Any]:
    """ROC-AUC of the reconstruction error as a score for "this test image is of the held-out class"."""
    from sklearn.metrics import roc_auc_score

    return {
        "anomaly_class": class_name,
        "test_anomaly_roc_auc": float(roc_auc_score(is_anomaly, errors)),
        "test_mse_held_out": float(errors[is_anomaly].mean()),
        "test_mse_seen": float(errors[~is_anomaly].mean()),
    }


def encoder_of(model: keras.Model) -> keras.Model | None:
    try:
        return model.get_layer(ENCODER)
    except ValueError:
        return None


def latent_dim(model: keras.Model) -> int | None:
    """The width of the bottleneck (a VAE's mean); None for a model without an encoder."""
    encoder = encoder_of(model)
    return None if encoder is None else int(encoder.outputs[0].shape[-1])


def is_variational(model: keras.Model) -> bool:
    """A VAE: its encoder gives a mean and a log-variance."""
    encoder = encoder_of(model)
    return encoder is not None and len(encoder.outputs) == 2


def encode(model: keras.Model, batches: Iterator[np.ndarray]) -> np.ndarray:
    """The encodings (a VAE's means) of a stream of input batches."""
    encoder = model.get_layer(ENCODER)
    outputs = [encoder(x, training=False) for x in batches]
    return np.concatenate([np.asarray(out[0] if isinstance(out, (list, tuple)) else out) for out in outputs])


def prior_samples(model: keras.Model, count: int, seed: int = 0) -> np.ndarray:
    """The VAE's decoder on `count` seeded samples of its N(0, I) prior."""
    decoder = model.get_layer(DECODER)
    z = np.random.default_rng(seed).standard_normal((count, decoder.inputs[0].shape[-1])).astype(np.float32)
    return np.asarray(decoder(z, training=False))


# --- plots -----------------------------------------------------------------------------------------------
def write_plots(
    model: keras.Model,
    data: DataBundle,
    scores: Scores,
    noisy: bool,
    held_out: int | None,
    plots_dir: Path,
    suffix: str,
) -> None:
    """reconstructions.png; anomaly_scores.png with a held-out class; latent_scatter.png for a 2-D bottleneck;
    prior_samples.png for a VAE."""
    info, labels = data.info, data.labels("test")
    rows = {"noisy input": scores.grid_inputs} if noisy else {}
    rows.update({"reconstruction": scores.grid_outputs, "clean": scores.grid_clean})
    plot_rows({name: to_pixels(x, info) for name, x in rows.items()}, plots_dir / f"reconstructions{suffix}.png")
    if held_out is not None:
        plot_anomaly_scores(
            scores.errors, labels == held_out, info.class_names[held_out], plots_dir / f"anomaly_scores{suffix}.png"
        )
    if latent_dim(model) == 2:
        encodings = encode(model, data.batches("test", EVALUATION_BATCH))
        plot_latent_scatter(encodings, labels, info.class_names, plots_dir / f"latent_scatter{suffix}.png")
    if is_variational(model):
        samples = to_pixels(prior_samples(model, PRIOR_SAMPLES), info)
        plot_image_grid(samples, "decoded samples of the prior N(0, I)", plots_dir / f"prior_samples{suffix}.png")


def to_pixels(x: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Model-scale images -> pixels in [0, 1] for display."""
    return np.clip((x - info.offset) / info.scale / info.pixel_max, 0.0, 1.0)


RECONSTRUCTION = register_task(Reconstruction())
