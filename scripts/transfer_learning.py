"""Transfer learning with a backbone we pretrain ourselves: 8 CIFAR-10 classes, then 200 cats and dogs.

    python scripts/transfer_learning.py --pretrain-epochs 10 --epochs 20 --seeds 0 1 --out runs/transfer-learning

ImageNet weights need a download, so MobileNetV2 (width 0.35) first learns, from scratch, the 8 CIFAR-10
classes that are neither cat nor dog. Then 100 cats and 100 dogs are learned from three starts at the same
budget (epochs, image size, augmentation, seed): random weights (scratch), the pretrained backbone frozen
under a new head (feature extraction), or trained too, at a tenth of the step (fine-tuned). Each is scored
on the 1,000 cats-vs-dogs test photos. Writes the runs and `transfer.csv` / `.json` in --out and prints the
table; run it again to reuse finished runs (--overwrite retrains them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int

EVERY_LAYER = 1_000  # more layers than MobileNetV2 has: the whole backbone trains
COLUMNS = ("test_accuracy", "test_samples", "epochs", "best_epoch", "train_seconds")
STARTS = {  # name: (backbone weights, layers that train, learning rate); "pretrained" is filled in below
    "scratch": ("none", EVERY_LAYER, 1e-3),
    "feature extraction": ("pretrained", 0, 1e-2),  # only the new head learns: a linear model, a larger step
    "fine-tuned": ("pretrained", EVERY_LAYER, 1e-4),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=positive_int, default=10)
    parser.add_argument("--epochs", type=positive_int, default=20, help="epochs on the cats and dogs")
    parser.add_argument("--per-class", type=positive_int, default=100, help="labelled cats, and dogs, to learn from")
    parser.add_argument("--image-size", type=positive_int, default=48, help="for both data sets (CIFAR-10: 32)")
    parser.add_argument("--starts", nargs="+", choices=list(STARTS), default=list(STARTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/transfer-learning")
    parser.add_argument("--overwrite", action="store_true", help="retrain runs that already finished")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.data import data_root
    from kerasdl.data.subsets import write_class_subset
    from kerasdl.evaluation import format_table, save_table
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    out = Path(args.out)
    # Both data sets as ordinary image folders (links to the photos), which every kerasdl command reads.
    source = write_class_subset(data_root() / "cifar10", out / "data" / "cifar10-8", exclude=("cat", "dog"))
    target = write_class_subset(data_root() / "cats-vs-dogs", out / "data" / "pets", per_class=args.per_class)

    def train(name: str, data: Path, seed: int, epochs: int, learning_rate: float, **model_params) -> dict:
        config = TrainConfig(
            "mobilenet-v2", data=str(data), epochs=epochs, batch_size=32, seed=seed, learning_rate=learning_rate,
            lr_schedule="cosine" if data == source else "constant", patience=epochs, image_size=args.image_size,
            augment=data == target,  # the 200 photos only; pretraining keeps its best epoch instead
            model_params={"alpha": 0.35, **model_params},
        )
        run, metrics = train_once(config, out / f"{name.replace(' ', '-')}-{seed}", overwrite=args.overwrite)
        return {"run": name, "seed": seed, "data": data.name, **{key: metrics[key] for key in COLUMNS}}

    # 1. Pretraining: the whole network learns 8 classes from random weights.
    rows = [train("pretraining", source, 0, args.pretrain_epochs, 2e-3, weights="none", fine_tune_layers=EVERY_LAYER)]
    pretrained = str((out / "pretraining-0" / "model.keras").resolve())  # its "backbone" layer is reused
    # 2. Cats and dogs from each start, at the same budget.
    for seed in args.seeds:
        for name in args.starts:
            weights, layers, learning_rate = STARTS[name]
            weights = pretrained if weights == "pretrained" else weights
            rows.append(train(name, target, seed, args.epochs, learning_rate, weights=weights, fine_tune_layers=layers))
    print(format_table(rows))
    print(f"written: {', '.join(str(path) for path in save_table(rows, out / 'transfer'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
