"""Run an exported kerasdl model (.tflite or .onnx) on raw inputs, without TensorFlow.

This file is standalone on purpose: it imports only the standard library and numpy at module level, and
the runtime it needs (`ai-edge-litert` for .tflite, `onnxruntime` for .onnx, Pillow for image files) only
when it needs it. Copy it next to an artifact folder (model file + preprocessing.json) and run

    python runner.py ARTIFACT [--input FILE] [--output FILE] [--top-k K] [--samples N] [--json]

`kerasdl infer` runs this same code. Post-processing happens here, per task (preprocessing.json says which):
softmax and top-k for classification, images and masks as PNG, boxes as JSON after NumPy NMS.
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
            self.class_names: list[str] = list(spec.get("class_names", []))
            self.task: str = spec.get("task", "classification")
            self.spec = spec  # the task's own fields (output scaling, detection thresholds...)
        except (KeyError, TypeError, ValueError) as err:
            raise RunnerError(f"{PREPROCESSING_FILE} lacks or mangles {_first_line(err)}") from err
        if self.kind not in ("image", "noise"):
            raise RunnerError(f"this runner handles image or noise inputs, not {self.kind!r}")

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
    """An exported model and its preprocessing: raw inputs in, the artifact's outputs out."""

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
    parser.add_argument("--input", help="an image file (PNG/JPEG) or a .npy array of raw pixels")
    parser.add_argument("--output", help="where to write an image or boxes result (default: beside --input)")
    parser.add_argument("--top-k", type=int, default=3, help="classification: classes to print per sample (default 3)")
    parser.add_argument("--samples", type=int, default=16, help="generation: samples to draw (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="generation: noise seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def infer(args: argparse.Namespace) -> str:
    """Run the artifact as its task says (preprocessing.json's "task"); the text (or JSON) to print."""
    model = EdgeModel(args.artifact)
    if model.task not in TASK_RUNNERS:
        raise RunnerError(f"this runner does not know task {model.task!r}; known: {', '.join(TASK_RUNNERS)}")
    text, result = TASK_RUNNERS[model.task](model, args)
    if args.json:
        return json.dumps({"artifact": str(model.path), "task": model.task, **result}, indent=2)
    return text


def _classify(model: EdgeModel, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Classification: the top-k classes of each input sample."""
    if args.top_k < 1:
        raise RunnerError(f"--top-k must be >= 1, got {args.top_k}")
    predictions = model.top_k(model.preprocessing.read(_required_input(args)), args.top_k)
    text = "\n".join(
        f"sample {i}: " + ", ".join(f"{p['class']} ({p['probability']:.3f})" for p in top)
        for i, top in enumerate(predictions)
    )
    return text, {"input": str(args.input), "predictions": predictions}


def _required_input(args: argparse.Namespace) -> str:
    if not args.input:
        raise RunnerError("--input is required for this model (an image file or a .npy array)")
    return args.input


# --- generation: noise in, a PNG grid of images out ------------------------------------------------------


def sample_noise(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """`count` latent vectors z ~ N(0, I) fixed by `seed`: the same noise here as in `kerasdl.models.gan`."""
    return np.random.default_rng(seed).standard_normal((count, *shape)).astype(np.float32)


def write_image_grid(images: np.ndarray, path: str | Path) -> tuple[int, int]:
    """Tile images in [-1, 1] (N, H, W, C) row by row into one 8-bit PNG; its (rows, columns)."""
    from PIL import Image

    count, height, width, channels = images.shape
    columns = int(np.ceil(np.sqrt(count)))
    rows = -(-count // columns)
    pixels = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    grid = np.zeros((rows * height, columns * width, channels), np.uint8)
    for i, image in enumerate(pixels):
        row, column = divmod(i, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if channels == 1 else grid).save(path)
    return rows, columns


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
            raise RunnerError(f"{path}: not a readable image ({_first_line(err)})") from err
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


# task name -> (model, args) -> (text to print, JSON result). Each task's post-processing lives below.
TASK_RUNNERS: dict[str, Callable[[EdgeModel, argparse.Namespace], tuple[str, dict[str, Any]]]] = {
    "classification": _classify,
    "generation": _generate,
    "detection": _detect,
    "segmentation": _segment,
    "reconstruction": _reconstruct,
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
