"""One Keras Tuner search per model family, on the curriculum's data, for the README's tuning tables.

    python scripts/tune_families.py [--families cnn rnn ...] [--out runs/tune-families]

Each search is a random search of a few trials with a short budget (these are CPU figures: the point is what
each space searches and that it ranks trials on the task's own metric, not a final score). Each family's
result (best objective, its values, trials, failed trials, wall time) is added to OUT/results.json as soon
as its search ends, and a family already there is not searched again, so an interrupted run continues.
The table is printed in the README's format at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from kerasdl.quiet import quiet_libraries

# family -> (model, TrainConfig keyword arguments, trials). Budgets: the smallest that still ranks trials.
SEARCHES = {
    "mlp": ("mlp", {"epochs": 20}, 8),
    "mlp (regression)": ("mlp-regressor", {"epochs": 40}, 8),
    "cnn": ("cnn-mnist", {"epochs": 2, "task_params": {"train_samples": 6000}}, 6),
    "transfer": ("mobilenet-v2", {"epochs": 3, "image_size": 96, "model_params": {"weights": "none"}}, 4),
    "rnn": ("lstm", {"epochs": 2}, 4),
    "text-cnn": ("text-cnn", {"epochs": 2}, 6),
    "transformer": ("transformer-classifier", {"epochs": 1}, 4),
    "autoencoder": ("conv-autoencoder", {"epochs": 2, "task_params": {"train_samples": 6000}}, 4),
    "segmentation": ("unet", {"epochs": 3, "batch_size": 8}, 4),
    "forecast": ("lstm-forecast", {"epochs": 5, "batch_size": 128}, 6),
    "char-rnn": ("char-gru", {"epochs": 1, "task_params": {"sequence_length": 64, "train_samples": 3200}}, 4),
    "embeddings": ("word2vec", {"epochs": 1}, 4),
    "gan": ("dcgan", {"epochs": 2, "task_params": {"train_samples": 6000}}, 4),  # + classifier_run: CLASSIFIER
    "detection": ("centernet", {"epochs": 10, "batch_size": 16, "learning_rate": 3e-3}, 4),
    "transformer-lm": ("gpt", {"epochs": 1, "task_params": {"sequence_length": 64, "train_samples": 6400}}, 4),
    "translation": ("translator", {"epochs": 3, "batch_size": 128,
                                   "task_params": {"sequence_length": 5, "vocabulary_size": 6000}}, 4),
}
# The GAN's objective is measured in a trained digit classifier's features: this run gives it.
CLASSIFIER = ("cnn-mnist", {"epochs": 2, "task_params": {"train_samples": 12000}})


def search(family: str, out: Path) -> dict:
    from kerasdl.registry import model_spec
    from kerasdl.training import TrainConfig
    from kerasdl.tuning import tune

    name, settings, trials = SEARCHES[family]
    spec = model_spec(name)
    config = TrainConfig(name, **{**spec.train_defaults, **settings})
    if spec.task == "generation":
        config = dataclasses.replace(config, task_params={**config.task_params, "classifier_run": str(classifier(out))})
    started = time.perf_counter()
    result = tune(config, "random", max_trials=trials, out=out / name, retrain=False, verbose=0)
    seconds = time.perf_counter() - started
    best = result.best
    return {
        "family": family, "model": name, "data": spec.default_data, "trials": len(result.trials),
        "failed": sum(row["status"] != "COMPLETED" for row in result.trials),
        "objective": best["objective"], "direction": best["direction"], "best": round(best["score"], 4),
        "worst": round(_worst(result.trials, best), 4), "hyperparameters": best["hyperparameters"],
        "epochs": config.epochs, "minutes": round(seconds / 60, 1),
    }


def classifier(out: Path) -> Path:
    """The digit classifier the GAN's Frechet distance is measured with, trained once into OUT/classifier."""
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    name, settings = CLASSIFIER
    return train_once(TrainConfig(name, **settings), out / "classifier")[0].path


def _worst(rows: list[dict], best: dict) -> float:
    scores = [row[best["objective"]] for row in rows if row[best["objective"]] is not None]
    return (min if best["direction"] == "max" else max)(scores)


def table(results: list[dict]) -> str:
    lines = ["| family | model on data | objective | best (worst) | trials | epochs each | minutes | best values |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        values = ", ".join(f"{k} {v}" for k, v in r["hyperparameters"].items())
        arrow = "up" if r["direction"] == "max" else "down"
        lines.append(f"| {r['family']} | `{r['model']}` on {r['data']} | {r['objective']} ({arrow}) | "
                     f"{r['best']} ({r['worst']}) | {r['trials']} | {r['epochs']} | {r['minutes']} | {values} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", default=list(SEARCHES), choices=list(SEARCHES))
    parser.add_argument("--out", type=Path, default=Path("runs/tune-families"))
    args = parser.parse_args()
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else []
    with quiet_libraries():
        for family in args.families:
            if any(r["family"] == family for r in results):
                continue
            print(f"searching {family}...", flush=True)
            results.append(search(family, args.out))
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2) + "\n")
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print(table([r for r in results if r["family"] in args.families]))


if __name__ == "__main__":
    main()
