"""MNIST: local IDX files under `$KERASDL_DATA/mnist`, else the real download through `keras.datasets`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasdl.data.base import RawSplits, register_dataset
from kerasdl.data.idx import read_idx
from kerasdl.errors import DataError

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


@register_dataset(
    "mnist",
    description="MNIST, 60,000 train / 10,000 test 28x28 grayscale digits (IDX files or keras.datasets)",
    class_names=tuple(str(d) for d in range(10)),
    max_value=255.0,
)
def load_mnist(data_dir: Path) -> RawSplits:
    folder = data_dir / "mnist"
    present = {key: (folder / name).exists() for key, name in FILES.items()}
    if all(present.values()):
        return _read_local(folder)
    if any(present.values()):
        missing = ", ".join(FILES[key] for key, ok in present.items() if not ok)
        raise DataError(f"{folder} holds only part of MNIST: missing {missing}")
    return _download(folder)


def _read_local(folder: Path) -> RawSplits:
    arrays = {key: read_idx(folder / name) for key, name in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{folder}: MNIST {split} images {images.shape} and labels {labels.shape} do not match"
            )
    return RawSplits(
        arrays["x_train"][..., np.newaxis], arrays["y_train"], arrays["x_test"][..., np.newaxis], arrays["y_test"]
    )


def _download(folder: Path) -> RawSplits:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as err:  # any network or cache failure means the same thing to the user
        raise DataError(
            f"MNIST is not in {folder} and could not be downloaded ({type(err).__name__}: {err}); "
            f"put {', '.join(FILES.values())} there (or set KERASDL_DATA to their parent folder)"
        ) from err
    return RawSplits(x_train[..., np.newaxis], y_train, x_test[..., np.newaxis], y_test)
