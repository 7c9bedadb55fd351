"""Fuzz every data reader we own with random and mutated bytes (issue 14, item 3).

Each reader gets a small real file (from $KERASDL_DATA or scikit-learn, built once per module) with bytes
replaced, cut short or followed by junk, or junk alone; JSON records also get one value anywhere in them
replaced by a random JSON value. The reader may return (and what it returns must then be usable) or raise
our DataError with one line; any other exception, or a hang, fails (tests/fuzzing.py).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzing import FUZZ, mutations, only_our_error
from kerasdl.data import bundle, detection, idx, images, mnist, segmentation, series, text, translation
from kerasdl.data.base import data_root
from kerasdl.data.shards import MANIFEST, load_shards, write_shards
from kerasdl.data.tokenizer import Tokenizer
from kerasdl.errors import DataError
from kerasdl.training.run_dir import RunDirectory

DATA = data_root()
SENTENCE = "a gripping , funny film"

# --- damaged inputs ------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """`data` with a few bytes replaced (the header more often), cut short, or followed by junk; or junk."""
    kind = draw(st.sampled_from(["replace", "replace", "truncate", "append", "junk"]))
    if kind == "replace":
        where = st.one_of(st.integers(0, 63), st.integers(0, max(0, len(data) - 1)))
        positions = draw(st.lists(where, min_size=1, max_size=8))
        return mutations(data, positions, draw(st.lists(st.integers(0, 255), min_size=len(positions),
                                                        max_size=len(positions))))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    return draw(st.binary(max_size=256))


@st.composite
def altered(draw, values: Any) -> Any:
    """JSON `values` with one value somewhere inside replaced by a random JSON value, or one key dropped."""
    if isinstance(values, (dict, list)) and values and draw(st.integers(0, 4)):
        key = draw(st.sampled_from(list(values) if isinstance(values, dict) else range(len(values))))
        copy = dict(values) if isinstance(values, dict) else list(values)
        if isinstance(copy, dict) and draw(st.integers(0, 5)) == 0:
            del copy[key]
        else:
            copy[key] = draw(altered(values[key]))
        return copy
    return draw(JSON_VALUES)


@st.composite
def damaged_json(draw, values: Any) -> bytes:
    """The JSON text of `values` damaged as bytes, or of `values` altered as a value."""
    if draw(st.booleans()):
        return draw(damaged(json.dumps(values, indent=1).encode()))
    return json.dumps(draw(altered(values))).encode()


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 array in the IDX format."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG file (8-bit RGB) whose header declares `width` x `height`: its pixel data is one short row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


# --- IDX and the MNIST folder --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_small() -> dict[str, np.ndarray]:
    """The first 40 real MNIST test images and labels, as the four arrays of an MNIST folder."""
    images_, labels = (idx.read_idx(DATA / "mnist" / mnist.FILES[key]) for key in ("x_test", "y_test"))
    return {"x_train": images_[:30], "y_train": labels[:30], "x_test": images_[30:40], "y_test": labels[30:40]}


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
@FUZZ
@given(data=st.data())
def test_idx_reader_raises_only_data_error(compressed, data, mnist_small, tmp_path):
    """A damaged IDX file (its gzip stream, or the raw bytes) reads as the shape its header says, or DataError."""
    raw = idx_bytes(mnist_small["x_train"])
    path = tmp_path / ("images.idx.gz" if compressed else "images.idx")
    path.write_bytes(data.draw(damaged(gzip.compress(raw) if compressed else raw)))
    array = only_our_error(idx.read_idx, path)
    if array is not None:
        assert array.dtype == np.uint8 and array.ndim >= 0


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_mnist_folder_with_a_damaged_file(data, mnist_small, tmp_path):
    """The MNIST source over a folder with one damaged file gives matching splits, or DataError."""
    folder = tmp_path / "mnist"
    folder.mkdir(exist_ok=True)
    for key, name in mnist.FILES.items():
        (folder / name).write_bytes(gzip.compress(idx_bytes(mnist_small[key]), mtime=0))
    victim = folder / mnist.FILES[data.draw(st.sampled_from(sorted(mnist.FILES)))]
    victim.write_bytes(data.draw(damaged(victim.read_bytes())))
    raw = only_our_error(mnist.load_mnist, tmp_path)
    if raw is not None:
        assert len(raw.x_train) == len(raw.y_train) and len(raw.x_test) == len(raw.y_test)


# --- image files and folders ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_images() -> dict[str, bytes]:
    """A real CIFAR-10 JPEG, and the same photo as PNG, GIF and BMP (Pillow, lossless)."""
    from PIL import Image

    jpeg = (DATA / "cifar10" / "train" / "cat" / "0000.jpg").read_bytes()
    found = {"jpg": jpeg}
    with Image.open(io.BytesIO(jpeg)) as photo:
        for suffix, kind in (("png", "PNG"), ("gif", "GIF"), ("bmp", "BMP")):
            stream = io.BytesIO()
            photo.save(stream, kind)
            found[suffix] = stream.getvalue()
    return found


def accepted(check, *args: Any) -> bool:
    """Whether `check(*args)` passed (it may raise only our error)."""
    return only_our_error(lambda: check(*args) or True) is not None


def decodes_in_tensorflow(path: Path) -> None:
    """What `check_image` promises: the training pipeline decodes the file."""
    assert images.decode_and_resize(str(path), 8).shape == (8, 8, 3)


@pytest.mark.parametrize("suffix", ["jpg", "png", "gif", "bmp"])
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_image_file_check_raises_only_data_error(suffix, data, real_images, tmp_path):
    """A damaged image is refused with DataError by both image readers, or TensorFlow decodes it too."""
    path = tmp_path / f"photo.{suffix}"
    path.write_bytes(data.draw(damaged(real_images[suffix])))
    if accepted(images.check_image, path):
        decodes_in_tensorflow(path)
    only_our_error(segmentation._open, path)


@pytest.mark.parametrize("content", [b"", b"name,label\nnot a photo,1\n", b"\xff\xd8\xff\xe0" + b"\x00" * 20])
def test_empty_or_foreign_bytes_with_an_image_suffix_are_refused(content, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match="photo.jpg"):
        images.check_image(path)


@pytest.mark.parametrize("side", [10_000, 100_000])  # past Pillow's warning limit, and past its error limit
def test_decompression_bomb_is_refused_without_decoding(side, tmp_path):
    """A PNG declaring side x side pixels (10^8 or 10^10) fails at once with DataError, before any decoding."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(side, side))
    for read in (images.check_image, segmentation._open):
        with pytest.raises(DataError, match="bomb.png.*pixels"):
            only_our_error(read, path, errors=(), seconds=2.0)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, real_images) -> Path:
    """Two class folders of three real CIFAR-10 photos each."""
    root = tmp_path_factory.mktemp("photos")
    for name in ("cat", "dog"):
        (root / name).mkdir()
        for i, source in enumerate(sorted((DATA / "cifar10" / "train" / name).iterdir())[:3]):
            (root / name / f"{i}.jpg").write_bytes(source.read_bytes())
    return root


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_image_folder_with_a_damaged_file(data, photo_folder):
    """The folder reader `--data FOLDER` uses gives both splits, or a DataError naming the bad file."""
    victim = photo_folder / data.draw(st.sampled_from(["cat", "dog"])) / f"{data.draw(st.integers(0, 2))}.jpg"
    original = victim.read_bytes()
    victim.write_bytes(data.draw(damaged(original)))
    try:
        files = only_our_error(bundle._read_folder, str(photo_folder))
    finally:
        victim.write_bytes(original)
    if files is not None:
        assert files.class_names == ("cat", "dog") and len(files.train[0]) + len(files.test[0]) == 6


# --- labelled text: CSV/TSV, Kim's lines, the temperature series, translation pairs --------------------------

@pytest.fixture(scope="module")
def review_rows() -> list[tuple[str, str]]:
    """40 real movie-review sentences (MR) and their polarity."""
    rows = []
    for label in ("neg", "pos"):
        lines = text.read_utf8(DATA / "mr" / f"rt-polarity.{label}").splitlines()[:20]
        rows += [(line.strip(), label) for line in lines]
    return rows


def csv_text(rows: list[tuple[str, str]], delimiter: str = ",") -> str:
    """`rows` of text and label under a `text,label` header, as a CSV (or TSV) file's contents."""
    stream = io.StringIO()
    csv.writer(stream, delimiter=delimiter, lineterminator="\n").writerows([("text", "label"), *rows])
    return stream.getvalue()


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@FUZZ
@given(data=st.data())
def test_text_file_reader_raises_only_data_error(suffix, data, review_rows, tmp_path):
    path = tmp_path / f"reviews{suffix}"
    path.write_bytes(data.draw(damaged(csv_text(review_rows, "," if suffix == ".csv" else "\t").encode())))
    corpus = only_our_error(text.read_text_file, path)
    if corpus is not None:
        assert len(corpus.class_names) >= 2 and len(corpus.train[0]) == len(corpus.train[1])


def test_huge_field_and_nul_bytes_in_a_text_file(review_rows, tmp_path):
    """A field past csv's size limit (an unclosed quote) is named in a DataError; NUL bytes are text."""
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"' + "x" * 200_000 + ",pos\nfine,neg\n")
    with pytest.raises(DataError, match="reviews.csv:.*field limit"):
        only_our_error(text.read_text_file, path, errors=())
    path.write_text(csv_text([(f"{sentence}\0", label) for sentence, label in review_rows]))
    assert only_our_error(text.read_text_file, path) is not None


def first_lines(path: Path, count: int) -> bytes:
    with path.open("rb") as lines:
        return b"".join(next(lines) for _ in range(count))


@FUZZ
@given(data=st.data())
def test_kim_lines_and_translation_pairs_raise_only_data_error(data, tmp_path):
    """SST-2's `<label> <sentence>` lines, the translation pair files (plain and gzip), damaged."""
    head, pairs = first_lines(DATA / "sst2" / "stsa.binary.dev", 30), first_lines(DATA / "fra-eng" / "fra.txt", 30)
    (tmp_path / "kim").write_bytes(data.draw(damaged(head)))
    (tmp_path / "pairs.txt").write_bytes(data.draw(damaged(pairs)))
    (tmp_path / "lines.en.gz").write_bytes(data.draw(damaged(gzip.compress(pairs, mtime=0))))
    only_our_error(text._read_labelled_lines, tmp_path / "kim")
    only_our_error(translation.read_pairs, tmp_path / "pairs.txt", 2)
    only_our_error(translation._read_lines, tmp_path, "lines.en.gz")
    only_our_error(text._read_gzip, tmp_path / "lines.en.gz")


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_daily_series_reader_raises_only_data_error(data, tmp_path):
    real = (DATA / "daily-min-temperatures" / "daily-min-temperatures.csv").read_bytes()
    path = tmp_path / "days.csv"
    path.write_bytes(data.draw(damaged(real)))
    days = only_our_error(series.read_daily_csv, path, series.TEMPERATURES_SPLITS, "degrees C")
    if days is not None:
        assert np.isfinite(days.values).all()


# --- VOC XML and the split CSV of boxes ----------------------------------------------------------------------

@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_voc_reader_raises_only_data_error(data, tmp_path):
    real = (DATA / "raccoon" / "annotations" / "raccoon-1.xml").read_bytes()
    path = tmp_path / "raccoon-1.xml"
    path.write_bytes(data.draw(damaged(real)))
    annotation = only_our_error(detection.read_voc, path, DATA / "raccoon" / "images", detection.RACCOON_CLASSES)
    if annotation is not None:
        assert annotation.boxes.shape[1] == 5 and ((0 <= annotation.boxes[:, :4]) & (annotation.boxes[:, :4] <= 1)).all()


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_box_split_csv_raises_only_data_error(data, tmp_path):
    """The split CSV naming the annotated images (the real test list), damaged; the real files beside it."""
    for name in ("annotations", "images"):
        if not (tmp_path / name).exists():
            (tmp_path / name).symlink_to(DATA / "raccoon" / name)
    real = first_lines(DATA / "raccoon" / "test_labels.csv", 4)
    (tmp_path / "split.csv").write_bytes(data.draw(damaged(real)))
    only_our_error(detection.read_split, tmp_path, "split.csv", detection.RACCOON_CLASSES)


def test_voc_external_entity_and_entity_expansion_are_refused(tmp_path):
    """XXE (an entity reading a local file) and billion laughs: DataError, and the secret is never read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    real = (DATA / "raccoon" / "annotations" / "raccoon-1.xml").read_text()
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    doctypes = {
        "xxe": f'<!DOCTYPE annotation [<!ENTITY x SYSTEM "file://{secret}">]>',
        "laughs": f'<!DOCTYPE annotation [<!ENTITY l0 "lol">{laughs}]>',
    }
    for kind, doctype in doctypes.items():
        path = tmp_path / f"{kind}.xml"
        entity = "&x;" if kind == "xxe" else "&l9;"
        path.write_text(real.replace("<annotation", doctype + "<annotation", 1).replace("raccoon-1.jpg", entity))
        with pytest.raises(DataError, match=f"{kind}.xml.*entit") as refused:
            only_our_error(detection.read_voc, path, DATA / "raccoon" / "images", detection.RACCOON_CLASSES,
                           errors=(), seconds=5.0)
        assert "TOP-SECRET" not in str(refused.value)


# --- TFRecord shards and their manifest ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digit_shards(tmp_path_factory) -> dict[str, bytes]:
    """scikit-learn's digits written as shards (several per split), as file name -> bytes."""
    root = tmp_path_factory.mktemp("shards") / "digits"
    write_shards("digits", root, shard_mb=0.02, verbose=0)
    return {path.name: path.read_bytes() for path in sorted(root.iterdir())}


def read_shards(folder: Path, contents: dict[str, bytes]) -> None:
    """Write `contents` into `folder`, load it as `--data tfrecord:` does; a loaded set must stream a batch."""
    folder.mkdir(exist_ok=True)
    for name, value in contents.items():
        (folder / name).write_bytes(value)
    shards = only_our_error(load_shards, folder, validation_fraction=0.1, seed=0, image_size=None)
    if shards is not None:
        x, y = next(iter(shards.dataset("test", 16)))
        assert x.shape[1:] == shards.info.input_shape and len(shards.labels("test")) == shards._count("test")


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_shard_manifest_damaged(data, digit_shards, tmp_path):
    manifest = json.loads(digit_shards[MANIFEST])
    read_shards(tmp_path / "shards", {**digit_shards, MANIFEST: data.draw(damaged_json(manifest))})


@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_shard_file_damaged(data, digit_shards, tmp_path):
    name = data.draw(st.sampled_from(sorted(n for n in digit_shards if n != MANIFEST)))
    read_shards(tmp_path / "shards", {**digit_shards, name: data.draw(damaged(digit_shards[name]))})


# --- vocabularies and a run's data_state.json ----------------------------------------------------------------

@pytest.fixture(scope="module")
def review_bundle(review_rows, tmp_path_factory) -> text.TextBundle:
    """A text bundle (with its adapted vocabulary) of the real review sentences."""
    path = tmp_path_factory.mktemp("reviews") / "reviews.tsv"
    path.write_text("".join(f"{t.replace(chr(9), ' ')}\t{label}\n" for t, label in review_rows))
    return text.read_text_file(path).bundle("reviews", validation_fraction=0.2, seed=0, image_size=None)


@FUZZ
@given(data=st.data())
def test_tokenizer_from_json_raises_only_data_error(data, review_bundle):
    values = review_bundle.tokenizer.to_json()
    damaged_values = data.draw(st.one_of(JSON_VALUES, altered(values)))
    tokenizer = only_our_error(Tokenizer.from_json, damaged_values)
    if tokenizer is not None:
        only_our_error(tokenizer.encode, [SENTENCE]) if tokenizer.sequence_length else tokenizer.encode_stream(SENTENCE)


@pytest.fixture(scope="module")
def days() -> series.SeriesBundle:
    """The real daily temperature series as a bundle (its state: the training years' mean and std)."""
    return series.load_daily_min_temperatures(DATA).bundle("days", validation_fraction=0.1, seed=0, image_size=None)


@FUZZ
@given(data=st.data())
def test_data_state_read_and_restored(data, review_bundle, days, tmp_path):
    """data_state.json, damaged, read through the run directory and restored into text and series bundles."""
    kind = data.draw(st.sampled_from(["text", "series", "translation"]))
    state = {"text": review_bundle.state(), "series": days.state(),
             "translation": {"source_tokenizer": review_bundle.tokenizer.to_json(),
                             "target_tokenizer": _target_tokenizer().to_json()}}[kind]
    run = RunDirectory(tmp_path)
    run.data_state_path.write_bytes(data.draw(damaged_json(state)))
    saved = only_our_error(run.read_data_state)
    if kind == "text":
        restored = only_our_error(review_bundle.restored, saved)
        if restored is not None:
            assert restored.inputs_for([SENTENCE]).shape[0] == 1
    elif kind == "series":
        restored = only_our_error(days.restored, saved)
        if restored is not None:
            assert np.isfinite(restored.windows("test")[0]).all()
    elif saved is not None:
        only_our_error(translation.TranslationPairs.from_state, "pairs", saved)


def _target_tokenizer() -> Tokenizer:
    """A target vocabulary as translation saves it ([start] and [end] at their ids)."""
    return Tokenizer(("", "[UNK]", translation.START, translation.END, "le", "chat"), "word", 8)
