"""Crash-safe files: each is written to a hidden temporary sibling, flushed to disk, then renamed over its name.

A rename within a folder is atomic, so a reader (or a run resumed after `kill -9`) sees either the old file or
the whole new one, never half of one. Writers that take a path (`model.save`, `savefig`, a TFLite converter's
bytes) use `replacing(path)`, which hands them the temporary path and renames it only when they return.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

TEMPORARY_MARK = ".partial-"


def temporary_path(path: str | Path) -> Path:
    """The hidden sibling `path` is written to first; it keeps the suffixes, which some writers read the format
    from (Keras's `save_weights` wants the whole `.weights.h5`)."""
    path = Path(path)
    suffix = "".join(path.suffixes)
    return path.with_name(f".{path.name.removesuffix(suffix)}{TEMPORARY_MARK}{os.getpid()}{suffix}")


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, path)
    except BaseException:
        if temporary.is_dir():
            import shutil

            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, values: Any, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(values, indent=indent, sort_keys=sort_keys) + "\n")


def leftovers(folder: str | Path) -> list[Path]:
    """Temporary files a killed writer left in `folder` (recursively): never valid, safe to delete."""
    return sorted(Path(folder).rglob(f".*{TEMPORARY_MARK}*"))


def _sync(path: Path) -> None:
    """Flush a written file (or each file of a written folder, such as a SavedModel) to disk before the rename."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as stream:
            os.fsync(stream.fileno())


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
