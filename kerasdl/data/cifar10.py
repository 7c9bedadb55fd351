"""CIFAR-10: local JPEG folders under `$KERASDL_DATA/cifar10`, else the real download through `keras.datasets`."""

from __future__ import annotations

from pathlib import Path

from kerasdl.data.base import ImageFiles, RawSplits, register_dataset
from kerasdl.data.images import read_image_folder
from kerasdl.errors import DataError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@register_dataset(
    "cifar10",
    description="CIFAR-10, 32x32 color photos of 10 classes (local train/test class folders, or keras.datasets)",
    class_names=CLASS_NAMES,  # Keras's label order, which is also the folders' sorted order
    max_value=255.0,
    augmentation="photo",
    image_size=32,
)
def load_cifar10(data_dir: Path) -> ImageFiles | RawSplits:
    folder = data_dir / "cifar10"
    if folder.is_dir():
        files = read_image_folder(folder)
        if files.class_names != CLASS_NAMES:
            raise DataError(f"{folder} has classes {list(files.class_names)}, not CIFAR-10's {list(CLASS_NAMES)}")
        return files
    return _download(folder)


def _download(folder: Path) -> RawSplits:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as err:  # any network or cache failure means the same thing to the user
        raise DataError(
            f"CIFAR-10 is not in {folder} and could not be downloaded ({type(err).__name__}: {err}); "
            "put train/<class>/*.jpg and test/<class>/*.jpg there (or set KERASDL_DATA to their parent folder)"
        ) from err
    return RawSplits(x_train, y_train.reshape(-1), x_test, y_test.reshape(-1))
