"""A table's exported model on the edge: the TF-free runner reads raw CSV rows (target column absent, columns
reordered, an extra column), prepares them with the run's saved preparation (the same NumPy code training
used) and predicts as the Keras model does: a value in the target's unit for a regression (scikit-learn's
diabetes with a categorical column and missing cells), classes for a classifier (breast cancer). The server
answers rows as JSON objects with the same code; bad rows are one-line errors; `kerasdl tune --target`."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import test_edge_runner as edge_runner_tests
import test_faults_untrusted as untrusted_tests
import test_tabular as tabular_tests
from fuzzing import FUZZ, mutations, only_our_error
from kerasdl.cli import main
from kerasdl.data import load
from kerasdl.edge.runner import PREPROCESSING_FILE, EdgeModel, Preprocessing, RunnerError, add_arguments, infer, softmax

blocked_python = edge_runner_tests.blocked_python  # a Python that cannot import tensorflow, keras (or kerasdl)
tables = tabular_tests.tables  # breast cancer as CSV, with missing cells and a categorical column
write_csv, cell = tabular_tests.write_csv, tabular_tests.cell
RUNNER = edge_runner_tests.RUNNER
TEST_ROWS = 30
FORMATS = ("tflite", "tflite-int8")


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory) -> Path:
    """Diabetes with 'sex' as a category (F/M, missing in every 13th row) and 'bmi' missing in every 7th."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(scaled=False)
    rows = []
    for i, (x, y) in enumerate(zip(frame.data, frame.target)):
        cells = list(map(cell, x))
        cells[1] = "" if i % 13 == 5 else {1.0: "F", 2.0: "M"}[x[1]]
        cells[2] = "" if i % 7 == 2 else cells[2]
        rows.append([*cells, cell(y)])
    return write_csv(tmp_path_factory.mktemp("diabetes") / "diabetes.csv", [*frame.feature_names, "progression"], rows)


class Exported:
    """A run trained on a table and its exports: the bundle restored from the run, the Keras outputs on the
    test split, and a CSV of those test rows as a user would pass them."""

    def __init__(self, table: Path, model: str, target: str, regression: bool, epochs: int, root: Path):
        import keras

        from kerasdl.export.exporter import export_run
        from kerasdl.training import TrainConfig, train

        self.run = train(TrainConfig(model, data=str(table), target=target, epochs=epochs), out=root / "run", verbose=0)
        bundle = load(str(table), target=target)
        self.bundle = (bundle.as_regression() if regression else bundle).restored(self.run.run.read_data_state())
        x_test = self.bundle.split("test")[0][:TEST_ROWS]
        self.keras_outputs = keras.saving.load_model(self.run.run.model_path).predict(x_test, verbose=0)
        self.exports = {fmt: export_run(self.run.run.path, fmt, root / fmt, latency_runs=1) for fmt in FORMATS}
        self.rows = self.user_rows(root / "rows.csv", target)

    def user_rows(self, path: Path, target: str) -> Path:
        """The first test rows, raw: the target dropped, the columns reversed, an 'id' column the model never saw."""
        table = self.bundle.table
        header = ["id", *reversed([name for name in table.header if name != target])]
        rows = [[f"patient-{r}", *(table.rows[r][table.header.index(name)] for name in header[1:])]
                for r in self.bundle.rows["test"][:TEST_ROWS]]
        return write_csv(path, header, rows)


@pytest.fixture(scope="module")
def regression(diabetes_csv, tmp_path_factory) -> Exported:
    return Exported(diabetes_csv, "mlp-regressor", "progression", True, 8, tmp_path_factory.mktemp("regression"))


@pytest.fixture(scope="module")
def classification(tables, tmp_path_factory) -> Exported:
    return Exported(tables["cancer"], "mlp", "diagnosis", False, 3, tmp_path_factory.mktemp("classification"))


def copied_runner(blocked_python, tmp_path: Path, args: list[str]) -> dict:
    """The runner copied alone to a folder, run where tensorflow, keras and kerasdl cannot be imported; its JSON."""
    runner = shutil.copy(RUNNER, tmp_path / "runner.py")
    result = blocked_python([str(runner), *args, "--json"], blocked="tensorflow,keras,kerasdl")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def runner_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


# --- regression -----------------------------------------------------------------------------------------------

def test_training_and_the_edge_prepare_rows_with_one_code(regression):
    """The exported preprocessing.json is a "tabular" input; the runner reading the raw test rows gives exactly
    the arrays the bundle trained and tested on."""
    spec = EdgeModel(regression.exports["tflite"].artifact).preprocessing
    assert spec.kind == "tabular" and spec.task == "regression"
    assert spec.spec["input"]["tabular"]["imputed"] == regression.bundle.preparation.imputed != {}
    np.testing.assert_array_equal(spec.read(regression.rows), regression.bundle.split("test")[0][:TEST_ROWS])


def test_a_copied_runner_predicts_raw_csv_rows_in_the_targets_unit(regression, blocked_python, tmp_path):
    """Float: the Keras model's predictions within 1e-4 (standardized units), de-standardized; their error
    against the true progression is the run's own test MAE over those rows."""
    result = copied_runner(blocked_python, tmp_path, [str(regression.exports["tflite"].artifact),
                                                     "--input", str(regression.rows)])
    assert result["task"] == "regression" and result["target"] == "progression"
    values = np.array([p["value"] for p in result["predictions"]])
    prep = regression.bundle.preparation
    np.testing.assert_allclose((values - prep.target_mean) / prep.target_std, regression.keras_outputs.ravel(), atol=1e-4)
    truth = regression.bundle.values(regression.bundle.labels("test")[:TEST_ROWS]).ravel()
    keras_mae = np.mean(np.abs(regression.bundle.values(regression.keras_outputs).ravel() - truth))
    assert np.mean(np.abs(values - truth)) == pytest.approx(keras_mae, rel=1e-5)
    assert 25 <= values.min() and values.max() <= 346  # diabetes progression's range, not standardized units


def test_the_int8_artifact_on_raw_rows_gives_what_its_export_measured(regression, tmp_path):
    """int8: the runner on the CSV rows feeds the artifact the inputs the export's parity check fed it, so
    its errors are the ones export.json reports (there over the whole test split: the same first rows here)."""
    export = regression.exports["tflite-int8"]
    assert export.report["targets"]["met"], export.report["targets"]
    result = json.loads(infer(runner_args(str(export.artifact), "--input", str(regression.rows), "--json")))
    values = np.array([p["value"] for p in result["predictions"]])
    x_test = regression.bundle.split("test")[0][:TEST_ROWS]
    expected = regression.bundle.values(EdgeModel(export.artifact).logits(x_test)).ravel()
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    keras_values = regression.bundle.values(regression.keras_outputs).ravel()
    assert np.mean(np.abs(values - keras_values)) < 0.05 * np.std(keras_values)


def test_kerasdl_infer_prints_a_value_per_row(regression, capsys):
    assert main(["infer", str(regression.exports["tflite"].artifact), "--input", str(regression.rows)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == TEST_ROWS and all(line.startswith(f"row {i}: progression ") for i, line in enumerate(lines, 1))
    float(lines[0].rsplit(" ", 1)[1])


def bad_rows(folder: Path, rows: Path) -> dict[str, tuple[Path, str]]:
    """Name -> (a rows file, the message expected), each made from the good rows."""
    text = rows.read_text().splitlines()
    header = text[0].split(",")
    bmi = header.index("bmi")
    wrong_cell = text[2].split(",")
    wrong_cell[bmi] = "heavy"
    cases = {
        "text in a numeric column": ([text[0], text[1], ",".join(wrong_cell)],
                                     "column 'bmi' was numeric in training, but data row 2 holds 'heavy'"),
        "a needed column absent": ([line.rsplit(",", 1)[0] for line in text[:3]],
                                   f"lacks the column(s) the model was trained on: {header[-1]}"),
        "header only": (text[:1], "holds no data rows"),
        "ragged row": ([text[0], text[1][: text[1].rindex(",")]], "data row 1 has"),
    }
    for name, (lines, message) in cases.items():
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return {name: (folder / f"{name}.csv", message) for name, (_, message) in cases.items()}


def test_bad_rows_are_one_line_errors(regression, tmp_path, capsys):
    artifact = str(regression.exports["tflite"].artifact)
    for name, (path, message) in bad_rows(tmp_path, regression.rows).items():
        with pytest.raises(RunnerError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
            infer(runner_args(artifact, "--input", str(path)))
        assert "\n" not in str(caught.value), name
        assert main(["infer", artifact, "--input", str(path)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1, name


@pytest.fixture(scope="module")
def scratch(regression, tmp_path_factory) -> Path:
    """A copy of the float export and of the rows, which the fuzz tests damage (restored after each example)."""
    folder = shutil.copytree(regression.exports["tflite"].artifact.parent, tmp_path_factory.mktemp("fuzz") / "export")
    shutil.copy(regression.rows, folder / "rows.csv")
    return folder


@FUZZ
@given(data=st.data())
def test_a_damaged_tabular_preprocessing_json_is_only_ever_a_runner_error(scratch, data):
    """Random JSON, bytes replaced, or any value of it (a column's statistics, its categories...) replaced."""
    path = scratch / PREPROCESSING_FILE
    original = path.read_bytes()
    path.write_bytes(untrusted_tests.damaged(data, original))
    try:
        only_our_error(Preprocessing.beside, scratch / "model.tflite", errors=(RunnerError,))
        only_our_error(infer, runner_args(str(scratch / "model.tflite"), "--input", str(scratch / "rows.csv"), "--json"),
                       errors=(RunnerError,))
    finally:
        path.write_bytes(original)


@FUZZ
@given(data=st.data())
def test_mutated_rows_are_predicted_or_refused_in_one_line(scratch, data):
    """The rows file with bytes replaced, cut short, or random: a value per row, or a RunnerError."""
    path = scratch / "rows.csv"
    original = path.read_bytes()
    how = data.draw(st.sampled_from(["replace", "truncate", "random"]))
    if how == "replace":
        positions = data.draw(st.lists(st.integers(0, len(original) - 1), min_size=1, max_size=8))
        path.write_bytes(mutations(original, positions, data.draw(st.lists(st.integers(0, 255), min_size=8, max_size=8))))
    else:
        path.write_bytes(original[: data.draw(st.integers(0, len(original)))] if how == "truncate" else data.draw(st.binary()))
    try:
        result = only_our_error(infer, runner_args(str(scratch / "model.tflite"), "--input", str(path), "--json"),
                                errors=(RunnerError,))
        if result is not None:
            assert all(np.isfinite(p["value"]) for p in json.loads(result)["predictions"])
    finally:
        path.write_bytes(original)


# --- classification -------------------------------------------------------------------------------------------

def test_a_copied_runner_classifies_raw_csv_rows(classification, blocked_python, tmp_path):
    result = copied_runner(blocked_python, tmp_path, [str(classification.exports["tflite"].artifact), "--input",
                                                     str(classification.rows), "--top-k", "2"])
    probabilities = np.zeros_like(classification.keras_outputs)
    for row, top in zip(probabilities, result["predictions"], strict=True):
        row[[c["index"] for c in top]] = [c["probability"] for c in top]
    np.testing.assert_allclose(probabilities, softmax(classification.keras_outputs), atol=1e-5)
    assert {c["class"] for top in result["predictions"] for c in top} == {"benign", "malignant"}


# --- serving ----------------------------------------------------------------------------------------------------

def json_rows(rows: Path) -> list[dict]:
    """The CSV's rows as a client would send them: numbers as numbers, an empty cell as null."""
    header, *lines = [line.split(",") for line in rows.read_text().splitlines()]

    def value(text: str):
        try:
            return float(text)
        except ValueError:
            return text or None

    return [dict(zip(header, map(value, line))) for line in lines]


@pytest.mark.parametrize("fixture", ["regression", "classification"])
def test_the_server_answers_rows_as_objects_with_the_runners_code(fixture, request):
    from kerasdl.serve.backends import load_export
    from kerasdl.serve.inputs import BadRequest, Body, Limits
    from kerasdl.serve.predictors import predict

    exported = request.getfixturevalue(fixture)
    served, _ = load_export(exported.exports["tflite"].artifact.parent)
    answer = predict(served, Body({"rows": json_rows(exported.rows)}), served.logits, Limits())
    from_csv = json.loads(infer(runner_args(str(exported.exports["tflite"].artifact), "--input", str(exported.rows),
                                            "--json")))["predictions"]
    if fixture == "regression":
        np.testing.assert_allclose([p["value"] for p in answer["predictions"]], [p["value"] for p in from_csv], rtol=1e-6)
    else:
        assert [p["label"] for p in answer["predictions"]] == [top[0]["class"] for top in from_csv]
    first = json_rows(exported.rows)[0]
    numeric = next(name for name, value in first.items() if isinstance(value, float))
    for body, message in [({"rows": [{**first, numeric: "heavy"}]}, "was numeric in training"),
                          ({"rows": [{"id": 1}]}, "lacks the column"), ({"rows": "x"}, "one object per row"),
                          ({"rows": [{**first, numeric: [1]}]}, "expected a number, a string or null")]:
        with pytest.raises(BadRequest, match=message):
            predict(served, Body(body), served.logits, Limits())


# --- tuning on a table ------------------------------------------------------------------------------------------

def test_tune_searches_a_table_with_its_target(diabetes_csv, tmp_path, capsys):
    """`kerasdl tune --target`: one trial of one epoch on the CSV; the best configuration, retrained, is a
    regression of the named column."""
    argv = ["tune", "mlp-regressor", "--tuner", "random", "--max-trials", "1", "--epochs", "1", "--data",
            str(diabetes_csv), "--target", "progression", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "test mae" in capsys.readouterr().out
    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert best["config"]["target"] == "progression"
    assert json.loads((tmp_path / "best" / "config.json").read_text())["target"] == "progression"
