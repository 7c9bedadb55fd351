"""The generation task and the DCGAN: the two-player step in both loops, sample quality on real MNIST
(Frechet distance on our own classifier's features, label coverage), reload, export and the edge runner.

One cnn-mnist feature classifier (1 epoch on 8,000 images) and one DCGAN run (3 epochs on 6,000 images)
are trained per module and shared; the tape loop trains 10 steps.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from kerasdl.data import ImageBundle, load
from kerasdl.edge.runner import main as runner_main
from kerasdl.errors import KerasdlError, RunDirError
from kerasdl.evaluation.sample_quality import frechet_distance, label_coverage
from kerasdl.export.exporter import export_run
from kerasdl.models.gan import DCGAN, discriminator_loss, generate, generator_loss
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.training import TrainConfig

GENERATION = get_task("generation")
CLASSIFIER_IMAGES = 8000
SAMPLE_PARAMS = {"validation_samples": 1000, "eval_samples": 2000}  # evaluation compares 2,000 vs 2,000 images
FIT = {"epochs": 3, "learning_rate": 5e-4}
TRAIN_IMAGES = 6000
RUNNER = Path(__file__).resolve().parents[1] / "kerasdl" / "edge" / "runner.py"


@pytest.fixture(scope="module")
def mnist():
    return load("mnist")


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, mnist) -> Path:
    """A cnn-mnist trained 1 epoch on 8,000 images (about 93% test accuracy): enough to embed digits."""
    classifier_task = get_task("classification")
    keras.utils.set_random_seed(0)
    classifier = model_spec("cnn-mnist").build(mnist.info)
    classifier_task.compile(classifier, keras.optimizers.Adam(2e-3))
    x, y = mnist.split("train")
    classifier.fit(x[:CLASSIFIER_IMAGES], y[:CLASSIFIER_IMAGES], batch_size=128, epochs=1, verbose=0)
    _, accuracy = classifier.evaluate(*mnist.split("test"), verbose=0)
    assert accuracy > 0.9
    run = tmp_path_factory.mktemp("cnn-mnist")
    classifier.save(run / "model.keras")
    return run


@pytest.fixture(scope="module")
def params(classifier_run) -> dict:
    return {**SAMPLE_PARAMS, "train_samples": TRAIN_IMAGES, "classifier_run": str(classifier_run)}


@pytest.fixture(scope="module")
def gan(trained, params):
    return trained(TrainConfig("dcgan", task_params=params, **FIT))


@pytest.fixture(scope="module")
def exports(gan, tmp_path_factory):
    """The float32 and full-integer TFLite generators of the DCGAN run."""
    root = tmp_path_factory.mktemp("dcgan-export")
    return {fmt: export_run(gan.run.path, fmt, root / fmt, latency_runs=5) for fmt in ("tflite", "tflite-int8")}


def test_trained_generator_draws_most_digits_far_closer_to_real_ones_than_untrained(gan, mnist, params):
    data = GENERATION.adapt_data(mnist, params)
    keras.utils.set_random_seed(0)
    untrained = GENERATION.evaluate(model_spec("dcgan").build(data.info), data, params, None)
    metrics = gan.metrics
    # Measured (seed 0): untrained ~970 with all samples one digit; trained ~100, all 10 digits.
    assert metrics["test_frechet_distance"] < untrained["test_frechet_distance"] / 4
    assert metrics["test_label_coverage"] >= 8 > untrained["test_label_coverage"]
    assert metrics["test_frechet_distance_real"] < metrics["test_frechet_distance"] / 10  # the floor: real vs real
    assert sum(metrics["test_label_histogram"].values()) == metrics["test_samples"] == 2000
    assert metrics["test_loss"] == metrics["test_g_loss"] > 0 and metrics["test_d_loss"] > 0


def test_fit_logs_both_losses_and_draws_a_grid_each_epoch(gan):
    with gan.run.history_path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == FIT["epochs"]  # no early stopping for a GAN
    for name in ("d_loss", "g_loss", "val_d_loss", "val_g_loss"):
        assert all(np.isfinite(float(row[name])) and float(row[name]) > 0 for row in rows)
    assert all(row["loss"] == row["g_loss"] for row in rows)
    for epoch in range(1, FIT["epochs"] + 1):
        with Image.open(gan.run.plots_dir / f"samples_epoch_{epoch:03d}.png") as grid:
            assert grid.size == (8 * 28, 8 * 28) and grid.mode == "L"
    assert (gan.run.plots_dir / "label_histogram.png").is_file() and (gan.run.plots_dir / "samples.png").is_file()
    first, last = (np.asarray(Image.open(gan.run.plots_dir / f"samples_epoch_{e:03d}.png")) for e in (1, FIT["epochs"]))
    assert not np.array_equal(first, last)


def test_tape_loop_runs_the_same_two_player_step(trained):
    result = trained(TrainConfig(
        "dcgan", loop="tape", epochs=1, learning_rate=5e-4,
        task_params={"train_samples": 640, "validation_samples": 256, "eval_samples": 200},
    ))
    with result.run.history_path.open() as f:
        (row,) = list(csv.DictReader(f))
    assert {"d_loss", "g_loss", "loss", "val_d_loss", "val_g_loss", "val_loss"} <= set(row)
    assert row["loss"] == row["g_loss"] and all(np.isfinite(float(value)) for value in row.values())
    assert result.metrics["test_frechet_distance"] is None  # no classifier given: said, never faked
    assert "no classifier_run" in result.metrics["frechet_skipped"]
    assert "skipped" in GENERATION.report(result.metrics)
    assert (result.run.plots_dir / "samples_epoch_001.png").is_file()


def test_adversarial_step_updates_each_player_with_its_own_optimizer(mnist):
    keras.utils.set_random_seed(0)
    model = model_spec("dcgan").build(mnist.info)
    GENERATION.compile(model, keras.optimizers.Adam(2e-4))
    assert model.optimizer is model.g_optimizer is not model.d_optimizer
    assert model.g_optimizer.beta_1 == model.d_optimizer.beta_1 == 0.5  # DCGAN's Adam
    before = {name: [w.copy() for w in player.get_weights()] for name, player in
              (("generator", model.generator), ("discriminator", model.discriminator))}
    logs = GENERATION.train_step(model, model.optimizer)(mnist.take("train", 32), None)
    assert set(logs) == {"loss", "d_loss", "g_loss"}
    for name, player in (("generator", model.generator), ("discriminator", model.discriminator)):
        assert any(not np.array_equal(a, b) for a, b in zip(before[name], player.get_weights())), name
    assert model.d_optimizer.iterations.numpy() == model.g_optimizer.iterations.numpy() == 1
    model.optimizer.build(model.trainable_variables)  # what the tape loop does: G's optimizer stays G's
    for optimizer, player in ((model.g_optimizer, model.generator), (model.d_optimizer, model.discriminator)):
        assert len(optimizer.variables) == 2 + 2 * len(player.trainable_variables)  # iterations, rate, m and v


def test_losses_are_the_non_saturating_ones():
    even = np.zeros((4, 1), np.float32)  # logit 0: D gives even odds
    assert float(discriminator_loss(even, even)) == pytest.approx(2 * np.log(2), rel=1e-6)
    assert float(generator_loss(even)) == pytest.approx(np.log(2), rel=1e-6)
    confident = np.full((4, 1), 5.0, np.float32)  # D calls the fakes real: G's loss is small, D's large
    assert float(generator_loss(confident)) == pytest.approx(np.log1p(np.exp(-5.0)), rel=1e-5)
    assert float(discriminator_loss(confident, confident)) > 5


def test_reloaded_model_generates_the_same_images(gan):
    reloaded = keras.saving.load_model(gan.run.model_path, safe_mode=True)
    assert isinstance(reloaded, DCGAN) and reloaded.latent_dim == 100
    np.testing.assert_allclose(generate(reloaded, 16, seed=5), generate(gan.model, 16, seed=5), atol=1e-6)
    assert not np.allclose(generate(reloaded, 16, seed=5), generate(reloaded, 16, seed=6))


def test_export_ships_the_generator_and_the_runner_draws_the_same_images(gan, exports, tmp_path):
    for fmt, export in exports.items():
        assert export.report["targets"]["met"], (fmt, export.report["targets"]["failures"])
    assert exports["tflite"].report["parity"]["max_abs_diff"] <= 1e-4
    preprocessing = json.loads((exports["tflite"].artifact.parent / "preprocessing.json").read_text())
    assert preprocessing["task"] == "generation" and preprocessing["input"]["kind"] == "noise"
    assert preprocessing["input"]["shape"] == [100] and preprocessing["image_shape"] == [28, 28, 1]

    output = tmp_path / "grid.png"
    code = (  # the runner as a device runs it: its own file, and TensorFlow never imported
        "import runpy, sys; runner = runpy.run_path(sys.argv[1]); code = runner['main'](sys.argv[2:]); "
        "assert 'tensorflow' not in sys.modules; sys.exit(code)"
    )
    argv = [str(exports["tflite"].artifact), "--samples", "6", "--seed", "7", "--output", str(output), "--json"]
    done = subprocess.run([sys.executable, "-c", code, str(RUNNER), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[done.stdout.index("{"):])["grid"] == [2, 3]
    drawn = np.asarray(Image.open(output), np.float32)
    expected = np.round((generate(gan.model, 6, seed=7)[..., 0] + 1) * 127.5)
    cells = [drawn[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] for r in range(2) for c in range(3)]
    assert np.max(np.abs(np.stack(cells) - expected)) <= 1  # one gray level: rounding of float32 differences


def test_zero_or_negative_samples_is_a_one_line_error(gan, exports, tmp_path, capsys):
    with pytest.raises(KerasdlError, match="asked for zero or negative samples"):
        generate(gan.model, 0)
    assert runner_main([str(exports["tflite"].artifact), "--samples", "-2", "--output", str(tmp_path / "x.png")]) == 2
    assert "asked for zero or negative samples (--samples -2)" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_bad_task_parameters_are_one_line_errors(mnist, tmp_path):
    with pytest.raises(KerasdlError, match="unknown task parameter"):
        GENERATION.adapt_data(mnist, {"train_sample": 10})
    with pytest.raises(KerasdlError, match="train_samples must be a positive integer"):
        GENERATION.adapt_data(mnist, {"train_samples": 0})
    photos = ImageBundle(mnist.info, {"train": ([], np.zeros(0, np.int32))})
    with pytest.raises(KerasdlError, match="need a data set held in memory"):
        GENERATION.adapt_data(photos, {"train_samples": 10})
    keras.utils.set_random_seed(0)
    model = model_spec("dcgan").build(mnist.info)
    with pytest.raises(RunDirError, match="classifier_run: run directory .* does not exist"):
        GENERATION.evaluate(model, mnist, {"eval_samples": 10, "classifier_run": str(tmp_path / "none")}, None)


def test_adapt_data_keeps_the_first_images_of_each_limited_split(mnist):
    data = GENERATION.adapt_data(mnist, {"train_samples": 100, "validation_samples": 50})
    assert data.info.split_sizes == {"train": 100, "validation": 50, "test": 10000}
    np.testing.assert_array_equal(data.split("train")[0], mnist.split("train")[0][:100])
    assert len(data.labels("test")) == 10000


def test_frechet_distance_against_the_closed_form():
    # 1-D: N(1, 2) vs N(2, 8) (sample statistics of these four points): 1 + 2 + 8 - 2 sqrt(16) = 3.
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[0.0], [4.0]])) == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 16)), rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) + 0.5
    a[:, :3] = 0.0  # dead ReLU units: a singular covariance product
    assert frechet_distance(a, b) == pytest.approx(_frechet_by_eigenvalues(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a[:5], b[:7]) == pytest.approx(_frechet_by_eigenvalues(a[:5], b[:7]), rel=1e-4)


def _frechet_by_eigenvalues(a: np.ndarray, b: np.ndarray) -> float:
    """The same distance another way: Tr (S_a S_b)^(1/2) = sum of sqrt(eig(S_a^(1/2) S_b S_a^(1/2)))."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return float(mean_term + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def test_label_coverage_counts_labels_with_at_least_one_percent():
    assert label_coverage(np.array([100] * 10)) == 10
    assert label_coverage(np.array([990, 10, 0, 0])) == 2  # 10 of 1000 is 1%
    assert label_coverage(np.array([995, 5, 0, 0])) == 1  # stray samples of a collapsed GAN do not count


def test_served_grid_equals_the_runners_for_the_same_seed(exports, tmp_path):
    import base64
    from io import BytesIO

    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    artifact = exports["tflite"].artifact
    client = create_app(ModelRepository.load(artifact.parent)).test_client()
    name = client.get("/v1/models").json["models"][0]["name"]
    served = client.post(f"/v1/models/{name}:predict", json={"samples": 6, "seed": 7})
    assert served.status_code == 200, served.json
    assert runner_main([str(artifact), "--samples", "6", "--seed", "7", "--output", str(tmp_path / "grid.png")]) == 0
    grid = np.asarray(Image.open(BytesIO(base64.b64decode(served.json["image_png"]))))
    assert grid.shape == (56, 84) and served.json["grid"] == [2, 3], (grid.shape, served.json["grid"])
    assert np.array_equal(grid, np.asarray(Image.open(tmp_path / "grid.png"))), "the served grid differs from the runner's"
    other = client.post(f"/v1/models/{name}:predict", json={"samples": 6, "seed": 8}).json["image_png"]
    assert other != served.json["image_png"], "another seed draws the same images"

    for samples in (0, 65):
        refused = client.post(f"/v1/models/{name}:predict", json={"samples": samples})
        assert refused.status_code == 400 and "samples" in refused.json["error"], refused.json
