"""Folders of photos, one sub-folder per class: checked up front, then decoded and resized by tf.data.

A folder holds either `train/` and `test/` (each with one sub-folder per class, the layout of the
cats-vs-dogs and CIFAR-10 copies) or the class sub-folders directly; then a fixed 20% of each class
becomes the test split. Every file is opened once with Pillow before training, so a stray non-image
fails at once with its name instead of in the middle of an epoch.
"""

from __future__ import annotations

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


def check_image(path: Path) -> None:
    """Raise a DataError naming `path` unless it is an image file that TensorFlow can decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            kind = image.format
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path} is not an image file ({err.__class__.__name__}); remove it or move it out") from err
    if kind not in FORMATS:
        raise DataError(f"{path} is a {kind} image; supported: {', '.join(sorted(FORMATS))}")


def decode_and_resize(path, size: int):
    """tf.data map: file -> RGB uint8 image of size x size (grayscale, RGBA, PNG and JPEG all handled).

    Bilinear with antialiasing, rounded to uint8: what Pillow's BILINEAR resize gives the edge runner.
    """
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
