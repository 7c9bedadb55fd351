"""A DCGAN on MNIST, end to end: a feature classifier, the adversarial training, and its sample quality.

    python scripts/gan.py --epochs 5 --train-samples 20000 --out runs/dcgan

Trains (or reuses) `cnn-mnist` as the judge, then `dcgan` (noise -> transposed convs -> 28x28 digit,
against a strided-conv discriminator) with the two-player GradientTape step, and prints the Frechet
distance of the generated digits' classifier features to real test digits (an MNIST analogue of FID, not
FID), how many of the 10 digits they cover, and where the per-epoch sample grids are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--train-samples", type=positive_int, default=20000, help="MNIST training images the GAN sees")
    parser.add_argument("--eval-samples", type=positive_int, default=10000, help="generated vs real test images")
    parser.add_argument("--learning-rate", type=float, default=5e-4, help="both players' Adam (beta_1 0.5)")
    parser.add_argument("--loop", choices=("fit", "tape"), default="fit")
    parser.add_argument("--classifier-epochs", type=positive_int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/dcgan")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation.report import format_report
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    out = Path(args.out)
    try:
        # 1. The judge: a digit classifier whose penultimate layer embeds real and generated images alike.
        judge, judge_metrics = train_once(
            TrainConfig("cnn-mnist", epochs=args.classifier_epochs, seed=args.seed), out / "classifier"
        )
        print(f"classifier: test accuracy {judge_metrics['test_accuracy']:.4f} ({judge.path})")
        # 2. The game: D learns real from fake, G learns to fool D, one GradientTape each per batch.
        config = TrainConfig(
            "dcgan", epochs=args.epochs, learning_rate=args.learning_rate, loop=args.loop, seed=args.seed,
            task_params={
                "train_samples": args.train_samples, "validation_samples": 1000,
                "eval_samples": args.eval_samples, "classifier_run": str(judge.path),
            },
        )
        run, metrics = train_once(config, out / "gan", verbose="auto")
    except KerasdlError as err:
        raise SystemExit(f"gan: error: {err}") from None
    # 3. How good are the digits? Lower distance is better; real vs real shows the floor at this sample size.
    print(format_report(metrics))
    print(f"sample grids, one per epoch (fixed noise): {run.plots_dir}/samples_epoch_*.png")
    print(f"label histogram: {run.plots_dir / 'label_histogram.png'}; d_loss and g_loss per epoch: {run.history_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
