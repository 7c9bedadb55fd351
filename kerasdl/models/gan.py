"""Generative adversarial networks: a DCGAN whose generator learns to draw digits by fooling a discriminator.

Two networks play against each other. The discriminator D sees real images and the generator's fakes and
learns to tell them apart (one logit: real or not); the generator G turns noise z ~ N(0, I) into an image
and learns to make D call it real. Both losses are the non-saturating ones of Goodfellow et al. (2014):

    D: BCE(D(x), 1) + BCE(D(G(z)), 0)        G: BCE(D(G(z)), 1)

G maximizes log D(G(z)) instead of minimizing log(1 - D(G(z))), whose gradient vanishes early on, when D
rejects every fake. The networks follow DCGAN (Radford et al., 2015): transposed convolutions with batch norm
and ReLU up to a tanh image in [-1, 1] (the data's own scaling), strided convolutions with LeakyReLU and
dropout down to the logit, no pooling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import keras
import numpy as np
from keras import ops

from kerasdl.data import DatasetInfo
from kerasdl.edge.runner import sample_noise
from kerasdl.errors import KerasdlError
from kerasdl.registry import register_model

if TYPE_CHECKING:
    import keras_tuner

LESSON = "Generative adversarial networks: generator vs discriminator (DCGAN on MNIST)"
GENERATE_BATCH = 256


def build_generator(latent_dim: int, image_shape: tuple[int, ...], width: int) -> keras.Model:
    """Noise -> Dense -> (H/4, W/4, 2*width) -> transposed conv x2 -> (H/2, W/2, width) -> x2 -> tanh image."""
    height, breadth, channels = image_shape
    if height % 4 or breadth % 4:
        raise KerasdlError(f"the DCGAN generator upsamples 4x: image sides must divide by 4, not {height}x{breadth}")
    noise = keras.Input(shape=(latent_dim,), name="noise")
    x = keras.layers.Dense(height // 4 * breadth // 4 * 2 * width, use_bias=False, name="project")(noise)
    x = keras.layers.BatchNormalization(name="project_bn")(x)
    x = keras.layers.ReLU(name="project_relu")(x)
    x = keras.layers.Reshape((height // 4, breadth // 4, 2 * width), name="reshape")(x)
    x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name="up1")(x)
    x = keras.layers.BatchNormalization(name="up1_bn")(x)
    x = keras.layers.ReLU(name="up1_relu")(x)
    image = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="tanh", dtype="float32",
                                            name="image")(x)
    return keras.Model(noise, image, name="generator")


def build_discriminator(image_shape: tuple[int, ...], width: int, dropout: float) -> keras.Model:
    """Image -> strided conv x2 (LeakyReLU 0.2, dropout) -> one logit: how real the image looks."""
    image = keras.Input(shape=image_shape, name="image")
    x = image
    for block, filters in enumerate((width, 2 * width), start=1):
        x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", name=f"down{block}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"down{block}_leaky_relu")(x)
        x = keras.layers.Dropout(dropout, name=f"down{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(image, logit, name="discriminator")


def discriminator_loss(real_logits: Any, fake_logits: Any) -> Any:
    """D's loss: real images labelled 1, fakes 0 (2 ln 2 = 1.386 when D cannot tell them apart)."""
    return _bce(ops.ones_like(real_logits), real_logits) + _bce(ops.zeros_like(fake_logits), fake_logits)


def generator_loss(fake_logits: Any) -> Any:
    """G's non-saturating loss: its fakes labelled 1 (ln 2 = 0.693 when D gives them even odds)."""
    return _bce(ops.ones_like(fake_logits), fake_logits)


def _bce(labels: Any, logits: Any) -> Any:
    return ops.mean(ops.binary_crossentropy(labels, logits, from_logits=True))


@keras.saving.register_keras_serializable(package="kerasdl")
class DCGAN(keras.Model):
    """A generator and a discriminator trained against each other; calling it generates images from noise.

    `compile(d_optimizer, g_optimizer)` gives each player its own optimizer (the generator's is also
    `self.optimizer`). Logs per batch: `d_loss`, `g_loss`, and `loss`, which is the generator's (the part
    that ships), so every loop and callback that watches a "loss" watches it.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim = int(generator.input_shape[-1])
        self.noise_seed = keras.random.SeedGenerator()  # seeded by keras.utils.set_random_seed
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "d_loss", "g_loss")}
        self.built = True  # both players are functional models, built with their inputs

    def call(self, noise: Any, training: bool = False) -> Any:
        return self.generator(noise, training=training)

    def compile(
        self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer, **kwargs: Any
    ) -> None:
        """Each player's optimizer, built on that player's variables only; `kwargs` are Keras's
        (steps_per_execution, jit_compile)."""
        for optimizer, player in ((d_optimizer, self.discriminator), (g_optimizer, self.generator)):
            optimizer.build(player.trainable_variables)  # a later build(all variables) is then a no-op
        # JAX's stateless `fit` carries `self.optimizer.variables` from step to step: there, both players'.
        jax = keras.backend.backend() == "jax"
        super().compile(optimizer=PlayerOptimizers(d_optimizer, g_optimizer) if jax else g_optimizer, **kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def noise(self, count: Any) -> Any:
        """`count` latent vectors z ~ N(0, I), drawn in the graph from the model's own seed."""
        return keras.random.normal((count, self.latent_dim), seed=self.noise_seed)

    def adversarial_step(self, real: Any) -> dict[str, Any]:
        """One round of the game on a batch of real images, each player with its own gradients and optimizer:
        D learns to tell the batch from fresh fakes, then G learns to fool the updated D."""
        count = ops.shape(real)[0]
        fake = self.generator(self.noise(count), training=True)
        d_loss = _update(
            self.discriminator, self.d_optimizer,
            lambda: discriminator_loss(self.discriminator(real, training=True), self.discriminator(fake, training=True)),
            self.variables,
        )
        g_loss = _update(
            self.generator, self.g_optimizer,
            lambda: generator_loss(self.discriminator(self.generator(self.noise(count), training=True), training=True)),
            self.variables,
        )
        return {"loss": g_loss, "d_loss": d_loss, "g_loss": g_loss}

    def adversarial_losses(self, real: Any, noise: Any) -> dict[str, Any]:
        """Both players' losses on real images and the fakes made from `noise`, without any update."""
        real_logits = self.discriminator(real, training=False)
        fake_logits = self.discriminator(self.generator(noise, training=False), training=False)
        g_loss = generator_loss(fake_logits)
        return {"loss": g_loss, "d_loss": discriminator_loss(real_logits, fake_logits), "g_loss": g_loss}

    def train_step(self, *args: Any) -> Any:
        """`fit`'s step on a batch of (images, images) (the GAN ignores the second); under JAX stateless."""
        groups = (self.trainable_variables, self.non_trainable_variables, self.optimizer.variables)
        return self._backend_step(self.adversarial_step, groups, *args)

    def test_step(self, *args: Any) -> Any:
        """`evaluate`'s step: both losses on real images and fresh fakes, no update; under JAX stateless."""
        groups = (self.trainable_variables, self.non_trainable_variables)
        losses = lambda real: self.adversarial_losses(real, self.noise(ops.shape(real)[0]))  # noqa: E731
        return self._backend_step(losses, groups, *args)

    def _backend_step(self, step: Callable[[Any], dict[str, Any]], groups: tuple[list, ...], *args: Any) -> Any:
        """`step(real)`'s epoch means. TensorFlow's `fit` passes the batch and lets variables update in place;
        JAX's passes `(state, batch)`, the values of `groups` and the metrics' variables, and wants
        `(logs, new state)`: the step then runs in a StatelessScope that holds and collects those values."""
        if keras.backend.backend() != "jax":
            real = args[0][0]
            return self._epoch_means(step(real), real)
        state, data = args
        groups = (*groups, self.metrics_variables)
        with keras.StatelessScope([pair for refs, values in zip(groups, state) for pair in zip(refs, values)]) as scope:
            logs = self._epoch_means(step(data[0]), data[0])
        return logs, tuple([scope.get_current_value(variable) for variable in refs] for refs in groups)

    def _epoch_means(self, logs: dict[str, Any], real: Any) -> dict[str, Any]:
        """Epoch means of the batch logs, as `fit` reports them."""
        for name, tracker in self.trackers.items():
            tracker.update_state(logs[name], sample_weight=ops.shape(real)[0])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())  # reset by Keras at each epoch and evaluation

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DCGAN:
        deserialize = keras.saving.deserialize_keras_object
        return cls(deserialize(config.pop("generator")), deserialize(config.pop("discriminator")), **config)

    def get_compile_config(self) -> None:
        """Nothing to recompile on load: a reloaded GAN generates; training resumes from its checkpoints."""
        return None


class PlayerOptimizers(keras.optimizers.Optimizer):
    """Both players' optimizers seen as one `model.optimizer` whose variables are both's: what JAX's stateless
    `fit` needs to carry each player's optimizer state between steps. The players' own optimizers do the work."""

    def __init__(self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer):
        super().__init__(learning_rate=0.0, name="player_optimizers")
        self.players = (d_optimizer, g_optimizer)
        self.built = True

    @property
    def variables(self) -> list[keras.Variable]:
        return [variable for optimizer in self.players for variable in optimizer.variables]

    @property
    def iterations(self) -> keras.Variable:
        return self.players[1].iterations  # the generator's steps, as under TensorFlow


def _update(
    player: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn: Callable[[], Any], state: list[keras.Variable]
) -> Any:
    """Differentiates `loss_fn()` with respect to `player`'s weights and applies the gradients with `optimizer`;
    returns the loss. `state` is every variable the loss reads. The gradient is the one backend-specific part:
    a GradientTape under TensorFlow, `jax.value_and_grad` under JAX (in `fit`'s StatelessScope: `_backend_step`)."""
    from kerasdl.tasks.base import loss_to_differentiate  # kerasdl.tasks imports the models: import here

    weights = player.trainable_variables
    if keras.backend.backend() == "jax":
        loss, gradients = _jax_gradients(loss_fn, lambda loss: loss_to_differentiate(loss, optimizer), weights, state)
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
            scaled = loss_to_differentiate(loss, optimizer)  # on the tape, or it has no gradient
        gradients = tape.gradient(scaled, weights)
    optimizer.apply_gradients(zip(gradients, weights))
    return loss


def _jax_gradients(
    loss_fn: Callable[[], Any], scale: Callable[[Any], Any], weights: list[keras.Variable], state: list[keras.Variable]
) -> tuple[Any, list[Any]]:
    """`loss_fn()` and the gradients of `scale(loss)` with respect to `weights`, under JAX. The loss runs in its
    own StatelessScope, `weights` mapped to the values being differentiated and the rest of `state` to their
    current values; what it changes there (batch-norm statistics, seed generators) is assigned back, into the
    enclosing scope."""
    import jax

    def scaled_loss(values: list[Any]) -> tuple[Any, tuple[Any, list[Any]]]:
        with keras.StatelessScope([*((v, v.value) for v in state), *zip(weights, values)]) as scope:
            loss = loss_fn()
            scaled = scale(loss)
        return scaled, (loss, [scope.get_current_value(variable) for variable in state])

    (_, (loss, updated)), gradients = jax.value_and_grad(scaled_loss, has_aux=True)([w.value for w in weights])
    for variable, value in zip(state, updated):
        if not variable.trainable:
            variable.assign(value)
    return loss, gradients


def generate(model: DCGAN, count: int, seed: int = 0) -> np.ndarray:
    """`count` images in [-1, 1] from the generator, on noise fixed by `seed` (the edge runner's noise)."""
    if count < 1:
        raise KerasdlError(f"asked for zero or negative samples ({count}); ask for 1 or more")
    noise = sample_noise(count, (model.latent_dim,), seed)
    return np.asarray(model.generator.predict(noise, batch_size=GENERATE_BATCH, verbose=0))


def dcgan_search_space(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Each player's width, the latent size and the learning rate (both players'); defaults are the builder's
    and `kerasdl train`'s. Judged by the Frechet distance of samples to real validation images."""
    return {
        "model_params": {
            "latent_dim": hp.Choice("latent_dim", [32, 64, 100], default=100),
            "width": hp.Choice("width", [16, 32, 64], default=32),
            "discriminator_width": hp.Choice("discriminator_width", [16, 32, 64], default=32),
        },
        "learning_rate": hp.Choice("learning_rate", [2e-4, 5e-4, 1e-3], default=1e-3),
    }


@register_model(
    "dcgan",
    family="gan",
    task="generation",
    default_data="mnist",
    lesson=LESSON,
    loops=("fit", "tape"),
    search_space=dcgan_search_space,
    jit_compile=False,
)
def build_dcgan(
    info: DatasetInfo,
    latent_dim: int = 100,
    width: int = 32,
    dropout: float = 0.3,
    discriminator_width: int | None = None,
) -> DCGAN:
    """DCGAN: noise -> Dense -> transposed convs -> image, against a strided-conv discriminator (one logit).

    `width` is the filters of the full-size layers (twice that at quarter size): 32 keeps MNIST training
    CPU-friendly; 64, the usual DCGAN size, costs about five times as much per image. It is both players'
    unless `discriminator_width` gives the discriminator its own (a search weighs one player against the other).
    """
    image_shape = tuple(info.input_shape)
    critic_width = width if discriminator_width is None else discriminator_width
    return DCGAN(
        build_generator(latent_dim, image_shape, width), build_discriminator(image_shape, critic_width, dropout),
        name="dcgan",
    )
