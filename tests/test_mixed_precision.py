"""Mixed precision (`--precision mixed_float16|mixed_bfloat16`): 16-bit compute with float32 outputs, dynamic
loss scaling in the tape step, float32 exports, and cnn-mnist's accuracy as in float32."""

from __future__ import annotations

import json

import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf

from kerasdl.data import DatasetInfo, load
from kerasdl.errors import KerasdlError
from kerasdl.export.exporter import export_run
from kerasdl.registry import model_spec, model_specs
from kerasdl.tasks import get_task
from kerasdl.training import TrainConfig, train
from kerasdl.training.loops import build_model, compile_model, dtype_policy

WORDS = tuple(f"w{i}" for i in range(40))
DIGITS = tuple("0123456789")
# One small DatasetInfo per default data set, shaped like the real one.
INFOS = {
    "digits": DatasetInfo("digits", (8, 8, 1), 10, DIGITS),
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, DIGITS),
    "cifar10": DatasetInfo("cifar10", (32, 32, 3), 10, DIGITS),
    "cats-vs-dogs": DatasetInfo("cats-vs-dogs", (32, 32, 3), 2, ("cat", "dog")),
    "sst2": DatasetInfo("sst2", (12,), 2, ("negative", "positive"), vocabulary=WORDS),
    "shakespeare": DatasetInfo("shakespeare", (12,), 40, WORDS, vocabulary=WORDS),
    "english-corpus": DatasetInfo("english-corpus", (12,), 40, WORDS, vocabulary=WORDS),
    "english-text": DatasetInfo("english-text", (1,), 40, WORDS, vocabulary=WORDS),
    "raccoon": DatasetInfo("raccoon", (64, 64, 3), 1, ("raccoon",)),
    "isbi-em-membrane": DatasetInfo("isbi-em-membrane", (32, 32, 1), 2, ("membrane", "cell")),
    "daily-min-temperatures": DatasetInfo("daily-min-temperatures", (10, 1), 3, ()),
    "diabetes": DatasetInfo("diabetes", (10,), 1, ("progression",)),
    "fra-eng": DatasetInfo("fra-eng", (9,), 30, (), vocabulary=WORDS, target_length=7),
}
SMALL = {"layers": 1, "embedding_dim": 16, "heads": 2}  # the Transformers, at a size that builds in a second
SMALL_PARAMS = {"bert-mini": SMALL, "bert-classifier": SMALL, "gpt": SMALL, "translator": {**SMALL, "units": 16}}
# The ImageNet backbones share one builder and head: MobileNetV2 stands for all three (ResNet50 alone has 25M
# parameters to build).
SAME_BUILDER = ("efficientnet-b0", "resnet50")


def _parts(model: keras.Model) -> list[keras.Model]:
    """The functional models whose outputs to check: the model, or a GAN's two players."""
    if isinstance(model, keras.Sequential) or hasattr(model, "inputs"):  # a subclassed model has no `inputs`
        return [model]
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _zeros(model: keras.Model, info: DatasetInfo):
    if isinstance(model, keras.Sequential):
        return np.zeros((2, *info.input_shape), "int32" if info.vocabulary_size else "float32")
    return keras.tree.map_structure(lambda t: np.zeros((2, *(d or 3 for d in t.shape[1:])), t.dtype), model.input)


def test_every_keras_model_outputs_float32_under_mixed_precision():
    """Each registered Keras model, built under mixed_float16: 16-bit layers inside, float32 variables, and
    float32 outputs (its output layer's own policy), so losses and metrics are computed in float32."""
    wrong = []
    for spec in model_specs():
        if "numpy" in spec.loops or spec.name in SAME_BUILDER:
            continue
        info = INFOS[spec.default_data]
        with dtype_policy("mixed_float16"):
            model = spec.build(info, **spec.offline_params, **SMALL_PARAMS.get(spec.name, {}))
        assert keras.config.dtype_policy().name == "float32"  # restored after the build
        assert model.dtype_policy.name == "mixed_float16", spec.name
        assert {v.dtype for v in model.trainable_variables} == {"float32"}, spec.name
        for part in _parts(model):
            outputs = keras.tree.flatten(part(_zeros(part, info), training=False))
            wrong += [f"{spec.name}/{part.name}: {out.dtype}" for out in outputs
                      if keras.backend.standardize_dtype(out.dtype) != "float32"]
    assert not wrong


def _digits_step(precision: str):
    """The mlp on digits built and compiled as a run under `precision`, and its task's tape step."""
    data = load("digits", validation_fraction=0.1, seed=0)
    config = TrainConfig("mlp", precision=precision, loop="tape")
    spec = model_spec("mlp")
    model = build_model(spec, data.info, config)
    compile_model(model, config, steps_per_epoch=25, task=get_task(spec.task))
    model.optimizer.build(model.trainable_variables)
    step = tf.function(get_task(spec.task).train_step(model, model.optimizer))
    return model, step, data.dataset("train", 64)


def test_tape_step_scales_the_loss_dynamically_under_mixed_float16():
    """compile wraps the optimizer in a LossScaleOptimizer; the tape step (model.optimizer) multiplies the loss
    by its scale and the update divides it out: the scale holds while gradients are finite, and a step whose
    scaled float16 gradients overflow is skipped with the scale halved."""
    model, step, batches = _digits_step("mixed_float16")
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    x, y = next(iter(batches))
    start = [w.copy() for w in model.get_weights()]
    losses = [float(step(x, y)["loss"]) for _ in range(5)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert float(optimizer.dynamic_scale) == optimizer.initial_scale  # finite gradients: scale holds
    assert int(optimizer.iterations) == 5
    assert not np.allclose(start[0], model.get_weights()[0])

    optimizer.dynamic_scale.assign(2.0**60)  # float16 gradients overflow at this scale
    before = [w.copy() for w in model.get_weights()]
    step(x, y)
    assert float(optimizer.dynamic_scale) == 2.0**59
    assert int(optimizer.iterations) == 5  # the overflowing step was skipped...
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # ...and changed no weight


def test_bfloat16_needs_no_loss_scaling():
    model, step, batches = _digits_step("mixed_bfloat16")
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # bfloat16 has float32's range
    assert np.isfinite(float(step(*next(iter(batches)))["loss"]))


@pytest.fixture(scope="module")
def mixed_digits_runs(tmp_path_factory):
    """The mlp on digits for 2 epochs: fit under mixed_bfloat16, tape under mixed_float16 (loss scaling)."""
    root = tmp_path_factory.mktemp("mixed_digits")
    return {
        loop: train(TrainConfig("mlp", epochs=2, loop=loop, precision=precision), out=root / loop, verbose=0)
        for loop, precision in (("fit", "mixed_bfloat16"), ("tape", "mixed_float16"))
    }


@pytest.mark.parametrize("loop", ["fit", "tape"])
def test_mixed_runs_train_and_evaluate_in_float32(mixed_digits_runs, loop):
    result = mixed_digits_runs[loop]
    assert result.metrics["test_accuracy"] > 0.8
    reloaded = keras.saving.load_model(result.run.model_path, compile=False)
    assert reloaded.get_layer("hidden_1").dtype_policy.name == result.run.read_config()["precision"]
    assert reloaded.get_layer("logits").dtype_policy.name == "float32"


def _tflite_types(path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_mixed_run_exports_float32(mixed_digits_runs, tmp_path, fmt):
    """A mixed_bfloat16 run exports a float32 artifact: float32 inputs, outputs, weights and activations, with
    the float32 parity targets met against the same weights in Keras."""
    export = export_run(mixed_digits_runs["fit"].run.path, fmt, tmp_path / fmt, latency_runs=2)
    report = json.loads(export.report_path.read_text())
    assert report["trained_precision"] == "mixed_bfloat16"
    assert report["targets"]["met"], report["targets"]["failures"]
    assert report["parity"]["top1_agreement"] == 1.0 and report["parity"]["max_abs_diff"] < 1e-4
    if fmt == "tflite":
        assert _tflite_types(export.artifact) <= {"float32", "int32"}
    elif fmt == "onnx":
        graph = onnx.load(str(export.artifact)).graph
        float32 = onnx.TensorProto.FLOAT
        assert [v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]] == [float32, float32]
        assert {t.data_type for t in graph.initializer if t.dims and len(t.dims) > 1} == {float32}  # weight matrices
        sixteen = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
        assert not [n for n in graph.node if n.op_type == "Cast" and any(a.i in sixteen for a in n.attribute)]
    else:
        loaded = tf.saved_model.load(str(export.artifact))
        assert {v.dtype for v in loaded.variables} == {tf.float32}
        outputs = loaded.signatures["serving_default"].structured_outputs
        assert {spec.dtype for spec in outputs.values()} == {tf.float32}


def test_fp16_is_still_asked_for_by_format(mixed_digits_runs, tmp_path):
    export = export_run(mixed_digits_runs["fit"].run.path, "tflite-fp16", tmp_path, latency_runs=2)
    assert "float16" in _tflite_types(export.artifact)
    assert export.report["targets"]["met"]


def test_train_samples_must_fit_the_training_split():
    digits = load("digits", validation_fraction=0.1, seed=0)
    assert get_task("classification").adapt_data(digits, {"train_samples": 100}).info.split_sizes["train"] == 100
    for wrong in (0, 10_000, 2.5):
        with pytest.raises(KerasdlError, match="train_samples must be a whole number"):
            get_task("classification").adapt_data(digits, {"train_samples": wrong})


# Accuracy parity, float32 against mixed, on real digits, both tested on their whole test split:
# - cnn-mnist under mixed_bfloat16: a seeded 6,000-digit subset for 2 epochs (Adam 2e-3, cosine, batch 64), tested
#   on all 10,000 MNIST test digits. Measured here: 0.9513 float32, 0.9576 bfloat16 (about 20 s each).
# - mlp on scikit-learn's digits under mixed_float16, 10 epochs (the loss-scaling path): 0.9639 and 0.9639.
# float16 convolutions are the one pair left out: on this CI machine's CPU TensorFlow runs them about 50x slower
# than float32 (4-5 s a step against 82 ms, the same with the code before this test changed), which made a
# 3,000-digit cnn-mnist run cost CI 16 minutes; the float16 conv path is still checked by the step and export
# tests above.
PARITY_RUNS = {
    "cnn-mnist": ("mixed_bfloat16", {"epochs": 2, "batch_size": 64, "learning_rate": 2e-3, "lr_schedule": "cosine",
                                     "validation_fraction": 0.02, "task_params": {"train_samples": 6000}}),
    "mlp": ("mixed_float16", {"epochs": 10}),
}
# At these budgets two runs that differ only in rounding land up to ~1 point apart, so 1.5 points; a broken
# mixed run is far off both.
PARITY_TOLERANCE = 0.015
ACCURACY_FLOOR = 0.9


@pytest.mark.parametrize("model", sorted(PARITY_RUNS))
def test_mixed_precision_accuracy_matches_float32(tmp_path, model):
    mixed_policy, budget = PARITY_RUNS[model]
    runs = {
        precision: train(TrainConfig(model, precision=precision, **budget), out=tmp_path / precision, verbose=0)
        for precision in ("float32", mixed_policy)
    }
    metrics = {precision: run.metrics for precision, run in runs.items()}
    if model == "cnn-mnist":
        assert {run.run.read_config()["dataset"]["split_sizes"]["train"] for run in runs.values()} == {6000}
        assert all(run["test_samples"] == 10_000 for run in metrics.values())
    float32, mixed = (metrics[precision]["test_accuracy"] for precision in ("float32", mixed_policy))
    assert float32 > ACCURACY_FLOOR and mixed > ACCURACY_FLOOR
    assert abs(float32 - mixed) <= PARITY_TOLERANCE, (float32, mixed)
