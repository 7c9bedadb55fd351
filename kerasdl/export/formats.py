"""Export formats by name: what each writes and how it is quantized (parity targets belong to the task)."""

from __future__ import annotations

from dataclasses import dataclass

from kerasdl.errors import UnknownNameError

DEFAULT_REPRESENTATIVE_SAMPLES = 200  # training samples that calibrate int8 ranges
DEFAULT_LATENCY_RUNS = 200  # timed single-sample calls behind export.json's latency


@dataclass(frozen=True)
class ExportFormat:
    """One `--format`: its artifact name inside the output folder, its runtime and its TFLite quantization."""

    name: str
    artifact: str
    description: str
    quantization: str | None = None  # TFLite only: "float16", "dynamic-range" or "int8"

    @property
    def is_tflite(self) -> bool:
        return self.artifact.endswith(".tflite")


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("savedmodel", "saved_model", "TensorFlow SavedModel, signature serving_default"),
        ExportFormat("tflite", "model.tflite", "LiteRT flatbuffer, float32"),
        ExportFormat("tflite-fp16", "model.tflite", "LiteRT, float16 weights", "float16"),
        ExportFormat(
            "tflite-dynamic", "model.tflite", "LiteRT, int8 weights, float activations (dynamic range)", "dynamic-range"
        ),
        ExportFormat(
            "tflite-int8", "model.tflite", "LiteRT, full integer: int8 weights, activations, input, output", "int8"
        ),
        ExportFormat("onnx", "model.onnx", "ONNX (tf2onnx from the SavedModel), for onnxruntime"),
    )
}


def export_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise UnknownNameError("export format", name, list(FORMATS))
    return FORMATS[name]
