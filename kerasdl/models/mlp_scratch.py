"""`mlp-scratch`: the curriculum's digits MLP, trained by NumPy backpropagation (Stage 1's hands-on)."""

from __future__ import annotations

from typing import Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.models.mlp import build_mlp
from kerasdl.registry import register_model


@register_model(
    "mlp-scratch",
    family="mlp",
    task="classification",
    default_data="digits",
    lesson="Stage 1: Build a neural network from scratch using NumPy",
    loops=("numpy",),  # kerasdl.training.numpy_loop: kerasdl.scratch trains it, Keras holds the result
)
def build_mlp_scratch(info: DatasetInfo, **options: Any) -> keras.Model:
    """The `mlp` architecture, trained by kerasdl.scratch's NumPy backprop and saved as an ordinary Keras model."""
    return build_mlp(info, **options)
