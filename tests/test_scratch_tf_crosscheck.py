"""The NumPy code against TensorFlow: same weights and batch give the same gradients as tf.GradientTape,
and one update of each scratch optimizer equals the Keras optimizer's with the same hyperparameters."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasdl.scratch import MLP, Adam, BatchNormalization, BinaryCrossEntropy, CategoricalCrossEntropy, Dense, Dropout
from kerasdl.scratch import GradientDescent, Momentum, RMSProp
from kerasdl.scratch.activations import ACTIVATIONS, Activation

ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}


def keras_equivalent(model: MLP) -> tuple[keras.Model, list[tuple[keras.layers.Layer, object]]]:
    """The Keras model (float64) computing what `model` computes, with its weights copied in."""
    inputs = keras.Input((model.layer_sizes[0],), dtype="float64")
    x, pairs = inputs, []
    for layer in model.layers:
        if isinstance(layer, Dense):
            n_outputs = layer.params["kernel"].shape[1]
            regularizer = keras.regularizers.L1L2(model.l1, model.l2) if model.l1 or model.l2 else None
            keras_layer = keras.layers.Dense(
                n_outputs, use_bias="bias" in layer.params, kernel_regularizer=regularizer, dtype="float64"
            )
        elif isinstance(layer, BatchNormalization):
            keras_layer = keras.layers.BatchNormalization(
                momentum=layer.momentum, epsilon=layer.epsilon, dtype="float64"
            )
        elif isinstance(layer, Activation):
            keras_layer = keras.layers.Activation(ACTIVATION_NAMES[type(layer)], dtype="float64")
        else:
            raise AssertionError(f"no Keras twin for {type(layer).__name__} in this test")
        x = keras_layer(x)
        if layer.params:
            pairs.append((keras_layer, layer))
    keras_model = keras.Model(inputs, x)
    for keras_layer, layer in pairs:
        extra = [layer.moving_mean, layer.moving_variance] if isinstance(layer, BatchNormalization) else []
        keras_layer.set_weights([*layer.params.values(), *extra])
    return keras_model, pairs


@pytest.mark.parametrize(
    "options",
    # Penalties that are powers of two: Keras rounds them to float32 as well (see below).
    [
        {"activation": "relu"},
        {"activation": "tanh", "batch_norm": True, "l1": 2**-6, "l2": 2**-5},
        {"activation": "sigmoid", "l2": 0.125},
    ],
    ids=["relu", "tanh-batchnorm-l1-l2", "sigmoid-l2"],
)
def test_mlp_gradients_equal_gradient_tape(options):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 6)), rng.integers(0, 3, 16)
    model = MLP((6, 5, 4, 3), seed=2, **options)
    keras_model, pairs = keras_equivalent(model)

    scores = model.forward(x, training=True)
    loss = model.loss(y, scores) + model.penalty()
    model.backward(model.loss.gradient(y, scores))

    with tf.GradientTape() as tape:
        logits = keras_model(x, training=True)
        cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
        keras_loss = cross_entropy(y, logits) + sum(keras_model.losses)
    keras_grads = tape.gradient(keras_loss, keras_model.trainable_variables)

    np.testing.assert_allclose(scores, logits.numpy(), rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(float(keras_loss), rel=1e-10)
    assert len(keras_grads) == len(model.grads)
    for (name, grad), keras_grad in zip(model.grads.items(), keras_grads):
        np.testing.assert_allclose(grad, keras_grad.numpy(), rtol=1e-6, atol=1e-10, err_msg=name)
    for keras_layer, layer in pairs:  # batch norm's running statistics moved the same way
        if isinstance(layer, BatchNormalization):
            np.testing.assert_allclose(layer.moving_mean, keras_layer.moving_mean.numpy(), rtol=1e-10)
            np.testing.assert_allclose(layer.moving_variance, keras_layer.moving_variance.numpy(), rtol=1e-10)


def test_dropout_inference_is_identity_like_keras():
    x = np.random.default_rng(0).standard_normal((4, 5))
    keras_dropout = keras.layers.Dropout(0.5, dtype="float64")
    np.testing.assert_array_equal(Dropout(0.5, seed=0).forward(x), keras_dropout(x, training=False))


# Keras casts some Python-float hyperparameters (the learning rate, SGD's momentum, Adam's betas in
# the bias correction) to float32 on their way to float64. Hyperparameters exact in float32 (powers
# of two and their sums) let the float64 updates agree to rounding. The defaults agree only to that
# float32 rounding: 0.999 becomes 0.99900001, so Keras's 1 - beta_2^t is off by 1.3e-5 relative and
# Adam's bias correction by about 6e-6; with the defaults, the weights after each step agree to 1e-6.
EXACT, ROUNDED = True, False
OPTIMIZER_PAIRS = {
    "gd": (lambda: GradientDescent(0.125), lambda: keras.optimizers.SGD(0.125), EXACT),
    "momentum": (lambda: Momentum(0.0625, momentum=0.75), lambda: keras.optimizers.SGD(0.0625, momentum=0.75), EXACT),
    "rmsprop": (
        lambda: RMSProp(0.03125, rho=0.75, epsilon=1e-6),
        lambda: keras.optimizers.RMSprop(0.03125, rho=0.75, epsilon=1e-6),
        EXACT,
    ),
    "adam": (
        lambda: Adam(0.03125, beta_1=0.75, beta_2=0.9921875, epsilon=1e-6),
        lambda: keras.optimizers.Adam(0.03125, beta_1=0.75, beta_2=0.9921875, epsilon=1e-6),
        EXACT,
    ),
    "gd-defaults": (GradientDescent, keras.optimizers.SGD, ROUNDED),
    "momentum-defaults": (Momentum, lambda: keras.optimizers.SGD(momentum=0.9), ROUNDED),
    "rmsprop-defaults": (RMSProp, keras.optimizers.RMSprop, ROUNDED),
    "adam-defaults": (Adam, keras.optimizers.Adam, ROUNDED),
}


@pytest.mark.parametrize("scratch_optimizer, keras_optimizer, exact", OPTIMIZER_PAIRS.values(), ids=OPTIMIZER_PAIRS)
def test_optimizer_steps_equal_keras(scratch_optimizer, keras_optimizer, exact):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((3, 2)), rng.standard_normal(2)]
    variables = [keras.Variable(p.copy(), dtype="float64") for p in params]
    scratch, reference = scratch_optimizer(), keras_optimizer()
    for _ in range(3):  # later steps use the state (velocity, moments, bias correction) of earlier ones
        grads = [rng.standard_normal(p.shape) for p in params]
        before = [p.copy() for p in params]
        scratch.step(params, grads)
        reference.apply_gradients(zip([tf.constant(g) for g in grads], variables))
        for p, v, b in zip(params, variables, before):
            if exact:  # the update itself, to rounding
                np.testing.assert_allclose(p - b, v.numpy() - b, rtol=1e-12, atol=1e-15)
            else:
                np.testing.assert_allclose(p, v.numpy(), rtol=0, atol=1e-6)
    assert scratch.iterations == int(reference.iterations.numpy()) == 3


def test_cross_entropies_equal_keras_on_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0], [0.3, -0.2, 0.1]])
    labels = np.array([1, 1, 2])
    keras_cce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")(labels, logits)
    assert CategoricalCrossEntropy(from_logits=True)(labels, logits) == pytest.approx(float(keras_cce), rel=1e-12)
    z, y = logits[:, :1], np.array([[0.0], [1.0], [1.0]])
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=True, dtype="float64")(y, z)
    assert BinaryCrossEntropy(from_logits=True)(y, z) == pytest.approx(float(keras_bce), rel=1e-12)
