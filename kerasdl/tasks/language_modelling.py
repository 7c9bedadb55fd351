"""Language modelling: predict each next character; the loss is the cross-entropy in nats per character.

The model sees windows of a character stream (kerasdl.data.char_windows) and is scored at every position.
A model that knows nothing scores ln(vocabulary) (4.2 nats for Tiny Shakespeare's 67 ids); bits per
character are nats / ln 2 and perplexity is e^nats. What ships is a single-step model of the same weights
(kerasdl.models.char_rnn.step_model): [character id, state] in, [next-character logits, new state] out,
which the TF-free runner loops over to generate text, sampling exactly as `kerasdl generate` does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np

from kerasdl.data import DataBundle, DatasetInfo
from kerasdl.data.char_windows import DEFAULT_SEQUENCE_LENGTH, CharWindows
from kerasdl.errors import KerasdlError
from kerasdl.export.errors import ExportError
from kerasdl.tasks.base import Bound, ParityTargets, Task, argmax_accuracy, predict, register_task

PARAMS = ("sequence_length", "train_samples")  # the task_params this task reads
PROMPT = "ROMEO:"  # what evaluation continues (the most frequent character where these are not all known)
CONTINUATION = 200  # characters of each continuation metrics.json keeps
SAMPLE_TEMPERATURE, SAMPLE_SEED = 0.8, 0
EVALUATION_WINDOWS = 1024  # windows per forward pass in evaluation
PARITY_STREAMS, PARITY_STEPS = 32, 32  # export parity: 32 test-text positions, each read 32 characters on
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4), Bound("next_token_agreement", 1.0, upper=False)))
# Agreement of the next character's argmax with Keras, over the parity inputs. Measured on the char-lstm of
# tests/test_char_rnn.py: fp16 1.0, dynamic range (int8 weights) 0.99.
QUANTIZED_TARGETS = {
    "float16": ParityTargets((Bound("next_token_agreement", 0.98, upper=False),)),
    "dynamic-range": ParityTargets((Bound("next_token_agreement", 0.95, upper=False),)),
}


class LanguageModelling(Task):
    name = "language-modelling"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS
    main_metric = "test_loss"
    higher_is_better = False
    log_names = ("accuracy",)

    # --- data --------------------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> CharWindows:
        """Windows of `sequence_length` characters (default 100); `train_samples` windows per epoch (default:
        as many as the training text holds end to end)."""
        params = _checked(params)
        return CharWindows.of(data, params.get("sequence_length", DEFAULT_SEQUENCE_LENGTH), params.get("train_samples"))

    # --- training ----------------------------------------------------------------------------------------
    def loss(self) -> keras.losses.Loss:
        """Cross-entropy of every position's next character, averaged over all of them: nats per character."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> list[Any]:
        return ["accuracy"]

    def batch_logs(self, targets, outputs):
        return {"accuracy": argmax_accuracy(targets, outputs)}

    # --- evaluation --------------------------------------------------------------------------------------
    def evaluate(self, model, data: CharWindows, params, plots_dir: Path | None, suffix: str = "") -> dict[str, Any]:
        """Nats, bits and perplexity per character on the test windows (and nats on validation), next-character
        accuracy, and a greedy and a sampled continuation of a fixed prompt."""
        from kerasdl.models.char_rnn import generate

        test_nats, test_accuracy = cross_entropy(model, *data.windows("test"))
        validation_nats, _ = cross_entropy(model, *data.windows("validation"))
        prompt = _prompt(data)
        continuations = {
            f"{kind}_continuation": generate(model, data.tokenizer.to_json(), prompt, CONTINUATION, temperature,
                                             seed=SAMPLE_SEED)
            for kind, temperature in (("greedy", 0.0), ("sampled", SAMPLE_TEMPERATURE))
        }
        return {
            "test_loss": test_nats,
            "test_bits_per_char": test_nats / math.log(2),
            "test_perplexity": math.exp(test_nats),
            "test_accuracy": test_accuracy,
            "validation_loss": validation_nats,
            "uniform_loss": math.log(data.info.vocabulary_size - 2),  # knowing nothing but the alphabet
            "test_samples": len(data.labels("test")),
            "test_characters": int(data.labels("test").size),
            "sequence_length": data.sequence_length,
            "prompt": prompt,
            "sample_temperature": SAMPLE_TEMPERATURE,
            "sample_seed": SAMPLE_SEED,
            **continuations,
        }

    def headline(self, metrics: dict[str, Any]) -> str:
        return (
            f"loss {metrics['test_loss']:.4f} nats/char ({metrics['test_bits_per_char']:.3f} bits/char, "
            f"perplexity {metrics['test_perplexity']:.2f}), validation {metrics['validation_loss']:.4f} nats/char"
        )

    def report(self, metrics: dict[str, Any]) -> str:
        return "\n".join([
            f"test {self.headline(metrics)} ({metrics['test_characters']} characters, next-character accuracy "
            f"{metrics['test_accuracy']:.4f}; uniform guess {metrics['uniform_loss']:.3f} nats/char)",
            f"greedy: {metrics['greedy_continuation']!r}",
            f"sampled (temperature {metrics['sample_temperature']}, seed {metrics['sample_seed']}): "
            f"{metrics['sampled_continuation']!r}",
        ])

    # --- export: the single-step model -------------------------------------------------------------------
    def edge_part(self, model: keras.Model) -> keras.Model:
        from kerasdl.models.char_rnn import step_model

        return step_model(model)

    def signature_shape(self, edge: keras.Model, info: DatasetInfo) -> tuple[int, ...]:
        return tuple(edge.input_shape[1:])

    def export_batches(self, edge: keras.Model, data: DataBundle, batch_size: int) -> Iterator[np.ndarray]:
        packed = packed_inputs(edge, data, "test")
        return (packed[start : start + batch_size] for start in range(0, len(packed), batch_size))

    def sample_inputs(self, edge: keras.Model, data: DataBundle, split: str, count: int, seed: int) -> np.ndarray:
        packed = packed_inputs(edge, data, split)
        return packed[np.sort(np.random.default_rng(seed).permutation(len(packed))[:count])]

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Largest |difference| of logits and of states, and how often the most likely next character agrees."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives outputs of shape {outputs.shape}, Keras {reference.shape}")
        vocabulary = data.info.vocabulary_size
        difference = np.abs(reference - outputs)
        return {
            "split": f"test text: {PARITY_STREAMS} positions x {PARITY_STEPS} steps of [character, state]",
            "samples": len(reference),
            "max_abs_diff": float(difference.max()),
            "max_abs_logit_diff": float(difference[:, :vocabulary].max()),
            "max_abs_state_diff": float(difference[:, vocabulary:].max()),
            "next_token_agreement": float(np.mean(
                reference[:, :vocabulary].argmax(axis=-1) == outputs[:, :vocabulary].argmax(axis=-1)
            )),
        }

    def targets(self, quantization: str | None) -> ParityTargets:
        """Float and weight-only quantization. Full int8 would quantize the packed input with one scale for a
        character id (0..V) and states in [-1, 1]: a state's resolution would be about V / 255, useless."""
        if quantization == "int8":
            raise ExportError(
                "a language model's step takes a character id and its state in one input, which full-integer "
                "quantization cannot represent; export tflite, tflite-fp16 or tflite-dynamic"
            )
        return super().targets(quantization)

    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """Text in (the character vocabulary); one step: [id, state (state_size)] -> [logits, new state]."""
        return {
            "task": self.name,
            "input": {"name": input_name, "shape": list(shape), "dtype": input_dtype, **data.runner_input()},
            "output": "next-token logits (vocabulary_size) followed by the new state (state_size)",
            "state_size": int(shape[0]) - 1,
            "vocabulary_size": data.info.vocabulary_size,
            "data": data.info.name,
        }

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |logit diff| {measured['max_abs_logit_diff']:.3g}, max |state diff| "
            f"{measured['max_abs_state_diff']:.3g}, next-character agreement {measured['next_token_agreement']:.2%} "
            f"on {measured['samples']} steps"
        )


def _checked(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise KerasdlError(
            f"unknown task parameter(s) {', '.join(unknown)} for language-modelling; known: {', '.join(PARAMS)}"
        )
    return params


def cross_entropy(model: keras.Model, inputs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Mean nats per character of `targets` under the model's logits, and the argmax accuracy."""
    nats, correct = 0.0, 0
    for start in range(0, len(inputs), EVALUATION_WINDOWS):
        logits = predict(model, inputs[start : start + EVALUATION_WINDOWS]).astype(np.float64)
        expected = targets[start : start + EVALUATION_WINDOWS]
        top = logits.max(axis=-1, keepdims=True)
        log_partition = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
        nats += float((log_partition - np.take_along_axis(logits, expected[..., None], axis=-1)[..., 0]).sum())
        correct += int((logits.argmax(axis=-1) == expected).sum())
    return nats / targets.size, correct / targets.size


def packed_inputs(edge: keras.Model, data: DataBundle, split: str) -> np.ndarray:
    """[character id, state] inputs the step model meets in use: from PARITY_STREAMS evenly spaced positions
    of the split's text, each read PARITY_STEPS characters on from a zero state."""
    ids, vocabulary = data.stream_ids(split), data.info.vocabulary_size
    starts = np.linspace(0, len(ids) - PARITY_STEPS - 1, PARITY_STREAMS).astype(int)
    state = np.zeros((PARITY_STREAMS, edge.input_shape[-1] - 1), np.float32)
    packed = []
    for step in range(PARITY_STEPS):
        packed.append(np.concatenate([ids[starts + step, None].astype(np.float32), state], axis=1))
        state = np.asarray(edge(packed[-1], training=False))[:, vocabulary:]
    return np.concatenate(packed)


def _prompt(data: CharWindows) -> str:
    """PROMPT, or the most frequent character (id 2) of a text whose vocabulary lacks some of PROMPT's."""
    vocabulary = data.tokenizer.vocabulary
    return PROMPT if all(char in vocabulary for char in PROMPT) else vocabulary[2]


LANGUAGE_MODELLING = register_task(LanguageModelling())
