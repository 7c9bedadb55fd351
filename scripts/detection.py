"""Object detection with a small CenterNet on the raccoon photos: train, mAP@0.5 against a baseline, export.

    python scripts/detection.py --epochs 40 --out runs/centernet-raccoon

Reads `$KERASDL_DATA/raccoon` (200 photos, PASCAL VOC boxes; 160 train / 40 test as the set's CSVs split
them), trains `centernet` (heatmap peaks for centres, box sizes and offsets at 1/4 of the input), reports
mAP@0.5 on the test photos against the "mean training box" baseline, then exports an int8 TFLite model whose
boxes the TF-free runner decodes in NumPy (kerasdl infer ARTIFACT --input photo.jpg).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=40)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--image-size", type=positive_int, default=64, help="side of the square input (multiple of 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", default="tflite-int8", help="export format, or 'none'")
    parser.add_argument("--out", default="runs/centernet-raccoon")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.evaluation.report import format_report
    from kerasdl.export.exporter import export_run
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    # 1. Data and model are named: the registry builds `centernet`, kerasdl.data reads the VOC boxes.
    config = TrainConfig(
        "centernet", data="raccoon", epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        learning_rate=args.learning_rate, lr_schedule="cosine", image_size=args.image_size,
    )
    try:
        # 2. Train with flips and zooms of the photos (a finished run is reused), evaluate on the 40 test photos.
        run, metrics = train_once(config, Path(args.out), verbose=2)
        print(format_report(metrics))
        gain = metrics["test_map50"] - metrics["test_baseline_map50"]
        print(f"mAP@0.5 {metrics['test_map50']:.3f} vs {metrics['test_baseline_map50']:.3f} for the mean training "
              f"box ({gain:+.3f}); mean IoU of found boxes {metrics['test_mean_iou']:.3f}")
        print(f"plots (test photos with true and predicted boxes, learning curves): {run.plots_dir}")
        # 3. Ship the network's raw maps; peaks, boxes and NMS run in NumPy in the edge runner.
        if args.export != "none":
            export = export_run(run.path, args.export)
            parity = export.report["parity"]
            print(f"{args.export}: {export.report['bytes']:,} bytes, mAP@0.5 {parity['map50']:.3f} (Keras "
                  f"{parity['keras_map50']:.3f}), boxes matched at IoU >= 0.9 {parity['boxes_matched_iou90']:.0%} "
                  f"-> {export.artifact}")
    except KerasdlError as err:
        raise SystemExit(f"detection: error: {err}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
