"""The run directory contract: config.json, history.csv, metrics.json, model.keras, plots/, checkpoints/."""

from __future__ import annotations

import csv
import io
import json
import platform
import shutil
from pathlib import Path
from typing import Any, Iterable

from kerasdl import files
from kerasdl.errors import RunDirError
from kerasdl.locking import LOCK_FILE
from kerasdl.training.config import RESUME_KEYS


def library_versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow

    import kerasdl

    return {
        "python": platform.python_version(),
        "kerasdl": kerasdl.__version__,
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def changed_settings(saved: dict[str, Any], wanted: dict[str, Any], keys: Iterable[str] | None = None) -> list[str]:
    """`key: old -> new` for each of `keys` (default: all of `wanted`) that differs from the saved JSON.

    Compares values as JSON holds them (tuples become lists), so a saved setting equals the one it came from.
    """
    wanted = json.loads(json.dumps(wanted))
    return [f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in (keys or wanted) if saved.get(k) != wanted.get(k)]


class RunDirectory:
    """Paths and state of one run; a run with config.json but no metrics.json was interrupted."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    history_path = property(lambda self: self.path / "history.csv")
    metrics_path = property(lambda self: self.path / "metrics.json")
    model_path = property(lambda self: self.path / "model.keras")
    plots_dir = property(lambda self: self.path / "plots")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    logs_dir = property(lambda self: self.path / "logs")
    data_state_path = property(lambda self: self.path / "data_state.json")

    @property
    def state(self) -> str:
        if self.metrics_path.exists():
            return "finished"
        return "interrupted" if self.config_path.exists() else "new"

    def prepare(self, config: dict[str, Any], *, overwrite: bool = False) -> bool:
        """Create or reopen the directory for `config`; True when an interrupted run will resume."""
        if self.state == "finished" and not overwrite:
            raise RunDirError(f"{self.path} already holds a finished run; pass --overwrite or choose another --out")
        if overwrite and self.path.exists():
            self.clear()
        resuming = self.state == "interrupted"
        if resuming:
            changed = changed_settings(self.read_config(), config, RESUME_KEYS)
            if changed:
                raise RunDirError(
                    f"{self.path} holds an interrupted run with other settings ({', '.join(changed)}); "
                    "resume with the same ones, pass --overwrite, or choose another --out"
                )
            self._remove_leftovers()
        for folder in (self.path, self.plots_dir, self.checkpoints_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.write_json(self.config_path, {**config, "versions": library_versions()})
        return resuming

    def clear(self) -> None:
        """Remove everything in the folder but the lock its writer holds."""
        for child in self.path.iterdir():
            if child.name != LOCK_FILE:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()

    def _remove_leftovers(self) -> None:
        """Delete the temporary files a killed writer left (never valid; we hold the lock, so none is being written)."""
        for leftover in files.leftovers(self.path):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)

    def read_config(self) -> dict[str, Any]:
        return self._read_json(self.config_path, "config.json")

    def read_metrics(self) -> dict[str, Any]:
        return self._read_json(self.metrics_path, "metrics.json")

    def read_data_state(self) -> dict[str, Any] | None:
        """What the data learned in training (a text set's vocabulary); None for data that learns nothing."""
        return self._read_json(self.data_state_path, "data_state.json") if self.data_state_path.exists() else None

    def write_data_state(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.write_json(self.data_state_path, state)

    def require_model(self) -> Path:
        """The saved model, or a clear error when this is not a finished run directory."""
        if not self.path.is_dir():
            raise RunDirError(f"run directory {self.path} does not exist")
        if not self.model_path.exists():
            raise RunDirError(f"{self.path} has no model.keras (not a finished kerasdl run directory)")
        return self.model_path

    def history_rows(self) -> list[dict[str, str]]:
        if not self.history_path.exists():
            return []
        with self.history_path.open(newline="") as f:
            return list(csv.DictReader(f))

    def truncate_history(self, epochs_done: int) -> None:
        """Drop rows of epochs that the resumed state does not include (written just before a crash)."""
        rows = self.history_rows()
        kept = [row for row in rows if int(row["epoch"]) < epochs_done]
        if kept != rows:  # none kept: no file, as csv would write an empty header, a blank line
            self.write_history(kept) if kept else self.history_path.unlink()

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        """Replace history.csv with `rows` in one rename: a crash leaves the old file or the new one."""
        text = io.StringIO()
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        files.write_text(self.history_path, text.getvalue())

    def _read_json(self, path: Path, what: str) -> dict[str, Any]:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{self.path} has no {what}") from None
        except ValueError as err:  # not JSON, or not UTF-8
            raise RunDirError(f"{path} is corrupt ({err})") from err
        if not isinstance(values, dict):
            raise RunDirError(f"{path} is corrupt (a JSON {type(values).__name__}, not an object)")
        return values

    @staticmethod
    def write_json(path: Path, values: dict[str, Any]) -> None:
        files.write_json(path, values, sort_keys=True)
