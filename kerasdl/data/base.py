"""The one data API: a registry of sources, each giving arrays that become a tf.data.Dataset per split."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Union

import numpy as np

from kerasdl.errors import UnknownNameError

DEFAULT_DATA_ROOT = "~/.kerasdl/data"


def data_root() -> Path:
    """Where local copies of data sets live: `$KERASDL_DATA`, else `~/.kerasdl/data`."""
    return Path(os.environ.get("KERASDL_DATA", DEFAULT_DATA_ROOT)).expanduser()


@dataclass(frozen=True)
class RawSplits:
    """What a source returns: raw train and test arrays (images as uint8, HWC) and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class ImageFiles:
    """What a photo source returns: image files (JPEG/PNG/GIF/BMP, any size) and labels per split.

    Decoding, resizing and augmentation happen in the tf.data pipeline, so no split is held decoded.
    """

    train: tuple[list[str], np.ndarray]
    test: tuple[list[str], np.ndarray]
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class DatasetInfo:
    """What models, exporters and runners need to know about a data set."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    split_sizes: dict[str, int] = field(default_factory=dict)
    # Raw pixels p in [0, pixel_max] map to model inputs as p * scale + offset ([-1, 1], the
    # curriculum's Normalize(0.5, 0.5)); runners apply the same map to raw inputs.
    scale: float = 1.0
    offset: float = 0.0
    pixel_max: float = 255.0
    augmentation: str = "none"  # the training augmentation that suits the data ("photo" or "none")
    # Text: the token of each id (0 pads, 1 is out-of-vocabulary), for Embeddings and pretrained vectors.
    # The run keeps it in data_state.json; config.json records only its size.
    vocabulary: tuple[str, ...] = field(default=(), repr=False)
    # Translation: decoder positions per pair ([start] + target, or target + [end]); num_classes then counts
    # the target vocabulary and `vocabulary` is the source's. 0 for every other kind of data.
    target_length: int = 0

    @property
    def vocabulary_size(self) -> int:
        """Token ids a model's Embedding takes (padding and OOV included); 0 for data that is not text."""
        return len(self.vocabulary)

    def to_json(self) -> dict:
        values = asdict(self)
        del values["vocabulary"]
        return {**values, "vocabulary_size": self.vocabulary_size}


class BundleSource(Protocol):
    """What a source of another kind of data returns (images with masks, images with boxes): it splits and
    prepares itself into its own `DataBundle`."""

    def bundle(self, name: str, *, validation_fraction: float, seed: int, image_size: int | None) -> Any: ...


Loader = Callable[[Path], Union[RawSplits, ImageFiles, BundleSource]]


@dataclass(frozen=True)
class DatasetSource:
    """A registered data set: how to load it and what it is."""

    name: str
    load: Loader
    description: str
    class_names: tuple[str, ...]
    max_value: float  # largest raw pixel value, used to scale inputs to [-1, 1]
    augmentation: str = "none"
    image_size: int | None = None  # photo sets: default side length images are resized to


_SOURCES: dict[str, DatasetSource] = {}


def register_dataset(
    name: str,
    *,
    description: str,
    class_names: tuple[str, ...],
    max_value: float,
    augmentation: str = "none",
    image_size: int | None = None,
):
    """Decorator: register `load(data_dir) -> RawSplits | ImageFiles` under `name`."""

    def decorate(load: Loader) -> Loader:
        _SOURCES[name] = DatasetSource(name, load, description, class_names, max_value, augmentation, image_size)
        return load

    return decorate


def dataset_source(name: str) -> DatasetSource:
    if name not in _SOURCES:
        raise UnknownNameError("data set", name, list(_SOURCES))
    return _SOURCES[name]


def dataset_sources() -> list[DatasetSource]:
    return [_SOURCES[name] for name in sorted(_SOURCES)]
