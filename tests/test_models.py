"""Registered models: the registry's contract and the curriculum MLP's architecture."""

from __future__ import annotations

import numpy as np
import pytest

from kerasdl.data import DatasetInfo
from kerasdl.errors import UnknownNameError
from kerasdl.registry import model_spec, model_specs
from kerasdl.tasks import get_task

DIGITS = DatasetInfo("digits", (8, 8, 1), 10, tuple("0123456789"))
MNIST = DatasetInfo("mnist", (28, 28, 1), 10, tuple("0123456789"))


def test_every_model_has_its_metadata():
    specs = model_specs()
    assert "mlp" in [s.name for s in specs]
    for spec in specs:
        assert spec.family and spec.task and spec.lesson and spec.summary
        assert spec.default_data
        assert get_task(spec.task).name == spec.task  # every task a model names is registered


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownNameError, match="unknown model 'resnet'; known: .*mlp"):
        model_spec("resnet")


@pytest.mark.parametrize("info, params", [(DIGITS, 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10), (MNIST, 109_386)])
def test_mlp_is_the_curriculum_digits_classifier(info, params):
    model = model_spec("mlp").build(info)
    assert model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers] == ["image", "flatten", "hidden_1", "hidden_2", "logits"]
    assert [layer.units for layer in model.layers[2:]] == [128, 64, 10]
    assert model.count_params() == params
    logits = model(np.zeros((3, *info.input_shape), np.float32))
    assert logits.shape == (3, 10)


def test_mlp_regularization_options_add_their_layers():
    model = model_spec("mlp").build(DIGITS, hidden_units=(32,), dropout=0.3, l2=1e-4, batch_norm=True)
    names = [layer.name for layer in model.layers]
    assert names == ["image", "flatten", "hidden_1", "hidden_1_bn", "hidden_1_relu", "hidden_1_dropout", "logits"]
    assert len(model.losses) == 1  # the L2 penalty on hidden_1's kernel
