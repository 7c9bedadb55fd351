"""Folders of photos, one sub-folder per class: checked up front, then decoded and resized by tf.data.

A folder holds either `train/` and `test/` (each with one sub-folder per class, the layout of the
cats-vs-dogs and CIFAR-10 copies) or the class sub-folders directly; then a fixed 20% of each class
becomes the test split. Every file is checked once before training (its header by Pillow, which refuses a
decompression bomb; its bytes decoded by TensorFlow), so a stray non-image or a truncated photo fails at once
with its name instead of in the middle of an epoch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from kerasdl.data.base import ImageFiles
from kerasdl.data.splits import stratified_split
from kerasdl.errors import DataError

FORMATS = {"JPEG", "PNG", "GIF", "BMP"}  # what tf.io.decode_image reads
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0  # a folder's test split never moves, whatever the run's seed
SPLIT_FOLDERS = ("train", "test")


def read_image_folder(root: str | Path) -> ImageFiles:
    """The image files and labels of `root`, split into train and test; a clear error for any bad layout."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images (expected one sub-folder per class)")
    if all((root / split).is_dir() for split in SPLIT_FOLDERS):
        train_paths, train_labels, names = _scan_classes(root / "train")
        test_paths, test_labels, test_names = _scan_classes(root / "test", names)
        return ImageFiles((train_paths, train_labels), (test_paths, test_labels), names)
    paths, labels, names = _scan_classes(root)
    train_paths, test_paths, train_labels, test_labels = stratified_split(
        paths, labels, TEST_FRACTION, TEST_SPLIT_SEED, f"{root} (test split)"
    )
    return ImageFiles((list(train_paths), train_labels), (list(test_paths), test_labels), names)


def _scan_classes(
    folder: Path, expected: tuple[str, ...] | None = None
) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Image paths and integer labels of a folder with one sub-folder per class (sorted names)."""
    names = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not names:
        raise DataError(f"{folder} has no class sub-folders (expected one sub-folder of images per class)")
    if len(names) < 2:
        raise DataError(f"{folder} has one class only ({names[0]!r}); a classifier needs at least two")
    if expected is not None and names != expected:
        raise DataError(f"{folder} has classes {list(names)} but train/ has {list(expected)}")
    paths, labels = [], []
    for label, name in enumerate(names):
        files = sorted(p for p in (folder / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"class folder {folder / name} is empty")
        for path in files:
            check_image(path)
        paths += [str(path) for path in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int32), names


def check_image(path: Path) -> tuple[int, int]:
    """The (width, height) of `path`, or a DataError naming it unless TensorFlow decodes it as training will:
    Pillow reads the header first (format, size: a decompression bomb is refused before any decoding), then
    TensorFlow decodes it once, the only test of a truncated or corrupt file that holds for every format."""
    import tensorflow as tf

    with open_image(path) as image:
        if image.format not in FORMATS:
            raise DataError(f"{path} is a {image.format} image; supported: {', '.join(sorted(FORMATS))}")
        size = image.size
    try:
        tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    except tf.errors.OpError as err:
        raise DataError(_corrupt(path, err)) from None
    return size


def open_image(path: Path):
    """`PIL.Image.open(path)`, with anything that is not an image, or too large to decode, as a DataError."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # past MAX_IMAGE_PIXELS Pillow only warns
        try:
            return Image.open(path)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise DataError(f"{path} declares more than {Image.MAX_IMAGE_PIXELS:,} pixels: a decompression bomb "
                            "or a corrupt header") from None
        except Exception as err:  # Pillow's plugins raise many types on garbage; every one means the same
            raise DataError(f"{path} is not an image file ({type(err).__name__}); remove it or move it out") from None


def load_image(path: Path, image) -> None:
    """Decode an opened image whole; a truncated or corrupt one raises a DataError naming `path`."""
    try:
        image.load()
    except Exception as err:  # as in open_image: Pillow's decoders raise many types on corrupt data
        image.close()
        raise DataError(_corrupt(path, err)) from None


def _corrupt(path: Path, err: Exception) -> str:
    return f"{path} is a truncated or corrupt image ({type(err).__name__}); remove it or replace it"


def decode_and_resize(path, size: int):
    """tf.data map: file -> RGB uint8 image of size x size (grayscale, RGBA, PNG and JPEG all handled).

    Bilinear with antialiasing, rounded to uint8: what Pillow's BILINEAR resize gives the edge runner.
    """
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
