"""Training throughput of the `fit` and `tape` loops for `mlp` and `cnn-cifar`, against the curriculum's PyTorch code.

Workload, the same on both sides: `../shared/bench/torch_ref.py mlp|cnn` with its defaults, i.e. 12,000
random samples shaped like MNIST (mlp) or CIFAR-10 (cnn-cifar), batch 64, Adam 1e-3, cross-entropy,
reshuffled each epoch, training steps only (no validation: the reference has none), float32, on the CPU.

How both sides are timed, so that warm-up is treated the same:

* Every measurement is a fresh process, as the reference is: a kerasdl measurement runs this file again
  with `--child` (own TensorFlow runtime, thread pools and XLA caches, nothing carried over from the
  previous measurement; the environment of `--env` applies to it alone).
* Each process trains one warm-up epoch, untimed, then times exactly one epoch. The reference does this
  itself (`epoch(); t = ...; epoch()`). kerasdl trains 2 epochs and reports the second: its first epoch
  traces the tf.functions and compiles them with XLA for both batch shapes (64 and the last, 32), so the
  second runs with everything compiled, as the reference's second runs with its allocator and autograd
  warm. An epoch is timed from its start (including the shuffle and iterator set-up, like the
  reference's DataLoader) to the end of its last training step; validation after it is not timed.
* Measurements alternate: each repeat runs the reference, then every kerasdl variant, for each model,
  and every other repeat runs them in reverse order, so slow drift on a shared machine hits both sides
  alike. Medians over `--repeats` are reported, with their ratio to the reference's median. The CPU
  time other processes took during each measurement is recorded with it; on a shared machine compare
  ratios, not absolute numbers, and use `--max-other-load` to start each measurement only when the
  machine is quiet (PyTorch's OpenMP threads slow down far more than TensorFlow's under contention).

    python benchmarks/train_throughput.py --torch-python /tmp/torchenv/bin/python
    python benchmarks/train_throughput.py --torch-python /tmp/torchenv/bin/python --models cnn-cifar \\
        --variants all --repeats 7 --env TF_ENABLE_ONEDNN_OPTS=0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TORCH_REF = Path(__file__).resolve().parents[2] / "shared" / "bench" / "torch_ref.py"
SAMPLES, BATCH_SIZE = 12_000, 64
WARMUP_EPOCHS = 2  # kerasdl's; the reference's is 1 (see the docstring)


@dataclass(frozen=True)
class Workload:
    """One model of the comparison: its torch_ref.py kind and the shape of its synthetic inputs."""

    model: str
    torch_kind: str
    data_name: str
    input_shape: tuple[int, int, int]


WORKLOADS = {
    "mlp": Workload("mlp", "mlp", "synthetic-mnist", (28, 28, 1)),
    "cnn-cifar": Workload("cnn-cifar", "cnn", "synthetic-cifar", (32, 32, 3)),
}


@dataclass(frozen=True)
class Variant:
    """A kerasdl loop and its speed knobs; None means the kerasdl default (TrainConfig, registry)."""

    loop: str
    steps_per_execution: int | None = None
    jit_compile: bool | None = None

    @property
    def label(self) -> str:
        if self.steps_per_execution is None and self.jit_compile is None:
            return f"{self.loop} (kerasdl defaults)"
        steps = "default steps" if self.steps_per_execution is None else f"{self.steps_per_execution} step/call"
        xla = "default XLA" if self.jit_compile is None else ("XLA" if self.jit_compile else "no XLA")
        return f"{self.loop} ({steps}, {xla})"


DEFAULTS = [Variant("fit"), Variant("tape")]
VARIANT_SETS = {
    "defaults": DEFAULTS,
    # The defaults, with XLA forced each way (which one the default is depends on the model), and the
    # straightforward port (one step per call, no XLA) for contrast.
    "all": DEFAULTS + [
        Variant(loop, None, jit) for loop in ("fit", "tape") for jit in (True, False)
    ] + [Variant(loop, 1, False) for loop in ("fit", "tape")],
}


# --- one kerasdl measurement (the child process) ------------------------------------------------------


def synthetic_bundle(workload: Workload, seed: int = 0):
    """Uniform [0, 1) inputs and random labels, as the reference uses: throughput does not depend on values."""
    import numpy as np

    from kerasdl import data

    rng = np.random.default_rng(seed)
    x = rng.random((SAMPLES, *workload.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, SAMPLES).astype(np.int32)
    small = (x[:BATCH_SIZE], y[:BATCH_SIZE])  # validation runs once per epoch, untimed; keep it small
    info = data.DatasetInfo(
        name=workload.data_name,
        input_shape=workload.input_shape,
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        split_sizes={"train": SAMPLES, "validation": len(small[0]), "test": len(small[0])},
    )
    bundle = getattr(data, "ArrayBundle", data.DataBundle)  # the array-backed bundle
    return bundle(info, {"train": (x, y), "validation": small, "test": small})


def measure_kerasdl(workload: Workload, variant: Variant) -> dict:
    """Train WARMUP_EPOCHS + 1 epochs in this process; the last one's samples/s, and every epoch's seconds."""
    import keras

    from kerasdl.registry import model_spec
    from kerasdl.training import RunDirectory, TrainConfig
    from kerasdl.training.train import resolve
    from kerasdl.training.loops import LoopContext
    from kerasdl.training import loops

    class EpochTimer(keras.callbacks.Callback):
        """Seconds from each epoch's start to the end of its last training step (validation excluded),
        and the CPU time this process used meanwhile (all threads)."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.cpu_seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._cpu_start = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            self._last, self._cpu_last = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(self._last - self._start)
            self.cpu_seconds.append(self._cpu_last - self._cpu_start)

    knobs = {"steps_per_execution": variant.steps_per_execution, "jit_compile": variant.jit_compile}
    config = TrainConfig(
        workload.model, loop=variant.loop, epochs=WARMUP_EPOCHS + 1, batch_size=BATCH_SIZE, patience=100,
        **{key: value for key, value in knobs.items() if value is not None},
    )
    config = resolve(config)  # the model's defaults filled in (XLA per model), as `kerasdl train` runs it
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory(tmp)
        run.prepare(config.to_json())
        ctx = LoopContext(model_spec(workload.model), synthetic_bundle(workload), config, run, False, [timer], verbose=0)
        loops.get_loop(variant.loop)(ctx)
    return {
        "samples_per_second": SAMPLES / timer.seconds[-1],
        "epoch_seconds": timer.seconds,
        "epoch_cpu_seconds": timer.cpu_seconds,
        "config": {"steps_per_execution": config.steps_per_execution, "jit_compile": config.jit_compile},
    }


def child_main(spec: str) -> None:
    values = json.loads(spec)
    result = measure_kerasdl(WORKLOADS[values["model"]], Variant(**values["variant"]))
    print("RESULT " + json.dumps(result), flush=True)


# --- the comparison (the parent process) --------------------------------------------------------------


class OtherLoad:
    """The CPU time other processes used while a measurement ran, as a fraction of the whole machine.

    Busy time of all CPUs (/proc/stat) minus the CPU time of this script's own children (getrusage).
    """

    def __enter__(self):
        self._stat, self._children = self._busy_and_total(), self._children_seconds()
        return self

    def __exit__(self, *exc):
        (busy0, total0), (busy1, total1) = self._stat, self._busy_and_total()
        own = (self._children_seconds() - self._children) * os.sysconf("SC_CLK_TCK")
        self.fraction = max(0.0, (busy1 - busy0 - own) / max(total1 - total0, 1))

    @staticmethod
    def _busy_and_total() -> tuple[int, int]:
        try:
            ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except OSError:  # not Linux: report no load rather than fail
            return 0, 0
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # busy = all but idle and iowait

    @staticmethod
    def _children_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def kerasdl_run(workload: Workload, variant: Variant, env: dict[str, str]) -> dict:
    spec = json.dumps({"model": workload.model, "variant": vars(variant)})
    child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    out = subprocess.run(
        [sys.executable, __file__, "--child", spec], capture_output=True, text=True, env=child_env
    )
    match = re.search(r"^RESULT (.*)$", out.stdout, re.MULTILINE)
    if out.returncode or not match:
        raise RuntimeError(f"kerasdl {variant.label} on {workload.model} failed:\n{out.stderr[-3000:]}")
    return json.loads(match.group(1))


def torch_run(python: str, workload: Workload) -> float:
    command = [python, str(TORCH_REF), workload.torch_kind, "--samples", str(SAMPLES), "--batch-size", str(BATCH_SIZE)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"samples_per_s=(\d+)", out).group(1))


def wait_for_quiet(max_other_load: float | None, max_wait_s: float) -> None:
    """With --max-other-load: wait (at most max_wait_s) until other processes use less of the CPU than that."""
    deadline = time.monotonic() + max_wait_s
    while max_other_load is not None and time.monotonic() < deadline:
        with OtherLoad() as sample:
            time.sleep(2.0)
        if sample.fraction < max_other_load:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", help="python of a venv with torch==2.13.0 (see ../shared/bench/README.md)")
    parser.add_argument("--models", default=",".join(WORKLOADS), help="comma-separated, of: " + ", ".join(WORKLOADS))
    parser.add_argument("--variants", choices=sorted(VARIANT_SETS), default="defaults")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for the kerasdl processes only (e.g. TF_ENABLE_ONEDNN_OPTS=0)")
    parser.add_argument("--max-other-load", type=float, metavar="FRACTION",
                        help="before each measurement, wait until other processes use less than this fraction "
                             "of the CPU (sampled over 2 s; at most --max-wait seconds)")
    parser.add_argument("--max-wait", type=float, default=120.0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.child)

    workloads = [WORKLOADS[name.strip()] for name in args.models.split(",") if name.strip()]
    variants = VARIANT_SETS[args.variants]
    env = dict(item.split("=", 1) for item in args.env)
    # Per model and side: the runs, each {"value": samples/s, "other_load": others' CPU share meanwhile}.
    runs: dict[str, dict[str, list[dict]]] = {w.model: {"torch": [], **{v.label: [] for v in variants}} for w in workloads}
    configs: dict[tuple[str, str], dict] = {}
    for repeat in range(args.repeats):
        for workload in workloads:
            order: list[Variant | None] = [None, *variants] if args.torch_python else [*variants]  # None: PyTorch
            for item in order if repeat % 2 == 0 else order[::-1]:
                wait_for_quiet(args.max_other_load, args.max_wait)
                with OtherLoad() as load:
                    if item is None:
                        run = {"value": torch_run(args.torch_python, workload)}
                    else:
                        result = kerasdl_run(workload, item, env)
                        configs[workload.model, item.label] = result["config"]
                        run = {"value": result["samples_per_second"],
                               "epoch_seconds": [round(s, 3) for s in result["epoch_seconds"]],
                               "epoch_cpu_seconds": [round(s, 3) for s in result["epoch_cpu_seconds"]]}
                run["other_load"] = round(load.fraction, 2)
                label = "PyTorch" if item is None else item.label
                runs[workload.model]["torch" if item is None else item.label].append(run)
                print(f"  repeat {repeat + 1}/{args.repeats} {workload.model:<9} {label:<34} {run['value']:>8.0f} "
                      f"samples/s (other processes: {load.fraction:.0%} of the CPU)", flush=True)

    report = {
        "workload": {"samples": SAMPLES, "batch_size": BATCH_SIZE, "optimizer": "adam", "learning_rate": 1e-3,
                     "warmup_epochs": WARMUP_EPOCHS, "timed_epochs": 1, "repeats": args.repeats},
        "kerasdl_env": env, "cpu_count": os.cpu_count(), "models": {},
    }
    loads = []
    for workload in workloads:
        model_runs = runs[workload.model]
        loads += [run["other_load"] for rows in model_runs.values() for run in rows]
        torch_values = [run["value"] for run in model_runs["torch"]]
        torch_median = statistics.median(torch_values) if torch_values else None
        rows = []
        for variant in variants:
            median = statistics.median(run["value"] for run in model_runs[variant.label])
            rows.append({
                "variant": variant.label, "loop": variant.loop, **configs[workload.model, variant.label],
                "samples_per_second": round(median),
                "ratio_vs_torch": round(median / torch_median, 2) if torch_median else None,
                "runs": [{**run, "value": round(run["value"])} for run in model_runs[variant.label]],
            })
        report["models"][workload.model] = {
            "torch_reference": {"script": f"torch_ref.py {workload.torch_kind}", "samples_per_second": torch_median,
                                "runs": model_runs["torch"]},
            "kerasdl": rows,
        }
        print(f"\n{workload.model}: {SAMPLES:,} samples {workload.input_shape}, batch {BATCH_SIZE}, Adam 1e-3")
        print(f"{'variant':<40} {'samples/s':>10} {'vs PyTorch':>11}")
        if torch_median:
            print(f"{'PyTorch (torch_ref.py ' + workload.torch_kind + ')':<40} {torch_median:>10.0f} {'1.00x':>11}")
        for row in rows:
            ratio = f"{row['ratio_vs_torch']:.2f}x" if row["ratio_vs_torch"] else "-"
            print(f"{row['variant']:<40} {row['samples_per_second']:>10} {ratio:>11}")
    report["other_load"] = {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}
    print(f"\nother processes during the measurements: median {statistics.median(loads):.0%} of the CPU "
          f"(min {min(loads):.0%}, max {max(loads):.0%}; {os.cpu_count()} CPUs)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
