"""Stage 4's segmentation project: a U-Net finds the membranes in ISBI 2012 electron-microscopy sections.

    python scripts/segmentation.py --epochs 20 --out runs/unet-isbi

Reads `$KERASDL_DATA/isbi-em-membrane` (30 labelled 512x512 sections; the last 6 are the test split), trains
`unet` on random 128x128 crops (flipped and turned), then measures every pixel of the held-out sections:
pixel accuracy against always answering "cell", IoU and Dice per class, and mask overlays in plots/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--filters", type=positive_int, nargs="+", default=[16, 32, 64, 128],
                        help="filters per U-Net level, top to bottom (default 16 32 64 128)")
    parser.add_argument("--tile", type=positive_int, default=128, help="side of the crops the U-Net sees (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/unet-isbi")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    # 1. The model and the data are named; kerasdl.data cuts the sections into tiles and augments the crops.
    config = TrainConfig(
        "unet", data="isbi-em-membrane", epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        learning_rate=args.learning_rate, lr_schedule="cosine", patience=args.epochs, image_size=args.tile,
        model_params={"filters": args.filters},
    )
    try:
        # 2. Train (resumes if interrupted; a finished run is reused), evaluate on the 6 held-out sections.
        run, metrics = train_once(config, Path(args.out), verbose="auto")
    except KerasdlError as err:
        raise SystemExit(f"segmentation: error: {err}") from None
    # 3. What the numbers mean: accuracy is only worth its margin over the majority class.
    accuracy, baseline = metrics["test_pixel_accuracy"], metrics["test_majority_baseline"]
    print(f"pixel accuracy {accuracy:.4f} vs {baseline:.4f} always answering {metrics['majority_class']!r} "
          f"(+{100 * (accuracy - baseline):.1f} points) on {metrics['test_pixels']:,} test pixels")
    for name in metrics["class_names"]:
        print(f"  {name:<9} IoU {metrics[f'test_iou_{name}']:.4f}  Dice {metrics[f'test_dice_{name}']:.4f}")
    print(f"mean IoU {metrics['test_mean_iou']:.4f}, mean Dice {metrics['test_mean_dice']:.4f}")
    print(f"overlays (image, true mask, predicted mask, errors): {run.plots_dir / 'segmentation_overlays.png'}")
    print(f"ship it: kerasdl export {run.path} --format tflite-int8, then kerasdl infer ARTIFACT --input SECTION.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
