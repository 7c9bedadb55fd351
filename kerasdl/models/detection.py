"""A small CenterNet for object detection: objects as points (Zhou et al. 2019, "Objects as Points").

A conv encoder goes down to 1/32 of the input, a feature-pyramid decoder comes back up to the head's
stride (kerasdl.data.detection.OUTPUT_STRIDE) through skip connections, and the head says at every cell of
that grid how likely an object's centre lies there (one heatmap per class), how wide and high the object
is, and where in the cell its centre sits. Every output channel is a sigmoid in [0, 1]: the heatmaps are
probabilities, sizes are fractions of the image and offsets fractions of a cell, so one int8 scale of
1/255 quantizes them all finely. Decoding (peaks, boxes, non-maximum suppression) is kerasdl.tasks.detection's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.data.detection import OUTPUT_STRIDE
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 4 project: object detection (one-stage like YOLO: CenterNet heatmap peaks, box sizes, NMS)"
HEATMAP_PRIOR = 0.1  # the heatmaps start out saying "10% object" everywhere, as CenterNet's bias init


def conv_bn_relu(x: keras.KerasTensor, filters: int, name: str, strides: int = 1) -> keras.KerasTensor:
    """Conv 3x3 (no bias: batch norm's beta plays it) -> BatchNorm (momentum 0.9 for few steps) -> ReLU."""
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


FILTERS = (16, 24, 32, 48, 64)  # the five encoder stages', 1/2 to 1/32


def centernet_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Network width (the first stage's filters, the others scaled with it), the head's filters and the learning
    rate; defaults are the builder's. The depth is fixed: five stages take the encoder to 1/32."""
    width = hp.Choice("width", [8, 16, 24], default=FILTERS[0])
    return {
        "model_params": {
            "filters": [filters * width // FILTERS[0] for filters in FILTERS],
            "head_filters": hp.Choice("head_filters", [16, 32, 64], default=32),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "centernet",
    family="detection",
    task="detection",
    default_data="raccoon",
    lesson=LESSON,
    search_space=centernet_search_space,
    jit_compile=False,
)
def build_centernet(info: DatasetInfo, filters: tuple[int, ...] = FILTERS, head_filters: int = 32) -> keras.Model:
    """CenterNet: conv encoder to 1/32, pyramid decoder back to 1/4, heatmap + size + offset head."""
    side = info.input_shape[0]
    if len(filters) != 5 or side % 2 ** len(filters):
        raise KerasdlError(f"centernet takes 5 stages of filters and inputs a multiple of 32 px, got {filters}, {side}")
    inputs = keras.Input(shape=info.input_shape, name="image")
    x, skips = inputs, []
    for stage, width in enumerate(filters, start=1):  # each stage halves the resolution: 1/2 ... 1/32
        x = conv_bn_relu(x, width, f"down{stage}a", strides=2)
        skips.append(x := conv_bn_relu(x, width, f"down{stage}b"))
    stride = 2 ** len(filters)
    for skip in reversed(skips[int(math.log2(OUTPUT_STRIDE)) - 1 : -1]):  # up to the head's stride
        stride //= 2
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{stride}")(x)
        lateral = keras.layers.Conv2D(x.shape[-1], 1, name=f"lateral{stride}")(skip)
        x = conv_bn_relu(keras.layers.Add(name=f"merge{stride}")([x, lateral]), skip.shape[-1], f"fuse{stride}")
    x = conv_bn_relu(x, head_filters, "head")
    prior = -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR)
    heatmaps = keras.layers.Conv2D(
        info.num_classes, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(prior), dtype="float32",
        name="heatmaps",
    )(x)
    sizes = keras.layers.Conv2D(2, 1, activation="sigmoid", dtype="float32", name="sizes")(x)
    offsets = keras.layers.Conv2D(2, 1, activation="sigmoid", dtype="float32", name="offsets")(x)
    outputs = keras.layers.Concatenate(dtype="float32", name="detections")([heatmaps, sizes, offsets])
    return keras.Model(inputs, outputs, name="centernet")
