"""Session fixtures for the serving tests (load with `pytest_plugins = ["serve_fixtures"]`).

One model repository, trained and exported once per session and shared by every serving test (they share a
worker: conftest.SHARED_RUNS): real models that answer real inputs, so a test can check the answer shown.
    mlp-mnist/1      the curriculum MLP, 3 epochs on MNIST (0.96 test accuracy; trains in 20 s), TFLite
    mlp-mnist/2      the same run as ONNX
    text-cnn-sst2/1  text-cnn, 2 epochs on SST-2 (0.81), TFLite
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kerasdl.cli import main

REPOSITORY_RUNS = {
    "mlp-mnist": ({"model": "mlp", "data": "mnist", "epochs": 3, "batch_size": 128}, ("tflite", "onnx")),
    "text-cnn-sst2": ({"model": "text-cnn", "epochs": 2}, ("tflite",)),
}


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """The repository's root folder (NAME/VERSION/ exports, written by `kerasdl export --to-repo`).

    Built once per machine for each version of the code that trains and exports (a hash of those sources),
    under the system's temp folder, and locked while it is built: rerunning one serving test file, or several
    at once, reuses the models instead of training them again. CI starts empty."""
    root = Path(tempfile.gettempdir()) / "kerasdl-serving-fixture" / _code_version()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "complete").exists():
            _build(root)
            (root / "complete").touch()
    return root / "models"


TRAINING_AND_EXPORT = ("data", "edge", "export", "layers", "models", "tasks", "training", "registry.py")


def _code_version() -> str:
    """A digest of the fixture's settings and of the kerasdl sources that train and export its models."""
    package = Path(__file__).resolve().parents[1] / "kerasdl"
    digest = hashlib.sha256(repr(REPOSITORY_RUNS).encode())
    for part in TRAINING_AND_EXPORT:
        for path in sorted((package / part).rglob("*.py")) if (package / part).is_dir() else [package / part]:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build(root: Path) -> None:
    from kerasdl.training import TrainConfig, train

    for folder in ("runs", "exports", "models"):  # what a build that was cut short left
        shutil.rmtree(root / folder, ignore_errors=True)
    for name, (config, formats) in REPOSITORY_RUNS.items():
        run = train(TrainConfig(**config), out=root / "runs" / name, verbose=0).run.path
        for fmt in formats:
            with contextlib.redirect_stdout(io.StringIO()):
                code = main(["export", str(run), "--format", fmt, "--out", str(root / "exports" / name / fmt),
                             "--to-repo", str(root / "models"), "--name", name, "--latency-runs", "5"])
            assert code == 0


@pytest.fixture(scope="session")
def repository(model_repository):
    """The repository loaded (each artifact once)."""
    from kerasdl.serve.repository import ModelRepository

    return ModelRepository.load(model_repository)


@pytest.fixture
def client(repository):
    """A Flask test client over the repository, default settings."""
    from kerasdl.serve.app import create_app

    return create_app(repository).test_client()


@dataclass(frozen=True)
class LiveServer:
    """A real server (waitress, as `kerasdl serve` runs it) on a loopback port, in a background thread."""

    url: str
    server: Any
    thread: threading.Thread

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Let running requests finish, then close the sockets from the server's own loop (closed from here,
        its select() would fail)."""
        from waitress import wasyncore

        self.server.task_dispatcher.shutdown()
        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(repository, config=None, threads: int = 8) -> LiveServer:
    """`kerasdl serve`'s server (kerasdl.serve.server.create_server) on a free loopback port; `.close()` stops it."""
    from kerasdl.serve.app import ServerConfig
    from kerasdl.serve.server import create_server

    server = create_server(repository, "127.0.0.1", 0, threads, config or ServerConfig())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return LiveServer(f"http://127.0.0.1:{server.effective_port}", server, thread)


@pytest.fixture(scope="session")
def live_server(repository):
    """A live server with default settings, for the session."""
    server = start_server(repository)
    yield server
    server.close()
