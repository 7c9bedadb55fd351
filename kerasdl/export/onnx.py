"""ONNX through tf2onnx's SavedModel loader, from the same SavedModel the TFLite formats convert.

`tf2onnx.convert.from_keras` fails on Keras 3 models, and Keras's `model.export(format="onnx")` leaves
eager tensors a layer computes once (the mean and variance of `keras.layers.Normalization`, inside
EfficientNet) as unfed graph inputs. The SavedModel has them frozen as constants, and keeps the
signature's names: input as the keras.Input, output `logits`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator

import onnx

from kerasdl.export.saved_model import SIGNATURE

STANDARD_DOMAINS = ("", "ai.onnx")  # the default operator set; anything else needs a runtime extension


def convert_saved_model(saved_model: Path, path: Path) -> None:
    """Write the SavedModel's serving signature to `path` as ONNX."""
    with _converter_warnings_off():
        import tf2onnx
        from tf2onnx import tf_loader

        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(saved_model), None, None, tag="serve", signatures=[SIGNATURE], return_tensors_to_rename=True
        )
        tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, tensors_to_rename=renames, output_path=str(path)
        )


@contextlib.contextmanager
def _converter_warnings_off() -> Iterator[None]:
    """tf2onnx's numpy-2 shim warns about np.object, and its TF1-style freezing logs TensorFlow deprecation
    notices on every export: none of it is the user's to act on."""
    loggers = [logging.getLogger(name) for name in ("tensorflow", "tf2onnx")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def onnx_op_counts(path: Path) -> tuple[dict[str, int], bool]:
    """How often each op occurs in the graph, and whether all of them come from the standard ONNX domain."""
    graph = onnx.load(str(path)).graph
    counts = Counter(node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}.{node.op_type}"
                     for node in graph.node)
    standard = all(node.domain in STANDARD_DOMAINS for node in graph.node)
    return dict(sorted(counts.items())), standard
