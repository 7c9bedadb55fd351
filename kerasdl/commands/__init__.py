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
positive_float = _checked(float, lambda v: v > 0, "a positive number")
non_negative_float = _checked(float, lambda v: v >= 0, "a number >= 0")
dropout_rate = _checked(float, lambda v: 0 <= v < 1, "a rate in [0, 1)")


def progress_verbosity(quiet: bool) -> int:
    """Keras verbosity: a live progress bar on a terminal, one line per epoch in a log file or pipe."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2
