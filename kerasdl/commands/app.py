"""`kerasdl app MODEL_DIR`: the Streamlit app over the models `kerasdl serve` would serve, on 127.0.0.1."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from kerasdl.commands import port_number
from kerasdl.errors import KerasdlError

APP_SCRIPT = Path(__file__).resolve().parent.parent / "serve" / "streamlit_app.py"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app", help="the Streamlit app over exported models (the models and inputs of kerasdl serve, with charts)"
    )
    parser.add_argument("model_dir", help="a model repository (NAME/VERSION/ export folders; kerasdl export "
                        "--to-repo writes one), an export folder, an artifact or a run directory")
    parser.add_argument("--port", type=port_number, default=8501, help="port on 127.0.0.1 (default 8501)")
    parser.set_defaults(run=run)


def streamlit_argv(model_dir: Path, port: int) -> list[str]:
    """`python -m streamlit run` on the app script, bound to loopback, headless, no usage statistics, uploads
    capped at the server's body limit; the model folder follows `--`, where the script reads it (sys.argv[1])."""
    from kerasdl.serve.inputs import Limits

    upload_mib = max(1, Limits().max_body_bytes // 2**20)
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT), "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.maxUploadSize", str(upload_mib), "--", str(model_dir)]


def run(args: argparse.Namespace) -> int:
    model_dir = Path(args.model_dir).expanduser()
    if not model_dir.exists():
        raise KerasdlError(f"model path {model_dir} does not exist")
    print(f"the app: http://127.0.0.1:{args.port}/ (Ctrl-C stops)", flush=True)
    process = subprocess.Popen(streamlit_argv(model_dir.resolve(), args.port))
    try:
        return process.wait()
    except KeyboardInterrupt:  # the terminal sent Ctrl-C to streamlit as well: let it shut down cleanly
        return process.wait()
