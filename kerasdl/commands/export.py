"""`kerasdl export RUN_DIR --format F`: write an edge/serving artifact, preprocessing.json and export.json."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kerasdl.commands import check_run_dir, positive_int
from kerasdl.export.formats import DEFAULT_LATENCY_RUNS, DEFAULT_REPRESENTATIVE_SAMPLES, FORMATS

if TYPE_CHECKING:
    from kerasdl.export.exporter import ExportResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run's model (SavedModel, TFLite fp32/fp16/dynamic/int8, ONNX) with a parity report"
    )
    parser.add_argument("run_dir", help="a run directory written by `kerasdl train`")
    parser.add_argument("--format", required=True, choices=list(FORMATS), help="artifact format")
    parser.add_argument("--out", help="output folder (default: export/artifacts/RUN_NAME/FORMAT)")
    parser.add_argument(
        "--representative-samples",
        type=positive_int,
        default=DEFAULT_REPRESENTATIVE_SAMPLES,
        help=f"training samples that calibrate int8 quantization (default {DEFAULT_REPRESENTATIVE_SAMPLES})",
    )
    parser.add_argument(
        "--latency-runs",
        type=positive_int,
        default=DEFAULT_LATENCY_RUNS,
        help=f"timed single-sample calls in the runtime (default {DEFAULT_LATENCY_RUNS})",
    )
    parser.add_argument(
        "--to-repo", metavar="MODEL_DIR",
        help="also publish the export into this model repository as NAME/<next version>/ (kerasdl serve reads it)",
    )
    parser.add_argument("--name", help="with --to-repo: the served model's name (default: model and data, "
                        "such as cnn-mnist or bilstm-sst2)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_run_dir(args.run_dir)  # before TensorFlow is imported
    from kerasdl.export.exporter import export_run
    from kerasdl.quiet import filtered_stderr

    # The TFLite converter and LiteRT print lines of their own (kerasdl.quiet.NOISE); --verbose keeps them.
    with filtered_stderr(enabled=not getattr(args, "verbose", False)):
        result = export_run(
            args.run_dir,
            args.format,
            args.out,
            representative_samples=args.representative_samples,
            latency_runs=args.latency_runs,
        )
    print("\n".join(describe(result)))
    report = result.report
    if args.to_repo:
        from pathlib import Path

        from kerasdl.serve.repository import publish, servable_name

        source = report["source"]
        version = publish(result.artifact.parent, Path(args.to_repo), args.name or servable_name(source["model"], source["data"]))
        print(f"published: {version} (kerasdl serve {args.to_repo})")
    return 0


def describe(result: ExportResult) -> list[str]:
    """What `kerasdl export` prints of an `ExportResult`: the artifact, its parity and latency, the report."""
    from kerasdl.tasks import get_task

    report, measured = result.report, result.report["parity"]
    ops = {True: ", builtin ops only", False: ", NOT builtin ops only", None: ""}[report["builtin_ops_only"]]
    lines = [
        f"{report['format']}: {result.artifact} ({report['bytes']:,} bytes{ops})",
        f"parity on {measured['samples']} test samples: {get_task(report['task']).parity_summary(measured)}; "
        f"batch-1 latency {report['latency_ms_batch1']:.3f} ms",
    ]
    if not report["targets"]["met"]:
        lines.append(f"warning: parity targets missed: {'; '.join(report['targets']['failures'])}")
    return [*lines, f"report: {result.report_path}"]
