"""Shared fixtures: real data from ../shared/data, and digits runs trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if SHARED_DATA.is_dir():  # CI and developers: the real data sets; elsewhere loaders use their download path
    os.environ.setdefault("KERASDL_DATA", str(SHARED_DATA))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    """The curriculum MLP trained on digits for 10 epochs (seed 0) with each loop: {"fit": RunResult, "tape": ...}."""
    from kerasdl.training import TrainConfig, train

    root = tmp_path_factory.mktemp("digits_runs")
    return {loop: train(TrainConfig("mlp", loop=loop), out=root / loop, verbose=0) for loop in ("fit", "tape")}
