"""Map kerasdl's [-1, 1] image inputs to what a `keras.applications` backbone's ImageNet weights expect."""

from __future__ import annotations

import keras

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # ImageNet channel means of ResNet's Caffe weights
STYLES = ("tf", "raw", "caffe")


@keras.saving.register_keras_serializable(package="kerasdl")
class ImageNetInput(keras.layers.Layer):
    """[-1, 1] RGB -> a backbone's input convention.

    "tf": [-1, 1] as is (MobileNetV2); "raw": [0, 255] RGB (EfficientNet rescales inside the model);
    "caffe": [0, 255] BGR minus the ImageNet channel means (ResNet50). Keeping this in the model means
    every run shares one data pipeline and an exported model takes the same inputs as any other.
    """

    def __init__(self, style: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if style not in STYLES:
            raise ValueError(f"unknown ImageNet input style {style!r}; known: {', '.join(STYLES)}")
        self.style = style

    def call(self, inputs):
        if self.style == "tf":
            return inputs
        pixels = (inputs + 1.0) * 127.5
        if self.style == "raw":
            return pixels
        # RGB -> BGR as a strided slice: `keras.ops.flip` lowers to REVERSE_V2, whose int8 version cost a
        # small conv net here most of its top-1 agreement with Keras (0.41, against 0.94 as a slice).
        bgr = pixels[..., ::-1]
        return bgr - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "style": self.style}
