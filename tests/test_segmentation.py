"""Segmentation: ISBI EM tiles and augmentation, Oxford pets' layout, the U-Net, the task's measures, a real
training run against the majority-class baseline, reload, edge export and the runner's mask PNG, errors."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
from PIL import Image

from kerasdl import data
from kerasdl.data import DatasetInfo
from kerasdl.data.segmentation import EM_CLASSES, TILES, SegmentationBundle
from kerasdl.edge.runner import main as runner_main
from kerasdl.errors import DataError, KerasdlError
from kerasdl.registry import model_spec
from kerasdl.tasks import get_task
from kerasdl.tasks.segmentation import overlap_metrics, pixel_cross_entropy
from kerasdl.training import TrainConfig

# A U-Net small enough for CI: 2 epochs of 336 random 128x128 crops, about a CPU minute.
UNET_BUDGET = {"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "model_params": {"filters": [8, 16, 32]}}
SECTIONS = data.data_root() / "isbi-em-membrane" / "train"
TEST_SECTION = 29  # the last held-out section; its 16 tiles are the last of the test split
TASK = get_task("segmentation")


def write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return path


# --- data --------------------------------------------------------------------------------------------------


def test_isbi_holds_out_the_last_six_sections_as_tiles_and_names_dark_membranes():
    bundle = data.load("isbi-em-membrane")
    assert bundle.info.input_shape == (128, 128, 1) and bundle.info.class_names == EM_CLASSES == ("membrane", "cell")
    assert bundle.info.split_sizes == {"train": 21 * 16, "validation": 3 * 16, "test": 6 * 16}
    tiles, masks = bundle.tiles("test")
    section = np.asarray(Image.open(SECTIONS / "image" / f"{TEST_SECTION}.png"))
    label = np.asarray(Image.open(SECTIONS / "label" / f"{TEST_SECTION}.png"))
    assert np.array_equal(tiles[-16 + 5, ..., 0], section[128:256, 128:256])  # row 1, column 1 of the 4x4 grid
    assert np.array_equal(masks[-16 + 5], label[128:256, 128:256] == 255)
    assert np.array_equal(bundle.labels("test"), masks) and set(np.unique(masks)) == {0, 1}
    x = np.concatenate(list(bundle.batches("test")))
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x[masks == 0].mean() < x[masks == 1].mean() - 0.2  # membranes are the dark boundaries
    # The validation sections are a seeded choice among the first 24, none of them a test section.
    other_seed = data.load("isbi-em-membrane", seed=1)
    assert not np.array_equal(other_seed.labels("validation"), bundle.labels("validation"))
    assert np.array_equal(other_seed.labels("test"), masks)


def test_training_crops_turn_image_and_mask_alike_and_change_each_epoch():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 64, 1), dtype=np.uint8)
    info = DatasetInfo("synthetic", (32, 32, 1), 2, ("dark", "bright"), {"train": 12}, 2 / 255, -1.0,
                       augmentation=TILES)
    bundle = SegmentationBundle(info, {"train": (images, (images[..., 0] > 127).astype(np.uint8))})
    ds = bundle.dataset("train", 4, shuffle_seed=3, augment=True)
    first, second = list(ds.as_numpy_iterator()), list(ds.as_numpy_iterator())
    x = np.concatenate([batch[0] for batch in first])
    y = np.concatenate([batch[1] for batch in first])
    assert x.shape == (12, 32, 32, 1) and y.dtype == np.int32
    assert np.array_equal(y, (np.round((x[..., 0] + 1) * 127.5) > 127))  # each mask still fits its image
    assert not np.array_equal(x, np.concatenate([batch[0] for batch in second]))
    again = list(bundle.dataset("train", 4, shuffle_seed=3, augment=True).as_numpy_iterator())
    assert np.array_equal(x, np.concatenate([batch[0] for batch in again]))


@pytest.fixture
def sections(tmp_path, monkeypatch):
    """A small ISBI layout (8 sections of 32x32) under a temporary KERASDL_DATA."""
    rng = np.random.default_rng(0)
    for i in range(8):
        write_png(tmp_path / "isbi-em-membrane" / "train" / "image" / f"{i}.png", rng.integers(0, 256, (32, 32)))
        write_png(tmp_path / "isbi-em-membrane" / "train" / "label" / f"{i}.png", rng.choice([0, 255], (32, 32)))
    monkeypatch.setenv("KERASDL_DATA", str(tmp_path))
    return tmp_path / "isbi-em-membrane" / "train"


def test_small_isbi_layout_loads_sorted_numerically(sections):
    for i in (8, 9, 10):  # 10.png sorts after 9.png, not after 1.png
        write_png(sections / "image" / f"{i}.png", np.full((32, 32), i))
        write_png(sections / "label" / f"{i}.png", np.zeros((32, 32)))
    bundle = data.load("isbi-em-membrane", image_size=16)
    assert bundle.info.split_sizes == {"train": 4 * 4, "validation": 1 * 4, "test": 6 * 4}
    assert bundle.tiles("test")[0][-1, 0, 0, 0] == 10 and bundle.tiles("test")[0][-5, 0, 0, 0] == 9


def test_mask_that_does_not_match_its_image_is_named(sections):
    write_png(sections / "label" / "3.png", np.zeros((32, 30)))
    with pytest.raises(DataError, match=r"label/3\.png is 30x32 but its image 3\.png is 32x32"):
        data.load("isbi-em-membrane", image_size=16)


def test_isbi_errors_are_one_clear_line(sections, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="image-size 24 must divide both sides"):
        data.load("isbi-em-membrane", image_size=24)
    (sections / "label" / "5.png").unlink()
    with pytest.raises(DataError, match=r"label/5\.png is missing"):
        data.load("isbi-em-membrane")
    monkeypatch.setenv("KERASDL_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="ISBI EM membrane data not found"):
        data.load("isbi-em-membrane")


@pytest.fixture
def pets(tmp_path, monkeypatch):
    """Oxford-IIIT pets in its original layout: 4 photos of different sizes, trimaps pet left, background right."""
    root = tmp_path / "oxford-pets"
    names = ["Abyssinian_1", "beagle_2", "Bengal_3", "pug_4"]
    for i, name in enumerate(names):
        width, height = 40 + 8 * i, 30
        photo = np.zeros((height, width, 3), np.uint8)
        photo[:, : width // 2] = 200
        write_png(root / "images" / f"{name}.jpg", photo)
        trimap = np.full((height, width), 2)
        trimap[:, : width // 2] = 1
        write_png(root / "annotations" / "trimaps" / f"{name}.png", trimap)
    (root / "annotations" / "trainval.txt").write_text("".join(f"{name} 1 1 1\n" for name in names[:3]))
    (root / "annotations" / "test.txt").write_text(f"{names[3]} 1 1 1\n")
    monkeypatch.setenv("KERASDL_DATA", str(tmp_path))
    return root


def test_pets_layout_is_resized_whole_with_trimap_classes(pets):
    bundle = data.load("oxford-pets", image_size=16)
    assert bundle.info.input_shape == (16, 16, 3) and bundle.info.class_names == ("pet", "background", "border")
    assert bundle.info.split_sizes == {"train": 2, "validation": 1, "test": 1}
    mask = bundle.labels("test")[0]
    assert mask.shape == (16, 16) and (mask[:, :7] == 0).all() and (mask[:, 9:] == 1).all()
    assert TASK.preprocessing(bundle, "image", "float32", (16, 16, 3))["tiles"] is False


def test_pets_errors_are_one_clear_line(pets, monkeypatch):
    write_png(pets / "annotations" / "trimaps" / "pug_4.png", np.zeros((30, 64)))
    with pytest.raises(DataError, match=r"trimaps/pug_4\.png: trimap values \[0\]"):
        data.load("oxford-pets", image_size=16)
    (pets / "annotations" / "test.txt").unlink()
    with pytest.raises(DataError, match=r"test\.txt is missing"):
        data.load("oxford-pets")
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    monkeypatch.setenv("KERASDL_DATA", str(pets.parent / "elsewhere"))
    with pytest.raises(DataError, match="Oxford-IIIT pets is not in .* could not be downloaded .*no network"):
        data.load("oxford-pets")


# --- model and task ---------------------------------------------------------------------------------------


def test_unet_gives_logits_per_pixel_and_checks_its_input_size():
    info = DatasetInfo("tiles", (64, 64, 1), 2, EM_CLASSES)
    model = model_spec("unet").build(info, filters=(8, 16, 32))
    assert model.output_shape == (None, 64, 64, 2)
    assert [layer.name for layer in model.layers if "skip" in layer.name] == ["up2_skip", "up1_skip"]
    with pytest.raises(KerasdlError, match="divisible by 4, got 62"):
        model_spec("unet").build(DatasetInfo("tiles", (62, 62, 1), 2, EM_CLASSES), filters=(8, 16, 32))


def test_overlap_metrics_and_pixel_loss_by_hand():
    matrix = np.array([[3, 1], [2, 4]])  # rows: true class
    metrics = overlap_metrics(matrix, ["a", "b"])
    assert metrics["test_iou_a"] == pytest.approx(3 / 6) and metrics["test_dice_a"] == pytest.approx(6 / 9)
    assert metrics["test_iou_b"] == pytest.approx(4 / 7) and metrics["test_dice_b"] == pytest.approx(8 / 11)
    assert metrics["test_mean_iou"] == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert overlap_metrics(np.array([[5, 0], [0, 0]]), ["a", "b"])["test_iou_b"] is None
    logits = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 3, (2, 4, 4))
    expected = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits))
    assert pixel_cross_entropy(labels, logits).mean() == pytest.approx(expected, rel=1e-5)


def test_tape_step_logs_loss_and_pixel_accuracy():
    bundle = data.load("isbi-em-membrane")
    model = model_spec("unet").build(bundle.info, filters=(4, 8))
    x, y = next(iter(bundle.dataset("train", 2)))
    logs = TASK.train_step(model, keras.optimizers.Adam())(x, y)
    assert np.isfinite(float(logs["loss"])) and 0.0 <= float(logs["pixel_accuracy"]) <= 1.0


# --- a real run: accuracy, reload, export, runner ---------------------------------------------------------


@pytest.fixture(scope="module")
def unet_run(trained):
    return trained(TrainConfig("unet", **UNET_BUDGET))


def test_unet_beats_the_majority_class_on_held_out_sections(unet_run):
    metrics = unet_run.metrics
    print(f"\nunet: {TASK.report(metrics)}")
    assert metrics["test_samples"] == 96 and metrics["test_pixels"] == 6 * 512 * 512
    assert metrics["majority_class"] == "cell" and 0.75 < metrics["test_majority_baseline"] < 0.85
    assert metrics["test_pixel_accuracy"] >= metrics["test_majority_baseline"] + 0.05
    assert metrics["test_dice_membrane"] >= 0.6 and metrics["test_mean_iou"] >= 0.6
    assert (unet_run.run.plots_dir / "segmentation_overlays.png").stat().st_size > 10_000


def test_reloaded_model_evaluates_the_same(unet_run):
    from kerasdl.evaluation.report import evaluate_run

    metrics, _ = evaluate_run(str(unet_run.run.path))
    assert metrics["test_pixel_accuracy"] == pytest.approx(unet_run.metrics["test_pixel_accuracy"], abs=1e-6)
    assert metrics["confusion_matrix"] == unet_run.metrics["confusion_matrix"]


@pytest.fixture(scope="module")
def keras_section_mask(unet_run):
    """The Keras model's classes for the whole test section, stitched from its 16 test tiles."""
    model = keras.saving.load_model(unet_run.run.model_path)
    tiles = data.load("isbi-em-membrane").take("test", 96)[-16:]
    classes = np.asarray(model.predict(tiles, verbose=0)).argmax(-1)
    return classes.reshape(4, 4, 128, 128).swapaxes(1, 2).reshape(512, 512)


@pytest.fixture(scope="module")
def unet_exports(unet_run, tmp_path_factory):
    """`unet_exports(fmt)`: the run exported to `fmt` once per module."""
    from kerasdl.export.exporter import export_run

    root, cache = tmp_path_factory.mktemp("unet_exports"), {}

    def get(fmt):
        if fmt not in cache:
            cache[fmt] = export_run(unet_run.run.path, fmt, root / fmt, latency_runs=3)
        return cache[fmt]

    return get


@pytest.mark.parametrize("fmt, agreement", [("tflite", 0.9999), ("tflite-int8", 0.98)])
def test_export_and_runner_mask(unet_exports, keras_section_mask, tmp_path, capsys, fmt, agreement):
    from kerasdl.cli import main

    export = unet_exports(fmt)
    parity, targets = export.report["parity"], export.report["targets"]
    assert targets["met"], targets["failures"]
    assert parity["mask_agreement"] >= agreement and parity["accuracy_drop"] <= 0.01
    assert export.report["builtin_ops_only"] is True

    section = SECTIONS / "image" / f"{TEST_SECTION}.png"
    capsys.readouterr()
    argv = ["infer", str(export.artifact), "--input", str(section), "--output", str(tmp_path / "m.png"), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    mask = np.asarray(Image.open(result["output"]))
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255}
    assert np.mean((mask == 255) == keras_section_mask) >= agreement
    truth = np.asarray(Image.open(SECTIONS / "label" / f"{TEST_SECTION}.png"))
    assert np.mean(mask == truth) >= np.mean(truth == 255) + 0.03  # the runner's mask beats "all cell" too
    assert sum(result["class_fractions"].values()) == pytest.approx(1.0)
    assert result["class_fractions"]["membrane"] == pytest.approx(np.mean(mask == 0))


def test_runner_mask_defaults_beside_input_and_bad_inputs_are_one_line(unet_exports, tmp_path, capsys):
    artifact = unet_exports("tflite").artifact
    odd = write_png(tmp_path / "odd.png", np.random.default_rng(0).integers(0, 256, (100, 150)))
    assert runner_main([str(artifact), "--input", str(odd)]) == 0  # any size: mirrored up to whole tiles
    assert "mask 150x100 -> " in capsys.readouterr().out
    assert Image.open(tmp_path / "odd_mask.png").size == (150, 100)
    np.save(tmp_path / "rgb.npy", np.zeros((64, 64, 3)))
    for argv, message in [
        ([], "--input is required"),
        (["--input", str(tmp_path / "missing.png")], "missing.png does not exist"),
        (["--input", str(tmp_path / "rgb.npy")], r"expected one image \(height, width, 1\), got shape \(64, 64, 3\)"),
    ]:
        assert runner_main([str(artifact), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("runner: error: ")
        assert re.search(message, err)


def test_resized_set_exports_and_its_runner_mask_takes_the_photo_size(pets, tmp_path, capsys):
    """Pets: the whole photo is resized to the input and the mask back to the photo (an untrained U-Net)."""
    from kerasdl.export.exporter import export_model

    bundle = data.load("oxford-pets", image_size=16)
    model = model_spec("unet").build(bundle.info, filters=(4, 8))
    export = export_model(model, bundle, "tflite", tmp_path / "pets", task="segmentation", latency_runs=1)
    assert export.report["targets"]["met"], export.report["targets"]["failures"]
    photo = pets / "images" / "pug_4.jpg"
    assert runner_main([str(export.artifact), "--input", str(photo), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    mask = np.asarray(Image.open(pets / "images" / "pug_4_mask.png"))
    assert (result["width"], result["height"]) == (64, 30) and mask.shape == (30, 64)
    assert set(np.unique(mask)) <= {0, 127, 254} and list(result["class_fractions"]) == ["pet", "background", "border"]


def test_served_mask_equals_the_runner_and_a_batch_of_two_is_refused(unet_exports, tmp_path, capsys):
    import base64
    from io import BytesIO

    from kerasdl.serve.app import create_app
    from kerasdl.serve.repository import ModelRepository

    artifact = unet_exports("tflite").artifact
    client = create_app(ModelRepository.load(artifact.parent)).test_client()
    name = client.get("/v1/models").json["models"][0]["name"]
    section = SECTIONS / "image" / f"{TEST_SECTION}.png"
    served = client.post(f"/v1/models/{name}:predict", data={"image": (BytesIO(section.read_bytes()), "29.png")})
    assert served.status_code == 200, served.json
    capsys.readouterr()
    assert runner_main([str(artifact), "--input", str(section), "--output", str(tmp_path / "m.png"), "--json"]) == 0
    runner = json.loads(capsys.readouterr().out)
    mask = np.asarray(Image.open(BytesIO(base64.b64decode(served.json["mask_png"]))))
    assert np.array_equal(mask, np.asarray(Image.open(tmp_path / "m.png"))), "the served mask differs from the runner's"
    assert (served.json["width"], served.json["height"]) == (runner["width"], runner["height"]) == (512, 512)
    assert served.json["class_fractions"] == runner["class_fractions"]

    pair = np.zeros((2, 128, 128, 1)).tolist()
    refused = client.post(f"/v1/models/{name}:predict", json={"inputs": pair})
    assert refused.status_code == 400 and "one image per request, got 2" in refused.json["error"], refused.json
