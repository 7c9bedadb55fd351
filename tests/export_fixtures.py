"""Session fixtures for the export and edge-runner tests (loaded with `pytest_plugins = ["export_fixtures"]`).

Every registered model trains ONE run (its accuracy run where it has one, else 3 epochs on its default
data set, photos at 32x32, no downloads) and each format is exported
from it once, through the `kerasdl export` command; all tests share those artifacts. As a plugin this
module is imported once, so both test files get the same session-scoped caches; test modules do not
import it themselves (pytest could then no longer rewrite its asserts).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from kerasdl.cli import main
from kerasdl.registry import model_spec

LATENCY_RUNS = 20  # latency is a benchmark's job; here it only has to be measured
EXPORT_IMAGE_SIZE = 32  # photo models train tiny runs at 32x32: export does not depend on the size
OFFLINE_CLASSES, OFFLINE_PER_CLASS = ("airplane", "frog"), 100  # the photos ImageNet backbones train on here


@dataclass(frozen=True)
class Export:
    """One exported artifact: its path, export.json, and what `kerasdl export` printed."""

    artifact: Path
    report: dict[str, Any]
    stdout: str

    @property
    def folder(self) -> Path:
        return self.artifact.parent


@dataclass(frozen=True)
class TrainedRun:
    """A tiny run and what the tests compare artifacts with: raw test pixels, labels and Keras logits."""

    path: Path
    raw_test: np.ndarray
    labels: np.ndarray
    keras_logits: np.ndarray


@pytest.fixture(scope="session")
def export_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def trained_run(trained, export_root) -> Callable[[str], TrainedRun]:
    """`trained_run(model_name)`: the model's run, trained on first use and cached for the session.

    Models with an accuracy run (conftest.ACCURACY_BUDGETS) export that run; the others train a tiny one.
    ImageNet backbones train offline from random weights, which no CPU test budget turns into a trained
    network (ResNet50: 12 photos/s here), so theirs is one epoch on 2 x 100 CIFAR-10 photos: it checks the
    export itself, not what int8 keeps of a trained network (the tests' TRAINED_NETWORKS).
    """
    import keras

    from conftest import ACCURACY_BUDGETS
    from kerasdl.data import dataset_source
    from kerasdl.evaluation.metrics import predict_logits
    from kerasdl.training import TrainConfig
    from kerasdl.training.train import load_for

    cache: dict[str, TrainedRun] = {}

    def offline_photos() -> Path:
        from kerasdl.data import data_root
        from kerasdl.data.subsets import write_class_subset

        return write_class_subset(data_root() / "cifar10", export_root / "photos", classes=OFFLINE_CLASSES,
                                  per_class=OFFLINE_PER_CLASS, sampled_splits=("train", "test"))

    def get(name: str) -> TrainedRun:
        if name not in cache:
            spec = model_spec(name)
            photos = dataset_source(spec.default_data).image_size is not None
            budget = ACCURACY_BUDGETS.get(name) or {
                "epochs": 3, "model_params": spec.offline_params, "image_size": EXPORT_IMAGE_SIZE if photos else None
            }
            if spec.offline_params:  # an ImageNet backbone without its weights: one short epoch on few photos
                budget = {**budget, "epochs": 1, "data": str(offline_photos())}
            result = trained(TrainConfig(name, loop=spec.loops[0], **budget))
            data = load_for(result.run.read_config())
            x, y = data.split("test")
            model = keras.saving.load_model(result.run.model_path)
            raw = np.round((x - data.info.offset) / data.info.scale)  # back to the pixels the data set stores
            cache[name] = TrainedRun(result.run.path, raw, y, predict_logits(model, x))
        return cache[name]

    return get


class ExportCache:
    """`exported(model_name, format)`: that model's run exported with `kerasdl export`, once per session."""

    representative_samples = 128  # passed as --representative-samples, so the int8 report must say 128

    def __init__(self, root: Path, trained_run: Callable[[str], TrainedRun]):
        self.root, self.trained_run = root, trained_run
        self.cache: dict[tuple[str, str], Export] = {}

    def __call__(self, name: str, fmt: str) -> Export:
        if (name, fmt) not in self.cache:
            out = self.root / name / fmt
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main([
                    "export", str(self.trained_run(name).path), "--format", fmt, "--out", str(out),
                    "--representative-samples", str(self.representative_samples), "--latency-runs", str(LATENCY_RUNS),
                ])
            assert code == 0, stderr.getvalue()
            report = json.loads((out / "export.json").read_text())
            self.cache[name, fmt] = Export(out / report["artifact"], report, stdout.getvalue())
        return self.cache[name, fmt]


@pytest.fixture(scope="session")
def exported(export_root, trained_run) -> ExportCache:
    return ExportCache(export_root / "artifacts", trained_run)
