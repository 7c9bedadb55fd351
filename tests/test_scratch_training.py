"""kerasdl.scratch learning: perceptron, optimizers, GD regimes, the curriculum's networks, the comparison."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kerasdl.scratch import MLP, REGIMES, Adam, GradientDescent, Momentum, Neuron, Perceptron, RMSProp, train
from kerasdl.scratch.compare import COLUMNS, compare
from kerasdl.scratch.descent import batches
from kerasdl.scratch.examples import XOR_INPUTS, XOR_TARGETS, insurance_data, train_insurance, train_xor

GATES = {"and": [0, 0, 0, 1], "or": [0, 1, 1, 1], "xor": [0, 1, 1, 0]}
REPO = Path(__file__).resolve().parents[1]


def test_neuron_is_activation_of_weighted_sum_plus_bias():
    neuron = Neuron(weights=[0.5, -1.0, 2.0], bias=0.5)
    x = np.array([[1.0, 2.0, 0.25]])  # weighted sum 0.5 - 2 + 0.5 = -1, plus bias: -0.5
    np.testing.assert_allclose(neuron(x), 1 / (1 + np.exp(0.5)))


@pytest.mark.parametrize("gate", ["and", "or"])
def test_perceptron_learns_linearly_separable_gates(gate):
    perceptron = Perceptron(learning_rate=0.1, max_epochs=100, seed=0).fit(XOR_INPUTS, GATES[gate])
    assert perceptron.score(XOR_INPUTS, GATES[gate]) == 1.0
    assert perceptron.errors_[-1] == 0 and len(perceptron.errors_) < 100  # converged, then stopped


def test_perceptron_cannot_learn_xor():
    """No line puts (0,1) and (1,0) on one side and (0,0) and (1,1) on the other: XOR is not linearly
    separable, so a single step unit gets at most 3 of the 4 points right, and the rule never settles."""
    perceptron = Perceptron(learning_rate=0.1, max_epochs=100, seed=0).fit(XOR_INPUTS, GATES["xor"])
    assert perceptron.score(XOR_INPUTS, GATES["xor"]) <= 0.75
    assert min(perceptron.errors_) > 0 and len(perceptron.errors_) == 100


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_solves_xor(seed):
    model, history = train_xor(seed=seed)
    np.testing.assert_array_equal(model.predict(XOR_INPUTS), XOR_TARGETS)
    assert history.epochs[-1]["loss"] < 0.05


def test_insurance_network_shape_and_accuracy():
    model, history = train_insurance()
    kernels = [layer.params["kernel"].shape for layer in model.layers if "kernel" in layer.params]
    assert kernels == [(4, 2), (2, 1)]  # age, education, income, savings -> awareness, affordability -> buys
    assert history.epochs[-1]["val_accuracy"] >= 0.95
    x, _ = insurance_data(5)
    probabilities = model.predict_proba(x)
    assert probabilities.shape == (5, 1) and np.all((probabilities > 0) & (probabilities < 1))
    np.testing.assert_array_equal(model.predict(x), (probabilities[:, 0] > 0.5).astype(int))


def quadratic_bowl_descent(optimizer, steps: int = 200) -> np.ndarray:
    """Minimize f(w) = 0.5 * w^T A w with an ill-conditioned A (a narrow valley); returns the losses."""
    a = np.diag([1.0, 25.0])
    w = np.array([2.0, 1.0])
    losses = []
    for _ in range(steps):
        losses.append(0.5 * w @ a @ w)
        optimizer.step([w], [a @ w])
    return np.array(losses)


@pytest.mark.parametrize(
    "optimizer",
    [GradientDescent(0.02), Momentum(0.02), RMSProp(0.02), Adam(0.05)],
    ids=["gd", "momentum", "rmsprop", "adam"],
)
def test_every_optimizer_descends_the_bowl(optimizer):
    losses = quadratic_bowl_descent(optimizer)
    assert losses[-1] < 1e-2 * losses[0]


def test_momentum_beats_plain_gd_in_a_narrow_valley():
    assert quadratic_bowl_descent(Momentum(0.02))[50] < quadratic_bowl_descent(GradientDescent(0.02))[50]


def test_gradient_descent_step():
    w = np.array([1.0, -2.0])
    GradientDescent(0.1).step([w], [np.array([0.5, 1.0])])
    np.testing.assert_allclose(w, [0.95, -2.1])


def test_keras_momentum_equals_the_curriculums_ewma_form():
    """v <- m v - lr g; w += v  (Keras)  ==  v <- b v + (1 - b) g; w -= lr' v  (curriculum) with lr = lr' (1 - b)."""
    grads = np.random.default_rng(0).standard_normal((6, 3))
    w_keras, w_ewma, ewma = np.zeros(3), np.zeros(3), np.zeros(3)
    beta, curriculum_lr = 0.9, 0.5
    keras_form = Momentum(learning_rate=curriculum_lr * (1 - beta), momentum=beta)
    for g in grads:
        keras_form.step([w_keras], [g])
        ewma = beta * ewma + (1 - beta) * g
        w_ewma -= curriculum_lr * ewma
        np.testing.assert_allclose(w_keras, w_ewma, atol=1e-12)


def test_adam_first_step_moves_each_weight_by_the_learning_rate():
    """Bias correction makes step 1 exactly lr * sign(g) (up to epsilon), whatever the gradient's scale."""
    w = np.zeros(3)
    Adam(learning_rate=0.01).step([w], [np.array([0.1, -5.0, 300.0])])
    np.testing.assert_allclose(w, [-0.01, 0.01, -0.01], rtol=1e-3)


def test_batches_cover_every_sample_once_per_epoch():
    rng = np.random.default_rng(0)
    for batch_size, expected in [(None, 1), (1, 10), (4, 3)]:
        chunks = list(batches(10, batch_size, rng))
        assert len(chunks) == expected
        assert sorted(np.concatenate(chunks)) == list(range(10))


@pytest.mark.parametrize("regime", list(REGIMES))
def test_regimes_update_counts(regime):
    x = np.random.default_rng(0).standard_normal((64, 3))
    y = (x[:, 0] > 0).astype(int)
    history = train(MLP((3, 4, 2)), x, y, GradientDescent(0.1), epochs=2, batch_size=REGIMES[regime])
    assert history.updates == {"batch": 2, "stochastic": 128, "mini-batch": 4}[regime]
    assert len(history.epochs) == 2 and history.seconds > 0


def test_training_is_reproducible_with_a_seed():
    x = np.random.default_rng(0).standard_normal((50, 3))
    y = (x.sum(axis=1) > 0).astype(int)
    runs = [
        train(MLP((3, 5, 2), dropout=0.2, seed=3), x, y, Adam(0.01), epochs=3, batch_size=8, seed=4) for _ in range(2)
    ]
    assert runs[0].epochs == runs[1].epochs


@pytest.fixture
def tiny_problem() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((40, 4))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def test_compare_writes_png_and_tables(tiny_problem, tmp_path):
    rows = compare(*tiny_problem, tmp_path, layer_sizes=(4, 8, 2), epochs=3, learning_rate=0.05, mini_batch_size=8)
    png = tmp_path / "loss_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    names = [(row["experiment"], row["name"]) for row in rows]
    assert names == [("regime", n) for n in REGIMES] + [("optimizer", n) for n in ("gd", "momentum", "rmsprop", "adam")]
    updates = {row["name"]: row["updates"] for row in rows}
    assert (updates["batch"], updates["stochastic"], updates["mini-batch"]) == (3, 120, 15)
    with (tmp_path / "comparison.csv").open() as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS and len(table) == len(rows)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["rows"] == rows and len(saved["curves"]["optimizer"]["adam"]) == 3


def test_compare_script_runs(tmp_path):
    script = REPO / "scripts" / "compare_gradient_descent.py"
    args = ["--out", str(tmp_path), "--epochs", "2", "--samples", "50", "--hidden", "8"]
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "stochastic" in result.stdout and "adam" in result.stdout
    assert (tmp_path / "loss_curves.png").stat().st_size > 0
    assert (tmp_path / "comparison.csv").stat().st_size > 0
