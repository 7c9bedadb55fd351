"""Export a run to one format: the artifact, `preprocessing.json` beside it, and the `export.json` report.

Every format starts from the same edge model: the part of the model its task ships (a classifier, a GAN's
generator...), adapted for builtin-op conversion (see edge_model). Each is measured the same way: its outputs
on the task's held-out inputs against the Keras model's, in the task's own terms (top-1 agreement, mask
agreement, box IoU...), its bytes, and the mean latency of a single-sample call in the runtime a device
uses (the TF-free runner for .tflite and .onnx).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from kerasdl import files
from kerasdl.data import DataBundle
from kerasdl.edge.runner import PREPROCESSING_FILE, EdgeModel, mean_latency_ms
from kerasdl.export.edge_model import edge_model
from kerasdl.export.errors import ExportError
from kerasdl.export.formats import DEFAULT_LATENCY_RUNS, DEFAULT_REPRESENTATIVE_SAMPLES, ExportFormat, export_format
from kerasdl.export.onnx import convert_saved_model, onnx_op_counts
from kerasdl.export.precision import compute_precision, float32_model
from kerasdl.export.saved_model import OUTPUT_NAME, SIGNATURE, input_spec, saved_model_logits, write_saved_model
from kerasdl.export.tflite import convert, op_counts, operators
from kerasdl.locking import folder_lock
from kerasdl.models.loading import load_model_file
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task, predict
from kerasdl.training.run_dir import RunDirectory
from kerasdl.training.train import load_for

REPORT_FILE = "export.json"
PARITY_BATCH = 256
DEFAULT_ROOT = Path("export") / "artifacts"


@dataclass(frozen=True)
class ExportResult:
    """Where the artifact went and what export.json says about it."""

    artifact: Path
    report: dict[str, Any]

    @property
    def report_path(self) -> Path:
        return self.artifact.parent / REPORT_FILE


def default_out(run_dir: Path, fmt: str) -> Path:
    """export/artifacts/<run name>/<format>: one folder per format, so artifacts never overwrite each other."""
    return DEFAULT_ROOT / run_dir.resolve().name / fmt


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    representative_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
) -> ExportResult:
    """Export a finished run's model.keras, measured on the test split of the data it trained on."""
    export_format(fmt)  # an unknown name fails before anything loads
    run = RunDirectory(run_dir)
    model_path = run.require_model()
    config = run.read_config()
    spec = model_spec(config["model"])  # also imports the model modules, so custom layers deserialize
    model = load_model_file(model_path)
    data = load_for(config, state=run.read_data_state())
    return export_model(
        model,
        data,
        fmt,
        Path(out) if out else default_out(run.path, fmt),
        task=spec.task,
        family=spec.family,
        source={"run_dir": str(run.path.resolve()), "model": spec.name, "data": data.info.name},
        representative_samples=representative_samples,
        seed=config["seed"],
        latency_runs=latency_runs,
    )


def export_model(
    model: keras.Model,
    data: DataBundle,
    fmt: str,
    out: Path,
    *,
    task: str = "classification",
    family: str = "",
    source: dict[str, Any] | None = None,
    representative_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES,
    seed: int = 0,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
) -> ExportResult:
    """Convert the part of `model` that `task` ships to `fmt` in folder `out`, and measure it against the
    Keras model on the task's held-out inputs. A mixed-precision model is exported, and measured, as its
    float32 copy (`float32_model`); `tflite-fp16` is how to ask for fp16."""
    export = export_format(fmt)
    job = get_task(task)
    trained_precision = compute_precision(model)
    part = job.edge_part(float32_model(model))
    signature_input = input_spec(part, job.signature_shape(part, data.info))
    edge = edge_model(part, data.info, family)
    targets = job.targets(export.quantization)  # a task that refuses a quantization says so before converting
    representative = None
    if export.quantization == "int8":
        if representative_samples < 1:
            raise ExportError(f"representative-samples must be >= 1, got {representative_samples}")
        representative = job.sample_inputs(part, data, "train", representative_samples, seed)
    # Locked: one writer per folder. export.json is removed first and written last, so its presence means a
    # finished export, and a rerun over a killed one starts it again.
    with folder_lock(out):
        artifact = out / export.artifact
        _clear(out, artifact)
        details = _write_artifact(edge, export, artifact, signature_input, representative)
        preprocessing = job.preprocessing(data, signature_input.name, signature_input.dtype.name,
                                          tuple(signature_input.shape[1:]))
        files.write_json(out / PREPROCESSING_FILE, preprocessing)

        run_artifact, io, runtime = _runtime(export, artifact, signature_input.name)
        reference, outputs = [], []
        for x in job.export_batches(part, data, PARITY_BATCH):  # a batch at a time: photos are never held whole
            reference.append(predict(part, x))
            outputs.append(run_artifact(x))
        measured = job.parity(np.concatenate(reference), np.concatenate(outputs), data)
        failures = targets.failures(measured)
        report = {
            "format": export.name,
            "description": export.description,
            "task": job.name,
            "artifact": artifact.name,
            "bytes": _bytes(artifact),
            **details,
            "io": io,
            "quantization": _quantization(export, representative),
            "trained_precision": trained_precision,  # the artifact is converted from float32 whatever this is
            "source": source or {"model": model.name, "data": data.info.name},
            "parity": {"split": "test", **measured},
            "targets": {**targets.to_json(), "met": not failures, "failures": failures},
            "latency_ms_batch1": round(
                mean_latency_ms(run_artifact, job.sample_inputs(part, data, "test", 1, 0), runs=latency_runs), 4
            ),
            "latency_runs": latency_runs,
            "runtime": runtime,
        }
        files.write_json(out / REPORT_FILE, report)  # last: its presence says the export finished
        return ExportResult(artifact, report)


def _write_artifact(
    edge: keras.Model,
    export: ExportFormat,
    artifact: Path,
    signature_input: tf.TensorSpec,
    representative: np.ndarray | None,
) -> dict[str, Any]:
    """Write the artifact (to a temporary renamed over it when complete); the op report of formats that have one."""
    if export.name == "savedmodel":
        with files.replacing(artifact) as temporary:
            write_saved_model(edge, temporary, signature_input)
        return {"builtin_ops_only": None}
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = Path(tmp) / "saved_model"
        write_saved_model(edge, saved_model, signature_input)
        if export.name == "onnx":
            with files.replacing(artifact) as temporary:  # keeps the .onnx suffix
                convert_saved_model(saved_model, temporary)
            ops, standard = onnx_op_counts(artifact)
            return {"builtin_ops_only": standard, "ops": ops}
        flatbuffer = convert(
            saved_model,
            fmt=export.name,
            quantization=export.quantization,
            representative=representative,
            layer_names=[layer.name for layer in edge.layers],
        )
    files.write_bytes(artifact, flatbuffer)
    return {"builtin_ops_only": all(op.builtin for op in operators(flatbuffer)), "ops": op_counts(flatbuffer)}


def _runtime(
    export: ExportFormat, artifact: Path, input_name: str
) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any], str]:
    """`outputs(batch)` as a device runs the artifact, its input/output description, and the runtime's name."""
    if export.name == "savedmodel":
        io = {"signature": SIGNATURE, "input": {"name": input_name}, "output": {"name": OUTPUT_NAME}}
        return saved_model_logits(artifact, input_name), io, f"tensorflow {metadata.version('tensorflow')}"
    runner = EdgeModel(artifact)
    package = "ai-edge-litert" if export.is_tflite else "onnxruntime"
    return runner.logits, runner.session.io, f"kerasdl runner, {package} {metadata.version(package)}"


def _quantization(export: ExportFormat, representative: np.ndarray | None) -> dict[str, Any] | None:
    if export.quantization is None:
        return None
    details: dict[str, Any] = {"mode": export.quantization}
    if representative is not None:
        details["representative_samples"] = int(len(representative))
        details["representative_split"] = "train"
    return details


def _bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _clear(out: Path, artifact: Path) -> None:
    """Unmark `out` as finished (export.json), then remove the old artifact (a SavedModel folder cannot be renamed
    over) and the temporaries of killed exports."""
    (out / REPORT_FILE).unlink(missing_ok=True)
    for path in [artifact, *files.leftovers(out)]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
