"""Keras Tuner's own records (`oracle.json`, `trial_*/trial.json`, `<tuner id>.json`), written crash-safely.

Keras Tuner writes them in place, so a kill could leave one half-written and the search could not resume.
Our tuners write them through `kerasdl.files` instead, and reload what a kill between two of those writes
leaves as Keras Tuner would have had it: a trial the oracle never recorded is forgotten (its id is given
again), and a trial that was running is run again from its start, so no trial is lost or counted twice.

A trial the process died in counts as one run of it (Keras Tuner counts only runs that end, so a trial that
kills its process, e.g. out of memory, was rerun forever: keras-tuner#439). It is retried once
(`MAX_RETRIES`); killed again, it is recorded as failed with that error and the search goes on. A Ctrl-C
(`KeyboardInterrupt`, marked in the trial's folder by `mark_interrupted`) is not the trial's fault and
does not count.
"""

from __future__ import annotations

from pathlib import Path

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from kerasdl import files

RUNNING, INVALID, FAILED = (trial_module.TrialStatus.RUNNING, trial_module.TrialStatus.INVALID,
                           trial_module.TrialStatus.FAILED)
MAX_RETRIES = 1  # runs of a trial after the first, whether it raised or its process died
INTERRUPTED = "interrupted"  # file in a trial's folder: the user stopped the search during this run


def mark_interrupted(trial_dir: str | Path) -> None:
    """Record that the user (Ctrl-C), not the trial, ended the current run of the trial in `trial_dir`."""
    files.write_text(Path(trial_dir) / INTERRUPTED, "KeyboardInterrupt\n")


class _AtomicOracle:
    """Mixin for a Keras Tuner oracle class: crash-safe records, and a reload that repairs a killed search."""

    def save(self) -> None:
        files.write_json(self._get_oracle_fname(), self.get_state(), indent=None)

    def _save_trial(self, trial: keras_tuner.engine.trial.Trial) -> None:
        files.write_json(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", trial.get_state(), indent=None)

    def reload(self) -> None:
        super().reload()  # Keras Tuner queues the trials that were running for a retry
        recorded = set(self.start_order)
        for trial_id in [trial_id for trial_id in self.trials if trial_id not in recorded]:
            del self.trials[trial_id]  # written, then killed before the oracle recorded it: never started
        for trial_id in list(self._retry_queue):
            trial = self.trials[trial_id]
            if trial.status == INVALID:  # raised, and queued for its retry by Keras Tuner itself
                continue
            # Running (or just ended, unrecorded) when the process ended.
            marker = Path(self._get_trial_dir(trial_id)) / INTERRUPTED
            if marker.exists():
                marker.unlink()
            else:
                self._run_times[trial_id] += 1
            if self._run_times[trial_id] > MAX_RETRIES:
                self._retry_queue.remove(trial_id)
                self._fail_killed(trial)
            else:  # start it afresh
                self.trials[trial_id] = trial_module.Trial(trial.hyperparameters, trial_id=trial_id, status=RUNNING)

    def _fail_killed(self, trial: keras_tuner.engine.trial.Trial) -> None:
        """Record `trial` as failed: its process died in each of its runs."""
        trial.status = FAILED
        trial.message = (
            f"the search process ended during this trial {self._run_times[trial.trial_id]} times (killed, or out of "
            "memory); recorded as failed, not retried again"
        )
        self.end_order.append(trial.trial_id)
        self._save_trial(trial)
        self.save()


class Records(keras_tuner.Tuner):
    """Base placed after a Keras Tuner tuner class (see kerasdl.tuning.tuner): gives the oracle that class
    builds crash-safe records before it reloads anything, and writes the tuner's own file the same way."""

    def __init__(self, oracle: keras_tuner.Oracle, *args, **kwargs):
        oracle.__class__ = type(f"Atomic{type(oracle).__name__}", (_AtomicOracle, type(oracle)), {})
        super().__init__(oracle, *args, **kwargs)

    def save(self) -> None:
        if not self._is_worker():  # a worker's oracle is the chief's, which saves it
            self.oracle.save()
        files.write_json(self._get_tuner_fname(), self.get_state(), indent=None)
