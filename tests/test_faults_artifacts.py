"""Fault injection outside training: `kerasdl export` and `kerasdl tune` killed (SIGKILL) at seeded random moments.

Each job's duration is measured once (from the moment it holds its folder's lock, before which it writes
nothing), then the same job is killed at uniformly random fractions of that span, each rerun resuming the
state the last kill left (so N kills cost about one job plus N process starts). After every kill the folder
must be finished and valid or resumable, with no half-written file that looks whole; the last rerun must
finish with nothing lost or repeated. Two-process lock tests: a second writer refuses in one line naming the
holder, and a writer started after a `kill -9` takes the lock over.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from export_fixtures import TrainedRun
from kerasdl import files
from kerasdl.locking import LOCK_FILE, read_holder

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|getName:DeprecationWarning")  # inside Keras Tuner

SEED = 14
EXPORT_KILLS, TUNE_KILLS = 4, 4
MAX_TRIALS = 3
TIMEOUT = 300  # seconds any one command may take before the test fails instead of hanging
TUNE = ("tune", "mlp", "--data", "digits", "--tuner", "random", "--max-trials", str(MAX_TRIALS), "--epochs", "1",
        "--no-jit", "--quiet")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kerasdl", *args]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """`argv` in a new process; its output goes to `log` (a file: a killed process leaves no pipe to drain)."""
    with log.open("w") as stream:
        return subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for_lock(process: subprocess.Popen, folder: Path) -> bool:
    """Wait until `process` holds `folder`'s lock (True), or has ended (False)."""
    deadline = time.monotonic() + TIMEOUT
    while read_holder(folder / LOCK_FILE).get("pid") != process.pid:
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"{process.args} never locked {folder}"
        time.sleep(0.02)
    return True


def measured(argv: list[str], folder: Path, log: Path) -> float:
    """Run `argv` to its end; the seconds from taking `folder`'s lock to exiting, the span kills are drawn from."""
    process = start(argv, log)
    assert wait_for_lock(process, folder), log.read_text()[-3000:]
    locked = time.monotonic()
    assert process.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    return time.monotonic() - locked


def kill_chain(argv: list[str], folder: Path, span: float, kills: int, check, log: Path) -> tuple[list[float], int]:
    """Kill `argv` (working in `folder`) `kills` times at seeded moments of `span`, calling `check(folder)` after
    each; one started while another holds the lock must refuse, and the stale lock a kill leaves must never stop
    the next run. Returns the kill moments (seconds after the lock was taken) and how many stale locks were taken
    over."""
    rng = random.Random(SEED)
    moments = [rng.uniform(0, span) for _ in range(kills)]
    stale, takeovers = False, 0
    for number, moment in enumerate(moments):
        process = start(argv, log)
        locked = wait_for_lock(process, folder)
        assert locked or process.returncode == 0, log.read_text()[-3000:]
        takeovers += stale and locked
        if locked:
            if number == 0:  # a second writer meanwhile (this one frozen, so it cannot end first): refused
                process.send_signal(signal.SIGSTOP)
                assert_refused(argv, process, log.with_name("rival.log"))
                process.send_signal(signal.SIGCONT)
            time.sleep(moment)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(TIMEOUT)
        stale = (folder / LOCK_FILE).exists()  # killed while it held the lock (and not after it let go)
        check(folder)
    return moments, takeovers


def finish(argv: list[str], log: Path) -> str:
    process = start(argv, log)
    assert process.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    return log.read_text()


def parsed_json(folder: Path) -> dict[Path, object]:
    """Every JSON file in `folder` (recursively) but the temporaries of killed writers, parsed: none may be torn."""
    leftovers = set(files.leftovers(folder))
    return {path: json.loads(path.read_text()) for path in sorted(folder.rglob("*.json")) if path not in leftovers}


# --- export ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(trained) -> TrainedRun:
    """One MLP trained on digits for 2 epochs, its raw test inputs and the Keras model's logits on them."""
    import keras

    from kerasdl.evaluation.metrics import predict_logits
    from kerasdl.training import TrainConfig
    from kerasdl.training.train import load_for

    run = trained(TrainConfig("mlp", data="digits", epochs=2, jit_compile=False)).run
    data = load_for(run.read_config())
    x, y = data.split("test")
    raw = np.round((x - data.info.offset) / data.info.scale)
    return TrainedRun(run.path, raw, y, predict_logits(keras.saving.load_model(run.model_path), x))


def check_export(folder: Path) -> bool:
    """`folder` after a kill: True when finished (export.json, and all it names, whole), else resumable."""
    from ai_edge_litert.interpreter import Interpreter

    from kerasdl.edge.runner import EdgeModel

    parsed = parsed_json(folder)
    artifact = folder / "model.tflite"
    if artifact.exists():  # renamed into place only when whole: it must load
        Interpreter(model_path=str(artifact)).allocate_tensors()
    if folder / "export.json" not in parsed:
        return False
    assert parsed[folder / "export.json"]["artifact"] == artifact.name and folder / "preprocessing.json" in parsed
    EdgeModel(artifact)
    return True


def test_export_killed_at_random_moments_resumes_to_a_valid_artifact(digits_run, tmp_path):
    from kerasdl.edge.runner import EdgeModel

    def export(out: Path) -> list[str]:
        return command("export", str(digits_run.path), "--format", "tflite", "--out", str(out), "--latency-runs", "5")

    span = measured(export(tmp_path / "reference"), tmp_path / "reference", tmp_path / "reference.log")
    out = tmp_path / "killed"
    moments, takeovers = kill_chain(export(out), out, span, EXPORT_KILLS, check_export, tmp_path / "killed.log")
    finish(export(out), tmp_path / "final.log")
    assert check_export(out) and files.leftovers(out) == [] and not (out / LOCK_FILE).exists()
    report = json.loads((out / "export.json").read_text())
    assert report["targets"]["met"] and report["parity"]["samples"] == len(digits_run.labels)
    runner = EdgeModel(out / "model.tflite")  # the resumed artifact gives the Keras model's outputs
    logits = runner.logits(runner.preprocessing.normalize(digits_run.raw_test))
    np.testing.assert_allclose(logits, digits_run.keras_logits, atol=1e-4)
    print(f"export: {len(moments)} kill points in {span:.1f} s ({takeovers} stale locks taken over): "
          f"{', '.join(f'{m:.2f}' for m in moments)}")


# --- tune --------------------------------------------------------------------------------------------------------------


def trial_table(folder: Path) -> list[dict[str, str]]:
    with (folder / "trials.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


def check_tune(folder: Path) -> bool:
    """`folder` after a kill: True when the search and its best run finished, else resumable (nothing torn)."""
    parsed = parsed_json(folder)
    oracle = parsed.get(folder / "search" / "oracle.json")
    if oracle is not None:  # a trial's record is written before the oracle records its start
        assert all(folder / "search" / f"trial_{trial}" / "trial.json" in parsed for trial in oracle["start_order"])
    if (folder / "trials.csv").exists():  # written once every trial has ended: complete
        rows = trial_table(folder)
        assert [row["trial"] for row in rows] == [str(i) for i in range(MAX_TRIALS)]
        # A trial the chain killed twice is failed, as one that kills its process each time must be.
        assert all(row["status"] == "COMPLETED" or "ended during this trial 2 times" in row["error"] for row in rows)
    return folder / "best" / "metrics.json" in parsed


def test_tune_killed_at_random_moments_resumes_without_losing_or_repeating_trials(tmp_path):
    def search(out: Path) -> list[str]:
        return command(*TUNE, "--out", str(out))

    reference = tmp_path / "reference"
    span = measured(search(reference), reference, tmp_path / "reference.log")
    out = tmp_path / "killed"
    moments, takeovers = kill_chain(search(out), out, span, TUNE_KILLS, check_tune, tmp_path / "killed.log")
    finish(search(out), tmp_path / "final.log")
    assert check_tune(out) and files.leftovers(out) == [] and not (out / LOCK_FILE).exists()
    # Every trial once, as the uninterrupted search ran them (the seeded oracle draws the same values).
    outcome = ("val_accuracy", "seconds", "peak_rss_mb", "folder_mb", "status", "error")
    keep = [column for column in trial_table(reference)[0] if column not in outcome]
    assert [{c: row[c] for c in keep} for row in trial_table(out)] == [
        {c: row[c] for c in keep} for row in trial_table(reference)
    ]
    assert sorted(p.name for p in (out / "search").glob("trial_*")) == [f"trial_{i}" for i in range(MAX_TRIALS)]
    print(f"tune: {len(moments)} kill points in {span:.1f} s ({takeovers} stale locks taken over): "
          f"{', '.join(f'{m:.2f}' for m in moments)}")


# --- locks: two real processes -------------------------------------------------------------------------------------


def assert_refused(argv: list[str], holder: subprocess.Popen, log: Path) -> None:
    """A second process on the held folder exits 2 with one line that names the holder's pid."""
    rival = start(argv, log)
    assert rival.wait(TIMEOUT) == 2
    lines = [line for line in log.read_text().splitlines() if line.startswith("kerasdl")]
    assert len(lines) == 1 and f"is being written by pid {holder.pid} " in lines[0], log.read_text()[-3000:]


def test_a_second_shard_writer_refuses_and_a_third_takes_over_after_kill_9(tmp_path):
    """(The tune search's kill chain checks the same of `kerasdl tune`.)"""
    argv = ("data", "shard", "digits", "--quiet")
    out = tmp_path / "out"
    first = start(command(*argv, "--out", str(out)), tmp_path / "first.log")
    assert wait_for_lock(first, out), (tmp_path / "first.log").read_text()[-3000:]
    first.send_signal(signal.SIGSTOP)  # frozen while it holds the lock: the test does not race its end
    assert_refused(command(*argv, "--out", str(out)), first, tmp_path / "second.log")
    first.send_signal(signal.SIGKILL)
    first.wait(TIMEOUT)
    # A half-written set of shards is replaced, not resumed; the manifest, written last, marks a whole one.
    log = finish(command(*argv, "--out", str(out), "--overwrite"), tmp_path / "third.log")
    assert json.loads((out / "manifest.json").read_text())["counts"]["test"] > 0
    assert f"took over the lock on {out} left by pid {first.pid}" in log
    assert not (out / LOCK_FILE).exists()


def test_two_workers_with_the_same_id_cannot_both_run(monkeypatch, tmp_path):
    from kerasdl.errors import KerasdlError
    from kerasdl.locking import folder_lock
    from kerasdl.training import TrainConfig
    from kerasdl.tuning import tune
    from kerasdl.tuning.role import Role

    assert len({Role().lock_file, Role("chief").lock_file, Role("tuner0").lock_file, Role("tuner1").lock_file}) == 3
    for name, value in {"KERASTUNER_TUNER_ID": "tuner0", "KERASTUNER_ORACLE_IP": "127.0.0.1",
                        "KERASTUNER_ORACLE_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    with folder_lock(tmp_path, Role("tuner0").lock_file):  # worker tuner0 is running in this folder
        with pytest.raises(KerasdlError, match=f"{tmp_path} is being written by pid {os.getpid()} "):
            tune(TrainConfig("mlp", data="digits", epochs=1, jit_compile=False), "random", out=tmp_path, verbose=0)
