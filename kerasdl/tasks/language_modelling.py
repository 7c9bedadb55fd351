"""Language modelling: predict each next token; the loss is the cross-entropy in nats per token.

The model sees windows of a token stream (kerasdl.data.char_windows: characters, or WordPiece subwords with
`tokenizer="subword"`) and is scored at every position. A model that knows nothing scores ln(vocabulary)
(4.2 nats for Tiny Shakespeare's 67 characters); bits are nats / ln 2 and perplexity is e^nats. Subword
runs also report nats per character (a subword's nats spread over the characters it spells), so the two
tokenizers compare.

What ships is a single-step model of the same weights, built by the model's own module (`register_step_model`:
char_rnn's recurrent step, gpt's cached decoder step): [token id, state] in, [next-token logits, new state]
out, which the TF-free runner loops over to generate text, sampling exactly as `kerasdl generate` does.
Generation conditions on at most the model's training window (`context_length`): a GPT has no positions
beyond it, and an RNN trained from a zero state on such windows never learned to use more.
"""

from __future__ import annotations

import math
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

import keras
import numpy as np

from kerasdl.data import DataBundle, DatasetInfo
from kerasdl.data.char_windows import DEFAULT_SEQUENCE_LENGTH, TokenWindows
from kerasdl.data.tokenizer import SUBWORD
from kerasdl.errors import KerasdlError
from kerasdl.export.errors import ExportError
from kerasdl.tasks.base import Bound, ParityTargets, Task, argmax_accuracy, predict, register_task, step_parity

PARAMS = ("sequence_length", "train_samples", "tokenizer", "vocabulary_size")  # the task_params this task reads
PROMPT = "ROMEO:"  # what evaluation continues (the most frequent token where these are not all known)
CONTINUATION = 200  # tokens of each continuation metrics.json keeps
SAMPLE_TEMPERATURE, SAMPLE_SEED = 0.8, 0
EVALUATION_WINDOWS = 1024  # windows per forward pass in evaluation
PARITY_STREAMS, PARITY_STEPS = 32, 32  # export parity: 32 test-text positions, each read 32 tokens on (or the context)
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4), Bound("next_token_agreement", 1.0, upper=False)))
# Agreement of the next character's argmax with Keras, over the parity inputs. Measured on the char-lstm of
# tests/test_char_rnn.py: fp16 1.0, dynamic range (int8 weights) 0.99.
QUANTIZED_TARGETS = {
    "float16": ParityTargets((Bound("next_token_agreement", 0.98, upper=False),)),
    "dynamic-range": ParityTargets((Bound("next_token_agreement", 0.95, upper=False),)),
}

# A model module's step builder: the trained sequence model -> its single-step model, or None when the model
# is not of that module's kind. Packed float32 [token id, state (S)] -> [next-token logits (V), new state (S)].
StepBuilder = Callable[[keras.Model], "keras.Model | None"]
_STEP_BUILDERS: list[StepBuilder] = []


def register_step_model(build: StepBuilder) -> StepBuilder:
    """Decorator: a model module says how its language models run one token at a time."""
    _STEP_BUILDERS.append(build)
    return build


def step_model(model: keras.Model) -> keras.Model:
    """The trained sequence model's single-step model, from the module that built it."""
    import kerasdl.models  # noqa: F401  (each model module registers its step builder on import)

    for build in _STEP_BUILDERS:
        step = build(model)
        if step is not None:
            return step
    raise KerasdlError(f"model {model.name!r} has no single-step form to generate with")


def context_length(model: keras.Model) -> int:
    """Tokens generation conditions on: the sequence model's training window."""
    return int(model.input_shape[1])


def numpy_step(step: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """A single-step model as a NumPy function, batch (n, 1 + S) -> (n, V + S)."""
    import tensorflow as tf

    call = tf.function(lambda x: step(x, training=False), reduce_retracing=True)
    return lambda x: call(tf.constant(x, tf.float32)).numpy()


def keras_step(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """The trained sequence model's single step as a NumPy function."""
    return numpy_step(step_model(model))


def generate(
    model: keras.Model, tokenizer: dict[str, Any], prompt: str, length: int, temperature: float = 1.0,
    top_k: int | None = None, seed: int = 0, top_p: float | None = None,
) -> str:
    """`prompt` continued by `length` tokens sampled from the Keras model, by the edge runner's own loop and
    sampler (`kerasdl.edge.runner.generate_text`), so an export gives the same text for the same seed."""
    from kerasdl.edge.runner import TextEncoder, generate_text

    if model not in _TRACED_STEPS:
        step = step_model(model)
        _TRACED_STEPS[model] = numpy_step(step), int(step.input_shape[-1]) - 1
    step, state_size = _TRACED_STEPS[model]
    return generate_text(step, TextEncoder(tokenizer), state_size, prompt, length, temperature, top_k, seed, top_p,
                         context_length(model))


# model -> (its single step as a traced NumPy function, state size): traced once, not at every `generate`.
_TRACED_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class LanguageModelling(Task):
    name = "language-modelling"
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS
    main_metric = "test_loss"
    higher_is_better = False
    log_names = ("accuracy",)

    # --- data --------------------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> TokenWindows:
        """Windows of `sequence_length` tokens (default 100) of `tokenizer` ("character", the default, or
        "subword" with about `vocabulary_size` pieces); `train_samples` windows per epoch (default: as many
        as the training text holds end to end)."""
        params = _checked(params)
        return TokenWindows.of(
            data, params.get("sequence_length", DEFAULT_SEQUENCE_LENGTH), params.get("train_samples"),
            params.get("tokenizer", "character"), params.get("vocabulary_size"),
        )

    # --- training ----------------------------------------------------------------------------------------
    def loss(self) -> keras.losses.Loss:
        """Cross-entropy of every position's next token, averaged over all of them: nats per token."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> list[Any]:
        return ["accuracy"]

    def batch_logs(self, targets, outputs):
        return {"accuracy": argmax_accuracy(targets, outputs)}

    # --- evaluation --------------------------------------------------------------------------------------
    def evaluate(self, model, data: TokenWindows, params, plots_dir: Path | None, suffix: str = "") -> dict[str, Any]:
        """Nats, bits and perplexity per token on the test windows (and nats on validation), next-token
        accuracy, and a greedy and a sampled continuation of a fixed prompt; subwords: nats per character too."""
        test_nats, test_accuracy = cross_entropy(model, *data.windows("test"))
        validation_nats, _ = cross_entropy(model, *data.windows("validation"))
        prompt = _prompt(data)
        continuations = {
            f"{kind}_continuation": generate(model, data.tokenizer.to_json(), prompt, CONTINUATION, temperature,
                                             seed=SAMPLE_SEED)
            for kind, temperature in (("greedy", 0.0), ("sampled", SAMPLE_TEMPERATURE))
        }
        metrics = {
            "test_loss": test_nats,
            "test_bits_per_token": test_nats / math.log(2),
            "test_perplexity": math.exp(test_nats),
            "test_accuracy": test_accuracy,
            "validation_loss": validation_nats,
            "uniform_loss": math.log(data.info.vocabulary_size - 2),  # knowing nothing but the vocabulary
            "tokenizer": data.tokenizer.level,
            "vocabulary_size": data.info.vocabulary_size,
            "test_samples": len(data.labels("test")),
            "test_tokens": int(data.labels("test").size),
            "sequence_length": data.sequence_length,
            "prompt": prompt,
            "sample_temperature": SAMPLE_TEMPERATURE,
            "sample_seed": SAMPLE_SEED,
            **continuations,
        }
        if data.tokenizer.level == SUBWORD:
            for split, nats in (("test", test_nats), ("validation", validation_nats)):
                metrics[f"{split}_loss_per_character"] = nats / _characters_per_token(data, split)
        return metrics

    def headline(self, metrics: dict[str, Any]) -> str:
        unit = "token" if metrics.get("tokenizer") == SUBWORD else "char"
        line = (
            f"loss {metrics['test_loss']:.4f} nats/{unit} ({metrics['test_loss'] / math.log(2):.3f} bits/{unit}, "
            f"perplexity {metrics['test_perplexity']:.2f}), validation {metrics['validation_loss']:.4f} nats/{unit}"
        )
        if "validation_loss_per_character" in metrics:
            line += f" ({metrics['validation_loss_per_character']:.4f} nats/char)"
        return line

    def report(self, metrics: dict[str, Any]) -> str:
        return "\n".join([
            f"test {self.headline(metrics)} ({metrics['test_tokens']} tokens, next-token accuracy "
            f"{metrics['test_accuracy']:.4f}; uniform guess {metrics['uniform_loss']:.3f} nats)",
            f"greedy: {metrics['greedy_continuation']!r}",
            f"sampled (temperature {metrics['sample_temperature']}, seed {metrics['sample_seed']}): "
            f"{metrics['sampled_continuation']!r}",
        ])

    # --- export: the single-step model -------------------------------------------------------------------
    def edge_part(self, model: keras.Model) -> keras.Model:
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
        """Largest |difference| of logits and of states, and how often the most likely next token agrees."""
        vocabulary = data.info.vocabulary_size
        steps = min(PARITY_STEPS, data.sequence_length)
        return {"split": f"test text: {PARITY_STREAMS} positions x {steps} steps of [token, state]",
                **step_parity(reference, outputs, vocabulary, "state", vocabulary)}

    def targets(self, quantization: str | None) -> ParityTargets:
        """Float and weight-only quantization. Full int8 would quantize the packed input with one scale for a
        token id (0..V) and states in [-1, 1]: a state's resolution would be about V / 255, useless."""
        if quantization == "int8":
            raise ExportError(
                "a language model's step takes a token id and its state in one input, which full-integer "
                "quantization cannot represent; export tflite, tflite-fp16 or tflite-dynamic"
            )
        return super().targets(quantization)

    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """Text in (the vocabulary); one step: [id, state (state_size)] -> [logits, new state]; generation
        re-primes the state when it holds context_length tokens."""
        return {
            "task": self.name,
            "input": {"name": input_name, "shape": list(shape), "dtype": input_dtype, **data.runner_input()},
            "output": "next-token logits (vocabulary_size) followed by the new state (state_size)",
            "state_size": int(shape[0]) - 1,
            "context_length": data.sequence_length,
            "vocabulary_size": data.info.vocabulary_size,
            "data": data.info.name,
        }

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |logit diff| {measured['max_abs_logit_diff']:.3g}, max |state diff| "
            f"{measured['max_abs_state_diff']:.3g}, next-token agreement {measured['next_token_agreement']:.2%} "
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
    """Mean nats per token of `targets` under the model's logits, and the argmax accuracy."""
    nats, correct = 0.0, 0
    for start in range(0, len(inputs), EVALUATION_WINDOWS):
        logits = predict(model, inputs[start : start + EVALUATION_WINDOWS]).astype(np.float64)
        expected = targets[start : start + EVALUATION_WINDOWS]
        top = logits.max(axis=-1, keepdims=True)
        log_partition = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
        nats += float((log_partition - np.take_along_axis(logits, expected[..., None], axis=-1)[..., 0]).sum())
        correct += int((logits.argmax(axis=-1) == expected).sum())
    return nats / targets.size, correct / targets.size


def packed_inputs(edge: keras.Model, data: TokenWindows, split: str) -> np.ndarray:
    """[token id, state] inputs the step model meets in use: from PARITY_STREAMS evenly spaced positions of
    the split's text, each read PARITY_STEPS tokens on (at most the context) from a zero state."""
    ids, vocabulary, steps = data.stream_ids(split), data.info.vocabulary_size, min(PARITY_STEPS, data.sequence_length)
    starts = np.linspace(0, len(ids) - steps - 1, PARITY_STREAMS).astype(int)
    state = np.zeros((PARITY_STREAMS, edge.input_shape[-1] - 1), np.float32)
    packed = []
    for step in range(steps):
        packed.append(np.concatenate([ids[starts + step, None].astype(np.float32), state], axis=1))
        state = np.asarray(edge(packed[-1], training=False))[:, vocabulary:]
    return np.concatenate(packed)


def _prompt(data: TokenWindows) -> str:
    """PROMPT, or the most frequent token (id 2) of a text whose vocabulary cannot spell PROMPT."""
    from kerasdl.edge.runner import TextEncoder

    tokenizer = data.tokenizer
    return PROMPT if not TextEncoder(tokenizer.to_json()).unknown(PROMPT) else tokenizer.decode([2])


def _characters_per_token(data: TokenWindows, split: str) -> float:
    """How many characters of text the split's windowed target tokens spell, per token."""
    targets = data.labels(split)
    return len(data.tokenizer.decode(targets.reshape(-1))) / targets.size


LANGUAGE_MODELLING = register_task(LanguageModelling())
