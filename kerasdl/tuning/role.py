"""Which part of a Keras Tuner search this process plays, read from Keras Tuner's own `KERASTUNER_*` variables.

Keras Tuner searches in several processes when they are set: the process whose `KERASTUNER_TUNER_ID` is
"chief" serves the oracle at `KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`, and every other process
("tuner0", "tuner1", ...) asks it for trials and runs them. Nothing here imports TensorFlow, so
`kerasdl tune` checks the variables at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from kerasdl.errors import KerasdlError
from kerasdl.locking import LOCK_FILE

TUNER_ID, ORACLE_IP, ORACLE_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
VARIABLES = (TUNER_ID, ORACLE_IP, ORACLE_PORT)
CHIEF = "chief"


@dataclass(frozen=True)
class Role:
    """This process's part: a search of its own (no tuner id), the chief, or a worker, with the chief's address."""

    tuner_id: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def chief(self) -> bool:
        return self.tuner_id == CHIEF

    @property
    def worker(self) -> bool:
        return self.tuner_id is not None and not self.chief

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def lock_file(self) -> str:
        """The lock this process holds in the output folder: the folder's own, or (workers share the folder)
        one per worker id, so two workers with the same id cannot both run."""
        if not self.worker:
            return LOCK_FILE
        return f".worker-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.tuner_id)}.lock"

    def describe(self) -> str:
        """What this process does, as in "this process is ..."."""
        if self.chief:
            return f"the chief of a distributed search, serving its oracle at {self.address} to the workers"
        if self.worker:
            return f"worker {self.tuner_id} of the distributed search whose chief serves at {self.address}"
        return "a search of its own"


def current_role(*, overwrite: bool = False, environ: Mapping[str, str] = os.environ) -> Role:
    """The role the `KERASTUNER_*` variables give; `KerasdlError` for a half-set environment, or a worker that
    would `overwrite` (Keras Tuner would delete the chief's project)."""
    given = [name for name in VARIABLES if name in environ]  # Keras Tuner tests presence, so an empty value counts
    if not given:
        return Role()
    missing = [name for name in VARIABLES if name not in environ]
    if missing:
        raise KerasdlError(
            f"{' and '.join(given)} set but not {' and '.join(missing)}: a distributed search needs all of "
            f"{', '.join(VARIABLES)} (or none, to search in this process alone)"
        )
    tuner_id, host, port = (environ[name] for name in VARIABLES)  # as Keras Tuner reads them
    if not tuner_id.strip() or not host.strip():
        raise KerasdlError(f"{TUNER_ID if not tuner_id else ORACLE_IP} is empty")
    if CHIEF in tuner_id and tuner_id != CHIEF:  # Keras Tuner takes any id containing "chief" for the chief
        raise KerasdlError(f"{TUNER_ID}={tuner_id!r}: the chief's id is 'chief'; name workers tuner0, tuner1, ...")
    role = Role(tuner_id, host, parse_port(port, ORACLE_PORT))
    if role.worker and overwrite:
        raise KerasdlError(f"only the chief may start the search over (--overwrite); worker {tuner_id} joins it")
    return role


def role_variables(chief: str | None, worker_id: str | None) -> dict[str, str]:
    """The `KERASTUNER_*` values that `--chief HOST:PORT` and `--worker-id ID` stand for.

    With `chief`, this process is the chief serving there, or worker `worker_id` of it; `worker_id` alone
    leaves the address to the environment.
    """
    values = {TUNER_ID: worker_id} if worker_id else {}
    if chief:
        host, _, port = chief.rpartition(":")
        if not host:
            raise KerasdlError(f"--chief {chief!r}: expected HOST:PORT, such as 10.0.0.1:8000")
        values = {TUNER_ID: worker_id or CHIEF, ORACLE_IP: host, ORACLE_PORT: str(parse_port(port, "--chief"))}
    return values


def parse_port(text: str, name: str) -> int:
    """`text` as a port number 1-65535; `KerasdlError` naming `name` otherwise."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise KerasdlError(f"{name}: expected a port number (1-65535), got {text!r}")
    return int(text)
