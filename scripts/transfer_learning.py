"""Transfer learning with a backbone we pretrain ourselves: 8 CIFAR-10 classes, then 200 cats and dogs.

    python scripts/transfer_learning.py --seeds 0 1 --out runs/transfer-learning

ImageNet weights need a download, so the backbone first learns from what is here: MobileNetV2 (width
0.35) trains from scratch on the 8 CIFAR-10 classes that are neither cat nor dog. Then 100 cats and
100 dogs are learned three ways at the same budget (epochs, image size, augmentation, seed): from
scratch (random weights), by feature extraction (the pretrained backbone frozen, a new head) and by
fine-tuning (its top layers learn too). Each is scored on the 1,000 cats-vs-dogs test photos. Writes
the runs and `transfer.csv` / `.json` in --out and prints the table; run it again to reuse finished runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import non_negative_int, positive_float, positive_int

EVERY_LAYER = 1_000  # more layers than MobileNetV2 has: the whole backbone trains


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=positive_int, default=100, help="labelled cats, and dogs, to learn from")
    parser.add_argument("--image-size", type=positive_int, default=48, help="pretraining and target image size")
    parser.add_argument("--alpha", type=positive_float, default=0.35, help="MobileNetV2 width multiplier")
    parser.add_argument("--pretrain-epochs", type=positive_int, default=10)
    parser.add_argument("--epochs", type=positive_int, default=30, help="epochs on the cats and dogs")
    parser.add_argument("--learning-rate", type=positive_float, default=1e-3, help="fine-tuning: a tenth of it")
    parser.add_argument("--fine-tune-layers", type=non_negative_int, default=EVERY_LAYER)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/transfer-learning")
    parser.add_argument("--overwrite", action="store_true", help="retrain runs that already finished")
    parser.add_argument("--no-jit", action="store_true", help="skip XLA compilation (faster for short runs on a CPU)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.data import data_root
    from kerasdl.data.subsets import write_class_subset
    from kerasdl.evaluation import format_table, save_table
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    out = Path(args.out)
    # The data: ordinary image folders of links, so every kerasdl command can read them too.
    source = write_class_subset(data_root() / "cifar10", out / "data" / "cifar10-8", exclude=("cat", "dog"))
    target = write_class_subset(data_root() / "cats-vs-dogs", out / "data" / "pets", per_class=args.per_class)

    def train(name: str, data: Path, seed: int, epochs: int, learning_rate: float, **model_params) -> dict:
        config = TrainConfig(
            "mobilenet-v2", data=str(data), epochs=epochs, seed=seed, learning_rate=learning_rate,
            patience=epochs, image_size=args.image_size, augment=data == target, jit_compile=not args.no_jit,
            model_params={"alpha": args.alpha, **model_params},
        )
        run, metrics = train_once(config, out / f"{name}-{seed}", overwrite=args.overwrite)
        return {"run": name, "seed": seed, "data": data.name, **{k: metrics[k] for k in COLUMNS}}

    # 1. Pretraining: the whole network learns 8 classes from random weights.
    rows = [train("pretraining", source, 0, args.pretrain_epochs, args.learning_rate, weights="none",
                  fine_tune_layers=EVERY_LAYER)]
    pretrained = str((out / "pretraining-0" / "model.keras").resolve())  # its backbone is what we reuse
    # 2. Cats and dogs, three starts at the same budget.
    for seed in args.seeds:
        rows += [
            train("scratch", target, seed, args.epochs, args.learning_rate, weights="none",
                  fine_tune_layers=EVERY_LAYER),
            train("feature extraction", target, seed, args.epochs, args.learning_rate, weights=pretrained),
            train("fine-tuned", target, seed, args.epochs, args.learning_rate / 10, weights=pretrained,
                  fine_tune_layers=args.fine_tune_layers),
        ]
    print(format_table(rows))
    print(f"written: {', '.join(str(path) for path in save_table(rows, out / 'transfer'))}")
    return 0


COLUMNS = ("test_accuracy", "test_samples", "epochs", "best_epoch", "train_seconds")

if __name__ == "__main__":
    raise SystemExit(main())
