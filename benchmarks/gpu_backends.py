"""The GPU check: `cnn-cifar` and `gpt` under Keras's JAX backend, float32 and mixed_bfloat16, against the
curriculum's PyTorch CIFAR-10 CNN on the same device and the same data. Never imports TensorFlow.

The GPU machine has JAX and PyTorch but no TensorFlow, and only small files reach it, so this runs in two steps:

    # here (where the data sets are): 4,100 CIFAR-10 training images and tiny Shakespeare as ids, 11.5 MiB
    python benchmarks/gpu_backends.py --prepare benchmarks/results/gpu_data.npz
    # there, from the repository root, with the keras wheel installed (this script sets KERAS_BACKEND=jax)
    PYTHONPATH=. python benchmarks/gpu_backends.py --data benchmarks/results/gpu_data.npz --device gpu

Each measurement trains from NumPy arrays for `--warmup` untimed steps (compilation, allocator warm-up), then
times `--steps` steps of the same batch size; samples/s = steps x batch / seconds. Keras runs `model.fit`
(XLA-compiled by JAX); PyTorch runs the curriculum's loop (Adam 1e-3, CrossEntropyLoss), under
`torch.autocast(bfloat16)` for the mixed run. Both move each NumPy batch to the device inside the timed steps.
Results are printed and written as JSON to `$OUT/gpu_backends.json`, else benchmarks/results/gpu_backends.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np

PRECISIONS = ("float32", "mixed_bfloat16")
CIFAR_IMAGES = 4100  # what --prepare keeps: 410 per class, 12.6 MB of uint8 pixels (11.5 MiB compressed)
GPT_BATCH, GPT_WINDOW = 32, 100  # gpt's train_defaults batch and the language-modelling task's default window
CNN_BATCH = 64  # the curriculum's CIFAR-10 batch
SEED = 0


# --- here: the data file ---------------------------------------------------------------------------------
def prepare(out: Path, data_root: Path, images: int) -> None:
    """Write `out` (.npz): a seeded class-balanced sample of CIFAR-10 training JPEGs as uint8 (N, 32, 32, 3) with
    labels, and tiny Shakespeare as character ids (0 pads, 1 is out-of-vocabulary) with its characters."""
    from PIL import Image

    folder = data_root / "cifar10" / "train"
    classes = sorted(path.name for path in folder.iterdir() if path.is_dir())
    rng = np.random.default_rng(SEED)
    per_class = images // len(classes)
    files, labels = [], []
    for label, name in enumerate(classes):
        paths = sorted((folder / name).glob("*.jpg"))
        files += [paths[i] for i in sorted(rng.choice(len(paths), per_class, replace=False))]
        labels += [label] * per_class
    pixels = np.stack([np.asarray(Image.open(path).convert("RGB"), np.uint8) for path in files])
    text = (data_root / "shakespeare" / "input.txt").read_text(encoding="utf-8")
    characters = sorted(set(text))
    index = {char: i + 2 for i, char in enumerate(characters)}
    ids = np.array([index[char] for char in text], np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, images=pixels, labels=np.array(labels, np.uint8), shakespeare=ids,
                        characters=np.array(characters), classes=np.array(classes))
    print(f"wrote {out}: {len(pixels)} images, {len(ids):,} characters, {out.stat().st_size / 2**20:.1f} MiB")


# --- there: the measurements -----------------------------------------------------------------------------
def cifar_batches(data: Any, batch: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` batches of images in [-1, 1] (the curriculum's Normalize(0.5, 0.5)), NHWC, drawn with a seed."""
    chosen = np.random.default_rng(SEED).integers(0, len(data["labels"]), batch * count)
    return data["images"][chosen].astype(np.float32) / 127.5 - 1.0, data["labels"][chosen].astype(np.int32)


def text_batches(data: Any, batch: int, count: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` batches of windows of character ids and their next characters."""
    ids = data["shakespeare"].astype(np.int32)
    starts = np.random.default_rng(SEED).integers(0, len(ids) - window - 1, batch * count)
    windows = np.stack([ids[start : start + window + 1] for start in starts])
    return windows[:, :-1], windows[:, 1:]


def import_builders() -> Callable[..., Any]:
    """`model_spec` with only kerasdl's cnn and gpt modules imported: the kerasdl.models package imports every
    family (their plotting, tokenizer and scikit-learn dependencies), which a bare GPU machine lacks."""
    import kerasdl

    package = types.ModuleType("kerasdl.models")
    package.__path__ = [str(Path(kerasdl.__file__).parent / "models")]
    sys.modules.setdefault("kerasdl.models", package)
    for module in ("cnn", "gpt"):
        importlib.import_module(f"kerasdl.models.{module}")
    from kerasdl.registry import model_spec

    return model_spec


def keras_run(name: str, precision: str, x: np.ndarray, y: np.ndarray, batch: int, warmup: int, info: Any) -> dict:
    """Samples/s of `model.fit` on the registered model `name` under `precision`, after `warmup` batches."""
    import keras

    model_spec = import_builders()
    keras.utils.set_random_seed(SEED)
    keras.config.set_dtype_policy(precision)
    try:
        model = model_spec(name).build(info)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    split = warmup * batch
    model.fit(x[:split], y[:split], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    started = time.perf_counter()
    history = model.fit(x[split:], y[split:], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - started  # fit's end reads the loss back: the steps have finished
    return _result("keras-jax", name, precision, batch, len(x) - split, seconds, history.history["loss"][-1])


def curriculum_cnn(torch: Any) -> Any:
    """The curriculum's CIFAR-10 CNN, as it writes it: conv 32 (same) -> pool -> conv 64 (valid) -> pool ->
    Linear 64*7*7 -> 600 -> 120 -> 10."""
    nn = torch.nn
    features = nn.Sequential(nn.Conv2d(3, 32, kernel_size=(3, 3), padding="same"), nn.ReLU(),
                             nn.MaxPool2d(kernel_size=(2, 2), stride=(2, 2)), nn.Conv2d(32, 64, kernel_size=(3, 3)),
                             nn.ReLU(), nn.MaxPool2d(kernel_size=(2, 2), stride=(2, 2)))
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 600), nn.ReLU(), nn.Linear(600, 120), nn.ReLU(),
                               nn.Linear(120, 10))
    return nn.Sequential(features, classifier)


def torch_run(precision: str, x: np.ndarray, y: np.ndarray, batch: int, warmup: int, device: str) -> dict:
    """Samples/s of the curriculum's PyTorch training loop on the same batches (NCHW), after `warmup` batches."""
    import torch

    torch.manual_seed(SEED)
    target = "cuda" if device == "gpu" else "cpu"
    model = curriculum_cnn(torch).to(target)
    loss_fn, optimizer = torch.nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def step(i: int) -> Any:
        inputs = torch.from_numpy(images[i * batch : (i + 1) * batch]).to(target)
        labels = torch.from_numpy(y[i * batch : (i + 1) * batch].astype(np.int64)).to(target)
        with torch.autocast(target, dtype=torch.bfloat16, enabled=precision != "float32"):
            loss = loss_fn(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    steps = len(x) // batch
    for i in range(warmup):
        step(i)
    _sync(torch, target)
    started = time.perf_counter()
    for i in range(warmup, steps):
        loss = step(i)
    _sync(torch, target)
    seconds = time.perf_counter() - started
    return _result("pytorch", "curriculum-cnn", precision, batch, (steps - warmup) * batch, seconds, loss.item())


def _sync(torch: Any, target: str) -> None:
    if target == "cuda":
        torch.cuda.synchronize()


def _result(framework: str, model: str, precision: str, batch: int, samples: int, seconds: float, loss: float) -> dict:
    row = {"framework": framework, "model": model, "precision": precision, "batch_size": batch,
           "timed_samples": samples, "seconds": round(seconds, 3), "samples_per_second": round(samples / seconds, 1),
           "last_loss": round(float(loss), 4)}
    print(f"{framework:10s} {model:15s} {precision:15s} {row['samples_per_second']:>10,.0f} samples/s  "
          f"(loss {row['last_loss']})", flush=True)
    return row


def ratios(rows: list[dict]) -> dict[str, float]:
    """Keras-JAX over PyTorch for the CNN at each precision, and mixed over float32 for every framework/model."""
    speed = {(row["framework"], row["model"], row["precision"]): row["samples_per_second"] for row in rows}
    out = {}
    for precision in PRECISIONS:
        keras_cnn = speed.get(("keras-jax", "cnn-cifar", precision))
        torch_cnn = speed.get(("pytorch", "curriculum-cnn", precision))
        if keras_cnn and torch_cnn:
            out[f"cnn {precision}: keras-jax / pytorch"] = round(keras_cnn / torch_cnn, 3)
    for framework, model in {(f, m) for f, m, _ in speed}:
        mixed, full = speed.get((framework, model, "mixed_bfloat16")), speed.get((framework, model, "float32"))
        if mixed and full:
            out[f"{framework} {model}: mixed_bfloat16 / float32"] = round(mixed / full, 3)
    return dict(sorted(out.items()))


def measure(args: argparse.Namespace) -> dict:
    import jax

    from kerasdl.data import DatasetInfo

    data = np.load(args.data)
    classes = tuple(str(name) for name in data["classes"])
    characters = ("", "[UNK]", *(str(char) for char in data["characters"]))
    cifar = DatasetInfo("cifar10", (32, 32, 3), len(classes), classes)
    text = DatasetInfo("shakespeare", (GPT_WINDOW,), len(characters), characters, vocabulary=characters)
    count = args.warmup + args.steps
    x, y = cifar_batches(data, CNN_BATCH, count)
    tokens, next_tokens = text_batches(data, GPT_BATCH, count, GPT_WINDOW)
    rows = []
    for precision in args.precisions:
        rows.append(keras_run("cnn-cifar", precision, x, y, CNN_BATCH, args.warmup, cifar))
        if not args.no_torch:
            rows.append(torch_run(precision, x, y, CNN_BATCH, args.warmup, args.device))
        rows.append(keras_run("gpt", precision, tokens, next_tokens, GPT_BATCH, args.warmup, text))
    versions = {"jax": jax.__version__, "keras": _version("keras")}
    if not args.no_torch:
        versions["torch"] = _version("torch")
    return {
        "device": str(jax.devices()[0]),
        "device_kind": jax.devices()[0].device_kind,
        "versions": versions,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "runs": rows,
        "ratios": ratios(rows),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def _version(package: str) -> str:
    from importlib import metadata

    return metadata.version(package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, metavar="OUT.npz", help="write the data file (here) and stop")
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("KERASDL_DATA", "../shared/data")))
    parser.add_argument("--images", type=int, default=CIFAR_IMAGES, help="--prepare: CIFAR-10 training images")
    parser.add_argument("--data", type=Path, default=Path("benchmarks/results/gpu_data.npz"))
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--steps", type=int, default=300, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (compilation)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference (not installed)")
    parser.add_argument("--json", type=Path, help="default: $OUT/gpu_backends.json, else benchmarks/results/")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.data_root, args.images)
        return
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported
    os.environ["JAX_PLATFORMS"] = "cuda" if args.device == "gpu" else "cpu"  # no silent fallback to the CPU
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # an import of TensorFlow fails here, loudly
    report = measure(args)
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("benchmarks/results")
    out = args.json or folder / "gpu_backends.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report["ratios"].items():
        print(f"{key}: {value}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
