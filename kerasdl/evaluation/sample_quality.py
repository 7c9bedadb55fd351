"""How good a generator's samples are, judged by a trained classifier: Frechet distance and label coverage.

The Frechet distance fits a Gaussian to each set's features and measures
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)),
the Frechet (2-Wasserstein) distance between the two Gaussians. FID computes it on Inception-v3 features of
photos; here the features are the penultimate layer of our own MNIST classifier, so the figure is an MNIST
analogue of FID, comparable only with figures from the same classifier, never with published FIDs.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import scipy.linalg

COVERAGE_SHARE = 0.01  # a label counts as covered when it gets at least 1% of the samples
SQRTM_EPSILON = 1e-6  # added to both covariances' diagonals when their product has no accurate square root
ROOT_TOLERANCE = 1e-6  # relative Frobenius error of root @ root against the product that counts as accurate
MAX_IMAGINARY = 1e-3  # relative imaginary part of Tr sqrtm that rounding explains; more means a real problem


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors (rows are samples)."""
    a, b = (np.asarray(features, np.float64) for features in (features_a, features_b))
    if a.ndim != 2 or b.shape[1:] != a.shape[1:] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two sets of >= 2 feature rows of one width, got {a.shape}, {b.shape}")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = (np.atleast_2d(np.cov(features, rowvar=False)) for features in (a, b))
    trace_root = np.trace(_product_root(cov_a, cov_b))
    if np.iscomplexobj(trace_root):  # S_a S_b has a real, non-negative spectrum; rounding leaves tiny imaginary parts
        if abs(trace_root.imag) > MAX_IMAGINARY * max(1.0, abs(trace_root.real)):
            raise ValueError(f"Tr sqrtm(S_a S_b) has a large imaginary part {trace_root.imag:.3g}")
        trace_root = trace_root.real
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root
    return float(max(distance, 0.0))  # rounding can leave -1e-12 for identical sets


def _product_root(cov_a: np.ndarray, cov_b: np.ndarray) -> np.ndarray:
    """sqrtm(S_a S_b), checked: where the product is singular (dead ReLU features, fewer samples than
    features) and the root does not square back to it, the root of the product with SQRTM_EPSILON added
    to both diagonals, as pytorch-fid does."""
    for offset in (0.0, SQRTM_EPSILON):
        product = (cov_a + offset * np.eye(len(cov_a))) @ (cov_b + offset * np.eye(len(cov_b)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # "singular": the check below decides
            root = scipy.linalg.sqrtm(product)
        error = np.linalg.norm(root @ root - product)
        if np.isfinite(root).all() and error <= ROOT_TOLERANCE * np.linalg.norm(product):
            return root
    raise ValueError("sqrtm(S_a S_b) has no accurate square root, even with both diagonals offset")


def penultimate_features(classifier: keras.Model) -> keras.Model:
    """The classifier cut before its last layer: image -> the features its logits are computed from."""
    return keras.Model(classifier.inputs, classifier.layers[-1].input, name=f"{classifier.name}_features")


def label_histogram(logits: np.ndarray, num_classes: int) -> np.ndarray:
    """How many samples the classifier assigns to each label."""
    return np.bincount(np.argmax(logits, axis=1), minlength=num_classes)


def label_coverage(histogram: np.ndarray, share: float = COVERAGE_SHARE) -> int:
    """Labels that get at least `share` of the samples: 10 for digits drawn evenly, 1 for a collapsed GAN."""
    return int(np.sum(histogram >= share * histogram.sum()))
