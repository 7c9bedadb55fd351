"""`kerasdl evaluate RUN_DIR [--data NAME]`: reload a run's model and report its test metrics."""

from __future__ import annotations

import argparse

from kerasdl.commands import check_data, check_run_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a finished run directory on a test split")
    parser.add_argument("run_dir", help="a run directory written by `kerasdl train` or `kerasdl tune`")
    parser.add_argument("--data", help="data set name (default: the one the run trained on)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_run_dir(args.run_dir)  # before TensorFlow is imported
    check_data(args.data)
    from kerasdl.evaluation.report import evaluate_run, format_report, headline

    metrics, run_dir = evaluate_run(args.run_dir, args.data)
    name = metrics["data"]
    print(f"{run_dir.path} on {name}: test {headline(metrics)} ({metrics['test_samples']} samples)")
    print(format_report(metrics))
    print(f"written: {run_dir.path / f'evaluation_{name}.json'}, plots in {run_dir.plots_dir}")
    return 0
