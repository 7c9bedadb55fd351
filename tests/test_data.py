"""Data registry and loaders: real digits and MNIST, the download path (mocked), and every error path."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from kerasdl import data
from kerasdl.data.idx import read_idx
from kerasdl.data.mnist import FILES
from kerasdl.errors import DataError, KerasdlError, UnknownNameError


def test_unknown_name_lists_known_ones():
    known = (
        r"known: cats-vs-dogs, cifar10, daily-min-temperatures, diabetes, digits, en-cmn, english-corpus, english-text, fra-eng, "
        r"imdb, isbi-em-membrane, mnist, mr, multi30k, oxford-pets, raccoon, shakespeare, sst2 \(or a folder of images "
        r"with one sub-folder per class, or a CSV/TSV of text and label\)"
    )
    with pytest.raises(UnknownNameError, match=f"unknown data set 'nope'; {known}"):
        data.load("nope")


def test_digits_splits_are_real_scaled_and_stratified():
    bundle = data.load("digits", seed=0)
    assert bundle.info.input_shape == (8, 8, 1)
    assert bundle.info.split_sizes == {"train": 1293, "validation": 144, "test": 360}
    x, y = bundle.split("train")
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() == 1.0
    assert np.bincount(bundle.split("test")[1]).min() >= 35  # 20% of each class (174-183 per class)


def test_seed_fixes_validation_split_and_test_split_never_moves():
    a, b, c = data.load("digits", seed=0), data.load("digits", seed=0), data.load("digits", seed=1)
    np.testing.assert_array_equal(a.split("validation")[0], b.split("validation")[0])
    assert not np.array_equal(a.split("validation")[0], c.split("validation")[0])
    np.testing.assert_array_equal(a.split("test")[0], c.split("test")[0])


def test_dataset_batches_and_reshuffles_each_epoch():
    bundle = data.load("digits")
    ds = bundle.dataset("train", batch_size=64, shuffle_seed=0)
    x, y = next(iter(ds))
    assert tuple(x.shape) == (64, 8, 8, 1) and tuple(y.shape) == (64,)
    first, second = (next(iter(ds))[1].numpy() for _ in range(2))
    assert not np.array_equal(first, second)
    with pytest.raises(KerasdlError, match="unknown split"):
        bundle.split("dev")


def test_mnist_reads_the_real_idx_files():
    bundle = data.load("mnist")
    assert bundle.info.input_shape == (28, 28, 1)
    assert bundle.info.split_sizes == {"train": 54000, "validation": 6000, "test": 10000}
    assert np.bincount(bundle.split("test")[1]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def empty_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASDL_DATA", str(tmp_path))
    return tmp_path


def test_missing_mnist_with_no_network_says_where_to_put_it(empty_data_root, monkeypatch):
    import keras

    def offline():
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match=f"not in {empty_data_root / 'mnist'}.*train-images-idx3-ubyte.gz"):
        data.load("mnist")


def test_missing_mnist_uses_the_download_path(empty_data_root, monkeypatch):
    import keras

    rng = np.random.default_rng(0)
    fake = lambda n: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10)  # noqa: E731
    calls = []
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: calls.append(1) or (fake(100), fake(20)))
    bundle = data.load("mnist")
    assert calls == [1]
    assert bundle.info.split_sizes == {"train": 90, "validation": 10, "test": 20}


@pytest.fixture
def damaged_mnist(tmp_path, monkeypatch):
    """A copy of the real MNIST folder (taken before KERASDL_DATA moves) that a test may damage."""
    copy = shutil.copytree(data.data_root() / "mnist", tmp_path / "mnist")
    monkeypatch.setenv("KERASDL_DATA", str(tmp_path))
    return copy


def test_truncated_gzip_is_detected_and_named(damaged_mnist):
    path = damaged_mnist / FILES["y_test"]
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match=f"{path}: corrupt or truncated"):
        data.load("mnist")


def test_truncated_idx_payload_is_detected_and_named(damaged_mnist):
    path = damaged_mnist / FILES["y_train"]
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[:-100]))
    with pytest.raises(DataError, match=r"header says shape \(60000,\) \(60000 bytes\) but 59900 bytes follow"):
        data.load("mnist")


def test_file_that_is_not_idx_is_named(damaged_mnist):
    path = damaged_mnist / FILES["x_test"]
    path.write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(DataError, match=f"{path}: not an IDX file"):
        read_idx(path)


def test_partial_mnist_folder_names_the_missing_files(damaged_mnist):
    (damaged_mnist / FILES["x_test"]).unlink()
    with pytest.raises(DataError, match="missing t10k-images-idx3-ubyte.gz"):
        data.load("mnist")
