"""Tuning: Keras Tuner searches over every registered model's search space, and optimizer comparisons."""

from kerasdl.tuning.search import TUNERS, TuneResult, tune

__all__ = ["TUNERS", "TuneResult", "tune"]
