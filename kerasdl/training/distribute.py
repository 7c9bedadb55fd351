"""Where a run's steps go: one device, every local device (`MirroredStrategy`), or the machines of a `TF_CONFIG`
cluster (`MultiWorkerMirroredStrategy`); and which process of a cluster writes the run directory.

`batch_size` stays the global batch: tf.distribute splits each batch among the replicas, and the loss each
replica differentiates is divided by their number (`kerasdl.tasks.base.loss_to_differentiate`, and Keras's own
`fit`), so an update is the global batch's mean gradient, as on one device. Every worker of a cluster runs the
same code (collective saves and reads need all of them); only the chief writes into `--out`, the others into a
folder beside it (`.NAME.worker<i>`, what their resume needs) that a finished run removes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kerasdl.errors import KerasdlError
from kerasdl.training.config import TrainConfig

TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
)
JOBS = ("chief", "worker")  # MultiWorkerMirroredStrategy's task types
# The loops each strategy runs: Keras 3.15's `fit` fails under MultiWorkerMirroredStrategy as soon as it starts
# (keras-team/keras#20585: it reduces a sample batch over the workers), so a cluster trains with the tape loop.
DISTRIBUTED_LOOPS = {"mirrored": ("fit", "tape"), "multiworker": ("tape",)}


class ClusterConfigError(KerasdlError):
    """A missing or malformed TF_CONFIG for `--strategy multiworker`."""


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a TF_CONFIG cluster."""

    job: str  # "chief" or "worker"
    index: int
    has_chief: bool

    @property
    def is_chief(self) -> bool:
        """The chief job's task, or worker 0 of a cluster without one (TensorFlow's convention)."""
        return self.job == "chief" or (self.index == 0 and not self.has_chief)


def read_tf_config(environ: Mapping[str, str] = os.environ) -> ClusterTask:
    """This process's task from TF_CONFIG, checked without TensorFlow, so a mistake is one line before any
    cluster starts (TensorFlow would wait for peers that never come, or fail deep inside)."""
    text = environ.get("TF_CONFIG")
    if not text:
        raise ClusterConfigError(
            f"--strategy multiworker needs the TF_CONFIG environment variable, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'"
        )
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON ({err})") from None
    cluster, task = (values.get("cluster"), values.get("task")) if isinstance(values, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ClusterConfigError(f'TF_CONFIG needs a "cluster" and a "task" object, e.g. {TF_CONFIG_EXAMPLE}')
    for job, addresses in cluster.items():
        if job not in JOBS:
            raise ClusterConfigError(f"TF_CONFIG cluster has a {job!r} job; multiworker knows {' and '.join(JOBS)}")
        if not isinstance(addresses, list) or not addresses or not all(_is_address(a) for a in addresses):
            raise ClusterConfigError(f'TF_CONFIG cluster job {job!r} must be a list of "host:port" addresses')
    if len(cluster.get("chief", [])) > 1:
        raise ClusterConfigError("TF_CONFIG cluster has more than one chief")
    job, index = task.get("type"), task.get("index")
    if job not in cluster:
        raise ClusterConfigError(f"TF_CONFIG task type {job!r} is not a job of its cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[job]):
        raise ClusterConfigError(
            f"TF_CONFIG task index {index!r} is outside its {job!r} job (0 to {len(cluster[job]) - 1})"
        )
    return ClusterTask(job, index, has_chief="chief" in cluster)


def _is_address(value: Any) -> bool:
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    return bool(host) and port.isdigit()


@dataclass(frozen=True)
class Distribution:
    """A run's tf.distribute strategy and this process's part in it."""

    name: str  # TrainConfig.strategy
    strategy: Any  # tf.distribute.Strategy
    cluster: ClusterTask | None = None  # None: a single process

    @property
    def replicas(self) -> int:
        """Model copies that each take a slice of every global batch (devices, over all workers)."""
        return self.strategy.num_replicas_in_sync

    @property
    def replicated(self) -> bool:
        """Steps run through `strategy.run` on mirrored variables (not TensorFlow's default strategy)."""
        return self.name != "default"

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief

    def scope(self) -> AbstractContextManager:
        """Variables (model, optimizer, metrics) made inside are mirrored on every replica."""
        return self.strategy.scope()

    def adapted(self, config: TrainConfig) -> TrainConfig:
        """`config` as this strategy runs it (saved so in config.json), after checking its batch splits evenly.

        Replicated steps run without XLA (a compiled step cannot reach the other replicas' variables: "Trying
        to access resource ... located in device CPU:1") and `fit` runs one step per call (several fail under a
        strategy in Keras 3: keras-team/keras#19246)."""
        self.per_replica_batch(config.batch_size)
        if not self.replicated:
            return config
        return dataclasses.replace(config, jit_compile=False, steps_per_execution=1)

    def per_replica_batch(self, batch_size: int) -> int:
        """The slice of each global batch one replica trains on; the global batch must split evenly, so
        every replica's mean counts as much as on one device."""
        if batch_size % self.replicas:
            raise KerasdlError(
                f"batch-size {batch_size} does not split evenly over {self.replicas} replicas; "
                f"pass a multiple of {self.replicas} (--batch-size is the global batch)"
            )
        return batch_size // self.replicas

    def run_path(self, out: Path) -> Path:
        """Where this process writes: `out` on the chief, a hidden folder beside it on other workers."""
        if self.is_chief:
            return out
        return out.parent / f".{out.name}.worker{self.cluster.index}"

    def agreed_epoch(self, saved: int) -> int:
        """The newest epoch that every worker has saved, given this one's newest (`saved`): a worker that died
        first may have missed the last save, and all must resume from the same epoch."""
        if self.cluster is None:
            return saved
        import tensorflow as tf

        each = self.strategy.gather(self.strategy.run(lambda: tf.constant([saved], tf.int64)), axis=0)
        return int(tf.reduce_min(each))

    def evaluation_model(self, model: Any, saved: Path) -> Any:
        """The model to test: on a cluster, a one-device copy loaded from `saved`, so each worker evaluates
        alone (the trained model's `predict` would split the test set over the workers)."""
        if self.cluster is None:
            return model
        from kerasdl.models.loading import load_model_file

        return load_model_file(saved)

    def finish(self, path: Path) -> None:
        """After a finished run: a non-chief worker removes what it wrote (the chief's directory holds it all)."""
        if not self.is_chief:
            shutil.rmtree(path, ignore_errors=True)

    def sharded(self, dataset: Any, files: bool) -> Any:
        """`dataset` as workers should split it: by file where it reads files (each worker reads only its own
        TFRecord shards, by element where there are fewer files than workers), else by element (each worker
        keeps its slice of every global batch, after the same seeded shuffle)."""
        import tensorflow as tf

        options = tf.data.Options()
        policy = tf.data.experimental.AutoShardPolicy
        options.experimental_distribute.auto_shard_policy = policy.AUTO if files else policy.DATA
        return dataset.with_options(options)


def strategy_for(config: TrainConfig) -> Distribution:
    """The config's strategy, started before the data and model (a cluster's collectives are configured when it
    starts). "multiworker" checks TF_CONFIG first, then waits until every worker has joined."""
    name = config.strategy
    if name != "default" and config.loop not in DISTRIBUTED_LOOPS[name]:
        loops = " or ".join(DISTRIBUTED_LOOPS[name])
        raise KerasdlError(f"--strategy {name} trains with --loop {loops}, not {config.loop!r}")
    cluster = read_tf_config() if name == "multiworker" else None
    import tensorflow as tf

    if name == "mirrored":
        return Distribution(name, tf.distribute.MirroredStrategy())
    if name == "multiworker":
        return Distribution(name, tf.distribute.MultiWorkerMirroredStrategy(), cluster)
    return one_device()


def one_device() -> Distribution:
    """TensorFlow's default strategy: no replicas, the steps run as written."""
    import tensorflow as tf

    return Distribution("default", tf.distribute.get_strategy())
