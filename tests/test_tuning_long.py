"""What a long Keras Tuner search needs: trials isolated in processes (flat memory), bounded disk, trials that
kill their process retried once then failed, TensorBoard's HParams dashboard, plots, and search-to-edge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image
import pytest

from kerasdl.cli import main
from kerasdl.errors import KerasdlError
from kerasdl.training import TrainConfig
from kerasdl.tuning import tune

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|getName:DeprecationWarning")  # inside Keras Tuner

# The grid tuner's first six points share units and depth (only optimizer and batch size change), so every
# trial builds the same network and memory can be compared across trials.
TRIALS, KEEP = 6, 2
SEARCH = TrainConfig("mlp", epochs=2)  # as SEARCH_PROGRAM searches
TIMEOUT = 300  # seconds any one command may take before the test fails instead of hanging


# Each search runs in a fresh Python process, as a user's `kerasdl tune` does: a pytest worker that ran other
# tests first already holds its own peak memory, which would hide an in-process search's growth.
SEARCH_PROGRAM = """
import sys
from kerasdl.quiet import quiet_libraries
with quiet_libraries():
    from kerasdl.training import TrainConfig
    from kerasdl.tuning import tune
tune(TrainConfig("mlp", epochs=2), "grid", max_trials={trials}, out=sys.argv[1], isolate=sys.argv[2] == "isolate",
     keep_best={keep}, retrain=False, verbose=0)
"""


@dataclass(frozen=True)
class Search:
    out: Path
    trials: list[dict]
    best: dict


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """The same six-trial grid search run in one process and with each trial in its own process."""
    root, program = tmp_path_factory.mktemp("long"), SEARCH_PROGRAM.format(trials=TRIALS, keep=KEEP)
    found = {}
    for isolate in (False, True):
        out = root / f"isolate-{isolate}"
        done = subprocess.run([sys.executable, "-c", program, str(out), "isolate" if isolate else "in-process"],
                              capture_output=True, text=True, timeout=2 * TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]
        found[isolate] = Search(out, json.loads((out / "trials.json").read_text()),
                                json.loads((out / "best_hyperparameters.json").read_text()))
    return found


def test_isolated_trials_hold_memory_flat_where_one_process_grows(searches):
    """Peak RSS of the process that ran each trial: the search's own grows, each isolated trial's stays at the
    first's (up to what its optimizer and batch size need: Adam's slots, a batch of 128)."""
    in_process = [row["peak_rss_mb"] for row in searches[False].trials]
    isolated = [row["peak_rss_mb"] for row in searches[True].trials]
    growth, above_first = in_process[-1] - in_process[0], max(isolated) - isolated[0]
    print(f"peak RSS per trial (MiB): in one process {in_process} (+{growth:.1f}); isolated {isolated} "
          f"(at most +{above_first:.1f} over the first)")
    assert above_first < growth / 2, (in_process, isolated)
    assert max(isolated) < in_process[-1]
    # Isolation changes where a trial runs, not what it computes: the same seeded trials score the same.
    assert [row["val_accuracy"] for row in searches[True].trials] == pytest.approx(
        [row["val_accuracy"] for row in searches[False].trials], abs=1e-6
    )


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_only_the_best_trials_keep_checkpoints_so_the_folder_stays_bounded(searches, isolate):
    result = searches[isolate]
    search = result.out / "search"
    kept = sorted(path.parent.name for path in search.glob("trial_*/checkpoint.weights.h5"))
    ranked = sorted(result.trials, key=lambda row: -row["val_accuracy"])
    assert kept == sorted(f"trial_{row['trial']}" for row in ranked[:KEEP])
    checkpoint_mb = (search / kept[0] / "checkpoint.weights.h5").stat().st_size / 2**20
    sizes = [row["folder_mb"] for row in result.trials]
    # After the first KEEP trials, each trial adds its small records only, never a checkpoint to keep.
    assert sizes[-1] - sizes[KEEP - 1] < checkpoint_mb, (sizes, checkpoint_mb)
    assert all(later >= 0 for later in sizes) and len(sizes) == TRIALS


def test_every_trial_reaches_tensorboard_hparams_dashboard(searches):
    """TensorBoard's own HParams backend (as `tensorboard --logdir OUT` serves it) lists every trial."""
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    result = searches[False]
    logdir = str(result.out)
    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(logdir)
    runs.Reload()
    context = base_plugin.TBContext(logdir=logdir, multiplexer=runs, data_provider=MultiplexerDataProvider(runs, logdir))
    apps = hparams_plugin.HParamsPlugin(context).get_plugin_apps()

    def post(route: str, body: dict) -> dict:
        response = Client(apps[route], Response).post(route, json=body, headers={"X-XSRF-Protected": "1"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    experiment = post("/experiment", {"experimentName": ""})
    assert {info["name"] for info in experiment["hparamInfos"]} == {
        "units", "depth", "dropout", "l2", "learning_rate", "optimizer", "batch_size"
    }
    assert {"score", "val_accuracy", "seconds", "peak_rss_mb"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
    groups = post("/session_groups", {"experimentName": "", "startIndex": 0, "sliceSize": 100,
                                      "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"], "colParams": []})
    sessions = {group["name"]: group for group in groups["sessionGroups"]}
    assert sorted(sessions) == [row["trial"] for row in result.trials]
    for row in result.trials:
        group = sessions[row["trial"]]
        assert group["hparams"]["optimizer"] == row["optimizer"] and group["hparams"]["batch_size"] == row["batch_size"]
        score = next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == "score")
        assert score == pytest.approx(row["val_accuracy"])


def test_the_search_folder_has_the_objective_and_best_curves_plots(searches):
    for name in ("objective.png", "best_curves.png"):
        image = matplotlib.image.imread(searches[False].out / name)
        assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0.05  # drawn, not blank
    best = searches[False].best
    history = json.loads((searches[False].out / "search" / f"trial_{best['trial']}" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1] and max(r["val_accuracy"] for r in history) == best["score"]


# --- interrupted trials ------------------------------------------------------------------------------------------------

SMALL = ("tune", "mlp", "--data", "digits", "--tuner", "random", "--max-trials", "3", "--epochs", "3", "--no-jit",
         "--quiet")


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as stream:
        return subprocess.Popen([sys.executable, "-m", "kerasdl", *argv], stdout=stream, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, f"the search ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def trained_an_epoch(history: Path, since: float):
    """True once `history` (a trial's history.json) has been written after `since`."""
    return lambda: history.exists() and history.stat().st_mtime > since


def trial_children(search: subprocess.Popen, request: Path) -> list[int]:
    """Pids of `search`'s children that run the trial of `request`."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            parent = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
            command = (status.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, StopIteration):
            continue
        if int(parent.split()[1]) == search.pid and str(request).encode() in command:
            pids.append(int(status.parent.name))
    return pids


def test_a_trial_that_kills_the_search_is_retried_once_then_failed(tmp_path):
    """keras-tuner#439: trial 1 kills the search (as an out-of-memory kill would) every time it trains."""
    out = tmp_path / "search"
    argv = [*SMALL, "--out", str(out)]
    history = out / "search" / "trial_1" / "history.json"
    for attempt in range(2):  # the first run, then its one retry
        since = time.time()
        search = start(argv, tmp_path / f"run{attempt}.log")
        wait_for(trained_an_epoch(history, since), search, f"trial 1 training (attempt {attempt + 1})")
        search.kill()
        search.wait()
    finished = start(argv, tmp_path / "final.log")
    assert finished.wait(TIMEOUT) == 0, (tmp_path / "final.log").read_text()[-3000:]
    rows = json.loads((out / "trials.json").read_text())
    assert [(row["trial"], row["status"]) for row in rows] == [("0", "COMPLETED"), ("1", "FAILED"), ("2", "COMPLETED")]
    assert "ended during this trial 2 times" in rows[1]["error"]
    runs = json.loads((out / "search" / "oracle.json").read_text())["run_times"]
    assert runs == {"0": 1, "1": 2, "2": 1}  # trial 0 was not rerun by either resume


def test_an_isolated_trial_whose_process_is_killed_is_retried_once_then_failed(tmp_path):
    """With --isolate an out-of-memory kill takes the trial's process only: the search retries it, then goes on."""
    out = tmp_path / "search"
    search = start([*SMALL, "--isolate", "--out", str(out)], tmp_path / "run.log")
    request = out / "search" / "trial_1" / "request.json"
    history = request.parent / "history.json"
    for attempt in range(2):
        since = time.time()
        wait_for(trained_an_epoch(history, since), search, f"trial 1 training (attempt {attempt + 1})")
        children = trial_children(search, request)
        assert len(children) == 1
        os.kill(children[0], signal.SIGKILL)
        wait_for(lambda: children[0] not in trial_children(search, request), search, "the killed trial's end")
    assert search.wait(TIMEOUT) == 0, (tmp_path / "run.log").read_text()[-3000:]
    rows = json.loads((out / "trials.json").read_text())
    assert [row["status"] for row in rows] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert "trial 1's process was killed by SIGKILL (out of memory?)" in rows[1]["error"]
    assert (out / "best" / "metrics.json").is_file()


# --- options ------------------------------------------------------------------------------------------------------------


def test_a_search_ends_in_a_deployable_int8_artifact(tmp_path, capsys):
    out = tmp_path / "search"
    argv = ["tune", "mlp", "--tuner", "random", "--max-trials", "2", "--epochs", "3", "--quiet", "--out", str(out),
            "--export", "tflite-int8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "export" / "tflite-int8" / "export.json").read_text())
    assert report["format"] == "tflite-int8" and report["builtin_ops_only"] is True and report["targets"]["met"]
    assert report["source"]["run_dir"] == str((out / "best").resolve())
    assert "tflite-int8:" in printed and "parity on" in printed and "tensorboard --logdir" in printed


def test_option_mistakes_fail_before_any_trial(tmp_path, capsys):
    with pytest.raises(KerasdlError, match="callbacks cannot reach trials"):
        tune(SEARCH, "random", max_trials=2, out=tmp_path / "a", isolate=True, callbacks=[object()], verbose=0)
    with pytest.raises(KerasdlError, match="keep_best must be at least 1"):
        tune(SEARCH, "random", max_trials=2, out=tmp_path / "b", keep_best=0, verbose=0)
    with pytest.raises(KerasdlError, match="export needs the best configuration retrained"):
        tune(SEARCH, "random", max_trials=2, out=tmp_path / "c", export="tflite-int8", retrain=False, verbose=0)
    assert not any((tmp_path / name).exists() for name in "abc")
    with pytest.raises(SystemExit):
        main(["tune", "mlp", "--tuner", "random", "--export", "tflite-int9", "--out", str(tmp_path / "d")])
    assert "invalid choice: 'tflite-int9'" in capsys.readouterr().err
