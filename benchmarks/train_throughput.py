"""Training throughput of the `fit` and `tape` loops for `mlp`, against the curriculum's PyTorch code.

Same workload as ../shared/bench/torch_ref.py: 12,000 MNIST-shaped samples, batch 64, Adam 1e-3,
training steps only (validation excluded, as the reference has none). The reference times one epoch
after one warm-up epoch. kerasdl's first two epochs also trace its tf.functions and compile them with
XLA (a one-off cost, about 2 s here, that a real run pays once), so it trains 5 epochs and takes the
median of epochs 3-5. Each kerasdl variant and the reference run alternately, `--repeats` times;
medians are reported with ratios.

    python benchmarks/train_throughput.py --torch-python /tmp/torchenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from kerasdl.data import DataBundle, DatasetInfo
from kerasdl.registry import model_spec
from kerasdl.training import RunDirectory, TrainConfig
from kerasdl.training.loops import LoopContext, get_loop

SAMPLES = 12_000
WARMUP_EPOCHS, TIMED_EPOCHS = 2, 3
TORCH_REF = Path(__file__).resolve().parents[2] / "shared" / "bench" / "torch_ref.py"
# (label, loop, steps_per_execution, jit_compile): the kerasdl defaults, and a straightforward port for contrast.
VARIANTS = [
    ("fit (default: 32 steps/call, XLA)", "fit", 32, True),
    ("fit (plain: 1 step/call, no XLA)", "fit", 1, False),
    ("tape (default: 32 steps/call, XLA)", "tape", 32, True),
    ("tape (plain: 1 step/call, no XLA)", "tape", 1, False),
]


class EpochTimer(keras.callbacks.Callback):
    """Seconds from each epoch's start to its last training batch (validation excluded)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self._last - self._start)


def synthetic_bundle(seed: int = 0) -> DataBundle:
    """Random inputs shaped like MNIST, as the reference uses: throughput does not depend on the values."""
    rng = np.random.default_rng(seed)
    x = rng.random((SAMPLES, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, SAMPLES).astype(np.int32)
    small = (x[:64], y[:64])  # validation runs once per epoch; keep it out of the way
    info = DatasetInfo("synthetic-mnist", (28, 28, 1), 10, tuple("0123456789"), {"train": SAMPLES})
    return DataBundle(info, {"train": (x, y), "validation": small, "test": small})


def kerasdl_samples_per_second(loop: str, steps_per_execution: int, jit_compile: bool) -> float:
    config = TrainConfig("mlp", loop=loop, epochs=WARMUP_EPOCHS + TIMED_EPOCHS, patience=10,
                         steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory(tmp)
        run.prepare(config.to_json())
        ctx = LoopContext(model_spec("mlp"), synthetic_bundle(), config, run, False, [timer], verbose=0)
        get_loop(loop)(ctx)
    return SAMPLES / statistics.median(timer.seconds[WARMUP_EPOCHS:])


def torch_samples_per_second(python: str) -> float:
    out = subprocess.run([python, str(TORCH_REF), "mlp"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"samples_per_s=(\d+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", help="python of a venv with torch==2.13.0 (see ../shared/bench/README.md)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    args = parser.parse_args()

    samples: dict[str, list[float]] = {label: [] for label, *_ in VARIANTS}
    reference: list[float] = []
    for _ in range(args.repeats):
        if args.torch_python:
            reference.append(torch_samples_per_second(args.torch_python))
        for label, loop, spe, jit in VARIANTS:
            samples[label].append(kerasdl_samples_per_second(loop, spe, jit))

    torch_median = statistics.median(reference) if reference else None
    rows = []
    for label, values in samples.items():
        median = statistics.median(values)
        ratio = round(median / torch_median, 2) if torch_median else None
        rows.append({"variant": label, "samples_per_second": round(median), "runs": [round(v) for v in values],
                     "ratio_vs_torch": ratio})
    print(f"{'variant':<38} {'samples/s':>10} {'vs PyTorch':>11}")
    if torch_median:
        print(f"{'PyTorch reference (torch_ref.py mlp)':<38} {torch_median:>10.0f} {'1.00x':>11}")
    for row in rows:
        ratio = f"{row['ratio_vs_torch']:.2f}x" if row["ratio_vs_torch"] else "-"
        print(f"{row['variant']:<38} {row['samples_per_second']:>10} {ratio:>11}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "workload": {"model": "mlp", "samples": SAMPLES, "batch_size": 64, "optimizer": "adam", "learning_rate": 1e-3},
        "torch_reference": {"samples_per_second": torch_median, "runs": reference},
        "kerasdl": rows,
    }, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
