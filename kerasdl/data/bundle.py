"""Load a data set into train / validation / test splits, preprocessed, as tf.data pipelines.

Two kinds of bundle share one interface: `ArrayBundle` holds small data sets (digits, MNIST) as float32
arrays; `ImageBundle` streams photos from their files (decode and resize, cached as uint8, then batched,
scaled to [-1, 1] and augmented per batch). Training reads `dataset()`; evaluation and export read
`labels()`, `batches()` and `take()`, so neither needs a whole split decoded in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from sklearn.model_selection import train_test_split

from kerasdl.data.base import DatasetInfo, ImageFiles, RawSplits, data_root, dataset_source, dataset_sources
from kerasdl.data.splits import stratified_split
from kerasdl.errors import FOLDER_HINT, KerasdlError, UnknownNameError

SPLITS = ("train", "validation", "test")
DEFAULT_IMAGE_SIZE = 128  # a folder of the user's photos, unless --image-size says otherwise
SHARDS_PREFIX = "tfrecord:"  # `--data tfrecord:DIR` streams a set sharded by `kerasdl data shard`


class DataBundle(ABC):
    """Preprocessed splits of one data set and its info; every view of the data goes through here."""

    info: DatasetInfo

    @abstractmethod
    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        """A batched, prefetched `tf.data.Dataset` of (inputs, labels); shuffled each epoch if seeded,
        augmented (training only) when `augment` and the data set has an augmentation."""

    @abstractmethod
    def labels(self, split: str) -> np.ndarray:
        """The split's integer labels, in `dataset(split, ...)` order (unshuffled)."""

    def batches(self, split: str, batch_size: int = 256) -> Iterator[np.ndarray]:
        """The split's model inputs as NumPy batches, in label order."""
        for x, _ in self.dataset(split, batch_size).as_numpy_iterator():
            yield x

    def sample_indices(self, split: str, count: int, seed: int | None = None) -> np.ndarray:
        """Sorted indices of `count` samples of the split: the first ones, or a seeded random choice."""
        size = len(self.labels(split))  # the data itself, not info.split_sizes, which callers may leave empty
        order = np.arange(size) if seed is None else np.random.default_rng(seed).permutation(size)
        return np.sort(order[:count])

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        """The model inputs at `sample_indices(split, count, seed)`."""
        return np.concatenate(list(self.batches(split)))[self.sample_indices(split, count, seed)]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as (inputs, labels) arrays: fine for small sets, costly for many photos."""
        return np.concatenate(list(self.batches(self._checked(name)))), self.labels(name)

    def state(self) -> dict | None:
        """What a run must keep to prepare new inputs as this bundle does (a text bundle's vocabulary), saved
        as the run's data_state.json; None when preparation depends on nothing learned from the data."""
        return None

    def restored(self, state: dict | None) -> DataBundle:
        """This bundle preparing its inputs with a saved `state` (a run's vocabulary) instead of its own."""
        return self

    def runner_input(self) -> dict:
        """preprocessing.json's description of raw inputs for the edge runner (besides name, shape, dtype)."""
        return {"kind": "image", "scale": self.info.scale, "offset": self.info.offset, "pixel_max": self.info.pixel_max}

    def _checked(self, split: str) -> str:
        if split not in SPLITS:
            raise KerasdlError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        return split

    def _augmented(self, ds, augment: bool, seed: int | None):
        from kerasdl.data.augmentation import augmentation

        layers = augmentation(self.info.augmentation, seed or 0) if augment else None
        if layers is None:
            return ds
        import tensorflow as tf

        return ds.map(lambda x, y: (layers(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)


@dataclass(frozen=True)
class ArrayBundle(DataBundle):
    """Splits held as float32 arrays (already scaled) and int labels."""

    info: DatasetInfo
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.arrays[self._checked(name)]

    def labels(self, split: str) -> np.ndarray:
        return self.split(split)[1]

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        return self.split(split)[0][self.sample_indices(split, count, seed)]

    def batches(self, split: str, batch_size: int = 256) -> Iterator[np.ndarray]:
        x = self.split(split)[0]
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size]

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        import tensorflow as tf

        x, y = self.split(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = self._augmented(ds.batch(batch_size), augment, shuffle_seed)
        return ds.prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class ImageBundle(DataBundle):
    """Splits held as image files; tf.data decodes and resizes each photo once, then caches it as uint8."""

    info: DatasetInfo
    files: dict[str, tuple[list[str], np.ndarray]]

    def labels(self, split: str) -> np.ndarray:
        return self.files[self._checked(split)][1]

    def pixels(self, split: str):
        """The split's (uint8 resized image, label) pairs, unbatched, in label order and not cached (what
        `kerasdl data shard` writes without holding a split decoded)."""
        import tensorflow as tf

        from kerasdl.data.images import decode_and_resize

        paths, labels = self.files[self._checked(split)]
        size = self.info.input_shape[0]
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        return ds.map(lambda p, y: (decode_and_resize(p, size), y), num_parallel_calls=tf.data.AUTOTUNE)

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        import tensorflow as tf

        paths = self.files[self._checked(split)][0]
        scale, offset = self.info.scale, self.info.offset
        ds = self.pixels(split).cache()
        if shuffle_seed is not None:
            ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32) * scale + offset, y))
        return self._augmented(ds, augment, shuffle_seed).prefetch(tf.data.AUTOTUNE)

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        paths = self.files[self._checked(split)][0]
        return self.inputs_for([paths[i] for i in self.sample_indices(split, count, seed)])

    def inputs_for(self, paths: list[str]) -> np.ndarray:
        """Model inputs for these image files, decoded, resized and scaled exactly as every split is."""
        subset = ImageBundle(self.info, {"test": (list(paths), np.zeros(len(paths), np.int32))})
        return np.concatenate(list(subset.batches("test")))


def load(
    name: str, *, validation_fraction: float = 0.1, seed: int = 0, image_size: int | None = None,
    target: str | None = None,
) -> DataBundle:
    """Load data set `name` (registered, or a folder of images with one sub-folder per class), hold out a
    stratified validation split (fixed by `seed`), scale to [-1, 1]; photos are resized to `image_size`.
    With `target`, `name` is a CSV/TSV table of features and that column is what to predict."""
    if not 0.0 < validation_fraction < 1.0:
        raise KerasdlError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if target is not None:
        from kerasdl.data.tabular import read_table

        if not is_text_file(name):
            raise KerasdlError(f"--target names a column of a CSV/TSV table; {name!r} is not one")
        path = Path(name).expanduser().resolve()
        return read_table(path, target).bundle(path.name, validation_fraction=validation_fraction, seed=seed,
                                               image_size=image_size)
    if name.startswith(SHARDS_PREFIX):  # written by `kerasdl data shard`: already split and prepared
        from kerasdl.data.shards import load_shards

        return load_shards(name.removeprefix(SHARDS_PREFIX), validation_fraction=validation_fraction, seed=seed,
                           image_size=image_size)
    if is_text_file(name):
        from kerasdl.data.text import read_text_file

        path = Path(name).expanduser().resolve()
        return read_text_file(path).bundle(path.name, validation_fraction=validation_fraction, seed=seed,
                                           image_size=image_size)
    if is_folder(name):
        return _image_bundle(
            str(Path(name).expanduser().resolve()), _read_folder(name), 255.0, "photo",
            image_size or DEFAULT_IMAGE_SIZE, validation_fraction, seed,
        )
    source = _source(name)
    raw = source.load(data_root())
    if not isinstance(raw, (RawSplits, ImageFiles)):  # a BundleSource: masks, boxes... split their own way
        return raw.bundle(name, validation_fraction=validation_fraction, seed=seed, image_size=image_size)
    if isinstance(raw, ImageFiles):
        size = image_size or source.image_size or DEFAULT_IMAGE_SIZE
        return _image_bundle(name, raw, source.max_value, source.augmentation, size, validation_fraction, seed)
    if image_size is not None and image_size != raw.x_train.shape[1]:
        raise KerasdlError(f"data set {name!r} has a fixed image size ({raw.x_train.shape[1]}); drop --image-size")
    return _array_bundle(name, raw, source.class_names, source.max_value, source.augmentation, validation_fraction, seed)


def is_folder(name: str) -> bool:
    """Whether `--data` names a folder rather than a registered data set."""
    return Path(name).expanduser().is_dir() and name not in {source.name for source in dataset_sources()}


def is_text_file(name: str) -> bool:
    """Whether `--data` names a user's CSV/TSV file of texts and labels."""
    from kerasdl.data.text import TEXT_SUFFIXES

    path = Path(name).expanduser()
    return path.suffix.lower() in TEXT_SUFFIXES and path.is_file()


def _source(name: str):
    try:
        return dataset_source(name)
    except UnknownNameError as err:
        raise UnknownNameError("data set", name, err.known, FOLDER_HINT) from None


def _read_folder(name: str) -> ImageFiles:
    from kerasdl.data.images import read_image_folder

    return read_image_folder(name)


def _array_bundle(
    name: str, raw: RawSplits, class_names: tuple[str, ...], max_value: float, augmentation: str,
    validation_fraction: float, seed: int,
) -> ArrayBundle:
    x_train, x_val, y_train, y_val = train_test_split(
        raw.x_train, raw.y_train, test_size=validation_fraction, stratify=raw.y_train, random_state=seed
    )
    scale, offset = 2.0 / max_value, -1.0

    def prepare(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x.astype(np.float32) * scale + offset), y.astype(np.int32)

    arrays = {
        "train": prepare(x_train, y_train),
        "validation": prepare(x_val, y_val),
        "test": prepare(raw.x_test, raw.y_test),
    }
    info = DatasetInfo(
        name=name,
        input_shape=tuple(int(d) for d in raw.x_train.shape[1:]),
        num_classes=len(class_names),
        class_names=class_names,
        split_sizes={split: len(arrays[split][0]) for split in SPLITS},
        scale=scale,
        offset=offset,
        pixel_max=max_value,
        augmentation=augmentation,
    )
    return ArrayBundle(info, arrays)


def _image_bundle(
    name: str, raw: ImageFiles, max_value: float, augmentation: str, size: int, validation_fraction: float, seed: int
) -> ImageBundle:
    train_paths, val_paths, train_labels, val_labels = stratified_split(
        *raw.train, validation_fraction, seed, f"{name} (validation split)"
    )
    files = {
        "train": (list(train_paths), np.asarray(train_labels, np.int32)),
        "validation": (list(val_paths), np.asarray(val_labels, np.int32)),
        "test": (list(raw.test[0]), np.asarray(raw.test[1], np.int32)),
    }
    info = DatasetInfo(
        name=name,
        input_shape=(size, size, 3),
        num_classes=len(raw.class_names),
        class_names=raw.class_names,
        split_sizes={split: len(files[split][0]) for split in SPLITS},
        scale=2.0 / max_value,
        offset=-1.0,
        pixel_max=max_value,
        augmentation=augmentation,
    )
    return ImageBundle(info, files)
