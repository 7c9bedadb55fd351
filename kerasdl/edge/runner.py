"""Run an exported kerasdl classifier (.tflite or .onnx) on raw inputs, without TensorFlow.

This file is standalone on purpose: it imports only the standard library and numpy at module level, and
the runtime it needs (`ai-edge-litert` for .tflite, `onnxruntime` for .onnx, Pillow for image files) only
when it needs it. Copy it next to an artifact folder (model file + preprocessing.json) and run

    python runner.py ARTIFACT --input FILE [--top-k K] [--json]

`kerasdl infer` runs this same code. The artifact outputs logits; softmax happens here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

PREPROCESSING_FILE = "preprocessing.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class RunnerError(Exception):
    """A bad artifact, preprocessing file or input; printed as one line."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class Preprocessing:
    """What travels with the model (preprocessing.json): input shape and dtype, normalization, class names.

    Raw inputs are pixels as the data set stores them, in [0, pixel_max]; the model sees
    `raw * scale + offset`. 8-bit image files are first mapped from [0, 255] onto [0, pixel_max].
    """

    def __init__(self, spec: dict[str, Any]):
        try:
            self.kind: str = spec["input"]["kind"]
            self.shape: tuple[int, ...] = tuple(int(d) for d in spec["input"]["shape"])
            self.dtype = np.dtype(spec["input"]["dtype"])
            self.scale = float(spec["input"]["scale"])
            self.offset = float(spec["input"]["offset"])
            self.pixel_max = float(spec["input"]["pixel_max"])
            self.class_names: list[str] = list(spec["class_names"])
        except (KeyError, TypeError, ValueError) as err:
            raise RunnerError(f"{PREPROCESSING_FILE} lacks or mangles {_first_line(err)}") from err
        if self.kind != "image":
            raise RunnerError(f"this runner handles image inputs, not {self.kind!r}")

    @classmethod
    def beside(cls, artifact: Path) -> "Preprocessing":
        path = artifact.parent / PREPROCESSING_FILE
        try:
            return cls(json.loads(path.read_text()))
        except FileNotFoundError:
            raise RunnerError(f"{path} is missing: it sits beside the artifact (kerasdl export writes it)") from None
        except json.JSONDecodeError as err:
            raise RunnerError(f"{path} is not valid JSON ({err})") from err

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """Raw pixels, one sample or a batch, -> a batch of model inputs (in the model's input dtype)."""
        raw = np.asarray(raw, dtype=np.float32)
        per_sample = int(np.prod(self.shape))
        if raw.size == 0 or raw.size % per_sample:
            raise RunnerError(f"input of shape {raw.shape} does not hold samples of shape {self.shape}")
        return (raw.reshape(-1, *self.shape) * self.scale + self.offset).astype(self.dtype)

    def read(self, path: str | Path) -> np.ndarray:
        """Raw pixels from a .npy array (one sample or a batch) or an image file (resized, gray or RGB)."""
        path = Path(path)
        if not path.is_file():
            raise RunnerError(f"input {path} does not exist")
        if path.suffix.lower() == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise RunnerError(f"{path}: not a readable .npy array ({_first_line(err)})") from err
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return self._read_image(path)
        raise RunnerError(f"input {path}: expected .npy or an image ({', '.join(IMAGE_SUFFIXES)})")

    def _read_image(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        if len(self.shape) != 3:
            raise RunnerError(f"{path}: image files need a (height, width, channels) input, not {self.shape}")
        height, width, channels = self.shape
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32)
        except (OSError, UnidentifiedImageError) as err:
            raise RunnerError(f"{path}: not a readable image ({_first_line(err)})") from err
        return pixels.reshape(self.shape) * (self.pixel_max / 255.0)


class LiteRTSession:
    """A .tflite model under the LiteRT interpreter as `session(batch) -> logits`.

    Integer (int8) inputs and outputs are quantized and dequantized here with the tensors' own scale and
    zero point, so callers always pass and get floats. The batch dimension is resized to each call's.
    """

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(path))
        except (ValueError, RuntimeError) as err:
            raise RunnerError(f"{path}: not a valid .tflite model ({_first_line(err)})") from err
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.io = {"input": tensor_io(self.input), "output": tensor_io(self.output)}
        self.batch = 0  # the batch size the tensors are allocated for

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.batch != len(x):
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.batch = len(x)
        self.interpreter.set_tensor(self.input["index"], quantize(x, self.input))
        self.interpreter.invoke()
        return dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)


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
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime has its own exception types for unreadable models
            raise RunnerError(f"{path}: not a valid .onnx model ({_first_line(err)})") from err
        self.input, self.output = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.io = {"input": {"name": self.input.name, "dtype": self.input.type}, "output": {"name": self.output.name}}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output.name], {self.input.name: x})[0]


_SESSIONS = {".tflite": LiteRTSession, ".onnx": OnnxSession}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class EdgeModel:
    """An exported classifier and its preprocessing: raw inputs in, class names and probabilities out."""

    def __init__(self, artifact: str | Path):
        self.path = Path(artifact)
        if self.path.suffix not in _SESSIONS:
            raise RunnerError(
                f"{self.path}: expected a .tflite or .onnx artifact"
                + (" (a SavedModel needs TensorFlow; export tflite or onnx for the edge)" if self.path.is_dir() else "")
            )
        if not self.path.is_file():
            raise RunnerError(f"artifact {self.path} does not exist")
        self.preprocessing = Preprocessing.beside(self.path)
        self.session = _SESSIONS[self.path.suffix](self.path)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The model's raw outputs for a batch of normalized inputs."""
        return self.session(x)

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per sample, from raw pixels."""
        return softmax(self.logits(self.preprocessing.normalize(raw)))

    def top_k(self, raw: np.ndarray, k: int = 3) -> list[list[dict[str, Any]]]:
        """Per sample, the k most probable classes as {"class", "index", "probability"}, best first."""
        names = self.preprocessing.class_names
        probabilities = self.predict(raw)
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
    parser.add_argument("artifact", help="model.tflite or model.onnx, with preprocessing.json beside it")
    parser.add_argument("--input", required=True, help="an image file (PNG/JPEG) or a .npy array of raw pixels")
    parser.add_argument("--top-k", type=int, default=3, help="classes to print per sample (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def infer(args: argparse.Namespace) -> str:
    """Run the artifact on the input file; the text (or JSON) to print."""
    if args.top_k < 1:
        raise RunnerError(f"--top-k must be >= 1, got {args.top_k}")
    model = EdgeModel(args.artifact)
    predictions = model.top_k(model.preprocessing.read(args.input), args.top_k)
    if args.json:
        return json.dumps({"artifact": str(model.path), "input": str(args.input), "predictions": predictions}, indent=2)
    return "\n".join(
        f"sample {i}: " + ", ".join(f"{p['class']} ({p['probability']:.3f})" for p in top)
        for i, top in enumerate(predictions)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a kerasdl .tflite/.onnx classifier without TensorFlow.")
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
