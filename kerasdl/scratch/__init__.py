"""Stage 1 from scratch, in NumPy only: neurons, activations, losses, layers with hand-written
backward passes, optimizers, gradient-descent regimes and a gradient check.

Nothing here imports TensorFlow; tests/test_scratch_tf_crosscheck.py compares it with Keras.
"""

from kerasdl.scratch.activations import ReLU, Sigmoid, Softmax, Tanh, sigmoid, softmax, step
from kerasdl.scratch.descent import REGIMES, History, evaluate, train
from kerasdl.scratch.gradient_check import check_layer, check_loss
from kerasdl.scratch.layers import BatchNormalization, Dense, Dropout
from kerasdl.scratch.losses import BinaryCrossEntropy, CategoricalCrossEntropy, MeanSquaredError
from kerasdl.scratch.mlp import MLP, Sequential
from kerasdl.scratch.optimizers import Adam, GradientDescent, Momentum, RMSProp
from kerasdl.scratch.perceptron import Neuron, Perceptron
from kerasdl.scratch.regularizers import L1L2

__all__ = [
    "MLP",
    "REGIMES",
    "Adam",
    "BatchNormalization",
    "BinaryCrossEntropy",
    "CategoricalCrossEntropy",
    "Dense",
    "Dropout",
    "GradientDescent",
    "History",
    "L1L2",
    "MeanSquaredError",
    "Momentum",
    "Neuron",
    "Perceptron",
    "RMSProp",
    "Sequential",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "check_layer",
    "check_loss",
    "evaluate",
    "sigmoid",
    "softmax",
    "step",
    "train",
]
