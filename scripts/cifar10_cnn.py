"""The curriculum's CIFAR-10 CNN, end to end: data, model, training, evaluation and an edge export.

    python scripts/cifar10_cnn.py --epochs 30 --out runs/cifar10-cnn

Reads `$KERASDL_DATA/cifar10` (JPEG class folders) or downloads CIFAR-10 through `keras.datasets`,
trains `cnn-cifar` (Conv 32 'same' -> pool -> Conv 64 'valid' -> pool -> Dense 600 -> 120 -> 10) with
the lesson's augmentation (flip, rotation, color jitter), then exports a full-integer TFLite model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="train on the photos as they are")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/cifar10-cnn")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation.report import format_report
    from kerasdl.export.exporter import export_run
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    # 1. Data and model are named: the registry builds `cnn-cifar`, kerasdl.data streams cifar10.
    config = TrainConfig(
        "cnn-cifar", data="cifar10", epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        augment=args.augment, lr_schedule="cosine", patience=args.epochs,
    )
    try:
        # 2. Train (resumes if interrupted; a finished run is reused), evaluate on the 2,000 test photos.
        run, metrics = train_once(config, Path(args.out), verbose="auto")
        print(format_report(metrics))
        # 3. Ship it: full-integer TFLite, checked against the Keras model on the test split.
        export = export_run(run.path, "tflite-int8")
    except KerasdlError as err:
        raise SystemExit(f"cifar10_cnn: error: {err}") from None
    parity = export.report["parity"]
    print(f"int8 TFLite: {export.report['bytes']:,} bytes, test accuracy {parity['accuracy']:.4f} "
          f"(Keras {parity['keras_accuracy']:.4f}) -> {export.artifact}")
    print(f"plots (learning curves, confusion matrix, misclassified, filters, Grad-CAM): {run.plots_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
