"""Untrusted files and requests (issue 14, items 3 and 4): a model file with code is refused and its code never
runs; a corrupt one is one line; the runner and the server never follow a path out of an artifact's folder;
preprocessing.json, export.json and request bodies, random or mutated, give only our one-line error (the
server: a 4xx JSON answer), never a crash, a 500 or a hang.

One real run (the curriculum MLP, one epoch on digits) and its TFLite export serve every test."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ, bounded, mutations, only_our_error
from kerasdl.cli import main
from kerasdl.edge.runner import PREPROCESSING_FILE, EdgeModel, Preprocessing, RunnerError, add_arguments, infer
from kerasdl.errors import KerasdlError

REPORT_FILE = "export.json"
CODE_REFUSED = "contains Python code"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def cli(capsys, *argv: str) -> tuple[int, str]:
    """`kerasdl ARGV`: its exit code and its stderr."""
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


# --- fixtures: one real run, its export, and a copy of the run whose model.keras holds code ---------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from kerasdl.training import TrainConfig, train

    return train(TrainConfig("mlp", epochs=1), out=tmp_path_factory.mktemp("untrusted") / "run", verbose=0).run.path


@pytest.fixture(scope="module")
def export(run, tmp_path_factory) -> Path:
    """The run exported as TFLite: the folder holding model.tflite, preprocessing.json and export.json."""
    out = tmp_path_factory.mktemp("export") / "tflite"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", str(run), "--format", "tflite", "--out", str(out), "--latency-runs", "1"]) == 0
    return out



@pytest.fixture(scope="module")
def digits_npy(tmp_path_factory) -> Path:
    """Four real digits as raw pixels (0..16, as the data set stores them) in a .npy the runner reads."""
    from sklearn.datasets import load_digits

    path = tmp_path_factory.mktemp("inputs") / "digits.npy"
    np.save(path, load_digits().images[:4, :, :, np.newaxis])
    return path


@pytest.fixture(scope="module")
def code_run(run, tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the finished run whose model.keras wraps the trained model behind a Lambda layer whose Python
    code creates a marker file; and the marker's path (absent: the code never ran)."""
    import keras

    folder = tmp_path_factory.mktemp("code")
    shutil.copytree(run, folder / "run")
    marker = folder / "lambda-ran"
    trained = keras.saving.load_model(run / "model.keras")
    inputs = keras.Input(trained.input_shape[1:])
    run_code = keras.layers.Lambda(lambda x, marker: (open(marker, "w").close(), x)[1], arguments={"marker": str(marker)})
    touched = run_code(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that a lambda is being saved
        keras.Model(inputs, trained(touched)).save(folder / "run" / "model.keras")
        marker.unlink()  # written while the layer was built
        keras.saving.load_model(folder / "run" / "model.keras", safe_mode=False)
    assert marker.exists(), "the control failed: loading the file unsafely should run its code"
    marker.unlink()
    return folder / "run", marker


# --- model files with code, corrupt model files -----------------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "export", "infer"])
def test_the_cli_refuses_a_model_file_with_code_without_running_it(capsys, code_run, digits_npy, tmp_path, command):
    run, marker = code_run
    argv = {
        "evaluate": ["evaluate", str(run)],
        "export": ["export", str(run), "--format", "tflite", "--out", str(tmp_path / "out")],
        "infer": ["infer", str(run / "model.keras"), "--input", str(digits_npy)],  # the runner takes exports only
    }[command]
    code, err = cli(capsys, *argv)
    one_line_error(code, err, CODE_REFUSED if command != "infer" else "expected a .tflite or .onnx artifact")
    assert not marker.exists(), f"kerasdl {command} ran the model file's code"


def test_the_server_refuses_a_run_with_code_without_running_it(code_run):
    from kerasdl.serve.repository import ModelRepository

    run, marker = code_run
    with pytest.raises(KerasdlError, match=CODE_REFUSED) as refused:
        ModelRepository.load(run)
    assert "\n" not in str(refused.value) and not marker.exists()


def test_transfer_weights_with_code_are_refused_without_running_them(code_run):
    import keras

    from kerasdl.models.transfer import backbone

    run, marker = code_run
    with pytest.raises(KerasdlError, match=CODE_REFUSED) as refused:
        backbone(keras.applications.MobileNetV2, (32, 32, 3), str(run / "model.keras"))
    assert "\n" not in str(refused.value) and not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "mutated", "empty"])
def test_a_corrupt_model_file_is_one_line(capsys, run, tmp_path, damage):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    data = (run / "model.keras").read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "empty": b"",
               "mutated": mutations(data, list(range(200, len(data), 97)), [0xFF] * len(data))}[damage]
    (copy / "model.keras").write_bytes(damaged)
    code, err = cli(capsys, "evaluate", str(copy))
    one_line_error(code, err, "model.keras")


@FUZZ
@given(positions=st.lists(st.integers(0, 2**20), min_size=1, max_size=8), values=st.lists(st.integers(0, 255), min_size=8, max_size=8))
def test_mutated_model_files_load_or_fail_in_one_line(run, tmp_path_factory, positions, values):
    from kerasdl.models.loading import load_model_file

    path = tmp_path_factory.getbasetemp() / "mutated.keras"
    path.write_bytes(mutations((run / "model.keras").read_bytes(), positions, values))
    only_our_error(load_model_file, path, seconds=30)


# --- paths out of an artifact's folder ---------------------------------------------------------------------------


def copy_export(export: Path, folder: Path) -> Path:
    shutil.copytree(export, folder)
    return folder


@pytest.mark.parametrize("artifact", ["../outside/model.tflite", "/etc/passwd", "link/model.tflite", "", 7])
def test_the_server_never_follows_export_json_out_of_its_folder(export, tmp_path, artifact):
    from kerasdl.serve.backends import load_export

    outside = copy_export(export, tmp_path / "outside")  # a real model, so only the path can stop it
    folder = copy_export(export, tmp_path / "export")
    (folder / "link").symlink_to(outside)
    report = json.loads((folder / REPORT_FILE).read_text())
    (folder / REPORT_FILE).write_text(json.dumps({**report, "artifact": artifact}))
    with pytest.raises(KerasdlError, match="outside|expected a file name") as refused:
        load_export(folder)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", [PREPROCESSING_FILE, REPORT_FILE])
def test_a_file_beside_the_artifact_linked_from_outside_is_refused(export, tmp_path, name):
    from kerasdl.serve.backends import load_export

    outside = copy_export(export, tmp_path / "outside")
    folder = copy_export(export, tmp_path / "export")
    (folder / name).unlink()
    (folder / name).symlink_to(outside / name)
    with pytest.raises(KerasdlError, match="outside"):
        load_export(folder)
    if name == PREPROCESSING_FILE:
        with pytest.raises(RunnerError, match="outside"):
            EdgeModel(folder / "model.tflite")


# --- fuzzed preprocessing.json and export.json --------------------------------------------------------------------


def runner_args(artifact: Path, digits_npy: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([str(artifact), "--input", str(digits_npy), "--json"])


def key_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path of keys and indices into a JSON value, itself included."""
    inner = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [prefix] + [path for key, item in inner for path in key_paths(item, (*prefix, key))]


def replaced(value: Any, path: tuple, new: Any) -> Any:
    """A copy of a JSON value with the item at `path` replaced by `new`."""
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def damaged(data: st.DataObject, original: bytes) -> bytes:
    """A JSON file an attacker or a bad disk could give: random JSON, the real file with bytes replaced, or the
    real file with one value (anywhere in it) replaced by random JSON."""
    how = data.draw(st.sampled_from(["random", "bytes", "value"]))
    if how == "random":
        return json.dumps(data.draw(JSON_VALUES)).encode()
    if how == "bytes":
        positions = data.draw(st.lists(st.integers(0, len(original)), min_size=1, max_size=6))
        return mutations(original, positions, data.draw(st.lists(st.integers(0, 255), min_size=6, max_size=6)))
    value = json.loads(original)
    path = data.draw(st.sampled_from(key_paths(value)))
    return json.dumps(replaced(value, path, data.draw(JSON_VALUES))).encode()


@pytest.fixture(scope="module")
def scratch(export, tmp_path_factory) -> Path:
    """A copy of the export the fuzz tests damage, one file at a time (restored after each example)."""
    return copy_export(export, tmp_path_factory.mktemp("fuzz") / "export")


@FUZZ
@given(data=st.data())
def test_a_damaged_preprocessing_json_is_only_ever_a_runner_error(export, scratch, digits_npy, data):
    original = (export / PREPROCESSING_FILE).read_bytes()
    (scratch / PREPROCESSING_FILE).write_bytes(damaged(data, original))
    try:
        spec = only_our_error(json.loads, original)  # the real one parses; the damaged one may not
        assert spec is not None
        with contextlib.redirect_stderr(io.StringIO()):
            only_our_error(Preprocessing.beside, scratch / "model.tflite", errors=(RunnerError,))
            only_our_error(infer, runner_args(scratch / "model.tflite", digits_npy), errors=(RunnerError,))
    finally:
        (scratch / PREPROCESSING_FILE).write_bytes(original)


@FUZZ
@given(data=st.data())
def test_a_damaged_export_json_is_only_ever_a_one_line_error_and_never_a_500(export, scratch, data):
    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    original = (export / REPORT_FILE).read_bytes()
    (scratch / REPORT_FILE).write_bytes(damaged(data, original))
    try:
        repository = only_our_error(ModelRepository.load, scratch)
        if repository is not None:
            with bounded(10):
                listing = create_app(repository).test_client().get("/v1/models")
            assert listing.status_code == 200, listing.get_json()
    finally:
        (scratch / REPORT_FILE).write_bytes(original)


# --- fuzzed request bodies ----------------------------------------------------------------------------------------

CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                 "multipart/form-data; boundary=x", "application/octet-stream", ""]
REQUEST_FIELDS = st.dictionaries(st.sampled_from(["inputs", "text", "texts", "top_k", "image"]), JSON_VALUES, max_size=3)


@pytest.fixture(scope="module")
def api(export):
    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    return create_app(ModelRepository.load(export)).test_client()


@pytest.fixture(scope="module")
def predict_url(export) -> str:
    from kerasdl.serve.repository import default_name

    return f"/v1/models/{default_name(export)}:predict"


def answered_in_json(api, url: str, body: bytes, content_type: str) -> int:
    """POST `body`; the status, after checking that an error is a 4xx JSON answer with a one-line message."""
    with bounded(10):
        answer = api.post(url, data=body, content_type=content_type)
    assert answer.status_code < 500, answer.get_data(as_text=True)[:300]
    if answer.status_code >= 400:
        message = answer.get_json()["error"]
        assert message and "\n" not in message
    return answer.status_code


def test_a_real_request_is_answered(api, predict_url, digits_npy):
    body = json.dumps({"inputs": np.load(digits_npy).tolist()}).encode()
    assert answered_in_json(api, predict_url, body, "application/json") == 200


@FUZZ
@given(data=st.data())
def test_random_and_mutated_request_bodies_get_a_4xx_json_answer(api, predict_url, digits_npy, data):
    real = json.dumps({"inputs": np.load(digits_npy)[:1].tolist(), "top_k": 3}).encode()
    how = data.draw(st.sampled_from(["fields", "random", "bytes"]))
    if how == "fields":
        body = json.dumps(data.draw(REQUEST_FIELDS)).encode()
    elif how == "random":
        body = json.dumps(data.draw(JSON_VALUES)).encode()
    else:
        positions = data.draw(st.lists(st.integers(0, len(real)), min_size=1, max_size=6))
        body = mutations(real, positions, data.draw(st.lists(st.integers(0, 255), min_size=6, max_size=6)))
    answered_in_json(api, predict_url, body, data.draw(st.sampled_from(CONTENT_TYPES)))


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"inputs": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
    b'{"inputs": [1e999]}',
    b'{"inputs": [' + b"1" * 5000 + b"]}",
    b'{"top_k": ' + b"9" * 5000 + b', "inputs": []}',
    b"\xff\xfe{}",
    b"",
], ids=["deep", "deep-inputs", "too-many-dims", "infinite", "huge-int", "huge-top-k", "not-utf8", "empty"])
@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=x"])
def test_deep_huge_and_odd_bodies_get_a_4xx_json_answer(api, predict_url, body, content_type):
    assert answered_in_json(api, predict_url, body, content_type) >= 400


def test_a_form_field_nested_too_deep_is_a_4xx(api, predict_url):
    form = {"image": (io.BytesIO(b"not an image"), "x.png"), "top_k": "[" * 100_000}
    with bounded(10):
        answer = api.post(predict_url, data=form, content_type="multipart/form-data")
    assert 400 <= answer.status_code < 500, answer.get_json()


@FUZZ
@given(fields=REQUEST_FIELDS)
def test_the_request_parsers_raise_only_bad_request(fields):
    from kerasdl.serve.inputs import BadRequest, Body, Limits, array, option, texts

    body, limits = Body(fields), Limits()
    only_our_error(texts, body, limits, errors=(BadRequest,))
    only_our_error(array, body, (8, 8, 1), limits, errors=(BadRequest,))
    only_our_error(option, body, "top_k", int, 3, 1, 10, errors=(BadRequest,))
