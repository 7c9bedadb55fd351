"""GPT on Tiny Shakespeare: the decoder-only Transformer reaches 2.2 nats/char on validation, its cached
single step gives the tokens that re-running the whole context gives, top-p sampling, the subword
tokenizer (keras-hub's WordPiece) and the runner's TF-free copy of it, and exports that generate the same
text as Keras through `kerasdl infer`.

One small char GPT is trained per module (2 layers of width 64, 4 heads, windows of 64 characters; 450
steps of 32 windows) and shared; the tape loop trains a tiny one for 20 steps.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import kerasdl
from kerasdl.cli import main
from kerasdl.data import load
from kerasdl.data.tokenizer import Tokenizer
from kerasdl.edge.runner import RunnerError, TextEncoder, sample_next
from kerasdl.errors import KerasdlError
from kerasdl.export.exporter import export_run
from kerasdl.models.gpt import generate_uncached
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.tasks.language_modelling import generate, keras_step, step_model
from kerasdl.training import TrainConfig

TASK = get_task("language-modelling")
WINDOW = 64
FIT = {
    "epochs": 1, "batch_size": 32, "learning_rate": 4e-3, "clipnorm": 1.0,
    "model_params": {"layers": 2, "heads": 4, "embedding_dim": 64},
    "task_params": {"sequence_length": WINDOW, "train_samples": 14400},
}
PROMPT = "ROMEO:"
SUBWORD_SAMPLE = 60_000  # characters of training text the test's subword vocabulary is learned on


@pytest.fixture(scope="module")
def shakespeare():
    return load("shakespeare")


@pytest.fixture(scope="module")
def gpt(trained):
    return trained(TrainConfig("gpt", **FIT))


@pytest.fixture(scope="module")
def tokenizer(gpt) -> dict:
    return json.loads((gpt.run.path / "data_state.json").read_text())["tokenizer"]


@pytest.fixture(scope="module")
def subword(shakespeare) -> Tokenizer:
    return Tokenizer.adapt([shakespeare.texts["train"][0][:SUBWORD_SAMPLE]], level="subword", max_tokens=400)


# --- training ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_gpt_reaches_2_2_nats_per_character_on_validation(gpt):
    m = gpt.metrics
    assert m["validation_loss"] <= 2.2 and m["test_loss"] < 2.3 < m["uniform_loss"]
    assert m["tokenizer"] == "character" and "nats/char" in TASK.headline(m)
    assert m["greedy_continuation"].startswith(PROMPT) and m["sampled_continuation"].startswith(PROMPT)


@pytest.mark.slow
def test_tape_loop_trains_a_gpt(tmp_path):
    from kerasdl.training import train

    config = TrainConfig(
        "gpt", loop="tape", epochs=1, batch_size=32, learning_rate=1e-2, jit_compile=False,  # XLA: compiling > training
        model_params={"layers": 1, "heads": 2, "embedding_dim": 16},
        task_params={"sequence_length": 32, "train_samples": 640},
    )
    metrics = train(config, out=tmp_path / "gpt", verbose=0).metrics
    assert metrics["test_loss"] < metrics["uniform_loss"] - 0.5


def test_bad_settings_fail_clearly(shakespeare):
    windows = TASK.adapt_data(shakespeare, {"sequence_length": 16})
    with pytest.raises(KerasdlError, match="divisible by heads"):
        model_spec("gpt").build(windows.info, heads=3, embedding_dim=16)
    with pytest.raises(KerasdlError, match="tokenizer is character or subword"):
        TASK.adapt_data(shakespeare, {"tokenizer": "word"})
    with pytest.raises(KerasdlError, match="add --tokenizer subword"):
        TASK.adapt_data(shakespeare, {"vocabulary_size": 500})


# --- the key/value cache -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_cached_step_reproduces_the_sequence_models_logits(gpt, shakespeare):
    windows = TASK.adapt_data(shakespeare, {"sequence_length": WINDOW})
    x, vocabulary = windows.take("test", 4, seed=0), windows.info.vocabulary_size
    step = keras_step(gpt.model)
    state, logits = np.zeros((len(x), step_model(gpt.model).input_shape[-1] - 1), np.float32), []
    for t in range(WINDOW):
        out = step(np.concatenate([x[:, t : t + 1].astype(np.float32), state], axis=1))
        logits.append(out[:, :vocabulary])
        state = out[:, vocabulary:]
    np.testing.assert_allclose(np.stack(logits, axis=1), gpt.model.predict(x, verbose=0), atol=1e-4)
    np.testing.assert_array_equal(state[:, 0], WINDOW)  # the state starts with the next position


@pytest.mark.slow
@pytest.mark.parametrize("temperature, top_k, top_p", [(0.0, None, None), (0.8, None, None), (1.0, 10, 0.9)])
def test_cached_and_uncached_generation_give_the_same_tokens(gpt, tokenizer, temperature, top_k, top_p):
    """150 tokens: the cache fills (64 positions) and is re-primed, as the uncached context is cut, 3 times."""
    cached = generate(gpt.model, tokenizer, PROMPT, 150, temperature, top_k, seed=5, top_p=top_p)
    assert cached == generate_uncached(gpt.model, tokenizer, PROMPT, 150, temperature, top_k, seed=5, top_p=top_p)
    assert len(cached) == len(PROMPT) + 150


def test_top_p_keeps_the_fewest_likeliest_tokens_that_reach_it():
    logits = np.log([1e-9, 1e-9, 0.5, 0.3, 0.2])  # padding and OOV, then three tokens

    def drawn(top_p):
        return {sample_next(logits, 1.0, None, np.random.default_rng(seed), top_p) for seed in range(200)}

    assert drawn(0.5) == {2} and drawn(0.6) == drawn(0.8) == {2, 3} and drawn(1.0) == {2, 3, 4}
    with pytest.raises(RunnerError, match="top-p"):
        sample_next(logits, 1.0, None, np.random.default_rng(0), 1.5)


# --- the subword tokenizer ------------------------------------------------------------------------------------
def test_subword_tokenizer_round_trips_and_the_runner_gives_keras_hubs_ids(subword, shakespeare):
    text = shakespeare.texts["test"][0]
    ids = subword.encode_stream(text)
    assert subword.level == "subword" and subword.vocabulary[:3] == ("", "[UNK]", "\u00b6")
    assert len(ids) < len(text) / 1.5  # 400 pieces learned on 60,000 characters: words, stems, endings
    encoder = TextEncoder(Tokenizer.from_json(json.loads(json.dumps(subword.to_json()))).to_json())
    np.testing.assert_array_equal(encoder.encode_stream(text), ids)
    known = ids != 1
    assert known.mean() > 0.99
    assert subword.decode(ids[:400]) == encoder.decode(ids[:400]) == text[: len(subword.decode(ids[:400]))]


def test_subword_windows_restore_a_saved_vocabulary(subword, shakespeare):
    windows = TASK.adapt_data(shakespeare, {"sequence_length": 32, "tokenizer": "subword"})
    restored = windows.restored({"tokenizer": subword.to_json()})
    inputs, targets = restored.windows("validation")
    assert restored.info.vocabulary_size == subword.size and inputs.shape[1] == 32
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    text = restored.tokenizer.decode(inputs[0])
    assert shakespeare.texts["validation"][0].startswith(text)


# --- edge and the command line ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])  # tflite-dynamic: test_char_rnn.py covers weight quantization
def test_the_exported_step_generates_the_same_text_as_keras(fmt, gpt, tokenizer, tmp_path, capsys):
    report = export_run(gpt.run.path, fmt, tmp_path / fmt, latency_runs=3).report
    assert report["builtin_ops_only"] and report["targets"]["met"], report["targets"]
    spec = json.loads((tmp_path / fmt / "preprocessing.json").read_text())
    assert spec["context_length"] == WINDOW
    args = ["infer", str(tmp_path / fmt / report["artifact"]), "--prompt", PROMPT, "--length", "100",
            "--temperature", "0.8", "--top-k", "20", "--seed", "7"]
    assert main(args) == 0
    on_device = capsys.readouterr().out.rstrip("\n")
    keras_text = generate(gpt.model, tokenizer, PROMPT, 100, 0.8, 20, seed=7)
    assert on_device == keras_text
    if fmt == "tflite":  # kerasdl.pipeline: the run (Keras) and its export (TF-free) generate alike
        options = {"max_new_tokens": 100, "temperature": 0.8, "top_k": 20, "seed": 7}
        expected = [{"generated_text": keras_text}]
        assert kerasdl.pipeline("text-generation", gpt.run.path)(PROMPT, **options) == expected
        assert kerasdl.pipeline("text-generation", tmp_path / fmt, **options)([PROMPT]) == [expected]


@pytest.mark.slow
def test_generate_command_samples_with_top_p(gpt, tokenizer, capsys):
    args = ["generate", str(gpt.run.path), "--prompt", PROMPT, "--length", "80", "--temperature", "0.9",
            "--top-p", "0.8", "--seed", "2"]
    assert main(args) == 0
    assert capsys.readouterr().out.rstrip("\n") == generate(gpt.model, tokenizer, PROMPT, 80, 0.9, seed=2, top_p=0.8)
    with pytest.raises(SystemExit, match="2"):
        main(["generate", str(gpt.run.path), "--prompt", PROMPT, "--top-p", "0"])
    assert "expected a number in (0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_served_text_equals_the_runners_and_a_prompt_outside_the_vocabulary_is_refused(gpt, tmp_path, capsys):
    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    artifact = export_run(gpt.run.path, "tflite", tmp_path / "tflite", latency_runs=1).artifact
    client = create_app(ModelRepository.load(artifact.parent)).test_client()
    name = client.get("/v1/models").json["models"][0]["name"]
    settings = {"max_new_tokens": 20, "temperature": 0.8, "top_k": 20, "seed": 7}
    served = client.post(f"/v1/models/{name}:predict", json={"text": PROMPT, **settings})
    assert served.status_code == 200, served.json
    capsys.readouterr()
    assert main(["infer", str(artifact), "--prompt", PROMPT, "--length", "20", "--temperature", "0.8",
                 "--top-k", "20", "--seed", "7"]) == 0
    runner = capsys.readouterr().out.rstrip("\n")
    assert served.json["generated_text"] == runner and len(runner) == len(PROMPT) + 20, (served.json, runner)

    refused = client.post(f"/v1/models/{name}:predict", json={"text": "ROMEO: \u2603", **settings})
    assert refused.status_code == 400 and "outside the vocabulary" in refused.json["error"], refused.json
    assert "\u2603" in refused.json["error"], refused.json
