"""Backend-portable models: the registered Keras models build and train under Keras's JAX backend.

The pytest process runs the TensorFlow backend, and Keras picks its backend once per process, so the check
runs this file as a script in one subprocess with KERAS_BACKEND=jax: for each model (the NumPy scratch ones,
whose loop is "numpy", and two ImageNet backbones aside, see TRAINED_BACKBONE) it builds the model at a small
size for its default data's shapes, compiles it with its task's loss (a GAN: its own two-optimizer compile), trains a few steps of `model.fit` on NumPy
arrays, and reports whether the losses stayed finite and every trainable weight moved. TensorFlow must never be
imported on that path (a GPU machine with JAX has none).
"""

from __future__ import annotations

import importlib.abc
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES = BATCH = 4  # fit: two epochs of one step each
IDS = (1, 5)  # token ids drawn in [1, 5): real ids of any vocabulary here, never padding
VOCABULARY = ("", "[UNK]", "the", "a", "of", "[MASK]")  # padding, OOV, three words, BERT's mask token

# Each default data set's shapes (text: a small vocabulary; photos: their loaders' default side, 64 here).
DATA = {
    "digits": {"input_shape": (8, 8, 1), "num_classes": 10},
    "mnist": {"input_shape": (28, 28, 1), "num_classes": 10},
    "cifar10": {"input_shape": (32, 32, 3), "num_classes": 10},
    "cats-vs-dogs": {"input_shape": (64, 64, 3), "num_classes": 2},
    "raccoon": {"input_shape": (64, 64, 3), "num_classes": 1},
    "isbi-em-membrane": {"input_shape": (128, 128, 1), "num_classes": 2},
    "daily-min-temperatures": {"input_shape": (30, 1), "num_classes": 1},
    "diabetes": {"input_shape": (10,), "num_classes": 1},
    "sst2": {"input_shape": (32,), "num_classes": 2, "vocabulary": VOCABULARY},
    "shakespeare": {"input_shape": (100,), "num_classes": len(VOCABULARY), "vocabulary": VOCABULARY},
    "english-corpus": {"input_shape": (32,), "num_classes": 0, "vocabulary": VOCABULARY},
    "english-text": {"input_shape": (1,), "num_classes": 0, "vocabulary": VOCABULARY},
    "fra-eng": {"input_shape": (20,), "num_classes": len(VOCABULARY), "vocabulary": VOCABULARY, "target_length": 21},
}

# Builder arguments that keep each model small (the rest build fast at their defaults).
SMALL: dict[str, dict[str, Any]] = {
    "bert-classifier": {"layers": 1, "heads": 2, "embedding_dim": 16, "intermediate_dim": 32},
    "bert-mini": {"layers": 1, "heads": 2, "embedding_dim": 16, "intermediate_dim": 32},
    "char-gru": {"units": 16, "layers": 1, "embedding_dim": 8},
    "char-lstm": {"units": 16, "layers": 1, "embedding_dim": 8},
    "dcgan": {"latent_dim": 8, "width": 4},
    "gpt": {"layers": 1, "heads": 2, "embedding_dim": 16},
    "seq2seq-attention": {"embedding_dim": 8, "units": 16},
    "translator": {"layers": 1, "heads": 2, "embedding_dim": 16, "units": 32},
    "unet": {"filters": (4, 8, 8, 8)},
    "word2vec": {"embedding_dim": 8},
}


def _shape(tensor: Any) -> tuple[int, ...]:
    """A batch of `SAMPLES` of a model tensor's shape; a free length (BERT's masked positions) is 4."""
    return (SAMPLES, *(size or 4 for size in tensor.shape[1:]))


def _ids(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(*IDS, size=shape).astype("int32")


def _batch(model: Any, task: str, info: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """`SAMPLES` inputs and targets as the model's inputs and its task's loss take them."""
    if task == "generation":  # a GAN: real images in, the model makes its own targets
        images = rng.uniform(-1, 1, size=(SAMPLES, *info.input_shape)).astype("float32")
        return images, images
    inputs = [
        _ids(rng, _shape(tensor)) if "int" in str(tensor.dtype) else rng.normal(size=_shape(tensor)).astype("float32")
        for tensor in model.inputs
    ]
    x = inputs[0] if len(inputs) == 1 else inputs
    output = _shape(model.outputs[0])
    if task == "reconstruction":
        return x, x
    if task == "detection":  # CenterNet's target: the output's maps plus a centre-cell channel
        return x, rng.uniform(size=(*output[:-1], output[-1] + 1)).round().astype("float32")
    if task in ("forecasting", "regression"):
        return x, rng.normal(size=output).astype("float32")
    if task == "word-embedding":
        return x, rng.integers(0, 2, size=output).astype("float32")
    if task in ("classification", "segmentation"):  # one class per image or pixel
        return x, rng.integers(0, output[-1], size=output[:-1]).astype("int32")
    return x, _ids(rng, output[:-1])  # one token id per position: language models, masked tokens, translation


# The ImageNet backbones (Keras Applications under our head, built offline with `offline_params`): MobileNetV2
# trains like every other model. EfficientNet-B0 and ResNet50 come from the same builder with the same head (our
# code is the same path); their layers are Keras's own, and building them alone under JAX cost CI three minutes.
TRAINED_BACKBONE = "mobilenet-v2"


def checked(spec: Any) -> bool:
    """Models this check trains: all but the NumPy scratch ones and the backbones other than TRAINED_BACKBONE."""
    return "numpy" not in spec.loops and (not spec.offline_params or spec.name == TRAINED_BACKBONE)


def train_briefly(spec: Any) -> dict[str, Any]:
    """Build, compile and fit `spec`'s model for two steps; what happened, as JSON."""
    import keras

    from kerasdl.data import DatasetInfo
    from kerasdl.tasks import get_task

    data = DATA[spec.default_data]
    info = DatasetInfo(spec.default_data, class_names=tuple(map(str, range(data["num_classes"]))), **data)
    model = spec.build(info, **spec.offline_params, **SMALL.get(spec.name, {}))
    task = get_task(spec.task)
    if task.loss() is None:  # the model trains itself (a GAN's two players)
        task.compile(model, keras.optimizers.Adam(1e-3))
    else:
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=task.loss())
    x, y = _batch(model, spec.task, info, np.random.default_rng(0))
    before = [keras.ops.convert_to_numpy(weight) for weight in model.trainable_weights]
    losses = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0).history["loss"]
    after = [keras.ops.convert_to_numpy(weight) for weight in model.trainable_weights]
    moved = sum(not np.array_equal(old, new) for old, new in zip(before, after))
    return {"losses": [float(loss) for loss in losses], "moved": moved, "weights": len(before)}


class WithoutTensorFlow(importlib.abc.MetaPathFinder):
    """Makes `import tensorflow` fail, as on a machine without it, and notes who tried: Keras then skips its
    optional TensorFlow paths (as it does there), and any import of ours shows up as a model's failure."""

    def __init__(self) -> None:
        self.importers: set[str] = set()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "tensorflow":
            importer = [frame for frame in traceback.extract_stack()[:-1] if "importlib" not in frame.filename][-1]
            if "/kerasdl/" in importer.filename:  # not Keras probing for an optional TensorFlow
                self.importers.add(f"{importer.filename}:{importer.lineno}")
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/test_backends.py)")


def main() -> None:
    """Every registered Keras model, trained briefly under this process's backend: one JSON line of results."""
    blocker = WithoutTensorFlow()
    sys.meta_path.insert(0, blocker)
    from kerasdl.registry import model_specs

    results = {}
    for spec in filter(checked, model_specs()):
        try:
            results[spec.name] = train_briefly(spec)
        except Exception as error:  # noqa: BLE001  (every model's failure is reported, not the first only)
            results[spec.name] = {"error": f"{type(error).__name__}: {error}"[:500]}
    import keras

    print(json.dumps({"backend": keras.backend.backend(), "tensorflow_importers": sorted(blocker.importers),
                      "models": results}))


def test_every_registered_model_trains_under_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__))], capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    from kerasdl.registry import model_specs

    assert sorted(report["models"]) == sorted(spec.name for spec in model_specs() if checked(spec))
    failures = {
        name: result.get("error") or result
        for name, result in report["models"].items()
        if "error" in result or not _trained(result)
    }
    assert not failures, json.dumps(failures, indent=1)
    assert not report["tensorflow_importers"], "our modules import TensorFlow under the JAX backend"


def _trained(result: dict[str, Any]) -> bool:
    """Finite losses and every weight moved."""
    return bool(np.all(np.isfinite(result["losses"]))) and result["moved"] == result["weights"]


if __name__ == "__main__":
    main()
