"""Evaluation: metrics against hand-computed answers and scikit-learn, plots, the printed report, `kerasdl evaluate`."""

from __future__ import annotations

import json
import math
import shutil

import matplotlib.image
import numpy as np
import pytest
from sklearn import metrics as sk

from kerasdl.cli import main
from kerasdl.data import load
from kerasdl.evaluation import (
    classification_metrics,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_roc_curves,
    probabilities,
)
from kerasdl.evaluation.report import evaluate_model, format_report

# Three classes, eight samples; each predicted class gets probability 0.7, the other two 0.15.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PREDICTED = np.array([0, 0, 1, 1, 1, 2, 2, 0])
PROBS = np.full((8, 3), 0.15)
PROBS[np.arange(8), PREDICTED] = 0.7
NAMES = ("a", "b", "c")


def logits_of(probs: np.ndarray) -> np.ndarray:
    return np.log(probs).astype(np.float32)  # softmax(log p) = p when each row sums to 1


@pytest.fixture(scope="module")
def three_class():
    return classification_metrics(Y_TRUE, logits_of(PROBS), NAMES)


def test_known_confusion_matrix_by_hand(three_class):
    m = three_class
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert m["test_accuracy"] == 6 / 8 and m["test_samples"] == 8 and m["class_names"] == list(NAMES)
    # Class b: predicted 3 times (once wrongly, sample 2), both true b's found.
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["c"]["precision"] == 1.0 and m["per_class"]["c"]["recall"] == pytest.approx(2 / 3)
    assert [m["per_class"][n]["support"] for n in NAMES] == [3, 2, 3]
    assert m["macro_avg"]["precision"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["weighted_avg"]["precision"] == pytest.approx((3 * 2 / 3 + 2 * 2 / 3 + 3 * 1) / 8)
    # Cross-entropy: six samples put 0.7 on the true class, two put 0.15.
    assert m["test_loss"] == pytest.approx(-(6 * math.log(0.7) + 2 * math.log(0.15)) / 8, rel=1e-5)
    # One-vs-rest AUC of class b: its two positives score 0.7; of six negatives one scores 0.7 (a tie, 1/2).
    assert m["per_class"]["b"]["roc_auc"] == pytest.approx(11 / 12)
    assert m["per_class"]["a"]["roc_auc"] == pytest.approx(11 / 15)
    assert m["per_class"]["c"]["roc_auc"] == pytest.approx(12.5 / 15)
    assert m["test_roc_auc"] == pytest.approx((11 / 15 + 11 / 12 + 12.5 / 15) / 3)
    assert not any(key.startswith("test_top") for key in m)  # 3 classes: top-k would say nothing


def test_metrics_match_scikit_learn(three_class):
    precision, recall, f1, _ = sk.precision_recall_fscore_support(Y_TRUE, PREDICTED)
    for i, name in enumerate(NAMES):
        assert three_class["per_class"][name]["precision"] == pytest.approx(precision[i])
        assert three_class["per_class"][name]["recall"] == pytest.approx(recall[i])
        assert three_class["per_class"][name]["f1"] == pytest.approx(f1[i])
    assert three_class["weighted_avg"]["f1"] == pytest.approx(sk.f1_score(Y_TRUE, PREDICTED, average="weighted"))
    assert three_class["test_roc_auc"] == pytest.approx(sk.roc_auc_score(Y_TRUE, PROBS, multi_class="ovr"))
    assert three_class["test_loss"] == pytest.approx(sk.log_loss(Y_TRUE, PROBS), rel=1e-5)


def test_binary_roc_auc_is_the_positive_class_score():
    positive = np.array([0.1, 0.4, 0.35, 0.8])  # scikit-learn's documented example: AUC 0.75
    m = classification_metrics(np.array([0, 0, 1, 1]), logits_of(np.stack([1 - positive, positive], 1)), ("no", "yes"))
    assert m["test_roc_auc"] == pytest.approx(0.75)
    assert m["per_class"]["yes"]["roc_auc"] == m["per_class"]["no"]["roc_auc"] == pytest.approx(0.75)
    assert m["per_class"]["yes"]["recall"] == 0.5 and m["per_class"]["yes"]["precision"] == 1.0


def test_top_k_with_more_than_five_classes():
    ranks = [1, 2, 4, 6]  # where each sample's true class stands among its 7 logits
    logits = np.tile(np.arange(7, 0, -1, dtype=np.float32), (4, 1))  # class 0 ranks first, class 6 last
    labels = np.array([rank - 1 for rank in ranks])
    m = classification_metrics(labels, logits, tuple("abcdefg"))
    assert m["test_top3_accuracy"] == 0.5 and m["test_top5_accuracy"] == 0.75
    assert m["test_top5_accuracy"] == sk.top_k_accuracy_score(labels, logits, k=5, labels=range(7))


def test_undefined_roc_auc_is_null_in_json():
    y = np.array([0, 1, 0, 1])  # class "c" never occurs: its one-vs-rest AUC is undefined
    m = classification_metrics(y, logits_of(np.full((4, 3), 1 / 3)), NAMES)
    assert m["per_class"]["c"]["roc_auc"] is None and m["test_roc_auc"] is None
    assert m["per_class"]["a"]["roc_auc"] == 0.5
    json.dumps(m, allow_nan=False)


def test_report_prints_every_metric(three_class):
    text = format_report(three_class)
    assert text.startswith("test accuracy 0.7500, loss ")
    assert "ROC-AUC (one-vs-rest, macro)" in text and "(8 samples)" in text
    assert "macro avg" in text and "weighted avg" in text and "confusion matrix:" in text
    row_b = next(line.split() for line in text.splitlines() if line.startswith("b "))
    assert row_b == ["b", "0.6667", "1.0000", "0.8000", "2", "0.9167"]


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    assert matplotlib.image.imread(path).shape[0] > 100


def test_plots_are_written(tmp_path):
    history = [{"epoch": str(e), "loss": str(1 / (e + 1)), "val_loss": str(1.2 / (e + 1)),
                "accuracy": str(e / 3), "val_accuracy": str(e / 4)} for e in range(3)]
    assert_png(plot_learning_curves(history, tmp_path / "learning_curves.png"))
    assert_png(plot_confusion_matrix([[2, 1, 0], [0, 2, 0], [1, 0, 2]], list(NAMES), tmp_path / "cm.png"))
    assert_png(plot_roc_curves(Y_TRUE, PROBS, list(NAMES), tmp_path / "roc.png"))
    binary = probabilities(np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.1]]))
    assert_png(plot_roc_curves(np.array([1, 0, 1]), binary, ["no", "yes"], tmp_path / "roc_binary.png"))


def test_evaluate_model_writes_its_plots(digits_runs, tmp_path):
    metrics = evaluate_model(digits_runs["fit"].model, load("digits"), tmp_path, plot_suffix="_x")
    assert_png(tmp_path / "confusion_matrix_x.png")
    assert_png(tmp_path / "roc_curve_x.png")
    assert metrics == {k: v for k, v in digits_runs["fit"].metrics.items() if k in metrics}


def test_training_metrics_json_has_the_full_evaluation(digits_runs):
    m = digits_runs["fit"].run.read_metrics()
    for key in ("test_accuracy", "test_loss", "confusion_matrix", "class_names", "test_samples", "data"):
        assert key in m
    assert m["test_top3_accuracy"] >= m["test_accuracy"] and m["test_top5_accuracy"] >= m["test_top3_accuracy"]
    assert m["test_roc_auc"] > 0.95 and set(m["per_class"]) == set(m["class_names"])
    assert sum(row["support"] for row in m["per_class"].values()) == m["test_samples"] == 360


def test_evaluate_command_prints_and_writes_the_report(digits_runs, tmp_path, capsys):
    run_dir = shutil.copytree(digits_runs["fit"].run.path, tmp_path / "run")
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy 0." in out and "weighted avg" in out and "top-5" in out
    saved = json.loads((run_dir / "evaluation_digits.json").read_text())
    assert saved["per_class"]["3"]["support"] == 37 and saved["macro_avg"]["f1"] > 0.9
    assert_png(run_dir / "plots" / "roc_curve_digits.png")
    assert_png(run_dir / "plots" / "confusion_matrix_digits.png")
