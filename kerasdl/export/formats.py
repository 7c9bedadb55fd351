"""Export formats by name: what each writes and which parity it must reach against the Keras model."""

from __future__ import annotations

from dataclasses import dataclass

from kerasdl.errors import UnknownNameError

DEFAULT_REPRESENTATIVE_SAMPLES = 200  # training samples that calibrate int8 ranges
DEFAULT_LATENCY_RUNS = 200  # timed single-sample calls behind export.json's latency


@dataclass(frozen=True)
class ParityTargets:
    """Bounds an artifact must meet on held-out data; None means not checked for this format."""

    max_abs_diff: float | None = None  # largest |logit difference| to the Keras model
    min_top1_agreement: float | None = None  # share of samples whose top-1 class matches Keras's
    max_accuracy_drop: float | None = None  # Keras test accuracy minus the artifact's

    def failures(self, parity: dict[str, float]) -> list[str]:
        """Human-readable description of each target `parity` misses (empty when all are met)."""
        failed = []
        if self.max_abs_diff is not None and parity["max_abs_diff"] > self.max_abs_diff:
            failed.append(f"max abs diff {parity['max_abs_diff']:.3g} > {self.max_abs_diff:g}")
        if self.min_top1_agreement is not None and parity["top1_agreement"] < self.min_top1_agreement:
            failed.append(f"top-1 agreement {parity['top1_agreement']:.4f} < {self.min_top1_agreement:g}")
        drop = parity["keras_accuracy"] - parity["accuracy"]
        if self.max_accuracy_drop is not None and drop > self.max_accuracy_drop:
            failed.append(f"accuracy drop {drop:.4f} > {self.max_accuracy_drop:g}")
        return failed


FLOAT32_TARGETS = ParityTargets(max_abs_diff=1e-4, min_top1_agreement=1.0)
QUANTIZED_TARGETS = ParityTargets(max_accuracy_drop=0.01)


@dataclass(frozen=True)
class ExportFormat:
    """One `--format`: its artifact name inside the output folder, its runtime and its TFLite quantization."""

    name: str
    artifact: str
    description: str
    targets: ParityTargets
    quantization: str | None = None  # TFLite only: "float16", "dynamic-range" or "int8"

    @property
    def is_tflite(self) -> bool:
        return self.artifact.endswith(".tflite")


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("savedmodel", "saved_model", "TensorFlow SavedModel, signature serving_default -> logits",
                     FLOAT32_TARGETS),
        ExportFormat("tflite", "model.tflite", "LiteRT flatbuffer, float32", FLOAT32_TARGETS),
        ExportFormat("tflite-fp16", "model.tflite", "LiteRT, float16 weights", QUANTIZED_TARGETS, "float16"),
        ExportFormat("tflite-dynamic", "model.tflite", "LiteRT, int8 weights, float activations (dynamic range)",
                     QUANTIZED_TARGETS, "dynamic-range"),
        ExportFormat("tflite-int8", "model.tflite", "LiteRT, full integer: int8 weights, activations, input, output",
                     QUANTIZED_TARGETS, "int8"),
        ExportFormat("onnx", "model.onnx", "ONNX (tf2onnx from the SavedModel), for onnxruntime",
                     FLOAT32_TARGETS),
    )
}


def export_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise UnknownNameError("export format", name, list(FORMATS))
    return FORMATS[name]
