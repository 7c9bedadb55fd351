"""Subcommands of `kerasdl`: each module has `register(subparsers)` and imports heavy libraries lazily."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, TypeVar

Number = TypeVar("Number", int, float)


def _checked(convert: Callable[[str], Number], accept: Callable[[Number], bool], expected: str):
    """An argparse type that says what it expected, instead of argparse's generic 'invalid value'."""

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checked(float, lambda v: v > 0, "a positive number")
non_negative_float = _checked(float, lambda v: v >= 0, "a number >= 0")
dropout_rate = _checked(float, lambda v: 0 <= v < 1, "a rate in [0, 1)")
port_number = _checked(int, lambda v: 0 <= v <= 65535, "a port number (0-65535; 0: any free port)")


def progress_verbosity(quiet: bool) -> int:
    """Keras verbosity: a live progress bar on a terminal, one line per epoch in a log file or pipe."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


# --- Checks that run before TensorFlow is imported -----------------------------------------------------------
# A wrong model name, data set or run directory is reported at once instead of after TensorFlow's start-up
# (seconds). They give the same one-line errors as the slow paths they run ahead of, which still check too
# (tests/test_cli_startup.py compares the two).

def dataset_names() -> list[str]:
    """Registered data set names, read from `kerasdl/data`'s source (see `kerasdl.registry.source_names`)."""
    from kerasdl.registry import source_names

    if "kerasdl.data" not in sys.modules:
        names = source_names("kerasdl.data", "register_dataset")
        if names is not None:
            return names
    from kerasdl.data import dataset_sources

    return [source.name for source in dataset_sources()]


def check_model(name: str) -> None:
    """UnknownNameError unless `name` is a registered model."""
    from kerasdl.errors import UnknownNameError
    from kerasdl.registry import model_names

    known = model_names()
    if name not in known:
        raise UnknownNameError("model", name, known)


def check_data(name: str | None) -> None:
    """UnknownNameError unless `name` (None: the model's default) is a registered data set or a folder."""
    from pathlib import Path

    from kerasdl.errors import FOLDER_HINT, UnknownNameError

    if name is not None and name.startswith("tfrecord:"):  # kerasdl.data.bundle.SHARDS_PREFIX
        from kerasdl.data.shards import check_manifest

        check_manifest(name.removeprefix("tfrecord:"))
        return
    path = Path(name).expanduser() if name is not None else None
    if path is None or path.is_dir() or (path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt")):
        return
    known = dataset_names()
    if name not in known:
        raise UnknownNameError("data set", name, known, FOLDER_HINT)


def check_run_dir(path: str) -> None:
    """RunDirError unless `path` holds a finished run; `RunDirectory.require_model` without its imports
    (kerasdl.training imports TensorFlow), with its messages."""
    from pathlib import Path

    from kerasdl.errors import RunDirError

    if not Path(path).is_dir():
        raise RunDirError(f"run directory {Path(path)} does not exist")
    if not (Path(path) / "model.keras").exists():
        raise RunDirError(f"{Path(path)} has no model.keras (not a finished kerasdl run directory)")


def load_text_run(path: str, task: str, needs: str, state_key: str) -> tuple[dict, dict, object]:
    """A finished run of `task`: its config, its saved data state (which must hold `state_key`, the vocabulary)
    and its Keras model. A run of another task fails in one line ending "<needs>"; checks the folder first."""
    check_run_dir(path)  # before TensorFlow is imported
    from kerasdl.errors import KerasdlError, RunDirError
    from kerasdl.models.loading import load_model_file
    from kerasdl.registry import model_spec
    from kerasdl.training.run_dir import RunDirectory

    run_dir = RunDirectory(path)
    config = run_dir.read_config()
    spec = model_spec(config["model"])
    if spec.task != task:
        raise KerasdlError(f"{run_dir.path} holds a {spec.name} run ({spec.task}); {needs}")
    state = run_dir.read_data_state()
    if not state or state_key not in state:
        raise RunDirError(f"{run_dir.path} has no saved vocabulary (data_state.json); train the run again")
    return config, state, load_model_file(run_dir.require_model())
