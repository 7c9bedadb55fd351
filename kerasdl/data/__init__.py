"""Data sets: one registry, one API (`load(name) -> DataBundle` with a tf.data.Dataset per split and info)."""

from kerasdl.data import digits, mnist  # noqa: F401  (registers the sources)
from kerasdl.data.base import DatasetInfo, RawSplits, data_root, dataset_source, dataset_sources, register_dataset
from kerasdl.data.bundle import SPLITS, DataBundle, load

__all__ = [
    "SPLITS",
    "DataBundle",
    "DatasetInfo",
    "RawSplits",
    "data_root",
    "dataset_source",
    "dataset_sources",
    "load",
    "register_dataset",
]
