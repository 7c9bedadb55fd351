"""Our own Keras layers, each registered for serialization so `model.keras` reloads without custom objects."""

from kerasdl.layers.imagenet_input import ImageNetInput

__all__ = ["ImageNetInput"]
