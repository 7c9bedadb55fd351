"""Shared fixtures: real data from ../shared/data, and the runs that several test files read, trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.register_assert_rewrite("export_fixtures", "serve_fixtures", "fuzzing")  # test modules import their helpers too

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if SHARED_DATA.is_dir():  # CI and developers: the real data sets; elsewhere loaders use their download path
    os.environ.setdefault("KERASDL_DATA", str(SHARED_DATA))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    """The curriculum MLP trained on digits for 10 epochs (seed 0) with each loop: {"fit": RunResult, "tape": ...}."""
    from kerasdl.training import TrainConfig, train

    root = tmp_path_factory.mktemp("digits_runs")
    return {loop: train(TrainConfig("mlp", loop=loop), out=root / loop, verbose=0) for loop in ("fit", "tape")}


# The vision models' accuracy runs: each trains once per session (a budget that fits CI; the README has
# longer runs), and the export tests export these same runs rather than training their own.
ACCURACY_BUDGETS = {
    "cnn-mnist": {"epochs": 8, "batch_size": 128, "learning_rate": 2e-3, "lr_schedule": "cosine"},
    "cnn-cifar": {"epochs": 6, "augment": False},
    # All 12 epochs of the cosine schedule: on 200 validation photos the loss is noisy, and early stopping at
    # patience 5 once cut a CI run at epoch 6 and restored epoch 1 (0.658); the whole schedule gave 0.738.
    "cnn-small": {"epochs": 12, "image_size": 64, "lr_schedule": "cosine", "patience": 12},
}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """`trained(config)`: `train(config)` into a fresh folder, once per session for each distinct config."""
    import json

    from kerasdl.training import train

    cache = {}

    def get(config):
        key = json.dumps(config.to_json(), sort_keys=True)
        if key not in cache:
            cache[key] = train(config, out=tmp_path_factory.mktemp(config.model), verbose=0)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def accuracy_run(trained):
    """`accuracy_run(model, loop="fit")`: the model's accuracy run on its default data (ACCURACY_BUDGETS)."""
    from kerasdl.training import TrainConfig

    return lambda name, loop="fit": trained(TrainConfig(name, loop=loop, **ACCURACY_BUDGETS[name]))


# What the classifier export tests (test_export.py, test_edge_runner.py) cover. Other tasks' models test their
# export in their own files, in their task's terms. The ImageNet backbones, which train here only from random
# weights (see export_fixtures), export to the formats where they differ from the small networks: float32
# TFLite and ONNX (conversion of their layers) and, for MobileNetV2, int8 (that a miss is reported: EfficientNet's
# int8 export is the same code path, two more CI minutes); fp16, dynamic range and the SavedModel artifact are
# the same code path as for the trained networks, and each backbone export costs a minute.
BACKBONE_FORMATS = ("tflite", "tflite-int8", "onnx")
INT8_BACKBONE = "mobilenet-v2"


# Text classifiers: test_rnn.py, test_transformer_classifier.py and test_bert.py export them, with text inputs.
TEXT_FAMILIES = ("rnn", "text-cnn", "transformer", "bert")


# Of the ImageNet backbones, the export tests take MobileNetV2 (depthwise convolutions, ReLU6) and EfficientNet-B0
# (swish, squeeze-and-excitation); ResNet50's layers (convolutions, batch norm, adds, ReLU, pooling) are a subset
# of theirs, and its conversions cost CI six minutes. test_models.py still builds it.
EXPORT_BACKBONES = ("mobilenet-v2", "efficientnet-b0")


def classifiers() -> list[str]:
    """The image (and array) classifiers the export tests cover."""
    from kerasdl.registry import model_specs

    return [spec.name for spec in model_specs() if spec.task == "classification" and spec.family not in TEXT_FAMILIES
            and (not spec.offline_params or spec.name in EXPORT_BACKBONES)]


def formats_for(model: str) -> list[str]:
    """The export formats the tests check for `model`."""
    from kerasdl.export.formats import FORMATS
    from kerasdl.registry import model_spec

    if not model_spec(model).offline_params:
        return list(FORMATS)
    return [fmt for fmt in BACKBONE_FORMATS if fmt != "tflite-int8" or model == INT8_BACKBONE]


# --- Two workers (pytest-xdist, `--dist loadgroup` in pyproject.toml) ---------------------------------------
#
# CI has two cores. A worker is a process of its own, with its own session fixtures: tests that share a
# trained run must share a worker, or each worker would train it again. So all tests of a module go to one
# worker, and so do all modules that read the session's shared runs (the vision accuracy runs and their
# exports, the digits runs, the served models); the longest groups are queued first. The ImageNet backbones'
# export tests share no run with the accuracy runs, so they form a group of their own.
SHARED_RUNS = {"accuracy_run": "trained-runs", "trained_run": "trained-runs", "exported": "trained-runs",
               "digits_runs": "digits-runs", "model_repository": "serving"}


def _shared_group(item: pytest.Item) -> str | None:
    """The group of the first session-scoped shared fixture the test uses (a module may define its own
    fixture of the same name: that one is not shared)."""
    definitions = item._fixtureinfo.name2fixturedefs
    for name, group in SHARED_RUNS.items():
        if name in definitions and definitions[name][-1].scope == "session":
            return group
    return None


def _backbone_item(item: pytest.Item) -> bool:
    """Whether the test is parametrized with an ImageNet backbone: its runs and exports are its own (one short
    epoch each, see export_fixtures), so it can run beside the accuracy runs instead of after them."""
    from kerasdl.registry import model_names, model_spec

    model = getattr(item, "callspec", None) and item.callspec.params.get("model")
    return isinstance(model, str) and model in model_names() and bool(model_spec(model).offline_params)


LONGEST_FIRST = ("trained-runs", "trained-runs-backbones")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups: dict[str, str] = {}  # module -> group
    for item in items:
        module = item.nodeid.split("::")[0]
        shared = _shared_group(item)
        if groups.setdefault(module, module) == module and shared:
            groups[module] = shared

    def group(item: pytest.Item) -> str:
        module_group = groups[item.nodeid.split("::")[0]]
        return f"{module_group}-backbones" if module_group == "trained-runs" and _backbone_item(item) else module_group

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    order = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(group(item), len(order)))  # stable: the longest groups first
