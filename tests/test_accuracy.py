"""Accuracy of the curriculum MLP on real data, with both loops: the plain model, 10 epochs, seed 0."""

from __future__ import annotations

import pytest

from kerasdl.training import TrainConfig, train

LOOPS = ("fit", "tape")


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
def test_digits_accuracy(digits_runs, loop):
    assert digits_runs[loop].metrics["test_accuracy"] >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
def test_mnist_accuracy(tmp_path, loop):
    result = train(TrainConfig("mlp", data="mnist", loop=loop, epochs=10), out=tmp_path, verbose=0)
    assert result.metrics["test_samples"] == 10_000
    assert result.metrics["test_accuracy"] >= 0.97
