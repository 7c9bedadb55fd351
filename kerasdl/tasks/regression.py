"""Regression: one number per row of a table (`--data my.csv --target COLUMN`), such as a price or a dose.

Training minimizes the MSE of the standardized target (the training split's mean and std, kerasdl.data.tabular);
evaluation reports errors in the target's own unit: MAE (`test_mae`, the headline), MSE, RMSE and R^2 on the
test rows, beside the baseline a model must beat: predicting the training mean for every row. Its plot is the
test rows' predicted against true values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl.data import DataBundle
from kerasdl.data.tabular import TabularBundle
from kerasdl.errors import KerasdlError
from kerasdl.tasks.base import Bound, ParityTargets, Task, predict, register_task

FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4),))  # standardized units
# Quantized artifacts: how much the artifact's own test MAE may exceed Keras's, as a share of it. Measured on
# mlp-regressor, diabetes CSV (seed 0, test MAE 48.82): int8 -0.06%, dynamic range +0.02%, fp16 0.00%.
QUANTIZED_TARGETS = ParityTargets((Bound("relative_mae_increase", 0.05),))


class Regression(Task):
    name = "regression"
    main_metric = "test_mae"
    objective = "val_mae"  # standardized units: the target's std times smaller, ranked the same
    log_names = ("mae",)  # standardized units during training; test_mae is in the target's unit
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS

    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> TabularBundle:
        """The table with its target read as a number."""
        if params:
            raise KerasdlError(f"regression takes no task options; got {', '.join(sorted(params))}")
        if not isinstance(data, TabularBundle):
            raise KerasdlError(
                f"regression predicts a column of a table: give --data FILE.csv --target COLUMN (data set "
                f"{data.info.name!r} is not a table)"
            )
        return data.as_regression()

    def loss(self) -> keras.losses.Loss:
        return keras.losses.MeanSquaredError()

    def metrics(self) -> list[Any]:
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def batch_logs(self, targets, outputs):
        import tensorflow as tf

        return {"mae": tf.reduce_mean(tf.abs(targets - outputs))}

    def evaluate(
        self, model: keras.Model, data: DataBundle, params: dict[str, Any], plots_dir: Path | None, suffix: str = ""
    ) -> dict[str, Any]:
        """Errors in the target's unit on the test rows, and the training-mean baseline's; with `plots_dir`,
        predicted vs true."""
        x, y = data.split("test")
        outputs = predict(model, x)
        truth, predicted = data.values(y).ravel(), data.values(outputs).ravel()
        metrics: dict[str, Any] = {
            "test_loss": float(np.mean(np.square(outputs - y))),
            "test_samples": int(len(y)),
            "target": data.info.class_names[0],
            **errors("test", predicted, truth),
            "test_baseline_mae": float(np.mean(np.abs(truth - data.preparation.target_mean))),
            "imputed_training_cells": data.preparation.imputed,
        }
        if plots_dir is not None:
            plot_predicted_vs_true(truth, predicted, metrics["target"], plots_dir / f"predicted_vs_true{suffix}.png")
        return metrics

    def headline(self, metrics: dict[str, Any]) -> str:
        return (
            f"mae {metrics['test_mae']:.4g} (training-mean baseline {metrics['test_baseline_mae']:.4g}), "
            f"rmse {metrics['test_rmse']:.4g}, R^2 {metrics['test_r2']:.3f}, loss {metrics['test_loss']:.4f}"
        )

    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs difference of the standardized outputs, and both test MAEs in the target's unit."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives outputs of shape {outputs.shape}, Keras {reference.shape}")
        truth = data.values(data.labels("test")).ravel()
        mae, keras_mae = (float(np.mean(np.abs(data.values(o).ravel() - truth))) for o in (outputs, reference))
        return {
            "samples": int(len(reference)),
            "max_abs_diff": float(np.max(np.abs(reference - outputs))),
            "mae": mae,
            "keras_mae": keras_mae,
            "relative_mae_increase": (mae - keras_mae) / keras_mae if keras_mae else 0.0,
        }

    def preprocessing(self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
        """The output is the standardized target: value = output * target_std + target_mean."""
        spec = super().preprocessing(data, input_name, input_dtype, shape)
        prep = data.preparation
        return {**spec, "output": "standardized value", "target": prep.target, "target_mean": prep.target_mean,
                "target_std": prep.target_std}

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return f"max |output diff| {measured['max_abs_diff']:.3g}, test mae {measured['mae']:.4g} (Keras {measured['keras_mae']:.4g})"


def errors(prefix: str, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """MAE, MSE, RMSE and R^2 (1 - residual / total sum of squares about the truth's mean) as `<prefix>_<name>`."""
    residual = predicted - truth
    mse = float(np.mean(np.square(residual)))
    total = float(np.sum(np.square(truth - truth.mean())))
    r2 = 1.0 - float(np.sum(np.square(residual))) / total if total else 0.0
    return {f"{prefix}_mae": float(np.mean(np.abs(residual))), f"{prefix}_mse": mse, f"{prefix}_rmse": mse**0.5,
            f"{prefix}_r2": r2}


def plot_predicted_vs_true(truth: np.ndarray, predicted: np.ndarray, target: str, path: Path) -> Path:
    """Each test row as a point (true, predicted); a perfect model puts them all on the diagonal."""
    import matplotlib.pyplot as plt

    from kerasdl.evaluation.plots import _save

    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(truth, predicted, s=12, alpha=0.7)
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="predicted = true")
    ax.set(title=f"test rows: predicted vs true {target}", xlabel=f"true {target}", ylabel=f"predicted {target}")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


REGRESSION = register_task(Regression())
