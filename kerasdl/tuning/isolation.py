"""Trial isolation: each trial trained in a fresh Python process, so memory cannot pile up across trials.

TensorFlow keeps graphs, traced functions and allocator pools for the life of a process; a long search that
builds a model per trial grows until it is killed (keras-tuner#395, #873). With `tune(isolate=True)` the
search process only asks the oracle for trials and records results: `fit_in_child` writes the trial's request
(base config, hyperparameter values, fit arguments, file paths) to `request.json` in the trial's folder and
runs `python -m kerasdl.tuning.isolation REQUEST`, which builds and fits the model exactly as an in-process
trial does (`RegistryHyperModel`), saves Keras Tuner's best-epoch checkpoint and build config, and writes
the per-epoch logs back. The child's progress goes to the same terminal. A child that raises or dies (a
signal: out of memory) makes the trial raise `TrialProcessError`, which Keras Tuner retries once and then
records as failed with the child's traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kerasdl import files
from kerasdl.errors import KerasdlError

REQUEST, RESULT, ERROR = "request.json", "result.json", "error.txt"


class TrialProcessError(KerasdlError):
    """A trial's own process raised or died."""


def fit_in_child(tuner: Any, trial: Any, fit_kwargs: dict[str, Any]) -> Any:
    """Run `trial` (built and fit as `tuner.hypermodel` would) in a fresh process; its `keras.callbacks.History`."""
    import keras

    folder = Path(tuner.get_trial_dir(trial.trial_id))
    folder.mkdir(parents=True, exist_ok=True)
    hp = trial.hyperparameters
    earlier = hp.values.get("tuner/trial_id")  # Hyperband: continue from that trial's best epoch
    objective = tuner.oracle.objective
    request = {
        "config": tuner.hypermodel.base.to_json(),
        "hyperparameters": hp.get_config(),
        "objective": {"name": objective.name, "direction": objective.direction},
        "fit": {key: fit_kwargs[key] for key in ("epochs", "initial_epoch", "verbose") if key in fit_kwargs},
        "checkpoint": tuner._get_checkpoint_fname(trial.trial_id),
        "build_config": tuner._get_build_config_fname(trial.trial_id),
        "initial_weights": tuner._get_checkpoint_fname(earlier) if earlier else None,
        "history": str(tuner.history_path(trial.trial_id)),
    }
    for name in (RESULT, ERROR):
        (folder / name).unlink(missing_ok=True)
    files.write_json(folder / REQUEST, request)
    env = {name: value for name, value in os.environ.items() if not name.startswith("KERASTUNER_")}
    argv = [sys.executable, "-m", "kerasdl.tuning.isolation", str(folder / REQUEST), str(os.getpid())]
    code = subprocess.run(argv, env=env).returncode
    if code != 0:
        raise TrialProcessError(f"trial {trial.trial_id}'s process {_ended(code)}{_child_error(folder)}")
    result = json.loads((folder / RESULT).read_text())
    history = keras.callbacks.History()
    history.history, history.epoch = result["history"], result["epoch"]
    return history


def _ended(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        return f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exited with status {code}"


def _child_error(folder: Path) -> str:
    path = folder / ERROR
    return f":\n{path.read_text()}" if path.exists() else ""


def run_request(path: Path) -> None:
    """The child's side: build and fit the requested trial, write its checkpoint, build config and logs."""
    import keras_tuner
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    from kerasdl.registry import model_spec
    from kerasdl.training import TrainConfig
    from kerasdl.training.train import load_for
    from kerasdl.tuning.hypermodel import EpochLog, RegistryHyperModel

    request = json.loads(path.read_text())
    config = TrainConfig.from_json(request["config"])
    hypermodel = RegistryHyperModel(model_spec(config.model), load_for(config), config)
    hp = keras_tuner.HyperParameters.from_config(request["hyperparameters"])
    model = hypermodel.build(hp)
    if request["initial_weights"]:
        model.load_weights(request["initial_weights"])
    objective = keras_tuner.Objective(**request["objective"])
    callbacks = [SaveBestEpoch(objective, request["checkpoint"]), EpochLog(Path(request["history"]))]
    history = hypermodel.fit(hp, model, callbacks=callbacks, **request["fit"])
    files.write_json(Path(request["build_config"]), model.get_build_config())
    files.write_json(path.parent / RESULT, {"history": history.history, "epoch": history.epoch})


def _die_with(parent: int) -> None:
    """Linux: be killed when the search process dies, so a killed search leaves no trial training on its own."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above took effect
        raise SystemExit(1)


def main(argv: list[str]) -> int:
    import traceback

    from kerasdl.quiet import quiet_libraries

    path, parent = Path(argv[0]), int(argv[1])
    _die_with(parent)
    try:
        with quiet_libraries(enabled=True):
            run_request(path)
    except Exception:
        files.write_text(path.parent / ERROR, traceback.format_exc())
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
