"""TFRecord shards of a data set: `write_shards` (`kerasdl data shard`) and `load_shards` (`--data tfrecord:DIR`).

A shard folder holds `<split>-NNNNN.tfrecord` files per split (train, validation, test, split exactly as
`kerasdl.data.load` splits the source) and `manifest.json`, each written to a temporary file and renamed
(`kerasdl.files`), the manifest last, so a half-written folder is never taken for a set. Each record is a
`tf.train.Example` with one bytes feature per component of the bundle's (x, y) element: image pixels as
lossless PNG of their uint8 values (decoded in parallel and scaled as the source bundle scales them), every
other tensor (token ids, labels) as `tf.io.serialize_tensor`. The manifest holds counts, the feature spec,
each shard's bytes and sha256, the DatasetInfo (with the vocabulary), the bundle's `state()` and
`runner_input()`, and the settings used.

Streaming (`ShardBundle.dataset`), never a split in memory:
    shard files (order shuffled per epoch when seeded)
    -> interleave(TFRecordDataset, cycle_length=CYCLE_LENGTH, num_parallel_calls=AUTOTUNE, deterministic=False)
    -> shuffle(SHUFFLE_BUFFER serialized records) -> parse + decode (num_parallel_calls=AUTOTUNE)
    -> batch -> augmentation (as the source) -> prefetch(AUTOTUNE).
Unshuffled (validation, test, labels, export) reads the shards in order, so records keep the source's order.
`KERASDL_SHARD_CACHE=memory` (or a folder) caches decoded records after the first epoch (`Dataset.cache`);
then each epoch reads the cache in one fixed order and only the shuffle buffer mixes it.

The split is fixed when the shards are written (`kerasdl data shard --validation-fraction F --seed S`), as MR's
fixed split is: a run's own validation fraction and seed do not move it (the run's seed still draws the
initial weights, the shuffle and the augmentation; config.json's "dataset" records the split sizes used). An
image size other than the shards' is an error: the pixels were resized when written. No TensorFlow at module
level: the CLI calls `check_manifest` before TensorFlow starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kerasdl import files
from kerasdl.data.base import DatasetInfo
from kerasdl.data.bundle import SPLITS, ArrayBundle, DataBundle, ImageBundle, is_folder, is_text_file
from kerasdl.errors import DataError, KerasdlError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_SHARD_MB = 16.0  # ~10 shards per 100 MB: enough files for interleave to read several at once
SHUFFLE_BUFFER = 2048  # serialized records (a few MB of PNG or ids), whatever the split's size
CYCLE_LENGTH = 4  # shards read at once while training
WRITE_BATCH = 256
CACHE_ENV = "KERASDL_SHARD_CACHE"  # "memory", or a folder for Dataset.cache files; unset: no cache
MANIFEST_KEYS = ("counts", "structure", "features", "shards", "info", "state", "runner_input", "settings")


# --- the manifest, checked without TensorFlow --------------------------------------------------------------

def check_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of shard folder `path`; a one-line DataError for a missing folder, a missing or corrupt
    manifest, or a shard that is missing or has another size than the manifest says (sha256: `verify_shards`)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of TFRecord shards (write one with `kerasdl data shard NAME --out {root}`)")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{root} has no {MANIFEST}: not written by `kerasdl data shard`, or the writing did not finish")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{manifest_path} is corrupt ({err}); shard the data again") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise DataError(f"{manifest_path} is not a kerasdl shard manifest of format {FORMAT_VERSION} (found {version!r})")
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise DataError(f"{manifest_path} is corrupt (no {', '.join(missing)}); shard the data again")
    for shard in _shard_entries(manifest):
        file = root / shard["file"]
        if not file.is_file():
            raise DataError(f"shard {file} is missing; shard the data again")
        size = file.stat().st_size
        if size != shard["bytes"]:
            raise DataError(f"shard {file} is truncated or altered: {size:,} bytes, {MANIFEST} says {shard['bytes']:,}")
    return manifest


def verify_shards(path: str | Path, manifest: dict[str, Any]) -> None:
    """DataError naming the first shard whose sha256 differs from the manifest's (an altered shard)."""
    for shard in _shard_entries(manifest):
        file = Path(path).expanduser() / shard["file"]
        if _sha256(file) != shard["sha256"]:
            raise DataError(f"shard {file} is altered: its sha256 differs from {MANIFEST}'s; shard the data again")


def _shard_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        entries = [shard for split in SPLITS for shard in manifest["shards"][split]]
        # a bare file name: a manifest never points outside its own folder
        if all(isinstance(s["file"], str) and s["file"] == Path(s["file"]).name not in ("", "..")
               and isinstance(s["bytes"], int) for s in entries):
            return entries
    except (KeyError, TypeError):
        pass
    raise DataError(f"{MANIFEST} is corrupt (its shard list is not file/bytes/sha256 per split); shard the data again")


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- writing -----------------------------------------------------------------------------------------------

def write_shards(
    name: str, out: str | Path, *, shard_mb: float = DEFAULT_SHARD_MB, validation_fraction: float = 0.1,
    seed: int = 0, image_size: int | None = None, overwrite: bool = False, verbose: int = 1,
) -> dict[str, Any]:
    """Write data set `name` (anything `kerasdl.data.load` accepts) to shards in `out`; returns the manifest."""
    import keras

    from kerasdl import __version__
    from kerasdl.data.bundle import load

    bundle = load(name, validation_fraction=validation_fraction, seed=seed, image_size=image_size)
    if not isinstance(bundle, (ArrayBundle, ImageBundle)) and not _is_labelled_text(bundle):
        raise KerasdlError(
            f"data set {bundle.info.name!r} ({type(bundle).__name__}) cannot be sharded: shards hold image, array "
            "and labelled-text classification sets"
        )
    root = Path(out).expanduser()
    _clear(root, overwrite)
    structure, features = _feature_spec(bundle)
    progress = keras.utils.Progbar(sum(bundle.info.split_sizes.values()), verbose=verbose, unit_name="record")
    shards = {
        split: _write_split(bundle, split, features, root, max(1, int(shard_mb * 2**20)), progress) for split in SPLITS
    }
    info = bundle.info
    manifest = {
        "format_version": FORMAT_VERSION,
        "kerasdl_version": __version__,
        "source": str(Path(name).expanduser().resolve()) if is_folder(name) or is_text_file(name) else name,
        "settings": {
            "validation_fraction": validation_fraction, "seed": seed, "shard_size_mb": shard_mb,
            "image_size": info.input_shape[0] if isinstance(bundle, ImageBundle) else image_size,
        },
        "counts": {split: sum(s["count"] for s in shards[split]) for split in SPLITS},
        "structure": structure,
        "features": features,
        "shards": shards,
        "info": {**info.to_json(), "vocabulary": list(info.vocabulary)},
        "state": bundle.state(),
        "runner_input": bundle.runner_input(),
    }
    files.write_json(root / MANIFEST, manifest, indent=1)
    return manifest


def _is_labelled_text(bundle: DataBundle) -> bool:
    from kerasdl.data.text import TextBundle

    return isinstance(bundle, TextBundle) and not bundle.stream and bool(bundle.info.class_names)


def _clear(root: Path, overwrite: bool) -> None:
    """Make `root` ready for new shards: refuse to mix with old ones unless `overwrite` (the manifest goes first)."""
    old = sorted(root.glob("*.tfrecord")) if root.is_dir() else []
    if (root / MANIFEST).exists() or old:
        if not overwrite:
            raise KerasdlError(f"{root} already holds shards; pass --overwrite or choose another --out")
        (root / MANIFEST).unlink(missing_ok=True)
        for file in old:
            file.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _feature_spec(bundle: DataBundle) -> tuple[Any, list[dict[str, Any]]]:
    """The element's nested structure (component indices in place of tensors) and one entry per component."""
    import keras
    import tensorflow as tf

    spec = bundle.dataset("train", WRITE_BATCH).element_spec
    structure = json.loads(json.dumps(tf.nest.pack_sequence_as(spec, list(range(len(tf.nest.flatten(spec)))))))
    features = []
    for index, (path, component) in enumerate(keras.tree.flatten_with_path(spec)):
        place = "/".join(map(str, path))
        shape = component.shape[1:]
        if not shape.is_fully_defined():
            raise KerasdlError(f"data set {bundle.info.name!r} has elements of varying shape ({place}: {shape}); "
                               "shards hold fixed shapes")
        image = place == "0" and shape.rank == 3 and shape[-1] in (1, 3, 4) and 0 < bundle.info.pixel_max <= 255
        features.append({
            "name": f"c{index}", "path": place, "dtype": component.dtype.name, "shape": shape.as_list(),
            "encoding": "png" if image else "tensor",
        })
    return structure, features


def _records(bundle: DataBundle, split: str):
    """The split's elements one by one, in label order: photos as resized uint8 pixels (never cached)."""
    if isinstance(bundle, ImageBundle):
        return bundle.pixels(split)
    return bundle.dataset(split, WRITE_BATCH).unbatch()


def _write_split(bundle: DataBundle, split: str, features: list[dict[str, Any]], root: Path, shard_bytes: int,
                 progress) -> list[dict[str, Any]]:
    import tensorflow as tf

    scale, offset = bundle.info.scale, bundle.info.offset

    def encode(*element):
        encoded, exact = [], [tf.constant(True)]
        for feature, value in zip(features, tf.nest.flatten(element)):
            if feature["encoding"] == "png":
                pixels, same = _pixels(value, scale, offset)
                encoded.append(tf.io.encode_png(pixels))
                exact.append(same)
            else:
                encoded.append(tf.io.serialize_tensor(value))
        return tuple(encoded), tf.reduce_all(tf.stack(exact))

    def serialized():
        """Each record as a serialized Example, checked, with the progress bar moved per batch."""
        encoded = _records(bundle, split).map(encode, num_parallel_calls=tf.data.AUTOTUNE).batch(WRITE_BATCH)
        for columns, exact in encoded.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():  # batched: Python sees few
            if not exact.all():
                raise KerasdlError(f"a {split} input of {bundle.info.name!r} is not uint8 pixels scaled by {scale} "
                                   f"and offset by {offset}, so PNG would not keep it exactly")
            for values in zip(*columns):
                yield tf.train.Example(features=tf.train.Features(feature={
                    feature["name"]: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                    for feature, value in zip(features, values)
                })).SerializeToString()
            progress.add(len(exact))

    shards: list[dict[str, Any]] = []
    records = serialized()
    for first in records:  # each shard takes records until it is full; the loop resumes after them
        file = root / f"{split}-{len(shards):05d}.tfrecord"
        with files.replacing(file) as temporary, tf.io.TFRecordWriter(str(temporary)) as writer:
            count = _fill(writer, itertools.chain([first], records), shard_bytes)
        shards.append({"file": file.name, "count": count, "bytes": file.stat().st_size, "sha256": _sha256(file)})
    return shards


def _fill(writer, records: Iterator[bytes], shard_bytes: int) -> int:
    """Write records until the shard reaches `shard_bytes` (or they run out); how many were written."""
    count, size = 0, 0
    for record in records:
        writer.write(record)
        count, size = count + 1, size + len(record) + 16  # TFRecord framing: length, two CRCs
        if size >= shard_bytes:
            break
    return count


def _pixels(value, scale: float, offset: float):
    """(uint8 pixels, whether they give back `value` exactly as the pipeline scales them)."""
    import tensorflow as tf

    if value.dtype == tf.uint8:
        return value, tf.constant(True)
    raw = tf.round((value - offset) / scale)
    pixels = tf.cast(tf.clip_by_value(raw, 0.0, 255.0), tf.uint8)
    return pixels, tf.reduce_all(tf.cast(pixels, tf.float32) * scale + offset == value)


# --- reading -----------------------------------------------------------------------------------------------

def load_shards(
    path: str | Path, *, validation_fraction: float, seed: int, image_size: int | None, cache: str | None = None
) -> ShardBundle:
    """The shard folder at `path` as a streaming bundle, after checking every shard's size and sha256;
    `cache` ("memory" or a folder; default `$KERASDL_SHARD_CACHE`) caches decoded records. The split is the
    shards' own: `validation_fraction` and `seed` are accepted for `load`'s signature and do not move it."""
    root = Path(path).expanduser().resolve()
    manifest = check_manifest(root)
    verify_shards(root, manifest)
    info = _info(manifest["info"])  # validation_fraction and seed: see the module docstring
    if image_size is not None:
        if len(info.input_shape) != 3:
            raise KerasdlError(f"data set {info.name!r} in {root} is not images; drop --image-size")
        if image_size != info.input_shape[0]:
            raise KerasdlError(f"the shards in {root} hold {info.input_shape[0]}-pixel images; drop --image-size "
                               "or shard again with it")
    return ShardBundle(info, root, manifest, cache if cache is not None else os.environ.get(CACHE_ENV))


def _info(values: dict[str, Any]) -> DatasetInfo:
    names = {f.name for f in dataclasses.fields(DatasetInfo)}
    kept = {key: value for key, value in values.items() if key in names}
    return DatasetInfo(**{
        **kept, "input_shape": tuple(kept["input_shape"]), "class_names": tuple(kept["class_names"]),
        "vocabulary": tuple(kept["vocabulary"]),
    })


@dataclass(frozen=True)
class ShardBundle(DataBundle):
    """A data set streamed from its TFRecord shards; labels, batches and samples stream too."""

    info: DatasetInfo
    root: Path
    manifest: dict[str, Any] = field(repr=False)
    cache: str | None = None
    _labels: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def files(self, split: str) -> list[str]:
        return [str(self.root / shard["file"]) for shard in self.manifest["shards"][self._checked(split)]]

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        import tensorflow as tf

        files, autotune = self.files(split), tf.data.AUTOTUNE
        if shuffle_seed is not None and self.cache is None:
            ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=shuffle_seed)
            ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(CYCLE_LENGTH, len(files)),
                               num_parallel_calls=autotune, deterministic=False)
            ds = ds.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed).map(self._decode, num_parallel_calls=autotune,
                                                                    deterministic=False)
        else:
            ds = tf.data.TFRecordDataset(files).map(self._decode, num_parallel_calls=autotune)
            if self.cache is not None:
                ds = ds.cache("" if self.cache == "memory" else self._cache_file(split))
            if shuffle_seed is not None:
                ds = ds.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed)
        # TFRecord files have no known length; the manifest's count lets Keras end each epoch where it ends.
        ds = ds.apply(tf.data.experimental.assert_cardinality(self._count(split)))
        ds = self._augmented(ds.batch(batch_size), augment, shuffle_seed)
        return ds.prefetch(autotune)

    def labels(self, split: str) -> np.ndarray:
        """The split's labels, read from the shards (only their label feature is parsed) once, then kept."""
        import tensorflow as tf

        if split not in self._labels:
            label = self._label_feature()
            keys = {label["name"]: tf.io.FixedLenFeature([], tf.string)}
            ds = tf.data.TFRecordDataset(self.files(split)).map(
                lambda record: tf.io.parse_tensor(tf.io.parse_single_example(record, keys)[label["name"]],
                                                  out_type=label["dtype"]),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            self._labels[split] = np.fromiter(ds.as_numpy_iterator(), dtype=label["dtype"], count=self._count(split))
        return self._labels[split]

    def sample_indices(self, split: str, count: int, seed: int | None = None) -> np.ndarray:
        size = self._count(split)
        order = np.arange(size) if seed is None else np.random.default_rng(seed).permutation(size)
        return np.sort(order[:count])

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        """The inputs at `sample_indices`, picked from the streamed batches (the split is never held)."""
        chosen = self.sample_indices(split, count, seed)
        picked, start = [], 0
        for x in self.batches(split):
            inside = chosen[(chosen >= start) & (chosen < start + len(x))]
            picked.append(x[inside - start])
            start += len(x)
            if not len(chosen) or start > chosen[-1]:
                break
        return np.concatenate(picked)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        raise KerasdlError(f"{self.root} holds TFRecord shards, which stream; this needs the {name} split in "
                           f"memory: use the source data set ({self.manifest['source']}) instead")

    def state(self) -> dict | None:
        return self.manifest["state"]

    def restored(self, state: dict | None) -> ShardBundle:
        """Itself when `state` is the shards' own (their inputs are already prepared; they cannot be again)."""
        if state is not None and state != self.manifest["state"]:
            raise KerasdlError(f"the shards in {self.root} were prepared with another vocabulary than this run's; "
                               f"use --data {self.manifest['source']}, or shard it with the run's settings")
        return self

    def runner_input(self) -> dict:
        return self.manifest["runner_input"]

    def _count(self, split: str) -> int:
        return int(self.manifest["counts"][self._checked(split)])

    def _label_feature(self) -> dict[str, Any]:
        features = self.manifest["features"]
        if len(features) != 2 or features[1]["shape"]:
            raise KerasdlError(f"data set {self.info.name!r} in {self.root} has no single label per sample")
        return features[1]

    def _cache_file(self, split: str) -> str:
        folder = Path(self.cache).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"{self.root.name}-{split}")

    def _decode(self, record):
        """tf.data map: one serialized Example -> the source bundle's (x, y) element, scaled as it scales."""
        import tensorflow as tf

        features = self.manifest["features"]
        parsed = tf.io.parse_single_example(record, {f["name"]: tf.io.FixedLenFeature([], tf.string) for f in features})
        components = []
        for feature in features:
            data, shape = parsed[feature["name"]], feature["shape"]
            if feature["encoding"] == "png":
                pixels = tf.ensure_shape(tf.io.decode_png(data, channels=shape[-1]), shape)
                components.append(tf.cast(pixels, tf.float32) * self.info.scale + self.info.offset)
            else:
                components.append(tf.ensure_shape(tf.io.parse_tensor(data, out_type=feature["dtype"]), shape))
        return tf.nest.pack_sequence_as(_structure(self.manifest["structure"]), components)


def _structure(template: Any) -> Any:
    """The manifest's JSON structure (lists) back as the element's tuples, for `tf.nest.pack_sequence_as`."""
    if isinstance(template, list):
        return tuple(_structure(item) for item in template)
    if isinstance(template, dict):
        return {key: _structure(value) for key, value in template.items()}
    return template
