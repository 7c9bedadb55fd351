"""Photo data: class folders streamed through tf.data, the registered cifar10 / cats-vs-dogs, errors, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kerasdl import data
from kerasdl.cli import main
from kerasdl.data.augmentation import augmentation
from kerasdl.errors import DataError, KerasdlError


def photo(path, size=(40, 30), mode="RGB", value=None, seed=0):
    """A small image file; its format follows the suffix (JPEG, PNG, ...)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    if value is not None:
        pixels[:] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """Two classes of mixed files: JPEG and PNG, RGB, grayscale and RGBA, of different sizes."""
    root = tmp_path / "photos"
    for i in range(6):
        photo(root / "bright" / f"{i}.jpg", size=(40 + i, 30), value=230)
        photo(root / "dark" / f"{i}.png", size=(20, 50 + i), mode=("L", "RGBA", "RGB")[i % 3], value=20)
    return root


def test_registered_photo_sets_are_the_real_files():
    cats = data.load("cats-vs-dogs", image_size=64)
    assert cats.info.class_names == ("cat", "dog") and cats.info.input_shape == (64, 64, 3)
    assert cats.info.split_sizes == {"train": 1800, "validation": 200, "test": 1000}
    assert np.bincount(cats.labels("test")).tolist() == [500, 500]
    cifar = data.load("cifar10")
    assert cifar.info.input_shape == (32, 32, 3) and cifar.info.class_names[3] == "cat"
    assert cifar.info.split_sizes == {"train": 9000, "validation": 1000, "test": 2000}
    x = cifar.take("test", 3)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32 and -1.0 <= x.min() < x.max() <= 1.0


def test_a_class_folder_loads_mixed_files_with_fixed_splits(folder):
    bundle = data.load(str(folder), image_size=16, seed=0)
    assert bundle.info.class_names == ("bright", "dark") and bundle.info.input_shape == (16, 16, 3)
    assert sum(bundle.info.split_sizes.values()) == 12 and bundle.info.split_sizes["test"] >= 2
    x, y = bundle.split("test")
    assert x.shape[1:] == (16, 16, 3)
    np.testing.assert_array_less(0.5, x[y == 0].mean(axis=(1, 2, 3)))  # bright stays bright, gray or color
    np.testing.assert_array_less(x[y == 1].mean(axis=(1, 2, 3)), -0.5)
    again = data.load(str(folder), image_size=16, seed=0)
    np.testing.assert_array_equal(again.split("test")[0], x)


def test_train_and_test_subfolders_are_used_as_given(folder, tmp_path):
    root = tmp_path / "split"
    for split in ("train", "test"):
        for cls in ("bright", "dark"):
            for f in (folder / cls).iterdir():
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                (root / split / cls / f.name).write_bytes(f.read_bytes())
    bundle = data.load(str(root), image_size=8)
    assert bundle.info.split_sizes["test"] == 12


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: [p.unlink() for p in root.rglob("*.*")], "class folder .* is empty"),
        (lambda root: [p.unlink() for p in (root / "dark").iterdir()] and (root / "dark").rmdir(), "one class only"),
        (lambda root: (root / "dark" / "notes.jpg").write_text("not a picture"), r"dark/notes.jpg is not an image"),
        (lambda root: photo(root / "dark" / "x.tiff"), r"x.tiff is a TIFF image; supported: BMP, GIF, JPEG, PNG"),
    ],
    ids=["empty", "one-class", "not-an-image", "unsupported-format"],
)
def test_bad_folders_fail_in_one_line_that_names_the_problem(folder, damage, message):
    damage(folder)
    with pytest.raises(DataError, match=message):
        data.load(str(folder))


def test_a_folder_without_classes_and_an_unknown_name(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no class sub-folders"):
        data.load(str(tmp_path / "empty"))
    assert main(["train", "cnn-small", "--data", str(tmp_path / "nope"), "--epochs", "1"]) == 2
    assert "or a folder of images with one sub-folder per class" in capsys.readouterr().err


def test_fixed_size_sets_refuse_image_size():
    with pytest.raises(KerasdlError, match="fixed image size"):
        data.load("digits", image_size=16)


def test_augmentation_changes_training_batches_only(folder):
    bundle = data.load(str(folder), image_size=16)
    plain = next(iter(bundle.dataset("train", 64, shuffle_seed=0)))[0].numpy()
    augmented = next(iter(bundle.dataset("train", 64, shuffle_seed=0, augment=True)))[0].numpy()
    assert plain.shape == augmented.shape and not np.allclose(plain, augmented)
    assert -1.0 <= augmented.min() and augmented.max() <= 1.0
    assert augmentation("none", 0) is None
    assert data.load("digits").info.augmentation == "none"  # a mirrored 2 is no 2


def test_photo_splits_stream_in_batches():
    """Evaluation and export read photos a batch at a time, never a whole split of decoded floats."""
    bundle = data.load("cats-vs-dogs", image_size=32)
    sizes = [len(batch) for batch in bundle.batches("test", 256)]
    assert sizes == [256, 256, 256, 232]
    element = bundle.dataset("test", 8).element_spec[0]
    assert element.dtype.name == "float32" and tuple(element.shape) == (None, 32, 32, 3)
