"""`kerasdl serve` as a user runs it: a real process under waitress answering the README's three requests, and
one clear line (before any model loads) for each way its command line can be wrong."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from kerasdl.cli import main

pytest_plugins = ["serve_fixtures"]


@dataclass
class Served:
    """A running `kerasdl serve`: its URL, and once it has stopped, everything it printed."""

    url: str
    process: subprocess.Popen
    output: str = ""


@contextlib.contextmanager
def kerasdl_serve(*argv: str, timeout: float = 120) -> Iterator[Served]:
    """`python -m kerasdl serve ARGV --port P` on a free port, ready (its /healthz answers); stopped on exit."""
    from serve_fixtures import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kerasdl", "serve", *argv, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        wait_until_healthy(served, timeout)
        yield served
    finally:
        process.terminate()
        served.output = process.communicate(timeout=30)[0]


def wait_until_healthy(served: Served, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"kerasdl serve exited with {served.process.returncode}: {served.process.stdout.read()}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(served.url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"kerasdl serve did not answer /healthz within {timeout} s")


def seven_png() -> tuple[bytes, int]:
    """The first MNIST test digit (a 7) as a PNG file's bytes, and its label."""
    from PIL import Image

    from kerasdl.data.base import data_root
    from kerasdl.data.idx import read_idx
    from kerasdl.data.mnist import FILES

    folder = data_root() / "mnist"
    buffer = io.BytesIO()
    Image.fromarray(read_idx(folder / FILES["x_test"])[0]).save(buffer, format="PNG")
    return buffer.getvalue(), int(read_idx(folder / FILES["y_test"])[0])


def test_kerasdl_serve_answers_the_readme_examples_under_waitress(model_repository):
    image, label = seven_png()
    with kerasdl_serve(str(model_repository)) as served:
        listing = requests.get(served.url + "/v1/models", timeout=10)
        digit = requests.post(served.url + "/v1/models/mlp-mnist:predict", files={"image": ("seven.png", image)},
                              timeout=10)
        text = requests.post(served.url + "/v1/models/text-cnn-sst2:predict", timeout=10,
                             json={"text": "a gorgeous, moving and beautifully acted film"})
        too_big = requests.post(served.url + "/v1/models/mlp-mnist:predict", data=b" " * (8 * 1024 * 1024 + 1),
                                headers={"Content-Type": "application/json"}, timeout=30)
    assert [m["name"] for m in listing.json()["models"]] == ["mlp-mnist", "text-cnn-sst2"]
    assert listing.headers["Server"] == "kerasdl", f"not waitress: {listing.headers['Server']}"
    assert digit.json()["predictions"][0]["label"] == str(label) == "7"
    assert text.json()["predictions"][0]["label"] == "positive", text.json()
    assert too_big.status_code == 413 and too_big.json()["error"].startswith("request body over the limit")
    assert "with waitress" in served.output and "development server" not in served.output, served.output
    assert "mlp-mnist version 2 (classification, onnx)" in served.output, served.output


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def loads(monkeypatch) -> list:
    """Every ModelRepository.load the command makes; the first one stops it (with STOPPED as its error)."""
    from kerasdl.errors import KerasdlError
    from kerasdl.serve.repository import ModelRepository

    calls = []

    def load(cls, path):
        calls.append(path)
        raise KerasdlError(STOPPED)

    monkeypatch.setattr(ModelRepository, "load", classmethod(load))
    return calls


STOPPED = "stopped where the models would load"


@pytest.mark.parametrize("argv, message", [
    (("--host", "0.0.0.0"), "kerasdl serve: error: refusing to serve on 0.0.0.0 without an API key"),
    (("--api-key-env", "KERASDL_UNSET_KEY"),
     "kerasdl serve: error: --api-key-env KERASDL_UNSET_KEY: that environment variable is unset or empty"),
])
def test_a_refused_command_line_fails_in_one_line_before_loading_models(capsys, loads, model_repository, monkeypatch,
                                                                         argv, message):
    monkeypatch.delenv("KERASDL_UNSET_KEY", raising=False)
    code, err = run_cli(capsys, "serve", str(model_repository), *argv)
    assert code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert loads == [], "models were loaded before the command line was checked"


def test_a_public_address_with_a_key_gets_as_far_as_loading(capsys, loads, model_repository, monkeypatch):
    monkeypatch.setenv("KERASDL_TEST_KEY", "s3cret")
    code, err = run_cli(capsys, "serve", str(model_repository), "--host", "0.0.0.0",
                        "--api-key-env", "KERASDL_TEST_KEY")
    assert (code, err.strip(), loads) == (2, f"kerasdl serve: error: {STOPPED}", [str(model_repository)])


def test_a_port_in_use_fails_in_one_line(capsys, model_repository):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_cli(capsys, "serve", str(model_repository), "--port", str(port))
    in_use = os.strerror(errno.EADDRINUSE)
    assert code == 2 and err.strip() == f"kerasdl serve: error: cannot listen on 127.0.0.1:{port}: {in_use}"


def test_a_missing_model_dir_fails_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kerasdl", "serve", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"kerasdl serve: error: model path {tmp_path / 'nowhere'} does not exist"


def test_a_server_of_tflite_and_onnx_exports_never_imports_tensorflow(model_repository):
    """The edge runner's promise holds behind HTTP: a machine without TensorFlow can serve these exports."""
    script = "\n".join([
        "import sys",
        "from kerasdl.serve.app import create_app",
        "from kerasdl.serve.repository import ModelRepository",
        f"client = create_app(ModelRepository.load({str(model_repository)!r})).test_client()",
        "bodies = {'mlp-mnist/versions/1': {'inputs': [[[0]] * 28] * 28}, 'mlp-mnist/versions/2': {'inputs': "
        "[[[0]] * 28] * 28}, 'text-cnn-sst2': {'text': 'a gorgeous film'}}",
        "for name, body in bodies.items():",
        "    assert client.post(f'/v1/models/{name}:predict', json=body).status_code == 200, name",
        "print(sorted(module for module in ('tensorflow', 'keras') if module in sys.modules))",
    ])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", f"imported: {result.stdout}"
