"""A two-trial random search on one registered model, with the checks every model's search must pass."""

from __future__ import annotations

from pathlib import Path

from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.training import TrainConfig
from kerasdl.tuning import tune


def two_trial_search(config: TrainConfig, out: Path) -> dict:
    """Search `config.model`'s space for two random trials (no retrain) and check what every search must show.

    Both trials finish with a score, they try different values, the objective is the task's main validation
    metric with its direction, and the best trial is the best of the two. Returns `best_hyperparameters`.
    """
    spec = model_spec(config.model)
    task = get_task(spec.task)
    result = tune(config, "random", max_trials=2, out=out, retrain=False, verbose=0)
    assert [row["status"] for row in result.trials] == ["COMPLETED", "COMPLETED"], result.trials
    best = result.best
    assert (best["objective"], best["direction"]) == (task.objective, task.objective_mode)
    scores = [row[task.objective] for row in result.trials]
    assert all(score == score for score in scores), scores  # no NaN
    assert best["score"] == (max if task.objective_mode == "max" else min)(scores)
    first, second = (row for row in result.trials)
    knobs = [name for name in best["hyperparameters"] if not name.startswith("tuner/")]
    assert any(first[name] != second[name] for name in knobs), "both trials drew the same values"
    return best
