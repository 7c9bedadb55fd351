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

from kerasdl import files
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
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")
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
    chosen = {  # every choice made (and checked) before anything is written
        split: {
            name: _choose(source / split / name, per_class if split in settings["sampled_splits"] else None, seed)
            for name in kept
        }
        for split in splits
    }
    partial = dest.with_name(dest.name + ".partial")  # renamed when complete: no half-written subset
    shutil.rmtree(partial, ignore_errors=True)
    for split, by_class in chosen.items():
        for name, paths in by_class.items():
            (partial / split / name).mkdir(parents=True)
            for path in paths:
                _link_or_copy(path, partial / split / name / path.name)
    counts = {split: {name: len(paths) for name, paths in by_class.items()} for split, by_class in chosen.items()}
    files.write_json(partial / MANIFEST, {**settings, "counts": counts})
    shutil.rmtree(dest, ignore_errors=True)  # only a subset of other settings gets here
    partial.rename(dest)
    return dest


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


def _choose(folder: Path, count: int | None, seed: int) -> list[Path]:
    """`count` files of a class folder (all when None), chosen by `seed` and the folder's (class) name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if count is None:
        return files
    if count > len(files):
        raise DataError(f"{folder} has {len(files)} files, fewer than the {count} per class asked for")
    rng = np.random.default_rng([seed, zlib.crc32(folder.name.encode())])
    return [files[i] for i in sorted(rng.choice(len(files), size=count, replace=False))]


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
    except json.JSONDecodeError as err:
        raise DataError(f"{folder / MANIFEST} is corrupt ({err}); delete {folder} to write the subset again") from err
