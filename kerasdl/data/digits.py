"""scikit-learn's digits: 1,797 real 8x8 handwritten digits shipped inside scikit-learn (the embedded default)."""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from kerasdl.data.base import RawSplits, register_dataset

TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0  # the test split never moves, whatever the run's seed


@register_dataset(
    "digits",
    description="scikit-learn digits, 1,797 8x8 grayscale images (0-16), embedded; fixed 20% test split",
    class_names=tuple(str(d) for d in range(10)),
    max_value=16.0,
)
def load_digits_splits(data_dir: Path) -> RawSplits:
    digits = load_digits()
    images = digits.images.astype(np.uint8)[..., np.newaxis]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=TEST_FRACTION, stratify=digits.target, random_state=TEST_SPLIT_SEED
    )
    return RawSplits(x_train, y_train, x_test, y_test)
