"""How our tuners run a trial and what they leave after it: isolation, learning curves, bounded disk, TensorBoard.

`tuner_class(RandomSearch, ...)` gives a Keras Tuner class whose trials
- run in a fresh process when `isolate` (kerasdl.tuning.isolation), else in this one as Keras Tuner runs them;
- log each epoch to the trial's `history.json` (`EpochLog`);
- leave, once ended, TensorBoard HParams summaries (kerasdl.tuning.hparams), and only the best `keep_best`
  trials' checkpoints (kerasdl.tuning.disk);
and whose records are written crash-safely (kerasdl.tuning.records).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras_tuner

from kerasdl import files
from kerasdl.tuning import disk, hparams, records
from kerasdl.tuning.hypermodel import EpochLog
from kerasdl.tuning.isolation import fit_in_child

HISTORY = "history.json"  # in each trial's folder
DISK_LOG = "folder_mb.json"  # in the search folder: its size after each trial


class SearchTuner(records.Records):
    """Base placed after a Keras Tuner tuner class; see the module docstring. Set by `tuner_class`."""

    isolate: bool = False
    keep_best: int | None = None  # None: every trial's checkpoint is kept
    logdir: Path | None = None  # TensorBoard's: HParams summaries are written here
    out: Path | None = None  # the search folder, whose size `disk.json` records

    def run_trial(self, trial: keras_tuner.engine.trial.Trial, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().run_trial(trial, *args, **kwargs)
        except KeyboardInterrupt:  # the user's stop: on resume the trial reruns without counting this run
            records.mark_interrupted(self.get_trial_dir(trial.trial_id))
            raise

    def _build_and_fit_model(self, trial: keras_tuner.engine.trial.Trial, *args: Any, **kwargs: Any) -> Any:
        if self.isolate:
            return fit_in_child(self, trial, kwargs)
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), EpochLog(self.history_path(trial.trial_id))]
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def on_trial_end(self, trial: keras_tuner.engine.trial.Trial) -> None:
        super().on_trial_end(trial)  # Keras Tuner records the trial's end (and the oracle its score)
        if self.logdir is not None:
            ended = self.oracle.get_trial(trial.trial_id)
            hparams.write_trial(self.logdir, ended, self.oracle.objective.name, self.history(trial.trial_id))
        if self.keep_best is not None and not self._is_worker_hyperband():
            disk.keep_best_checkpoints(self, self.keep_best)
        if self.out is not None:
            log = self.out / DISK_LOG
            sizes = json.loads(log.read_text()) if log.exists() else {}
            files.write_json(log, {**sizes, trial.trial_id: disk.folder_mb(self.out)})

    def history(self, trial_id: str) -> list[dict[str, float]]:
        """The trial's per-epoch logs ([] when it never finished an epoch)."""
        path = self.history_path(trial_id)
        return json.loads(path.read_text()) if path.exists() else []

    def history_path(self, trial_id: str) -> Path:
        """Where the trial's `EpochLog` writes, in this process or an isolated one."""
        return Path(self.get_trial_dir(trial_id)) / HISTORY

    def _is_worker_hyperband(self) -> bool:
        """A Hyperband worker cannot see which trials later rounds continue from, so it deletes nothing."""
        return self._is_worker() and isinstance(self, keras_tuner.Hyperband)


def tuner_class(base: type[keras_tuner.Tuner], *, isolate: bool, keep_best: int | None, logdir: Path | None,
                out: Path | None) -> type[keras_tuner.Tuner]:
    """`base` (RandomSearch, Hyperband...) running and recording its trials through `SearchTuner`."""
    options = {"isolate": isolate, "keep_best": keep_best, "logdir": logdir, "out": out}
    return type(base.__name__, (base, SearchTuner), options)
