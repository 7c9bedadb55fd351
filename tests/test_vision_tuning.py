"""`kerasdl tune` over the vision models: every search space builds, and a CNN search runs end to end on photos."""

from __future__ import annotations

import json

import pytest

from kerasdl.cli import main
from kerasdl.registry import model_specs
from kerasdl.training import TrainConfig
from kerasdl.training.train import load_for, resolve
from kerasdl.tuning.hypermodel import RegistryHyperModel

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|getName:DeprecationWarning")  # inside Keras Tuner

VISION = [spec for spec in model_specs() if spec.family in ("cnn", "transfer")]


@pytest.mark.parametrize("spec", VISION, ids=lambda spec: spec.name)
def test_every_vision_model_has_a_search_space_that_builds(spec):
    """Building the space's defaults (what a search does before its first trial) compiles the model."""
    assert spec.search_space is not None
    photos = spec.default_data == "cats-vs-dogs"
    config = resolve(TrainConfig(spec.name, model_params=spec.offline_params, image_size=32 if photos else None))
    hypermodel = RegistryHyperModel(spec, load_for(config), config)
    assert {"accuracy", "val_accuracy", "loss", "val_loss"} <= hypermodel.logged_metrics()


def test_a_cnn_search_on_photos_runs_and_retrains_the_best(tmp_path, capsys):
    out = tmp_path / "search"
    argv = ["tune", "cnn-small", "--tuner", "random", "--max-trials", "2", "--epochs", "1", "--image-size", "32",
            "--quiet", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "best trial" in printed and "width" in printed
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert best["config"]["image_size"] == 32 and best["config"]["jit_compile"] is False
    assert len(best["config"]["model_params"]["filters"]) == best["hyperparameters"]["depth"]
    assert (out / "best" / "plots" / "grad_cam.png").is_file()  # an ordinary image run directory
