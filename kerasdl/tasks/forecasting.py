"""Forecasting: the next `horizon` days of a series from its past `sequence_length` days.

Training minimizes the MSE of normalized values (the training split's mean and std); evaluation reports errors
in the series' unit (degrees C): the model's MAE (`test_mae`) and RMSE on the test year, next to two baselines
on the same targets that a forecaster must beat to be worth anything: persistence (every step ahead is the
last observed day) and seasonal naive (each day as it was SEASON_DAYS earlier).

Task params (`TrainConfig.task_params`):
  sequence_length  past days per window (default 30)
  horizon          days predicted ahead (default 1; e.g. 7 for a week)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasdl.data import DataBundle
from kerasdl.data.series import DEFAULT_HORIZON, DEFAULT_SEQUENCE_LENGTH, SeriesBundle
from kerasdl.errors import KerasdlError
from kerasdl.tasks.base import Bound, ParityTargets, Task, predict, register_task

PARAMS = ("sequence_length", "horizon")
SEASON_DAYS = 365  # the seasonal naive lag: the same day a year earlier (the calendar has no gaps)
FLOAT_TARGETS = ParityTargets((Bound("max_abs_diff", 1e-4),))  # normalized units (x std: degrees)
# Quantized artifacts: bounded by how much the artifact's own test MAE exceeds Keras's, in degrees. Measured on
# lstm-forecast (10 epochs; horizon 1 / 7): int8 +0.0012 / -0.0004, dynamic range +0.0002 / +0.0000, fp16 +0.0000.
QUANTIZED_TARGETS = ParityTargets((Bound("mae_increase", 0.05),))


class Forecasting(Task):
    name = "forecasting"
    main_metric = "test_mae"
    # A search ranks trials by validation MAE: in normalized units, which only scale degrees by the training std.
    objective = "val_mae"
    objective_mode = "min"
    log_names = ("mae",)  # normalized units during training; test_mae is in the series' unit
    float_targets = FLOAT_TARGETS
    quantized_targets = QUANTIZED_TARGETS

    # --- data ----------------------------------------------------------------------------------------------
    def adapt_data(self, data: DataBundle, params: dict[str, Any]) -> SeriesBundle:
        """The series cut into windows of `sequence_length` past days and `horizon` days ahead."""
        if not isinstance(data, SeriesBundle):
            raise KerasdlError(
                f"forecasting needs a time series (daily-min-temperatures); data set {data.info.name!r} is not one"
            )
        return data.with_windows(*window(params))

    # --- training ------------------------------------------------------------------------------------------
    def loss(self) -> keras.losses.Loss:
        """MSE of normalized values. Huber (delta 1) measured the same: lstm-forecast, 10 epochs, test MAE 1.738
        (both) one day ahead, 2.046 vs 2.049 a week ahead; normalized errors rarely leave Huber's quadratic part."""
        return keras.losses.MeanSquaredError()

    def metrics(self) -> list[Any]:
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def batch_logs(self, targets, outputs):
        import tensorflow as tf

        return {"mae": tf.reduce_mean(tf.abs(targets - outputs))}

    # --- evaluation ----------------------------------------------------------------------------------------
    def check_data(self, model: keras.Model, data: DataBundle) -> None:
        super().check_data(model, data)
        if model.output_shape[-1] != data.info.num_classes:
            raise KerasdlError(
                f"model forecasts {model.output_shape[-1]} steps but the data's horizon is {data.info.num_classes}"
            )

    def evaluate(
        self, model: keras.Model, data: DataBundle, params: dict[str, Any], plots_dir: Path | None, suffix: str = ""
    ) -> dict[str, Any]:
        """MAE and RMSE in the series' unit of the model and both baselines on the test windows; per step ahead
        too when the horizon is longer than a day. Plots: forecast vs truth over the test split, error by step."""
        x, y = data.windows("test")
        days, outputs = data.target_days("test"), predict(model, x)
        truth = test_truth(data)
        forecasts = {"model": data.denormalized(outputs), **baselines(data, "test")}
        metrics: dict[str, Any] = {
            "test_loss": float(self.loss()(y, outputs)),
            "test_samples": int(len(y)),
            "sequence_length": data.sequence_length,
            "horizon": data.horizon,
            "unit": data.series.unit,
            "test_days": [str(data.series.dates[day]) for day in (days[0], days[-1] + data.horizon - 1)],
        }
        for name, forecast in forecasts.items():
            prefix = "test" if name == "model" else f"test_{name}"
            metrics[f"{prefix}_mae"], metrics[f"{prefix}_rmse"] = mae(forecast, truth), rmse(forecast, truth)
            if data.horizon > 1:
                metrics[f"{prefix}_mae_by_step"] = [round(value, 4) for value in mae_by_step(forecast, truth)]
        if plots_dir is not None:
            plot_forecast(data.series.dates[days], truth, forecasts["model"], data.series.unit, plots_dir / f"forecast{suffix}.png")
            if data.horizon > 1:
                plot_error_by_step({name: mae_by_step(f, truth) for name, f in forecasts.items()},
                                   data.series.unit, plots_dir / f"error_by_step{suffix}.png")
        return metrics

    def headline(self, metrics: dict[str, Any]) -> str:
        horizon = metrics["horizon"]
        days = "1 day ahead" if horizon == 1 else f"1-{horizon} days ahead"
        return (
            f"mae {metrics['test_mae']:.3f} {metrics['unit']} {days} "
            f"(persistence {metrics['test_persistence_mae']:.3f}, "
            f"seasonal naive {metrics['test_seasonal_naive_mae']:.3f}), "
            f"loss {metrics['test_loss']:.4f}"
        )

    # --- export --------------------------------------------------------------------------------------------
    def parity(self, reference: np.ndarray, outputs: np.ndarray, data: DataBundle) -> dict[str, Any]:
        """Max abs difference of the normalized forecasts (and in the unit), and both test MAEs in the unit."""
        if reference.shape != outputs.shape:
            raise ValueError(f"artifact gives forecasts of shape {outputs.shape}, Keras {reference.shape}")
        truth = test_truth(data)
        artifact_mae, keras_mae = mae(data.denormalized(outputs), truth), mae(data.denormalized(reference), truth)
        max_diff = float(np.max(np.abs(reference - outputs)))
        return {
            "samples": int(len(reference)),
            "max_abs_diff": max_diff,
            "max_abs_diff_unit": max_diff * data.std,
            "mae": artifact_mae,
            "keras_mae": keras_mae,
            "mae_increase": artifact_mae - keras_mae,
        }

    def preprocessing(
        self, data: DataBundle, input_name: str, input_dtype: str, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """The input's mean and std (the runner normalizes the last window with them); the output is the next
        `horizon` values, normalized (the runner maps them back with the same mean and std)."""
        spec = super().preprocessing(data, input_name, input_dtype, shape)
        del spec["class_names"]
        return {**spec, "output": "normalized forecast", "horizon": data.horizon, "unit": data.series.unit}

    def parity_summary(self, measured: dict[str, Any]) -> str:
        return (
            f"max |forecast diff| {measured['max_abs_diff_unit']:.3g}, "
            f"test mae {measured['mae']:.4f} (Keras {measured['keras_mae']:.4f})"
        )


# --- params ------------------------------------------------------------------------------------------------
def window(params: dict[str, Any]) -> tuple[int, int]:
    """(sequence_length, horizon) from the task params, checked."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise KerasdlError(f"unknown forecasting task param(s) {', '.join(unknown)}; known: {', '.join(PARAMS)}")
    values = params.get("sequence_length", DEFAULT_SEQUENCE_LENGTH), params.get("horizon", DEFAULT_HORIZON)
    for name, value in zip(PARAMS, values):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KerasdlError(f"{name} must be a whole number of days >= 1, got {value!r}")
    return values


# --- forecasts and their errors ------------------------------------------------------------------------------
def ahead(values: np.ndarray, days: np.ndarray, horizon: int) -> np.ndarray:
    """(windows, horizon): the values on each of `days` and the horizon - 1 days after it."""
    return values[days[:, None] + np.arange(horizon)]


def persistence(values: np.ndarray, days: np.ndarray, horizon: int) -> np.ndarray:
    """Every step ahead is the last observed value, the day before the first target."""
    return np.repeat(values[days - 1][:, None], horizon, axis=1)


def seasonal_naive(values: np.ndarray, days: np.ndarray, horizon: int, season: int = SEASON_DAYS) -> np.ndarray:
    """Each target day's value `season` days earlier."""
    if days.min() < season:
        raise KerasdlError(f"the seasonal naive forecast needs {season} days before the first target day")
    return ahead(values, days - season, horizon)


def test_truth(data: SeriesBundle) -> np.ndarray:
    """The test windows' targets in the series' unit."""
    return ahead(data.series.values, data.target_days("test"), data.horizon)


def baselines(data: SeriesBundle, split: str) -> dict[str, np.ndarray]:
    """Persistence and seasonal naive forecasts of the split's windows, in the series' unit."""
    days, values = data.target_days(split), data.series.values
    return {"persistence": persistence(values, days, data.horizon),
            "seasonal_naive": seasonal_naive(values, days, data.horizon)}


def mae(forecast: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(forecast - truth)))


def rmse(forecast: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(forecast - truth))))


def mae_by_step(forecast: np.ndarray, truth: np.ndarray) -> list[float]:
    """The MAE of each step ahead (t+1, t+2...)."""
    return [float(value) for value in np.mean(np.abs(forecast - truth), axis=0)]


# --- plots -------------------------------------------------------------------------------------------------
def plot_forecast(dates: np.ndarray, truth: np.ndarray, forecast: np.ndarray, unit: str, path: Path) -> Path:
    """The test days' values against the forecast one day ahead and, for longer horizons, the farthest ahead."""
    import matplotlib.pyplot as plt

    from kerasdl.evaluation.plots import _save

    horizon = truth.shape[1]
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot(dates, truth[:, 0], color="black", linewidth=1, label="observed")
    ax.plot(dates, forecast[:, 0], linewidth=1, label="forecast 1 day ahead")
    if horizon > 1:
        ax.plot(dates + horizon - 1, forecast[:, -1], linewidth=1, alpha=0.7, label=f"forecast {horizon} days ahead")
    ax.set(title="test forecast vs observed", ylabel=unit)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_error_by_step(errors: dict[str, list[float]], unit: str, path: Path) -> Path:
    """The MAE of each step ahead, per forecaster (the model and the baselines)."""
    import matplotlib.pyplot as plt

    from kerasdl.evaluation.plots import _save

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in errors.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name.replace("_", " "))
    ax.set(title="test MAE by days ahead", xlabel="days ahead", ylabel=f"MAE ({unit})")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


FORECASTING = register_task(Forecasting())
