"""Bounded disk: a search keeps the checkpoints of its best K trials only, deleting the rest as it goes.

Keras Tuner saves every trial's best-epoch weights and never deletes any, so a long search of a large model
fills the disk (keras-tuner#172, #288). After each trial, `keep_best_checkpoints` deletes the checkpoint of
every ended trial outside the best K by the objective. Kept: trials still running, and (Hyperband) trials
that a bracket still in play may continue from. The rest of a trial's folder (its record, history.json, a
few KB) stays, so the trial table and plots stay whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

ENDED = (trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED, trial_module.TrialStatus.INVALID)


def keep_best_checkpoints(tuner: Any, keep: int) -> list[str]:
    """Delete the checkpoints of ended trials outside the best `keep`; the ids of the trials whose were deleted."""
    oracle = tuner.oracle  # a distributed worker's is a client of the chief's: it ranks, but lists no trials
    best = {trial.trial_id for trial in oracle.get_best_trials(keep) if trial.status == "COMPLETED"}
    protected = best | _continued_from(oracle)
    deleted = []
    for record in sorted(Path(tuner.project_dir).glob("trial_*/trial.json")):  # every trial, the others' too
        trial = trial_module.Trial.load(str(record))
        if trial.status not in ENDED or trial.trial_id in protected:
            continue
        checkpoint = Path(tuner._get_checkpoint_fname(trial.trial_id))
        if checkpoint.exists():
            checkpoint.unlink()
            deleted.append(trial.trial_id)
    return deleted


def _continued_from(oracle: keras_tuner.Oracle) -> set[str]:
    """Hyperband: the trials whose weights a later round of a bracket still in play starts from."""
    brackets = getattr(oracle, "_brackets", [])
    return {info[key] for bracket in brackets for round_ in bracket["rounds"] for info in round_
            for key in ("id", "past_id") if info.get(key) is not None}


def folder_mb(folder: Path) -> float:
    """Size of the files under `folder`, in MiB."""
    total = 0
    for path in Path(folder).rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # a temporary file renamed meanwhile
            continue
    return round(total / 2**20, 3)
