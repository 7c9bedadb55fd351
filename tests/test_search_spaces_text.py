"""`kerasdl tune` over the sequence, text and attention models: every search space defaults to the curriculum
model, and a two-trial random search of each runs on its real data with its task's objective, the values it
draws reaching the trial's config.

Each search gets the smallest honest budget: one epoch on a few hundred samples of the model's own data set
(short windows, sentences or pairs; SST-2's classifiers read 320 of its sentences as a user's TSV, since
classification subsets only images), the model's `train_defaults` as `kerasdl tune` passes them. What a trial
costs is mostly tracing its training step: a search space sizes the model, whatever the data.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import keras_tuner
import pytest
from search_spaces import two_trial_search

from kerasdl.data import load
from kerasdl.registry import model_spec
from kerasdl.training import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|getName:DeprecationWarning")  # inside Keras Tuner

SST2_SENTENCES = 320  # the SST-2 classifiers' data: its first training sentences, 25% held out for validation
SENTENCES = dict(task_params={"sequence_length": 16}, validation_fraction=0.25)  # texts cut to 16 ids
# Tiny Shakespeare: 64 windows of 16 characters an epoch, validated on the last 1% of its training text.
CHARACTERS = dict(task_params={"train_samples": 64, "sequence_length": 16}, validation_fraction=0.01)
PAIRS = {"train_samples": 128, "sequence_length": 5, "vocabulary_size": 1000}  # fra-eng: pairs of <= 5 words
# Per model: the base config's settings (a search space overrides what it searches).
TINY = {
    "rnn": SENTENCES,
    "lstm": SENTENCES,
    "gru": SENTENCES,
    "bilstm": SENTENCES,
    "text-cnn": SENTENCES,
    "transformer-classifier": SENTENCES,
    "bert-classifier": SENTENCES,
    # english-corpus: 128 sentences of 16 ids an epoch, validated on 1% of its training sentences.
    "bert-mini": dict(task_params={"train_samples": 128, "sequence_length": 16, "vocabulary_size": 2000},
                      validation_fraction=0.01),
    "char-lstm": CHARACTERS,
    "char-gru": CHARACTERS,
    "gpt": dict(CHARACTERS, jit_compile=False),  # XLA compiling each trial's step costs more than the step saves
    "translator": dict(task_params=PAIRS),
    "seq2seq-attention": dict(task_params=PAIRS),
    "word2vec": dict(data="mr", task_params={"window_size": 2, "max_vocabulary": 2000}),
    "lstm-forecast": dict(),
    "gru-forecast": dict(),
}
# TrainConfig's own defaults: what a search space's defaults must equal where train_defaults say nothing.
CONFIG_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("name", sorted(TINY))
def test_search_space_defaults_are_the_curriculum_model(name):
    """A fresh HyperParameters gives the builder's defaults and the model's train_defaults (or TrainConfig's)."""
    spec = model_spec(name)
    overrides = spec.search_space(keras_tuner.HyperParameters())
    builder = inspect.signature(spec.build).parameters
    for key, value in overrides.pop("model_params").items():
        assert value == builder[key].default, key
    for key, value in overrides.items():
        assert value == spec.train_defaults.get(key, CONFIG_DEFAULTS[key]), key


@pytest.fixture(scope="module")
def sst2_sample(tmp_path_factory) -> Path:
    """SST-2's first SST2_SENTENCES training sentences as a user's TSV (header, label first)."""
    sst2 = load("sst2")
    texts, labels = sst2.texts["train"][:SST2_SENTENCES], sst2.labels("train")[:SST2_SENTENCES]
    path = tmp_path_factory.mktemp("sst2") / "sst2_sample.tsv"
    path.write_text("label\tsentence\n" + "".join(f"{sst2.info.class_names[y]}\t{t}\n" for t, y in zip(texts, labels)))
    return path


@pytest.mark.parametrize("name", sorted(TINY))
def test_search_space_runs_two_random_trials(name, tmp_path, request):
    spec = model_spec(name)
    settings = {**spec.train_defaults, "epochs": 1, **TINY[name]}
    if TINY[name] is SENTENCES:
        settings["data"] = str(request.getfixturevalue("sst2_sample"))
    best = two_trial_search(TrainConfig(name, model_params=spec.offline_params, **settings), tmp_path)
    config, values = best["config"], best["hyperparameters"]
    searched = [knob for knob in values if knob in config["model_params"]]
    assert searched, values
    for knob in searched:
        assert config["model_params"][knob] == values[knob], knob
    for knob in set(values) & set(CONFIG_DEFAULTS):
        assert config[knob] == values[knob], knob
