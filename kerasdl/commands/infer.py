"""`kerasdl infer ARTIFACT --input FILE | --text TEXT | --prompt TEXT`: run a .tflite/.onnx export with the edge
runner, no TensorFlow."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from kerasdl.edge.runner import add_arguments  # numpy and the standard library only

    parser = subparsers.add_parser(
        "infer", help="run a .tflite/.onnx export on an image, array, text or series (LiteRT/onnxruntime, no TensorFlow)"
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kerasdl.edge.runner import RunnerError, infer
    from kerasdl.errors import KerasdlError
    from kerasdl.quiet import filtered_stderr

    try:
        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" (kerasdl.quiet.NOISE); --verbose keeps it.
        with filtered_stderr(enabled=not getattr(args, "verbose", False)):
            result = infer(args)
        print(result)
    except RunnerError as err:
        raise KerasdlError(str(err)) from err
    return 0
