"""Training throughput of the NumPy MLP (kerasdl.scratch) against the same MLP in Keras.

Architecture Flatten -> Dense 128 ReLU -> Dense 64 ReLU -> Dense 10, Adam 1e-3, batch 64, float32,
on random inputs of digits size (64 features) and MNIST size (784 features); throughput does not
depend on the values. Each variant trains one warm-up epoch, then `--repeats` timed epochs; the
median is reported, and each variant's ratio to the NumPy MLP comes from the same run. The NumPy MLP
runs with one BLAS thread, as the "numpy" training loop runs it, and for contrast with the BLAS
library's default threads, which are much slower for these small matrices when the cores are
shared (with TensorFlow's thread pools, or other processes).

    python benchmarks/scratch_vs_keras.py [--samples 12000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Callable

import keras
import numpy as np
from threadpoolctl import threadpool_limits

from kerasdl.data import DatasetInfo
from kerasdl.models.mlp import build_mlp
from kerasdl.scratch import MLP, Adam, train
from kerasdl.training.config import TrainConfig
from kerasdl.tasks import get_task
from kerasdl.training.loops import compile_model

HIDDEN, CLASSES, BATCH = (128, 64), 10, 64
RESULTS = Path(__file__).resolve().parent / "results" / "scratch_vs_keras.json"
NUMPY = "numpy (kerasdl.scratch, 1 BLAS thread)"
# (label, steps per tf.function call, XLA): kerasdl's compile defaults, and plain Keras.
KERAS_VARIANTS = [("keras fit (kerasdl defaults: 32 steps/call, XLA)", 32, True), ("keras fit (plain)", 1, False)]


def numpy_epoch(n_features: int, x: np.ndarray, y: np.ndarray, blas_threads: int | None) -> Callable[[], None]:
    """A function that trains one NumPy MLP for one more epoch per call; `blas_threads` None: BLAS's default."""
    model, optimizer = MLP((n_features, *HIDDEN, CLASSES), seed=0, dtype=np.float32), Adam(1e-3)

    def epoch() -> None:
        with threadpool_limits(blas_threads):
            train(model, x, y, optimizer, epochs=1, batch_size=BATCH)

    return epoch


def keras_epoch(
    n_features: int, x: np.ndarray, y: np.ndarray, steps_per_execution: int, jit_compile: bool
) -> Callable[[], object]:
    """A function that runs one more `model.fit` epoch of the same MLP, built and compiled as kerasdl does."""
    keras.utils.set_random_seed(0)
    model = build_mlp(DatasetInfo("random", (n_features,), CLASSES, tuple(map(str, range(CLASSES)))), HIDDEN)
    config = TrainConfig("mlp", steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    compile_model(model, config, steps_per_epoch=len(x) // BATCH, task=get_task("classification"))
    return partial(model.fit, x, y, batch_size=BATCH, epochs=1, verbose=0)


def benchmark(n_features: int, samples: int, repeats: int) -> dict:
    """Samples per second of every variant, timed in turns so that load changes affect all alike."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, n_features)).astype(np.float32)
    y = rng.integers(0, CLASSES, samples).astype(np.int32)
    epochs = {
        NUMPY: numpy_epoch(n_features, x, y, blas_threads=1),
        "numpy, default BLAS threads": numpy_epoch(n_features, x, y, blas_threads=None),
        **{label: keras_epoch(n_features, x, y, *options) for label, *options in KERAS_VARIANTS},
    }
    for run in epochs.values():
        run()  # warm-up: tracing, compilation, allocations
    seconds: dict[str, list[float]] = {label: [] for label in epochs}
    for _ in range(repeats):
        for label, run in epochs.items():
            start = time.perf_counter()
            run()
            seconds[label].append(time.perf_counter() - start)
    rates = {label: samples / statistics.median(times) for label, times in seconds.items()}
    return {
        "features": n_features,
        "samples_per_second": {label: round(rate) for label, rate in rates.items()},
        "ratio_to_numpy": {label: round(rate / rates[NUMPY], 2) for label, rate in rates.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = [benchmark(n, args.samples, args.repeats) for n in (64, 784)]
    for result in results:
        print(f"{result['features']} features:")
        for label, rate in result["samples_per_second"].items():
            print(f"  {label:<50} {rate:>9,} samples/s  x{result['ratio_to_numpy'][label]:.2f}")
    report = {
        "architecture": f"Flatten -> {' -> '.join(f'Dense {u} ReLU' for u in HIDDEN)} -> Dense {CLASSES}",
        "batch_size": BATCH,
        "samples": args.samples,
        "repeats": args.repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "platform": platform.platform(),
            "numpy": np.__version__,
            "keras": keras.__version__,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
