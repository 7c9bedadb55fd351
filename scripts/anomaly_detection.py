"""Anomaly detection with an autoencoder: train on every digit but one, flag that one by reconstruction error.

    python scripts/anomaly_detection.py --held-out-class 2 --epochs 10 --out runs/anomaly-detection

The reconstruction task drops the held-out digit from the training and validation images; the test split
keeps all ten. An autoencoder reconstructs what it has seen better than what it has not, so each test
image's reconstruction MSE is its anomaly score, and the ROC-AUC says how well that score separates the
held-out digit from the rest (0.5: chance, 1: perfect).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out-class", default="2", help="the digit never seen in training (default 2)")
    parser.add_argument("--model", choices=["autoencoder", "conv-autoencoder"], default="autoencoder")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--train-samples", type=positive_int, help="train on this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/anomaly-detection")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation.report import format_report
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    # 1. The task's options: which digit is the anomaly (left out of training), and how much data.
    task_params = {"held_out_class": args.held_out_class}
    if args.train_samples:
        task_params["train_samples"] = args.train_samples
    config = TrainConfig(args.model, epochs=args.epochs, seed=args.seed, task_params=task_params)
    try:
        # 2. Train on the other digits; evaluation scores every test image by its reconstruction error.
        run, metrics = train_once(config, Path(args.out), verbose="auto")
    except KerasdlError as err:
        raise SystemExit(f"anomaly_detection: error: {err}") from None
    # 3. The figures: how far apart the two groups' errors are, and the ROC-AUC of the score.
    print(format_report(metrics))
    print(
        f"held-out digit {metrics['anomaly_class']}: mean reconstruction MSE {metrics['test_mse_held_out']:.4f} "
        f"vs {metrics['test_mse_seen']:.4f} for the digits seen; anomaly ROC-AUC {metrics['test_anomaly_roc_auc']:.4f}"
    )
    print(f"error histograms and ROC curve: {run.plots_dir / 'anomaly_scores.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
