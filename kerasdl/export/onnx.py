"""ONNX through tf2onnx's SavedModel loader, from the same SavedModel the TFLite formats convert.

`tf2onnx.convert.from_keras` fails on Keras 3 models, and Keras's `model.export(format="onnx")` leaves
eager tensors a layer computes once (the mean and variance of `keras.layers.Normalization`, inside
EfficientNet) as unfed graph inputs. The SavedModel has them frozen as constants, and keeps the
signature's names: input as the keras.Input, output `logits`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import onnx

from kerasdl.export.saved_model import SIGNATURE

STANDARD_DOMAINS = ("", "ai.onnx")  # the default operator set; anything else needs a runtime extension


def convert_saved_model(saved_model: Path, path: Path) -> None:
    """Write the SavedModel's serving signature to `path` as ONNX."""
    with warnings.catch_warnings():  # tf2onnx's numpy-2 shim warns about np.object on every export
        warnings.simplefilter("ignore", FutureWarning)
        import tf2onnx
        from tf2onnx import tf_loader

        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(saved_model), None, None, tag="serve", signatures=[SIGNATURE], return_tensors_to_rename=True
        )
        tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, tensors_to_rename=renames, output_path=str(path)
        )


def onnx_op_counts(path: Path) -> tuple[dict[str, int], bool]:
    """How often each op occurs in the graph, and whether all of them come from the standard ONNX domain."""
    graph = onnx.load(str(path)).graph
    counts = Counter(node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}.{node.op_type}"
                     for node in graph.node)
    standard = all(node.domain in STANDARD_DOMAINS for node in graph.node)
    return dict(sorted(counts.items())), standard
