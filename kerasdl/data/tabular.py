"""A table of features and a column to predict (`--data my.csv --target COLUMN`), as model inputs.

A CSV (or a TSV: .tsv, .txt) with a header row. Every column but the target is a feature: numeric when each
present cell is a number, else categorical. What the model sees is learned on the training split only and
saved with the run (`state()`, data_state.json), so evaluate, export and infer prepare rows as training did:

- a missing cell (empty, NA, NaN, null, ?) is imputed: a number by its column's training median, a category
  as one more category, MISSING; the count imputed per column is printed once and kept in the state;
- a number is standardized by the training mean and std; a category becomes one-hot over the training
  categories (one never seen in training: all zeros);
- classification: the target's values are the classes, split stratified; regression (`as_regression`, the
  regression task's data): the target must be a number, and is standardized too (its task reports errors
  back in the target's unit).

The row transform itself (imputation, one-hot, standardization) is the edge runner's `table_features`, fed
the saved columns: training, `kerasdl infer` and an exported model on a device prepare rows with one code.

The test split is fixed (TEST_FRACTION, FIXED_SPLIT_SEED), so every run on one file tests on the same rows;
the validation split follows the run's seed. `load` builds the classification bundle lazily, so a regression
task can turn it into its own (`as_regression`) before anything is split or fitted.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from kerasdl.data.base import DatasetInfo, register_dataset
from kerasdl.data.bundle import SPLITS, ArrayBundle, DataBundle
from kerasdl.edge.runner import (MISSING, RunnerError, category, is_missing, numbers, parse_table, shown,
                                 table_delimiter, table_features)
from kerasdl.errors import DataError, KerasdlError

MIN_ROWS = 10  # data rows a table needs: some to train on, at least one to validate and one to test
MIN_CLASS_ROWS = 3  # rows each class needs: one each for training, validation and test
TEST_FRACTION = 0.2
FIXED_SPLIT_SEED = 0  # the test split never depends on the run's seed


# --- reading ------------------------------------------------------------------------------------------------

def read_rows(path: Path) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, data rows) of a CSV/TSV, cells stripped, blank lines skipped; every row as wide as the header."""
    from kerasdl.data.text import read_utf8

    try:
        return parse_table(read_utf8(path), table_delimiter(path), path.name)
    except RunnerError as err:
        raise DataError(str(err)) from None


@dataclass(frozen=True)
class Table:
    """A table's header and rows of cells (strings), and the column to predict."""

    name: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    target: str

    @classmethod
    def of(cls, name: str, header: tuple[str, ...], rows: list[tuple[str, ...]], target: str) -> Table:
        """Checked: the target is a column, with a value in every row; every feature has some value."""
        if target not in header:
            raise DataError(f"{name} has no column {target!r}; its columns: {', '.join(map(shown, header))}")
        if len(header) < 2:
            raise DataError(f"{name} has no feature columns besides the target {target!r}")
        if len(rows) < MIN_ROWS:
            raise DataError(f"{name} has {len(rows)} data row(s); a model needs at least {MIN_ROWS} (train, validation, test)")
        table = cls(name, header, rows, target)
        lacking = [number for number, cell in enumerate(table.column(target), 1) if is_missing(cell)]
        if lacking:
            raise DataError(f"{name}: the target {target!r} is missing in {len(lacking)} row(s) (first: data row "
                            f"{lacking[0]}); fill or drop those rows")
        for column in table.features:
            if all(is_missing(cell) for cell in table.column(column)):
                raise DataError(f"{name}: column {column!r} is missing in every row; drop it")
        return table

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(name for name in self.header if name != self.target)

    def column(self, name: str, rows: np.ndarray | None = None) -> list[str]:
        """The cells of column `name` (of the rows at `rows`, or all)."""
        i = self.header.index(name)
        chosen = self.rows if rows is None else [self.rows[r] for r in rows]
        return [row[i] for row in chosen]

    def bundle(self, name: str, *, validation_fraction: float, seed: int, image_size: int | None) -> TabularBundle:
        """The classification bundle (a registered table's `BundleSource`); `as_regression` for the other."""
        if image_size is not None:
            raise KerasdlError(f"data set {name!r} is a table; drop --image-size")
        return TabularBundle(self, validation_fraction, seed)


def read_table(path: Path, target: str) -> Table:
    """The table in `path` with `target` as the column to predict."""
    return Table.of(path.name, *read_rows(path), target)


# --- what is learned on the training split ------------------------------------------------------------------

@dataclass(frozen=True)
class Numeric:
    """A numeric feature: missing cells take the training median, then (x - mean) / std."""

    name: str
    fill: float
    mean: float
    std: float

    @classmethod
    def fit(cls, name: str, values: np.ndarray) -> Numeric:
        present = values[~np.isnan(values)]
        if not len(present):
            raise DataError(f"column {name!r} has no value in the training split; drop it")
        fill = float(np.median(present))
        filled = np.where(np.isnan(values), fill, values)
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = float(filled.mean()), float(filled.std())
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise DataError(f"column {name!r} has values too large to standardize")
        return cls(name, fill, mean, std if std > 0 else 1.0)  # a constant column: all zeros


@dataclass(frozen=True)
class Categorical:
    """A categorical feature: one-hot over the training categories (MISSING among them when a cell was)."""

    name: str
    categories: tuple[str, ...]

    @classmethod
    def fit(cls, name: str, cells: list[str]) -> Categorical:
        return cls(name, tuple(sorted({category(cell) for cell in cells})))


Column = Union[Numeric, Categorical]


@dataclass(frozen=True)
class Preparation:
    """Everything a run keeps to turn rows into model inputs and targets (data_state.json's "tabular")."""

    target: str
    regression: bool
    columns: tuple[Column, ...]
    imputed: dict[str, int]  # training cells imputed, per column that had any
    class_names: tuple[str, ...] = ()  # classification
    target_mean: float = 0.0  # regression: the model predicts (target - mean) / std
    target_std: float = 1.0

    @classmethod
    def fit(cls, table: Table, rows: np.ndarray, regression: bool) -> Preparation:
        """Learned on the table's rows at `rows` (the training split); prints what it imputed."""
        columns = tuple(_fit_column(table, name, rows) for name in table.features)
        imputed = {name: n for name in table.features if (n := sum(map(is_missing, table.column(name, rows))))}
        if imputed:
            print(f"{table.name}: imputed {sum(imputed.values())} missing training cell(s) (numbers: the column's "
                  f"median, categories: {MISSING!r}): " + ", ".join(f"{k} {v}" for k, v in imputed.items()),
                  file=sys.stderr)
        if not regression:
            return cls(table.target, False, columns, imputed, class_names=class_names(table))
        values = target_values(table.name, table.target, table.column(table.target, rows))
        return cls(table.target, True, columns, imputed, target_mean=float(values.mean()),
                   target_std=float(values.std()) or 1.0)

    @property
    def width(self) -> int:
        return sum(1 if isinstance(c, Numeric) else len(c.categories) for c in self.columns)

    def features(self, source: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> np.ndarray:
        """(rows, width) float32 model inputs, by the edge runner's own transform of the saved columns; the
        columns are found by name (extra columns are ignored)."""
        try:
            return table_features(self.to_json()["columns"], header, rows, source)
        except RunnerError as err:
            raise DataError(str(err)) from None

    def targets(self, source: str, cells: list[str]) -> np.ndarray:
        """Class ids (int32), or standardized values (float32, shape (rows, 1))."""
        if self.regression:
            return ((target_values(source, self.target, cells) - self.target_mean) / self.target_std
                    ).astype(np.float32)[:, None]
        index = {name: i for i, name in enumerate(self.class_names)}
        unknown = sorted({cell for cell in cells if cell not in index})
        if unknown:
            raise DataError(f"{source}: target value(s) {', '.join(map(repr, unknown[:5]))} were not classes in "
                            f"training ({', '.join(map(shown, self.class_names[:10]))})")
        return np.asarray([index[cell] for cell in cells], np.int32)

    def values(self, outputs: np.ndarray) -> np.ndarray:
        """Regression outputs in the target's unit."""
        return np.asarray(outputs, np.float64) * self.target_std + self.target_mean

    def to_json(self) -> dict[str, Any]:
        columns = [{"kind": type(c).__name__.lower(), **dataclasses.asdict(c)} for c in self.columns]
        return {**dataclasses.asdict(self), "columns": columns}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Preparation:
        try:
            kinds = {"numeric": Numeric, "categorical": Categorical}
            columns = tuple(kinds[c["kind"]](**{k: (tuple(v) if isinstance(v, list) else v)
                                                 for k, v in c.items() if k != "kind"}) for c in values["columns"])
            return cls(**{**values, "columns": columns, "class_names": tuple(values.get("class_names", ()))})
        except (KeyError, TypeError) as err:
            raise DataError(f"data_state.json's tabular preparation is malformed ({type(err).__name__}: {err})") from None


def _fit_column(table: Table, name: str, rows: np.ndarray) -> Column:
    """Numeric when every present cell of the whole column is a number (its kind is the table's, its
    statistics the training split's)."""
    if numbers(table.column(name)) is None:
        return Categorical.fit(name, table.column(name, rows))
    return Numeric.fit(name, numbers(table.column(name, rows)))


def class_names(table: Table) -> tuple[str, ...]:
    """The target's values, sorted (as numbers when they all are); at least two, each in MIN_CLASS_ROWS rows."""
    cells = table.column(table.target)
    values, counts = np.unique(cells, return_counts=True)
    if len(values) < 2:
        raise DataError(f"{table.name}: the target {table.target!r} is {values[0]!r} in every row; a classifier "
                        "needs at least two classes")
    rare = values[counts < MIN_CLASS_ROWS]
    if len(rare):
        raise DataError(
            f"{table.name}: {len(rare)} of the {len(values)} values of the target {table.target!r} are in fewer than "
            f"{MIN_CLASS_ROWS} rows (e.g. {rare[0]!r}); a classifier needs {MIN_CLASS_ROWS} rows per class. For a "
            "numeric target, train a regressor (mlp-regressor)"
        )
    numeric = numbers(list(values)) is not None
    return tuple(sorted(map(str, values), key=float if numeric else None))


def target_values(source: str, target: str, cells: list[str]) -> np.ndarray:
    """A regression target's cells as float64, or a clear error naming a cell that is not a number."""
    values = numbers(cells)
    if values is None:
        bad = next(cell for cell in cells if numbers([cell]) is None)
        raise DataError(f"{source}: the target {target!r} is not numeric ({bad[:40]!r}); regression needs numbers. "
                        "For categories, train a classifier (mlp)")
    return values


# --- the bundle ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TabularBundle(DataBundle):
    """A table's splits as float32 arrays, prepared by a `Preparation` fitted on the training split (or a
    run's saved one). Computed on first use: `as_regression` and `restored` come first."""

    table: Table
    validation_fraction: float
    seed: int
    regression: bool = False
    saved: Preparation | None = None

    def as_regression(self) -> TabularBundle:
        """The same table with a numeric target, split at random (stratifying by value makes no sense)."""
        return dataclasses.replace(self, regression=True)

    # --- what the run keeps, and what the edge runner needs ----------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"tabular": self.preparation.to_json()}

    def restored(self, state: dict[str, Any] | None) -> TabularBundle:
        if not state:
            return self
        if "tabular" not in state:
            raise DataError("the run's data_state.json holds no tabular preparation: it was not trained on a table")
        saved = Preparation.from_json(state["tabular"])
        if (saved.target, saved.regression) != (self.table.target, self.regression):
            kinds = {True: "a number", False: "classes"}
            raise DataError(f"the run predicts {saved.target!r} as {kinds[saved.regression]}; this data asks for "
                            f"{self.table.target!r} as {kinds[self.regression]}")
        return dataclasses.replace(self, saved=saved)

    def runner_input(self) -> dict[str, Any]:
        """The edge runner reads raw CSV rows and prepares them with the saved columns (kind "tabular")."""
        return {"kind": "tabular", "tabular": self.preparation.to_json()}

    # --- splits, preparation, arrays ---------------------------------------------------------------------
    @cached_property
    def rows(self) -> dict[str, np.ndarray]:
        """Row indices per split."""
        everything = np.arange(len(self.table.rows))
        strata = None if self.regression else np.asarray(self.table.column(self.table.target))
        if strata is not None:
            class_names(self.table)  # every class can be split, or a clear error
        rest, test = _hold_out(everything, strata, TEST_FRACTION, FIXED_SPLIT_SEED)
        train, validation = _hold_out(rest, None if strata is None else strata[rest], self.validation_fraction, self.seed)
        return {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}

    @cached_property
    def preparation(self) -> Preparation:
        return self.saved or Preparation.fit(self.table, self.rows["train"], self.regression)

    @cached_property
    def arrays(self) -> ArrayBundle:
        prep, table = self.preparation, self.table
        arrays = {
            split: (prep.features(table.name, table.header, [table.rows[r] for r in rows]),
                    prep.targets(table.name, table.column(table.target, rows)))
            for split, rows in self.rows.items()
        }
        info = DatasetInfo(
            name=table.name,
            input_shape=(prep.width,),
            num_classes=1 if self.regression else len(prep.class_names),
            class_names=(table.target,) if self.regression else prep.class_names,
            split_sizes={split: len(arrays[split][1]) for split in SPLITS},
            pixel_max=0.0,
        )
        return ArrayBundle(info, arrays)

    @property
    def info(self) -> DatasetInfo:
        return self.arrays.info

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.arrays.split(name)

    def labels(self, split: str) -> np.ndarray:
        return self.arrays.labels(split)

    def batches(self, split: str, batch_size: int = 256) -> Iterator[np.ndarray]:
        return self.arrays.batches(split, batch_size)

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        return self.arrays.take(split, count, seed=seed)

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        return self.arrays.dataset(split, batch_size, shuffle_seed=shuffle_seed)

    def values(self, outputs: np.ndarray) -> np.ndarray:
        """Regression outputs (or targets) in the target's unit."""
        return self.preparation.values(outputs)


def _hold_out(rows: np.ndarray, strata: np.ndarray | None, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): `fraction` of the rows (at least one), stratified by `strata` when given."""
    if strata is not None:
        from kerasdl.data.splits import stratified_split

        _, labels = np.unique(strata, return_inverse=True)
        return tuple(np.asarray(part) for part in stratified_split(rows, labels, fraction, seed, "table rows")[:2])
    order = np.random.default_rng(seed).permutation(rows)
    held = max(1, math.ceil(fraction * len(rows)))
    return order[held:], order[:held]


# --- scikit-learn's embedded tables, as registered data sets --------------------------------------------------

@register_dataset(
    "diabetes",
    description="scikit-learn's diabetes table: 442 patients, 10 measurements -> disease progression after a year "
    "(regression, target 'progression')",
    class_names=(),
    max_value=0.0,
)
def load_diabetes(data_dir: Path) -> Table:
    """Unscaled measurements (age in years, sex 1/2, BMI...), as a user's CSV of them would hold."""
    from sklearn.datasets import load_diabetes as diabetes

    frame = diabetes(scaled=False)
    header = (*frame.feature_names, "progression")
    rows = [tuple(f"{value:g}" for value in (*x, y)) for x, y in zip(frame.data, frame.target)]
    return Table.of("diabetes", header, rows, "progression")
