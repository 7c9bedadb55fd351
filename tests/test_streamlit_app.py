"""The Streamlit app (`kerasdl app`), driven headlessly by Streamlit's own AppTest over the served models, and
the command that starts it."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kerasdl.cli import main
from kerasdl.commands.app import APP_SCRIPT, streamlit_argv
from kerasdl.serve.streamlit_app import MODELS_ENV
from serve_fixtures import free_port

pytest_plugins = ["serve_fixtures"]

POSITIVE_REVIEW = "a gorgeous , moving and wonderfully acted film , one of the best of the year"
RUN_TIMEOUT_S = 120  # the first run of a process imports pandas and loads every model


@pytest.fixture
def app(model_repository, monkeypatch):
    """A fresh AppTest of the app over the test repository, after its first run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(MODELS_ENV, str(model_repository))
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=RUN_TIMEOUT_S)
    at.run()
    assert not at.exception, f"the app raised on start: {at.exception}"
    return at


def select(at, name: str, version: int):
    """Pick `name` version `version` in the model selectbox and rerun."""
    box = at.selectbox[0]
    labels = [label for label in box.options if label.startswith(f"{name} · version {version} ·")]
    assert labels, f"{name} version {version} is not offered; options: {box.options}"
    box.select_index(box.options.index(labels[0])).run()
    assert not at.exception, f"the app raised after selecting {labels[0]}: {at.exception}"
    return at


def chart_data(at):
    """The bar chart's data (Arrow, as Streamlit sends it to the browser) as a DataFrame."""
    import pyarrow

    charts = at.get("vega_lite_chart")
    assert len(charts) == 1, f"expected one chart, found {len(charts)}"
    return pyarrow.ipc.open_stream(charts[0].proto.datasets[0].data.data).read_pandas()


def shown_prediction(at) -> str:
    assert not at.exception, f"the app raised: {at.exception}"
    assert not at.error, f"the app showed an error: {[e.value for e in at.error]}"
    assert len(at.metric) == 1, f"expected one prediction, the page shows {len(at.metric)}"
    return at.metric[0].value


def test_the_app_lists_every_version_of_every_model_with_its_export_figures(app):
    assert app.selectbox[0].options == [
        "mlp-mnist · version 2 · classification",
        "mlp-mnist · version 1 · classification",
        "text-cnn-sst2 · version 1 · classification",
    ]
    figures = json.loads(app.json[0].value)  # the export figures of the default choice, mlp-mnist version 2
    assert app.expander[0].label.startswith("Export figures")
    assert figures["format"] == "onnx" and figures["bytes"] > 0 and figures["parity"], figures
    assert figures["input"] == {"kind": "image", "shape": [28, 28, 1], "dtype": "float32"}


def test_a_clearly_positive_review_is_labelled_positive_with_a_chart_of_both_classes(app):
    select(app, "text-cnn-sst2", 1)
    app.text_area[0].input(POSITIVE_REVIEW)
    app.button[0].click().run()
    assert shown_prediction(app) == "positive"
    chart = chart_data(app)
    assert sorted(chart.iloc[:, 0]) == ["negative", "positive"], chart
    scores = dict(zip(chart.iloc[:, 0], chart["probability"]))
    assert scores["positive"] > 0.5 and abs(sum(scores.values()) - 1) < 1e-4, scores


@pytest.fixture(scope="module")
def mnist_test_digits() -> list[tuple[bytes, int]]:
    """Three MNIST test digits as the PNG files a user would upload (raw 0..255 pixels), with their labels."""
    from PIL import Image

    from kerasdl import data

    bundle = data.load("mnist")
    x, y = bundle.split("test")
    info = bundle.info
    digits = []
    for index in (0, 1, 2):
        pixels = np.rint((x[index, :, :, 0] - info.offset) / info.scale).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        digits.append((buffer.getvalue(), int(y[index])))
    return digits


@pytest.mark.parametrize("version", [1, 2], ids=["tflite", "onnx"])
def test_an_uploaded_mnist_digit_is_labelled_with_its_true_digit(app, mnist_test_digits, version):
    select(app, "mlp-mnist", version)
    for png, label in mnist_test_digits:
        app.file_uploader[0].set_value((f"digit-{label}.png", png, "image/png")).run()
        assert shown_prediction(app) == str(label), f"an uploaded {label} was read as another digit"
        chart = chart_data(app)
        assert list(chart.iloc[:, 0]) == [str(d) for d in range(10)], chart


def test_an_empty_text_shows_one_error_and_no_traceback(app):
    select(app, "text-cnn-sst2", 1)
    app.text_area[0].input("   ")
    app.button[0].click().run()
    assert not app.exception, f"an empty text raised: {app.exception}"
    assert [e.value for e in app.error] == ["text: an empty text"]
    assert not app.metric, "a prediction was shown for an empty text"


def test_an_upload_that_is_not_an_image_shows_one_error_and_no_traceback(app):
    select(app, "mlp-mnist", 1)
    app.file_uploader[0].set_value(("digit.png", b"this is not a PNG", "image/png")).run()
    assert not app.exception, f"a bad upload raised: {app.exception}"
    assert [e.value for e in app.error] == ["the upload is not an image (PNG, JPEG, GIF, BMP or WebP)"]


def test_a_missing_model_folder_is_one_error_in_the_app(model_repository, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(MODELS_ENV, str(model_repository / "no-such-folder"))
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=RUN_TIMEOUT_S).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [f"model path {model_repository / 'no-such-folder'} does not exist"]


def test_kerasdl_app_on_a_missing_folder_fails_in_one_line(capsys):
    assert main(["app", "/nonexistent/models"]) == 2
    err = capsys.readouterr().err
    assert err == "kerasdl app: error: model path /nonexistent/models does not exist\n", err


def test_the_streamlit_command_line_binds_loopback_headless_and_passes_the_folder(tmp_path):
    argv = streamlit_argv(tmp_path, 8765)
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(argv[4]) == APP_SCRIPT and APP_SCRIPT.is_file()
    flags = dict(zip(argv[5:-2:2], argv[6:-2:2]))
    assert flags == {"--server.port": "8765", "--server.address": "127.0.0.1", "--server.headless": "true",
                     "--browser.gatherUsageStats": "false", "--server.maxUploadSize": "8"}
    assert argv[-2:] == ["--", str(tmp_path)], "the model folder must follow '--', where the script reads it"


def test_kerasdl_app_starts_streamlit_that_answers_its_health_check(model_repository):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kerasdl", "app", str(model_repository), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert health(f"http://127.0.0.1:{port}/_stcore/health", deadline=time.monotonic() + 20) == "ok", (
            f"no health answer within 20 s; exit code {process.poll()}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the session holds kerasdl and the streamlit it started
        output = process.communicate(timeout=10)[0].decode()
    assert f"http://127.0.0.1:{port}/" in output, output


def health(url: str, deadline: float) -> str | None:
    """The health endpoint's body once it answers, or None at the deadline."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.2)
    return None
