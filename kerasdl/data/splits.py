"""Stratified hold-out splits that stay valid on small data: at least one sample of every class held out."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from kerasdl.errors import DataError


def stratified_split(items: Sequence, labels: np.ndarray, fraction: float, seed: int, what: str) -> tuple:
    """(kept, held_out, kept_labels, held_out_labels): `fraction` of each class held out, fixed by `seed`.

    Holds out ceil(fraction * n) samples as scikit-learn does, but never fewer than one per class.
    """
    classes = len(np.unique(labels))
    if np.bincount(labels).min() < 2:
        raise DataError(f"{what}: every class needs at least 2 images, one to learn from and one to hold out")
    held_out = max(classes, math.ceil(fraction * len(labels)))
    if len(labels) - held_out < classes:
        raise DataError(f"{what}: {len(labels)} images are too few to hold out {held_out} and keep one per class")
    return train_test_split(items, labels, test_size=held_out, stratify=labels, random_state=seed)
