"""Micro-batching and concurrency on the real served models: batched answers equal single answers, the
model lock holds under threads, and a live server under a bounded mixed load answers every request right.

Speed is the benchmark's business (benchmarks/serve_load.py); these tests check correctness only.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle
from typing import Any, Callable

import numpy as np
import pytest

from kerasdl.data.base import data_root
from kerasdl.data.mnist import load_mnist
from kerasdl.data.text import load_sst2
from kerasdl.serve.app import ServerConfig
from kerasdl.serve.batching import BatchingConfig, MicroBatcher

pytest_plugins = ["serve_fixtures"]

CLIENTS = 16
TOLERANCE = 1e-5
TIMEOUT_S = 60


class RecordingModel:
    """A served model whose calls are recorded (batch sizes), and which fails while `failing` is set."""

    def __init__(self, model):
        self.model = model
        self.calls: list[int] = []
        self.failing = threading.Event()
        self.record = threading.Lock()

    def logits(self, x: np.ndarray) -> np.ndarray:
        with self.record:
            self.calls.append(len(x))
        if self.failing.is_set():
            raise RuntimeError("the model failed")
        return self.model.logits(x)


@pytest.fixture(scope="module")
def litert_model(repository):
    """mlp-mnist version 1: the LiteRT (TFLite) artifact, the backend that needs the lock."""
    servable = repository.get("mlp-mnist", 1)
    assert servable.model is not None and servable.model.backend == "tflite", servable.error
    return servable.model


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST test digits (raw 0..255 pixels, (n, 28, 28, 1)) and their labels: the first 64."""
    splits = load_mnist(data_root())
    return splits.x_test[:64], splits.y_test[:64]


@pytest.fixture(scope="module")
def digits(litert_model, mnist_test) -> np.ndarray:
    """The test digits as model inputs."""
    return litert_model.preprocessing.normalize(mnist_test[0])


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Real SST-2 test sentences."""
    return load_sst2(data_root()).test[0][:24]


def in_threads(calls: list[Callable[[], Any]], threads: int = CLIENTS) -> list[Any]:
    """Each call's result, from `threads` threads; the first `threads` calls start together (a barrier)."""
    barrier = threading.Barrier(min(threads, len(calls)))

    def run(index: int) -> Any:
        if index < barrier.parties:
            barrier.wait(timeout=TIMEOUT_S)
        return calls[index]()

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, index) for index in range(len(calls))]
        return [future.result(timeout=TIMEOUT_S) for future in futures]


def request_slices(count: int, sizes: tuple[int, ...], rows: int) -> list[slice]:
    """`count` slices of the digits, of the given sizes in turn, at spread offsets."""
    return [slice(start := (7 * i) % (rows - size), start + size) for i, size in zip(range(count), cycle(sizes))]


def assert_outputs(got: list[np.ndarray], slices: list[slice], digits: np.ndarray, model) -> None:
    for index, (output, part) in enumerate(zip(got, slices)):
        single = model.logits(digits[part])
        assert output.shape == single.shape, f"request {index}: outputs of shape {output.shape}, not {single.shape}"
        gap = float(np.abs(output - single).max())
        assert gap <= TOLERANCE, f"request {index} ({part}): batched outputs differ from a single call by {gap:.2e}"


# --- the micro-batcher on the real model -----------------------------------------------------------------


def test_concurrent_calls_get_the_outputs_of_single_calls(litert_model, digits):
    """16 threads of requests of 1 to 5 samples, and some over the maximum: each gets exactly its own
    outputs, and the requests shared far fewer model calls than there were requests."""
    model = RecordingModel(litert_model)
    batcher = MicroBatcher(model, BatchingConfig(max_batch_size=16, max_wait_ms=20.0))
    slices = request_slices(64, (1, 2, 3, 1, 5, 1, 20, 4), len(digits))
    got = in_threads([lambda part=part: batcher(digits[part]) for part in slices])
    assert_outputs(got, slices, digits, litert_model)
    assert len(model.calls) < len(slices) / 2, f"{len(slices)} requests made {len(model.calls)} model calls: no batches formed"
    assert max(model.calls) == 20 and set(model.calls) <= {1, 2, 4, 8, 16, 20}, (
        f"model calls of sizes {sorted(set(model.calls))}: batches must be padded to 1, 2, 4, 8 or 16 (or be one "
        "request over the maximum)"
    )


@pytest.mark.parametrize("rows, padded", [(1, 1), (3, 4), (5, 8), (9, 16), (17, 32), (32, 32)])
def test_padding_never_reaches_a_caller(litert_model, digits, rows, padded):
    """A lone request of `rows` samples runs padded to the next allowed size; the caller gets its own rows."""
    model = RecordingModel(litert_model)
    output = MicroBatcher(model, BatchingConfig(max_batch_size=32, max_wait_ms=0.0))(digits[:rows])
    assert model.calls == [padded], f"{rows} samples ran as batches of {model.calls}, expected one of {padded}"
    assert_outputs([output], [slice(0, rows)], digits, litert_model)


def test_allowed_sizes_are_powers_of_two_up_to_the_maximum():
    """The handful of shapes the interpreter is resized to; a maximum of 1 turns batching off."""
    assert BatchingConfig(max_batch_size=32).allowed_sizes() == [1, 2, 4, 8, 16, 32]
    assert BatchingConfig(max_batch_size=12).allowed_sizes() == [1, 2, 4, 8, 12]
    assert BatchingConfig(max_batch_size=1).allowed_sizes() == [1]
    assert not BatchingConfig(max_batch_size=1).enabled


def test_request_larger_than_the_maximum_batch(litert_model, digits):
    """A request over `max_batch_size` runs as one call of its own size, neither split nor refused."""
    model = RecordingModel(litert_model)
    output = MicroBatcher(model, BatchingConfig(max_batch_size=4))(digits[:10])
    assert model.calls == [10], f"a request of 10 samples ran as batches of {model.calls}, expected one call of 10"
    assert_outputs([output], [slice(0, 10)], digits, litert_model)


def test_a_model_error_reaches_every_waiting_caller_and_the_worker_goes_on(litert_model, digits):
    """Every request of a failing batch gets the model's error (none hangs); the next batches are answered."""
    model = RecordingModel(litert_model)
    batcher = MicroBatcher(model, BatchingConfig(max_batch_size=32, max_wait_ms=50.0))
    model.failing.set()

    def call(part: slice) -> Exception | np.ndarray:
        try:
            return batcher(digits[part])
        except RuntimeError as err:
            return err

    answers = in_threads([lambda i=i: call(slice(i, i + 1)) for i in range(8)], threads=8)
    assert all(isinstance(answer, RuntimeError) and "the model failed" in str(answer) for answer in answers), (
        f"every caller of a failing batch must get the model's error, got {answers}"
    )
    assert len(model.calls) < 8, f"8 requests made {len(model.calls)} calls: they never waited together"
    model.failing.clear()
    slices = [slice(i, i + 2) for i in range(0, 16, 2)]
    assert_outputs(in_threads([lambda part=part: batcher(digits[part]) for part in slices]), slices, digits, litert_model)


def test_a_bad_request_fails_alone(litert_model, digits):
    """Requests of another sample shape never share a call with good ones: the model's error is theirs only."""
    batcher = MicroBatcher(litert_model, BatchingConfig(max_batch_size=32, max_wait_ms=50.0))
    bad = np.zeros((1, 27, 27, 1), np.float32)

    def call(x: np.ndarray) -> Exception | np.ndarray:
        try:
            return batcher(x)
        except Exception as err:  # whatever the interpreter raises for a wrong shape is the bad caller's
            return err

    slices = [slice(i, i + 1) for i in range(7)]
    answers = in_threads([lambda: call(bad), *(lambda part=part: call(digits[part]) for part in slices)], threads=8)
    assert isinstance(answers[0], Exception), f"a (1, 27, 27, 1) input to a 28x28 model returned {answers[0]!r}"
    assert not any(isinstance(answer, Exception) for answer in answers[1:]), f"good requests failed: {answers[1:]}"
    assert_outputs(answers[1:], slices, digits, litert_model)


def test_the_model_lock_keeps_litert_right_under_threads(litert_model, digits):
    """Batching off: 16 threads call the one LiteRT interpreter directly with batch sizes that make it resize
    between calls; every answer equals the single-threaded one."""
    infer = MicroBatcher(litert_model, BatchingConfig(max_batch_size=1))
    slices = request_slices(320, (1, 3, 2, 5, 1, 4, 7), len(digits))
    expected = [litert_model.logits(digits[part]) for part in slices]
    got = in_threads([lambda part=part: infer(digits[part]) for part in slices])
    for index, (output, single) in enumerate(zip(got, expected)):
        assert output.shape == single.shape and np.abs(output - single).max() <= TOLERANCE, (
            f"request {index} ({slices[index]}): threaded answer differs from the single-threaded one"
        )


# --- a live server under a bounded mixed load --------------------------------------------------------------


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.reshape(pixels.shape[:2]).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def mixed_requests(mnist_test, sentences: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Distinct requests: digits as JSON pixels (both versions) and as PNG uploads, and SST-2 sentences."""
    images = mnist_test[0][:16]
    return [
        *(("/v1/models/mlp-mnist:predict", {"json": {"inputs": pixels.tolist()}}) for pixels in images[:8]),
        *(("/v1/models/mlp-mnist/versions/1:predict", {"json": {"inputs": pixels.tolist(), "top_k": 2}})
          for pixels in images[8:]),
        *(("/v1/models/mlp-mnist/versions/1:predict", {"files": {"image": ("digit.png", png(pixels), "image/png")}})
          for pixels in images[:8]),
        *(("/v1/models/text-cnn-sst2:predict", {"json": {"text": text}}) for text in sentences[:12]),
    ]


def scores(answer: dict[str, Any]) -> list[list[float]]:
    return [prediction["scores"] for prediction in answer["predictions"]]


@pytest.mark.parametrize("batching", [BatchingConfig(max_batch_size=32, max_wait_ms=2.0), BatchingConfig(max_batch_size=1)],
                         ids=["batching-on", "batching-off"])
def test_live_server_answers_a_mixed_load_right(repository, mnist_test, sentences, batching):
    """400 requests from 16 keep-alive clients: no 5xx, and every answer equals the one the same request got
    alone; the digits get their true labels (the model is 0.97 accurate, so nearly all)."""
    import requests
    from serve_fixtures import start_server

    server = start_server(repository, ServerConfig(batching=batching), threads=8)
    try:
        distinct = mixed_requests(mnist_test, sentences)
        with requests.Session() as session:
            alone = [session.post(server.url + path, timeout=TIMEOUT_S, **kwargs) for path, kwargs in distinct]
        assert all(r.status_code == 200 for r in alone), [r.text for r in alone if r.status_code != 200]
        expected = [r.json() for r in alone]
        labels = [answer["predictions"][0]["label"] for answer in expected[:16]]
        right = sum(label == str(truth) for label, truth in zip(labels, mnist_test[1][:16]))
        assert right >= 14, f"the served model read {right}/16 real test digits right: {labels}"
        order = [i % len(distinct) for i in range(400)]
        sessions = threading.local()

        def send(index: int) -> tuple[int, int, Any]:
            if not hasattr(sessions, "session"):
                sessions.session = requests.Session()
            path, kwargs = distinct[index]
            response = sessions.session.post(server.url + path, timeout=TIMEOUT_S, **kwargs)
            return index, response.status_code, response.json()

        results = in_threads([lambda i=i: send(i) for i in order])
    finally:
        server.close()
    failed = [(distinct[i][0], status, body) for i, status, body in results if status != 200]
    assert not failed, f"{len(failed)} of {len(results)} requests failed under load, e.g. {failed[:3]}"
    for index, _, answer in results:
        gap = np.abs(np.asarray(scores(answer)) - np.asarray(scores(expected[index]))).max()
        assert gap <= TOLERANCE and answer["predictions"][0]["label"] == expected[index]["predictions"][0]["label"], (
            f"{distinct[index][0]} request {index}: under load the answer moved by {gap:.2e} from the one it got alone"
        )
