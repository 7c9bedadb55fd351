"""Stage 3's convolutional networks: the curriculum's CIFAR-10 CNN, an MNIST convnet and a photo convnet.

Each outputs logits, as `mlp` does; inputs arrive scaled to [-1, 1] by the data pipeline, and photo
augmentation runs in that pipeline (training only), so none of it is part of an exported model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 3: Convolutional neural networks (convolution, padding, stride, pooling)"


def conv_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """The lesson's formula: floor((W - K + 2P) / S) + 1, for one spatial dimension."""
    if size + 2 * padding < kernel:
        raise ValueError(f"a {kernel}-wide kernel does not fit an input of {size} with padding {padding}")
    return (size - kernel + 2 * padding) // stride + 1


def conv_block(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Conv 3x3 (no bias: batch norm's beta plays it) -> BatchNorm -> ReLU -> MaxPool 2.

    BatchNorm's moving statistics use momentum 0.9, not Keras's 0.99: with a few dozen steps per epoch on
    a small photo set, 0.99 leaves them far from the data's for many epochs and validation stalls at chance.
    """
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def cnn_cifar_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Width and depth of the conv stages (each doubles the filters), learning rate and batch size; the
    defaults are the lesson's network (32, 64) and training settings."""
    width = hp.Choice("width", [16, 32, 64], default=32)
    depth = hp.Int("depth", 2, 3, default=2)
    return {
        "model_params": {"filters": [width * 2**block for block in range(depth)]},
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
        "batch_size": hp.Choice("batch_size", [32, 64, 128], default=64),
    }


def _stages_fit(side: int, stages: int) -> bool:
    """Whether `stages` of cnn-cifar's conv 3x3 + pool 2 (the first conv "same", the others "valid") leave at
    least one pixel of a `side`-wide image (the lesson's formula)."""
    for block in range(stages):
        padding = 1 if block == 0 else 0
        if side + 2 * padding < 3:
            return False
        side = conv_output_size(side, 3, padding) // 2
    return side >= 1


@register_model(
    "cnn-cifar",
    family="cnn",
    task="classification",
    default_data="cifar10",
    lesson=LESSON,
    search_space=cnn_cifar_search_space,
    jit_compile=False,
)
def build_cnn_cifar(
    info: DatasetInfo, filters: tuple[int, ...] = (32, 64), units: tuple[int, ...] = (600, 120)
) -> keras.Model:
    """The curriculum's CIFAR-10 CNN, layer for layer: two conv/pool stages, then Dense 600 -> 120 -> classes.

    `filters` gives one conv/pool stage per entry, the first "same"-padded and the others "valid" as in the
    lesson; `units` the hidden Dense layers. The defaults are the lesson's."""
    if not _stages_fit(min(info.input_shape[:2]), len(filters)):
        height, width = info.input_shape[:2]
        raise KerasdlError(f"{len(filters)} conv/pool stages do not fit {height}x{width} images")
    inputs = keras.Input(shape=info.input_shape, name="image")  # 32x32x3
    x = inputs
    for block, width in enumerate(filters, start=1):  # 32x32x32 -> 16x16x32, then 14x14x64 -> 7x7x64
        padding = "same" if block == 1 else "valid"
        x = keras.layers.Conv2D(width, 3, padding=padding, activation="relu", name=f"conv{block}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for layer, width in enumerate(units, start=1):
        x = keras.layers.Dense(width, activation="relu", name=f"fc{layer}")(x)
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="cifar_cnn")


def cnn_mnist_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Filters of the two conv stages, dropout and learning rate; defaults are the builder's."""
    width = hp.Choice("width", [16, 32, 64], default=32)
    return {
        "model_params": {
            "filters": [width, 2 * width],
            "dropout": hp.Choice("dropout", [0.0, 0.25, 0.5], default=0.25),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "cnn-mnist",
    family="cnn",
    task="classification",
    default_data="mnist",
    lesson=LESSON,
    search_space=cnn_mnist_search_space,
    jit_compile=False,
)
def build_cnn_mnist(info: DatasetInfo, filters: tuple[int, ...] = (32, 64), dropout: float = 0.25) -> keras.Model:
    """A small convnet for digits: conv/BN/ReLU/pool blocks, dropout, Dense 128, logits (99% on MNIST)."""
    inputs = keras.Input(shape=info.input_shape, name="image")
    x = inputs
    for block, width in enumerate(filters, start=1):
        x = conv_block(x, width, f"block{block}")
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc")(x)
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="mnist_cnn")


def cnn_small_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Width, depth and dropout of `cnn-small`, with learning rate; defaults are the builder's."""
    width = hp.Choice("width", [16, 32, 48], default=32)
    depth = hp.Int("depth", 3, 5, default=4)
    return {
        "model_params": {
            "filters": [width * 2**block for block in range(depth)],
            "dropout": hp.Choice("dropout", [0.0, 0.3, 0.5], default=0.3),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "cnn-small",
    family="cnn",
    task="classification",
    default_data="cats-vs-dogs",
    lesson="Stage 4 project: image classification (cats vs dogs), a convnet from scratch",
    search_space=cnn_small_search_space,
    jit_compile=False,
)
def build_cnn_small(
    info: DatasetInfo, filters: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3
) -> keras.Model:
    """A from-scratch convnet for photos: conv/BN/ReLU/pool blocks, global average pooling, dropout, logits."""
    inputs = keras.Input(shape=info.input_shape, name="image")
    x = inputs
    for block, width in enumerate(filters, start=1):
        x = conv_block(x, width, f"block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="photo_cnn")
