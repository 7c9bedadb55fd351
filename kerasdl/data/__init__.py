"""Data sets: one registry, one API (`load(name) -> DataBundle` with a tf.data.Dataset per split and info)."""

# Each module registers its sources on import.
from kerasdl.data import (  # noqa: F401
    cats_vs_dogs, cifar10, detection, digits, mnist, segmentation, series, tabular, text, translation,
)
from kerasdl.data.base import (
    DatasetInfo,
    ImageFiles,
    RawSplits,
    data_root,
    dataset_source,
    dataset_sources,
    register_dataset,
)
from kerasdl.data.bundle import SPLITS, ArrayBundle, DataBundle, ImageBundle, is_folder, is_text_file, load

__all__ = [
    "SPLITS",
    "ArrayBundle",
    "DataBundle",
    "DatasetInfo",
    "ImageBundle",
    "ImageFiles",
    "RawSplits",
    "data_root",
    "dataset_source",
    "dataset_sources",
    "is_folder",
    "is_text_file",
    "load",
    "register_dataset",
]
