"""`--loop numpy`: train a Keras model's NumPy twin with hand-written backprop, copying weights back each epoch.

The Keras model (Flatten, Dense, Activation, BatchNormalization, Dropout layers) is mirrored layer
by layer in `kerasdl.scratch`, starting from the Keras model's own seeded initial weights. The twin
trains on the data bundle's arrays with the scratch optimizers; after every epoch its weights are
copied into the Keras model, so the standard callbacks (history.csv, early stopping with best
weights restored, checkpoints, TensorBoard) and everything after training (model.keras, evaluation,
export) see an ordinary Keras model. Resumable: the twin and its optimizer are saved after each epoch.
"""

from __future__ import annotations

import pickle
from functools import partial

import keras
import numpy as np
from threadpoolctl import threadpool_limits

from kerasdl import files
from kerasdl.errors import KerasdlError
from kerasdl.scratch.activations import ACTIVATIONS
from kerasdl.scratch.descent import train
from kerasdl.scratch.layers import BatchNormalization, Dense, Dropout, Layer
from kerasdl.scratch.mlp import Sequential
from kerasdl.scratch.optimizers import Adam, GradientDescent, Momentum, RMSProp
from kerasdl.scratch.regularizers import L1L2
from kerasdl.training.loops import LoopContext, LoopResult, callback_list, register_loop

# The config's optimizer names, built exactly as `make_optimizer` builds the Keras ones.
OPTIMIZERS = {"sgd": GradientDescent, "momentum": partial(Momentum, momentum=0.9), "rmsprop": RMSProp, "adam": Adam}
STATE_FILE = "numpy_state.pkl"

# A Keras layer with weights and the index of its twin in the NumPy network.
Pairs = list[tuple[keras.layers.Layer, int]]


def numpy_twin(model: keras.Model, seed: int) -> tuple[Sequential, Pairs]:
    """A scratch network computing what `model` computes, holding a copy of its current weights."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = []
    pairs: Pairs = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or (isinstance(layer, keras.layers.Flatten) and not layers):
            continue  # the twin flattens each sample itself
        if isinstance(layer, keras.layers.Dense):
            n_inputs, n_outputs = layer.kernel.shape
            regularizer = None
            if layer.kernel_regularizer is not None:
                penalty = layer.kernel_regularizer.get_config()
                regularizer = L1L2(penalty.get("l1", 0.0), penalty.get("l2", 0.0))
            pairs.append((layer, len(layers)))
            layers.append(Dense(n_inputs, n_outputs, layer.use_bias, regularizer, dtype=np.float32))
            layers.extend(_activation(layer))
        elif isinstance(layer, keras.layers.Activation):
            layers.extend(_activation(layer))
        elif isinstance(layer, keras.layers.BatchNormalization):  # after Flatten and Dense: per feature
            pairs.append((layer, len(layers)))
            layers.append(BatchNormalization(layer.gamma.shape[0], layer.momentum, layer.epsilon, dtype=np.float32))
        elif isinstance(layer, keras.layers.Dropout):
            layers.append(Dropout(layer.rate, seed=rng))
        else:
            raise KerasdlError(
                f"the numpy loop trains Flatten/Dense/Activation/BatchNormalization/Dropout models; "
                f"layer {layer.name!r} ({type(layer).__name__}) has no NumPy twin"
            )
    network = Sequential(layers, output="softmax", dtype=np.float32)  # the model outputs logits
    for keras_layer, index in pairs:
        for target, value in zip(_weights(network.layers[index]), keras_layer.get_weights(), strict=True):
            target[...] = value
    return network, pairs


def copy_to_keras(network: Sequential, pairs: Pairs) -> None:
    """Write the twin's current weights into the Keras layers it mirrors."""
    for keras_layer, index in pairs:
        keras_layer.set_weights(_weights(network.layers[index]))


def _weights(layer: Layer) -> list[np.ndarray]:
    """A twin layer's arrays, in the order Keras's `get_weights()` lists them."""
    if isinstance(layer, BatchNormalization):
        return [layer.params["gamma"], layer.params["beta"], layer.moving_mean, layer.moving_variance]
    return list(layer.params.values())  # Dense: kernel, then bias if it has one


def _activation(layer: keras.layers.Layer) -> list[Layer]:
    name = keras.activations.serialize(layer.activation)
    if name == "linear":
        return []
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise KerasdlError(
            f"the numpy loop has no {name!r} activation (layer {layer.name!r}); known: {', '.join(ACTIVATIONS)}"
        )
    return [ACTIVATIONS[name]()]


@register_loop("numpy")
def numpy_loop(ctx: LoopContext) -> LoopResult:
    config = ctx.config
    if config.lr_schedule != "constant" or config.clipnorm is not None:
        raise KerasdlError("the numpy loop trains with a constant learning rate and no gradient clipping")
    model = ctx.build_model()
    # Keras never trains this model, but compiling attaches what the other loops' models carry: the
    # optimizer (whose learning rate TensorBoard logs; built, so model.keras holds its variables,
    # though not the NumPy optimizer's moments), the loss and the metrics.
    ctx.compile(model)
    model.optimizer.build(model.trainable_variables)
    network, pairs = numpy_twin(model, config.seed)
    optimizer = OPTIMIZERS[config.optimizer](config.learning_rate)
    state_path = ctx.run.checkpoints_dir / STATE_FILE
    first_epoch = 0
    if ctx.resuming and state_path.exists():
        network, optimizer, first_epoch = pickle.loads(state_path.read_bytes())
        copy_to_keras(network, pairs)
    if ctx.resuming:  # also with no state yet: a row logged before the first save is trained again
        ctx.run.truncate_history(first_epoch)

    callbacks = callback_list(ctx, model)
    x, y = ctx.data.split("train")
    validation = ctx.data.split("validation")
    model.stop_training = False
    callbacks.on_train_begin()
    epoch = first_epoch
    while epoch < config.epochs and not model.stop_training:
        callbacks.on_epoch_begin(epoch)
        # One BLAS thread: for matrices this small, BLAS threads spend more time waiting for cores
        # (which TensorFlow's own thread pools also occupy) than computing; measured 7x faster on digits.
        with threadpool_limits(limits=1, user_api="blas"):
            history = train(
                network, x, y, optimizer, epochs=1, batch_size=config.batch_size, seed=(config.seed, epoch),
                validation_data=validation,
            )
        logs = history.epochs[0]
        callbacks.on_train_batch_end(ctx.steps_per_epoch - 1, {"loss": logs["loss"], "accuracy": logs["accuracy"]})
        copy_to_keras(network, pairs)
        callbacks.on_epoch_end(epoch, logs)
        epoch += 1
        files.write_bytes(state_path, pickle.dumps((network, optimizer, epoch)))  # last, as in the other loops
    callbacks.on_train_end()
    return LoopResult(model, epochs_run=epoch - first_epoch, resume_state=state_path)
