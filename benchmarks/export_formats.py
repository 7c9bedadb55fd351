"""Size, batch-1 latency and test accuracy of one run in every export format, against Keras itself.

Rows: Keras fp32 (`model(x)` on one sample, the way an app would call it without an export), SavedModel
(its serving signature under TensorFlow), and TFLite fp32 / fp16 / dynamic-range / int8 and ONNX, each
timed in the TF-free runner a device uses. Bytes are the file (or folder) size; Keras's is model.keras,
which also holds the optimizer state. Latency is the mean over `--runs` calls after warm-up.

    kerasdl train mlp --data mnist --epochs 3 --out /tmp/mnist_run
    python benchmarks/export_formats.py /tmp/mnist_run [--runs 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import keras
import numpy as np

from kerasdl.training.train import load_for
from kerasdl.edge.runner import mean_latency_ms
from kerasdl.export.exporter import export_run
from kerasdl.export.formats import FORMATS
from kerasdl.training import RunDirectory

RESULTS = Path(__file__).resolve().parent / "results" / "export_formats.json"


def keras_row(run: RunDirectory, runs: int) -> dict:
    """The baseline: the trained Keras model called eagerly on one sample."""
    config = run.read_config()
    model = keras.saving.load_model(run.model_path)
    x, y = load_for(config).split("test")
    logits = model.predict(x, batch_size=256, verbose=0)
    return {
        "format": "keras-fp32",
        "bytes": run.model_path.stat().st_size,
        "latency_ms_batch1": mean_latency_ms(lambda sample: model(sample, training=False), x[:1], runs=runs),
        "accuracy": float(np.mean(logits.argmax(axis=1) == y)),
        "max_abs_diff": 0.0,
    }


def format_rows(run: RunDirectory, runs: int, folder: Path) -> list[dict]:
    rows = []
    for name in FORMATS:
        report = export_run(run.path, name, folder / name, latency_runs=runs).report
        rows.append({
            "format": name,
            "bytes": report["bytes"],
            "latency_ms_batch1": report["latency_ms_batch1"],
            "accuracy": report["parity"]["accuracy"],
            "max_abs_diff": report["parity"]["max_abs_diff"],
            "builtin_ops_only": report["builtin_ops_only"],
            "runtime": report["runtime"],
        })
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    keras_bytes, keras_ms = rows[0]["bytes"], rows[0]["latency_ms_batch1"]
    print(f"\n{title}")
    header = ("format", "bytes", "x Keras", "ms/sample", "speed-up", "accuracy", "max|diff|")
    print(f"{header[0]:<15} " + " ".join(f"{h:>{w}}" for h, w in zip(header[1:], (10, 8, 10, 9, 9, 10))))
    for row in rows:
        print(
            f"{row['format']:<15} {row['bytes']:>10,} {row['bytes'] / keras_bytes:>8.2f} "
            f"{row['latency_ms_batch1']:>10.4f} {keras_ms / row['latency_ms_batch1']:>8.1f}x "
            f"{row['accuracy']:>9.4f} {row['max_abs_diff']:>10.2g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="finished run directories (one table each)")
    parser.add_argument("--runs", type=int, default=1000, help="timed single-sample calls per format")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    results = {"machine": {"python": platform.python_version(), "processor": platform.machine()}, "runs": []}
    for run_dir in args.run_dirs:
        run = RunDirectory(run_dir)
        run.require_model()
        config = run.read_config()
        with tempfile.TemporaryDirectory() as folder:
            rows = [keras_row(run, args.runs), *format_rows(run, args.runs, Path(folder))]
        title = f"{config['model']} on {config['data']} ({run.path})"
        print_table(title, rows)
        results["runs"].append(
            {"run_dir": str(run.path), "model": config["model"], "data": config["data"], "rows": rows}
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
