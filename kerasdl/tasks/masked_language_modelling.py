"""Masked-language modelling (BERT's pretraining): predict the chosen words of a sentence from both sides.

The data (kerasdl.data.masked_lm) chooses 15% of each sentence's words and corrupts them by the 80/10/10
rule; the targets hold the original ids there and 0 elsewhere, and the loss is the cross-entropy of the
chosen positions only, in nats per masked token. Test metrics are on one fixed masking of the test split,
against the unigram baseline: the loss of predicting every masked word by its training frequency alone,
which only the context can beat. What ships is the whole model (token ids in, every position's logits out);
`fill_mask` and the edge runner fill a sentence's [MASK]s from it with the same code.

Task params: `sequence_length` (word ids per sentence, default 32), `vocabulary_size` (default 8,192, [MASK]
included) and `train_samples` (sentences per epoch, a fresh random choice each epoch; default all).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import keras
import numpy as np
from keras import ops

from kerasdl.data import DataBundle
from kerasdl.data.masked_lm import MASK, MaskedSentences, max_predictions, prediction_positions
from kerasdl.edge.runner import TextEncoder, fill_masks, mask_encode
from kerasdl.errors import KerasdlError
from kerasdl.tasks.base import Bound, ParityTargets, Task, predict, register_task

PARAMS = ("sequence_length", "vocabulary_size", "train_samples")
EVALUATION_BATCH = 128  # rows per forward pass
PARITY_SAMPLES = 64  # test rows an export is measured on
FILL_MASK_EXAMPLES = ("the movie was [MASK] .", "a man is [MASK] a horse .", "o romeo , [MASK] art thou romeo ?")
FILL_MASK_TOP_K = 5
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-3), Bound("masked_token_agreement", 1.0, upper=False)))
QUANTIZED_TARGETS = ParityTargets((Bound("masked_token_agreement", 0.9, upper=False),))


@keras.saving.register_keras_serializable(package="kerasdl")
class MaskedTokenCrossEntropy(keras.losses.Loss):
    """Cross-entropy of the chosen positions (targets > 0) only, averaged over them: nats per masked token."""

    def __init__(self, name: str = "masked_token_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        chosen = ops.cast(y_true > 0, y_pred.dtype)
        nats = ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return ops.sum(nats * chosen) / ops.maximum(ops.sum(chosen), 1.0)


@keras.saving.register_keras_serializable(package="kerasdl")
def masked_accuracy(y_true, y_pred):
    """The share of chosen positions (targets > 0) whose most likely token is the original one."""
    chosen = ops.cast(y_true > 0, "float32")
    hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), ops.cast(y_true, "int32")), "float32")
    hits = hits * chosen
    return ops.sum(hits) / ops.maximum(ops.sum(chosen), 1.0)


class MaskedLanguageModelling(Task):
    name = "masked-language-modelling"
    main_metric = "test_loss"
    higher_is_better = False
    log_names = ("masked_accuracy",)
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS

    # --- data and training -------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> MaskedSentences:
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise KerasdlError(
                f"unknown task parameter(s) {', '.join(unknown)} for {self.name}; known: {', '.join(PARAMS)}"
            )
        return MaskedSentences.of(data, **params)

    def pairs(self, dataset: Any, *, training: bool, params: dict[str, Any], seed: int) -> Any:
        """(inputs, targets) -> ((inputs, the positions to predict), their targets): a fixed number per row."""
        count = max_predictions(dataset.element_spec[0].shape[-1])

        def chosen(inputs, targets):
            positions, chosen_targets = prediction_positions(targets, count)
            return (inputs, positions), chosen_targets

        return dataset.map(chosen)

    def loss(self) -> keras.losses.Loss:
        return MaskedTokenCrossEntropy()

    def metrics(self) -> list[Any]:
        return [masked_accuracy]

    def batch_logs(self, targets, outputs):
        return {"masked_accuracy": masked_accuracy(targets, outputs)}

    # --- evaluation --------------------------------------------------------------------------------------
    def check_data(self, model: keras.Model, data: DataBundle) -> None:
        if tuple(model.input_shape[0][1:]) != tuple(data.info.input_shape):
            raise KerasdlError(
                f"model reads rows of {model.input_shape[0][1]} tokens but data set {data.info.name!r} gives "
                f"{data.info.input_shape[0]}"
            )
        if model.output_shape[-1] != data.info.vocabulary_size:
            raise KerasdlError(
                f"the model predicts {model.output_shape[-1]} token ids but data set {data.info.name!r} has "
                f"{data.info.vocabulary_size}"
            )

    def evaluate(self, model, data: MaskedSentences, params, plots_dir: Path | None, suffix: str = "") -> dict[str, Any]:
        """Nats per masked token and masked-token accuracy on the test split's fixed masking, the unigram
        baseline's nats on the same tokens, and the top words the model fills a few sentences' [MASK] with."""
        inputs, targets = data.masked("test")
        nats, accuracy, count = masked_cross_entropy(model, inputs, targets)
        chosen = targets[targets > 0]
        tokenizer = data.tokenizer.to_json()
        return {
            "test_loss": nats,
            "test_perplexity": math.exp(nats),
            "test_masked_accuracy": accuracy,
            "unigram_loss": float(-data.unigram_log_probabilities()[chosen].mean()),
            "test_samples": int(len(inputs)),
            "test_masked_tokens": count,
            "sequence_length": data.info.input_shape[0],
            "vocabulary_size": data.info.vocabulary_size,
            "fill_mask": {text: [guess["token"] for guess in fill_mask(model, tokenizer, text, FILL_MASK_TOP_K)[0]]
                          for text in FILL_MASK_EXAMPLES},
        }

    def headline(self, metrics: dict[str, Any]) -> str:
        return (
            f"loss {metrics['test_loss']:.4f} nats/masked token (unigram baseline {metrics['unigram_loss']:.4f}), "
            f"masked-token accuracy {metrics['test_masked_accuracy']:.4f}"
        )

    def report(self, metrics: dict[str, Any]) -> str:
        lines = [f"test {self.headline(metrics)} ({metrics['test_masked_tokens']} masked tokens in "
                 f"{metrics['test_samples']} rows of {metrics['sequence_length']} tokens)"]
        lines += [f"{text!r}: {', '.join(words)}" for text, words in metrics["fill_mask"].items()]
        return "\n".join(lines)

    # --- export: the whole model, token ids in, every position's logits out -----------------------------
    def edge_part(self, model: keras.Model) -> keras.Model:
        from kerasdl.models.bert import token_logits_model

        return token_logits_model(model)

    def export_batches(self, edge: keras.Model, data: DataBundle, batch_size: int) -> Iterator[np.ndarray]:
        inputs = data.masked("test")[0][:PARITY_SAMPLES]
        return (inputs[start : start + batch_size] for start in range(0, len(inputs), batch_size))

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs logit difference, and at the masked positions the share of top tokens that agree and both
        masked-token accuracies."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives outputs of shape {outputs.shape}, Keras {reference.shape}")
        targets = data.labels("test")[: len(reference)]
        chosen = targets > 0
        expected, found = reference.argmax(axis=-1)[chosen], outputs.argmax(axis=-1)[chosen]
        return {
            "split": f"test: the first {len(reference)} rows' fixed masking",
            "samples": int(len(reference)),
            "max_abs_diff": float(np.max(np.abs(reference - outputs))),
            "masked_token_agreement": float(np.mean(expected == found)),
            "accuracy": float(np.mean(found == targets[chosen])),
            "keras_accuracy": float(np.mean(expected == targets[chosen])),
        }

    def preprocessing(self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
        """Text with [MASK]s in (the runner tokenizes the pieces between them), every position's logits out."""
        spec = super().preprocessing(data, input_name, input_dtype, shape)
        del spec["class_names"]
        spec["output"] = "token logits (sequence_length, vocabulary_size)"
        return spec

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |logit diff| {measured['max_abs_diff']:.3g}, masked-token agreement "
            f"{measured['masked_token_agreement']:.2%}, accuracy {measured['accuracy']:.4f} "
            f"(Keras {measured['keras_accuracy']:.4f})"
        )


def masked_cross_entropy(model: keras.Model, inputs: np.ndarray, targets: np.ndarray) -> tuple[float, float, int]:
    """Mean nats of the original tokens at every chosen position (targets > 0), the argmax accuracy there, and
    how many positions were chosen."""
    nats, correct, count = 0.0, 0, 0
    for start in range(0, len(inputs), EVALUATION_BATCH):
        batch = targets[start : start + EVALUATION_BATCH]
        positions, expected = (np.asarray(part) for part in prediction_positions(batch, int((batch > 0).sum(1).max())))
        chosen = expected > 0
        logits = predict(model, [inputs[start : start + EVALUATION_BATCH], positions])[chosen].astype(np.float64)
        top = logits.max(axis=-1, keepdims=True)
        log_partition = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
        nats += float((log_partition - logits[np.arange(len(logits)), expected[chosen]]).sum())
        correct += int((logits.argmax(axis=-1) == expected[chosen]).sum())
        count += int(chosen.sum())
    if not count:
        raise KerasdlError("the test split has no masked tokens to score (too few words in its sentences)")
    return nats / count, correct / count, count


def fill_mask(model: keras.Model, tokenizer_state: dict[str, Any], text: str, top_k: int = 5) -> list[list[dict[str, Any]]]:
    """For each [MASK] in `text`, the `top_k` most likely words as [{"token", "probability"}], best first;
    `tokenizer_state` is the run's saved tokenizer (data_state.json's "tokenizer"). The edge runner's code
    tokenizes and ranks, so an exported model fills the same words."""
    encoder = TextEncoder(tokenizer_state)
    ids, positions = mask_encode(encoder, text, MASK)
    return fill_masks(predict(model, [ids[np.newaxis], np.asarray([positions], np.int32)])[0], encoder, MASK, top_k)


MASKED_LANGUAGE_MODELLING = register_task(MaskedLanguageModelling())
