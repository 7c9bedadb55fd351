"""Tokens per second of a trained GPT's generation with and without its key/value cache.

With the cache each new token is one fixed-size step (one position through every block, attending to the
cached keys and values); without it the sequence model re-reads the whole context for every token (the
window, padded: a Keras model of fixed input shape), so a token costs a full forward pass. Both sample the
same tokens (tests/test_gpt.py checks it). Each figure is the median of `--repeats` runs after a warm-up.

    kerasdl train gpt --data shakespeare --out /tmp/gpt_run
    python benchmarks/generation_cache.py /tmp/gpt_run [--lengths 100 200 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import keras

from kerasdl.models.gpt import generate_uncached
from kerasdl.tasks.language_modelling import context_length, generate
from kerasdl.training import RunDirectory

RESULTS = Path(__file__).resolve().parent / "results" / "generation_cache.json"
PROMPT = "ROMEO:"


def tokens_per_second(generator, model, tokenizer, length: int, repeats: int) -> float:
    """`length` / the median wall time of generating `length` tokens (temperature 1, a new seed each run)."""
    seconds = []
    for seed in range(repeats):
        started = time.perf_counter()
        generator(model, tokenizer, PROMPT, length, 1.0, seed=seed)
        seconds.append(time.perf_counter() - started)
    return length / statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a gpt run directory")
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run = RunDirectory(args.run_dir)
    model = keras.saving.load_model(run.model_path)
    tokenizer = run.read_data_state()["tokenizer"]
    generators = {"cached": generate, "uncached": generate_uncached}
    for generator in generators.values():  # warm-up: tracing the step and the forward pass
        generator(model, tokenizer, PROMPT, 5, 1.0)
    rows = []
    for length in args.lengths:
        row = {"tokens": length, **{f"{name}_tokens_per_second": round(tokens_per_second(generator, model, tokenizer,
                                                                                          length, args.repeats), 1)
                                     for name, generator in generators.items()}}
        row["speedup"] = round(row["cached_tokens_per_second"] / row["uncached_tokens_per_second"], 2)
        rows.append(row)
        print(f"{length:4d} tokens: cached {row['cached_tokens_per_second']:7.1f} tokens/s, uncached "
              f"{row['uncached_tokens_per_second']:7.1f} tokens/s, x{row['speedup']}")
    config = run.read_config()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "run": str(run.path), "model_params": config.get("model_params"), "window": context_length(model),
        "repeats": args.repeats, "machine": platform.processor() or platform.machine(), "rows": rows,
    }, indent=2) + "\n")
    print(f"-> {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
