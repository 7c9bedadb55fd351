"""The Flask app: a JSON API over a model repository, and the web page at `/`.

    GET  /healthz
    GET  /v1/models                                 every model, its versions, task, inputs, export figures
    GET  /v1/models/NAME[/versions/V]
    POST /v1/models/NAME[/versions/V]:predict       JSON ({"inputs": ...}, {"text": ...}) or an image upload

Every error is JSON, `{"error": "<one line>", "status": <code>}`, with a 4xx status for anything a request
did wrong; nothing from a traceback reaches a client. With an API key set, /v1/ needs it (header
`X-API-Key` or `Authorization: Bearer`), compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from kerasdl.errors import KerasdlError
from kerasdl.serve.batching import BatchingConfig, MicroBatcher
from kerasdl.serve.inputs import BadRequest, Body, Limits, shown
from kerasdl.serve.predictors import predict
from kerasdl.serve.repository import VERSION, InvalidName, ModelNotFound, ModelRepository, Servable

log = logging.getLogger("kerasdl.serve")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Segment(BaseConverter):
    """A path segment without ':', so `NAME:predict` is never read as a model name (a GET on it is a 405)."""

    regex = "[^/:]+"


@dataclass(frozen=True)
class ServerConfig:
    """How the app answers: request limits, micro-batching, and the API key (None: no key needed)."""

    limits: Limits = field(default_factory=Limits)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    api_key: str | None = None


def create_app(repository: ModelRepository, config: ServerConfig | None = None) -> Flask:
    """The app over `repository` (already loaded); one micro-batcher per loaded model when batching is on."""
    config = config or ServerConfig()
    app = Flask("kerasdl.serve", static_folder=str(resources.files("kerasdl.serve") / "static"),
                static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=config.limits.max_body_bytes, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.url_map.converters["segment"] = Segment
    batchers = {
        id(s): MicroBatcher(s.model, config.batching)
        for s in repository.servables() if s.model is not None and config.batching.enabled
    }

    def infer_for(servable: Servable):
        return batchers.get(id(servable), servable.model.logits)

    @app.before_request
    def require_key() -> Response | None:
        if config.api_key is None or not request.path.startswith("/v1/"):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        given = request.headers.get("X-API-Key") or (token if scheme == "Bearer" else "")
        if not hmac.compare_digest(given.encode(), config.api_key.encode()):
            return _error("missing or wrong API key (send it as the X-API-Key header)", 401)
        return None

    @app.after_request
    def secure(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/v1/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        messages = {413: f"request body over the limit of {config.limits.max_body_bytes:,} bytes",
                    404: "no such endpoint: see GET /v1/models", 405: f"method {request.method} not allowed here"}
        return _error(messages.get(err.code, err.description or err.name), err.code or 500)

    @app.errorhandler(KerasdlError)
    def user_error(err: KerasdlError) -> Response:
        status = 400 if isinstance(err, InvalidName) else 404 if isinstance(err, ModelNotFound) else getattr(err, "status", 400)
        return _error(str(err), status)

    @app.errorhandler(Exception)
    def internal_error(err: Exception) -> Response:
        log.exception("error answering %s %s", request.method, request.path)
        return _error(f"internal error ({type(err).__name__}); the server logged it", 500)

    @app.get("/")
    def page() -> Response:
        return app.send_static_file("index.html")

    @app.get("/healthz")
    def health() -> Response:
        loaded = sum(s.model is not None for s in repository.servables())
        return jsonify(status="ok", models=loaded)

    @app.get("/v1/models")
    def list_models() -> Response:
        return jsonify(models=[repository.describe(name) for name in repository.names()],
                       limits=config.limits.to_json(), api_key_required=config.api_key is not None)

    @app.get("/v1/models/<segment:name>")
    def describe_model(name: str) -> Response:
        return jsonify(repository.describe(repository.get(name).name))

    @app.get("/v1/models/<segment:name>/versions/<segment:version>")
    def describe_version(name: str, version: str) -> Response:
        servable = repository.get(name, _version(version))
        return jsonify(name=servable.name, **servable.describe())

    @app.post("/v1/models/<segment:name>:predict")
    def predict_latest(name: str) -> Response:
        return _predict(repository.get(name))

    @app.post("/v1/models/<segment:name>/versions/<segment:version>:predict")
    def predict_version(name: str, version: str) -> Response:
        return _predict(repository.get(name, _version(version)))

    def _predict(servable: Servable) -> Response:
        if servable.model is None:
            return _error(f"model {servable.name!r} version {servable.version} failed to load: {servable.error}", 503)
        result = predict(servable.model, _body(), infer_for(servable), config.limits)
        return jsonify(model=servable.name, version=servable.version, task=servable.model.task, **result)

    return app


def _version(text: str) -> int:
    if not VERSION.fullmatch(text):
        raise BadRequest(f"version {shown(text)} is not a number")
    return int(text)


def _body() -> Body:
    """The request body as JSON (an object) or as a multipart upload of one image plus optional fields."""
    if request.files:
        upload = request.files.get("image") or next(iter(request.files.values()))
        fields = {key: _field(value) for key, value in request.form.items()}
        return Body(fields, upload.read())
    raw = request.get_data(cache=False)
    if not raw:
        raise BadRequest("empty body: send JSON (Content-Type: application/json) or an image upload (multipart)")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise BadRequest(f"malformed JSON: {str(err).splitlines()[0] if str(err) else 'too deeply nested'}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the JSON body must be an object, not {type(data).__name__}")
    return Body(data)


def _field(value: str) -> Any:
    """A multipart form field: a number when it reads as one (top_k=3), else the text (also when it is JSON
    nested too deeply to parse)."""
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


def _error(message: str, status: int) -> Response:
    response = jsonify(error=message, status=status)
    response.status_code = status
    return response
