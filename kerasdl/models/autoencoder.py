"""Autoencoders (encoder -> bottleneck -> decoder): dense, convolutional and variational.

Each is the functional chain `image -> encoder -> decoder -> reconstruction`, where the encoder and decoder
are nested models named "encoder" and "decoder" (ENCODER, DECODER): the reconstruction task reaches them
after a reload, to scatter 2-D encodings or to decode samples of the VAE's prior. Outputs pass through tanh,
as the inputs are scaled to [-1, 1]; the reconstruction task trains them with MSE on that scale.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from kerasdl.data import DatasetInfo
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model
from kerasdl.tasks.reconstruction import DECODER, ENCODER

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Stage 5: Autoencoders (encoder, bottleneck, decoder; denoising, anomaly detection, VAE)"
# The VAE's default KL weight assumes Gaussian pixel noise of this stddev ([-1, 1] scale). Measured on 10k
# MNIST images, 3 epochs: with 0.5 the latent drifted off N(0, I) and prior samples were mostly 0, 3 and 8;
# with 1.0, at the same MSE (0.21), the KL is ~4% of the loss and prior samples cover most digits.
DECODER_STDDEV = 1.0


@keras.saving.register_keras_serializable(package="kerasdl")
class Sampling(keras.layers.Layer):
    """The VAE's reparameterization: z = mean + exp(log_var / 2) * eps, eps ~ N(0, I), in training; the
    mean at inference (so an exported VAE is deterministic). Adds `kl_weight` * KL(N(mean, var) || N(0, I))
    (summed over latent dimensions, averaged over the batch) to the model's losses on every call."""

    def __init__(self, kl_weight: float = 1.0, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.kl_weight = kl_weight
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        kl = -0.5 * ops.mean(ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1))
        self.add_loss(self.kl_weight * kl)
        if not training:
            return mean
        return mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kl_weight": self.kl_weight, "seed": self.seed}


def default_kl_weight(info: DatasetInfo, decoder_stddev: float = DECODER_STDDEV) -> float:
    """The KL weight that makes `mean pixel MSE + weight * KL` the negative ELBO of a Gaussian decoder with
    this stddev, divided by pixels / (2 stddev^2): weight = 2 stddev^2 / pixels (MNIST: 2 / 784)."""
    return 2.0 * decoder_stddev**2 / math.prod(info.input_shape)


def latent_heads(x: keras.KerasTensor, latent_dim: int, names: tuple[str, ...]) -> Any:
    """One linear Dense(latent_dim) per name: the bottleneck ("latent"), or the VAE's mean and log-variance."""
    heads = [keras.layers.Dense(latent_dim, name=name)(x) for name in names]
    return heads[0] if len(heads) == 1 else heads


def dense_encoder(info: DatasetInfo, units: tuple[int, ...], latent_dim: int, heads: tuple[str, ...]) -> keras.Model:
    """Flatten -> Dense/ReLU per width in `units` -> the latent head(s)."""
    inputs = keras.Input(shape=info.input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for layer, width in enumerate(units, start=1):
        x = keras.layers.Dense(width, activation="relu", name=f"dense{layer}")(x)
    return keras.Model(inputs, latent_heads(x, latent_dim, heads), name=ENCODER)


def dense_decoder(info: DatasetInfo, units: tuple[int, ...], latent_dim: int) -> keras.Model:
    """The dense encoder mirrored: Dense/ReLU per width of `units` reversed -> Dense(pixels, tanh) -> image."""
    latent = keras.Input(shape=(latent_dim,), name="latent")
    x = latent
    for layer, width in enumerate(reversed(units), start=1):
        x = keras.layers.Dense(width, activation="relu", name=f"dense{layer}")(x)
    x = keras.layers.Dense(math.prod(info.input_shape), activation="tanh", dtype="float32", name="pixels")(x)
    image = keras.layers.Reshape(info.input_shape, dtype="float32", name="reconstruction")(x)
    return keras.Model(latent, image, name=DECODER)


def conv_encoder(info: DatasetInfo, filters: tuple[int, ...], latent_dim: int, heads: tuple[str, ...]) -> keras.Model:
    """Conv 3x3 stride 2 / ReLU per width in `filters` (each halves the image) -> Flatten -> latent head(s)."""
    _bottom_side(info, filters)
    inputs = keras.Input(shape=info.input_shape, name="image")
    x = inputs
    for block, width in enumerate(filters, start=1):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name=f"conv{block}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, latent_heads(x, latent_dim, heads), name=ENCODER)


def conv_decoder(info: DatasetInfo, filters: tuple[int, ...], latent_dim: int) -> keras.Model:
    """The conv encoder mirrored: Dense to its last feature map, then one Conv2DTranspose 3x3 stride 2 per
    encoder conv (each doubles the image) with the widths reversed, the last giving the image's channels (tanh)."""
    height, width = _bottom_side(info, filters)
    latent = keras.Input(shape=(latent_dim,), name="latent")
    x = keras.layers.Dense(height * width * filters[-1], activation="relu", name="project")(latent)
    x = keras.layers.Reshape((height, width, filters[-1]), name="feature_map")(x)
    for block, channels in enumerate(reversed(filters[:-1]), start=1):
        x = keras.layers.Conv2DTranspose(
            channels, 3, strides=2, padding="same", activation="relu", name=f"deconv{block}"
        )(x)
    outputs = keras.layers.Conv2DTranspose(
        info.input_shape[-1], 3, strides=2, padding="same", activation="tanh", dtype="float32", name="reconstruction"
    )(x)
    return keras.Model(latent, outputs, name=DECODER)


def _bottom_side(info: DatasetInfo, filters: tuple[int, ...]) -> tuple[int, int]:
    """Height and width after len(filters) halvings; the image must divide evenly so the decoder restores it."""
    if len(info.input_shape) != 3:
        raise KerasdlError(
            f"a convolutional autoencoder needs (height, width, channels) images, not {info.input_shape}"
        )
    factor = 2 ** len(filters)
    height, width = info.input_shape[:2]
    if height % factor or width % factor:
        raise KerasdlError(
            f"{len(filters)} stride-2 convolutions need a height and width divisible by {factor}, not {height}x{width}"
        )
    return height // factor, width // factor


def chain(info: DatasetInfo, encoder: keras.Model, decoder: keras.Model, name: str) -> keras.Model:
    """image -> encoder -> decoder -> reconstruction."""
    inputs = keras.Input(shape=info.input_shape, name="image")
    return keras.Model(inputs, decoder(encoder(inputs)), name=name)


def autoencoder_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Bottleneck width and learning rate; the layers' widths stay the builder's."""
    return {
        "model_params": {"latent_dim": hp.Choice("latent_dim", [8, 16, 32, 64], default=32)},
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "autoencoder",
    family="autoencoder",
    task="reconstruction",
    default_data="mnist",
    lesson=LESSON,
    search_space=autoencoder_search_space,
)
def build_autoencoder(info: DatasetInfo, latent_dim: int = 32, units: tuple[int, ...] = (256, 128)) -> keras.Model:
    """Dense autoencoder: Flatten -> 256 -> 128 -> latent (32) -> 128 -> 256 -> pixels, tanh output."""
    units = tuple(units)
    return chain(
        info, dense_encoder(info, units, latent_dim, ("latent",)), dense_decoder(info, units, latent_dim), "autoencoder"
    )


@register_model(
    "conv-autoencoder",
    family="autoencoder",
    task="reconstruction",
    default_data="mnist",
    lesson=LESSON,
    search_space=autoencoder_search_space,
    jit_compile=False,
)
def build_conv_autoencoder(info: DatasetInfo, latent_dim: int = 32, filters: tuple[int, ...] = (32, 64)) -> keras.Model:
    """Convolutional autoencoder: stride-2 convs 32, 64 -> latent (32) -> stride-2 transposed convs 32, tanh image."""
    filters = tuple(filters)
    return chain(
        info, conv_encoder(info, filters, latent_dim, ("latent",)), conv_decoder(info, filters, latent_dim),
        "conv_autoencoder",
    )


def vae_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Latent size, conv width (the second conv twice the first) and learning rate; defaults are the builder's
    (a 2-D latent, convs 32, 64). The KL weight stays the builder's: the objective, the reconstruction MSE,
    would always favour the smallest."""
    width = hp.Choice("width", [16, 32, 64], default=32)
    return {
        "model_params": {
            "latent_dim": hp.Choice("latent_dim", [2, 8, 16, 32], default=2),
            "filters": [width, 2 * width],
        },
        "learning_rate": hp.Choice("learning_rate", [3e-4, 1e-3, 3e-3], default=1e-3),
    }


@register_model(
    "vae",
    family="autoencoder",
    task="reconstruction",
    default_data="mnist",
    lesson=LESSON,
    search_space=vae_search_space,
    jit_compile=False,
)
def build_vae(
    info: DatasetInfo,
    latent_dim: int = 2,
    filters: tuple[int, ...] = (32, 64),
    kl_weight: float | None = None,
) -> keras.Model:
    """Variational autoencoder: conv encoder -> (mean, log-variance) of a 2-D latent -> Sampling (+ KL loss)
    -> conv decoder; `kl_weight` None means `default_kl_weight` (a Gaussian decoder of stddev DECODER_STDDEV)."""
    filters = tuple(filters)
    encoder = conv_encoder(info, filters, latent_dim, ("z_mean", "z_log_var"))
    decoder = conv_decoder(info, filters, latent_dim)
    inputs = keras.Input(shape=info.input_shape, name="image")
    weight = default_kl_weight(info) if kl_weight is None else kl_weight
    latent = Sampling(weight, dtype="float32", name="sampling")(encoder(inputs))  # KL and exp() in float32
    return keras.Model(inputs, decoder(latent), name="vae")
