"""`kerasdl data shard NAME|PATH --out DIR`: write a data set to TFRecord shards that `--data tfrecord:DIR` streams."""

from __future__ import annotations

import argparse

from kerasdl.commands import check_data, non_negative_int, positive_float, positive_int, progress_verbosity


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="prepare data sets (TFRecord shards for streaming)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    shard = actions.add_parser(
        "shard", help="write a data set to sharded TFRecord files and a manifest (train with --data tfrecord:DIR)"
    )
    shard.add_argument("data", metavar="NAME|PATH",
                       help="a registered data set, a folder of images (one sub-folder per class) or a CSV/TSV")
    shard.add_argument("--out", required=True, help="folder for the shards and manifest.json")
    shard.add_argument("--shard-size", type=positive_float, default=16.0, metavar="MB",
                       help="roughly this many MB per shard file (default 16)")
    shard.add_argument("--validation-fraction", type=float, default=0.1,
                       help="training data held out for validation, as `kerasdl train` splits it (default 0.1)")
    shard.add_argument("--seed", type=non_negative_int, default=0, help="seed of the validation split (default 0)")
    shard.add_argument("--image-size", type=positive_int, help="photos: resize to N x N (default: the set's own)")
    shard.add_argument("--overwrite", action="store_true", help="replace the shards already in --out")
    shard.add_argument("--quiet", action="store_true", help="no progress bar")
    shard.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kerasdl.errors import KerasdlError
    from kerasdl.locking import folder_lock

    if args.data.startswith("tfrecord:"):
        raise KerasdlError(f"{args.data} is already sharded")
    check_data(args.data)  # before TensorFlow is imported
    with folder_lock(args.out):  # before anything is read or written there: one writer per folder
        out = Path(args.out)
        if ((out / "manifest.json").exists() or any(out.glob("*.tfrecord"))) and not args.overwrite:
            raise KerasdlError(f"{out} already holds shards; pass --overwrite or choose another --out")
        from kerasdl.data.shards import write_shards

        manifest = write_shards(
            args.data, args.out, shard_mb=args.shard_size, validation_fraction=args.validation_fraction,
            seed=args.seed, image_size=args.image_size, overwrite=args.overwrite,
            verbose=progress_verbosity(args.quiet),
        )
    shards = [shard for split in manifest["shards"].values() for shard in split]
    counts = ", ".join(f"{split} {count:,}" for split, count in manifest["counts"].items())
    print(f"wrote {len(shards)} shards ({sum(s['bytes'] for s in shards) / 2**20:.1f} MB) to {Path(args.out)}: {counts}")
    print(f"train from them with: kerasdl train MODEL --data tfrecord:{Path(args.out)}")
    return 0
