"""Transfer learning: a `keras.applications` backbone with a new classification head.

The lesson's two regimes: feature extraction (`fine_tune_layers=0`: the backbone is frozen, only the head
trains) and fine-tuning (its top N layers train too, with a lower learning rate; a pretrained backbone's
BatchNorm layers stay frozen and in inference mode, so a small data set cannot wreck their statistics;
a random one, `weights="none"`, trains them like any layer). `weights` is where the
backbone's starting point comes from: "imagenet" (downloaded by Keras), "none" (random), or a file: a
saved backbone (`.keras`, or a run's `model.keras` whose backbone is reused) or its `.weights.h5`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import keras

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError, UnknownNameError
from kerasdl.layers import ImageNetInput
from kerasdl.models.loading import load_model_file
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 3: Transfer learning (pretrained ResNet / EfficientNet / MobileNet, feature extraction, fine-tuning)"
BACKBONE = "backbone"  # the nested backbone model's name: Grad-CAM and weight reuse find it by this name
WEIGHT_CHOICES = "imagenet (needs a network), none (random initialization) or FILE (.keras or .weights.h5)"
# Offline, the whole random network trains: a frozen random backbone learns nothing and, without learned
# BatchNorm statistics, its activations span ranges that int8 cannot hold.
OFFLINE = {"weights": "none", "fine_tune_layers": 1_000}
SCRATCH_BN_MOMENTUM = 0.9  # a backbone trained from scratch: statistics that settle in tens of steps, not thousands


def backbone(
    application: Callable[..., keras.Model], input_shape: tuple[int, ...], weights: str, **options: Any
) -> keras.Model:
    """The application without its ImageNet head, named "backbone", with weights from `weights`."""
    build = lambda w: application(  # noqa: E731
        include_top=False, weights=w, input_shape=input_shape, name=BACKBONE, **options
    )
    if weights == "none":
        model = build(None)
        for layer in model.layers:  # the applications' 0.999 suits ImageNet-length training only
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BN_MOMENTUM
        return model
    if weights == "imagenet":
        try:
            return build("imagenet")
        except Exception as err:  # no network, a proxy, a half-written cache: the user's remedy is the same
            raise KerasdlError(
                f"ImageNet weights could not be downloaded ({type(err).__name__}: {str(err).splitlines()[0]}); "
                f"--weights takes {WEIGHT_CHOICES}"
            ) from err
    return _from_file(build, Path(weights).expanduser())


def _from_file(build: Callable[[Any], keras.Model], path: Path) -> keras.Model:
    """A backbone built at this input size, its weights copied from a saved backbone or run model."""
    if not path.is_file():
        raise KerasdlError(f"--weights {path}: no such file; --weights takes {WEIGHT_CHOICES}")
    if not path.name.endswith((".keras", ".h5")):
        raise KerasdlError(f"--weights {path}: expected a .keras or .weights.h5 file")
    saved = load_model_file(path) if path.name.endswith(".keras") else None  # refused before a backbone is built
    model = build(None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns once per layer it cannot match, then raises
            if saved is not None:
                source = saved.get_layer(BACKBONE) if BACKBONE in {layer.name for layer in saved.layers} else saved
                model.set_weights(source.get_weights())
            else:
                model.load_weights(path)
    except (ValueError, OSError) as err:
        reason = str(err).splitlines()[0][:200]  # Keras lists every layer of both models
        raise KerasdlError(f"--weights {path} does not hold a matching {model.name} backbone ({reason})") from err
    return model


def freeze(model: keras.Model, fine_tune_layers: int, *, pretrained: bool = True) -> None:
    """Train only the top `fine_tune_layers` layers of `model` (none: feature extraction); BatchNorm of a
    pretrained backbone never (its statistics are part of what was learned), of a random one like any layer."""
    model.trainable = fine_tune_layers > 0
    if fine_tune_layers > 0:
        for layer in model.layers[:-fine_tune_layers]:
            layer.trainable = False
        for layer in model.layers if pretrained else ():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def transfer_classifier(
    info: DatasetInfo,
    application: Callable[..., keras.Model],
    input_style: str,
    *,
    weights: str,
    fine_tune_layers: int,
    dropout: float,
    name: str,
    **options: Any,
) -> keras.Model:
    """inputs in [-1, 1] -> the backbone's input convention -> backbone (inference mode) -> pool -> logits."""
    if fine_tune_layers < 0:
        raise KerasdlError(f"fine-tune-layers must be >= 0, got {fine_tune_layers}")
    base = backbone(application, info.input_shape, str(weights), **options)
    pretrained = str(weights) != "none"
    freeze(base, fine_tune_layers, pretrained=pretrained)
    inputs = keras.Input(shape=info.input_shape, name="image")
    x = ImageNetInput(input_style, name="imagenet_input")(inputs)
    # A pretrained backbone's BatchNorm stays in inference mode, also while fine-tuning; a random one learns.
    x = base(x, training=False if pretrained else None)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(info.num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


# Each backbone: the keras.applications builder and the ImageNet input convention its weights expect.
BACKBONES: dict[str, tuple[Callable[..., keras.Model], str]] = {
    "mobilenet-v2": (keras.applications.MobileNetV2, "tf"),
    "efficientnet-b0": (keras.applications.EfficientNetB0, "raw"),
    "resnet50": (keras.applications.ResNet50, "caffe"),
}


def transfer_search_space(default_backbone: str) -> Callable[[keras_tuner.HyperParameters], dict[str, Any]]:
    """The space of a transfer model whose own backbone is `default_backbone`: which backbone, the lesson's
    choice between feature extraction and fine-tuning (how many top layers train), head dropout and learning
    rate. Backbones differ in layer count, so fine-tuning 20 layers unfreezes a different share of each."""

    def space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        return {
            "model_params": {
                "backbone": hp.Choice("backbone", list(BACKBONES), default=default_backbone),
                "fine_tune_layers": hp.Choice("fine_tune_layers", [0, 20, 50], default=0),
                "dropout": hp.Choice("dropout", [0.0, 0.2, 0.5], default=0.2),
            },
            "learning_rate": hp.Choice("learning_rate", [1e-4, 3e-4, 1e-3], default=1e-3),
        }

    return space


def register_transfer(model_name: str, doc: str) -> None:
    """Register `model_name` with the backbone of that name (a `backbone` model param picks another)."""

    def build(
        info: DatasetInfo,
        weights: str = "imagenet",
        fine_tune_layers: int = 0,
        dropout: float = 0.2,
        backbone: str = model_name,
        **options: Any,
    ) -> keras.Model:
        if backbone not in BACKBONES:
            raise UnknownNameError("backbone", backbone, list(BACKBONES))
        application, input_style = BACKBONES[backbone]
        return transfer_classifier(
            info, application, input_style, weights=weights, fine_tune_layers=fine_tune_layers, dropout=dropout,
            name=backbone.replace("-", "_"), **options,
        )

    build.__doc__ = doc
    register_model(
        model_name,
        family="transfer",
        task="classification",
        default_data="cats-vs-dogs",
        lesson=LESSON,
        search_space=transfer_search_space(model_name),
        offline_params=OFFLINE,
        jit_compile=False,
    )(build)


register_transfer(
    "mobilenet-v2",
    "MobileNetV2 backbone (depthwise separable convolutions, for phones) with a new head; option alpha (width).",
)
register_transfer(
    "efficientnet-b0",
    "EfficientNet-B0 backbone (compound-scaled depth, width and resolution) with a new head.",
)
register_transfer(
    "resnet50",
    "ResNet-50 backbone (residual connections) with a new head.",
)
