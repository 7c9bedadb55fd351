"""A request's inputs, checked before any model sees them: every way a body can be wrong is a `BadRequest`
(a 4xx with one line naming the problem), so no request reaches a model it could crash.

JSON bodies: `{"inputs": [...]}` (arrays of numbers, or a list of texts), `{"text": "..."}`, `{"texts": [...]}`,
`{"rows": [{column: value}, ...]}` (a table's rows) and the task's options. Multipart bodies: one image file (field `image`). Images are opened lazily and their
size checked before a pixel is decoded, so a decompression bomb (a tiny PNG of 20,000 x 20,000 pixels) is
refused without being expanded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kerasdl.errors import KerasdlError


NOT_NUMBERS = {"U": "strings", "b": "booleans", "O": "nulls, objects or integers too large for a number"}  # dtype kinds


class BadRequest(KerasdlError):
    """A request the server refuses: `status` (4xx) and the message sent back."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. The body limit is Flask's MAX_CONTENT_LENGTH (413 beyond it)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 25_000_000  # 5,000 x 5,000
    max_text_chars: int = 2_000
    max_texts: int = 64
    max_samples: int = 256
    max_new_tokens: int = 500

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Body:
    """A parsed request body: its JSON object (empty for an upload) and an uploaded image's bytes, if any."""

    json: dict[str, Any]
    image: bytes | None = None


def texts(body: Body, limits: Limits, field: str = "text") -> list[str]:
    """The texts of `{field: str}`, `{field + "s": [str]}` or `{"inputs": [str]}`, each non-empty and short
    enough."""
    data = body.json
    if field in data:
        found = [data[field]]
    elif f"{field}s" in data:
        found = data[f"{field}s"]
    elif "inputs" in data:
        found = data["inputs"]
    else:
        raise BadRequest(f"missing field: send {{\"{field}\": \"...\"}} or {{\"inputs\": [\"...\", ...]}}")
    if isinstance(found, str):
        found = [found]
    if not isinstance(found, list) or not found:
        raise BadRequest(f"{field}: expected a string or a non-empty list of strings")
    if len(found) > limits.max_texts:
        raise BadRequest(f"{len(found)} texts in one request; at most {limits.max_texts}")
    for text in found:
        if not isinstance(text, str):
            raise BadRequest(f"{field}: expected strings, got {type(text).__name__}")
        if not text.strip():
            raise BadRequest(f"{field}: an empty text")
        if len(text) > limits.max_text_chars:
            raise BadRequest(f"a text of {len(text):,} characters; at most {limits.max_text_chars:,}", 413)
    return found


def array(body: Body, shape: tuple[int, ...], limits: Limits, field: str = "inputs") -> np.ndarray:
    """`{field: nested numbers}` as float32, one sample of `shape` or a batch of them: (n, *shape)."""
    if field not in body.json:
        raise BadRequest(f"missing field {field!r}: send {{\"{field}\": [...]}} with numbers of shape {list(shape)}")
    try:
        values = np.asarray(body.json[field])  # no dtype: "7", true and null stay what they are, and are refused
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{field}: expected a (nested) list of numbers of one rectangular shape") from None
    if values.dtype.kind not in "fiu":
        raise BadRequest(f"{field}: expected numbers, got {NOT_NUMBERS.get(values.dtype.kind, 'other values')}")
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise BadRequest(f"{field}: holds NaN or infinite values (or numbers beyond float32's range)")
    if values.shape == shape:
        values = values[np.newaxis]
    if values.shape[1:] != shape or not len(values):
        raise BadRequest(f"{field}: shape {list(values.shape)}; expected {list(shape)} or [n, {', '.join(map(str, shape))}]")
    if len(values) > limits.max_samples:
        raise BadRequest(f"{len(values)} samples in one request; at most {limits.max_samples}", 413)
    return values


def table_rows(body: Body, limits: Limits) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """`{"rows": [{column: value}, ...]}` (or `"inputs"`) as a CSV would give it: a header (every column any row
    names) and rows of cells as text; null, or a column a row lacks, is a missing cell."""
    rows = body.json.get("rows", body.json.get("inputs"))
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise BadRequest('rows: expected {"rows": [{"column": value, ...}, ...]}, one object per row')
    if len(rows) > limits.max_samples:
        raise BadRequest(f"{len(rows)} rows in one request; at most {limits.max_samples}", 413)
    header = tuple(dict.fromkeys(name for row in rows for name in row))
    return header, [tuple(table_cell(row.get(name), name) for name in header) for row in rows]


def table_cell(value: Any, column: str) -> str:
    """A JSON value as a CSV cell: a string stripped, a number as Python writes it (exactly), null as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"rows: column {shown(column)} holds {shown(value)}; expected a number, a string or null")
    try:
        return repr(value)
    except ValueError:  # an integer past Python's digit limit for text
        raise BadRequest(f"rows: column {shown(column)} holds a number too long to read") from None


def image(body: Body, limits: Limits, channels: int):
    """The uploaded image as a PIL image in gray (1 channel) or RGB, refused before decoding when too large."""
    from PIL import Image, UnidentifiedImageError

    if body.image is None:
        raise BadRequest("missing image: upload one as multipart/form-data field 'image'")
    try:
        opened = Image.open(io.BytesIO(body.image))  # reads the header only
    except Image.DecompressionBombError as err:  # Pillow's own bound, far above ours, on some formats
        raise BadRequest(f"image too large: {str(err).splitlines()[0]}", 413) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadRequest("the upload is not an image (PNG, JPEG, GIF, BMP or WebP)") from None
    width, height = opened.size
    if width * height > limits.max_image_pixels:
        raise BadRequest(
            f"image of {width:,} x {height:,} pixels; at most {limits.max_image_pixels:,} pixels", 413
        )
    try:
        opened.load()
        return opened.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise BadRequest(f"the image cannot be decoded ({str(err).splitlines()[0] if str(err) else 'truncated'})") from None


def option(body: Body, name: str, kind: type, default: Any, low: float | None = None, high: float | None = None) -> Any:
    """An optional number in the JSON body, of `kind` (int or float), within [low, high]."""
    value = body.json.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        kind is int and isinstance(value, float) and not value.is_integer()
    ):
        raise BadRequest(f"{name}: expected {'an integer' if kind is int else 'a number'}, got {shown(value)}")
    if (isinstance(value, float) and not math.isfinite(value)) or (low is not None and value < low) or (
        high is not None and value > high
    ):
        raise BadRequest(f"{name}: {shown(value)} is outside [{low}, {high}]")
    return kind(value)


def shown(value: Any, width: int = 40) -> str:
    """`repr(value)`, cut to `width` characters: what an error message may echo of a request."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width - 3]}..."
