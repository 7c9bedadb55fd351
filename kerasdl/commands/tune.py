"""`kerasdl tune MODEL --tuner random|grid|bayesian|hyperband`: Keras Tuner search, then retrain the best.

Prints the table of trials and the retrained best model's test report; running the same command
again resumes an interrupted search without re-running finished trials. With `--chief HOST:PORT` (or
Keras Tuner's `KERASTUNER_*` variables) the search is distributed: this process is the chief, or with
`--worker-id ID` one of its workers, and every process uses the same --out.
"""

from __future__ import annotations

import argparse
import os

from kerasdl.commands import check_data, check_model, positive_int, progress_verbosity


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
        jit_compile=False if args.no_jit else None,
    )
    result = tune(
        config,
        args.tuner,
        max_trials=args.max_trials,
        objective=args.objective,
        out=args.out,
        overwrite=args.overwrite,
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
    written = ", ".join(str(result.out / name) for name in ("trials.csv", "trials.json", "best_hyperparameters.json"))
    print(f"written: {written}")
    return 0
