"""Train a configuration into a run directory once: a search or comparison run again reuses what is finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kerasdl.training import RunDirectory, TrainConfig, train
from kerasdl.training.run_dir import changed_settings
from kerasdl.training.train import resolve


def train_once(
    config: TrainConfig, out: Path, *, overwrite: bool = False, verbose: int | str = 0
) -> tuple[RunDirectory, dict[str, Any]]:
    """Train `config` into `out` and return its run and metrics.

    A finished run of the same config there is kept (unless `overwrite`), an interrupted one resumes,
    and a run of another config is replaced.
    """
    config = resolve(config)
    run = RunDirectory(out)
    same = run.state != "new" and not changed_settings(run.read_config(), config.to_json())
    if same and run.state == "finished" and not overwrite:
        return run, run.read_metrics()
    result = train(config, out=out, overwrite=overwrite or (run.state != "new" and not same), verbose=verbose)
    return result.run, result.metrics
