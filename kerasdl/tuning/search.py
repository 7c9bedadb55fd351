"""`tune()`: a Keras Tuner search over a registered model's search space, its results, and the best model.

The output folder holds Keras Tuner's project (`search/`; each trial's folder also keeps its per-epoch
`history.json`), the table of trials (`trials.csv`, `trials.json`: values, score, seconds, peak memory, the
folder's size after the trial, the error of a failed one), `best_hyperparameters.json` (values, score and the
full `TrainConfig`), `tune.json` (the settings), TensorBoard's HParams summaries (`tensorboard/`, so
`tensorboard --logdir OUT` shows every trial), `objective.png` and `best_curves.png`, and `best/`, the best
configuration retrained by `kerasdl.training.train` into an ordinary run directory (and, with `export`, its
edge artifact and parity report in `export/FORMAT/`).

What a long search needs (kerasdl.tuning.tuner): trials in fresh processes (`isolate`, the default above
`FEW_TRIALS` trials), only the best `keep_best` trials' checkpoints kept, and a trial the process died in
retried once, then recorded as failed. Running the same search again resumes it: Keras Tuner reloads its
project (`overwrite=False`), finished trials are kept, and an interrupted one is run again. Every file is
written crash-safely (Keras Tuner's own records through `kerasdl.tuning.records`), so this holds after a
`kill -9` too.

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
from kerasdl.tuning import hparams, records
from kerasdl.tuning.distributed import serve_oracle, worker_tuner
from kerasdl.tuning.hypermodel import RegistryHyperModel
from kerasdl.tuning.plots import plot_best_curves, plot_objective
from kerasdl.tuning.role import Role, current_role
from kerasdl.tuning.runs import train_once
from kerasdl.tuning.tuner import DISK_LOG, tuner_class

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "grid": keras_tuner.GridSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
}
PROJECT = "search"  # Keras Tuner's project folder inside the output folder
TENSORBOARD = "tensorboard"  # the HParams summaries inside the output folder
FEW_TRIALS = 4  # searches of more trials run each in its own process unless told otherwise
KEEP_BEST = 3  # trials whose checkpoints a search keeps, unless told otherwise


@dataclass(frozen=True)
class TuneResult:
    """A finished search: its trials, the best trial's values and config, and the retrained best run."""

    out: Path
    trials: list[Row]
    best: dict[str, Any]
    best_run: RunDirectory | None  # None when the search ran with retrain=False
    best_metrics: dict[str, Any] | None
    export: Any = None  # the best run's `ExportResult` when the search was asked to export it


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
    retrain: bool = True,
    isolate: bool | None = None,
    keep_best: int | None = KEEP_BEST,
    export: str | None = None,
    verbose: int = 1,
) -> TuneResult | WorkerResult:
    """Search `config.model`'s space with `tuner`, each trial trained `config.epochs` epochs (Hyperband: at most).

    `config` gives everything the search space does not set (model, data, seed, epochs, patience...);
    `callbacks` are added to every trial's `fit`. Raises `KerasdlError` before any trial for an unknown
    tuner, a model without a search space, a space that does not build, or an objective the model does
    not log; and when `out` holds a search with other settings (unless `overwrite`). With `retrain=False`
    the best configuration is not retrained into `best/` (a search only); with `export` (a `kerasdl export`
    format such as "tflite-int8") the retrained best run is exported with its parity report.
    `isolate` runs each trial in a fresh process (default: for more than `FEW_TRIALS` trials); `keep_best`
    trials keep their checkpoints (None: all). The objective
    defaults to the model's task's (val_accuracy for classifiers). In a distributed search (`current_role`)
    the chief returns the `TuneResult` once the workers are done, and a worker its `WorkerResult`.
    The process holds `out`'s lock meanwhile (a worker: its own, `Role.lock_file`); `FolderLockedError` when
    another live process has it.
    """
    role = current_role(overwrite=overwrite)
    if tuner not in TUNERS:
        raise UnknownNameError("tuner", tuner, list(TUNERS))
    isolate = max_trials > FEW_TRIALS if isolate is None else isolate
    _check_options(isolate, callbacks, keep_best, export, retrain)
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

        search = _make_tuner(tuner, hypermodel, objective, max_trials, config, out, overwrite, role, verbose,
                             isolate=isolate, keep_best=keep_best)
        if not role.chief:  # the processes that run trials write their summaries
            hparams.write_experiment(out / TENSORBOARD, search.oracle.get_space(), logged, objective)
        if role.worker:
            _join(search, out, settings, role, verbose)
        if role.chief:
            search.oracle.verbose = verbose  # Keras Tuner's display of each trial as it starts and ends
            serve_oracle(search, role)
        else:
            _search(search, config, callbacks, verbose)
        if role.worker:
            return WorkerResult(out, role, search.trial_ids)

        rows = trial_rows(search.oracle, out)
        save_table(rows, out / "trials")
        best = best_trial(search.oracle, hypermodel)
        RunDirectory.write_json(out / "best_hyperparameters.json", best)
        plot_objective(rows, best["objective"], best["direction"], out / "objective.png")
        curves = search.history(best["trial"])
        if curves:
            plot_best_curves(curves, best["objective"], out / "best_curves.png")
        if not retrain:
            return TuneResult(out, rows, best, None, None)
        best_config = TrainConfig.from_json(best["config"])
        best_run, best_metrics = train_once(best_config, out / "best", overwrite=overwrite, verbose=verbose)
        exported = _export(best_run, export, out) if export else None
        return TuneResult(out, rows, best, best_run, best_metrics, exported)


def best_trial(oracle: keras_tuner.Oracle, hypermodel: RegistryHyperModel) -> dict[str, Any]:
    """The best finished trial: its id, score, hyperparameter values and the `TrainConfig` they give."""
    trial = next((t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"), None)
    if trial is None:  # get_best_trials falls back to unfinished trials
        raise KerasdlError(f"no trial finished; each trial's error is in {PROJECT}/trial_*/trial.json")
    return {
        "trial": trial.trial_id,
        "objective": oracle.objective.name,
        "direction": oracle.objective.direction,
        "score": float(trial.score),
        "hyperparameters": trial.hyperparameters.values,
        "config": hypermodel.config(trial.hyperparameters).to_json(),
    }


def trial_rows(oracle: keras_tuner.Oracle, out: Path) -> list[Row]:
    """One row per trial in start order: id, status, hyperparameter values, objective score, seconds, the peak
    memory of the process that ran it, the output folder's size after it (MiB), and a failed trial's error."""
    sizes_path = out / DISK_LOG
    sizes = json.loads(sizes_path.read_text()) if sizes_path.exists() else {}
    rows = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        rows.append(
            {
                "trial": trial_id,
                "status": trial.status,
                **trial.hyperparameters.values,
                oracle.objective.name: None if trial.score is None else float(trial.score),
                "seconds": _last(trial, "seconds"),
                "peak_rss_mb": _last(trial, "peak_rss_mb"),
                "folder_mb": sizes.get(trial_id),
                "error": _error_line(trial.message) if trial.status != "COMPLETED" else "",
            }
        )
    return rows


def _last(trial: keras_tuner.engine.trial.Trial, name: str) -> float | None:
    return float(trial.metrics.get_last_value(name)) if trial.metrics.exists(name) else None


def _error_line(message: str | None) -> str:
    """The last line of a failed trial's message (Keras Tuner keeps the whole traceback in trial.json)."""
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _search(search: keras_tuner.Tuner, config: TrainConfig, callbacks: list | None, verbose: int) -> None:
    """Run the trials; Keras Tuner's stop after too many failures in a row becomes our one-line error."""
    try:
        search.search(epochs=config.epochs, callbacks=list(callbacks or []), verbose=verbose)
    except RuntimeError as err:
        if "consecutive failures" not in str(err):
            raise
        raise KerasdlError(
            f"{search.oracle.max_consecutive_failed_trials} trials in a row failed, so the search stopped; "
            f"the last: {_error_line(str(err))} (each error is in trials.csv after a resume, and in "
            f"{PROJECT}/trial_*/trial.json)"
        ) from err


def _check_options(isolate: bool, callbacks: list | None, keep_best: int | None, export: str | None,
                   retrain: bool) -> None:
    if isolate and callbacks:
        raise KerasdlError("callbacks cannot reach trials that run in their own processes; pass isolate=False")
    if keep_best is not None and keep_best < 1:
        raise KerasdlError(f"keep_best must be at least 1 (or None to keep every checkpoint), got {keep_best}")
    if export:
        from kerasdl.export.formats import export_format

        export_format(export)  # an unknown format fails before the first trial
        if not retrain:
            raise KerasdlError("export needs the best configuration retrained (retrain=True)")


def _export(best_run: RunDirectory, fmt: str, out: Path) -> Any:
    """The best run's `fmt` artifact and parity report, in out/export/FORMAT (the converter's and LiteRT's
    own lines kept off stderr, as `kerasdl export` keeps them)."""
    from kerasdl.export.exporter import export_run
    from kerasdl.quiet import filtered_stderr

    with filtered_stderr():
        return export_run(best_run.path, fmt, out / "export" / fmt)


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
    *,
    isolate: bool,
    keep_best: int | None,
) -> keras_tuner.Tuner:
    task = hypermodel.task
    goal = keras_tuner.Objective(objective, task.objective_mode) if objective == task.objective else objective
    options = dict(objective=goal, seed=config.seed, directory=str(out), project_name=PROJECT, overwrite=overwrite,
                   max_retries_per_trial=records.MAX_RETRIES)
    logdir = None if role.chief else out / TENSORBOARD  # the chief runs no trial
    searcher = tuner_class(TUNERS[name], isolate=isolate, keep_best=keep_best, logdir=logdir, out=out)
    if role.worker:
        searcher = worker_tuner(searcher, announce=verbose > 0)
    if name != "hyperband":
        return searcher(hypermodel, max_trials=max_trials, **options)
    search = searcher(hypermodel, max_epochs=config.epochs, **options)
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

