"""The task contract (kerasdl.tasks): the registry of tasks and the parity targets every export is held to."""

from __future__ import annotations

import pytest

from kerasdl.errors import UnknownNameError
from kerasdl.tasks import Bound, ParityTargets, get_task


def test_unknown_task_lists_known_ones():
    with pytest.raises(UnknownNameError, match="unknown task 'ranking'; known: .*classification"):
        get_task("ranking")


def test_parity_targets_name_each_bound_and_report_each_miss():
    targets = ParityTargets((Bound("max_abs_diff", 1e-4), Bound("top1_agreement", 0.9, upper=False)))
    assert targets.to_json() == {"max_abs_diff": 1e-4, "min_top1_agreement": 0.9}
    assert targets.failures({"max_abs_diff": 1e-5, "top1_agreement": 0.95}) == []
    assert targets.failures({"max_abs_diff": 0.5, "top1_agreement": 0.5}) == [
        "max abs diff 0.5 > 0.0001",
        "top1 agreement 0.5 < 0.9",
    ]


def test_classification_keeps_its_float_and_quantized_targets():
    task = get_task("classification")
    assert task.targets(None).to_json() == {"max_abs_diff": 1e-4, "min_top1_agreement": 1.0}
    assert task.targets("int8").to_json() == {"max_accuracy_drop": 0.01}
    assert (task.main_metric, task.objective, task.monitor) == ("test_accuracy", "val_accuracy", "val_loss")
