"""Load a registered data set into train / validation / test splits, preprocessed, as tf.data pipelines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from kerasdl.data.base import DatasetInfo, data_root, dataset_source
from kerasdl.errors import KerasdlError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DataBundle:
    """Preprocessed splits as float32 arrays and int labels, plus the data set's info.

    Arrays stay available for evaluation and quantization; `dataset()` gives the tf.data view that
    training consumes.
    """

    info: DatasetInfo
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.arrays:
            raise KerasdlError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        return self.arrays[name]

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None):
        """A batched, prefetched `tf.data.Dataset` of (inputs, labels); shuffled each epoch if seeded."""
        import tensorflow as tf

        x, y = self.split(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load(name: str, *, validation_fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """Load data set `name`, hold out a stratified validation split (fixed by `seed`), scale to [-1, 1]."""
    if not 0.0 < validation_fraction < 1.0:
        raise KerasdlError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    source = dataset_source(name)
    raw = source.load(data_root())
    x_train, x_val, y_train, y_val = train_test_split(
        raw.x_train, raw.y_train, test_size=validation_fraction, stratify=raw.y_train, random_state=seed
    )
    scale, offset = 2.0 / source.max_value, -1.0

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
        num_classes=len(source.class_names),
        class_names=source.class_names,
        split_sizes={split: len(arrays[split][0]) for split in SPLITS},
        scale=scale,
        offset=offset,
        pixel_max=source.max_value,
    )
    return DataBundle(info, arrays)
