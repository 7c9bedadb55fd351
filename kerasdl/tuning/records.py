"""Keras Tuner's own records (`oracle.json`, `trial_*/trial.json`, `<tuner id>.json`), written crash-safely.

Keras Tuner writes them in place, so a kill could leave one half-written and the search could not resume.
Our tuners write them through `kerasdl.files` instead, and reload what a kill between two of those writes
leaves as Keras Tuner would have had it: a trial the oracle never recorded is forgotten (its id is given
again), and a trial that was running is run again from its start, so no trial is lost or counted twice.
"""

from __future__ import annotations

from pathlib import Path

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from kerasdl import files

RUNNING, INVALID = trial_module.TrialStatus.RUNNING, trial_module.TrialStatus.INVALID


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
        for trial_id in self._retry_queue:
            trial = self.trials[trial_id]
            if trial.status != INVALID:  # running (or just ended, unrecorded) when killed: start it afresh
                self.trials[trial_id] = trial_module.Trial(trial.hyperparameters, trial_id=trial_id, status=RUNNING)


class Records(keras_tuner.Tuner):
    """Base placed after a Keras Tuner tuner class (`tuner_class(RandomSearch)`): gives the oracle that class
    builds crash-safe records before it reloads anything, and writes the tuner's own file the same way."""

    def __init__(self, oracle: keras_tuner.Oracle, *args, **kwargs):
        oracle.__class__ = type(f"Atomic{type(oracle).__name__}", (_AtomicOracle, type(oracle)), {})
        super().__init__(oracle, *args, **kwargs)

    def save(self) -> None:
        if not self._is_worker():  # a worker's oracle is the chief's, which saves it
            self.oracle.save()
        files.write_json(self._get_tuner_fname(), self.get_state(), indent=None)


def tuner_class(base: type[keras_tuner.Tuner]) -> type[keras_tuner.Tuner]:
    """`base` (RandomSearch, Hyperband...) writing its records through `Records`."""
    return type(base.__name__, (base, Records), {})
