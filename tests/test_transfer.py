"""Transfer learning: backbone weights from files, freezing, saving, the subset writer, and (slow) the lesson
itself: a backbone pretrained on 8 CIFAR-10 classes beats training from scratch on 200 cats and dogs."""

from __future__ import annotations

import dataclasses
import json
import runpy
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasdl.cli import main
from kerasdl.data import DatasetInfo, data_root
from kerasdl.data.images import read_image_folder
from kerasdl.data.subsets import MANIFEST, write_class_subset
from kerasdl.errors import DataError
from kerasdl.models.transfer import BACKBONE
from kerasdl.registry import model_spec

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "transfer_learning.py"
INFO = DatasetInfo(
    name="pets", input_shape=(32, 32, 3), num_classes=2, class_names=("cat", "dog"),
    split_sizes={"train": 8, "validation": 2, "test": 8}, scale=2 / 255, offset=-1.0, pixel_max=255.0,
    augmentation="photo",
)
SMALL = {"alpha": 0.35, "dropout": 0.0}  # a cheap MobileNetV2; no dropout, so training=True changes only BatchNorm


def build(weights: str, fine_tune_layers: int = 0, size: int = 32) -> keras.Model:
    info = dataclasses.replace(INFO, input_shape=(size, size, 3))
    return model_spec("mobilenet-v2").build(info, weights=weights, fine_tune_layers=fine_tune_layers, **SMALL)


def is_batch_norm(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A classifier whose backbone holds random non-default weights (moving statistics too), saved three ways."""
    folder = tmp_path_factory.mktemp("saved")
    model = build("none")
    backbone = model.get_layer(BACKBONE)
    rng = np.random.default_rng(0)
    backbone.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in backbone.get_weights()])
    backbone.save(folder / "backbone.keras")
    backbone.save_weights(folder / "backbone.weights.h5")
    model.save(folder / "model.keras")  # what a run leaves: the whole classifier, backbone nested
    return model, folder


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    """4 cats and 4 dogs in each split: the smallest real folder `kerasdl train --data` takes."""
    dest = tmp_path_factory.mktemp("pets") / "pets"
    return write_class_subset(data_root() / "cats-vs-dogs", dest, per_class=4, sampled_splits=("train", "test"))


# --- backbone weights -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["backbone.keras", "backbone.weights.h5", "model.keras"])
def test_every_weights_file_loads_the_same_backbone(saved, name):
    model, folder = saved
    expected = model.get_layer(BACKBONE).get_weights()
    loaded = build(str(folder / name), size=48).get_layer(BACKBONE).get_weights()  # weights fit any input size
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected):
        np.testing.assert_array_equal(got, want)


def train_cli(capsys, pets: Path, out: Path, *flags: str) -> tuple[int, str]:
    argv = ["train", "mobilenet-v2", "--data", str(pets), "--epochs", "1", "--quiet", "--out", str(out), *flags]
    code = main(argv)
    return code, capsys.readouterr().err


def test_imagenet_weights_offline_is_one_line_naming_the_alternatives(capsys, pets, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/: [Errno -3] name resolution\nmore")

    monkeypatch.setattr(file_utils, "get_file", offline)
    code, err = train_cli(capsys, pets, tmp_path / "run", "--weights", "imagenet")  # at 128 px: no size warning
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "ImageNet weights could not be downloaded" in err
    assert "none (random initialization)" in err and "FILE (.keras or .weights.h5)" in err


def other_architecture(folder: Path, suffix: str) -> Path:
    """A small convolutional network named like a backbone, saved as `suffix`: not a MobileNetV2."""
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3)], name=BACKBONE)
    path = folder / f"other{suffix}"
    model.save(path) if suffix == ".keras" else model.save_weights(path)
    return path


@pytest.mark.parametrize(
    "weights, message",
    [
        (lambda folder: folder / "missing.keras", "missing.keras: no such file; --weights takes imagenet"),
        (lambda folder: (folder / "backbone.pt").write_bytes(b"x") and folder / "backbone.pt",
         "backbone.pt: expected a .keras or .weights.h5 file"),
        (lambda folder: other_architecture(folder, ".keras"), "does not hold a matching backbone"),
        (lambda folder: other_architecture(folder, ".weights.h5"), "does not hold a matching backbone"),
    ],
    ids=["missing", "suffix", "other-keras", "other-h5"],
)
def test_bad_weights_files_are_one_line(capsys, pets, tmp_path, weights, message):
    code, err = train_cli(capsys, pets, tmp_path / "run", "--image-size", "32", "--weights", str(weights(tmp_path)))
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --- freezing ---------------------------------------------------------------------------------------------


FINE_TUNE_LAYERS = 20


@pytest.fixture(scope="module")
def fine_tuned(saved) -> keras.Model:
    return build(str(saved[1] / "model.keras"), FINE_TUNE_LAYERS)


def test_fine_tuning_trains_the_top_layers_but_never_batch_norm(fine_tuned):
    model = fine_tuned
    layers = model.get_layer(BACKBONE).layers
    top = layers[-FINE_TUNE_LAYERS:]
    assert any(is_batch_norm(layer) for layer in top) and any(not is_batch_norm(layer) for layer in top)
    assert [layer.name for layer in layers if layer.trainable] == [l.name for l in top if not is_batch_norm(l)]
    assert not any(layer.trainable for layer in layers if is_batch_norm(layer))
    trainable = {id(v) for v in model.trainable_weights}
    expected = {id(v) for layer in [*top, model.get_layer("logits")] if not is_batch_norm(layer) for v in layer.weights}
    assert trainable == expected and trainable
    # BatchNorm stays in inference mode while training: training=True changes nothing (dropout is 0)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_feature_extraction_trains_only_the_head(saved):
    model = build(str(saved[1] / "backbone.keras"), 0)
    assert not any(layer.trainable for layer in model.get_layer(BACKBONE).layers)
    assert [v.path for v in model.trainable_weights] == ["logits/kernel", "logits/bias"]


def test_a_backbone_trained_from_scratch_learns_its_batch_norm():
    """Random weights have no statistics to keep: frozen BatchNorm would leave a network that cannot learn."""
    model = build("none", fine_tune_layers=1_000)
    batch_norms = [layer for layer in model.get_layer(BACKBONE).layers if is_batch_norm(layer)]
    assert batch_norms and all(layer.trainable for layer in batch_norms)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    assert not np.allclose(model(x, training=True), model(x, training=False), atol=1e-3)


def test_model_round_trips_through_model_keras_in_safe_mode(fine_tuned, tmp_path):
    model = fine_tuned
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    x = np.random.default_rng(2).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5)
    assert loaded.get_layer(BACKBONE).count_params() == model.get_layer(BACKBONE).count_params()


# --- subsets ----------------------------------------------------------------------------------------------


def files(folder: Path) -> dict[str, list[str]]:
    return {p.name: sorted(f.name for f in p.iterdir()) for p in sorted(folder.iterdir())}


def counts(folder: Path) -> dict[str, dict[str, int]]:
    return {split: {name: len(chosen) for name, chosen in files(folder / split).items()} for split in ("train", "test")}


def test_class_subset_is_an_image_folder_of_seeded_links(tmp_path):
    cifar = data_root() / "cifar10"
    dest = write_class_subset(cifar, tmp_path / "a", exclude=("cat", "dog"), per_class=30, seed=3)
    names = ["airplane", "automobile", "bird", "deer", "frog", "horse", "ship", "truck"]
    assert counts(dest) == {"train": dict.fromkeys(names, 30), "test": dict.fromkeys(names, 200)}
    assert json.loads((dest / MANIFEST).read_text())["counts"] == counts(dest)
    train, test = files(dest / "train"), files(dest / "test")
    assert list(train) == list(test) == names  # cat and dog are absent
    assert all(set(chosen) < set(files(cifar / "train")[name]) for name, chosen in train.items())
    assert test == {name: files(cifar / "test")[name] for name in names}  # the test split is kept whole
    link = dest / "train" / "ship" / train["ship"][0]
    assert link.read_bytes() == (cifar / "train" / "ship" / link.name).read_bytes()
    folder = read_image_folder(dest)  # what `--data dest` reads
    assert folder.class_names == tuple(names) and len(folder.train[0]) == 240 and len(folder.test[0]) == 1600

    # Seeded: the same seed picks the same photos, whichever other classes are kept; another seed, others.
    same = write_class_subset(cifar, tmp_path / "b", classes=["ship", "truck"], per_class=30, seed=3)
    assert files(same / "train") == {name: train[name] for name in ("ship", "truck")}
    other = write_class_subset(cifar, tmp_path / "c", classes=["ship", "truck"], per_class=30, seed=4)
    assert files(other / "train")["ship"] != train["ship"]


def test_class_subset_is_reused_replaced_or_refused(tmp_path):
    pets = data_root() / "cats-vs-dogs"
    dest = write_class_subset(pets, tmp_path / "pets", per_class=5)
    written = (dest / MANIFEST).stat().st_mtime_ns
    assert write_class_subset(pets, dest, per_class=5) == dest and (dest / MANIFEST).stat().st_mtime_ns == written
    write_class_subset(pets, dest, per_class=7)  # another subset of ours: replaced
    assert counts(dest) == {"train": {"cat": 7, "dog": 7}, "test": {"cat": 500, "dog": 500}}
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match="is not a subset folder"):
        write_class_subset(pets, tmp_path / "mine", per_class=5)
    with pytest.raises(DataError, match="fewer than the 700 per class"):  # 1,000 cats but 500 test cats
        write_class_subset(pets, tmp_path / "big", per_class=700, sampled_splits=("train", "test"))
    with pytest.raises(DataError, match="has no class horse; classes: cat, dog"):
        write_class_subset(pets, tmp_path / "horse", exclude=("horse",))
    with pytest.raises(DataError, match="at least two classes"):
        write_class_subset(pets, tmp_path / "one", exclude=("dog",))
    assert not (tmp_path / "big").exists() and not (tmp_path / "big.partial").exists()


# --- the lesson (slow) ------------------------------------------------------------------------------------

# One seed of the lesson at a small budget (about 6.5 CPU minutes here). Measured at this budget: pretraining
# 0.41 (8 classes), fine-tuned 0.564 and 0.560 (seeds 0, 1), from scratch 0.500 and 0.500 (it learns nothing).
BUDGET = ["--pretrain-epochs", "3", "--epochs", "10", "--seeds", "0", "--starts", "scratch", "fine-tuned"]
MARGIN = 0.04


def run_script(out: Path) -> list[dict]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [str(SCRIPT), *BUDGET, "--out", str(out)])
        with pytest.raises(SystemExit) as finished:  # the script ends with raise SystemExit(main())
            runpy.run_path(str(SCRIPT), run_name="__main__")
    assert finished.value.code == 0
    return json.loads((out / "transfer.json").read_text())


@pytest.fixture(scope="session")
def transfer_table(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The script at the test budget, run once a session: pretraining, then both starts on 200 cats and dogs."""
    out = tmp_path_factory.mktemp("transfer-learning")
    return out, run_script(out)


@pytest.mark.slow
def test_pretrained_backbone_beats_training_from_scratch(transfer_table):
    out, (pretraining, scratch, fine_tuned) = transfer_table
    assert (pretraining["run"], scratch["run"], fine_tuned["run"]) == ("pretraining", "scratch", "fine-tuned")
    assert pretraining["test_samples"] == 1600 and pretraining["test_accuracy"] > 0.3  # 8 classes: chance 0.125
    assert scratch["test_samples"] == fine_tuned["test_samples"] == 1000  # the whole cats-vs-dogs test split
    assert fine_tuned["test_accuracy"] >= scratch["test_accuracy"] + MARGIN
    # The same budget: only the starting weights and the learning rate differ.
    configs = [json.loads((out / f"{name}-0" / "config.json").read_text()) for name in ("scratch", "fine-tuned")]
    same = ("data", "epochs", "batch_size", "seed", "image_size", "augment", "validation_fraction", "patience")
    assert [{key: config[key] for key in same} for config in configs] == [{key: configs[0][key] for key in same}] * 2
    assert configs[0]["augment"] and configs[0]["epochs"] == 10 and configs[0]["image_size"] == 48


@pytest.mark.slow
def test_the_script_again_reuses_its_runs(transfer_table, capsys):
    out, rows = transfer_table
    finished = {path: path.stat().st_mtime_ns for path in out.glob("*/metrics.json")}
    assert len(finished) == len(rows) == 3
    assert run_script(out) == rows
    assert {path: path.stat().st_mtime_ns for path in out.glob("*/metrics.json")} == finished
    assert "fine-tuned" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["resnet50", "efficientnet-b0", "mobilenet-v2"])
def test_every_backbone_builds_offline_and_classifies_a_batch(model):
    """The export tests convert MobileNetV2 and EfficientNet-B0 only (conftest.EXPORT_BACKBONES); each backbone
    still builds without downloading weights and maps a batch of photos to one finite score per class."""
    classifier = model_spec(model).build(INFO, **model_spec(model).offline_params)
    photos = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    scores = keras.ops.convert_to_numpy(classifier(photos, training=False))
    assert scores.shape == (2, 2) and np.all(np.isfinite(scores))
