"""`kerasdl.pipeline`: what a wrong call says. Each task's pipeline on a trained run and on its export is tested
beside that run (test_transformer_classifier.py, test_gpt.py, test_translation.py, test_bert.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kerasdl
from kerasdl.errors import KerasdlError


def test_importing_kerasdl_for_a_pipeline_does_not_import_tensorflow():
    code = "import sys, kerasdl; kerasdl.pipeline; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_unknown_task_lists_the_known_ones(tmp_path):
    with pytest.raises(KerasdlError, match="unknown pipeline task 'summarization'; known: sentiment-analysis, "
                                           "text-generation, translation, fill-mask"):
        kerasdl.pipeline("summarization", tmp_path)


@pytest.mark.parametrize("where, message", [
    ("nowhere", "does not exist"),
    ("empty", "has no model.keras"),
    ("model.tflite", "does not exist"),
])
def test_a_missing_run_or_artifact_is_one_clear_error(tmp_path, where, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(KerasdlError, match=message):
        kerasdl.pipeline("sentiment-analysis", tmp_path / where)


def test_a_run_of_another_kind_is_refused(digits_runs):
    with pytest.raises(KerasdlError, match="not a text model's run"):
        kerasdl.pipeline("sentiment-analysis", digits_runs["fit"].run.path)
