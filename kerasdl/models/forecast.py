"""Recurrent forecasters: past days (sequence_length, 1) -> LSTM or GRU layer(s) -> Dense(horizon) next days.

Inputs and outputs are normalized with the training split's mean and std (kerasdl.data.series); the
forecasting task turns outputs back into degrees. `info.num_classes` is the horizon (one output per day ahead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

# XLA compiles the recurrent loop slowly on CPU: 5 epochs of gru-forecast (tape, horizon 7) took 52 s with it,
# 23 s without (train_seconds, this machine).
JIT_COMPILE = False
LESSON = "Stage 3: RNNs, LSTMs, GRUs (time-series forecasting: daily minimum temperatures)"


def recurrent_forecaster(
    info: DatasetInfo, cell: type[keras.layers.Layer], name: str, units: int, layers: int, dropout: float
) -> keras.Model:
    """`layers` stacked recurrent layers of `units` (each but the last returns its whole sequence), dropout
    after each, and a linear Dense with one output per forecast step."""
    if layers < 1 or units < 1:
        raise KerasdlError(f"units and layers must be >= 1, got units={units}, layers={layers}")
    inputs = keras.Input(shape=info.input_shape, name="series")
    x = inputs
    for depth in range(1, layers + 1):
        x = cell(units, return_sequences=depth < layers, name=f"{cell.__name__.lower()}_{depth}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{depth}")(x)
    forecast = keras.layers.Dense(info.num_classes, dtype="float32", name="forecast")(x)
    return keras.Model(inputs, forecast, name=name)


def forecast_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Width, depth and dropout of the recurrent stack, and learning rate; defaults are the builders' (one layer
    of 32, no dropout) and Adam's 1e-3."""
    return {
        "model_params": {
            "units": hp.Choice("units", [16, 32, 64, 128], default=32),
            "layers": hp.Int("layers", 1, 2, default=1),
            "dropout": hp.Choice("dropout", [0.0, 0.1, 0.2], default=0.0),
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "lstm-forecast", family="forecast", task="forecasting", default_data="daily-min-temperatures", lesson=LESSON,
    search_space=forecast_search_space, jit_compile=JIT_COMPILE,
)
def build_lstm_forecast(info: DatasetInfo, units: int = 32, layers: int = 1, dropout: float = 0.0) -> keras.Model:
    """LSTM forecaster: the next `horizon` days from the past `sequence_length` (normalized values)."""
    return recurrent_forecaster(info, keras.layers.LSTM, "lstm_forecaster", units, layers, dropout)


@register_model(
    "gru-forecast", family="forecast", task="forecasting", default_data="daily-min-temperatures", lesson=LESSON,
    search_space=forecast_search_space, jit_compile=JIT_COMPILE,
)
def build_gru_forecast(info: DatasetInfo, units: int = 32, layers: int = 1, dropout: float = 0.0) -> keras.Model:
    """GRU forecaster: the next `horizon` days from the past `sequence_length` (normalized values)."""
    return recurrent_forecaster(info, keras.layers.GRU, "gru_forecaster", units, layers, dropout)
