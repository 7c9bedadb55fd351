"""A model repository in TensorFlow Serving's layout: `ROOT/NAME/VERSION/` each holding one export.

    models/
      cnn-mnist/1/   model.tflite  preprocessing.json  export.json
      cnn-mnist/2/   ...           (the highest version answers unless a request names one)
      bilstm-sst2/1/ ...

`kerasdl export RUN --format F --to-repo ROOT` publishes into one (`publish`). A single export folder, an
artifact file or a run directory also serves, as a repository of one model. Everything is found and loaded
once, at start-up: a request only ever names a model, which is looked up in that table; no path taken from
a request is ever opened.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerasdl import files
from kerasdl.errors import KerasdlError
from kerasdl.serve.backends import REPORT_FILE, ServedModel, load_export, load_run
from kerasdl.serve.inputs import shown

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a servable's name: no slash, no leading dot
VERSION = re.compile(r"[0-9]{1,9}")


def valid_name(name: str) -> bool:
    """Whether `name` can be a model's name (so never a path: no slash, no '..', no leading dot)."""
    return bool(NAME.fullmatch(name)) and ".." not in name


@dataclass
class Servable:
    """One version of one model: loaded, or the one-line reason it could not be."""

    name: str
    version: int
    source: Path
    model: ServedModel | None = None
    error: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/models/NAME` says of this version (export.json's figures included)."""
        if self.model is None:
            return {"version": self.version, "state": "UNAVAILABLE", "error": self.error}
        report = self.report
        return {
            "version": self.version,
            "state": "AVAILABLE",
            **self.model.describe(),
            "format": report.get("format", "keras"),
            "bytes": report.get("bytes"),
            "builtin_ops_only": report.get("builtin_ops_only"),
            "parity": report.get("parity"),
            "latency_ms_batch1": report.get("latency_ms_batch1"),
            "source": {key: value for key, value in report.get("source", {}).items() if key in ("model", "data")},
        }


class ModelRepository:
    """Every servable under a root, loaded once; `get(name, version)` is the only way a request reaches one."""

    def __init__(self, servables: list[Servable]):
        if not servables:
            raise KerasdlError("the model repository holds no models")
        self.models: dict[str, dict[int, Servable]] = {}
        for servable in servables:
            self.models.setdefault(servable.name, {})[servable.version] = servable
        if not any(s.model for s in servables):
            errors = "; ".join(f"{s.name}/{s.version}: {s.error}" for s in servables)
            raise KerasdlError(f"no model in the repository could be loaded ({errors})")

    @classmethod
    def load(cls, path: str | Path) -> "ModelRepository":
        """A repository root (NAME/VERSION/ folders), an export folder, an artifact file or a run directory."""
        path = Path(path).expanduser()
        if not path.exists():
            raise KerasdlError(f"model path {path} does not exist")
        return cls([_load(servable) for servable in discover(path)])

    def names(self) -> list[str]:
        return sorted(self.models)

    def get(self, name: str, version: int | None = None) -> Servable:
        """The named version (None: the highest); ModelNotFound names what exists instead."""
        if not valid_name(name):
            raise InvalidName(f"{shown(name)} is not a model name (letters, digits, '.', '_' and '-'; no paths)")
        if name not in self.models:
            raise ModelNotFound(f"no model named {name!r}; serving: {', '.join(self.names())}")
        versions = self.models[name]
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise ModelNotFound(f"model {name!r} has no version {version}; versions: {', '.join(map(str, sorted(versions)))}")
        return versions[version]

    def describe(self, name: str) -> dict[str, Any]:
        versions = self.models[name]
        return {"name": name, "latest_version": max(versions),
                "versions": [versions[v].describe() for v in sorted(versions, reverse=True)]}

    def servables(self) -> list[Servable]:
        return [versions[v] for name in self.names() for versions in [self.models[name]] for v in sorted(versions)]


class InvalidName(KerasdlError):
    """A request named a model with characters a name cannot have."""


class ModelNotFound(KerasdlError):
    """A request named a model or version the repository does not hold."""


def discover(path: Path) -> list[Servable]:
    """The servables at `path`, not yet loaded."""
    if path.is_file() or _is_export(path) or (path / "model.keras").is_file():
        folder = path.parent if path.is_file() else path
        return [Servable(default_name(folder), 1, path)]
    found = []
    for model in sorted(p for p in path.iterdir() if p.is_dir()):
        versions = [v for v in model.iterdir() if v.is_dir() and VERSION.fullmatch(v.name)]
        if valid_name(model.name):
            found += [Servable(model.name, int(v.name), v) for v in sorted(versions, key=lambda v: int(v.name))]
    if not found:
        raise KerasdlError(
            f"{path} is not a model repository (NAME/VERSION/ folders holding exports), an export folder, "
            "an artifact or a run directory"
        )
    return found


def _is_export(folder: Path) -> bool:
    return folder.is_dir() and (folder / REPORT_FILE).is_file()


def default_name(folder: Path) -> str:
    """A single export's or run's name: its model, and its data set unless the model is named after it; else
    (a report without them, or naming something no name can be) the folder's name."""
    try:
        if (folder / REPORT_FILE).is_file():
            source = json.loads((folder / REPORT_FILE).read_text()).get("source", {})
        else:
            config = json.loads((folder / "config.json").read_text())
            source = {"model": config["model"], "data": config.get("dataset", {}).get("name", config.get("data"))}
        name = servable_name(source["model"], source.get("data"))
        if valid_name(name):
            return name
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return re.sub(r"[^A-Za-z0-9_.-]", "-", folder.resolve().name).lstrip(".-") or "model"


def servable_name(model: str, data: str | None) -> str:
    """cnn-mnist on mnist -> 'cnn-mnist'; bilstm on sst2 -> 'bilstm-sst2' (a data folder: its folder name)."""
    if not data:
        return model
    data = Path(data).name
    return model if model.endswith(data) else f"{model}-{data}"


def _load(servable: Servable) -> Servable:
    """Load one servable; a broken one is kept with its error (listed, answered 503) so the rest serve."""
    source = servable.source
    try:
        if source.is_dir() and (source / "model.keras").is_file():
            servable.model = load_run(source)
        else:
            servable.model, servable.report = load_export(source)
    except KerasdlError as err:
        servable.error = str(err)
    return servable


def publish(export_folder: Path, root: Path, name: str) -> Path:
    """Copy an export folder into `root/name/<next version>/`; the new version folder."""
    if not valid_name(name):
        raise KerasdlError(f"{name!r} cannot name a served model (letters, digits, '.', '_' and '-')")
    model = root / name
    versions = [int(v.name) for v in model.glob("*") if v.is_dir() and VERSION.fullmatch(v.name)]
    target = model / str(max(versions, default=0) + 1)
    with files.replacing(target) as temporary:  # a hidden copy, renamed when whole: no half-published version
        shutil.copytree(export_folder, temporary)
    return target
