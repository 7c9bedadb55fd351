"""`kerasdl tune MODEL --tuner random|grid|bayesian|hyperband`: Keras Tuner search, then retrain the best.

Prints the table of trials and the retrained best model's test report (with `--export FORMAT`, the best
run's edge artifact and its parity report too); running the same command again resumes an interrupted
search without re-running finished trials. Searches of more than a few trials run each trial in its own
process (`--isolate`), and keep the checkpoints of the best 3 trials only (`--keep-best`). With `--chief HOST:PORT` (or
Keras Tuner's `KERASTUNER_*` variables) the search is distributed: this process is the chief, or with
`--worker-id ID` one of its workers, and every process uses the same --out.
"""

from __future__ import annotations

import argparse
import os

from kerasdl.export.formats import FORMATS

from kerasdl.commands import check_data, check_model, positive_int, progress_verbosity
from kerasdl.commands.train import add_task_flags, task_params


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tune", help="search a model's hyperparameters with Keras Tuner")
    parser.add_argument("model", help="registered model name (see `kerasdl list`)")
    parser.add_argument("--tuner", required=True, help="random, grid, bayesian or hyperband")
    parser.add_argument(
        "--max-trials", type=positive_int, default=10, help="trials at most (default 10; distributed: the chief's)"
    )
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs per trial (Hyperband: at most)")
    parser.add_argument("--data", help="data set name (default: the model's)")
    parser.add_argument(
        "--target", help="--data is a CSV/TSV table: predict this column from the others (as kerasdl train)"
    )
    parser.add_argument("--objective", help="logged metric to optimize (default: the task's, val_accuracy for classifiers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        help="output folder (default: runs/tune-MODEL-DATA-TUNER; distributed: the same for every process, "
        "on a shared file system across machines)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start the search over instead of resuming it (chief only)"
    )
    parser.add_argument(
        "--chief",
        metavar="HOST:PORT",
        help="distributed search: the chief's oracle address; without --worker-id this process is the chief "
        "(sets KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT and KERASTUNER_TUNER_ID)",
    )
    parser.add_argument(
        "--worker-id", metavar="ID", help="distributed search: this process is worker ID (tuner0, tuner1, ...; unique)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--no-jit", action="store_true", help="skip XLA compilation (default: XLA for models it speeds up)")
    parser.add_argument("--image-size", type=positive_int, help="resize images to N x N (default: the data set's)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="no training augmentation")
    parser.add_argument("--weights", help="transfer models: backbone weights, imagenet, none or FILE")
    long = parser.add_argument_group("long searches")
    long.add_argument(
        "--isolate", action=argparse.BooleanOptionalAction, default=None,
        help="run each trial in a fresh process, so memory does not grow across trials "
        "(default: on for more than 4 trials)",
    )
    long.add_argument(
        "--keep-best", type=positive_int, default=3, metavar="K",
        help="keep the checkpoints of the best K trials only, deleting the others as the search goes (default 3)",
    )
    long.add_argument("--keep-all", action="store_true", help="keep every trial's checkpoint")
    long.add_argument("--export", metavar="FORMAT", choices=list(FORMATS),
                      help="export the retrained best model (as `kerasdl export --format`) with its parity report")
    add_task_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kerasdl.tuning.role import current_role, role_variables

    check_model(args.model)  # before TensorFlow is imported
    check_data(args.data)
    os.environ.update(role_variables(args.chief, args.worker_id))  # Keras Tuner reads its role from there
    role = current_role(overwrite=args.overwrite)
    if role.tuner_id:
        print(f"kerasdl tune: this process is {role.describe()}", flush=True)
    from kerasdl.evaluation import format_table
    from kerasdl.evaluation.report import format_report
    from kerasdl.registry import model_spec
    from kerasdl.training import TrainConfig
    from kerasdl.tuning import tune

    config = TrainConfig(
        model=args.model,
        data=args.data,
        target=args.target,
        **{**model_spec(args.model).train_defaults, "epochs": args.epochs},
        seed=args.seed,
        image_size=args.image_size,
        augment=args.augment,
        model_params={"weights": args.weights} if args.weights else {},
        task_params=task_params(args),
        jit_compile=False if args.no_jit else None,
    )
    result = tune(
        config,
        args.tuner,
        max_trials=args.max_trials,
        objective=args.objective,
        out=args.out,
        overwrite=args.overwrite,
        isolate=args.isolate,
        keep_best=None if args.keep_all else args.keep_best,
        export=args.export,
        verbose=progress_verbosity(args.quiet),
    )
    if role.worker:
        ran = ", ".join(result.trial_ids) or "none"
        print(f"worker {role.tuner_id} ran trials: {ran}; the chief writes the results to {result.out}")
        return 0
    best = result.best
    print(f"trials ({args.tuner} search, objective {best['objective']}):")
    print(format_table(result.trials))
    print(f"best trial {best['trial']}: {best['objective']} {best['score']:.4f} with {best['hyperparameters']}")
    print(f"best configuration retrained into {result.best_run.path}:")
    print(format_report(result.best_metrics))
    if result.export is not None:
        from kerasdl.commands.export import describe

        print("\n".join(describe(result.export)))
    names = ("trials.csv", "trials.json", "best_hyperparameters.json", "objective.png", "best_curves.png")
    print(f"written: {', '.join(str(result.out / name) for name in names)}")
    print(f"TensorBoard HParams dashboard: tensorboard --logdir {result.out}")
    return 0
