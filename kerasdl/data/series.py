"""Time series: Melbourne's daily minimum temperatures as a `SeriesBundle` of sliding windows, split by date.

A forecaster sees `sequence_length` past days, normalized with the training years' mean and std, and predicts
the next `horizon` days. The series is first put on a complete daily calendar: the source lacks two days
(1984-12-31 and 1988-12-31), which are filled by linear interpolation between their neighbours, so every
window spans consecutive days and "a year earlier" is always 365 days back. Both filled days fall in the
training years; a gap longer than MAX_GAP_DAYS is refused rather than invented. Splits are by date and never
shuffled: a split's windows have all their targets inside it, while their inputs may reach back into the
split before (the first test window reads the last days of 1989).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kerasdl.data.base import DatasetInfo, register_dataset
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.errors import DataError, KerasdlError

DEFAULT_SEQUENCE_LENGTH = 30  # past days a window shows the model
DEFAULT_HORIZON = 1  # days it predicts
MAX_GAP_DAYS = 7  # longest run of absent days that interpolation may fill
TEMPERATURES = "daily-min-temperatures"
TEMPERATURES_FILE = f"{TEMPERATURES}.csv"
TEMPERATURES_URL = f"https://raw.githubusercontent.com/selva86/datasets/master/{TEMPERATURES_FILE}"
TEMPERATURES_SHA256 = "a29a71f38cf548a0b12bee44ceb510919a8cef450e19019261d534208c884fa2"
TEMPERATURES_SPLITS = ("1989-01-01", "1990-01-01")  # validation and test start: train 1981-1988, 1989, 1990


@dataclass(frozen=True)
class DailySeries:
    """What a series source returns: one value per calendar day (gaps filled) and the days splits start on."""

    start: np.datetime64  # the first day
    values: np.ndarray  # float32, one per day
    filled: np.ndarray  # bool: days the source lacked, interpolated
    split_starts: tuple[str, str]  # ISO days the validation and the test split start on
    unit: str

    @property
    def dates(self) -> np.ndarray:
        return self.start + np.arange(len(self.values))

    def day(self, iso: str) -> int:
        """The index of an ISO date."""
        return int((np.datetime64(iso, "D") - self.start).astype(int))

    def bounds(self) -> dict[str, tuple[int, int]]:
        """Each split's [first, end) days."""
        validation, test = (self.day(iso) for iso in self.split_starts)
        return {"train": (0, validation), "validation": (validation, test), "test": (test, len(self.values))}

    def bundle(self, name: str, *, validation_fraction: float, seed: int, image_size: int | None) -> SeriesBundle:
        """The windows with the defaults; the split is by date, so `validation_fraction` and `seed` do not apply."""
        if image_size is not None:
            raise KerasdlError(f"data set {name!r} is a time series; drop --image-size")
        days = slice(*self.bounds()["train"])
        train = self.values[days][~self.filled[days]].astype(np.float64)  # the days measured, not those filled in
        if not train.std() > 0:
            raise DataError(f"{name}: the training days are all {train[0]:g}; a constant series cannot be normalized")
        return SeriesBundle(name, self, float(train.mean()), float(train.std()), DEFAULT_SEQUENCE_LENGTH,
                            DEFAULT_HORIZON)


@dataclass(frozen=True)
class SeriesBundle(DataBundle):
    """Windows of a normalized daily series: inputs (sequence_length, 1), targets (horizon,), both normalized."""

    name: str
    series: DailySeries
    mean: float  # of the training split, as its std: what the run keeps (`state`)
    std: float
    sequence_length: int
    horizon: int
    _windows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for split in SPLITS:
            if len(self.target_days(split)) < 1:
                first, end = self.series.bounds()[split]
                raise KerasdlError(
                    f"{self.name}: sequence_length {self.sequence_length} and horizon {self.horizon} leave no "
                    f"{split} window ({end - first} days)"
                )

    @property
    def info(self) -> DatasetInfo:
        """The outputs are the forecast steps: `num_classes` is the horizon, named t+1...t+horizon."""
        steps = tuple(f"t+{step}" for step in range(1, self.horizon + 1))
        return DatasetInfo(
            name=self.name,
            input_shape=(self.sequence_length, 1),
            num_classes=self.horizon,
            class_names=steps,
            split_sizes={split: len(self.target_days(split)) for split in SPLITS},
            pixel_max=0.0,
        )

    def with_windows(self, sequence_length: int, horizon: int) -> SeriesBundle:
        return dataclasses.replace(self, sequence_length=sequence_length, horizon=horizon, _windows={})

    # --- what the run keeps, and what the edge runner needs ----------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def restored(self, state: dict[str, Any] | None) -> SeriesBundle:
        if not state:
            return self
        values = [state.get(key) if isinstance(state, dict) else None for key in ("mean", "std")]
        if not all(type(v) in (int, float) and math.isfinite(v) for v in values) or values[1] <= 0:
            raise DataError(f"a series run's data_state.json needs a finite mean and a positive std, got {state!r:.80}")
        return dataclasses.replace(self, mean=float(values[0]), std=float(values[1]), _windows={})

    def runner_input(self) -> dict[str, Any]:
        return {"kind": "series", "mean": self.mean, "std": self.std}

    # --- days, values, windows ----------------------------------------------------------------------------
    def normalized(self, degrees: np.ndarray) -> np.ndarray:
        return ((degrees - self.mean) / self.std).astype(np.float32)

    def denormalized(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean

    def target_days(self, split: str) -> np.ndarray:
        """The day of each window's first target, in window order (inputs are the sequence_length days before)."""
        first, end = self.series.bounds()[self._checked(split)]
        return np.arange(max(first, self.sequence_length), end - self.horizon + 1)

    def windows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The split's (inputs (n, sequence_length, 1), targets (n, horizon)) in day order: windows of
        sequence_length + horizon days cut once by `keras.utils.timeseries_dataset_from_array` and held as arrays
        (a few thousand short windows; tf.data slicing them anew each epoch would be slower than the model)."""
        if split not in self._windows:
            import keras

            days, length = self.target_days(split), self.sequence_length
            span = self.normalized(self.series.values[days[0] - length : days[-1] + self.horizon])
            cut = keras.utils.timeseries_dataset_from_array(span, None, length + self.horizon, batch_size=len(days))
            windows = next(iter(cut)).numpy()
            self._windows[split] = windows[:, :length, None], windows[:, length:]
        return self._windows[split]

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        """Batches of (inputs, targets); reshuffled each epoch when seeded."""
        import tensorflow as tf

        x, y = self.windows(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def labels(self, split: str) -> np.ndarray:
        """The normalized targets (n, horizon)."""
        return self.windows(split)[1]

    def batches(self, split: str, batch_size: int = 256) -> Iterator[np.ndarray]:
        x = self.windows(split)[0]
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size]

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        return self.windows(split)[0][self.sample_indices(split, count, seed)]


# --- reading a daily series ------------------------------------------------------------------------------


def read_daily_csv(path: Path, split_starts: tuple[str, str], unit: str) -> DailySeries:
    """A `date,value` CSV with a header, one row per day in date order; absent days interpolated."""
    from kerasdl.data.text import csv_rows

    rows = csv_rows(path)
    if not rows or len(rows[0]) != 2:
        raise DataError(f"{path}: expected a header of two columns (date, value), got {rows[0] if rows else 'nothing'}")
    dates, values = [], []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            day, value = np.datetime64(row[0].strip(), "D"), float(row[1])
        except (ValueError, IndexError):
            raise DataError(f"{path}:{number}: expected 'YYYY-MM-DD,number', got {','.join(row)[:60]!r}") from None
        if not math.isfinite(value):
            raise DataError(f"{path}:{number}: the value {row[1]!r} is not a finite number")
        if dates and day <= dates[-1]:
            raise DataError(f"{path}:{number}: {day} does not follow {dates[-1]}; days must increase")
        dates.append(day)
        values.append(value)
    if not dates:
        raise DataError(f"{path} has no rows")
    series = _on_calendar(path, np.asarray(dates), np.asarray(values), split_starts, unit)
    starts = [series.day(iso) for iso in split_starts]
    for iso, day, previous in zip(split_starts, starts, [0, *starts]):
        if not previous < day < len(series.values):
            raise DataError(f"{path}: runs {dates[0]} to {dates[-1]}, so no split can start on {iso}")
    return series


def _on_calendar(
    path: Path, dates: np.ndarray, values: np.ndarray, split_starts: tuple[str, str], unit: str
) -> DailySeries:
    """One value per day from the first to the last; absent days linearly interpolated."""
    days = (dates - dates[0]).astype(int)
    gaps = np.diff(days) - 1
    if gaps.size and gaps.max() > MAX_GAP_DAYS:
        after = dates[int(gaps.argmax())]
        raise DataError(f"{path}: {gaps.max()} days are absent after {after}; at most {MAX_GAP_DAYS} are filled in")
    calendar = np.arange(days[-1] + 1)
    filled = np.ones(len(calendar), bool)
    filled[days] = False
    return DailySeries(dates[0], np.interp(calendar, days, values).astype(np.float32), filled, split_starts, unit)


@register_dataset(
    "daily-min-temperatures",
    description="Melbourne daily minimum temperature 1981-1990 (3,650 days): train 1981-88, validation 1989, test 1990",
    class_names=(),
    max_value=0.0,
)
def load_daily_min_temperatures(data_dir: Path) -> DailySeries:
    """`daily-min-temperatures/daily-min-temperatures.csv` under the data folder, downloaded when absent."""
    path = data_dir / TEMPERATURES / TEMPERATURES_FILE
    if not path.is_file():
        path = _download(path)
    return read_daily_csv(path, TEMPERATURES_SPLITS, "degrees C")


def _download(path: Path) -> Path:
    """Fetch the CSV from its source repository, checked against its sha256; where it landed (Keras falls back
    to /tmp/.keras when the data folder is read-only)."""
    import keras

    try:
        landed = keras.utils.get_file(
            path.name, TEMPERATURES_URL, file_hash=TEMPERATURES_SHA256, cache_dir=str(path.parent), cache_subdir="."
        )
        return Path(landed)
    except Exception as err:  # any network, disk or checksum failure means the same thing to the user
        raise DataError(
            f"{path} is missing and could not be downloaded from {TEMPERATURES_URL} ({type(err).__name__}); "
            "put the CSV there (or set KERASDL_DATA to its parent's parent folder)"
        ) from err
