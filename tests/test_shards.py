"""TFRecord shards: `kerasdl data shard` writes a set exactly, `--data tfrecord:DIR` streams it (never in
memory), and a damaged shard or manifest is named before training starts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kerasdl.cli import main
from kerasdl.data import SPLITS, load
from kerasdl.data.base import data_root
from kerasdl.data.shards import MANIFEST, ShardBundle, load_shards, write_shards
from kerasdl.errors import DataError, KerasdlError

SETTINGS = {"validation_fraction": 0.1, "seed": 0, "image_size": None}
PHOTO_SIZE = 32
# Digits from shards and from the registered set train the same MLP (seed 0) on the same split; only the
# order of a shuffled epoch differs (interleaved shards), so test accuracies differ by a few of 360 images.
ACCURACY_TOLERANCE = 0.03
# The memory test. MNIST's train + validation + test as the float32 inputs the MLP reads: 70,000 x 784 x 4 B
# = 219 MB. Measured (2 busy cores, MALLOC_ARENA_MAX=2, batch 256): peak RSS of a 1-epoch run from all 224
# MNIST shards exceeds the same run on 3 of them (948 digits) by 18 MB (45 MB with glibc's default arenas);
# the same run from the in-memory registered `mnist` by 432 MB (default arenas).
MEMORY_CAP_MB = 48  # the set is 4.6x this
SET_MB = 70_000 * 784 * 4 / 2**20
PEAK_RSS = textwrap.dedent(
    """
    import resource, sys
    from kerasdl.cli import main
    code = main(sys.argv[1:])
    print("PEAK_RSS_KB", code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def photo_folder(root: Path, per_class: int = 12) -> Path:
    """A small folder of real cats-vs-dogs photos (various sizes), in the train/ and test/ layout."""
    source = data_root() / "cats-vs-dogs"
    for split, count in (("train", per_class), ("test", per_class // 2)):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for path in sorted((source / split / name).glob("*.jpg"))[:count]:
                shutil.copy(path, root / split / name / path.name)
    return root


@pytest.fixture(scope="module")
def shard_sets(tmp_path_factory):
    """{kind: (source name, shard folder)} for an array set, a photo folder and a text set, with several shards."""
    root = tmp_path_factory.mktemp("shards")
    photos = str(photo_folder(root / "photos"))
    sources = {"array": ("digits", None, 0.02), "photo": (photos, PHOTO_SIZE, 0.02), "text": ("sst2", None, 0.5)}
    sets = {}
    for kind, (name, size, shard_mb) in sources.items():
        write_shards(name, root / kind, shard_mb=shard_mb, image_size=size, verbose=0)
        sets[kind] = (name, root / kind)
    return sets


def source_and_shards(shard_sets, kind: str):
    name, folder = shard_sets[kind]
    size = PHOTO_SIZE if kind == "photo" else None
    settings = {**SETTINGS, "image_size": size}
    return load(name, **settings), load(f"tfrecord:{folder}", **settings)


@pytest.mark.parametrize("kind", ["array", "photo", "text"])
def test_shards_give_back_the_model_inputs_and_labels_of_the_source(shard_sets, kind):
    source, shards = source_and_shards(shard_sets, kind)
    assert isinstance(shards, ShardBundle)
    assert shards.info == source.info and shards.state() == source.state()
    assert shards.runner_input() == source.runner_input()
    for split in SPLITS:
        assert np.array_equal(shards.labels(split), source.labels(split))
        assert np.array_equal(np.concatenate(list(shards.batches(split, 64))), np.concatenate(list(source.batches(split, 64))))
    assert np.array_equal(shards.take("test", 5, seed=3), source.take("test", 5, seed=3))


@pytest.mark.parametrize("cache", [None, "memory", "folder"])
def test_each_shuffled_epoch_streams_every_record_once_from_several_shards(shard_sets, tmp_path, cache):
    _, folder = shard_sets["array"]
    shards = load_shards(folder, **SETTINGS, cache=str(tmp_path / "cache") if cache == "folder" else cache)
    assert len(shards.files("train")) > 3
    epochs = shards.dataset("train", 100, shuffle_seed=1).repeat(2)
    labels = np.concatenate([y for _, y in epochs.as_numpy_iterator()]).reshape(2, -1)
    for epoch in labels:
        assert not np.array_equal(epoch, shards.labels("train"))  # shuffled
        assert np.array_equal(np.sort(epoch), np.sort(shards.labels("train")))
    assert not np.array_equal(labels[0], labels[1])  # reshuffled
    assert (cache == "folder") == any((tmp_path / "cache").glob("*"))


def test_photo_augmentation_applies_to_shards(shard_sets):
    _, folder = shard_sets["photo"]
    shards = load(f"tfrecord:{folder}", **{**SETTINGS, "image_size": PHOTO_SIZE})
    augmented, labels = next(shards.dataset("train", 8, augment=True).as_numpy_iterator())  # unshuffled: in order
    plain = next(shards.batches("train", 8))
    assert augmented.shape == plain.shape == (8, PHOTO_SIZE, PHOTO_SIZE, 3) and augmented.dtype == np.float32
    assert np.array_equal(labels, shards.labels("train")[:8])
    assert np.abs(augmented - plain).mean() > 0.05  # flipped, rotated, zoomed, jittered


def test_another_image_size_is_a_clear_error_and_the_split_is_the_shards_own(shard_sets):
    _, folder = shard_sets["photo"]
    with pytest.raises(KerasdlError, match="hold 32-pixel images"):
        load(f"tfrecord:{folder}", **{**SETTINGS, "image_size": 64})
    _, digits = shard_sets["array"]
    with pytest.raises(KerasdlError, match="hold 8-pixel images"):
        load(f"tfrecord:{digits}", **{**SETTINGS, "image_size": 64})
    with pytest.raises(KerasdlError, match="not images"):
        load(f"tfrecord:{shard_sets['text'][1]}", **{**SETTINGS, "image_size": 64})
    moved = load(f"tfrecord:{digits}", **{**SETTINGS, "validation_fraction": 0.3, "seed": 5})
    assert moved.info.split_sizes == json.loads((digits / MANIFEST).read_text())["counts"]


def test_sets_that_are_not_image_array_or_labelled_text_are_refused(tmp_path):
    with pytest.raises(KerasdlError, match="cannot be sharded"):
        write_shards("shakespeare", tmp_path / "out", verbose=0)


def test_training_from_shards_matches_the_registered_set(shard_sets, digits_runs, tmp_path):
    from kerasdl.training import TrainConfig, train

    _, folder = shard_sets["array"]
    result = train(TrainConfig("mlp", data=f"tfrecord:{folder}"), out=tmp_path / "run", verbose=0)
    reference = digits_runs["fit"].metrics["test_accuracy"]
    assert result.metrics["data"] == "digits" and reference > 0.9
    assert abs(result.metrics["test_accuracy"] - reference) <= ACCURACY_TOLERANCE


def test_text_shards_keep_their_vocabulary_and_refuse_another(shard_sets):
    source, shards = source_and_shards(shard_sets, "text")
    assert shards.info.vocabulary == source.info.vocabulary and len(shards.info.vocabulary) > 10_000
    assert shards.restored(source.state()) is shards  # a run trained from sst2 or from these shards
    other = load("mr", **SETTINGS).state()
    with pytest.raises(KerasdlError, match="another vocabulary"):
        shards.restored(other)


def damaged(shard_sets, tmp_path: Path, damage) -> Path:
    """A copy of the digits shards with `damage(folder)` done to it."""
    folder = shutil.copytree(shard_sets["array"][1], tmp_path / "damaged")
    damage(folder)
    return folder


def flip_a_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))


DAMAGES = {
    "truncated": (lambda f: (f / "train-00001.tfrecord").write_bytes((f / "train-00001.tfrecord").read_bytes()[:-100]),
                  "shard .*train-00001.tfrecord is truncated or altered"),
    "altered": (lambda f: flip_a_byte(f / "validation-00000.tfrecord"), "shard .*validation-00000.tfrecord is altered"),
    "missing": (lambda f: (f / "test-00000.tfrecord").unlink(), "shard .*test-00000.tfrecord is missing"),
    "corrupt manifest": (lambda f: (f / MANIFEST).write_text('{"format_version": 1, "counts"'), "manifest.json is corrupt"),
    "no manifest": (lambda f: (f / MANIFEST).unlink(), "has no manifest.json"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_shard_or_manifest_is_named_before_training(shard_sets, tmp_path, damage):
    change, message = DAMAGES[damage]
    folder = damaged(shard_sets, tmp_path, change)
    with pytest.raises(DataError, match=message):
        load_shards(folder, **SETTINGS)


@pytest.mark.parametrize("damage", ["truncated", "altered", "corrupt manifest"])
def test_the_cli_names_a_damaged_shard_in_one_line(shard_sets, tmp_path, capsys, damage):
    change, message = DAMAGES[damage]
    folder = damaged(shard_sets, tmp_path, change)
    code, out, err = run_cli(capsys, "train", "mlp", "--data", f"tfrecord:{folder}", "--out", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("kerasdl train: error: ") and re.search(message, err)
    assert not (tmp_path / "run" / "history.csv").exists()  # no step ran


def test_data_shard_cli_refuses_to_mix_with_old_shards_and_reports_what_it_wrote(shard_sets, tmp_path, capsys):
    _, folder = shard_sets["array"]
    code, _, err = run_cli(capsys, "data", "shard", "digits", "--out", str(folder))
    assert code == 2 and "already holds shards; pass --overwrite" in err
    code, out, _ = run_cli(capsys, "data", "shard", "digits", "--out", str(tmp_path / "new"), "--quiet")
    assert code == 0 and "train 1,293, validation 144, test 360" in out and f"tfrecord:{tmp_path / 'new'}" in out


def peak_rss_mb(*argv: str) -> float:
    """Peak RSS (MB) of `kerasdl ARGV` in a fresh process (glibc arenas capped, so the figure is the data's)."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *argv], capture_output=True, text=True, env=env, timeout=400)
    line = [line for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KB")]
    assert line and line[0].split()[1] == "0", done.stderr[-2000:]
    return int(line[0].split()[2]) / 1024


def first_shards(folder: Path, out: Path) -> Path:
    """A copy of shard set `folder` holding only each split's first shard (the same data, a few hundred records)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["shards"] = {split: shards[:1] for split, shards in manifest["shards"].items()}
    manifest["counts"] = {split: shards[0]["count"] for split, shards in manifest["shards"].items()}
    manifest["info"]["split_sizes"] = dict(manifest["counts"])
    out.mkdir()
    for shards in manifest["shards"].values():
        shutil.copy(folder / shards[0]["file"], out)
    (out / MANIFEST).write_text(json.dumps(manifest))
    return out


def test_a_set_larger_than_the_memory_cap_streams_through_training(tmp_path):
    full = tmp_path / "mnist"
    write_shards("mnist", full, shard_mb=0.1, verbose=0)
    tiny = first_shards(full, tmp_path / "tiny")
    assert SET_MB > 4 * MEMORY_CAP_MB
    run = ("train", "mlp", "--epochs", "1", "--batch-size", "1024", "--quiet", "--overwrite")
    baseline = peak_rss_mb(*run, "--data", f"tfrecord:{tiny}", "--out", str(tmp_path / "tiny-run"))
    streamed = peak_rss_mb(*run, "--data", f"tfrecord:{full}", "--out", str(tmp_path / "full-run"))
    metrics = json.loads((tmp_path / "full-run" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test_samples"] == 10_000 and metrics["test_accuracy"] > 0.8  # all of MNIST
    assert streamed - baseline < MEMORY_CAP_MB, (baseline, streamed)


def test_damaged_shards_and_unknown_sets_fail_before_tensorflow_loads(shard_sets, tmp_path):
    from test_cli_startup import probe

    folder = damaged(shard_sets, tmp_path, DAMAGES["truncated"][0])
    for argv in (("train", "mlp", "--data", f"tfrecord:{folder}"), ("data", "shard", "no-such-set", "--out", str(tmp_path))):
        result, _, err = probe(*argv)
        assert result["code"] == 2 and result["heavy"] == [], (argv, err)
