"""TensorBoard's HParams dashboard for a search: `tensorboard --logdir SEARCH_DIR` shows every trial's values
and results in its table and parallel-coordinates views (keras-tuner#298), and each trial's learning curves.

`write_experiment` declares the search space's domains and the metrics once, at the log folder's root;
`write_trial` writes, into `trial_ID/`, the trial's hyperparameter values, its score (the objective at its
best epoch, as Keras Tuner ranks trials), its seconds and peak memory, and its per-epoch logs as scalars.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import keras_tuner
import tensorflow as tf
from keras_tuner.src.engine.hyperparameters import Boolean, Choice, Fixed, Float, Int
from tensorboard.plugins.hparams import api as hp_api

SCORE = "score"  # the objective at the trial's best epoch
PER_TRIAL = ("seconds", "peak_rss_mb")  # constant over a trial's epochs: one value each, not a curve


def write_experiment(logdir: Path, space: keras_tuner.HyperParameters, logged: set[str], objective: str) -> None:
    """The search's hyperparameters with their domains, and the metrics each trial reports (once per folder)."""
    logdir.mkdir(parents=True, exist_ok=True)
    if any(path.is_file() for path in logdir.glob("events.out.tfevents.*")):
        return
    metrics = [hp_api.Metric(SCORE, display_name=f"{objective} (best epoch)")]
    metrics += [hp_api.Metric(name) for name in (*sorted(logged), *PER_TRIAL)]
    with tf.summary.create_file_writer(str(logdir)).as_default():
        hp_api.hparams_config(hparams=[_hparam(value) for value in space.space], metrics=metrics)


def write_trial(logdir: Path, trial: keras_tuner.engine.trial.Trial, objective: str,
                history: list[dict[str, float]]) -> None:
    """`trial`'s values and results in `logdir/trial_ID` (replacing what an earlier run of it wrote)."""
    folder = logdir / f"trial_{trial.trial_id}"
    shutil.rmtree(folder, ignore_errors=True)
    with tf.summary.create_file_writer(str(folder)).as_default():
        hp_api.hparams(dict(trial.hyperparameters.values), trial_id=trial.trial_id)
        if trial.score is not None:
            tf.summary.scalar(SCORE, float(trial.score), step=0)
        for name in PER_TRIAL:
            if trial.metrics.exists(name):
                tf.summary.scalar(name, float(trial.metrics.get_last_value(name)), step=0)
        for row in history:
            for name, value in row.items():
                if name not in ("epoch", *PER_TRIAL):
                    tf.summary.scalar(name, value, step=int(row["epoch"]))


def _hparam(hp: Any) -> hp_api.HParam:
    """A Keras Tuner hyperparameter as a TensorBoard one, with the same domain."""
    if isinstance(hp, Choice):
        return hp_api.HParam(hp.name, hp_api.Discrete(list(hp.values)))
    if isinstance(hp, Boolean):
        return hp_api.HParam(hp.name, hp_api.Discrete([False, True]))
    if isinstance(hp, Int):
        return hp_api.HParam(hp.name, hp_api.IntInterval(int(hp.min_value), int(hp.max_value)))
    if isinstance(hp, Float):
        return hp_api.HParam(hp.name, hp_api.RealInterval(float(hp.min_value), float(hp.max_value)))
    if isinstance(hp, Fixed):
        return hp_api.HParam(hp.name, hp_api.Discrete([hp.value]))
    raise TypeError(f"hyperparameter {hp.name!r} of unknown kind {type(hp).__name__}")
