"""Plots of the reconstruction task: image rows, sample grids, a 2-D latent scatter, anomaly scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasdl.evaluation.plots import _save, plt
from kerasdl.evaluation.vision import _grid, _show


def plot_rows(rows: dict[str, np.ndarray], path: Path) -> Path:
    """One row of images (pixels in [0, 1]) per entry, titled by its key: input, reconstruction, clean."""
    count = min(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), count, figsize=(1.2 * count, 1.3 * len(rows)), squeeze=False)
    for row, (name, images) in zip(axes, rows.items()):
        for ax, image in zip(row, images):
            _show(ax, image)
        row[0].set_title(name, loc="left", fontsize="small")
    return _save(fig, path)


def plot_image_grid(images: np.ndarray, title: str, path: Path) -> Path:
    fig, axes = _grid(len(images), cell=0.9)
    for ax, image in zip(axes, images):
        _show(ax, image)
    fig.suptitle(title)
    return _save(fig, path)


def plot_latent_scatter(encodings: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], path: Path) -> Path:
    """Test images' 2-D encodings, coloured by class."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    points = ax.scatter(encodings[:, 0], encodings[:, 1], c=labels, cmap="tab10", s=3, alpha=0.6)
    ax.legend(points.legend_elements()[0], class_names, title="class", fontsize="small", markerscale=1.5)
    ax.set(title="test images in the 2-D latent space", xlabel="z[0]", ylabel="z[1]")
    return _save(fig, path)


def plot_anomaly_scores(errors: np.ndarray, is_anomaly: np.ndarray, class_name: str, path: Path) -> Path:
    """Reconstruction-error histograms of seen classes and the held-out one, and the ROC curve they give."""
    from sklearn.metrics import RocCurveDisplay

    fig, (hist, roc) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(0.0, np.quantile(errors, 0.995), 50)
    hist.hist(errors[~is_anomaly], bins=bins, density=True, alpha=0.6, label="seen classes")
    hist.hist(errors[is_anomaly], bins=bins, density=True, alpha=0.6, label=f"held out: {class_name}")
    hist.set(title="test reconstruction error", xlabel="MSE per image", ylabel="density")
    hist.legend()
    RocCurveDisplay.from_predictions(is_anomaly, errors, name="reconstruction error", ax=roc)
    roc.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
    roc.set(title=f"anomaly = class {class_name}")
    roc.legend(fontsize="small")
    return _save(fig, path)
