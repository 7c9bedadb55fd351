"""SavedModel -> LiteRT flatbuffer with TFLite builtin ops only, optionally quantized, and the op check.

Conversion uses `tf.lite.TFLiteConverter.from_saved_model` (what `model.export(format="litert")` does
inside) because quantization needs the converter's options. `supported_ops` is TFLITE_BUILTINS (plus
TFLITE_BUILTINS_INT8 for int8), never SELECT_TF_OPS: an op TFLite lacks fails the conversion, and the
error names it and its layer. The operator list of the flatbuffer is then read back to prove it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError
from tensorflow.lite.python.schema_py_generated import BuiltinOperator
from tensorflow.lite.tools import flatbuffer_utils

from kerasdl.export.errors import ExportError, NonBuiltinOpsError

_TF_OP = re.compile(r"'tf\.(\w+)'")  # how converter errors name a TensorFlow op they could not lower


class Operator(NamedTuple):
    """One operator of a flatbuffer: its name, whether it is a TFLite builtin, and its first output tensor."""

    name: str
    builtin: bool
    tensor: str


def convert(
    saved_model_dir: Path,
    *,
    fmt: str,
    quantization: str | None,
    representative: np.ndarray | None,
    layer_names: list[str],
) -> bytes:
    """The flatbuffer of `saved_model_dir`'s serving signature; NonBuiltinOpsError names ops TFLite lacks."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative is None or not len(representative):
            raise ExportError(f"{fmt}: int8 quantization needs representative samples")
        converter.representative_dataset = lambda: ([sample[np.newaxis]] for sample in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_output_type = tf.int8
        if np.issubdtype(representative.dtype, np.floating):  # integer inputs (token ids) stay as they are
            converter.inference_input_type = tf.int8
    try:
        flatbuffer = converter.convert()
    except ConverterError as err:
        missing = _missing_ops(err, layer_names)
        if missing:
            raise NonBuiltinOpsError(fmt, missing) from err
        raise ExportError(f"{fmt}: TFLite conversion failed: {str(err).strip().splitlines()[0]}") from err
    custom = {(op.name, _layer_of(op.tensor, layer_names)) for op in operators(flatbuffer) if not op.builtin}
    if custom:
        raise NonBuiltinOpsError(fmt, sorted(custom, key=str))
    return flatbuffer


def operators(flatbuffer: bytes) -> list[Operator]:
    """Every operator of every subgraph, read from the flatbuffer itself.

    A builtin reads as its schema name (FULLY_CONNECTED); a custom op as its custom code, which for a
    TensorFlow op run through Flex is "Flex" + the op name (FlexCumprod).
    """
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    found = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode) != BuiltinOperator.CUSTOM
            name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) if builtin else code.customCode.decode()
            tensor = subgraph.tensors[op.outputs[0]].name.decode() if len(op.outputs) else ""
            found.append(Operator(name, builtin, tensor))
    return found


def op_counts(flatbuffer: bytes) -> dict[str, int]:
    """How often each op occurs, for the export report."""
    return dict(sorted(Counter(op.name for op in operators(flatbuffer)).items()))


def _missing_ops(err: ConverterError, layer_names: list[str]) -> list[tuple[str, str | None]]:
    """(op, layer) for each TensorFlow op the converter could not express with builtins."""
    found: dict[str, str | None] = {}
    for error in err.errors:
        match = _TF_OP.search(error.error_message)
        if match:
            path = next((call.name for call in error.location.call if call.name), "")
            found.setdefault(match.group(1), _layer_of(path, layer_names))
    return sorted(found.items())


def _layer_of(op_path: str, layer_names: list[str]) -> str | None:
    """The model layer an op belongs to, from its graph path ("model_1/running_product_1/Cumprod@...").

    Tracing adds "_1" suffixes to name scopes, so each part of the path is tried as is and without one.
    """
    known = set(layer_names)
    for part in re.split(r"[/;]", op_path.split("@")[0]):
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in known:
                return candidate
    return None
