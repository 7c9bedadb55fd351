"""`tune()`: a Keras Tuner search over a registered model's search space, its results, and the best model.

The output folder holds Keras Tuner's project (`search/`), the table of trials (`trials.csv`,
`trials.json`), `best_hyperparameters.json` (values, score and the full `TrainConfig`), `tune.json`
(the settings) and `best/`, the best configuration retrained by `kerasdl.training.train` into an
ordinary run directory. Running the same search again resumes it: Keras Tuner reloads its project
(`overwrite=False`), finished trials are kept, and an interrupted one is run again. Every file is written
crash-safely (Keras Tuner's own records through `kerasdl.tuning.records`), so this holds after a `kill -9` too.

With Keras Tuner's `KERASTUNER_*` variables set (see `kerasdl.tuning.role`) the search is distributed: the
chief serves the oracle and, when the workers have run every trial, writes all of the above; each worker
runs the trials the chief gives it, in the same output folder (on several machines, a shared file system).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from kerasdl.errors import KerasdlError, RunDirError, UnknownNameError
from kerasdl.evaluation.table import Row, save_table
from kerasdl.locking import folder_lock
from kerasdl.registry import model_spec
from kerasdl.training import RunDirectory, TrainConfig
from kerasdl.training.run_dir import changed_settings
from kerasdl.training.train import data_name, load_for, resolve
from kerasdl.tuning import records
from kerasdl.tuning.distributed import serve_oracle, worker_tuner
from kerasdl.tuning.hypermodel import RegistryHyperModel
from kerasdl.tuning.role import Role, current_role
from kerasdl.tuning.runs import train_once

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "grid": keras_tuner.GridSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
}
PROJECT = "search"  # Keras Tuner's project folder inside the output folder


@dataclass(frozen=True)
class TuneResult:
    """A finished search: its trials, the best trial's values and config, and the retrained best run."""

    out: Path
    trials: list[Row]
    best: dict[str, Any]
    best_run: RunDirectory
    best_metrics: dict[str, Any]


@dataclass(frozen=True)
class WorkerResult:
    """A worker's share of a distributed search: the trials it ran; the chief holds the results."""

    out: Path
    role: Role
    trial_ids: list[str]


def default_tune_dir(config: TrainConfig, tuner: str) -> Path:
    return Path("runs") / f"tune-{config.model}-{data_name(config.data)}-{tuner}"


def tune(
    config: TrainConfig,
    tuner: str,
    *,
    max_trials: int = 10,
    objective: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 1,
) -> TuneResult | WorkerResult:
    """Search `config.model`'s space with `tuner`, each trial trained `config.epochs` epochs (Hyperband: at most).

    `config` gives everything the search space does not set (model, data, seed, epochs, patience...);
    `callbacks` are added to every trial's `fit`. Raises `KerasdlError` before any trial for an unknown
    tuner, a model without a search space, a space that does not build, or an objective the model does
    not log; and when `out` holds a search with other settings (unless `overwrite`). The objective
    defaults to the model's task's (val_accuracy for classifiers). In a distributed search (`current_role`)
    the chief returns the `TuneResult` once the workers are done, and a worker its `WorkerResult`.
    The process holds `out`'s lock meanwhile (a worker: its own, `Role.lock_file`); `FolderLockedError` when
    another live process has it.
    """
    role = current_role(overwrite=overwrite)
    if tuner not in TUNERS:
        raise UnknownNameError("tuner", tuner, list(TUNERS))
    config = resolve(config)
    spec = model_spec(config.model)
    data = load_for(config)
    hypermodel = RegistryHyperModel(spec, data, config)
    objective = objective or hypermodel.task.objective
    logged = hypermodel.logged_metrics()
    if objective not in logged:
        raise KerasdlError(
            f"objective {objective!r} is not logged by model {spec.name!r}; it logs {', '.join(sorted(logged))}"
        )
    out = Path(out or default_tune_dir(config, tuner))
    settings = {"tuner": tuner, "objective": objective, **config.to_json()}
    with folder_lock(out, role.lock_file):  # checked, nothing written yet: one writer (or worker id) per folder
        if not role.worker:  # a worker checks them once the chief, which writes them, is up
            _claim(out, settings, overwrite)

        search = _make_tuner(tuner, hypermodel, objective, max_trials, config, out, overwrite, role, verbose)
        if role.worker:
            _join(search, out, settings, role, verbose)
        if role.chief:
            search.oracle.verbose = verbose  # Keras Tuner's display of each trial as it starts and ends
            serve_oracle(search, role)
        else:
            search.search(epochs=config.epochs, callbacks=list(callbacks or []), verbose=verbose)
        if role.worker:
            return WorkerResult(out, role, search.trial_ids)

        rows = trial_rows(search.oracle)
        save_table(rows, out / "trials")
        best = best_trial(search.oracle, hypermodel)
        RunDirectory.write_json(out / "best_hyperparameters.json", best)
        best_config = TrainConfig.from_json(best["config"])
        best_run, best_metrics = train_once(best_config, out / "best", overwrite=overwrite, verbose=verbose)
        return TuneResult(out, rows, best, best_run, best_metrics)


def best_trial(oracle: keras_tuner.Oracle, hypermodel: RegistryHyperModel) -> dict[str, Any]:
    """The best finished trial: its id, score, hyperparameter values and the `TrainConfig` they give."""
    trial = next((t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"), None)
    if trial is None:  # get_best_trials falls back to unfinished trials
        raise KerasdlError(f"no trial finished; each trial's error is in {PROJECT}/trial_*/trial.json")
    return {
        "trial": trial.trial_id,
        "objective": oracle.objective.name,
        "score": float(trial.score),
        "hyperparameters": trial.hyperparameters.values,
        "config": hypermodel.config(trial.hyperparameters).to_json(),
    }


def trial_rows(oracle: keras_tuner.Oracle) -> list[Row]:
    """One row per trial in start order: id, status, hyperparameter values, objective score, seconds."""
    rows = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        seconds = trial.metrics.get_last_value("seconds") if trial.metrics.exists("seconds") else None
        rows.append(
            {
                "trial": trial_id,
                "status": trial.status,
                **trial.hyperparameters.values,
                oracle.objective.name: None if trial.score is None else float(trial.score),
                "seconds": seconds,
            }
        )
    return rows


def _make_tuner(
    name: str,
    hypermodel: RegistryHyperModel,
    objective: str,
    max_trials: int,
    config: TrainConfig,
    out: Path,
    overwrite: bool,
    role: Role,
    verbose: int,
) -> keras_tuner.Tuner:
    task = hypermodel.task
    goal = keras_tuner.Objective(objective, task.objective_mode) if objective == task.objective else objective
    options = dict(objective=goal, seed=config.seed, directory=str(out), project_name=PROJECT, overwrite=overwrite)
    tuner_class = records.tuner_class(TUNERS[name])  # Keras Tuner's records written crash-safely
    if role.worker:
        tuner_class = worker_tuner(tuner_class, announce=verbose > 0)
    if name != "hyperband":
        return tuner_class(hypermodel, max_trials=max_trials, **options)
    search = tuner_class(hypermodel, max_epochs=config.epochs, **options)
    search.oracle.max_trials = max_trials  # Hyperband sizes its brackets from max_epochs; --max-trials still caps it
    return search


def _join(search: keras_tuner.Tuner, out: Path, settings: dict[str, Any], role: Role, verbose: int) -> None:
    """Wait for the chief (as long as Keras Tuner's client waits), then check this worker's settings against its."""
    if verbose:
        print(f"{role.tuner_id}: waiting for the chief at {role.address}", flush=True)
    search.oracle.get_space()
    path = out / "tune.json"
    if not path.exists():
        raise RunDirError(
            f"{path} not found: the chief writes it; give every process the same --out (on several machines, "
            "a shared file system)"
        )
    changed = changed_settings(json.loads(path.read_text()), settings)
    if changed:
        raise RunDirError(
            f"the chief's search in {out} has other settings ({', '.join(changed)}); "
            f"start {role.tuner_id} with the chief's"
        )


def _claim(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Record the search's settings in `tune.json`; resuming under other settings would mix two searches."""
    path = out / "tune.json"
    if path.exists() and not overwrite:
        changed = changed_settings(json.loads(path.read_text()), settings)
        if changed:
            raise RunDirError(
                f"{out} holds a search with other settings ({', '.join(changed)}); "
                "run it with the same ones, pass --overwrite, or choose another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    RunDirectory.write_json(path, settings)

