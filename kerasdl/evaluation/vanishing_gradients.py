"""Vanishing gradients, measured: how much the loss at the last step of a long text depends on each earlier step.

A tanh RNN updates h_t = tanh(W_xh x_t + W_hh h_{t-1} + b), so the gradient of the last step's loss reaches
the input x_t through the product of T - t Jacobians diag(1 - h_k^2) W_hh: where they shrink vectors, it
shrinks geometrically with the distance. An LSTM's cell state c_t = f_t * c_{t-1} + i_t * g_t carries the
gradient back through its forget gates alone, which training can hold near 1.

Both are measured at initialization and after a brief training, because the two disagree. Keras starts
W_hh orthogonal (every singular value 1) and small embeddings keep tanh' near 1, so an untrained SimpleRNN
barely loses gradient (x0.99 a step on Shakespeare), while an untrained LSTM's forget gates sit near
sigmoid(1) = 0.73 (its unit forget bias) and its gradient shrinks by about x0.85 a step. A brief training on
real text turns it round: the SimpleRNN's gradient then shrinks by about x0.55 a step, the LSTM's still by
x0.85-0.9, so 100 steps back the two differ by more than ten orders of magnitude. The lesson's claim is
about trained networks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasdl.data.bundle import DataBundle
from kerasdl.errors import KerasdlError
from kerasdl.evaluation.plots import _save, plt

RECURRENT_LAYERS = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
STAGES = ("initialization", "trained")
EDGE_STEPS = 10  # "earliest" and "latest": the mean gradient norm over this many steps at either end


@dataclass(frozen=True)
class GradientProbe:
    """What is measured: windows of `length` characters, models of `units`, and the brief training between."""

    length: int = 150
    windows: int = 32  # measured windows (held-out text); the norms are their mean
    units: int = 64
    embedding_dim: int = 16
    train_windows: int = 2048
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name != "seed" and not value > 0:
                raise KerasdlError(f"gradient probe: {name} must be positive, got {value}")
        if self.length <= 2 * EDGE_STEPS:
            raise KerasdlError(f"gradient probe: length must exceed {2 * EDGE_STEPS} steps, got {self.length}")


@dataclass(frozen=True)
class GradientProfile:
    """||dL_T / dx_t|| for t = 1..T of one model at one stage, averaged over the measured windows."""

    kind: str
    stage: str
    norms: np.ndarray
    loss: float  # the model's next-character loss on the measured windows (nats)

    @property
    def earliest(self) -> float:
        return float(self.norms[:EDGE_STEPS].mean())

    @property
    def latest(self) -> float:
        return float(self.norms[-EDGE_STEPS:].mean())

    @property
    def decay_per_step(self) -> float:
        """The factor the norm is multiplied by per step back, fitted on a log scale (underflowed zeros left out)."""
        steps = np.flatnonzero(self.norms > 0)
        if len(steps) < 2:
            return 0.0
        slope = np.polyfit(steps, np.log10(self.norms[steps]), 1)[0]
        return float(10.0 ** -slope)

    def to_json(self) -> dict:
        return {"loss": self.loss, "earliest": self.earliest, "latest": self.latest,
                "earliest_over_latest": self.earliest / self.latest, "decay_per_step": self.decay_per_step,
                "norms": self.norms.tolist()}


@dataclass(frozen=True)
class VanishingGradients:
    """Every model's profile at both stages, on the same windows."""

    data: str
    probe: GradientProbe
    profiles: tuple[GradientProfile, ...]

    def profile(self, kind: str, stage: str) -> GradientProfile:
        return next(p for p in self.profiles if (p.kind, p.stage) == (kind, stage))

    def earliest_ratio(self, kind: str, other: str, stage: str = "trained") -> float:
        """How many times larger `kind`'s earliest-step gradients are than `other`'s (0: `kind`'s underflowed)."""
        return self.profile(kind, stage).earliest / self.profile(other, stage).earliest

    def rows(self) -> list[dict]:
        """One table row per model and stage; the last model (the LSTM by default) is the reference."""
        reference = self.profiles[-1].kind
        return [{"model": RECURRENT_LAYERS[p.kind].__name__, "stage": p.stage, "loss": p.loss,
                 "earliest": p.earliest, "latest": p.latest, "earliest/latest": p.earliest / p.latest,
                 "factor per step": p.decay_per_step,
                 f"earliest/{RECURRENT_LAYERS[reference].__name__}": self.earliest_ratio(p.kind, reference, p.stage)}
                for p in sorted(self.profiles, key=lambda p: STAGES.index(p.stage))]

    def to_json(self) -> dict:
        return {"data": self.data, "probe": asdict(self.probe),
                "stages": {stage: {p.kind: p.to_json() for p in self.profiles if p.stage == stage} for stage in STAGES}}


def recurrent_language_model(
    kind: str, vocabulary_size: int, *, units: int, embedding_dim: int, seed: int
) -> keras.Model:
    """Characters -> Embedding -> one recurrent layer (its state at every step) -> next-character logits."""
    if kind not in RECURRENT_LAYERS:
        raise KerasdlError(f"unknown recurrent layer {kind!r}; known: {', '.join(RECURRENT_LAYERS)}")
    keras.utils.set_random_seed(seed)  # the same embedding and head weights for every kind
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    embedded = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(ids)
    states = RECURRENT_LAYERS[kind](units, return_sequences=True, name=kind)(embedded)
    logits = keras.layers.Dense(vocabulary_size, name="logits")(states)
    return keras.Model(ids, logits, name=f"{kind}_language_model")


def character_windows(stream: np.ndarray, length: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` windows of `length` ids at seeded random positions of `stream`, and the ids one step later."""
    if len(stream) <= length + 1:
        raise KerasdlError(f"a text of {len(stream)} characters is too short for windows of {length}")
    starts = np.random.default_rng(seed).integers(0, len(stream) - length - 1, count)
    windows = np.stack([stream[start : start + length + 1] for start in starts])
    return windows[:, :-1], windows[:, 1:]


def gradient_norms(model: keras.Model, windows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """||dL/dx_t|| per step t, averaged over windows, with L a window's loss at its last step and x_t the
    embedded input (model inputs are ids, which have no gradient); and L averaged over windows."""
    embedding = next((layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)), None)
    if embedding is None:
        raise KerasdlError(f"model {model.name!r} has no Embedding layer whose output could be watched")
    probe = keras.Model(model.input, [embedding.output, model.output])
    with tf.GradientTape() as tape:
        embedded, logits = probe(windows)
        last = logits[:, -1] if len(logits.shape) == 3 else logits
        losses = keras.losses.sparse_categorical_crossentropy(targets[:, -1], last, from_logits=True)
        total = tf.reduce_sum(losses)  # windows are independent: its gradient holds each window's own
    gradient = tape.gradient(total, embedded).numpy().astype(np.float64)  # float32 squares underflow below 1e-19
    return np.linalg.norm(gradient, axis=-1).mean(axis=0), float(tf.reduce_mean(losses))


def train_briefly(model: keras.Model, windows: np.ndarray, targets: np.ndarray, probe: GradientProbe) -> None:
    """Next-character prediction at every step, as a character language model learns."""
    model.compile(optimizer=keras.optimizers.Adam(probe.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(windows, targets, batch_size=probe.batch_size, epochs=probe.epochs, verbose=0)


def measure_vanishing_gradients(
    bundle: DataBundle, kinds: tuple[str, ...] = ("simple_rnn", "lstm"), probe: GradientProbe = GradientProbe()
) -> VanishingGradients:
    """Each kind's gradient profile on held-out windows of a running text, before and after training on it."""
    unknown = [kind for kind in kinds if kind not in RECURRENT_LAYERS]
    if unknown or not kinds:
        raise KerasdlError(f"unknown recurrent layers {unknown or 'none given'}; known: {', '.join(RECURRENT_LAYERS)}")
    if not getattr(bundle, "stream", False):
        raise KerasdlError(
            f"vanishing gradients are measured on a running text (such as shakespeare), not {bundle.info.name!r}")
    measured = character_windows(bundle.ids("validation"), probe.length, probe.windows, probe.seed)
    training = character_windows(bundle.ids("train"), probe.length, probe.train_windows, probe.seed)
    profiles = []
    for kind in dict.fromkeys(kinds):  # each once: a profile is looked up by kind and stage
        model = recurrent_language_model(kind, bundle.info.vocabulary_size, units=probe.units,
                                         embedding_dim=probe.embedding_dim, seed=probe.seed)
        profiles.append(GradientProfile(kind, "initialization", *gradient_norms(model, *measured)))
        train_briefly(model, *training, probe)
        profiles.append(GradientProfile(kind, "trained", *gradient_norms(model, *measured)))
    return VanishingGradients(bundle.info.name, probe, tuple(profiles))


def plot_gradient_norms(result: VanishingGradients, path: Path) -> Path:
    """Gradient norm (log scale) against time step, one line per model, one panel per stage."""
    fig, axes = plt.subplots(1, len(STAGES), figsize=(11, 4), sharey=True)
    steps = np.arange(1, result.probe.length + 1)
    for ax, stage in zip(axes, STAGES):
        for profile in (p for p in result.profiles if p.stage == stage):
            name = RECURRENT_LAYERS[profile.kind].__name__
            ax.plot(steps, np.where(profile.norms > 0, profile.norms, np.nan),
                    label=f"{name} (x{profile.decay_per_step:.2f} per step back)")
        ax.set(title=f"{stage}: loss at step {result.probe.length}", xlabel="time step t", yscale="log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("||dL / dx_t||, mean over windows")
    fig.suptitle(f"vanishing gradients on {result.data}")
    return _save(fig, path)
