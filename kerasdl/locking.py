"""One writer per output folder: `train`, `tune` and `data shard` hold `FOLDER/.lock` while they write.

The lock is an `fcntl.flock` on that file, which the kernel releases when the process ends however it ends,
so a lock file left by a killed process holds no lock: the next writer takes it over (and says so). The file
also names its holder (PID, host, command, start time), so a second writer refuses in one line that says who
has the folder. Locks are advisory and local: a folder shared over NFS between machines is not protected.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

from kerasdl.errors import KerasdlError

LOCK_FILE = ".lock"


class FolderLockedError(KerasdlError):
    """Another live process is writing the folder."""


def describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        f" (`{holder.get('command', '?')}`, since {holder.get('started', '?')})"
    )


def read_holder(path: Path) -> dict:
    """What a lock file says of its holder; {} when it is empty or unreadable (a crash while writing it)."""
    with contextlib.suppress(OSError, ValueError):
        holder = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(holder, dict):
            return holder
    return {}


@contextlib.contextmanager
def folder_lock(folder: str | Path, name: str = LOCK_FILE) -> Iterator[Path]:
    """Hold the lock `folder/name` until the block ends; FolderLockedError if taken. The folder is created, and
    removed again if the block left nothing in it (a run refused for a bad setting leaves no trace)."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    descriptor = _acquire(path, folder)
    try:
        stale = read_holder(path)
        if stale:
            print(f"kerasdl: took over the lock on {folder} left by {describe(stale)}, which has ended", file=sys.stderr)
        _write_holder(descriptor)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still held, so no one else can have taken the file we remove
        os.close(descriptor)
        if created:
            with contextlib.suppress(OSError):  # not empty: the block wrote something, or another writer came
                folder.rmdir()


def _acquire(path: Path, folder: Path) -> int:
    """Lock `path`, retrying when the file we locked was removed by its last holder before we got it."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise FolderLockedError(
                f"{folder} is being written by {describe(read_holder(path))}; wait for it to end "
                "or choose another --out"
            ) from None
        try:
            same = os.fstat(descriptor).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return descriptor
        os.close(descriptor)


def _write_holder(descriptor: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(holder).encode("utf-8"), 0)
    os.fsync(descriptor)
