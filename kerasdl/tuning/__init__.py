"""Tuning: Keras Tuner searches over every registered model's search space, and optimizer comparisons."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kerasdl.tuning.search import TUNERS, TuneResult, WorkerResult, tune

__all__ = ["TUNERS", "TuneResult", "WorkerResult", "tune"]


def __getattr__(name: str) -> Any:
    """Imports the search (and so Keras) on first use: `kerasdl tune` checks `kerasdl.tuning.role` before that."""
    if name in __all__:
        return getattr(importlib.import_module("kerasdl.tuning.search"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
