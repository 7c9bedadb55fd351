"""The TF-free edge runner (`export/runner.py`, `kerasdl infer`): raw inputs to class names, no TensorFlow.

Subprocess tests run under a sitecustomize that blocks `tensorflow` and `keras` (and, for the copied
runner, `kerasdl`) in sys.meta_path: if the runner imported any of them, it would fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import classifiers, formats_for
from kerasdl.cli import main
from kerasdl.edge.runner import EdgeModel, softmax
from kerasdl.export.formats import FORMATS
from kerasdl.registry import model_spec

pytest_plugins = ["export_fixtures"]

MODELS = classifiers()
TRAINED_NETWORKS = {name for name in MODELS if not model_spec(name).offline_params}  # see test_export.py
REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "export" / "runner.py"
SAMPLES = 40

BLOCKER = '''
import importlib.abc, os, sys

_BLOCKED = set(os.environ["KERASDL_TEST_BLOCKED"].split(","))


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"{name} is blocked: the edge runner must not import it", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''


@pytest.fixture(scope="session")
def blocked_python(tmp_path_factory):
    """`blocked_python(args, blocked)`: run this Python with the modules in `blocked` unimportable."""
    site = tmp_path_factory.mktemp("blocker")
    (site / "sitecustomize.py").write_text(BLOCKER)

    def run(args: list[str], blocked: str = "tensorflow,keras") -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(site), "KERASDL_TEST_BLOCKED": blocked}
        return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture(scope="session")
def raw_inputs(tmp_path_factory, trained_run):
    """`raw_inputs(model)`: a .npy of the first test samples' raw pixels, as a user would pass them."""
    folder = tmp_path_factory.mktemp("inputs")

    def get(model: str) -> Path:
        path = folder / f"{model}.npy"
        if not path.exists():
            np.save(path, trained_run(model).raw_test[:SAMPLES])
        return path

    return get


def test_the_blocker_blocks(blocked_python):
    for module in ("tensorflow", "keras"):
        result = blocked_python(["-c", f"import {module}"])
        assert result.returncode != 0 and f"{module} is blocked" in result.stderr


def check_predictions(stdout: str, run, fmt: str, model: str) -> None:
    """The runner's JSON (top-k over all classes) vs the Keras model on the same samples."""
    predictions = json.loads(stdout)["predictions"]
    probabilities = np.zeros_like(run.keras_logits[:SAMPLES])
    for row, top in zip(probabilities, predictions, strict=True):
        row[[c["index"] for c in top]] = [c["probability"] for c in top]
    agreement = np.mean(probabilities.argmax(axis=1) == run.keras_logits[:SAMPLES].argmax(axis=1))
    if FORMATS[fmt].quantization is None:  # float32: the same classes with the same probabilities
        np.testing.assert_allclose(probabilities, softmax(run.keras_logits[:SAMPLES]), atol=1e-5)
        assert agreement == 1.0
    elif model in TRAINED_NETWORKS:  # quantized: a trained network keeps its classes
        assert agreement >= 0.9
    else:
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("model", MODELS)
def test_a_copied_runner_runs_every_edge_format_without_tensorflow_keras_or_kerasdl(
    blocked_python, exported, trained_run, raw_inputs, tmp_path, model
):
    runner = Path(shutil.copy(RUNNER, tmp_path / "runner.py"))  # the file a user copies to a device
    for fmt in (fmt for fmt in formats_for(model) if FORMATS[fmt].artifact != "saved_model"):
        export = exported(model, fmt)
        num_classes = len(trained_run(model).keras_logits[0])
        args = [str(export.artifact), "--input", str(raw_inputs(model)), "--json", "--top-k", str(num_classes)]
        result = blocked_python([str(runner), *args], blocked="tensorflow,keras,kerasdl")
        assert result.returncode == 0, result.stderr
        check_predictions(result.stdout, trained_run(model), fmt, model)


@pytest.mark.parametrize("model", MODELS)
def test_kerasdl_infer_runs_without_tensorflow(blocked_python, exported, trained_run, raw_inputs, model):
    class_names = json.loads((exported(model, "tflite").folder / "preprocessing.json").read_text())["class_names"]
    for fmt in (fmt for fmt in ("tflite", "tflite-int8", "onnx") if fmt in formats_for(model)):
        export = exported(model, fmt)
        result = blocked_python(["-m", "kerasdl", "infer", str(export.artifact), "--input", str(raw_inputs(model))])
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert [line.split(":")[0] for line in lines] == [f"sample {i}" for i in range(SAMPLES)]
        named = [line.split(": ", 1)[1].split(" (")[0] for line in lines]
        assert set(named) <= set(class_names)
        keras_named = [class_names[i] for i in trained_run(model).keras_logits[:SAMPLES].argmax(axis=1)]
        agreement = np.mean(np.array(named) == np.array(keras_named))  # the Keras model's classes, named
        if FORMATS[fmt].quantization is None:
            assert agreement == 1.0
        elif model in TRAINED_NETWORKS:
            assert agreement >= 0.9


@pytest.mark.parametrize("model", MODELS)
def test_image_files_give_the_same_class_as_their_raw_pixels(exported, trained_run, tmp_path, model):
    runner = EdgeModel(exported(model, "tflite").artifact)
    preprocessing = runner.preprocessing
    raw = trained_run(model).raw_test[:5]
    eight_bit = np.round(raw * 255.0 / preprocessing.pixel_max).astype(np.uint8)
    for i, pixels in enumerate(eight_bit):
        png = tmp_path / f"sample{i}.png"
        Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(png)
        from_png = runner.predict(preprocessing.read(png))
        np.testing.assert_allclose(from_png, runner.predict(raw[i]), atol=0.05)
        assert from_png.argmax() == runner.predict(raw[i]).argmax()
    big = tmp_path / "big.jpg"  # another size, and RGB for gray models: resized and converted to the model's input
    rgb = eight_bit[0] if eight_bit[0].shape[-1] == 3 else np.concatenate([eight_bit[0]] * 3, axis=-1)
    Image.fromarray(rgb).resize((64, 48)).save(big)
    assert preprocessing.read(big).shape == preprocessing.shape


def test_text_and_json_output(capsys, exported, raw_inputs):
    model = MODELS[0]
    artifact, inputs = str(exported(model, "tflite-int8").artifact), str(raw_inputs(model))
    assert main(["infer", artifact, "--input", inputs, "--top-k", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("sample 0: ") and first.count("(") == 2
    assert main(["infer", artifact, "--input", inputs, "--json", "--top-k", "1"]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert all(len(p) == 1 and 0.0 < p[0]["probability"] <= 1.0 for p in predictions)


def broken_setups(folder: Path, good: Path) -> dict[str, tuple[list[str], str]]:
    """Name -> (infer arguments, expected message) for each user mistake, written into `folder`."""
    preprocessing = good.parent / "preprocessing.json"
    cases = {}
    for suffix in (".tflite", ".onnx"):
        case = folder / f"corrupt{suffix}"
        case.mkdir()
        shutil.copy(preprocessing, case)
        (case / f"model{suffix}").write_bytes(b"this is not a model" * 10)
        cases[f"corrupt {suffix}"] = ([str(case / f"model{suffix}")], f"not a valid {suffix} model")
    lonely = folder / "lonely"
    lonely.mkdir()
    shutil.copy(good, lonely)
    cases["no preprocessing.json"] = ([str(lonely / good.name)], "preprocessing.json is missing")
    cases["saved model"] = ([str(folder)], "a SavedModel needs TensorFlow")
    wrong = folder / "wrong.npy"
    np.save(wrong, np.zeros(7))
    cases["wrong input size"] = ([str(good), "--input", str(wrong)], "does not hold samples of shape")
    cases["missing input"] = ([str(good), "--input", str(folder / "nope.png")], "does not exist")
    return cases


def test_user_mistakes_are_one_line_errors(capsys, exported, raw_inputs, tmp_path):
    good = exported(MODELS[0], "tflite").artifact
    for name, (args, message) in broken_setups(tmp_path, good).items():
        argv = ["infer", *args] if "--input" in args else ["infer", *args, "--input", str(raw_inputs(MODELS[0]))]
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
