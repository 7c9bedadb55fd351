"""What the fuzz tests (tests/test_faults_*.py) share: the one error a reader may raise, bounded time, settings.

A reader fed random or mutated bytes may fail only with our own error type (`KerasdlError` and its
subclasses, or the TF-free runner's `RunnerError`) carrying a one-line message; anything else (a crash, a
traceback a user would see, a hang past the time bound) fails the test.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any, Callable, Iterator

from hypothesis import HealthCheck, settings

from kerasdl.errors import KerasdlError

# Derandomized: CI runs the same examples each time (a failure reproduces); `database=None` keeps no state.
FUZZ = settings(
    max_examples=60,
    deadline=None,  # time is bounded by `bounded()` instead, which also stops a hang
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Hang(Exception):
    """A reader ran past its time bound."""


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Raise `Hang` in the block if it runs longer than `seconds` (SIGALRM: main thread, POSIX)."""

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def only_our_error(
    read: Callable[..., Any], *args: Any, errors: tuple[type[BaseException], ...] = (KerasdlError,),
    seconds: float = 10.0, **kwargs: Any,
) -> Any:
    """Call `read(*args, **kwargs)`; return its result, or None when it raised one of `errors` with a one-line
    message. Any other exception, a multi-line or empty message, or a hang fails the calling test."""
    try:
        with bounded(seconds):
            return read(*args, **kwargs)
    except errors as err:
        message = str(err)
        assert message and "\n" not in message, f"{type(err).__name__} message is not one line: {message!r}"
        return None


def mutations(data: bytes, positions: list[int], values: list[int]) -> bytes:
    """`data` with the byte at each position (taken modulo its length) replaced by the matching value."""
    mutated = bytearray(data)
    for position, value in zip(positions, values):
        if mutated:
            mutated[position % len(mutated)] = value
    return bytes(mutated)
