"""Samples/s of `cnn-cifar`'s input pipeline alone, of its train step alone, and of both together, on the
`cifar10` JPEG folder and on its TFRecord shards: is the model ever starved of data?

For each source, on the training split as `kerasdl train cnn-cifar` reads it (batch 64, reshuffled, photo
augmentation), one process measures:

* `pipeline_start`: the first `--batches` batches of a fresh pipeline, start-up included (the JPEG source
  decodes and resizes every photo of the split before its first batch: it shuffles the whole split after
  `cache()`; the shards fill a 2,048-record shuffle buffer).
* `pipeline`: the next `--batches` batches, iterated without a model (steady state: the JPEG source then reads
  its in-memory cache, the shards decode PNG from disk every epoch).
* `train_step`: `model.fit` on `--batches` of those batches held in memory (`Dataset.cache()`), after a
  warm-up epoch that traces and compiles: the model's own speed, no input pipeline.
* `training`: `model.fit` on the live pipeline for `--batches` steps, after a warm-up epoch of as many.

Sources alternate within each repeat (JPEG first, then shards; reversed on odd repeats) and each figure is the
median over `--repeats`. The model is never starved when `pipeline` exceeds `train_step` and `training` is
close to `train_step`.

tf.data settings of the shards (kerasdl.data.shards): shard file order reshuffled each epoch; `interleave`
of TFRecordDataset over cycle_length=4 shards, num_parallel_calls=AUTOTUNE, deterministic=False; a
shuffle buffer of 2,048 serialized records; parse + PNG decode in a `map` with num_parallel_calls=AUTOTUNE;
batch; augmentation map (AUTOTUNE); `prefetch(AUTOTUNE)`. The JPEG folder (kerasdl.data.bundle.ImageBundle):
decode + resize `map` (AUTOTUNE), `cache()`, shuffle of the whole split, batch, scale, augmentation,
`prefetch(AUTOTUNE)`.

    python benchmarks/input_pipeline.py [--shards DIR] [--batches 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "input_pipeline.json"
MODEL = "cnn-cifar"
MEASURES = ("pipeline_start", "pipeline", "train_step", "training")


def per_second(batches, batch_size: int) -> float:
    """Samples/s of iterating `batches` (an iterator of (x, y) batches) to its end."""
    started, samples = time.perf_counter(), 0
    for x, _ in batches:
        samples += int(x.shape[0])
    return samples / (time.perf_counter() - started)


def fit_per_second(model, dataset, steps: int, batch_size: int) -> float:
    """Samples/s of the second of two `model.fit` epochs of `steps` steps (the first traces and compiles)."""
    import keras

    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            times[-1] = time.perf_counter() - times[-1]

    model.fit(dataset, epochs=2, steps_per_epoch=steps, callbacks=[Timer()], shuffle=False, verbose=0)
    return steps * batch_size / times[-1]


def measure(name: str, bundle, config, batches: int) -> dict[str, float]:
    from kerasdl.registry import model_spec
    from kerasdl.tasks import get_task
    from kerasdl.training.loops import build_model, compile_model

    spec, task = model_spec(MODEL), get_task(model_spec(MODEL).task)
    size = config.batch_size
    pipeline = bundle.dataset("train", size, shuffle_seed=config.seed, augment=config.augment).repeat()
    stream = iter(pipeline)
    row = {"pipeline_start": per_second((next(stream) for _ in range(batches)), size),
           "pipeline": per_second((next(stream) for _ in range(batches)), size)}
    model = build_model(spec, bundle.info, config)
    compile_model(model, config, batches, task)
    row["train_step"] = fit_per_second(model, pipeline.take(batches).cache().repeat(), batches, size)
    row["training"] = fit_per_second(model, pipeline, batches, size)
    print(f"  {name:6s} " + "  ".join(f"{key} {value:8.1f}" for key, value in row.items()), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", help="cifar10's shard folder (default: written by `kerasdl data shard` into a temp folder)")
    parser.add_argument("--batches", type=int, default=60, help="batches per measurement (default 60)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from kerasdl.data import load
    from kerasdl.data.shards import write_shards
    from kerasdl.registry import model_spec
    from kerasdl.training import TrainConfig
    from kerasdl.training.train import resolve

    config = resolve(TrainConfig(MODEL, data=model_spec(MODEL).default_data))
    shards = args.shards or str(Path(tempfile.mkdtemp(prefix="cifar10-shards-")))
    if not (Path(shards) / "manifest.json").exists():
        write_shards(config.data, shards, shard_mb=4.0, verbose=0)
    sources = {"jpeg": config.data, "shards": f"tfrecord:{shards}"}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
    for repeat in range(args.repeats):
        order = list(sources) if repeat % 2 == 0 else list(reversed(sources))
        print(f"repeat {repeat + 1}/{args.repeats} (samples/s)", flush=True)
        for name in order:
            bundle = load(sources[name], validation_fraction=config.validation_fraction, seed=config.seed,
                          image_size=config.image_size)
            rows[name].append(measure(name, bundle, config, args.batches))
    medians = {name: {key: round(statistics.median(r[key] for r in rows[name]), 1) for key in MEASURES} for name in rows}
    print(f"\nmedians over {args.repeats} repeats, samples/s (batch {config.batch_size}, {args.batches} batches each):")
    print(f"{'source':8s}" + "".join(f"{key:>16s}" for key in MEASURES) + f"{'starved':>10s}")
    for name, row in medians.items():
        starved = "yes" if row["pipeline"] < row["train_step"] else "no"
        print(f"{name:8s}" + "".join(f"{row[key]:16.1f}" for key in MEASURES) + f"{starved:>10s}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": MODEL, "data": config.data, "batch_size": config.batch_size, "augment": config.augment,
        "batches": args.batches, "repeats": args.repeats, "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "medians": medians, "runs": rows,
    }, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
