"""A denoising convolutional autoencoder on MNIST: noisy digits in, clean digits out.

    python scripts/denoising_autoencoder.py --epochs 10 --noise 0.5 --out runs/denoising-autoencoder

Trains `conv-autoencoder` (stride-2 convs 32, 64 -> 32-wide bottleneck -> transposed convs) with MSE
against the clean images, while the reconstruction task adds Gaussian noise (stddev on the [-1, 1] pixel
scale, seeded, clipped) to every input. Prints how much of the noise's error is left, and where the grid
of noisy / reconstructed / clean test digits is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_float, positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--noise", type=positive_float, default=0.5, help="noise stddev on the [-1, 1] scale")
    parser.add_argument("--latent-dim", type=positive_int, default=32)
    parser.add_argument("--train-samples", type=positive_int, help="train on this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/denoising-autoencoder")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation.report import format_report
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    # 1. The model and its task's options: noise on the inputs only; the targets stay clean.
    task_params = {"noise": args.noise}
    if args.train_samples:
        task_params["train_samples"] = args.train_samples
    config = TrainConfig(
        "conv-autoencoder", epochs=args.epochs, seed=args.seed, model_params={"latent_dim": args.latent_dim},
        task_params=task_params,
    )
    try:
        # 2. Train (resumes if interrupted; a finished run is reused) and evaluate on the 10,000 test digits.
        run, metrics = train_once(config, Path(args.out), verbose="auto")
    except KerasdlError as err:
        raise SystemExit(f"denoising_autoencoder: error: {err}") from None
    # 3. The figures: the noisy inputs' MSE against the clean digits, and what the autoencoder leaves.
    print(format_report(metrics))
    print(
        f"noisy inputs: MSE {metrics['test_noisy_mse']:.4f}; reconstructions: MSE {metrics['test_mse']:.4f} "
        f"({metrics['test_denoising_factor']:.1f}x less), on the [-1, 1] pixel scale"
    )
    print(f"noisy / reconstructed / clean test digits: {run.plots_dir / 'reconstructions.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
