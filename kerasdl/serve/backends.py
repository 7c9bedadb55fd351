"""Load what a servable holds into one `ServedModel`: preprocessing, task, and a thread-safe `logits(batch)`.

- `.tflite` / `.onnx`: the TF-free edge runner (LiteRT or onnxruntime), as on a device. The default.
- a SavedModel folder: its `serving_default` signature (imports TensorFlow).
- a run directory: its `model.keras`, loaded in Keras's safe mode, the part its task ships (as export does).
A LiteRT interpreter is not safe to call from two threads at once, so every call goes through one lock per
model; the micro-batcher (kerasdl.serve.batching) is what lets concurrent requests share a call.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kerasdl.edge.runner import PREPROCESSING_FILE, EdgeModel, Preprocessing, RunnerError, first_line, inside
from kerasdl.errors import KerasdlError

REPORT_FILE = "export.json"


class ServedModel:
    """One loaded model; `logits` may be called from any thread."""

    def __init__(self, edge: EdgeModel, backend: str):
        self.edge = edge
        self.backend = backend
        self.lock = threading.Lock()
        self._memo: dict[str, Any] = {}

    @property
    def task(self) -> str:
        return self.edge.task

    @property
    def preprocessing(self) -> Preprocessing:
        return self.edge.preprocessing

    def logits(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.edge.logits(x)

    def memo(self, key: str, compute: Callable[[EdgeModel], Any]) -> Any:
        """`compute(model)` once (under the lock), then its value: what a task reads off a model once."""
        with self.lock:
            if key not in self._memo:
                self._memo[key] = compute(self.edge)
            return self._memo[key]

    def describe(self) -> dict[str, Any]:
        spec = self.preprocessing
        return {
            "task": self.task,
            "backend": self.backend,
            "input": {"kind": spec.kind, "shape": list(spec.shape), "dtype": spec.dtype.name},
            "classes": list(spec.class_names),
        }


def load_export(folder: Path) -> tuple[ServedModel, dict[str, Any]]:
    """An export folder (or the artifact file in it) and its export.json report."""
    folder = folder.parent if folder.is_file() else folder
    try:
        report = read_report(folder)
        artifact = inside(folder, report["artifact"], f"{REPORT_FILE}'s artifact")
        if artifact.is_dir():  # a SavedModel
            edge = EdgeModel(artifact, session=_saved_model_session(artifact, report))
            return ServedModel(edge, "savedmodel"), report
        return ServedModel(EdgeModel(artifact), artifact.suffix.lstrip(".")), report
    except RunnerError as err:
        raise KerasdlError(str(err)) from err


def read_report(folder: Path) -> dict[str, Any]:
    """The folder's export.json, checked to be what the server reads: an object naming its artifact, and a
    `source` object if any."""
    path = inside(folder, REPORT_FILE, "the export report")
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise KerasdlError(f"{folder} has no {REPORT_FILE} (kerasdl export writes it beside the artifact)") from None
    except ValueError as err:  # invalid JSON or UTF-8
        raise KerasdlError(f"{path} is not a kerasdl export report ({first_line(err)})") from None
    if not isinstance(report, dict) or "artifact" not in report or not isinstance(report.get("source", {}), dict):
        raise KerasdlError(f"{path} is not a kerasdl export report (an object with \"artifact\" and \"source\")")
    return report


def _saved_model_session(path: Path, report: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    from kerasdl.export.saved_model import saved_model_logits

    try:
        return saved_model_logits(path, report["io"]["input"]["name"])
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise KerasdlError(f"{path}: not a loadable SavedModel ({str(err).splitlines()[0]})") from err


def load_run(path: Path) -> ServedModel:
    """A run directory's Keras model (safe mode), the part its task ships, and its preprocessing as an export
    would write it; no file is written."""
    from kerasdl.export.saved_model import input_spec
    from kerasdl.models.loading import load_model_file
    from kerasdl.registry import model_spec
    from kerasdl.tasks import get_task, predict
    from kerasdl.training.run_dir import RunDirectory
    from kerasdl.training.train import load_for

    run = RunDirectory(path)
    config = run.read_config()
    job = get_task(model_spec(config["model"]).task)
    model = load_model_file(run.require_model())
    data = load_for(config, state=run.read_data_state())
    part = job.edge_part(model)
    signature = input_spec(part, job.signature_shape(part, data.info))
    spec = job.preprocessing(data, signature.name, signature.dtype.name, tuple(signature.shape[1:]))
    edge = EdgeModel(path / PREPROCESSING_FILE, session=lambda x: predict(part, x), preprocessing=Preprocessing(spec))
    return ServedModel(edge, "keras")
