"""`--strategy mirrored` and `--strategy multiworker`: data parallel training on two logical CPU devices, and on two
worker processes on loopback that lose a worker, restart and resume. Every run is a subprocess: logical devices
and a cluster must be set up before TensorFlow starts, and each has a hard timeout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kerasdl.errors import KerasdlError
from kerasdl.training.config import TrainConfig
from kerasdl.training.distribute import read_tf_config, strategy_for

EPOCHS = 3
# Measured on mlp/digits, 3 epochs: 2 replicas vs 1 differ by at most 5.2e-4 (relative) in an epoch's loss or
# val_loss (float sums in another order, and the last batch of 13 split 7/6); a wrongly scaled loss is off by 2x.
CURVE_RTOL = 2e-3

MIRRORED_CHILD = r"""
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kerasdl.training import TrainConfig, train
from kerasdl.training.distribute import strategy_for

out, epochs = sys.argv[1], int(sys.argv[2])
mirrored = strategy_for(TrainConfig("mlp", strategy="mirrored", loop="fit"))
batch = tf.data.Dataset.from_tensor_slices(tf.zeros([64, 8, 8, 1])).batch(64)
first = next(iter(mirrored.strategy.experimental_distribute_dataset(batch)))
report = {
    "replicas": mirrored.replicas,
    "per_replica_batch": mirrored.per_replica_batch(64),
    "slices": [int(s.shape[0]) for s in mirrored.strategy.experimental_local_results(first)],
}


def curves(loop, strategy):
    config = TrainConfig("mlp", epochs=epochs, loop=loop, strategy=strategy)
    rows = train(config, out=f"{out}/{loop}-{strategy}", verbose=0).run.history_rows()
    return {key: [float(row[key]) for row in rows] for key in ("loss", "val_loss")}


for loop in ("fit", "tape"):
    if loop == "fit":  # Keras's fit draws one sample batch first under any strategy, which moves the reshuffles
        with tf.distribute.OneDeviceStrategy("/cpu:0").scope():  # on by one: the baseline does the same
            report["fit-one"] = curves("fit", "default")
    else:
        report["tape-one"] = curves("tape", "default")
    report[f"{loop}-mirrored"] = curves(loop, "mirrored")
print("REPORT " + json.dumps(report))
"""

# Worker 1 of the first attempt kills itself at the end of epoch 2, before its checkpoint; worker 0 is left alone.
MULTIWORKER_CHILD = r"""
import os, signal, sys
import keras
from kerasdl.training import TrainConfig, train


class Die(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)


config = TrainConfig("mlp", loop="tape", epochs=int(sys.argv[2]), strategy="multiworker")
train(config, out=sys.argv[1], callbacks=[Die()] if sys.argv[3] == "die" else [], verbose=0)
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tf_configs(workers: int) -> list[str]:
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(workers)]
    cluster = {"worker": addresses}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra}


def _cluster(commands: list[list[str]], logs: Path, timeout: float) -> list[int]:
    """Run one command per worker of a new loopback cluster; their exit codes (all killed after `timeout`)."""
    procs = []
    try:
        for i, (command, tf_config) in enumerate(zip(commands, _tf_configs(len(commands)))):
            log = (logs / f"worker{i}.log").open("w")
            procs.append(subprocess.Popen(command, env=_env(TF_CONFIG=tf_config), stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.5)
        return [p.poll() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def test_mirrored_on_two_devices_matches_one_device(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_CHILD, str(tmp_path), str(EPOCHS)],
        env=_env(), capture_output=True, text=True, timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.rpartition("REPORT ")[2])
    assert report["replicas"] == 2
    assert report["per_replica_batch"] == 32 and report["slices"] == [32, 32]  # the global batch, split in two
    for loop in ("fit", "tape"):
        one, mirrored = report[f"{loop}-one"], report[f"{loop}-mirrored"]
        for key in ("loss", "val_loss"):
            assert len(mirrored[key]) == EPOCHS
            np.testing.assert_allclose(mirrored[key], one[key], rtol=CURVE_RTOL, err_msg=f"{loop} {key}")
        assert mirrored["loss"][-1] < 0.6 * mirrored["loss"][0]  # it learns


def test_multiworker_survives_a_worker_restart(tmp_path):
    runs = tmp_path / "runs"
    out, epochs = runs / "mlp-digits", "5"
    first = [[sys.executable, "-c", MULTIWORKER_CHILD, str(out), epochs, fate] for fate in ("live", "die")]
    # The survivor cannot go on alone: TensorFlow's coordination service sees the peer's heartbeats stop and
    # aborts its collectives (about 15 s here), so it exits with an error instead of hanging.
    assert _cluster(first, tmp_path, timeout=240) == [1, -9], (tmp_path / "worker0.log").read_text()[-3000:]
    assert "unhealthy" in (tmp_path / "worker0.log").read_text()
    assert not (out / "metrics.json").exists()

    again = [sys.executable, "-m", "kerasdl", "train", "mlp", "--loop", "tape", "--epochs", epochs,
             "--strategy", "multiworker", "--out", str(out), "--quiet"]
    codes = _cluster([again, again], tmp_path, timeout=240)
    assert codes == [0, 0], "".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in (0, 1))

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["epochs"] == 5 and metrics["test_accuracy"] > 0.85
    history = (out / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in history] == list(range(5))  # every epoch once, in order
    assert sorted(p.name for p in runs.iterdir()) == ["mlp-digits"]  # worker 1's folder is gone: one run directory
    assert not (out / "checkpoints" / "tape").exists()


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{cluster", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', 'needs a "cluster" and a "task"'),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "multiworker knows chief and worker"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', '"host:port" addresses'),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "index 2 is outside"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "type 'chief' is not a job"),
    ],
)
def test_bad_tf_config_is_one_line(tf_config, message):
    with pytest.raises(KerasdlError, match=message):
        read_tf_config({} if tf_config is None else {"TF_CONFIG": tf_config})


def test_chief_is_the_chief_job_or_worker_zero():
    with_chief = '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "%s", "index": 0}}'
    assert read_tf_config({"TF_CONFIG": with_chief % "chief"}).is_chief
    assert not read_tf_config({"TF_CONFIG": with_chief % "worker"}).is_chief
    workers = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": %d}}'
    assert [read_tf_config({"TF_CONFIG": workers % i}).is_chief for i in (0, 1)] == [True, False]


def test_multiworker_needs_the_tape_loop():
    with pytest.raises(KerasdlError, match="--strategy multiworker trains with --loop tape, not 'fit'"):
        strategy_for(TrainConfig("mlp", loop="fit", strategy="multiworker"))


def test_cli_reports_a_bad_tf_config_in_one_line(tmp_path):
    bad = '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}'
    done = subprocess.run(
        [sys.executable, "-m", "kerasdl", "train", "mlp", "--loop", "tape", "--strategy", "multiworker",
         "--out", str(tmp_path / "run")],
        env=_env(TF_CONFIG=bad), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith("TF_CONFIG task index 3 is outside its 'worker' job (0 to 0)")
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()
