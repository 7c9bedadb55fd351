"""`kerasdl train MODEL`: train a registered model into a run directory (resumes an interrupted run).

Optimization flags (--optimizer, --lr-schedule, --clipnorm, --patience) go to `TrainConfig`; the
regularization flags (--dropout, --l1, --l2, --batch-norm) go to the model's builder through
`TrainConfig.model_params`, and only when given, so models whose builder lacks them still train.
"""

from __future__ import annotations

import argparse

from kerasdl.commands import (
    dropout_rate,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    progress_verbosity,
)

# Builder keyword arguments.
MODEL_FLAGS = (
    "dropout", "l1", "l2", "batch_norm", "weights", "fine_tune_layers", "units", "layers", "embedding_dim", "embeddings",
    "heads", "backbone",
)
# TrainConfig fields a model may set its own defaults for (registry `train_defaults`), the flags' otherwise.
DEFAULTABLE = ("epochs", "batch_size", "optimizer", "learning_rate", "lr_schedule")
# TrainConfig.task_params.
TASK_FLAGS = (
    "noise", "held_out_class", "classifier_run", "train_samples", "sequence_length", "horizon", "window_size",
    "negative_samples", "tokenizer", "vocabulary_size",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a registered model and write a run directory")
    parser.add_argument("model", help="registered model name (see `kerasdl list`)")
    parser.add_argument(
        "--data", help="data set name, or a folder of images with one sub-folder per class (default: the model's)"
    )
    parser.add_argument(
        "--target", help="--data is a CSV/TSV table with a header row: predict this column from the others "
        "(classes: mlp; a number: mlp-regressor)"
    )
    parser.add_argument("--epochs", type=positive_int, help="default 10, or the model's own (see its docstring)")
    parser.add_argument("--batch-size", type=positive_int, help="default 64, or the model's own")
    parser.add_argument("--loop", help="fit (model.fit), tape (GradientTape loop)...; default: the model's first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="run directory (default: runs/MODEL-DATA-LOOP)")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--no-jit", action="store_true", help="skip XLA compilation (default: XLA for models it speeds up)")
    images = parser.add_argument_group("image data")
    images.add_argument("--image-size", type=positive_int, help="resize images to N x N (default: the data set's)")
    images.add_argument(
        "--no-augment", dest="augment", action="store_false", help="no training augmentation (flip, rotation, ...)"
    )
    transfer = parser.add_argument_group("transfer learning (passed to the model's builder)")
    transfer.add_argument("--weights", help="backbone weights: imagenet, none, or a saved backbone (.keras / .weights.h5)")
    transfer.add_argument(
        "--fine-tune-layers", type=non_negative_int, help="unfreeze the backbone's top N layers (0: feature extraction)"
    )
    sequences = parser.add_argument_group("sequences and text (see `kerasdl list` for each model's task)")
    sequences.add_argument("--units", type=positive_int, help="recurrent models: units per recurrent layer")
    sequences.add_argument("--layers", type=positive_int, help="recurrent models: stacked recurrent layers")
    sequences.add_argument("--embedding-dim", type=positive_int, help="text models: word/character vector size")
    sequences.add_argument("--embeddings", help="text classifiers: a word2vec run whose vectors initialize the embedding")
    sequences.add_argument(
        "--sequence-length", type=positive_int,
        help="text: token ids per text (default: the longest training text, up to 128); language models: "
        "characters per training window; forecasting: past steps per window",
    )
    sequences.add_argument("--horizon", type=positive_int, help="forecasting: steps predicted ahead (default 1)")
    sequences.add_argument("--window-size", type=positive_int, help="word2vec: context words on each side")
    sequences.add_argument("--negative-samples", type=positive_int, help="word2vec: negative words per pair")
    attention = parser.add_argument_group("attention and Transformers")
    attention.add_argument("--heads", type=positive_int, help="Transformers: attention heads per block")
    attention.add_argument(
        "--backbone", help="bert-classifier: a bert-mini run whose pretrained encoder it fine-tunes; transfer models: "
        "mobilenet-v2, efficientnet-b0 or resnet50 (default: the model's own)",
    )
    attention.add_argument(
        "--tokenizer", help="language models, translation: character, word or subword (a WordPiece vocabulary "
        "trained on the training text)"
    )
    attention.add_argument("--vocabulary-size", type=positive_int, help="subword/word tokenizers: most tokens to keep")
    optimization = parser.add_argument_group("optimization")
    optimization.add_argument(
        "--optimizer", help="sgd, momentum (SGD, 0.9), rmsprop or adam (default adam, or the model's own)"
    )
    optimization.add_argument("--learning-rate", type=positive_float, help="default 1e-3, or the model's own")
    optimization.add_argument("--lr-schedule", help="constant, cosine or exponential (default constant, or the model's own)")
    optimization.add_argument("--clipnorm", type=positive_float, help="clip each gradient to this L2 norm")
    optimization.add_argument(
        "--patience", type=positive_int, default=5, help="early stopping: epochs without a better val_loss"
    )
    regularization = parser.add_argument_group("regularization (passed to the model's builder)")
    regularization.add_argument("--dropout", type=dropout_rate, help="dropout rate after each hidden layer")
    regularization.add_argument("--l1", type=non_negative_float, help="L1 weight penalty")
    regularization.add_argument("--l2", type=non_negative_float, help="L2 weight penalty")
    regularization.add_argument(
        "--batch-norm", action="store_true", default=None, help="batch normalization in each hidden layer"
    )
    scale = parser.add_argument_group("scale (see the README's \"Scaling out\")")
    scale.add_argument(
        "--strategy", default="default",
        help="default: one device; mirrored: every local GPU/CPU device (tf.distribute.MirroredStrategy); "
        "multiworker: the machines in TF_CONFIG (MultiWorkerMirroredStrategy). --batch-size is the global batch",
    )
    scale.add_argument(
        "--precision", default="float32",
        help="float32, mixed_float16 (GPUs) or mixed_bfloat16 (TPUs, recent CPUs): 16-bit compute, float32 weights and outputs",
    )
    add_task_flags(parser)
    parser.set_defaults(run=run)


def add_task_flags(parser: argparse.ArgumentParser) -> None:
    """The task options (`TrainConfig.task_params`), shared by `train` and `tune`."""
    task = parser.add_argument_group("task options (autoencoders, GANs; see `kerasdl list` for each model's task)")
    task.add_argument("--noise", type=non_negative_float, help="reconstruction: denoise inputs with this Gaussian stddev")
    task.add_argument("--held-out-class", help="reconstruction: leave this class out of training, score it as anomaly")
    task.add_argument("--classifier-run", help="generation: a cnn-mnist run whose features measure the Frechet distance")
    task.add_argument(
        "--train-samples", type=positive_int, help="image and array classification, reconstruction, generation: train on "
        "a seeded subset of this size; language models: training windows per epoch"
    )


def task_params(args: argparse.Namespace) -> dict:
    """The task options given on the command line."""
    return {flag: getattr(args, flag) for flag in TASK_FLAGS if getattr(args, flag, None) is not None}


def run(args: argparse.Namespace) -> int:
    from kerasdl.commands import check_data, check_model

    check_model(args.model)  # before TensorFlow is imported: a typo is reported at once
    check_data(args.data)

    from kerasdl.evaluation.report import format_report, headline
    from kerasdl.registry import model_spec
    from kerasdl.training import TrainConfig, train

    given = {flag: getattr(args, flag) for flag in DEFAULTABLE if getattr(args, flag) is not None}
    config = TrainConfig(
        model=args.model,
        data=args.data,
        **{**model_spec(args.model).train_defaults, **given},
        loop=args.loop,
        seed=args.seed,
        clipnorm=args.clipnorm,
        patience=args.patience,
        image_size=args.image_size,
        augment=args.augment,
        model_params={flag: getattr(args, flag) for flag in MODEL_FLAGS if getattr(args, flag) is not None},
        task_params=task_params(args),
        jit_compile=False if args.no_jit else None,
        strategy=args.strategy,
        precision=args.precision,
        target=args.target,
    )
    result = train(config, out=args.out, overwrite=args.overwrite, verbose=progress_verbosity(args.quiet))
    m = result.metrics
    print(
        f"{m['model']} on {m['data']} ({m['loop']} loop, {m['epochs']} epochs): "
        f"test {headline(m)}, {m['train_samples_per_second']:.0f} samples/s"
    )
    print(format_report(m))
    if result.run.path.exists():
        print(f"run directory: {result.run.path}")
    else:  # a non-chief worker of a cluster: its own folder is gone, the chief's holds the run
        print("this worker's part is done; the chief of the cluster writes the run directory")
    return 0
