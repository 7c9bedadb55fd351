"""Class and sample subsets of an image folder, written as an ordinary image folder.

`write_class_subset` picks classes (all, named ones, or all but some) and a seeded number of photos per
class from a folder of the `train/<class>/`, `test/<class>/` layout, and writes `dest/<split>/<class>/`
with a symbolic link to each chosen photo (a copy where the file system refuses links). The result is
a folder like any user's: `kerasdl train --data DEST` and every other command take it. Transfer learning
uses it twice: CIFAR-10 without cat and dog to pretrain on, and a few labelled cats and dogs to reuse
the pretrained backbone on.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kerasdl.errors import DataError

MANIFEST = "subset.json"  # what a subset folder was written from; its presence marks a finished subset


def write_class_subset(
    source: str | Path,
    dest: str | Path,
    *,
    classes: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    per_class: int | None = None,
    seed: int = 0,
    splits: Sequence[str] = ("train", "test"),
    sampled_splits: Sequence[str] = ("train",),
) -> Path:
    """Write `dest/<split>/<class>/` linking to a subset of `source/<split>/<class>/` and return `dest`.

    `classes` (default: every class folder of `source/<first split>`) minus `exclude` are kept. In
    `sampled_splits`, `per_class` photos of each class are chosen at random (seeded by `seed` and the
    class name, so a class's choice does not depend on which other classes are kept); other splits and
    `per_class=None` keep every photo. Writing the same subset again reuses the folder; a subset with
    other settings in `dest` is replaced; any other existing `dest` is an error, never deleted.
    """
    source, dest = Path(source).expanduser().resolve(), Path(dest).expanduser()
    if per_class is not None and per_class < 1:
        raise DataError(f"per_class must be >= 1, got {per_class}")
    kept = _kept_classes(source, splits, classes, exclude)
    settings = {
        "source": str(source),
        "classes": kept,
        "per_class": per_class,
        "seed": seed,
        "splits": list(splits),
        "sampled_splits": [split for split in sampled_splits if split in splits],
    }
    if _reusable(dest, settings):
        return dest
    partial = dest.with_name(dest.name + ".partial")  # renamed when complete: no half-written subset
    shutil.rmtree(partial, ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    for split in splits:
        count = per_class if split in settings["sampled_splits"] else None
        counts[split] = {name: _link_files(source / split / name, partial / split / name, count, seed) for name in kept}
    (partial / MANIFEST).write_text(json.dumps({**settings, "counts": counts}, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)  # only a subset of other settings gets here
    partial.rename(dest)
    return dest


def subset_counts(folder: str | Path) -> dict[str, dict[str, int]]:
    """Photos per split and class of a subset folder, as `write_class_subset` recorded them."""
    return _read_manifest(Path(folder))["counts"]


def _kept_classes(
    source: Path, splits: Sequence[str], classes: Sequence[str] | None, exclude: Sequence[str]
) -> list[str]:
    """The classes to keep, checked against the class folders of every split of `source`."""
    if not splits:
        raise DataError("a subset needs at least one split")
    available = {split: _class_folders(source / split) for split in splits}
    first = available[splits[0]]
    unknown = sorted((set(classes or ()) | set(exclude)) - set(first))
    if unknown:
        raise DataError(f"{source / splits[0]} has no class {', '.join(unknown)}; classes: {', '.join(first)}")
    kept = [name for name in (sorted(classes) if classes is not None else first) if name not in set(exclude)]
    if len(kept) < 2:
        raise DataError(f"a subset needs at least two classes; kept {kept} of {', '.join(first)}")
    for split, names in available.items():
        missing = sorted(set(kept) - set(names))
        if missing:
            raise DataError(f"{source / split} lacks class folder(s) {', '.join(missing)}")
    return kept


def _class_folders(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder (expected <split>/<class>/ image folders)")
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _link_files(source: Path, dest: Path, count: int | None, seed: int) -> int:
    """Link `count` seeded-random files of `source` (all when None) into `dest`; how many were linked."""
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    if count is not None:
        if count > len(files):
            raise DataError(f"{source} has {len(files)} files, fewer than the {count} per class asked for")
        rng = np.random.default_rng([seed, zlib.crc32(source.name.encode())])
        files = [files[i] for i in sorted(rng.choice(len(files), size=count, replace=False))]
    dest.mkdir(parents=True)
    for path in files:
        _link_or_copy(path, dest / path.name)
    return len(files)


def _link_or_copy(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link)
    except OSError:  # e.g. Windows without the privilege, or a file system without links
        shutil.copy2(target, link)


def _reusable(dest: Path, settings: dict[str, Any]) -> bool:
    """True when `dest` holds this very subset; False when it is free or holds another subset."""
    if not dest.exists():
        return False
    if not (dest / MANIFEST).is_file():
        raise DataError(f"{dest} exists and is not a subset folder (no {MANIFEST}); choose another folder")
    saved = _read_manifest(dest)
    return {key: saved.get(key) for key in settings} == settings


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise DataError(f"{folder} has no {MANIFEST} (not a folder written by write_class_subset)") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{folder / MANIFEST} is corrupt ({err})") from err
