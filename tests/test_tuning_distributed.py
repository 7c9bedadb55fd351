"""Keras Tuner's distributed search: a chief and two workers on loopback run one search, stop, and resume it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kerasdl.tuning.role import ORACLE_IP, ORACLE_PORT, TUNER_ID, VARIABLES

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|getName:DeprecationWarning")  # inside Keras Tuner

MAX_TRIALS = 6
SEARCH = ["tune", "mlp", "--tuner", "random", "--max-trials", str(MAX_TRIALS), "--epochs", "1", "--no-jit"]
WORKERS = ("tuner0", "tuner1")
SECONDS = 300  # each round's hard limit: three TensorFlow start-ups and a few one-epoch trials on a busy CI core


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Search:
    """One round of a chief and two workers, started as a user starts them; each writes its own log."""

    def __init__(self, out: Path, port: int, round_: int, *, env_vars: bool):
        self.out, self.logs, self.processes = out, {}, {}
        for tuner_id in ("chief", *WORKERS):
            self.logs[tuner_id] = out.parent / f"{tuner_id}-{round_}.log"
            env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
            argv = [sys.executable, "-m", "kerasdl", *SEARCH, "--out", str(out)]
            if env_vars:  # Keras Tuner's own variables
                env |= {TUNER_ID: tuner_id, ORACLE_IP: "127.0.0.1", ORACLE_PORT: str(port)}
            else:  # the flags that set them
                argv += ["--chief", f"127.0.0.1:{port}", *(["--worker-id", tuner_id] if tuner_id != "chief" else [])]
            with self.logs[tuner_id].open("w") as log:
                self.processes[tuner_id] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait(self, deadline: float) -> dict[str, int]:
        """Each process's exit code; TimeoutExpired past `deadline` (time.monotonic)."""
        return {name: p.wait(timeout=max(deadline - time.monotonic(), 1)) for name, p in self.processes.items()}

    def stop(self) -> dict[str, int]:
        """The workers are lost (killed), then the chief is stopped with Ctrl-C.

        Ctrl-C is sent again until the chief stops: Python drops a KeyboardInterrupt raised inside a
        garbage-collection callback, which a busy TensorFlow process runs often.
        """
        for name in WORKERS:
            self.processes[name].kill()
        chief, deadline = self.processes["chief"], time.monotonic() + 60
        while chief.poll() is None and time.monotonic() < deadline:
            chief.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                chief.wait(timeout=10)
        return self.wait(deadline)

    def tails(self) -> dict[str, str]:
        """The end of each log, for a failed assertion's message."""
        return {name: self.log(name)[-1500:] for name in self.processes}

    def kill(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    def log(self, tuner_id: str) -> str:
        return self.logs[tuner_id].read_text()

    def trials_run(self, tuner_id: str) -> list[str]:
        """The trials a worker started, from the line it prints for each."""
        return re.findall(rf"^{tuner_id}: running trial (\d+)$", self.log(tuner_id), re.MULTILINE)


def statuses(out: Path) -> dict[str, str]:
    """Each trial's status as the chief's oracle recorded it."""
    trials = (json.loads(path.read_text()) for path in (out / "search").glob("trial_*/trial.json"))
    return {trial["trial_id"]: trial["status"] for trial in trials}


def completed(out: Path) -> set[str]:
    return {trial for trial, status in statuses(out).items() if status == "COMPLETED"}


def join_with_other_settings(out: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third worker, here in the test's process, started with 2 epochs a trial where the chief has 1: it fails
    once the chief answers, before it asks for a trial."""
    from keras_tuner.src.distribute import oracle_client

    from kerasdl.errors import RunDirError
    from kerasdl.registry import model_spec
    from kerasdl.training import TrainConfig
    from kerasdl.tuning import tune

    monkeypatch.setattr(oracle_client, "TIMEOUT", SECONDS)  # Keras Tuner's client waits for a chief up to an hour
    for name, value in {TUNER_ID: "tuner2", ORACLE_IP: "127.0.0.1", ORACLE_PORT: str(port)}.items():
        monkeypatch.setenv(name, value)
    config = TrainConfig("mlp", **{**model_spec("mlp").train_defaults, "epochs": 2}, jit_compile=False)
    expected = r"^the chief's search in .* has other settings \(epochs: 1 -> 2\); start tuner2 with the chief's$"
    with pytest.raises(RunDirError, match=expected):
        tune(config, "random", max_trials=MAX_TRIALS, out=out, verbose=0)


def test_chief_and_two_workers_run_each_trial_once_and_resume(tmp_path, monkeypatch):
    out, port = tmp_path / "tune", free_port()
    first = Search(out, port, 1, env_vars=True)
    try:
        deadline = time.monotonic() + SECONDS
        while len(completed(out)) < 2 and time.monotonic() < deadline and all(
            p.poll() is None for p in first.processes.values()
        ):
            time.sleep(0.5)
        codes = first.stop()
    finally:
        first.kill()
    assert codes == {"chief": 130, "tuner0": -signal.SIGKILL, "tuner1": -signal.SIGKILL}, first.tails()
    assert "interrupted; run the same command again to resume" in first.log("chief")
    assert "this process is the chief of a distributed search, serving its oracle at 127.0.0.1" in first.log("chief")
    assert "this process is worker tuner0 of the distributed search" in first.log("tuner0")
    done_before = completed(out)
    assert 2 <= len(done_before) < MAX_TRIALS
    assert not set(first.trials_run("tuner0")) & set(first.trials_run("tuner1"))  # no trial handed to both

    second = Search(out, port, 2, env_vars=False)  # the same search again, started with the flags
    try:
        join_with_other_settings(out, port, monkeypatch)
        codes = second.wait(time.monotonic() + SECONDS)
    finally:
        second.kill()
    assert codes == {"chief": 0, "tuner0": 0, "tuner1": 0}, second.tails()
    resumed = {name: second.trials_run(name) for name in WORKERS}
    # Every trial ran to the end exactly once: the finished ones were not run again, the rest by one worker each.
    assert not set(resumed["tuner0"]) & set(resumed["tuner1"])
    assert not done_before & {*resumed["tuner0"], *resumed["tuner1"]}
    assert done_before | {*resumed["tuner0"], *resumed["tuner1"]} == set(statuses(out))
    assert all(first.trials_run(name) or resumed[name] for name in WORKERS)  # both workers ran trials
    for name in WORKERS:
        assert f"worker {name} ran trials: " in second.log(name) and "retrained" not in second.log(name)

    # One place for the results: the chief's oracle, table and best run.
    rows = json.loads((out / "trials.json").read_text())
    assert len(rows) == MAX_TRIALS and {row["status"] for row in rows} == {"COMPLETED"}
    assert sorted(row["trial"] for row in rows) == sorted(statuses(out))
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert best["score"] == max(row["val_accuracy"] for row in rows)
    assert "best configuration retrained into" in second.log("chief")
    assert json.loads((out / "best" / "metrics.json").read_text())["test_accuracy"] > 0.1
    assert sorted(path.name for path in (out / "search").glob("*.json")) == ["chief.json", "oracle.json",
                                                                            "tuner0.json", "tuner1.json"]


def test_end_trial_is_saved_without_the_trial_left_ongoing(tmp_path):
    """Keras Tuner's `Oracle.end_trial` saves before it drops the trial from `ongoing_trials`; the chief saves
    again, or a chief stopped before the next request would run that finished trial again when resumed."""
    import keras_tuner
    from keras_tuner.src import protos

    from kerasdl.tuning.distributed import _Servicer

    space = keras_tuner.HyperParameters()
    space.Int("units", 8, 64)
    objective = keras_tuner.Objective("score", "max")
    oracle = keras_tuner.oracles.RandomSearchOracle(objective=objective, max_trials=3, hyperparameters=space)
    oracle._set_project_dir(str(tmp_path), "search")
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"score": 1.0})
    trial.status = "COMPLETED"
    _Servicer(oracle).EndTrial(protos.get_service().EndTrialRequest(trial=trial.to_proto()), None)

    resumed = keras_tuner.oracles.RandomSearchOracle(objective=objective, max_trials=3, hyperparameters=space)
    resumed._set_project_dir(str(tmp_path), "search")
    resumed.reload()
    assert resumed.trials[trial.trial_id].status == "COMPLETED"
    assert resumed.create_trial("tuner0").trial_id != trial.trial_id  # a new trial, not the finished one again


@pytest.mark.parametrize(
    "env, argv, message",
    [
        ({TUNER_ID: "tuner0"}, (),
         "KERASTUNER_TUNER_ID set but not KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT: a distributed search "
         "needs all of KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT (or none, to search in "
         "this process alone)"),
        ({TUNER_ID: "tuner0", ORACLE_IP: "127.0.0.1", ORACLE_PORT: "80a"}, (),
         "KERASTUNER_ORACLE_PORT: expected a port number (1-65535), got '80a'"),
        ({}, ("--chief", "127.0.0.1:8000", "--worker-id", "tuner0", "--overwrite"),
         "only the chief may start the search over (--overwrite); worker tuner0 joins it"),
    ],
    ids=["half-set", "bad-port", "worker-overwrite"],
)
def test_a_half_set_or_wrong_role_is_one_line_before_tensorflow(monkeypatch, tmp_path, env, argv, message):
    from test_cli_startup import probe

    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result, _, err = probe(*SEARCH, "--out", str(tmp_path / "out"), *argv)
    assert result["code"] == 2 and result["heavy"] == []
    assert err.splitlines() == [f"kerasdl tune: error: {message}"]
    assert not (tmp_path / "out").exists()
