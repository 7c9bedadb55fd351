"""Character-level language models on Tiny Shakespeare: windows, the nats-per-character loss, sampling, the
single-step model, its TFLite export generating the same characters as Keras, and `kerasdl generate`.

One char-lstm run is trained per module (1 layer of 128 units, 3 epochs of 3,200 windows of 64 characters:
150 steps, about 40 s) and shared; the tape loop trains a small char-gru for 10 steps.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from kerasdl.cli import main
from kerasdl.data import load
from kerasdl.data.char_windows import TokenWindows
from kerasdl.edge.runner import EdgeModel, generate_text
from kerasdl.errors import DataError, KerasdlError
from kerasdl.export.errors import ExportError
from kerasdl.export.exporter import export_run
from kerasdl.models.char_rnn import state_size
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.tasks.language_modelling import generate, keras_step
from kerasdl.training import TrainConfig

TASK = get_task("language-modelling")
WINDOW = 64
FIT = {
    "epochs": 3, "learning_rate": 1e-2, "clipnorm": 5.0,
    "model_params": {"units": 128, "layers": 1, "embedding_dim": 32},
    "task_params": {"sequence_length": WINDOW, "train_samples": 3200},
}
PROMPT = "ROMEO:"


@pytest.fixture(scope="module")
def shakespeare():
    return load("shakespeare")


@pytest.fixture(scope="module")
def windows(shakespeare) -> TokenWindows:
    return TASK.adapt_data(shakespeare, {"sequence_length": WINDOW})


@pytest.fixture(scope="module")
def lstm(trained):
    return trained(TrainConfig("char-lstm", **FIT))


@pytest.fixture(scope="module")
def tokenizer(lstm) -> dict:
    return json.loads((lstm.run.path / "data_state.json").read_text())["tokenizer"]


@pytest.fixture(scope="module")
def tflite(lstm, tmp_path_factory):
    return export_run(lstm.run.path, "tflite", tmp_path_factory.mktemp("char-lstm") / "tflite", latency_runs=5)


# --- data --------------------------------------------------------------------------------------------------
def test_targets_are_the_inputs_shifted_by_one_character(windows):
    inputs, targets = windows.windows("test")
    stream = windows.stream_ids("test")
    assert inputs.shape == targets.shape == ((len(stream) - 1) // WINDOW, WINDOW)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    np.testing.assert_array_equal(inputs.reshape(-1), stream[: inputs.size])
    np.testing.assert_array_equal(targets.reshape(-1), stream[1 : inputs.size + 1])
    assert windows.info.input_shape == (WINDOW,) and windows.info.vocabulary_size == 67


def test_training_windows_are_seeded_and_new_each_epoch(windows):
    def epochs(seed):
        ds = windows.dataset("train", 64, shuffle_seed=seed).take(1)
        return [np.asarray(next(iter(ds))[0]) for _ in range(2)]

    first, again, other = epochs(0), epochs(0), epochs(1)
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], other[0])
    x, y = next(iter(windows.dataset("train", 8, shuffle_seed=0)))
    np.testing.assert_array_equal(np.asarray(x)[:, 1:], np.asarray(y)[:, :-1])


def test_sentences_become_one_stream_and_bad_settings_fail_clearly(shakespeare):
    sst2 = TASK.adapt_data(load("sst2"), {"sequence_length": 50})
    assert sst2.text.stream and sst2.tokenizer.level == "character" and "\n" in sst2.tokenizer.vocabulary
    with pytest.raises(DataError, match="shorter than one window"):
        TASK.adapt_data(shakespeare, {"sequence_length": 200_000})
    with pytest.raises(KerasdlError, match="unknown task parameter.*horizon"):
        TASK.adapt_data(shakespeare, {"horizon": 3})
    with pytest.raises(ExportError, match="full-integer"):
        TASK.targets("int8")


def test_a_restored_vocabulary_prepares_the_windows(windows):
    np.testing.assert_array_equal(windows.restored(windows.state()).windows("test")[0], windows.windows("test")[0])
    without_z = [token for token in windows.tokenizer.vocabulary if token != "z"]
    restored = windows.restored({"tokenizer": {**windows.tokenizer.to_json(), "vocabulary": without_z}})
    stream, original = restored.stream_ids("test"), windows.stream_ids("test")
    z = original == windows.tokenizer.index("z")
    assert z.any() and np.all(stream[z] == 1) and restored.info.vocabulary_size == 66


# --- training and evaluation ----------------------------------------------------------------------------------
def test_char_lstm_reaches_2_2_nats_per_character_on_validation(lstm):
    m = lstm.metrics
    history = lstm.run.history_rows()
    assert float(history[-1]["val_loss"]) <= 2.2 and m["validation_loss"] <= 2.2
    assert float(history[-1]["val_loss"]) == pytest.approx(m["validation_loss"], abs=1e-3)  # same windows, same mean
    assert m["test_loss"] < 2.3 < m["uniform_loss"]
    assert m["test_bits_per_token"] == pytest.approx(m["test_loss"] / math.log(2))
    assert m["test_perplexity"] == pytest.approx(math.exp(m["test_loss"]))
    assert m["greedy_continuation"].startswith(PROMPT) and m["sampled_continuation"].startswith(PROMPT)
    assert "nats/char" in TASK.headline(m)


def test_tape_loop_trains_a_gru(tmp_path):
    from kerasdl.training import train

    config = TrainConfig(
        "char-gru", loop="tape", epochs=1, batch_size=32, learning_rate=1e-2,
        model_params={"units": 32, "layers": 1, "embedding_dim": 8},
        task_params={"sequence_length": 32, "train_samples": 320},
    )
    metrics = train(config, out=tmp_path / "gru", verbose=0).metrics
    assert metrics["test_loss"] < metrics["uniform_loss"] - 0.5  # ten steps learn the common characters


# --- sampling ------------------------------------------------------------------------------------------------
def test_sampling_is_deterministic_for_a_seed_and_differs_across_seeds(lstm, tokenizer):
    samples = [generate(lstm.model, tokenizer, PROMPT, 80, 0.8, seed=seed) for seed in (0, 0, 1)]
    assert samples[0] == samples[1] != samples[2]
    assert all(len(sample) == len(PROMPT) + 80 for sample in samples)


def test_temperature_zero_is_the_sequence_models_argmax(lstm, tokenizer, windows):
    """Greedy decoding through the step model equals the argmax of the sequence model's logits (a causal LSTM:
    zeros after the last character cannot change the logits before them)."""
    ids = list(windows.tokenizer.encode_stream(PROMPT))
    for _ in range(40):
        x = np.zeros((1, WINDOW), np.int32)
        x[0, : len(ids)] = ids
        logits = np.array(lstm.model.predict_on_batch(x))[0, len(ids) - 1]
        logits[:2] = -np.inf  # padding and OOV are never generated
        ids.append(int(np.argmax(logits)))
    greedy = [generate(lstm.model, tokenizer, PROMPT, 40, 0.0, seed=seed) for seed in (0, 1)]
    assert greedy[0] == greedy[1] == windows.tokenizer.decode(ids)


@pytest.mark.parametrize("name, layers", [("char-lstm", 2), ("char-gru", 2)])
def test_step_model_reproduces_the_sequence_models_logits(name, layers, shakespeare):
    short = TASK.adapt_data(shakespeare, {"sequence_length": 16})
    keras.utils.set_random_seed(0)
    _check_steps(model_spec(name).build(short.info, units=24, layers=layers, embedding_dim=8), short)


def test_trained_step_model_reproduces_the_sequence_models_logits(lstm, windows):
    _check_steps(lstm.model, windows)


def _check_steps(model: keras.Model, windows: TokenWindows) -> None:
    """The step model, fed a window's characters one by one from a zero state, gives the sequence model's logits."""
    x = windows.take("test", 4, seed=0)
    step, vocabulary = keras_step(model), windows.info.vocabulary_size
    state, logits = np.zeros((len(x), state_size(model)), np.float32), []
    for t in range(windows.sequence_length):
        out = step(np.concatenate([x[:, t : t + 1].astype(np.float32), state], axis=1))
        logits.append(out[:, :vocabulary])
        state = out[:, vocabulary:]
    np.testing.assert_allclose(np.stack(logits, axis=1), model.predict(x, verbose=0), atol=1e-4)


# --- edge ----------------------------------------------------------------------------------------------------
def test_tflite_step_model_is_builtin_only_and_generates_the_same_text_as_keras(tflite, lstm, tokenizer):
    report = tflite.report
    assert report["builtin_ops_only"] and report["targets"]["met"], report["targets"]
    assert report["parity"]["next_token_agreement"] == 1.0 and report["parity"]["max_abs_state_diff"] < 1e-4
    spec = json.loads((tflite.artifact.parent / "preprocessing.json").read_text())
    assert spec["state_size"] == state_size(lstm.model) == 256 and spec["input"]["kind"] == "text"
    edge = EdgeModel(tflite.artifact)
    for temperature, top_k in ((0.8, None), (1.0, 5)):
        on_device = generate_text(edge.logits, edge.preprocessing.encoder, spec["state_size"], PROMPT, 120,
                                  temperature, top_k, seed=3, context_length=spec["context_length"])
        assert on_device == generate(lstm.model, tokenizer, PROMPT, 120, temperature, top_k, seed=3)


def test_dynamic_range_export_keeps_the_next_character(lstm, tmp_path):
    report = export_run(lstm.run.path, "tflite-dynamic", tmp_path, latency_runs=5).report
    assert report["builtin_ops_only"] and report["targets"]["met"], report["targets"]
    assert report["parity"]["next_token_agreement"] >= 0.95


# --- the command line -------------------------------------------------------------------------------------------
def test_generate_command_prints_the_keras_sample(lstm, tokenizer, capsys):
    args = ["generate", str(lstm.run.path), "--prompt", PROMPT, "--length", "60", "--temperature", "0.8",
            "--top-k", "0", "--seed", "7"]
    assert main(args) == 0
    assert capsys.readouterr().out.rstrip("\n") == generate(lstm.model, tokenizer, PROMPT, 60, 0.8, seed=7)


def test_infer_on_the_tflite_export_prints_the_same_text(tflite, lstm, tokenizer, capsys):
    args = ["infer", str(tflite.artifact), "--prompt", PROMPT, "--length", "60", "--temperature", "0.8", "--seed", "7"]
    assert main(args) == 0
    assert capsys.readouterr().out.rstrip("\n") == generate(lstm.model, tokenizer, PROMPT, 60, 0.8, seed=7)


def test_generate_command_errors_are_one_line(lstm, tmp_path, capsys):
    cases = {
        "outside the vocabulary": [str(lstm.run.path), "--prompt", "ROMEO: \u2603"],
        "the prompt is empty": [str(lstm.run.path), "--prompt", ""],
        "does not exist": [str(tmp_path / "missing"), "--prompt", PROMPT],
    }
    mlp = tmp_path / "mlp-run"
    mlp.mkdir()
    (mlp / "config.json").write_text(json.dumps({"model": "mlp"}))
    (mlp / "model.keras").write_bytes(b"")
    cases["generate needs a language model"] = [str(mlp), "--prompt", PROMPT]
    for message, args in cases.items():
        assert main(["generate", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit, match="2"):  # argparse's own one-line error
        main(["generate", str(lstm.run.path), "--prompt", PROMPT, "--temperature", "-1"])
    assert "expected a number >= 0" in capsys.readouterr().err
