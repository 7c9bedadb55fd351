"""`kerasdl tune` over the vision, generative and tabular models: each search space runs two random trials on
its model's real data at a tiny budget, its searched knobs reach the trial's config, and the GAN's search, which
minimizes a Frechet distance, refuses in one line to start without the classifier that measures it."""

from __future__ import annotations

import dataclasses
import inspect

import keras
import keras_tuner
import pytest
from search_spaces import two_trial_search

from kerasdl.data import load
from kerasdl.errors import KerasdlError
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.training import TrainConfig
from kerasdl.tuning import tune

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|getName:DeprecationWarning")  # inside Keras Tuner

MNIST_SMALL = dict(epochs=1, validation_fraction=0.02, task_params={"train_samples": 256})  # 256 train, 1,200 val
PHOTOS_SMALL = dict(epochs=1, image_size=32, task_params={"train_samples": 64})
GAN_SAMPLES = {"train_samples": 256, "validation_samples": 200}

# Per model: the smallest honest budget (TrainConfig fields) and a check that the drawn values built the model.
TINY = {
    "cnn-mnist": MNIST_SMALL,
    "cnn-small": PHOTOS_SMALL,
    "cnn-cifar": dict(epochs=1, validation_fraction=0.02, task_params={"train_samples": 256}),
    "mobilenet-v2": PHOTOS_SMALL,
    "efficientnet-b0": PHOTOS_SMALL,
    "resnet50": PHOTOS_SMALL,
    "autoencoder": MNIST_SMALL,
    "conv-autoencoder": MNIST_SMALL,
    "vae": MNIST_SMALL,
    "dcgan": dict(epochs=1, task_params=GAN_SAMPLES),  # + classifier_run, from the fixture
    "unet": dict(epochs=1, image_size=32, task_params={"train_images": 1}),
    "centernet": dict(epochs=1, steps_per_execution=1),  # one step per call: the deep net traces once
    "mlp": dict(epochs=1),
    "mlp-regressor": dict(epochs=1),
}


# Builder defaults of None that mean another parameter's value: (model, parameter) -> that parameter.
DERIVED = {("dcgan", "discriminator_width"): "width"}
CONFIG_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


def first_filters(config: dict) -> int:
    return config["model_params"]["filters"][0]


# Per model: (the searched knob, how the trial's TrainConfig shows it).
KNOBS = {
    "cnn-mnist": ("width", first_filters),
    "cnn-small": ("depth", lambda config: len(config["model_params"]["filters"])),
    "cnn-cifar": ("depth", lambda config: len(config["model_params"]["filters"])),
    "mobilenet-v2": ("backbone", lambda config: config["model_params"]["backbone"]),
    "efficientnet-b0": ("backbone", lambda config: config["model_params"]["backbone"]),
    "resnet50": ("backbone", lambda config: config["model_params"]["backbone"]),
    "autoencoder": ("latent_dim", lambda config: config["model_params"]["latent_dim"]),
    "conv-autoencoder": ("latent_dim", lambda config: config["model_params"]["latent_dim"]),
    "vae": ("latent_dim", lambda config: config["model_params"]["latent_dim"]),
    "dcgan": ("discriminator_width", lambda config: config["model_params"]["discriminator_width"]),
    "unet": ("depth", lambda config: len(config["model_params"]["filters"])),
    "centernet": ("width", first_filters),
    "mlp": ("units", lambda config: config["model_params"]["hidden_units"][0]),
    "mlp-regressor": ("units", lambda config: config["model_params"]["hidden_units"][0]),
}


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory) -> str:
    """A cnn-mnist trained 1 epoch on 2,000 images (about 85% test accuracy): features that tell digits apart,
    which is all the Frechet distance of a GAN search needs."""
    mnist = load("mnist")
    keras.utils.set_random_seed(0)
    classifier = model_spec("cnn-mnist").build(mnist.info, filters=(8, 16))
    get_task("classification").compile(classifier, keras.optimizers.Adam(2e-3))
    x, y = mnist.split("train")
    classifier.fit(x[:2000], y[:2000], batch_size=128, epochs=1, verbose=0)
    run = tmp_path_factory.mktemp("cnn-mnist")
    classifier.save(run / "model.keras")
    return str(run)


def config_for(name: str, request: pytest.FixtureRequest) -> TrainConfig:
    spec, budget = model_spec(name), dict(TINY[name])
    if name == "dcgan":
        budget["task_params"] = {**budget["task_params"], "classifier_run": request.getfixturevalue("classifier_run")}
    return TrainConfig(name, model_params=dict(spec.offline_params), jit_compile=False, **budget)


@pytest.mark.parametrize("name", sorted(TINY))
def test_search_space_runs_two_random_trials(name, tmp_path, request):
    best = two_trial_search(config_for(name, request), tmp_path)
    knob, shown = KNOBS[name]
    assert shown(best["config"]) == best["hyperparameters"][knob]


@pytest.mark.parametrize("name", sorted(TINY))
def test_search_space_defaults_are_the_curriculum_model(name):
    """A fresh HyperParameters gives the builder's defaults and the model's train_defaults (or TrainConfig's):
    the first point a search tries is the model `kerasdl train` builds."""
    spec = model_spec(name)
    overrides = spec.search_space(keras_tuner.HyperParameters())
    builder = {key: param.default for key, param in inspect.signature(spec.build).parameters.items()}
    model_params = overrides.pop("model_params")
    for key, value in model_params.items():
        default = model_params[DERIVED[name, key]] if (name, key) in DERIVED else builder[key]
        assert value == (list(default) if isinstance(default, tuple) else default), key
    for key, value in overrides.items():
        assert value == spec.train_defaults.get(key, CONFIG_DEFAULTS[key]), key


def test_gan_search_without_a_classifier_fails_in_one_line_before_any_trial(tmp_path):
    config = TrainConfig("dcgan", **TINY["dcgan"])
    with pytest.raises(KerasdlError, match="classifier_run") as raised:
        tune(config, "random", max_trials=2, out=tmp_path, retrain=False, verbose=0)
    assert "\n" not in str(raised.value)
    assert not list(tmp_path.glob("search/trial_*"))
