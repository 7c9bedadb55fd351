"""Stage 2's tensor and autograd lessons in TensorFlow, with the curriculum's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from kerasdl.autodiff import (
    assign_element,
    cost,
    derivative,
    describe,
    fit_linear_regression,
    flatten,
    hadamard_and_matrix_product,
    make_bonus_data,
    matrix_product_example,
    partial_derivatives,
    tensors_by_rank,
)


def test_tensors_by_rank_shape_dtype_device():
    tensors = tensors_by_rank()
    ranks = {name: describe(t)["rank"] for name, t in tensors.items()}
    assert ranks == {"scalar": 0, "vector": 1, "matrix": 2, "3-D": 3}
    units = describe(tensors["matrix"])
    assert units["shape"] == (3, 2) and units["dtype"] == "int32"
    assert "CPU" in units["device"] or "GPU" in units["device"]
    assert describe(tensors["3-D"])["shape"] == (2, 2, 3)


def test_transpose_reshape_index_and_assign():
    units = tensors_by_rank()["matrix"]
    np.testing.assert_array_equal(tf.transpose(units), [[200, 150, 300], [220, 180, 330]])
    np.testing.assert_array_equal(flatten(units), [200, 220, 150, 180, 300, 330])
    assert tf.reshape(units, (2, -1)).shape == (2, 3)  # -1: inferred as 6 / 2
    assert int(units[2, 1]) == 330
    changed = assign_element(units, (2, 1), 345)
    assert int(changed[2, 1]) == 345 and int(units[2, 1]) == 330  # the original tensor is immutable
    with pytest.raises(TypeError):
        units[2, 1] = 345


def test_ones_and_zeros():
    np.testing.assert_array_equal(tf.ones((2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(tf.zeros_like(tensors_by_rank()["vector"]), [0, 0, 0])


def test_hadamard_versus_matrix_product():
    a, b = tf.constant([[1, 2], [3, 4]]), tf.constant([[5, 6], [7, 8]])
    hadamard, product = hadamard_and_matrix_product(a, b)
    np.testing.assert_array_equal(hadamard, [[5, 12], [21, 32]])
    np.testing.assert_array_equal(product, [[19, 22], [43, 50]])
    np.testing.assert_array_equal(tf.constant([[1, 2]]) @ tf.constant([[3], [4]]), [[11]])
    np.testing.assert_array_equal(2 * tf.constant([[1, 2], [3, 4]]), [[2, 4], [6, 8]])


def test_matrix_product_example():
    """Row 1 as in the curriculum; row 2 is [187.5, 175.4, 163] (the curriculum prints [21, 32] there)."""
    np.testing.assert_allclose(
        matrix_product_example(), [[200.5, 186.0, 167.0], [187.5, 175.4, 163.0], [210.0, 193.8, 176.0]], rtol=1e-12
    )


def test_derivatives_of_powers():
    np.testing.assert_allclose(derivative(lambda x: x**2, [1.0, 2.0, 3.0]), [2.0, 4.0, 6.0])
    np.testing.assert_allclose(derivative(lambda x: x**3, [1.0, 2.0, 3.0]), [3.0, 12.0, 27.0])


def test_partial_derivatives_of_cost():
    for m, l in [(2.0, 3.0), (-1.0, 0.5)]:  # noqa: E741
        d_m, d_l = partial_derivatives(cost, m, l)
        assert float(d_m) == pytest.approx(6 * m + 5 * l)
        assert float(d_l) == pytest.approx(4 * l + 5 * m)
    assert float(cost(tf.constant(2.0), tf.constant(3.0))) == pytest.approx(3 * 4 + 2 * 9 + 5 * 6 + 23)


def test_chain_rule():
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(derivative(lambda x: (3 * x + 2) ** 4, x), 12 * (3 * x + 2) ** 3)


def test_manual_gradient_descent_recovers_the_bonus_coefficients():
    """Data made with weights (2, 1.5, 0.8) and bias 5 plus noise (sd 0.5): after the lesson's 5,000
    epochs at learning rate 0.006, each weight is within 0.05 and the bias within 0.1 of the truth."""
    features, bonus = make_bonus_data(weights=(2.0, 1.5, 0.8), bias=5.0, seed=0)
    weights, bias, losses = fit_linear_regression(features, bonus, learning_rate=0.006, epochs=5000)
    np.testing.assert_allclose(weights, [2.0, 1.5, 0.8], atol=0.05)
    assert bias == pytest.approx(5.0, abs=0.1)
    assert len(losses) == 5000 and losses[-1] < 0.3 < 100 < losses[0]  # noise variance is 0.25
    assert all(later <= earlier + 1e-4 for earlier, later in zip(losses, losses[1:]))
