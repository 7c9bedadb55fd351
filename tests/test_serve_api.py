"""The serving API (kerasdl.serve.app): real answers from the fixture repository's models, a 4xx JSON error
for every bad request (never a 500, never a file opened for a name taken from a request), and the security
defaults: headers, the API key, the loopback-only binding."""

from __future__ import annotations

import builtins
import contextlib
import hmac
import io
import json
import os
import pathlib
import shutil
import struct
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
import requests

from kerasdl.errors import KerasdlError
from kerasdl.serve.app import ServerConfig, create_app
from kerasdl.serve.inputs import Limits
from kerasdl.serve.repository import ModelRepository, publish
from kerasdl.serve.server import api_key_from, check_binding, is_loopback
from serve_fixtures import start_server

pytest_plugins = ["serve_fixtures"]

DIGIT = "/v1/models/mlp-mnist:predict"
SENTIMENT = "/v1/models/text-cnn-sst2:predict"
POSITIVE = "a gorgeous, moving and beautifully acted film, one of the best of the year"
NEGATIVE = "a dull, tedious and boring mess; the worst film of the year"


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """The first 64 MNIST test digits as raw uint8 pixels (n, 28, 28, 1), and their labels."""
    from kerasdl.data.base import data_root
    from kerasdl.data.idx import read_idx
    from kerasdl.data.mnist import FILES

    folder = data_root() / "mnist"
    return read_idx(folder / FILES["x_test"])[:64, :, :, np.newaxis], read_idx(folder / FILES["y_test"])[:64]


@pytest.fixture(scope="module")
def api(repository):
    """One app over the session's repository for the module (default settings), as a test client."""
    return create_app(repository).test_client()


def png(pixels: np.ndarray) -> bytes:
    """8-bit pixels (H, W, 1) as PNG bytes, as a user's file would hold them."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.reshape(pixels.shape[:2]).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def zeros_png(width: int, height: int) -> bytes:
    """A valid gray PNG of `width` x `height` black pixels, written without ever holding its pixels: the
    deflate stream is one compressed band of rows repeated (each ends in a full flush), so a 20,000 x 20,000
    image is ~400 KB and takes milliseconds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    band_rows = next(rows for rows in (50, 10, 1) if height % rows == 0)
    band = bytes((width + 1) * band_rows)  # each row: filter byte 0, then the pixels
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = deflate.compress(band) + deflate.flush(zlib.Z_FULL_FLUSH)
    size = len(band) * (height // band_rows)
    adler = ((size % 65521) << 16) | 1  # adler32 of `size` zero bytes
    stream = b"\x78\xda" + compressed * (height // band_rows) + deflate.flush() + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def upload(data: bytes, name: str = "digit.png", **fields) -> dict:
    """A multipart body for the test client: the file in field `image`, plus form fields."""
    return {"data": {"image": (io.BytesIO(data), name), **fields}, "content_type": "multipart/form-data"}


def labels(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [p["label"] for p in response.get_json()["predictions"]]


def edge_labels(model_repository, version: int, pixels: np.ndarray) -> list[str]:
    """What the TF-free runner itself answers for these raw pixels, through the version's artifact."""
    from kerasdl.edge.runner import EdgeModel

    folder = model_repository / "mlp-mnist" / str(version)
    model = EdgeModel(folder / json.loads((folder / "export.json").read_text())["artifact"])
    return [model.preprocessing.class_names[i] for i in model.predict(pixels.astype(np.float32)).argmax(axis=1)]


def assert_json_error(status: int, body: dict, expected_status: int, fragment: str) -> None:
    assert status == expected_status, f"expected {expected_status}, got {status}: {body}"
    assert set(body) == {"error", "status"} and body["status"] == expected_status, body
    assert fragment in body["error"], f"{fragment!r} not in the error {body['error']!r}"
    assert "\n" not in body["error"] and "Traceback" not in body["error"], body["error"]


# --- listing -------------------------------------------------------------------------------------------------


def test_healthz_counts_the_loaded_models(api):
    response = api.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "models": 3}


def test_models_lists_every_version_with_its_export_figures(api, model_repository):
    listing = api.get("/v1/models").get_json()
    assert [m["name"] for m in listing["models"]] == ["mlp-mnist", "text-cnn-sst2"]
    assert listing["api_key_required"] is False and listing["limits"] == Limits().to_json()
    mnist = listing["models"][0]
    assert mnist["latest_version"] == 2 and [v["version"] for v in mnist["versions"]] == [2, 1]
    for entry in mnist["versions"]:
        report = json.loads((model_repository / "mlp-mnist" / str(entry["version"]) / "export.json").read_text())
        assert entry["state"] == "AVAILABLE" and entry["task"] == "classification"
        assert entry["backend"] == {1: "tflite", 2: "onnx"}[entry["version"]]
        assert entry["format"] == report["format"] and entry["bytes"] == report["bytes"] > 10_000
        assert entry["parity"] == report["parity"] and entry["latency_ms_batch1"] == report["latency_ms_batch1"]
        assert entry["classes"] == [str(d) for d in range(10)]
        assert entry["input"]["kind"] == "image" and entry["input"]["shape"] == [28, 28, 1]
        assert entry["source"] == {"model": "mlp", "data": "mnist"}
    text = listing["models"][1]
    assert text["latest_version"] == 1 and text["versions"][0]["input"]["kind"] == "text"
    assert text["versions"][0]["source"]["model"] == "text-cnn" and len(text["versions"][0]["classes"]) == 2


def test_one_model_and_one_version_are_described_alone(api):
    listing = api.get("/v1/models").get_json()["models"][0]
    assert api.get("/v1/models/mlp-mnist").get_json() == listing
    version = api.get("/v1/models/mlp-mnist/versions/1").get_json()
    assert version == {"name": "mlp-mnist", **listing["versions"][1]} and version["backend"] == "tflite"


# --- classification of digits ---------------------------------------------------------------------------------


def test_an_uploaded_png_digit_gets_its_true_label(api, mnist_test):
    pixels, truth = mnist_test
    answer = api.post(DIGIT, **upload(png(pixels[0]))).get_json()
    assert (answer["model"], answer["version"], answer["task"]) == ("mlp-mnist", 2, "classification")
    prediction, = answer["predictions"]
    assert prediction["label"] == str(truth[0]), f"the test digit {truth[0]} was read as {prediction['label']}"
    assert len(prediction["scores"]) == 10 and abs(sum(prediction["scores"]) - 1.0) < 1e-3
    assert [t["label"] for t in prediction["top_k"]][0] == prediction["label"] and len(prediction["top_k"]) == 3


def test_pixel_inputs_one_sample_and_a_batch_match_the_edge_runner(api, mnist_test, model_repository):
    pixels, truth = mnist_test
    one = labels(api.post(DIGIT, json={"inputs": pixels[0].tolist()}))
    batch = labels(api.post(DIGIT, json={"inputs": pixels[:8].tolist()}))
    assert one == batch[:1] and len(batch) == 8
    assert batch == edge_labels(model_repository, 2, pixels[:8]), "the server and the runner disagree"
    assert sum(label == str(t) for label, t in zip(batch, truth[:8])) >= 7, f"{batch} vs {truth[:8]}"


def test_version_1_tflite_and_the_default_onnx_agree(api, mnist_test, model_repository):
    pixels, _ = mnist_test
    latest = api.post(DIGIT, json={"inputs": pixels[:16].tolist()}).get_json()
    first = api.post("/v1/models/mlp-mnist/versions/1:predict", json={"inputs": pixels[:16].tolist()}).get_json()
    assert (latest["version"], first["version"]) == (2, 1)
    assert [p["label"] for p in first["predictions"]] == [p["label"] for p in latest["predictions"]]
    assert [p["label"] for p in first["predictions"]] == edge_labels(model_repository, 1, pixels[:16])
    assert np.allclose([p["scores"] for p in first["predictions"]], [p["scores"] for p in latest["predictions"]],
                       atol=1e-3)


def test_top_k_is_honoured_in_json_and_in_a_form_field(api, mnist_test):
    pixels, _ = mnist_test
    for response in (api.post(DIGIT, json={"inputs": pixels[1].tolist(), "top_k": 5}),
                     api.post(DIGIT, **upload(png(pixels[1]), top_k="5"))):
        prediction = response.get_json()["predictions"][0]
        scores = [t["score"] for t in prediction["top_k"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True), prediction["top_k"]
        assert prediction["top_k"][0]["label"] == prediction["label"]


# --- classification of texts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body, count", [
    ({"text": POSITIVE}, 1),
    ({"texts": [POSITIVE, NEGATIVE]}, 2),
    ({"inputs": [POSITIVE, NEGATIVE, POSITIVE]}, 3),
])
def test_texts_get_one_prediction_each(api, body, count):
    answer = api.post(SENTIMENT, json=body).get_json()
    assert len(answer["predictions"]) == count and answer["model"] == "text-cnn-sst2", answer


def test_a_clearly_positive_and_a_clearly_negative_sentence_are_classified_right(api):
    answer = api.post(SENTIMENT, json={"texts": [POSITIVE, NEGATIVE]}).get_json()
    assert [p["label"] for p in answer["predictions"]] == ["positive", "negative"], answer


# --- other backends: a run directory and a SavedModel ---------------------------------------------------------


def backend_labels(repository: ModelRepository, pixels: np.ndarray) -> tuple[str, list[str]]:
    """The only model's backend and its labels for `pixels`, through the API."""
    name, = repository.names()
    servable = repository.get(name)
    answer = create_app(repository).test_client().post(f"/v1/models/{name}:predict", json={"inputs": pixels.tolist()})
    return servable.model.backend, labels(answer)


def test_a_run_directory_serves_in_safe_mode_with_the_tflite_labels(api, mnist_test, model_repository, monkeypatch):
    import keras

    loads = []
    real_load = keras.saving.load_model
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    pixels, _ = mnist_test
    run = ModelRepository.load(model_repository.parent / "runs" / "mlp-mnist")
    assert loads == [{"safe_mode": True}], f"model.keras loaded with {loads}"
    backend, found = backend_labels(run, pixels[:16])
    assert backend == "keras"
    assert found == labels(api.post("/v1/models/mlp-mnist/versions/1:predict", json={"inputs": pixels[:16].tolist()}))


def test_a_savedmodel_export_serves_the_tflite_labels(api, mnist_test, model_repository, tmp_path):
    from kerasdl.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["export", str(model_repository.parent / "runs" / "mlp-mnist"), "--format", "savedmodel",
                     "--out", str(tmp_path / "savedmodel"), "--latency-runs", "2"])
    assert code == 0
    pixels, _ = mnist_test
    backend, found = backend_labels(ModelRepository.load(tmp_path / "savedmodel"), pixels[:16])
    assert backend == "savedmodel"
    assert found == labels(api.post("/v1/models/mlp-mnist/versions/1:predict", json={"inputs": pixels[:16].tolist()}))


def test_publishing_again_adds_the_next_version(model_repository, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(model_repository / "mlp-mnist", root / "mlp-mnist")
    export = model_repository / "mlp-mnist" / "1"
    assert publish(export, root, "mlp-mnist") == root / "mlp-mnist" / "3"
    assert publish(export, root, "digits") == root / "digits" / "1"
    assert publish(export, root, "digits") == root / "digits" / "2"
    served = ModelRepository.load(root)
    assert served.get("mlp-mnist").version == 3 and served.get("digits").version == 2
    with pytest.raises(KerasdlError, match="cannot name a served model"):
        publish(export, root, "../escaped")
    assert not (tmp_path / "escaped").exists()


# --- bad requests --------------------------------------------------------------------------------------------


def pixels_json(value: str) -> str:
    """A raw JSON body: one 28 x 28 x 1 sample of zeros with `value` (JSON text) as its first pixel."""
    rows = [[["0"]] * 28 for _ in range(28)]
    rows[0][0] = [value]
    return '{"inputs": [' + ", ".join("[" + ", ".join(f"[{p[0]}]" for p in row) + "]" for row in rows) + "]}"


def sample(value) -> list:
    """One 28 x 28 x 1 sample filled with `value`."""
    return [[[value] for _ in range(28)] for _ in range(28)]


JSON = "application/json"
BAD_REQUESTS = {  # name: (method, path, request keywords (test client's), status, what the error names)
    "malformed JSON": ("post", DIGIT, {"data": '{"inputs": [1, 2', "content_type": JSON}, 400, "malformed JSON"),
    "JSON not an object": ("post", DIGIT, {"data": "[1, 2, 3]", "content_type": JSON}, 400,
                           "must be an object, not list"),
    "empty body": ("post", DIGIT, {"data": b"", "content_type": JSON}, 400, "empty body"),
    "missing field": ("post", DIGIT, {"json": {"pixels": [1]}}, 400, "missing field 'inputs'"),
    "wrong shape": ("post", DIGIT, {"json": {"inputs": [[1, 2], [3, 4]]}}, 400, "shape [2, 2]; expected [28, 28, 1]"),
    "ragged lists": ("post", DIGIT, {"json": {"inputs": [[1, 2], [3]]}}, 400, "one rectangular shape"),
    "strings": ("post", DIGIT, {"json": {"inputs": sample("a")}}, 400, "expected numbers, got strings"),
    "numbers as strings": ("post", DIGIT, {"json": {"inputs": sample("7")}}, 400, "expected numbers, got strings"),
    "booleans": ("post", DIGIT, {"json": {"inputs": sample(True)}}, 400, "expected numbers, got booleans"),
    "nulls": ("post", DIGIT, {"json": {"inputs": sample(None)}}, 400, "expected numbers, got nulls"),
    "NaN": ("post", DIGIT, {"data": pixels_json("NaN"), "content_type": JSON}, 400, "NaN or infinite"),
    "Infinity": ("post", DIGIT, {"data": pixels_json("-Infinity"), "content_type": JSON}, 400, "NaN or infinite"),
    "overflowing number": ("post", DIGIT, {"data": pixels_json("1e999"), "content_type": JSON}, 400, "NaN or infinite"),
    "beyond float32": ("post", DIGIT, {"data": pixels_json("1e300"), "content_type": JSON}, 400, "beyond float32"),
    "too many samples": ("post", DIGIT, {"json": {"inputs": [sample(0)] * 257}}, 413,
                         "257 samples in one request; at most 256"),
    "top_k zero": ("post", SENTIMENT, {"json": {"text": "fine", "top_k": 0}}, 400, "top_k: 0 is outside [1, 2]"),
    "top_k a string": ("post", SENTIMENT, {"json": {"text": "fine", "top_k": "3"}}, 400, "top_k: expected an integer"),
    "top_k huge": ("post", SENTIMENT, {"data": '{"text": "fine", "top_k": 1' + "0" * 400 + "}", "content_type": JSON},
                   400, "is outside [1, 2]"),
    "text too long": ("post", SENTIMENT, {"json": {"text": "good " * 500}}, 413,
                      "a text of 2,500 characters; at most 2,000"),
    "too many texts": ("post", SENTIMENT, {"json": {"texts": ["good"] * 65}}, 400,
                       "65 texts in one request; at most 64"),
    "empty text": ("post", SENTIMENT, {"json": {"text": "   "}}, 400, "an empty text"),
    "text not a string": ("post", SENTIMENT, {"json": {"text": 5}}, 400, "expected strings, got int"),
    "text missing": ("post", SENTIMENT, {"json": {"sentence": "good"}}, 400, "missing field"),
    "unknown model": ("post", "/v1/models/resnet:predict", {"json": {}}, 404,
                      "no model named 'resnet'; serving: mlp-mnist, text-cnn-sst2"),
    "unknown version": ("post", "/v1/models/mlp-mnist/versions/7:predict", {"json": {}}, 404,
                        "model 'mlp-mnist' has no version 7; versions: 1, 2"),
    "version abc": ("get", "/v1/models/mlp-mnist/versions/abc", {}, 400, "version 'abc' is not a number"),
    "version superscript": ("post", "/v1/models/mlp-mnist/versions/%C2%B2:predict", {"json": {}}, 400,
                            "version '²' is not a number"),
    "GET on predict": ("get", DIGIT, {}, 405, "method GET not allowed"),
    "DELETE a model": ("delete", "/v1/models/mlp-mnist", {}, 405, "method DELETE not allowed"),
    "unknown endpoint": ("get", "/v2/models", {}, 404, "no such endpoint"),
}
PATH_LIKE = {  # a model name that is a path: refused before any lookup, and no file is opened
    "encoded slashes": ("post", "/v1/models/..%2F..%2Fetc%2Fpasswd:predict", 404, "no such endpoint"),
    "encoded slashes, described": ("get", "/v1/models/..%2F..%2Fetc%2Fpasswd", 404, "no such endpoint"),
    "dot dot": ("post", "/v1/models/..:predict", 400, "'..' is not a model name"),
    "encoded dot dot": ("get", "/v1/models/%2E%2E", 400, "'..' is not a model name"),
    "hidden": ("post", "/v1/models/.hidden:predict", 400, "'.hidden' is not a model name"),
    "hidden version": ("get", "/v1/models/.hidden/versions/1", 400, "'.hidden' is not a model name"),
    "dots inside": ("post", "/v1/models/cnn..mnist:predict", 400, "not a model name"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=str)
def test_a_bad_request_is_a_4xx_json_error_naming_the_problem(api, case):
    method, path, keywords, status, fragment = BAD_REQUESTS[case]
    response = getattr(api, method)(path, **keywords)
    assert response.is_json, response.data[:200]
    assert_json_error(response.status_code, response.get_json(), status, fragment)


@pytest.fixture
def opened_files(monkeypatch) -> list:
    """Every file opened while the test runs (through open, io.open, os.open or Path.open)."""
    opened = []

    def recording(real):
        return lambda *args, **kwargs: opened.append(args[0]) or real(*args, **kwargs)

    for owner, name in ((builtins, "open"), (io, "open"), (os, "open"), (pathlib.Path, "open")):
        monkeypatch.setattr(owner, name, recording(getattr(owner, name)))
    return opened


@pytest.mark.parametrize("case", PATH_LIKE, ids=str)
def test_a_path_like_model_name_is_refused_without_opening_a_file(api, opened_files, case):
    method, path, status, fragment = PATH_LIKE[case]
    response = getattr(api, method)(path, json={"inputs": [0]} if method == "post" else None)
    body = json.loads(response.data)
    assert opened_files == [], f"{path} opened {opened_files}"
    assert_json_error(response.status_code, body, status, fragment)


def test_an_upload_that_is_not_an_image_is_refused(api):
    for data, fragment in ((b"hello, I am not a picture", "the upload is not an image"),
                           (zeros_png(28, 28)[:60], "the image cannot be decoded")):
        response = api.post(DIGIT, **upload(data))
        assert_json_error(response.status_code, response.get_json(), 400, fragment)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A real PNG of 20,000 x 20,000 pixels (400 MB once decoded), a few hundred KB on the wire."""
    data = zeros_png(20_000, 20_000)
    assert len(data) < 1_000_000
    return data


@pytest.mark.parametrize("size, fragment", [
    ((20_000, 20_000), "image too large: Image size (400000000 pixels) exceeds limit"),  # Pillow's own bound
    ((6_000, 5_000), "image of 6,000 x 5,000 pixels; at most 25,000,000 pixels"),  # ours, below Pillow's
])
def test_a_decompression_bomb_is_refused_before_decoding(api, bomb, monkeypatch, size, fragment):
    from PIL import ImageFile

    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size))
    data = bomb if size == (20_000, 20_000) else zeros_png(*size)
    tracemalloc.start()
    started = time.perf_counter()
    response = api.post(DIGIT, **upload(data))
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_json_error(response.status_code, response.get_json(), 413, fragment)
    assert decoded == [], "the image was decoded"
    assert elapsed < 2.0 and peak < 30_000_000, f"{elapsed:.2f} s, {peak / 1e6:.0f} MB at peak"


def test_a_body_over_the_limit_is_a_413_json_error(repository):
    small = create_app(repository, ServerConfig(limits=Limits(max_body_bytes=1000))).test_client()
    for keywords in ({"data": b"{" + b" " * 1000 + b"}", "content_type": JSON}, upload(bytes(2000))):
        response = small.post(DIGIT, **keywords)
        assert_json_error(response.status_code, response.get_json(), 413, "over the limit of 1,000 bytes")


@pytest.fixture(scope="module")
def live_url(repository) -> Iterator[str]:
    with start_server(repository, ServerConfig(), threads=4) as server:
        yield server.url


def as_requests(keywords: dict) -> dict:
    """A case's test-client keywords for `requests` (a raw body's content type becomes a header)."""
    if "content_type" not in keywords:
        return keywords
    return {"data": keywords["data"], "headers": {"Content-Type": keywords["content_type"]}}


def test_a_live_server_answers_bad_requests_with_json_and_keeps_serving(live_url, mnist_test, bomb):
    cases = [*BAD_REQUESTS.values(), *((method, path, {}, status, fragment)
                                       for method, path, status, fragment in PATH_LIKE.values())]
    uploads = [(b"not a picture", 400, "the upload is not an image"), (bomb, 413, "image too large")]
    cases += [("post", DIGIT, {"files": {"image": ("x.png", data)}}, status, fragment)
              for data, status, fragment in uploads]
    for method, path, keywords, status, fragment in cases:
        response = requests.request(method, live_url + path, timeout=10, **as_requests(keywords))
        assert response.headers["Content-Type"] == "application/json", f"{method} {path}: {response.text[:200]}"
        assert_json_error(response.status_code, response.json(), status, fragment)
    pixels, truth = mnist_test
    answer = requests.post(live_url + DIGIT, files={"image": ("digit.png", png(pixels[0]))}, timeout=10).json()
    assert answer["predictions"][0]["label"] == str(truth[0])


def test_a_live_server_answers_a_body_over_the_limit_with_json(repository, mnist_test):
    """As `kerasdl serve` runs it: waitress reads a body a little over the limit, and the app refuses it."""
    with start_server(repository, ServerConfig(limits=Limits(max_body_bytes=100_000)), threads=4) as server:
        url = server.url
        for body in (b" " * 100_001, b" " * 250_000):
            response = requests.post(url + DIGIT, data=body, headers={"Content-Type": JSON}, timeout=10)
            assert response.headers["Content-Type"] == "application/json", response.text[:200]
            assert_json_error(response.status_code, response.json(), 413, "over the limit of 100,000 bytes")
        pixels, truth = mnist_test
        answer = requests.post(url + DIGIT, json={"inputs": pixels[0].tolist()}, timeout=10).json()
    assert answer["predictions"][0]["label"] == str(truth[0])


# --- security ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [("get", "/"), ("get", "/v1/models"), ("post", DIGIT),
                                          ("get", "/nowhere"), ("get", DIGIT)])
def test_every_response_carries_the_security_headers(api, method, path):
    headers = getattr(api, method)(path).headers
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.fixture
def keyed(repository):
    return create_app(repository, ServerConfig(api_key="s3cret")).test_client()


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": "s3cret!"},
                                     {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
                                     {"Authorization": "s3cret"}])
def test_without_the_right_key_the_api_answers_401(keyed, headers):
    for response in (keyed.get("/v1/models", headers=headers), keyed.post(DIGIT, headers=headers, json={})):
        assert_json_error(response.status_code, response.get_json(), 401, "missing or wrong API key")
        assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("headers", [{"X-API-Key": "s3cret"}, {"Authorization": "Bearer s3cret"}])
def test_with_the_right_key_the_api_answers(keyed, mnist_test, headers):
    listing = keyed.get("/v1/models", headers=headers)
    assert listing.status_code == 200 and listing.get_json()["api_key_required"] is True
    pixels, truth = mnist_test
    assert labels(keyed.post(DIGIT, headers=headers, json={"inputs": pixels[0].tolist()})) == [str(truth[0])]


def test_health_and_the_page_need_no_key(keyed):
    assert keyed.get("/healthz").status_code == 200 and keyed.get("/").status_code == 200


def test_the_key_is_compared_in_constant_time(keyed, monkeypatch):
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    assert keyed.get("/v1/models", headers={"X-API-Key": "guess"}).status_code == 401
    assert compared == [(b"guess", b"s3cret")]


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.9", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.10", False), ("no-such-host.invalid", False)])
def test_only_loopback_addresses_bind_without_a_key(host, loopback):
    assert is_loopback(host) is loopback
    check_binding(host, api_key="k")
    if loopback:
        check_binding(host, api_key=None)
    else:
        with pytest.raises(KerasdlError, match=f"refusing to serve on {host} without an API key"):
            check_binding(host, api_key=None)


def test_the_api_key_is_read_from_an_environment_variable(monkeypatch):
    monkeypatch.setenv("KERASDL_TEST_KEY", "s3cret")
    monkeypatch.setenv("KERASDL_EMPTY_KEY", "")
    assert api_key_from("KERASDL_TEST_KEY") == "s3cret" and api_key_from(None) is None
    with pytest.raises(KerasdlError, match="KERASDL_EMPTY_KEY: that environment variable is unset or empty"):
        api_key_from("KERASDL_EMPTY_KEY")
