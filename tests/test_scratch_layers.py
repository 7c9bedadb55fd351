"""kerasdl.scratch numerics: activations, losses, layers; every backward pass against finite differences."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from kerasdl.scratch import (
    MLP,
    BatchNormalization,
    BinaryCrossEntropy,
    CategoricalCrossEntropy,
    Dense,
    Dropout,
    L1L2,
    MeanSquaredError,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    check_layer,
    check_loss,
    sigmoid,
    softmax,
)
from kerasdl.scratch.gradient_check import numerical_gradient

TOLERANCE = 1e-6  # relative error of a backward pass against central differences, float64


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((8, 4))


def test_scratch_imports_numpy_only():
    code = "import sys, kerasdl.scratch; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_activation_values():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(Sigmoid.function(z), 1 / (1 + np.exp(-z)))
    np.testing.assert_array_equal(ReLU.function(z), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(Tanh.function(z), (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z)))
    probabilities = softmax(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(probabilities.sum(), 1.0)
    np.testing.assert_allclose(probabilities, np.exp([[1, 2, 3]]) / np.exp([1, 2, 3]).sum())


@pytest.mark.parametrize("activation", [Sigmoid, ReLU, Tanh])
def test_activation_derivative_matches_finite_differences(activation):
    z = np.array([-3.0, -0.7, 0.4, 2.5])  # away from ReLU's kink at 0
    h = 1e-6
    numerical = (activation.function(z + h) - activation.function(z - h)) / (2 * h)
    np.testing.assert_allclose(activation.derivative(z), numerical, rtol=1e-6, atol=1e-9)


def test_softmax_backward_is_gradient_times_jacobian(batch):
    layer, grad = Softmax(), np.random.default_rng(1).standard_normal(batch.shape)
    layer.forward(batch)
    jacobian = Softmax.derivative(batch)
    np.testing.assert_allclose(layer.backward(grad), np.einsum("bi,bij->bj", grad, jacobian), atol=1e-12)


@pytest.mark.parametrize("activation", [Sigmoid, ReLU, Tanh, Softmax], ids=lambda a: a.__name__)
def test_activation_gradient_check(activation, batch):
    assert max(check_layer(activation(), batch).values()) < TOLERANCE


@pytest.mark.parametrize(
    "layer",
    [
        Dense(4, 3, seed=0),
        Dense(4, 3, use_bias=False, seed=0),
        Dense(4, 3, regularizer=L1L2(l1=0.01, l2=0.05), seed=0),
        Dropout(0.5, seed=0),
        BatchNormalization(4),
    ],
    ids=["dense", "dense-no-bias", "dense-l1-l2", "dropout", "batchnorm"],
)
def test_layer_gradient_check(layer, batch):
    errors = check_layer(layer, batch, training=True)
    assert set(errors) == {"input", *layer.params}
    assert max(errors.values()) < TOLERANCE, errors


def test_batchnorm_inference_gradient_check(batch):
    layer = BatchNormalization(4)
    for _ in range(3):  # move the running statistics away from 0 and 1
        layer.forward(batch * 2 + 1, training=True)
    assert max(check_layer(layer, batch, training=False).values()) < TOLERANCE


@pytest.mark.parametrize(
    "options",
    [{}, {"activation": "tanh", "batch_norm": True, "dropout": 0.3, "l1": 0.01, "l2": 0.01}],
    ids=["plain", "tanh-bn-dropout-l1-l2"],
)
def test_whole_mlp_gradient_check(options, batch):
    model = MLP((4, 6, 5, 3), seed=1, **options)
    errors = check_layer(model, batch)
    assert len(errors) == 1 + len(model.params)
    assert max(errors.values()) < TOLERANCE, errors


def test_gradient_check_catches_a_wrong_backward(batch):
    class HalfGradientDense(Dense):
        def backward(self, grad):
            return super().backward(grad) * 0.5

    errors = check_layer(HalfGradientDense(4, 3, seed=0), batch)
    assert errors["input"] > 0.1 and errors["kernel"] < TOLERANCE


LABELS = np.array([0, 2, 1, 1, 0, 2])


@pytest.mark.parametrize(
    "loss, y_true, y_pred",
    [
        (MeanSquaredError(), np.linspace(-1, 1, 12).reshape(6, 2), np.linspace(2, -1, 12).reshape(6, 2)),
        (BinaryCrossEntropy(from_logits=True), LABELS[:, None] % 2, np.linspace(-3, 3, 6)[:, None]),
        (BinaryCrossEntropy(), LABELS[:, None] % 2, sigmoid(np.linspace(-3, 3, 6))[:, None]),
        (CategoricalCrossEntropy(from_logits=True), LABELS, np.linspace(-2, 2, 18).reshape(6, 3)),
        (CategoricalCrossEntropy(), np.eye(3)[LABELS], softmax(np.linspace(-2, 2, 18).reshape(6, 3))),
    ],
    ids=["mse", "bce-logits", "bce", "cce-logits", "cce"],
)
def test_loss_gradient_check(loss, y_true, y_pred):
    assert check_loss(loss, y_true, y_pred) < TOLERANCE


def test_loss_values_on_known_inputs():
    assert MeanSquaredError()(np.array([[1.0], [3.0]]), np.array([[2.0], [1.0]])) == pytest.approx(2.5)
    p, y = np.array([[0.8], [0.4]]), np.array([[1], [0]])
    assert BinaryCrossEntropy()(y, p) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    logits = np.array([[2.0, 1.0, 0.1]])
    expected = -np.log(np.exp(2.0) / np.exp(logits).sum())
    assert CategoricalCrossEntropy(from_logits=True)(np.array([0]), logits) == pytest.approx(expected)


def test_losses_stay_finite_on_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    # Overflow, log(0) and 0/0 raise; underflow of exp(-2000) to 0 is harmless and allowed.
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        cce = CategoricalCrossEntropy(from_logits=True)
        assert cce(np.array([0, 1]), logits) == pytest.approx(0.0)
        assert cce(np.array([1, 0]), logits) == pytest.approx(2000.0)
        np.testing.assert_allclose(cce.gradient(np.array([1, 0]), logits), [[0.5, -0.5, 0], [-0.5, 0.5, 0]])
        z, y = np.array([[1000.0], [-1000.0]]), np.array([[0], [1]])
        bce = BinaryCrossEntropy(from_logits=True)
        assert bce(y, z) == pytest.approx(1000.0)
        np.testing.assert_allclose(bce.gradient(y, z), [[0.5], [-0.5]])
        probabilities = sigmoid(z)  # exactly 1 and 0: the clip keeps log away from 0
        assert np.isfinite(BinaryCrossEntropy()(y, probabilities))
        assert np.all(np.isfinite(BinaryCrossEntropy().gradient(y, probabilities)))
        assert np.all(np.isfinite(CategoricalCrossEntropy()(np.array([1, 0]), softmax(logits))))
        np.testing.assert_array_equal(sigmoid(np.array([-1000.0, 1000.0])), [0.0, 1.0])


def test_l2_gradient_is_two_lambda_w():
    """The curriculum's L2 update adds lambda * w^2 to the gradient; d(lambda w^2)/dw is 2 lambda w."""
    w = np.array([[0.5, -2.0], [3.0, 0.0]])
    penalty = L1L2(l2=0.1)
    np.testing.assert_allclose(penalty.gradient(w), 2 * 0.1 * w)
    np.testing.assert_allclose(penalty.gradient(w), numerical_gradient(lambda: penalty(w), w), atol=1e-8)
    assert not np.allclose(penalty.gradient(w), 0.1 * w**2)
    np.testing.assert_allclose(L1L2(l1=0.1).gradient(w), 0.1 * np.sign(w))


def test_inverted_dropout_keeps_the_mean_and_is_off_at_inference():
    x = np.ones((2000, 50))
    layer = Dropout(0.3, seed=0)
    out = layer.forward(x, training=True)
    assert np.mean(out == 0) == pytest.approx(0.3, abs=0.01)
    assert out.mean() == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.7])
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_batchnorm_normalizes_in_training_and_uses_running_statistics_at_inference():
    x = np.random.default_rng(0).normal(5.0, 3.0, (256, 3))
    layer = BatchNormalization(3, momentum=0.0)  # momentum 0: running statistics = last batch's
    out = layer.forward(x, training=True)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-3))
    np.testing.assert_allclose(layer.forward(x[:5], training=False), out[:5])  # same statistics, any batch
    assert not np.allclose(BatchNormalization(3).forward(x[:5], training=False), out[:5])
