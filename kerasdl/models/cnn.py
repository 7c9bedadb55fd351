"""Stage 3's convolutional networks: the curriculum's CIFAR-10 CNN, an MNIST convnet and a photo convnet.

Each outputs logits, as `mlp` does; inputs arrive scaled to [-1, 1] by the data pipeline, and photo
augmentation runs in that pipeline (training only), so none of it is part of an exported model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
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


def training_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Optimizer, learning rate and batch size only: the lesson's network itself stays as it is."""
    return {
        "optimizer": hp.Choice("optimizer", ["adam", "momentum", "rmsprop"], default="adam"),
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
        "batch_size": hp.Choice("batch_size", [32, 64, 128], default=64),
    }


@register_model(
    "cnn-cifar",
    family="cnn",
    task="classification",
    default_data="cifar10",
    lesson=LESSON,
    search_space=training_search_space,
    jit_compile=False,
)
def build_cnn_cifar(info: DatasetInfo) -> keras.Model:
    """The curriculum's CIFAR-10 CNN, layer for layer: two conv/pool stages, then Dense 600 -> 120 -> classes."""
    inputs = keras.Input(shape=info.input_shape, name="image")  # 32x32x3
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)  # 32x32x32
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)  # 16x16x32
    x = keras.layers.Conv2D(64, 3, padding="valid", activation="relu", name="conv2")(x)  # 14x14x64
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)  # 7x7x64
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(600, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(120, activation="relu", name="fc2")(x)
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
