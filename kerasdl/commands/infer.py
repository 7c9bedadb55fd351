"""`kerasdl infer ARTIFACT --input FILE | --text TEXT | --prompt TEXT`: run a .tflite/.onnx export with the edge
runner, no TensorFlow. `kerasdl infer RUN_DIR ...` runs a run directory's Keras model through the same runner
code, its inputs prepared as in training (a table's rows imputed and standardized from data_state.json)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from kerasdl.edge.runner import add_arguments  # numpy and the standard library only

    parser = subparsers.add_parser(
        "infer", help="run a .tflite/.onnx export (LiteRT/onnxruntime, no TensorFlow), or a run directory's Keras "
        "model, on an image, array, text, series or table rows"
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kerasdl.edge.runner import RunnerError, infer
    from kerasdl.errors import KerasdlError
    from kerasdl.quiet import filtered_stderr

    model = _run_model(args.artifact) if (Path(args.artifact) / "config.json").is_file() else None  # a run directory
    try:
        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" (kerasdl.quiet.NOISE); --verbose keeps it.
        with filtered_stderr(enabled=not getattr(args, "verbose", False)):
            result = infer(args, model)
        print(result)
    except RunnerError as err:
        raise KerasdlError(str(err)) from err
    return 0


def _run_model(run_dir: str):
    """A run directory's Keras model (safe mode) with the preprocessing an export of it would write."""
    from kerasdl.commands import check_run_dir

    check_run_dir(run_dir)  # before TensorFlow is imported
    from kerasdl.serve.backends import load_run

    return load_run(Path(run_dir)).edge
