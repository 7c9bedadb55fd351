"""`kerasdl infer ARTIFACT --input FILE`: run a .tflite/.onnx export with the edge runner, no TensorFlow."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from kerasdl.edge.runner import add_arguments  # numpy and the standard library only

    parser = subparsers.add_parser(
        "infer", help="classify an image or .npy file with a .tflite/.onnx export (LiteRT/onnxruntime, no TensorFlow)"
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kerasdl.edge.runner import RunnerError, infer
    from kerasdl.errors import KerasdlError

    try:
        print(infer(args))
    except RunnerError as err:
        raise KerasdlError(str(err)) from err
    return 0
