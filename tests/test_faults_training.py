"""Faults in `kerasdl train`: one writer per run directory, and SIGKILL at random moments loses or repeats nothing.

The lock is tested in-process (kerasdl.locking) and with real processes: a second `kerasdl train` on a folder
being written refuses in one line naming the holder and writes nothing; after `kill -9` a third takes the stale
lock over and resumes. The fault injection chains seeded SIGKILLs on one run directory per loop (kill, resume,
kill again...), spread uniformly over the post-import part of a run plus kills aimed at its end; after each kill
the folder must be resumable or finished and valid, and the finished run must equal an uninterrupted one
(the same history and test metrics: resumed epochs see the same shuffle order, see LoopContext.train_dataset).
"""

from __future__ import annotations

import collections
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdl import files, locking
from kerasdl.locking import FolderLockedError, folder_lock
from kerasdl.training import TrainConfig, train
from kerasdl.training.fit_loop import backed_up_epochs
from kerasdl.training.run_dir import RunDirectory
from kerasdl.training.train import load_for
from test_training import Interrupt  # Ctrl-C at the end of an epoch, after its history row, before its checkpoint

EPOCHS = 6
# Per loop: kills at uniform moments of the post-import run (which mostly land in setup: data, model, compile),
# kills aimed at the writes between epochs (history row, best.keras, backup or checkpoint) and at the end (after
# the last history row, after model.keras), then a run left to finish. 2 x 7 kills, plus the lock test's kill.
UNIFORM_KILLS, BETWEEN_EPOCHS_KILLS = 3, 2
TOLERANCE = 1e-6  # the same config resumed gives the same floats (see the module docstring); printed to 6 digits
LANDINGS: collections.Counter = collections.Counter()  # where the kills landed, printed at the end (pytest -s)


def _command(out: Path, loop: str, epochs: int = EPOCHS, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kerasdl", "train", "mlp", "--loop", loop, "--epochs", str(epochs),
            "--out", str(out), "--quiet", *extra]


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, process: subprocess.Popen, timeout: float = 180) -> bool:
    """Poll `condition` until true (True) or the process ends first (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return True


def _kill(process: subprocess.Popen) -> str:
    """SIGKILL the process; its stderr (empty when it had already ended)."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    return process.communicate(timeout=60)[1]


def _epochs(run: RunDirectory) -> list[int]:
    """history.csv's epochs, after checking it has no blank or partial rows."""
    if not run.history_path.exists():
        return []
    lines = run.history_path.read_text().split("\n")
    assert lines[-1] == "" and all(lines[:-1]), f"blank or unterminated row in {lines}"
    rows = run.history_rows()
    assert all(len(row) == len(rows[0]) and None not in row.values() for row in rows)
    return [int(row["epoch"]) for row in rows]


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def reference():
    """{loop: (metrics, history rows, seconds)} of uninterrupted in-process runs, the seconds timing the post-import
    part (data, model, compile, epochs, evaluation, saving) that the kills are spread over."""
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for loop in ("fit", "tape"):
            started = time.perf_counter()
            result = train(TrainConfig("mlp", loop=loop, epochs=EPOCHS), out=Path(folder) / loop, verbose=0)
            results[loop] = (result.metrics, result.run.history_rows(), time.perf_counter() - started)
    return results


def _check_finished_like(run: RunDirectory, reference) -> None:
    """A finished run: each epoch once and the same history and test metrics as the uninterrupted run."""
    metrics, rows, _ = reference
    assert run.state == "finished"
    assert _epochs(run) == list(range(EPOCHS))
    finished = run.read_metrics()
    assert finished["epochs"] == EPOCHS
    for key in ("test_accuracy", "test_loss"):
        assert math.isclose(finished[key], metrics[key], abs_tol=TOLERANCE), (key, finished[key], metrics[key])
    for got, want in zip(run.history_rows(), rows):
        assert math.isclose(float(got["val_loss"]), float(want["val_loss"]), abs_tol=TOLERANCE), (got, want)


# --- resume state cut mid-write (in-process) ----------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["mid weights write", "between weights and metadata"])
def test_fit_backup_cut_by_a_crash_resumes_exactly(tmp_path, monkeypatch, reference, cut):
    """A crash while the fit loop backs up epoch 2: Keras's own BackupAndRestore would leave truncated weights
    (the resume cannot load them) or epoch 3's weights labelled epoch 2 (an epoch trained twice)."""
    real_save, calls = keras.Model.save_weights, []

    def crash_in_third_backup(model, filepath, *args, **kwargs):
        calls.append(filepath)
        real_save(model, filepath, *args, **kwargs)
        if len(calls) == 3:
            if cut == "mid weights write":
                Path(filepath).write_bytes(Path(filepath).read_bytes()[:2000])
            raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save_weights", crash_in_third_backup)
    config = TrainConfig("mlp", loop="fit", epochs=EPOCHS)
    with pytest.raises(KeyboardInterrupt):
        train(config, out=tmp_path, verbose=0)
    monkeypatch.undo()
    assert _epochs(RunDirectory(tmp_path)) == [0, 1, 2]
    train(config, out=tmp_path, verbose=0)
    _check_finished_like(RunDirectory(tmp_path), reference["fit"])


def test_tape_resumes_before_its_first_checkpoint_and_past_a_damaged_one(tmp_path, reference, capfd):
    config = TrainConfig("mlp", loop="tape", epochs=EPOCHS)
    with pytest.raises(KeyboardInterrupt):  # epoch 0 logged, never checkpointed: its row must not stay
        train(config, out=tmp_path, callbacks=[Interrupt(at=0)], verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train(config, out=tmp_path, callbacks=[Interrupt(at=3)], verbose=0)
    assert _epochs(RunDirectory(tmp_path)) == [0, 1, 2, 3]
    tape = RunDirectory(tmp_path).checkpoints_dir / "tape"
    for data in tape.glob("ckpt-3.data-*"):
        data.write_bytes(data.read_bytes()[:100])
    train(config, out=tmp_path, verbose=0)
    assert "ckpt-3 is unreadable" in capfd.readouterr().err
    _check_finished_like(RunDirectory(tmp_path), reference["tape"])


def test_history_truncated_to_no_epoch_has_no_blank_row(tmp_path):
    run = RunDirectory(tmp_path)
    run.write_history([{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}])
    run.truncate_history(1)
    assert _epochs(run) == [0]
    run.truncate_history(0)  # a resume before the first checkpoint
    assert _epochs(run) == [] and run.history_rows() == []


# --- kerasdl.locking in-process ---------------------------------------------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_held_lock_refuses_naming_its_holder_and_is_removed_on_exit(tmp_path):
    with folder_lock(tmp_path) as path:
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(FolderLockedError, match=f"is being written by pid {os.getpid()} on {socket.gethostname()}"):
            with folder_lock(tmp_path):
                pass
        assert path.exists()  # the refused attempt left the holder's file alone
    assert not path.exists()


def test_lock_is_removed_when_the_block_raises(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with folder_lock(tmp_path):
            1 / 0
    assert not (tmp_path / locking.LOCK_FILE).exists()
    with folder_lock(tmp_path):  # and can be taken again
        pass


@pytest.mark.parametrize("content", [None, "", "{not json", "[1, 2]"])
def test_stale_or_damaged_lock_file_is_taken_over(tmp_path, capsys, content):
    """A file a killed holder left (its JSON, or empty/garbled if it died writing it) holds no flock: taken over."""
    dead = _dead_pid()
    path = tmp_path / locking.LOCK_FILE
    path.write_text(json.dumps({"pid": dead, "host": "elsewhere"}) if content is None else content)
    with folder_lock(tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    said = capsys.readouterr().err
    if content is None:
        assert f"took over the lock on {tmp_path} left by pid {dead} on elsewhere" in said
    assert not path.exists()


def test_lock_retries_when_the_file_it_locked_was_removed(tmp_path, monkeypatch):
    """The race: we open .lock, its holder ends and removes it, we flock the removed inode: we must retry on the
    new file, or two writers would each hold a lock on a different inode."""
    real_flock, calls = locking.fcntl.flock, []

    def flock_after_holder_ended(descriptor, operation):
        calls.append(descriptor)
        if len(calls) == 1:
            (tmp_path / locking.LOCK_FILE).unlink()  # the holder's exit removes the file we just opened
        return real_flock(descriptor, operation)

    (tmp_path / locking.LOCK_FILE).write_text("")
    monkeypatch.setattr(locking.fcntl, "flock", flock_after_holder_ended)
    with folder_lock(tmp_path) as path:
        assert len(calls) == 2
        assert json.loads(path.read_text())["pid"] == os.getpid()  # the file at the path, not the removed one


# --- two real processes -----------------------------------------------------------------------------------------


def test_second_process_refuses_and_third_takes_over_after_kill(tmp_path, reference):
    out = tmp_path / "run"
    run = RunDirectory(out)
    backup = run.checkpoints_dir / "backup"
    first = _start(_command(out, "fit", 200, "--patience", "200"))
    try:
        assert _wait_for(lambda: backed_up_epochs(backup) >= 1, first), first.communicate()[1]
        first.send_signal(signal.SIGSTOP)  # alive and locking, but writing nothing while we compare the folder
        before = _listing(out)
        started = time.monotonic()
        second = subprocess.run(_command(out, "fit"), capture_output=True, text=True, timeout=120)
        refused_in = time.monotonic() - started
        assert _listing(out) == before
    finally:
        _kill(first)
    lines = [line for line in second.stderr.splitlines() if line.startswith("kerasdl")]
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert f"is being written by pid {first.pid} on {socket.gethostname()}" in lines[0]
    assert "Traceback" not in second.stderr
    print(f"second writer refused in {refused_in:.1f} s (process start included)")
    LANDINGS["lock test: mid-training"] += 1

    # Resumed under the uninterrupted run's config: the epochs the killed one ran beyond EPOCHS are dropped.
    done = backed_up_epochs(backup)
    third = subprocess.run(_command(out, "fit", max(done, EPOCHS), "--patience", "200"), capture_output=True,
                           text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert f"took over the lock on {out} left by pid {first.pid}" in third.stderr
    assert _epochs(run) == list(range(max(done, EPOCHS)))
    assert run.read_metrics()["resumed"] and not (out / locking.LOCK_FILE).exists()


# --- SIGKILL at random moments ----------------------------------------------------------------------------------


def _resume_point(run: RunDirectory) -> int:
    """The epoch a process started now resumes from: the fit loop's backup or the tape loop's newest checkpoint."""
    tape = [int(p.stem.partition("-")[2]) for p in (run.checkpoints_dir / "tape").glob("ckpt-*.index")]
    return max([backed_up_epochs(run.checkpoints_dir / "backup"), *tape])


def _check_after_kill(run: RunDirectory, resumed_from: int, left_before: list[Path], metrics_of_model) -> str:
    """The folder a kill left: resumable or finished, every file whole. Returns where the kill landed, from
    what the killed process (which resumed from epoch `resumed_from`) had logged and the temporaries it left
    (beyond `left_before`, those of earlier kills that it had not yet removed)."""
    temporaries = files.leftovers(run.path)
    cut = sorted({f" [cut mid-write: {p.name.partition(files.TEMPORARY_MARK)[0]}]"
                  for p in set(temporaries) - set(left_before)})
    if run.state == "new":  # killed before config.json: nothing but the lock and empty folders
        written = [p for p in run.path.rglob("*") if p.is_file() and p.name != locking.LOCK_FILE]
        assert not set(written) - set(temporaries), written
        return "setup (before config.json)" + "".join(cut)
    for path in run.path.rglob("*.json"):
        if path not in temporaries:
            json.loads(path.read_text())
    epochs = _epochs(run)
    assert epochs == list(range(len(epochs)))
    if run.state == "finished":
        metrics = run.read_metrics()
        assert metrics["epochs"] == len(epochs) == EPOCHS
        assert metrics_of_model(run) == pytest.approx(metrics["test_accuracy"], abs=1e-9)
        return "after the run finished"
    if len(epochs) == EPOCHS:
        where = "end: evaluation, model.keras, plots, metrics.json"
    elif len(epochs) > resumed_from:
        where = "training, after this process logged an epoch"
    else:
        where = "setup and first epoch of this process (data, model, compile, steps)"
    return where + "".join(cut)


def _logged_unsaved_epoch(run: RunDirectory, started: float) -> bool:
    """This process has written a history row that its backup/checkpoint does not hold yet: it is between epochs."""
    return (run.history_path.exists() and run.history_path.stat().st_mtime > started
            and len(_epochs(run)) > _resume_point(run))


def _accuracy_of_saved_model(run: RunDirectory) -> float:
    model = keras.saving.load_model(run.model_path, safe_mode=True)
    x, y = load_for(run.read_config()).split("test")
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def _kill_when(out: Path, loop: str, trigger, delay: float) -> str:
    """Start `kerasdl train`, wait for `trigger(started)` (checked only once the process holds the lock, i.e. after
    its imports; `started` is its start time), kill it `delay` seconds later; its stderr."""
    started = time.time()
    process = _start(_command(out, loop))
    if _wait_for(lambda: (out / locking.LOCK_FILE).exists() and trigger(started), process):
        time.sleep(delay)
    return _kill(process)


@pytest.mark.parametrize("loop", ["fit", "tape"])
def test_sigkill_at_random_moments_loses_and_repeats_no_epoch(tmp_path, loop, reference):
    rng = random.Random(f"faults-{loop}")
    seconds = reference[loop][2]
    out = tmp_path / "run"
    run = RunDirectory(out)
    kills = [("uniform", lambda started: True, rng.uniform(0, seconds)) for _ in range(UNIFORM_KILLS)]
    kills += [("between epochs", lambda started: _logged_unsaved_epoch(run, started), rng.uniform(0, 0.3))
              for _ in range(BETWEEN_EPOCHS_KILLS)]
    kills += [
        ("after the last history row", lambda started: len(_epochs(run)) == EPOCHS, rng.uniform(0, 0.5)),
        ("after model.keras", lambda started: run.model_path.exists(), rng.uniform(0, 1.0)),
    ]
    for aim, trigger, delay in kills:
        if run.state == "finished":  # the last kill came too late: keep killing a new run
            _check_finished_like(run, reference[loop])
            out = out.with_name(out.name + "+")
            run = RunDirectory(out)
        resumed_from, left_before = _resume_point(run), files.leftovers(run.path)
        stderr = _kill_when(out, loop, trigger, delay)
        assert "Traceback" not in stderr, stderr
        landed = _check_after_kill(run, resumed_from, left_before, _accuracy_of_saved_model)
        LANDINGS[f"{loop} {aim}: {landed}"] += 1
    if run.state != "finished":
        done = subprocess.run(_command(out, loop), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    _check_finished_like(run, reference[loop])
    assert not files.leftovers(out)


def test_zz_report_landings():
    """Prints where the kills of this module landed (pytest -s); runs last in the file."""
    print("\nkill points:", sum(LANDINGS.values()))
    for where, count in sorted(LANDINGS.items()):
        print(f"  {count:2d}  {where}")
