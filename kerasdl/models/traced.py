"""Inference helpers traced into graphs where the backend has them: tf.function under TensorFlow only."""

from __future__ import annotations

from typing import Any, Callable

import keras


def traced(function: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """`function` as a tf.function (with `options`) under the TensorFlow backend, where a decoding step called
    eagerly would rebuild its graph of ops at every token; unchanged under other backends (JAX runs it eagerly:
    `jax.jit` would freeze the weights it reads as constants)."""
    if keras.backend.backend() != "tensorflow":
        return function
    import tensorflow as tf

    return tf.function(function, **options)
