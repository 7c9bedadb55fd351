"""`kerasdl export`: every registered model to every format, builtin ops only, parity on test data, errors.

Parametrized over the registry, so a model registered later is exported and checked without a new test.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import classifiers, formats_for
from kerasdl.cli import main
from kerasdl.data import ArrayBundle, DatasetInfo
from kerasdl.errors import UnknownNameError
from kerasdl.export.edge_model import register_edge_adapter
from kerasdl.export.errors import NonBuiltinOpsError
from kerasdl.export.exporter import export_model, export_run
from kerasdl.export.formats import FORMATS
from kerasdl.export.saved_model import input_spec, write_saved_model
from kerasdl.export.tflite import op_counts, operators
from kerasdl.registry import model_spec

pytest_plugins = ["export_fixtures"]

MODELS = classifiers()
# What int8 keeps is a property of trained weights. Offline, the ImageNet backbones have none and their test
# run stays near chance (ResNet50 int8 then drops 0.05-0.07), so for them it is measured and reported only.
TRAINED_NETWORKS = {name for name in MODELS if not model_spec(name).offline_params}
TFLITE_FORMATS = [name for name, f in FORMATS.items() if f.is_tflite]


@pytest.mark.parametrize(("model", "fmt"), [(model, fmt) for model in MODELS for fmt in formats_for(model)])
def test_every_model_exports_to_every_format_within_parity_targets(exported, trained_run, model, fmt):
    export = exported(model, fmt)
    report, parity = export.report, export.report["parity"]
    assert report["format"] == fmt
    if model in TRAINED_NETWORKS or FORMATS[fmt].quantization is None:
        assert report["targets"]["met"], report["targets"]["failures"]
    elif not report["targets"]["met"]:  # reported, and said on the command line
        assert "warning: parity targets missed: " in export.stdout
    assert parity["split"] == "test" and parity["samples"] == len(trained_run(model).labels)
    if FORMATS[fmt].quantization is None:  # float32: the same function, to rounding
        assert parity["max_abs_diff"] <= 1e-4
        assert parity["top1_agreement"] == 1.0
        assert parity["accuracy"] == parity["keras_accuracy"]
    elif model in TRAINED_NETWORKS:
        assert parity["keras_accuracy"] - parity["accuracy"] <= 0.01
    files = [export.artifact] if export.artifact.is_file() else list(export.artifact.rglob("*"))
    assert report["bytes"] == sum(f.stat().st_size for f in files if f.is_file()) > 0
    assert report["latency_ms_batch1"] > 0
    assert f"{fmt}: {export.artifact}" in export.stdout and "report:" in export.stdout


@pytest.mark.parametrize(
    ("model", "fmt"), [(model, fmt) for model in MODELS for fmt in formats_for(model) if fmt != "savedmodel"]
)
def test_edge_artifacts_use_builtin_ops_only(exported, model, fmt):
    export = exported(model, fmt)
    assert export.report["builtin_ops_only"] is True
    if FORMATS[fmt].is_tflite:  # read the flatbuffer's own operator list, not the report
        flatbuffer = export.artifact.read_bytes()
        assert operators(flatbuffer) and all(op.builtin for op in operators(flatbuffer))
        assert export.report["ops"] == op_counts(flatbuffer)
        assert not any(op.startswith("Flex") for op in export.report["ops"])


@pytest.mark.parametrize("model", [model for model in MODELS if "tflite-int8" in formats_for(model)])
def test_int8_artifact_takes_and_gives_int8_with_recorded_scale_and_zero_point(exported, model):
    from ai_edge_litert.interpreter import Interpreter

    export = exported(model, "tflite-int8")
    interpreter = Interpreter(model_path=str(export.artifact))
    details = {"input": interpreter.get_input_details()[0], "output": interpreter.get_output_details()[0]}
    for side, detail in details.items():
        recorded = export.report["io"][side]
        assert recorded["dtype"] == "int8" and detail["dtype"] == np.int8
        assert (recorded["scale"], recorded["zero_point"]) == pytest.approx(detail["quantization"])
    assert export.report["quantization"] == {
        "mode": "int8", "representative_samples": exported.representative_samples, "representative_split": "train"
    }


@pytest.mark.parametrize("model", MODELS)
def test_preprocessing_travels_with_every_artifact(exported, trained_run, model):
    config = json.loads((trained_run(model).path / "config.json").read_text())
    info = config["dataset"]
    for fmt in formats_for(model):
        spec = json.loads((exported(model, fmt).folder / "preprocessing.json").read_text())
        assert spec["input"]["shape"] == info["input_shape"]
        assert (spec["input"]["scale"], spec["input"]["offset"]) == (info["scale"], info["offset"])
        assert spec["class_names"] == info["class_names"]


def test_unknown_format_is_a_one_line_error(capsys, trained_run):
    run = str(trained_run(MODELS[0]).path)
    with pytest.raises(SystemExit) as exit_:
        main(["export", run, "--format", "tflite-int4"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'tflite-int4'" in err and len(err.splitlines()) == 1
    with pytest.raises(UnknownNameError, match="unknown export format 'tflite-int4'; known: onnx, savedmodel"):
        export_run(run, "tflite-int4")


def test_run_dir_without_a_model_is_a_one_line_error(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert main(["export", str(tmp_path), "--format", "tflite"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"kerasdl export: error: {tmp_path} has no model.keras (not a finished kerasdl run directory)"


@keras.saving.register_keras_serializable(package="kerasdl_tests")
class RunningProduct(keras.layers.Layer):
    """keras.ops.cumprod lowers to tf.Cumprod, which TFLite has only as a Flex op (checked below)."""

    def call(self, x):
        return keras.ops.cumprod(x, axis=-1)


def sequence_data(shape: tuple[int, ...]) -> ArrayBundle:
    """Random sequences in an ArrayBundle, as a recurrent model would see them."""
    rng = np.random.default_rng(0)
    arrays = {
        split: (rng.normal(size=(32, *shape)).astype(np.float32), rng.integers(0, 2, 32).astype(np.int32))
        for split in ("train", "validation", "test")
    }
    return ArrayBundle(DatasetInfo("sequences", shape, 2, ("a", "b")), arrays)


def small_model(inputs: keras.KerasTensor, features: keras.KerasTensor) -> keras.Model:
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(features))


def flex_model() -> keras.Model:
    inputs = keras.Input((6, 3), name="sequence")
    return small_model(inputs, keras.layers.Flatten()(RunningProduct(name="running_product")(inputs)))


def test_a_model_needing_flex_ops_fails_naming_the_op_and_its_layer(tmp_path):
    message = r"needs ops that are not TFLite builtins: Cumprod \(layer 'running_product'\)"
    with pytest.raises(NonBuiltinOpsError, match=message):
        export_model(flex_model(), sequence_data((6, 3)), "tflite", tmp_path)
    assert not (tmp_path / "model.tflite").exists()


def test_the_op_check_finds_flex_ops_in_a_flatbuffer(tmp_path):
    """The check the exporter runs on every flatbuffer, on one converted WITH SELECT_TF_OPS on purpose."""
    model = flex_model()
    write_saved_model(model, tmp_path / "saved_model", input_spec(model, (6, 3)))
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved_model"))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    non_builtin = [op for op in operators(converter.convert()) if not op.builtin]
    assert [op.name for op in non_builtin] == ["FlexCumprod"]
    assert "running_product" in non_builtin[0].tensor


def recurrent_model() -> keras.Model:
    inputs = keras.Input((6, 3), name="sequence")
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bidirectional_lstm")(inputs)
    return small_model(inputs, keras.layers.GRU(4, name="gru")(x))


def test_recurrent_layers_are_unrolled_into_builtin_ops_with_the_same_outputs(tmp_path):
    result = export_model(recurrent_model(), sequence_data((6, 3)), "tflite", tmp_path, latency_runs=2)
    assert result.report["builtin_ops_only"] and not any(op.startswith("Flex") for op in result.report["ops"])
    assert result.report["parity"]["max_abs_diff"] <= 1e-4 and result.report["parity"]["top1_agreement"] == 1.0


def test_without_the_unroll_adapter_recurrent_layers_need_tensor_list_ops(tmp_path):
    register_edge_adapter("test-unadapted")(lambda model, info: model)
    with pytest.raises(NonBuiltinOpsError, match=r"TensorList\w+ \(layer 'bidirectional_lstm'\)"):
        export_model(recurrent_model(), sequence_data((6, 3)), "tflite", tmp_path, family="test-unadapted")


def test_export_defaults_to_export_artifacts_run_name_format(monkeypatch, tmp_path, trained_run):
    monkeypatch.chdir(tmp_path)
    run = trained_run(MODELS[0]).path
    result = export_run(run, "onnx", latency_runs=2)
    assert result.artifact == Path("export/artifacts") / run.name / "onnx" / "model.onnx"
    assert result.report_path.exists() and (result.artifact.parent / "preprocessing.json").exists()
