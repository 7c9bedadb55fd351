"""Forecasting Melbourne's daily minimum temperature: the date split, normalization, windows, the baselines,
LSTM and GRU forecasters against them on the 1990 test year, and the exported model run by the edge runner."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from kerasdl.data import SPLITS, load
from kerasdl.data import series as series_module
from kerasdl.data.series import DailySeries, load_daily_min_temperatures
from kerasdl.errors import DataError, KerasdlError
from kerasdl.tasks.forecasting import FORECASTING, ahead, mae, mae_by_step, persistence, rmse, seasonal_naive

SERIES = "daily-min-temperatures"
WINDOW = 30  # the default sequence_length
# Small runs that still beat both baselines by a wide margin (measured: one-step LSTM MAE 1.76-1.82 degrees vs
# persistence 2.02 and seasonal naive 2.87; 7-step GRU 2.06 vs 2.68 and 2.88).
FAST = {"epochs": 5, "batch_size": 128, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def bundle():
    return load(SERIES)


def _data_file():
    from kerasdl.data import data_root

    return data_root() / SERIES / f"{SERIES}.csv"


def csv_rows(path) -> list[tuple[str, float]]:
    with open(path) as f:
        return [(date, float(value)) for date, value in list(csv.reader(f))[1:]]


# --- data ----------------------------------------------------------------------------------------------------
def test_split_by_date_on_a_complete_calendar(bundle):
    dates, bounds = bundle.series.dates, bundle.series.bounds()
    expected = {"train": ("1981-01-01", "1988-12-31"), "validation": ("1989-01-01", "1989-12-31"),
                "test": ("1990-01-01", "1990-12-31")}
    for split, (first, last) in expected.items():
        start, end = bounds[split]
        assert (str(dates[start]), str(dates[end - 1])) == (first, last)
        assert end - start == (np.datetime64(last) - np.datetime64(first)).astype(int) + 1  # every calendar day
    # The two absent days are filled with the mean of their neighbours; the 3,650 others are the file's values.
    filled = np.flatnonzero(bundle.series.filled)
    assert [str(dates[day]) for day in filled] == ["1984-12-31", "1988-12-31"]
    values = bundle.series.values
    assert values[filled] == pytest.approx((values[filled - 1] + values[filled + 1]) / 2)
    rows = csv_rows(_data_file())
    assert np.array_equal(values[~bundle.series.filled], np.float32([value for _, value in rows]))
    # A window per target day, but training's first needs WINDOW days before it; the held-out years keep all.
    assert bundle.info.split_sizes == {"train": 2922 - WINDOW, "validation": 365, "test": 365}
    assert bundle.info.input_shape == (WINDOW, 1)


def test_normalization_uses_the_training_years_only(bundle):
    train = [value for date, value in csv_rows(_data_file()) if date < "1989"]
    assert bundle.mean == pytest.approx(np.mean(train)) and bundle.std == pytest.approx(np.std(train))
    series = bundle.series
    test_start = series.bounds()["test"][0]
    hotter = DailySeries(series.start, series.values + 10 * (np.arange(len(series.values)) >= test_start),
                         series.filled, series.split_starts, series.unit)
    again = hotter.bundle(SERIES, validation_fraction=0.1, seed=0, image_size=None)
    constant = DailySeries(series.start, np.ones_like(series.values), series.filled, series.split_starts, series.unit)
    with pytest.raises(DataError, match="constant series"):
        constant.bundle(SERIES, validation_fraction=0.1, seed=0, image_size=None)
    assert (again.mean, again.std) == (bundle.mean, bundle.std)
    assert bundle.state() == {"mean": bundle.mean, "std": bundle.std}
    assert bundle.runner_input() == {"kind": "series", "mean": bundle.mean, "std": bundle.std}
    restored = again.restored({"mean": 0.0, "std": 2.0})
    assert restored.windows("test")[1][0, 0] == pytest.approx(series.values[test_start] / 2.0 + 5.0)


def test_windows_end_the_day_before_their_targets(bundle):
    weekly = FORECASTING.adapt_data(bundle, {"horizon": 7})
    normalized = weekly.normalized(weekly.series.values)
    for split in SPLITS:
        x, y = weekly.windows(split)
        days = weekly.target_days(split)
        assert x.shape == (len(days), WINDOW, 1) and y.shape == (len(days), 7)
        for i in (0, len(days) // 2, len(days) - 1):
            assert np.array_equal(x[i, :, 0], normalized[days[i] - WINDOW : days[i]])
            assert np.array_equal(y[i], normalized[days[i] : days[i] + 7])
        start, end = weekly.series.bounds()[split]
        assert days[0] >= start and days[-1] + 7 == end  # every target inside the split
    dates = weekly.series.dates
    first = weekly.target_days("test")[0]
    assert str(dates[first]) == "1990-01-01" and str(dates[first - WINDOW]) == "1989-12-02"  # inputs reach into 1989
    shuffled = np.concatenate([y for _, y in weekly.dataset("train", 256, shuffle_seed=0).as_numpy_iterator()])
    assert not np.array_equal(shuffled, weekly.labels("train"))
    assert np.array_equal(np.sort(shuffled, axis=0), np.sort(weekly.labels("train"), axis=0))


def test_baselines_on_a_hand_checked_series():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    days = np.array([4, 5])  # first targets 5.0 and 6.0, two days ahead
    truth = ahead(values, days, 2)
    assert truth.tolist() == [[5, 6], [6, 7]]
    assert persistence(values, days, 2).tolist() == [[4, 4], [5, 5]]  # the last observed day, every step
    assert seasonal_naive(values, days, 2, season=4).tolist() == [[1, 2], [2, 3]]  # four days earlier
    assert mae(persistence(values, days, 2), truth) == 1.5
    assert rmse(persistence(values, days, 2), truth) == pytest.approx(np.sqrt(2.5))
    assert mae_by_step(persistence(values, days, 2), truth) == [1.0, 2.0]
    with pytest.raises(KerasdlError, match="needs 5 days"):
        seasonal_naive(values, days, 2, season=5)


@pytest.mark.parametrize("content, message", [
    ("Temp\n1.0\n", "header of two columns"),
    ("Date,Temp\n1981-01-01,20.7\n1981-13-02,17.9\n", r":3: expected 'YYYY-MM-DD,number'"),
    ("Date,Temp\n1981-01-01,20.7\n1981-01-02,nan\n", "not a finite number"),
    ("Date,Temp\n1981-01-02,20.7\n1981-01-01,17.9\n", "days must increase"),
    ("Date,Temp\n1981-01-01,20.7\n1981-02-01,17.9\n", "30 days are absent after 1981-01-01"),
    ("Date,Temp\n1981-01-01,20.7\n1981-01-02,17.9\n", "no split can start on 1989-01-01"),
    ("Date,Temp\n", "has no rows"),
])
def test_a_corrupt_csv_fails_in_one_line(tmp_path, content, message):
    (tmp_path / SERIES).mkdir()
    (tmp_path / SERIES / f"{SERIES}.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        load_daily_min_temperatures(tmp_path)


def test_a_missing_csv_is_downloaded_or_named(tmp_path, monkeypatch):
    monkeypatch.setattr(series_module, "TEMPERATURES_URL", (tmp_path / "nowhere.csv").as_uri())
    with pytest.raises(DataError, match="is missing and could not be downloaded from file:"):
        load_daily_min_temperatures(tmp_path)


def test_task_params_and_data_are_checked(bundle):
    for params, message in [({"horizon": 0}, "horizon must be"), ({"window": 3}, "unknown forecasting task param"),
                            ({"sequence_length": 4000}, "leave no train window")]:
        with pytest.raises(KerasdlError, match=message):
            FORECASTING.adapt_data(bundle, params)
    with pytest.raises(KerasdlError, match="forecasting needs a time series"):
        FORECASTING.adapt_data(load("digits"), {})
    with pytest.raises(KerasdlError, match="is a time series; drop --image-size"):
        load(SERIES, image_size=32)


def test_stacked_recurrent_layers_end_in_one_output_per_day_ahead(bundle):
    from kerasdl.registry import model_spec

    info = FORECASTING.adapt_data(bundle, {"horizon": 7, "sequence_length": 14}).info
    model = model_spec("gru-forecast").build(info, units=8, layers=2, dropout=0.2)
    assert [layer.name for layer in model.layers] == ["series", "gru_1", "dropout_1", "gru_2", "dropout_2", "forecast"]
    assert model.get_layer("gru_1").return_sequences and not model.get_layer("gru_2").return_sequences
    assert model.output_shape == (None, 7) and model.input_shape == (None, 14, 1)
    with pytest.raises(KerasdlError, match="layers must be >= 1"):
        model_spec("lstm-forecast").build(info, layers=0)


# --- models against the baselines, and on the edge ---------------------------------------------------------
@pytest.fixture(scope="module")
def one_step(tmp_path_factory):
    from kerasdl.training import TrainConfig, train

    return train(TrainConfig("lstm-forecast", **FAST), out=tmp_path_factory.mktemp("lstm-h1"), verbose=0)


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    from kerasdl.training import TrainConfig, train

    config = TrainConfig("gru-forecast", loop="tape", task_params={"horizon": 7}, **FAST)
    return train(config, out=tmp_path_factory.mktemp("gru-h7"), verbose=0)


def test_lstm_beats_both_baselines_one_day_ahead(one_step):
    metrics = json.loads(one_step.run.metrics_path.read_text())
    assert metrics["test_days"] == ["1990-01-01", "1990-12-31"] and metrics["test_samples"] == 365
    assert metrics["test_persistence_mae"] == pytest.approx(2.025, abs=1e-3)  # independent of the model
    assert metrics["test_mae"] < metrics["test_persistence_mae"] - 0.1
    assert metrics["test_mae"] < metrics["test_seasonal_naive_mae"] - 0.5
    assert metrics["test_rmse"] < metrics["test_persistence_rmse"]
    assert (one_step.run.plots_dir / "forecast.png").is_file()
    assert not (one_step.run.plots_dir / "error_by_step.png").exists()


def test_gru_tape_loop_beats_both_baselines_a_week_ahead(weekly):
    metrics = weekly.metrics
    assert metrics["loop"] == "tape" and metrics["horizon"] == 7 and metrics["test_samples"] == 365 - 6
    assert metrics["test_days"] == ["1990-01-01", "1990-12-31"]  # the last window's last target
    assert metrics["test_mae"] < metrics["test_persistence_mae"] - 0.3
    assert metrics["test_mae"] < metrics["test_seasonal_naive_mae"] - 0.3
    by_step = metrics["test_mae_by_step"]
    assert len(by_step) == 7 and by_step[0] < by_step[-1]  # tomorrow is easier than next week
    assert all(model < naive for model, naive in zip(by_step, metrics["test_seasonal_naive_mae_by_step"]))
    assert (weekly.run.plots_dir / "error_by_step.png").is_file()


def test_evaluate_reloads_the_run_with_its_mean_and_std(one_step):
    from kerasdl.evaluation.report import evaluate_run

    metrics, _ = evaluate_run(str(one_step.run.path))
    assert metrics["test_mae"] == pytest.approx(one_step.metrics["test_mae"], abs=1e-5)


def test_tflite_export_and_runner_match_keras(one_step, tmp_path, capsys):
    from kerasdl.cli import main
    from kerasdl.export.exporter import export_run

    result = export_run(one_step.run.path, "tflite", out=tmp_path / "tflite", latency_runs=5)
    report = result.report
    assert report["builtin_ops_only"] and report["targets"]["met"], report["targets"]
    assert report["parity"]["max_abs_diff"] < 1e-4 and report["parity"]["mae"] == pytest.approx(
        one_step.metrics["test_mae"], abs=1e-3)
    spec = json.loads((tmp_path / "tflite" / "preprocessing.json").read_text())
    state = json.loads((one_step.run.path / "data_state.json").read_text())
    assert spec["input"] == {"name": "series", "shape": [WINDOW, 1], "dtype": "float32", "kind": "series", **state}
    assert (spec["task"], spec["horizon"], spec["unit"]) == ("forecasting", 1, "degrees C")

    rows = csv_rows(_data_file())[-WINDOW:]  # the last 30 days of 1990: forecast 1991-01-01
    temps = tmp_path / "temps.csv"
    temps.write_text("Date,Temp\n" + "".join(f"{date},{value}\n" for date, value in rows))
    assert main(["infer", str(result.artifact), "--input", str(temps), "--json"]) == 0
    forecast = json.loads(capsys.readouterr().out)["forecast"]
    window = (np.float32([value for _, value in rows]) - state["mean"]) / state["std"]
    expected = one_step.model.predict(window.reshape(1, WINDOW, 1).astype(np.float32), verbose=0)[0]
    assert forecast == pytest.approx(expected * state["std"] + state["mean"], abs=1e-3)


def test_served_forecast_equals_the_runners_and_too_few_values_are_refused(one_step, tmp_path, capsys):
    from kerasdl.cli import main
    from kerasdl.export.exporter import export_run
    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    artifact = export_run(one_step.run.path, "tflite", out=tmp_path / "tflite", latency_runs=1).artifact
    client = create_app(ModelRepository.load(artifact.parent)).test_client()
    name = client.get("/v1/models").json["models"][0]["name"]
    rows = csv_rows(_data_file())[-(WINDOW + 10):]  # more than a window: both read the last WINDOW values
    served = client.post(f"/v1/models/{name}:predict", json={"inputs": [value for _, value in rows]})
    assert served.status_code == 200, served.json
    temps = tmp_path / "temps.csv"
    temps.write_text("Date,Temp\n" + "".join(f"{date},{value}\n" for date, value in rows))
    capsys.readouterr()
    assert main(["infer", str(artifact), "--input", str(temps), "--json"]) == 0
    runner = json.loads(capsys.readouterr().out)
    assert served.json["forecast"] == runner["forecast"], "the served forecast differs from the runner's"
    assert (served.json["window"], served.json["unit"]) == (WINDOW, "degrees C")

    refused = client.post(f"/v1/models/{name}:predict", json={"inputs": [10.0] * (WINDOW - 1)})
    assert refused.status_code == 400 and f"at least {WINDOW} values" in refused.json["error"], refused.json
