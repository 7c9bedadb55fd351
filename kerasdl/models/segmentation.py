"""Stage 4's segmentation project: a U-Net (Ronneberger et al. 2015) that gives logits for every pixel.

The encoder halves the resolution at each level and doubles the filters; the decoder upsamples with a
learned 2x2 transposed convolution and concatenates the encoder's features of the same resolution (the
skip connections that give back the detail pooling lost) before its own convolutions. Convolutions are
"same"-padded, so the logits have the input's height and width (the paper crops "valid" ones instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 4 project: segmentation (U-Net on ISBI EM membranes)"


def double_conv(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Two 3x3 convolutions, each followed by batch norm and ReLU: one U-Net level."""
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def unet_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Width of the top level and depth (levels, each doubling the filters), bottom dropout and learning rate;
    defaults are the builder's (16, 32, 64, 128 and no dropout). Five levels need an image-size divisible by 16."""
    width = hp.Choice("width", [8, 16, 32], default=16)
    depth = hp.Int("depth", 3, 5, default=4)
    return {
        "model_params": {
            "filters": [width * 2**level for level in range(depth)],
            "dropout": hp.Choice("dropout", [0.0, 0.25, 0.5], default=0.0),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "unet",
    family="segmentation",
    task="segmentation",
    default_data="isbi-em-membrane",
    lesson=LESSON,
    search_space=unet_search_space,
    jit_compile=False,
)
def build_unet(info: DatasetInfo, filters: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.0) -> keras.Model:
    """U-Net: conv levels down with max pooling, up with transposed convs and skip concatenations, 1x1 logits."""
    size, levels = info.input_shape[0], len(filters) - 1
    if len(filters) < 2 or size % 2**levels:
        raise KerasdlError(
            f"unet with {len(filters)} levels needs at least 2 and an image-size divisible by {2**levels}, got {size}"
        )
    inputs = keras.Input(shape=info.input_shape, name="image")
    x, skips = inputs, []
    for level, width in enumerate(filters[:-1], start=1):
        x = double_conv(x, width, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = double_conv(x, filters[-1], "bottom")
    x = keras.layers.Dropout(dropout, name="bottom_dropout")(x)
    for level, width, skip in reversed(list(zip(range(1, levels + 1), filters, skips))):
        x = keras.layers.Conv2DTranspose(width, 2, strides=2, name=f"up{level}_upsample")(x)
        x = keras.layers.Concatenate(name=f"up{level}_skip")([x, skip])
        x = double_conv(x, width, f"up{level}")
    logits = keras.layers.Conv2D(info.num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="unet")
