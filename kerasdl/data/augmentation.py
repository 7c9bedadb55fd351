"""Training augmentation as Keras preprocessing layers, applied in the tf.data pipeline (training only).

Running it in the input pipeline rather than inside the model keeps it on the CPU workers that feed
training and out of every saved or exported model, which therefore never holds a random op.
"""

from __future__ import annotations

import keras

from kerasdl.errors import UnknownNameError

ROTATION_DEGREES = 15  # the curriculum's RandomRotation(15)


def photo_augmentation(seed: int) -> keras.Sequential:
    """The lesson's photo augmentation: horizontal flip, rotation about 15 degrees, zoom, brightness and
    contrast jitter (its ColorJitter 0.2), on inputs already scaled to [-1, 1]."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(ROTATION_DEGREES / 360, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomBrightness(0.2, value_range=(-1.0, 1.0), seed=seed + 3),
            keras.layers.RandomContrast(0.2, value_range=(-1.0, 1.0), seed=seed + 4),
        ],
        name="photo_augmentation",
    )


AUGMENTATIONS = {"photo": photo_augmentation}


def augmentation(name: str, seed: int) -> keras.Sequential | None:
    """The named augmentation, or None for "none" (digits must not be flipped: a mirrored 2 is no 2)."""
    if name == "none":
        return None
    if name not in AUGMENTATIONS:
        raise UnknownNameError("augmentation", name, ["none", *AUGMENTATIONS])
    return AUGMENTATIONS[name](seed)
