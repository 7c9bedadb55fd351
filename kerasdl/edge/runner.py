"""Run an exported kerasdl model (.tflite or .onnx) on raw inputs, without TensorFlow.

This file is standalone on purpose: it imports only the standard library and numpy at module level, and
the runtime it needs (`ai-edge-litert` for .tflite, `onnxruntime` for .onnx, Pillow for image files) only
when it needs it. Copy it next to an artifact folder (model file + preprocessing.json) and run

    python runner.py ARTIFACT [--input FILE | --text TEXT | --prompt TEXT] [--output FILE] [--top-k K] [--json]

`kerasdl infer` runs this same code. Post-processing happens here, per task (preprocessing.json says which):
softmax and top-k for classification, images and masks as PNG, boxes as JSON after NumPy NMS, sampled text
for a language model, nearest words for word vectors, a forecast in the series' unit, a value in the target's
unit for a regression. Text is tokenized here with the vocabulary in preprocessing.json, exactly as Keras's
TextVectorization does in training (string ops are not TFLite builtins, so exported text models take token
ids). A table's rows (CSV/TSV) are imputed, one-hot encoded and standardized here with the training split's
values; kerasdl.data.tabular prepares its rows with this same code, so training and the edge agree.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

PREPROCESSING_FILE = "preprocessing.json"
MAX_INPUT_VALUES = 2**28  # one sample's values: far above any kerasdl model's, far below what would exhaust memory
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")  # comma-separated for .csv, tab-separated otherwise


class RunnerError(Exception):
    """A bad artifact, preprocessing file or input; printed as one line."""


def first_line(err: BaseException, width: int = 200) -> str:
    """An error's message as one line of at most `width` characters (some libraries print whole configs)."""
    text = str(err).strip()
    return text.splitlines()[0][:width] if text else type(err).__name__


def inside(folder: Path, name: Any, what: str) -> Path:
    """`folder / name`, refused unless it stays in `folder` once '..' and symlinks are resolved: a name read
    from an artifact's own files (or a file beside it) never reaches outside the artifact's folder."""
    if not isinstance(name, str) or not name:
        raise RunnerError(f"{what}: expected a file name, got {name!r:.40}")
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise RunnerError(f"{what} {name!r:.60} leads outside {folder}: an artifact's files stay in its own folder")
    return path


class Preprocessing:
    """What travels with the model (preprocessing.json): input shape and dtype, normalization, class names.

    Images and noise: raw inputs are pixels as the data set stores them, in [0, pixel_max]; the model sees
    `raw * scale + offset`. 8-bit image files are first mapped from [0, 255] onto [0, pixel_max].
    Text: the tokenizer (`encoder`). A series: the training split's mean and std (`mean`, `std`).
    A table: its columns' preparation (`columns`, see `table_features`); a .npy holds rows already prepared.
    """

    KINDS = ("image", "noise", "text", "series", "tabular")

    def __init__(self, spec: dict[str, Any]):
        if not isinstance(spec, dict) or not isinstance(spec.get("input"), dict):
            raise RunnerError(f"{PREPROCESSING_FILE} is not an object with an \"input\" object")
        try:
            self.kind: str = spec["input"]["kind"]
            self.shape: tuple[int, ...] = tuple(int(d) for d in spec["input"]["shape"])
            self.dtype = np.dtype(spec["input"]["dtype"])
            if self.kind in ("image", "noise"):
                self.scale = float(spec["input"]["scale"])
                self.offset = float(spec["input"]["offset"])
                self.pixel_max = float(spec["input"]["pixel_max"])
            elif self.kind == "text":
                self.encoder = TextEncoder(spec["input"]["tokenizer"])
            elif self.kind == "series":
                self.mean, self.std = float(spec["input"]["mean"]), float(spec["input"]["std"])
            elif self.kind == "tabular":
                self.columns = table_columns(spec["input"]["tabular"]["columns"])
                self.scale, self.offset = 1.0, 0.0  # rows are prepared as they are read
            self.class_names: list[str] = [str(name) for name in spec.get("class_names", [])]
            self.task: str = spec.get("task", "classification")
            self.spec = spec  # the task's own fields (output scaling, detection thresholds...)
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            raise RunnerError(f"{PREPROCESSING_FILE} lacks or mangles {first_line(err)}") from err
        self._check()

    def _check(self) -> None:
        """What every task relies on: a known kind and task name, a shape of positive sizes, a numeric dtype."""
        if self.kind not in self.KINDS:
            raise RunnerError(f"this runner handles {', '.join(self.KINDS)} inputs, not {self.kind!r:.40}")
        if not isinstance(self.task, str):
            raise RunnerError(f"{PREPROCESSING_FILE}: the task is a name, not {self.task!r:.40}")
        if not self.shape or min(self.shape) < 1 or np.prod(self.shape, dtype=np.float64) > MAX_INPUT_VALUES:
            raise RunnerError(f"{PREPROCESSING_FILE}: input shape {self.shape!r:.60} is not a sample's shape")
        if self.dtype.kind not in "biuf":
            raise RunnerError(f"{PREPROCESSING_FILE}: input dtype {self.dtype} is not a number type")
        if self.kind == "tabular" and self.shape != (table_width(self.columns),):
            raise RunnerError(f"{PREPROCESSING_FILE}: the table's columns make {table_width(self.columns)} inputs, "
                              f"the input shape is {self.shape!r:.60}")

    @classmethod
    def beside(cls, artifact: Path) -> "Preprocessing":
        path = inside(artifact.parent, PREPROCESSING_FILE, "the preprocessing file")
        try:
            return cls(json.loads(path.read_text()))
        except FileNotFoundError:
            raise RunnerError(f"{path} is missing: it sits beside the artifact (kerasdl export writes it)") from None
        except ValueError as err:  # invalid JSON or UTF-8
            raise RunnerError(f"{path} is not valid JSON ({first_line(err)})") from err

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """Raw pixels, one sample or a batch, -> a batch of model inputs (in the model's input dtype)."""
        raw = np.asarray(raw, dtype=np.float32)
        per_sample = int(np.prod(self.shape))
        if raw.size == 0 or raw.size % per_sample:
            raise RunnerError(f"input of shape {raw.shape} does not hold samples of shape {self.shape}")
        return (raw.reshape(-1, *self.shape) * self.scale + self.offset).astype(self.dtype)

    def read(self, path: str | Path) -> np.ndarray:
        """Raw pixels from a .npy array (one sample or a batch) or an image file (resized, gray or RGB); a
        table's rows from a CSV/TSV file, prepared."""
        path = Path(path)
        if not path.is_file():
            raise RunnerError(f"input {path} does not exist")
        if self.kind == "tabular" and path.suffix.lower() in TABLE_SUFFIXES:
            return self.prepare_rows(*read_table(path), path.name)
        if path.suffix.lower() == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise RunnerError(f"{path}: not a readable .npy array ({first_line(err)})") from err
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return self._read_image(path)
        expected = f"a table ({', '.join(TABLE_SUFFIXES)})" if self.kind == "tabular" else f"an image ({', '.join(IMAGE_SUFFIXES)})"
        raise RunnerError(f"input {path}: expected .npy or {expected}")

    def prepare_rows(self, header: tuple[str, ...], rows: list[tuple[str, ...]], source: str) -> np.ndarray:
        """A table's raw rows (cells as text, columns by name in `header`) as model inputs."""
        if not rows:
            raise RunnerError(f"{source} holds no data rows (a header row, then one row per prediction)")
        return table_features(self.columns, header, rows, source)

    def _read_image(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        if len(self.shape) != 3:
            raise RunnerError(f"{path}: image files need a (height, width, channels) input, not {self.shape}")
        try:
            with Image.open(path) as image:
                return self.image_pixels(image)
        except (OSError, UnidentifiedImageError) as err:
            raise RunnerError(f"{path}: not a readable image ({first_line(err)})") from err

    def image_pixels(self, image) -> np.ndarray:
        """A decoded PIL image as raw pixels of the input's shape: gray or RGB, resized, [0, 255] -> [0, pixel_max]."""
        from PIL import Image

        height, width, channels = self.shape
        image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
        return np.asarray(image, dtype=np.float32).reshape(self.shape) * (self.pixel_max / 255.0)


# --- tables: raw rows prepared as in training ---------------------------------------------------------------
# kerasdl.data.tabular fits a preparation on the training split and prepares every split with
# `table_features`; preprocessing.json carries the same columns, so the edge prepares rows identically.

MISSING_CELLS = {"", "na", "n/a", "nan", "null", "none", "?"}  # lower-cased cells read as missing
MISSING = "(missing)"  # the category a missing categorical cell becomes


def shown(name: str) -> str:
    """A column name or value as a one-line message shows it: as it is, or quoted and escaped when it is
    not plain printable text (a quoted cell may hold a line break)."""
    return name if name.isprintable() and len(name) <= 60 else repr(name[:60])


def is_missing(cell: str) -> bool:
    return cell.lower() in MISSING_CELLS


def category(cell: str) -> str:
    return MISSING if is_missing(cell) else cell


def numbers(cells: list[str]) -> np.ndarray | None:
    """The cells as float64 (NaN where missing), or None when a present cell is not a finite number."""
    values = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        if is_missing(cell):
            continue
        try:
            values[i] = float(cell)
        except ValueError:
            return None
        if not np.isfinite(values[i]):
            return None
    return values


def parse_table(text: str, delimiter: str, name: str) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, data rows) of CSV/TSV text, cells stripped, blank lines skipped; every column named once and
    every row as wide as the header."""
    try:
        rows = [tuple(cell.strip() for cell in row) for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
                if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise RunnerError(f"{name} is not a readable {'CSV' if delimiter == ',' else 'TSV'} file ({err})") from None
    if not rows:
        raise RunnerError(f"{name} is empty: expected a header row and rows of values")
    header, body = rows[0], rows[1:]
    if not all(header) or len(set(header)) < len(header):
        raise RunnerError(f"{name}: every column needs its own name in the header row, got {list(header)}"[:300])
    for number, row in enumerate(body, 1):
        if len(row) != len(header):
            raise RunnerError(f"{name}: data row {number} has {len(row)} cells, the header {len(header)}")
    return header, body


def table_delimiter(path: Path) -> str:
    return "," if path.suffix.lower() == ".csv" else "\t"


def read_table(path: Path) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, data rows) of a UTF-8 CSV (.csv) or TSV (.tsv, .txt) file."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RunnerError(f"{path} is not UTF-8 (byte offset {err.start}); save it as UTF-8") from None
    return parse_table(text, table_delimiter(path), path.name)


def table_columns(columns: Any) -> list[dict[str, Any]]:
    """A saved preparation's columns, checked: each {"kind": "numeric", "name", "fill", "mean", "std"} (finite,
    std > 0) or {"kind": "categorical", "name", "categories": [names]}."""
    if not isinstance(columns, list) or not columns:
        raise RunnerError(f"{PREPROCESSING_FILE}: a table's columns are a non-empty list, not {columns!r:.40}")
    checked = []
    for column in columns:
        try:
            name, kind = column["name"], column["kind"]
            if not isinstance(name, str) or kind not in ("numeric", "categorical"):
                raise ValueError(f"column {name!r:.40} of kind {kind!r:.20}")
            if kind == "categorical":
                categories = column["categories"]
                if not isinstance(categories, (list, tuple)) or not all(isinstance(c, str) for c in categories):
                    raise ValueError(f"column {name!r:.40}: categories are names")
                checked.append({"kind": kind, "name": name, "categories": list(categories)})
                continue
            fill, mean, std = (float(column[key]) for key in ("fill", "mean", "std"))
            if not (np.isfinite([fill, mean, std]).all() and std > 0):
                raise ValueError(f"column {name!r:.40}: fill, mean and std are finite, std > 0")
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            raise RunnerError(f"{PREPROCESSING_FILE}: a table column lacks or mangles {first_line(err, 80)}") from None
        checked.append({"kind": kind, "name": name, "fill": fill, "mean": mean, "std": std})
    return checked


def table_width(columns: list[dict[str, Any]]) -> int:
    """Model inputs per row: one per numeric column, one per category of a categorical one."""
    return sum(1 if column["kind"] == "numeric" else len(column["categories"]) for column in columns)


def table_features(columns: list[dict[str, Any]], header: tuple[str, ...], rows: list[tuple[str, ...]],
                   source: str) -> np.ndarray:
    """(rows, width) float32 model inputs from raw cells: a missing number takes the training median, then
    (x - mean) / std; a category one-hot over the training categories (a missing one: MISSING; one never
    seen in training: all zeros). Columns are found by name; other columns (the target...) are ignored."""
    absent = [column["name"] for column in columns if column["name"] not in header]
    if absent:
        raise RunnerError(f"{source} lacks the column(s) the model was trained on: {', '.join(map(shown, absent))}")
    parts = [encode_column(column, [row[header.index(column["name"])] for row in rows], source) for column in columns]
    return np.concatenate(parts, axis=1).astype(np.float32)


def encode_column(column: dict[str, Any], cells: list[str], source: str) -> np.ndarray:
    """One column's cells as (rows, 1) standardized numbers or (rows, categories) one-hot float64."""
    if column["kind"] == "categorical":
        index = {name: i for i, name in enumerate(column["categories"])}
        one_hot = np.zeros((len(cells), len(index)))
        for row, cell in enumerate(cells):
            if category(cell) in index:
                one_hot[row, index[category(cell)]] = 1.0
        return one_hot
    values = numbers(cells)
    if values is None:
        bad = next(i for i, cell in enumerate(cells) if numbers([cell]) is None)
        raise RunnerError(f"{source}: column {column['name']!r:.60} was numeric in training, but data row "
                          f"{bad + 1} holds {cells[bad][:40]!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        return ((np.where(np.isnan(values), column["fill"], values) - column["mean"]) / column["std"])[:, None]


# TextVectorization's standardization, split and lookup, re-done with the standard library. Its "lower" is
# tf.strings.lower, which lowers ASCII letters only; its punctuation is this ASCII set; its whitespace split
# is tf.strings.split's (ASCII whitespace). tests/test_text_data.py checks every SST-2 test sentence.
ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}
PUNCTUATION = {ord(char): None for char in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\''}
ASCII_WHITESPACE = re.compile("[ \t\n\v\f\r]+")
PAD_ID, OOV_ID = 0, 1
# Subwords: keras-hub's WordPiece, re-done (kerasdl.data.tokenizer marks whitespace the same way). A word is
# split off at whitespace (ASCII whitespace, control and format characters: dropped) and at punctuation (ASCII
# non-alphanumerics and Unicode's P* categories) and CJK ideographs (each kept as a word), then cut greedily
# into the longest pieces in the vocabulary; a word longer than 100 UTF-8 bytes, or one with an uncovered
# rest, is OOV. tests/test_gpt.py checks the ids against keras-hub's on the Shakespeare test text.
SPACE_MARK, NEWLINE_MARK, SUFFIX = "\u2581", "\u00b6", "##"
MAX_BYTES_PER_WORD = 100
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def word_piece_words(text: str) -> list[str]:
    """WordPiece's pre-tokenization: whitespace dropped, punctuation and CJK characters words of their own."""
    import unicodedata

    words, current = [], []
    for char in text:
        category, code = unicodedata.category(char), ord(char)
        whitespace = char in " \t\n\r\f" or category in ("Cc", "Cf")
        alone = (code < 128 and not char.isalnum()) or category.startswith("P") or any(
            low <= code <= high for low, high in CJK_RANGES)
        if whitespace or alone:
            if current:
                words.append("".join(current))
            current = []
            if alone and not whitespace:
                words.append(char)
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


class TextEncoder:
    """Token ids for raw strings from a saved tokenizer (kerasdl.data.tokenizer.Tokenizer.to_json())."""

    def __init__(self, tokenizer: dict[str, Any]):
        self.vocabulary: list[str] = list(tokenizer["vocabulary"])
        self.level: str = tokenizer["level"]
        self.sequence_length: int | None = tokenizer.get("sequence_length")
        self.standardize: str | None = tokenizer.get("standardize")
        self.ids = {token: i for i, token in enumerate(self.vocabulary)}
        if self.level not in ("word", "character", "subword"):
            raise RunnerError(f"unknown tokenizer level {self.level!r}")

    def tokens(self, text: str) -> list[str]:
        """Standardized and split as TextVectorization does; subwords: the words WordPiece cuts into pieces."""
        if self.level == "subword":
            return word_piece_words(text.replace(" ", " " + SPACE_MARK).replace("\n", NEWLINE_MARK))
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.translate(ASCII_LOWER)
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = text.translate(PUNCTUATION)
        if self.level == "character":
            return list(text)
        return [token for token in ASCII_WHITESPACE.split(text) if token]

    def pieces(self, word: str) -> list[int] | None:
        """WordPiece's greedy longest-match cut of one word into vocabulary ids; None when it has no cut."""
        if len(word.encode("utf-8")) > MAX_BYTES_PER_WORD:
            return None
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start and (SUFFIX if start else "") + word[start:end] not in self.ids:
                end -= 1
            if end == start:
                return None
            ids.append(self.ids[(SUFFIX if start else "") + word[start:end]])
            start = end
        return ids

    def encode_stream(self, text: str) -> np.ndarray:
        """All of one text's ids, unpadded (a prompt, a stream)."""
        if self.level == "subword":
            return np.asarray([i for word in self.tokens(text) for i in (self.pieces(word) or [OOV_ID])], np.int32)
        return np.asarray([self.ids.get(token, OOV_ID) for token in self.tokens(text)], np.int32)

    def unknown(self, text: str) -> list[str]:
        """The tokens (subwords: the words) of `text` the vocabulary cannot represent."""
        if self.level == "subword":
            return [word for word in self.tokens(text) if self.pieces(word) is None]
        return [token for token in self.tokens(text) if token not in self.ids]

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), sequence_length) int32 ids: the first tokens of each text, padded with 0."""
        if not self.sequence_length:
            raise RunnerError("this tokenizer has no fixed sequence length; encode one stream at a time")
        ids = np.zeros((len(texts), self.sequence_length), np.int32)
        for row, text in enumerate(texts):
            encoded = self.encode_stream(text)[: self.sequence_length]
            ids[row, : len(encoded)] = encoded
        return ids

    def decode(self, ids: Any) -> str:
        tokens = [self.vocabulary[int(i)] for i in ids if int(i) != PAD_ID]
        if self.level == "subword":
            text = "".join(token[len(SUFFIX):] if token.startswith(SUFFIX) and len(token) > len(SUFFIX) else token
                           for token in tokens)
            return text.replace(SPACE_MARK, " ").replace(NEWLINE_MARK, "\n")
        return ("" if self.level == "character" else " ").join(tokens)


class LiteRTSession:
    """A .tflite model under the LiteRT interpreter as `session(batch) -> logits`.

    Integer (int8) inputs and outputs are quantized and dequantized here with the tensors' own scale and
    zero point, so callers always pass and get floats. The batch dimension is resized to each call's.
    XNNPACK, the interpreter's default CPU delegate, fails to prepare some int8 graphs (an unrolled, masked
    int8 LSTM); those run on LiteRT's builtin kernels instead, as on a device without the delegate.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self.interpreter = self._interpreter(default_delegates=True)
        except (ValueError, RuntimeError) as err:
            raise RunnerError(f"{path}: not a valid .tflite model ({first_line(err)})") from err
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.io = {"input": tensor_io(self.input), "output": tensor_io(self.output)}
        self.batch = 0  # the batch size the tensors are allocated for

    def _interpreter(self, default_delegates: bool):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if default_delegates:
            return Interpreter(model_path=str(self.path))
        return Interpreter(
            model_path=str(self.path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )

    def _allocate(self, batch: int) -> None:
        self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.input["shape"][1:]])
        self.interpreter.allocate_tensors()
        self.batch = batch

    def __call__(self, x: np.ndarray) -> np.ndarray:
        try:
            return self._call(x)
        except (ValueError, RuntimeError) as err:  # LiteRT's errors for a shape or dtype the graph does not take
            raise refused_input(self.path, x, err) from err

    def _call(self, x: np.ndarray) -> np.ndarray:
        try:
            return self._run(x)
        except RuntimeError as err:  # XNNPACK may refuse the graph when allocating or at the first invoke
            if "XNNPACK" not in str(err):
                raise
            self.interpreter, self.batch = self._interpreter(default_delegates=False), 0
            return self._run(x)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.batch != len(x):
            self._allocate(len(x))
        self.interpreter.set_tensor(self.input["index"], quantize(x, self.input))
        self.interpreter.invoke()
        return dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)


def refused_input(path: Path, x: np.ndarray, err: BaseException) -> RunnerError:
    """The runtime refused a batch: the preprocessing file promised inputs the model does not take."""
    return RunnerError(f"{path} cannot run a {x.dtype.name} batch of shape {x.shape} ({first_line(err)}); "
                       f"does {PREPROCESSING_FILE} belong to this model?")


def tensor_io(detail: dict[str, Any]) -> dict[str, Any]:
    """A LiteRT tensor's name, dtype and, for quantized tensors, scale and zero point."""
    scale, zero_point = detail["quantization"]
    io = {"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name}
    if scale:
        io.update(scale=float(scale), zero_point=int(zero_point))
    return io


def quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Floats -> the tensor's dtype; for a quantized integer tensor q = round(x / scale) + zero_point."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if not (np.issubdtype(dtype, np.integer) and scale):
        return x.astype(dtype)
    limits = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, limits.min, limits.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """A tensor's values as float32; for a quantized integer tensor x = (q - zero_point) * scale."""
    scale, zero_point = detail["quantization"]
    if not (np.issubdtype(q.dtype, np.integer) and scale):
        return q.astype(np.float32)
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


class OnnxSession:
    """A .onnx model under onnxruntime (CPU) as `session(batch) -> logits`.

    One thread, as the LiteRT interpreter uses by default: for single samples it is also the faster choice.
    """

    def __init__(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.path = path
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime has its own exception types for unreadable models
            raise RunnerError(f"{path}: not a valid .onnx model ({first_line(err)})") from err
        self.input, self.output = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.io = {"input": {"name": self.input.name, "dtype": self.input.type}, "output": {"name": self.output.name}}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        try:
            return self.session.run([self.output.name], {self.input.name: x})[0]
        except Exception as err:  # onnxruntime's own exception types (InvalidArgument, Fail...)
            raise refused_input(self.path, x, err) from err


_SESSIONS = {".tflite": LiteRTSession, ".onnx": OnnxSession}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class EdgeModel:
    """An exported model and its preprocessing: raw inputs in, the artifact's outputs out."""

    def __init__(self, artifact: str | Path, session: Callable[[np.ndarray], np.ndarray] | None = None,
                 preprocessing: Preprocessing | None = None):
        """`session` and `preprocessing`, when given, stand in for the .tflite/.onnx file and the
        preprocessing.json beside it (the server runs SavedModels and run directories so)."""
        self.path = Path(artifact)
        if session is None:
            if self.path.suffix not in _SESSIONS:
                raise RunnerError(
                    f"{self.path}: expected a .tflite or .onnx artifact"
                    + (" (a SavedModel needs TensorFlow; export tflite or onnx for the edge)" if self.path.is_dir() else "")
                )
            if not self.path.is_file():
                raise RunnerError(f"artifact {self.path} does not exist")
        self.preprocessing = preprocessing or Preprocessing.beside(self.path)
        self.session = session or _SESSIONS[self.path.suffix](self.path)

    @property
    def task(self) -> str:
        return self.preprocessing.task

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The model's raw outputs for a batch of normalized inputs."""
        return self.session(x)

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per sample, from raw pixels."""
        return softmax(self.logits(self.preprocessing.normalize(raw)))

    def top_k(self, raw: np.ndarray, k: int = 3) -> list[list[dict[str, Any]]]:
        """Per sample, the k most probable classes as {"class", "index", "probability"}, best first."""
        return self.ranked(self.predict(raw), k)

    def classify_texts(self, texts: list[str], k: int = 3) -> list[list[dict[str, Any]]]:
        """Per text, the k most probable classes: tokenized here, then the artifact's probabilities."""
        return self.ranked(softmax(self.logits(self.preprocessing.encoder.encode(texts))), k)

    def ranked(self, probabilities: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        names = self.preprocessing.class_names
        if probabilities.shape[-1] != len(names):
            raise RunnerError(f"the model scores {probabilities.shape[-1]} classes; {PREPROCESSING_FILE} names {len(names)}")
        return [
            [{"class": names[i], "index": int(i), "probability": float(row[i])} for i in np.argsort(-row)[:k]]
            for row in probabilities
        ]


def mean_latency_ms(call: Callable[[np.ndarray], Any], x: np.ndarray, runs: int = 100, warmup: int = 10) -> float:
    """Mean wall time of `call(x)` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        call(x)
    started = time.perf_counter()
    for _ in range(runs):
        call(x)
    return (time.perf_counter() - started) / runs * 1000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The runner's options; `kerasdl infer` adds the same ones."""
    parser.add_argument("artifact", help="model.tflite or model.onnx, with preprocessing.json beside it (kerasdl infer: also a run directory)")
    parser.add_argument(
        "--input", help="an image file (PNG/JPEG), a .npy array of raw pixels, a .txt of texts (one a line), "
        "a series (.csv/.txt column or .npy), or a table's rows (CSV/TSV with a header row)"
    )
    parser.add_argument("--text", action="append", help="text models: a text to classify, or a word (repeatable)")
    parser.add_argument("--output", help="where to write an image or boxes result (default: beside --input)")
    parser.add_argument(
        "--top-k", type=int, help="classes to print per sample (default 3); words to list (default 10); "
        "language models: sample from the k most likely tokens only (default: all)"
    )
    parser.add_argument("--samples", type=int, default=16, help="generation: samples to draw (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="generation, language models: random seed (default 0)")
    parser.add_argument("--prompt", help="language models: the text to continue")
    parser.add_argument("--length", type=int, default=200, help="language models: tokens to generate (default 200)")
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="language models: sampling temperature (0: greedy; default 1)"
    )
    parser.add_argument(
        "--top-p", type=float, help="language models: sample from the likeliest tokens that hold this much probability"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def infer(args: argparse.Namespace, model: EdgeModel | None = None) -> str:
    """Run the artifact (or `model`: `kerasdl infer` passes a run directory's Keras model so) as its task says
    (preprocessing.json's "task"); the text (or JSON) to print."""
    model = model or EdgeModel(args.artifact)
    if model.task not in TASK_RUNNERS:
        raise RunnerError(f"this runner does not know task {model.task!r}; known: {', '.join(TASK_RUNNERS)}")
    text, result = TASK_RUNNERS[model.task](model, args)
    if args.json:
        return json.dumps({"artifact": str(model.path), "task": model.task, **result}, indent=2)
    return text


def _classify(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Classification: the top-k classes of each input sample (an image, an array, or a text)."""
    k = _positive(args.top_k, 3, "--top-k")
    if model.preprocessing.kind == "text":
        texts = _texts(args)
        predictions = model.classify_texts(texts, k)
        source: dict[str, Any] = {"texts": texts}
    else:
        predictions = model.top_k(model.preprocessing.read(_required_input(args)), k)
        source = {"input": str(args.input)}
    text = "\n".join(
        f"sample {i}: " + ", ".join(f"{p['class']} ({p['probability']:.3f})" for p in top)
        for i, top in enumerate(predictions)
    )
    return text, {**source, "predictions": predictions}


def _positive(value: int | None, default: int, flag: str) -> int:
    value = default if value is None else value
    if value < 1:
        raise RunnerError(f"{flag} must be >= 1, got {value}")
    return value


def _texts(args: argparse.Namespace) -> list[str]:
    """The texts of `--text` (repeatable), or of `--input`, a UTF-8 file with one text a line."""
    if args.text:
        return list(args.text)
    if not args.input:
        raise RunnerError("this is a text model: give --text TEXT (repeatable) or --input FILE.txt (one text a line)")
    path = Path(args.input)
    try:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise RunnerError(f"input {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise RunnerError(f"{path} is not UTF-8 text ({first_line(err)})") from None
    if not texts:
        raise RunnerError(f"{path} holds no text (one text a line)")
    return texts


def _required_input(args: argparse.Namespace) -> str:
    if not args.input:
        raise RunnerError("--input is required for this model (an image file, a .npy array or a CSV of table rows)")
    return args.input


# --- generation: noise in, a PNG grid of images out ------------------------------------------------------


def sample_noise(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """`count` latent vectors z ~ N(0, I) fixed by `seed`: the same noise here as in `kerasdl.models.gan`."""
    return np.random.default_rng(seed).standard_normal((count, *shape)).astype(np.float32)


def write_image_grid(images: np.ndarray, path: str | Path) -> tuple[int, int]:
    """Tile images in [-1, 1] (N, H, W, C) row by row into one 8-bit PNG; its (rows, columns)."""
    from PIL import Image

    grid, rows, columns = image_grid(images)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return rows, columns


def image_grid(images: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Images in [-1, 1] (N, H, W, C) tiled row by row into one 8-bit image (gray: 2-D); it, rows, columns."""
    count, height, width, channels = images.shape
    columns = int(np.ceil(np.sqrt(count)))
    rows = -(-count // columns)
    pixels = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    grid = np.zeros((rows * height, columns * width, channels), np.uint8)
    for i, image in enumerate(pixels):
        row, column = divmod(i, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    return (grid[..., 0] if channels == 1 else grid), rows, columns


def _generate(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Generation: `--samples` images from noise seeded by `--seed`, as one PNG grid at `--output`."""
    if args.samples < 1:
        raise RunnerError(f"asked for zero or negative samples (--samples {args.samples}); ask for 1 or more")
    spec = model.preprocessing
    images = model.logits(sample_noise(args.samples, spec.shape, args.seed).astype(spec.dtype))
    output = Path(args.output or "samples.png")
    rows, columns = write_image_grid(images, output)
    text = f"{args.samples} samples (seed {args.seed}) -> {output} ({rows} x {columns} grid)"
    return text, {"samples": args.samples, "seed": args.seed, "output": str(output), "grid": [rows, columns]}


# --- detection: CenterNet maps in, boxes out (NumPy heatmap peaks and non-maximum suppression) -----------


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (n, 4) with every box in `b` (m, 4), as [x_min, y_min, x_max, y_max]; 0 where
    the union is empty (as tf.image's NMS counts it)."""
    a, b = np.asarray(a, np.float32)[:, None, :4], np.asarray(b, np.float32)[None, :, :4]
    overlap = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None).prod(-1)
    union = (a[..., 2:] - a[..., :2]).prod(-1) + (b[..., 2:] - b[..., :2]).prod(-1) - overlap
    return np.where(union > 0, overlap / np.where(union > 0, union, 1), 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_output: int) -> np.ndarray:
    """Indices of the boxes kept, best first: greedily the best remaining box, dropping every box that overlaps
    it by IoU > `iou_threshold` (tf.image.non_max_suppression's rule; equal scores: lower index first)."""
    order, kept = np.argsort(-scores, kind="stable"), []
    overlaps = box_iou(boxes, boxes)
    while len(order) and len(kept) < max_output:
        best, order = order[0], order[1:]
        kept.append(best)
        order = order[overlaps[best, order] <= iou_threshold]
    return np.asarray(kept, np.int64)


def decode_centernet(
    maps: np.ndarray, num_classes: int, score_threshold: float, iou_threshold: float, max_detections: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """CenterNet maps (batch, rows, cols, classes + [w, h, offset x, offset y]) -> per image (boxes (n, 4)
    normalized to [0, 1], scores, classes): cells that are the max of their 3x3 neighbourhood, the best
    `max_detections`, those scoring >= `score_threshold`, then NMS per class (shifted apart by class)."""
    maps = np.asarray(maps, np.float32)
    batch, rows, cols = maps.shape[:3]
    heat = maps[..., :num_classes]
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    neighbourhood = np.max([padded[:, i : i + rows, j : j + cols] for i in range(3) for j in range(3)], axis=0)
    peaks = np.where(heat == neighbourhood, heat, 0.0).reshape(batch, -1)
    regression = maps[..., num_classes:].reshape(batch, rows * cols, 4)
    decoded = []
    for image in range(batch):
        index = np.argsort(-peaks[image], kind="stable")[:max_detections]
        index = index[peaks[image, index] >= score_threshold]
        scores, cell, classes = peaks[image, index], index // num_classes, index % num_classes
        width, height, offset_x, offset_y = regression[image, cell].T
        centre_x, centre_y = (cell % cols + offset_x) / cols, (cell // cols + offset_y) / rows
        boxes = np.clip(np.stack([centre_x - width / 2, centre_y - height / 2, centre_x + width / 2,
                                  centre_y + height / 2], -1), 0, 1).reshape(-1, 4)
        kept = non_max_suppression(boxes + 2.0 * classes[:, None], scores, iou_threshold, max_detections)
        decoded.append((boxes[kept], scores[kept], classes[kept]))
    return decoded


CORNERS = ("x_min", "y_min", "x_max", "y_max")  # a box in JSON, in the input's pixels


def _detect(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Detection: boxes in the input's own pixels (an image file's full size), as JSON at `--output`."""
    spec, path = model.preprocessing, Path(_required_input(args))
    try:
        settings = [spec.spec[key] for key in ("score_threshold", "iou_threshold", "max_detections")]
    except KeyError as err:
        raise RunnerError(f"{PREPROCESSING_FILE} lacks the detection setting {err}") from None
    maps = model.logits(spec.normalize(spec.read(path)))
    size = (spec.shape[1], spec.shape[0]) if path.suffix.lower() == ".npy" else _image_size(path)
    scale = np.array([size[0], size[1], size[0], size[1]], np.float32)
    images = [
        {"width": size[0], "height": size[1], "boxes": [
            {**dict(zip(CORNERS, np.round(box * scale, 1).tolist())), "score": round(float(score), 4),
             "class": spec.class_names[int(c)]}
            for box, score, c in zip(*found)
        ]}
        for found in decode_centernet(maps, len(spec.class_names), *settings)
    ]
    result = {"input": str(path), "score_threshold": settings[0], "images": images}
    lines = [
        f"sample {i}: {b['class']} {b['score']:.3f} at x {b['x_min']:.0f}..{b['x_max']:.0f}, "
        f"y {b['y_min']:.0f}..{b['y_max']:.0f}"
        for i, image in enumerate(images) for b in image["boxes"]
    ]
    text = "\n".join(lines) or f"no boxes with score >= {settings[0]}"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        text = f"{len(lines)} boxes -> {args.output}"
    return text, result


# --- segmentation: an image in, a mask PNG out (full-resolution tiles, or the whole image resized) --------


def segment_tiles(logits: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, tile: int) -> np.ndarray:
    """The class of every pixel of a full-resolution image (height, width, channels): mirrored at the bottom
    and right edges up to whole tiles, each tile classified, the tiles stitched back and the margin cut off."""
    height, width = pixels.shape[:2]
    rows, columns = -(-height // tile), -(-width // tile)
    padded = np.pad(pixels, ((0, rows * tile - height), (0, columns * tile - width), (0, 0)), mode="symmetric")
    tiles = padded.reshape(rows, tile, columns, tile, -1).swapaxes(1, 2).reshape(rows * columns, tile, tile, -1)
    classes = logits(tiles).argmax(axis=-1).reshape(rows, columns, tile, tile).swapaxes(1, 2)
    return classes.reshape(rows * tile, columns * tile)[:height, :width]


def _full_resolution(spec: Preprocessing, path: Path) -> np.ndarray:
    """Raw pixels (height, width, channels) of an image file or a .npy array, at the input's own size."""
    channels = spec.shape[-1]
    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.float32)
        except (OSError, UnidentifiedImageError) as err:
            raise RunnerError(f"{path}: not a readable image ({first_line(err)})") from err
        pixels = pixels * (spec.pixel_max / 255.0)
    else:
        pixels = spec.read(path)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if pixels.ndim != 3 or pixels.shape[-1] != channels:
        raise RunnerError(f"{path}: expected one image (height, width, {channels}), got shape {pixels.shape}")
    return pixels


def _segment(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Segmentation: a mask PNG at `--output` (default beside the input, <name>_mask.png), its pixels the class
    index scaled to 0..255, and each class's share of the pixels."""
    from PIL import Image

    spec, path = model.preprocessing, Path(_required_input(args))

    def logits(raw: np.ndarray) -> np.ndarray:
        return model.logits(spec.normalize(raw))

    if spec.spec.get("tiles"):  # the model learned on full-resolution tiles
        classes = segment_tiles(logits, _full_resolution(spec, path), spec.shape[0])
    else:  # the model learned on whole images resized to its input; the mask is resized back
        predicted = logits(spec.read(path))[0].argmax(axis=-1).astype(np.uint8)
        size = (spec.shape[1], spec.shape[0]) if path.suffix.lower() == ".npy" else _image_size(path)
        classes = np.asarray(Image.fromarray(predicted).resize(size, Image.NEAREST))
    names = spec.class_names
    output = Path(args.output) if args.output else path.with_name(f"{path.stem}_mask.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((classes * (255 // max(1, len(names) - 1))).astype(np.uint8)).save(output)
    fractions = {name: float(np.mean(classes == k)) for k, name in enumerate(names)}
    height, width = classes.shape
    shares = ", ".join(f"{name} {share:.1%}" for name, share in fractions.items())
    text = f"mask {width}x{height} -> {output}: {shares}"
    return text, {"input": str(path), "output": str(output), "width": width, "height": height,
                  "class_fractions": fractions}


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


# --- reconstruction: an image in, the autoencoder's reconstruction out as PNG ------------------------------


def _reconstruct(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Reconstruction: the autoencoder's output for each input sample as a PNG at `--output` (default beside
    the input, <name>_reconstructed.png; a batch as one grid, row by row), and each sample's MSE against its
    input on the model's scale. preprocessing.json's "output" maps outputs to pixels as the input's map inverted."""
    spec, path = model.preprocessing, Path(_required_input(args))
    inputs = spec.normalize(spec.read(path))
    outputs = model.logits(inputs).reshape(inputs.shape)
    mse = np.mean(np.square(outputs - inputs).reshape(len(inputs), -1), axis=1)
    to_pixels = spec.spec["output"]
    unit = np.clip((outputs - to_pixels["offset"]) / to_pixels["scale"] / to_pixels["pixel_max"], 0.0, 1.0)
    output = Path(args.output) if args.output else path.with_name(f"{path.stem}_reconstructed.png")
    rows, columns = write_image_grid(unit * 2.0 - 1.0, output)  # the grid writer takes images in [-1, 1]
    text = f"{len(inputs)} reconstruction(s) -> {output} ({rows} x {columns}), mse vs input {mse.mean():.4f}"
    return text, {"input": str(path), "output": str(output), "grid": [rows, columns],
                  "mse": [float(value) for value in mse], "mean_mse": float(mse.mean())}


# --- language models: a prompt in, sampled text out, one token at a time through a single-step model ---------


def sample_next(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator,
                top_p: float | None = None) -> int:
    """The next token id: argmax at temperature 0, else a draw from softmax(logits / temperature) over the
    `top_k` most likely tokens (None or 0: all) and, of those, the fewest most likely whose probabilities
    sum to `top_p` (nucleus sampling; None or 1: all). Padding and OOV ids are never drawn."""
    logits = np.asarray(logits, np.float64).copy()
    logits[[PAD_ID, OOV_ID]] = -np.inf
    if temperature == 0:
        return int(np.argmax(logits))
    if temperature < 0:
        raise RunnerError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise RunnerError(f"top-p must be in (0, 1], got {top_p}")
    logits /= temperature
    if top_k:
        logits[logits < np.sort(logits)[-min(top_k, len(logits))]] = -np.inf
    probabilities = softmax(logits)
    if top_p is not None and top_p < 1:
        order = np.argsort(-probabilities, kind="stable")
        before = np.cumsum(probabilities[order]) - probabilities[order]  # the mass of the likelier tokens
        probabilities[order[before >= top_p]] = 0.0  # keeps the first token that reaches top_p
        probabilities /= probabilities.sum()
    return int(rng.choice(len(logits), p=probabilities))


def generate_text(
    step: Callable[[np.ndarray], np.ndarray],
    encoder: TextEncoder,
    state_size: int,
    prompt: str,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    top_p: float | None = None,
    context_length: int | None = None,
) -> str:
    """`prompt` and `length` sampled tokens after it. `step` maps [token id, state (state_size)] (batch 1) to
    [next-token logits (vocabulary), new state]; the state starts at zero and reads the prompt token by token.

    A state holds at most `context_length` tokens (a Transformer's key/value cache: its positions; None: no
    bound). When it is full, it is re-primed: zeroed, then fed the last half of the context again, so the
    model keeps conditioning on as much as it can while each new token still costs one step.
    """
    ids = encoder.encode_stream(prompt)
    if not len(ids):
        raise RunnerError("the prompt is empty: give at least one token to start from")
    unknown = sorted(set(encoder.unknown(prompt)))
    if unknown:
        separator = "" if encoder.level == "character" else " "
        raise RunnerError(f"the prompt has tokens outside the vocabulary: {separator.join(unknown)[:40]!r}")
    if length < 0:
        raise RunnerError(f"length must be >= 0, got {length}")
    if context_length is not None and context_length < 2:
        raise RunnerError(f"a context of {context_length} token(s) cannot be re-primed; it needs at least 2")
    vocabulary, state = len(encoder.vocabulary), np.zeros(state_size, np.float32)
    rng, tokens, generated = np.random.default_rng(seed), [int(token) for token in ids], []
    held = 0  # tokens the state holds

    def advance(token: int) -> np.ndarray:
        nonlocal state, held
        output = np.asarray(step(np.concatenate([[token], state]).astype(np.float32)[np.newaxis]))[0]
        if output.shape != (vocabulary + state_size,):
            raise RunnerError(f"the step model gives {output.shape[0]} values, not vocabulary + state {vocabulary + state_size}")
        state, held = output[vocabulary:], held + 1
        return output[:vocabulary]

    def read(context: list[int]) -> np.ndarray:
        nonlocal state, held
        state, held = np.zeros(state_size, np.float32), 0
        for token in context:
            logits = advance(token)
        return logits

    logits = read(tokens[-context_length:] if context_length else tokens)
    for _ in range(length):
        generated.append(sample_next(logits, temperature, top_k, rng, top_p))
        tokens.append(generated[-1])
        logits = read(tokens[-(context_length // 2):]) if held == context_length else advance(generated[-1])
    return prompt + encoder.decode(generated)


def _language_model(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Language modelling: `--prompt` continued by `--length` sampled tokens (`--temperature`, `--top-k`,
    `--top-p`, `--seed`), within the model's context length (preprocessing.json)."""
    spec = model.preprocessing
    if args.prompt is None:
        raise RunnerError("--prompt is required for a language model (the text to continue)")
    text = generate_text(model.logits, spec.encoder, int(spec.spec["state_size"]), args.prompt, args.length,
                         args.temperature, args.top_k, args.seed, args.top_p, spec.spec.get("context_length"))
    settings = {"prompt": args.prompt, "length": args.length, "temperature": args.temperature,
                "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}
    return text, {**settings, "text": text}


# --- word vectors: the nearest words by cosine -----------------------------------------------------------------


def word_vectors(model: EdgeModel, batch: int = 1024) -> np.ndarray:
    """Every vocabulary id's vector from the artifact (one id in, its vector out), unit length."""
    size = len(model.preprocessing.encoder.vocabulary)
    ids = np.arange(size, dtype=np.int32).reshape(-1, 1)
    vectors = np.concatenate([model.logits(ids[i : i + batch]) for i in range(0, size, batch)]).reshape(size, -1)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def nearest_words(vectors: np.ndarray, vocabulary: list[str], query: np.ndarray, k: int, exclude: set[int]) -> list[dict[str, Any]]:
    """The k words whose unit vectors have the largest cosine with `query`, padding, OOV and `exclude` left out."""
    scores = vectors @ (query / max(float(np.linalg.norm(query)), 1e-12))
    scores[[PAD_ID, OOV_ID, *exclude]] = -np.inf
    return [{"word": vocabulary[i], "cosine": round(float(scores[i]), 4)} for i in np.argsort(-scores)[:k]]


def _neighbours(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Word vectors: for each `--text WORD`, its `--top-k` nearest words."""
    k, encoder = _positive(args.top_k, 10, "--top-k"), model.preprocessing.encoder
    vectors, results = word_vectors(model), {}
    for word in _texts(args):
        ids = encoder.encode_stream(word)
        if len(ids) != 1 or ids[0] == OOV_ID:
            raise RunnerError(f"{word!r} is not one word of the vocabulary ({len(encoder.vocabulary)} words)")
        results[word] = nearest_words(vectors, encoder.vocabulary, vectors[ids[0]], k, {int(ids[0])})
    text = "\n".join(f"{word}: " + ", ".join(f"{n['word']} ({n['cosine']:.3f})" for n in found)
                     for word, found in results.items())
    return text, {"neighbours": results}


# --- forecasting: the last window of a series in, the next `horizon` values out --------------------------------


def read_series(path: str | Path) -> np.ndarray:
    """A series' values: a .npy array, or the last numeric column of a .csv/.txt (header and blank rows skipped)."""
    path = Path(path)
    if not path.is_file():
        raise RunnerError(f"input {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
        except (OSError, ValueError) as err:
            raise RunnerError(f"{path}: not a readable .npy array ({first_line(err)})") from err
    values = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        cells = [cell.strip().strip('"') for cell in re.split("[,\t;]", line) if cell.strip()]
        try:
            values.append(float(cells[-1]))
        except (IndexError, ValueError):
            continue  # a header or a blank line
    return np.asarray(values, np.float32)


def _forecast(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Forecasting: the next `horizon` values after the last window of `--input`, in the series' unit."""
    spec = model.preprocessing
    series, window = read_series(_required_input(args)), spec.shape[0]
    if len(series) < window or not np.all(np.isfinite(series[-window:])):
        raise RunnerError(f"{args.input}: the model needs the last {window} values, all numbers; found {len(series)}")
    x = ((series[-window:] - spec.mean) / spec.std).reshape(1, *spec.shape).astype(spec.dtype)
    forecast = model.logits(x).reshape(-1) * spec.std + spec.mean
    unit = spec.spec.get("unit", "")
    text = "forecast: " + ", ".join(f"{value:.2f}" for value in forecast) + (f" {unit}" if unit else "")
    return text, {"input": str(args.input), "window": window, "forecast": [float(v) for v in forecast], "unit": unit}


# --- regression: a table's rows in, a value per row out, in the target's unit ----------------------------------


def regression_values(spec: Preprocessing, outputs: np.ndarray) -> np.ndarray:
    """The model's outputs (the standardized target, one per row) in the target's unit: output * std + mean."""
    try:
        mean, std = float(spec.spec["target_mean"]), float(spec.spec["target_std"])
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise RunnerError(f"{PREPROCESSING_FILE} lacks or mangles the target's scaling {first_line(err)}") from None
    outputs = np.asarray(outputs, np.float64)
    if outputs.size != len(outputs):
        raise RunnerError(f"the model gives {outputs.size // len(outputs)} values per row; a regression gives one")
    return outputs.reshape(-1) * std + mean


def _regress(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Regression: a value for each row of `--input` (a CSV/TSV table; or a .npy of prepared rows), in the
    target's unit."""
    spec = model.preprocessing
    values = regression_values(spec, model.logits(spec.normalize(spec.read(_required_input(args)))))
    target = str(spec.spec.get("target", "value"))
    text = "\n".join(f"row {i}: {target} {value:.4g}" for i, value in enumerate(values, 1))
    return text, {"input": str(args.input), "target": target, "predictions": [{"value": float(v)} for v in values]}


# --- masked language models: the words that fit each [MASK] of a sentence ------------------------------------


def mask_encode(encoder: TextEncoder, text: str, mask_token: str) -> tuple[np.ndarray, list[int]]:
    """(sequence_length,) int32 ids of `text`, each `mask_token` as its own id (standardizing would strip its
    brackets, so the pieces between masks are tokenized apart), and the masks' positions."""
    pieces = text.split(mask_token)
    if len(pieces) < 2:
        raise RunnerError(f"the text has no {mask_token} to fill: {text!r}")
    ids = list(encoder.encode_stream(pieces[0]))
    for piece in pieces[1:]:
        ids += [encoder.ids[mask_token], *encoder.encode_stream(piece)]
    if len(ids) > (encoder.sequence_length or 0):
        raise RunnerError(f"the text has {len(ids)} tokens; this model reads at most {encoder.sequence_length}")
    padded = np.zeros(encoder.sequence_length, np.int32)
    padded[: len(ids)] = ids
    return padded, [i for i, token in enumerate(ids) if token == encoder.ids[mask_token]]


def fill_masks(logits: np.ndarray, encoder: TextEncoder, mask_token: str, k: int) -> list[list[dict[str, Any]]]:
    """For each mask's logits (masks, vocabulary), the k most probable words as {"token", "probability"}, best
    first; padding, OOV and the mask itself are never proposed."""
    scores = np.asarray(logits, np.float64).copy()
    scores[:, [PAD_ID, OOV_ID, encoder.ids[mask_token]]] = -np.inf
    probabilities = softmax(scores)
    return [[{"token": encoder.vocabulary[i], "probability": round(float(row[i]), 4)} for i in np.argsort(-row)[:k]]
            for row in probabilities]


def _masked_language_model(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Masked language modelling: each `--text` with its [MASK]s filled by the most probable word, and the
    `--top-k` candidates (default 5) of each mask."""
    k, spec = _positive(args.top_k, 5, "--top-k"), model.preprocessing
    mask_token = spec.spec["input"].get("mask_token", "[MASK]")
    results, lines = [], []
    for text in _texts(args):
        ids, positions = mask_encode(spec.encoder, text, mask_token)
        masks = fill_masks(model.logits(ids[np.newaxis])[0][positions], spec.encoder, mask_token, k)
        filled = text
        for guesses in masks:
            filled = filled.replace(mask_token, guesses[0]["token"], 1)
        results.append({"text": text, "filled": filled, "masks": masks})
        lines.append(filled + "".join(
            f"\n  [MASK] {number}: " + ", ".join(f"{g['token']} ({g['probability']:.3f})" for g in guesses)
            for number, guesses in enumerate(masks, 1)
        ))
    return "\n".join(lines), {"results": results}


# --- translation: an English sentence in, its translation out, greedily through a packed decoder step ----------

SPACE_BEFORE_DROPPED = re.compile(r" ([.,)])")
SPACE_AFTER_DROPPED = re.compile(r"(['(]) ")
HYPHEN = re.compile(r" ?- ?")


def detokenize(tokens: list[str], level: str) -> str:
    """A translation's tokens as text: characters joined as they are; words joined by spaces, except before
    . , ) and after an apostrophe or ( and around hyphens (French keeps its space before ! ? : ;)."""
    if level == "character":
        return "".join(tokens)
    text = SPACE_AFTER_DROPPED.sub(r"\1", SPACE_BEFORE_DROPPED.sub(r"\1", " ".join(tokens)))
    return HYPHEN.sub("-", text)


def mask_special(logits: np.ndarray, start_id: int) -> np.ndarray:
    """Logits (batch, vocabulary) with padding, OOV and [start] made impossible: never a translation's token."""
    logits = np.array(logits, np.float64)
    logits[:, [PAD_ID, OOV_ID, start_id]] = -np.inf
    return logits


def greedy_decode(
    advance: Callable[[np.ndarray], np.ndarray], batch: int, start_id: int, end_id: int, max_length: int
) -> list[list[int]]:
    """Each row's most likely next token, step by step from [start], until [end] or `max_length` tokens.

    `advance(tokens (batch,))` feeds one token per row to the decoder and returns the next logits (batch,
    vocabulary). Rows that have ended are fed padding; the returned ids stop before [end]."""
    tokens, ended = np.full(batch, start_id, np.int64), np.zeros(batch, bool)
    decoded: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(max_length):
        tokens = np.where(ended, PAD_ID, mask_special(advance(tokens), start_id).argmax(axis=-1))
        for row in np.flatnonzero(~ended):
            if tokens[row] != end_id:
                decoded[row].append(int(tokens[row]))
        ended |= tokens == end_id
        if ended.all():
            break
    return decoded


def translate_text(
    step: Callable[[np.ndarray], np.ndarray], source: TextEncoder, target: TextEncoder, sentences: list[str],
    cache_size: int, start_id: int, end_id: int,
) -> list[str]:
    """Greedy translations of raw sentences. `step` maps packed [source ids (S), token, position, caches
    (cache_size)] to [next-token logits (target vocabulary), position + 1, new caches], a batch at a time."""
    ids = source.encode(sentences).astype(np.float32)
    vocabulary, batch = len(target.vocabulary), len(sentences)
    position, caches = np.zeros((batch, 1), np.float32), np.zeros((batch, cache_size), np.float32)

    def advance(tokens: np.ndarray) -> np.ndarray:
        nonlocal position, caches
        output = np.asarray(step(np.concatenate([ids, tokens[:, None], position, caches], axis=1).astype(np.float32)))
        if output.shape != (batch, vocabulary + 1 + cache_size):
            raise RunnerError(f"the step model gives {output.shape[1]} values, not vocabulary + 1 + caches "
                              f"{vocabulary + 1 + cache_size}")
        position, caches = output[:, vocabulary : vocabulary + 1], output[:, vocabulary + 1 :]
        return output[:, :vocabulary]

    decoded = greedy_decode(advance, batch, start_id, end_id, target.sequence_length or 1)
    return [detokenize([target.vocabulary[i] for i in row], target.level) for row in decoded]


def _translation(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Translation: each `--text` (or line of `--input`) translated greedily."""
    spec = model.preprocessing
    try:
        target = TextEncoder(spec.spec["input"]["target_tokenizer"])
        settings = [int(spec.spec[key]) for key in ("cache_size", "start_id", "end_id")]
    except (KeyError, TypeError, ValueError) as err:
        raise RunnerError(f"{PREPROCESSING_FILE} lacks or mangles the translation setting {first_line(err)}") from None
    texts = _texts(args)
    translations = translate_text(model.logits, spec.encoder, target, texts, *settings)
    return "\n".join(translations), {"texts": texts, "translations": translations}


# task name -> (model, args) -> (text to print, JSON result). Each task's post-processing lives above.
TASK_RUNNERS: dict[str, Callable[[EdgeModel, argparse.Namespace], tuple[str, dict[str, Any]]]] = {
    "classification": _classify,
    "generation": _generate,
    "detection": _detect,
    "segmentation": _segment,
    "reconstruction": _reconstruct,
    "language-modelling": _language_model,
    "word-embedding": _neighbours,
    "forecasting": _forecast,
    "regression": _regress,
    "translation": _translation,
    "masked-language-modelling": _masked_language_model,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a kerasdl .tflite/.onnx model without TensorFlow.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        print(infer(args))
    except RunnerError as err:
        print(f"runner: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
