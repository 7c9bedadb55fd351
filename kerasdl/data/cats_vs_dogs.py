"""Cats vs dogs photos: `$KERASDL_DATA/cats-vs-dogs/{train,test}/{cat,dog}/*.jpg`, else downloaded once
through tensorflow-datasets and written into that same layout (a fixed 20% becomes the test split)."""

from __future__ import annotations

from pathlib import Path

from kerasdl.data.base import ImageFiles, register_dataset
from kerasdl.data.images import read_image_folder
from kerasdl.errors import DataError

CLASS_NAMES = ("cat", "dog")  # tensorflow-datasets' label order
TEST_EVERY = 5  # every 5th downloaded photo is a test photo


@register_dataset(
    "cats-vs-dogs",
    description="Dogs vs. Cats (Asirra/Kaggle) color photos of any size (local class folders, or tfds)",
    class_names=CLASS_NAMES,
    max_value=255.0,
    augmentation="photo",
    image_size=64,  # the size that bought the best accuracy per CPU minute here (README: Cats vs dogs)
)
def load_cats_vs_dogs(data_dir: Path) -> ImageFiles:
    folder = data_dir / "cats-vs-dogs"
    if not folder.is_dir():
        _download(folder)
    return read_image_folder(folder)


def _download(folder: Path) -> None:
    """Fetch tfds's `cats_vs_dogs` (JPEG bytes, not decoded) and write each photo to its split and class."""
    try:
        import tensorflow_datasets as tfds

        photos = tfds.load(
            "cats_vs_dogs", split="train", as_supervised=True, decoders={"image": tfds.decode.SkipDecoding()}
        )
    except Exception as err:  # any network or cache failure means the same thing to the user
        raise DataError(
            f"cats vs dogs is not in {folder} and could not be downloaded ({type(err).__name__}: {err}); "
            "put train/{cat,dog}/*.jpg and test/{cat,dog}/*.jpg there (or set KERASDL_DATA to their parent folder)"
        ) from err
    partial = folder.with_name(folder.name + ".partial")  # renamed when complete: no half-written data set
    for index, (jpeg, label) in enumerate(photos.as_numpy_iterator()):
        target = partial / ("test" if index % TEST_EVERY == 0 else "train") / CLASS_NAMES[label]
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{CLASS_NAMES[label]}.{index}.jpg").write_bytes(jpeg)
    partial.rename(folder)
