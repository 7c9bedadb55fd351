"""The `kerasdl` command. Each subcommand lives in `kerasdl.commands.<name>` and registers itself.

Nothing here imports TensorFlow: `kerasdl --help` is instant and `kerasdl infer` runs on a device
that has only numpy and a runtime. A user mistake prints one line and exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from kerasdl import __version__, commands
from kerasdl.errors import KerasdlError
from kerasdl.quiet import quiet_libraries

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints the whole usage; one line says more
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kerasdl", description="Deep learning end to end in TensorFlow 2 / Keras 3.")
    parser.add_argument("--version", action="version", version=f"kerasdl {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="leave TensorFlow's logging alone (start-up lines about CUDA, oneDNN, absl; put before COMMAND)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Commands check names and paths before they import TensorFlow; its start-up chatter would hide our output.
    with quiet_libraries(enabled=not args.verbose):
        try:
            return args.run(args) or 0
        except KerasdlError as err:
            print(f"kerasdl {args.command}: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print(f"kerasdl {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
            return 130


if __name__ == "__main__":
    raise SystemExit(main())
