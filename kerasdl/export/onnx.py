"""ONNX through Keras's own `model.export(format="onnx")` (tf2onnx on the traced call).

`tf2onnx.convert.from_keras` fails on Keras 3 models; `model.export` traces `model(x, training=False)`
into a tf.function and hands that to tf2onnx, which works.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import keras
import onnx
import tensorflow as tf

STANDARD_DOMAINS = ("", "ai.onnx")  # the default operator set; anything else needs a runtime extension


def write_onnx(model: keras.Model, path: Path, spec: tf.TensorSpec) -> None:
    with warnings.catch_warnings():  # tf2onnx's numpy-2 shim warns about np.object on every export
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(path), format="onnx", input_signature=[spec], verbose=False)


def onnx_op_counts(path: Path) -> tuple[dict[str, int], bool]:
    """How often each op occurs in the graph, and whether all of them come from the standard ONNX domain."""
    graph = onnx.load(str(path)).graph
    counts = Counter(node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}.{node.op_type}"
                     for node in graph.node)
    standard = all(node.domain in STANDARD_DOMAINS for node in graph.node)
    return dict(sorted(counts.items())), standard
