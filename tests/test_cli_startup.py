"""Start-up of `kerasdl`: user mistakes are reported before TensorFlow loads, and its noise stays off stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from kerasdl.errors import KerasdlError

# Run `kerasdl.cli.main(argv)` where importing TensorFlow or Keras fails, then print what was imported.
PROBE = textwrap.dedent(
    """
    import importlib.abc, json, os, sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if {block} and name.split(".")[0] in ("tensorflow", "keras"):
                raise ImportError(f"{{name}} imported before the command checked its arguments")

    sys.meta_path.insert(0, NoTensorFlow())
    from kerasdl import quiet
    from kerasdl.cli import main

    code = main(sys.argv[1:])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    marker = {{"filtered_imports": quiet.filtered_imports, "tf_log_level": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}}
    print("PROBE " + json.dumps({{"code": code, "heavy": heavy, **marker}}))
    """
)
# Lines TensorFlow prints at start-up on a machine without a GPU (kerasdl.quiet lists them for filtering).
NOISE = re.compile(r"cuInit|oneDNN|absl|All log messages before|cudart_stub|cpu_feature_guard|XNNPACK")


def probe(*argv: str, block: bool = True, timeout: float = 120) -> tuple[dict, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(block=block), *argv], capture_output=True, text=True, env=env,
        timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, f"no result (exit {done.returncode}):\n{done.stderr}"
    return json.loads(lines[-1][len("PROBE "):]), done.stdout, done.stderr


def slow_error(check) -> str:
    """The message of the error that the TensorFlow-importing path raises."""
    with pytest.raises(KerasdlError) as err:
        check()
    return str(err.value)


def unknown_model():
    from kerasdl.registry import model_spec

    model_spec("nope")


def unknown_data():
    from kerasdl.data import load

    load("nope")


def missing_run_dir():
    from kerasdl.training import RunDirectory

    RunDirectory("/no/such/dir").require_model()


@pytest.mark.parametrize(
    "argv, slow_path",
    [
        (("train", "nope"), unknown_model),
        (("train", "mlp", "--data", "nope"), unknown_data),
        (("evaluate", "/no/such/dir"), missing_run_dir),
        (("export", "/no/such/dir", "--format", "tflite"), missing_run_dir),
        (("generate", "/no/such/dir", "--prompt", "x"), missing_run_dir),
        (("neighbours", "/no/such/dir", "king"), missing_run_dir),
        (("tune", "nope", "--tuner", "random"), unknown_model),
    ],
)
def test_mistakes_are_reported_without_importing_tensorflow(argv, slow_path):
    result, _, err = probe(*argv)
    assert result["code"] == 2 and result["heavy"] == []
    assert err.splitlines() == [f"kerasdl {argv[0]}: error: {slow_error(slow_path)}"]


def test_a_run_directory_without_a_model_is_reported_as_before(tmp_path):
    from kerasdl.commands import check_run_dir
    from kerasdl.training import RunDirectory

    assert slow_error(lambda: check_run_dir(str(tmp_path))) == slow_error(RunDirectory(tmp_path).require_model)


def test_names_read_from_source_are_the_registered_names():
    from kerasdl.commands import dataset_names
    from kerasdl.data import dataset_sources
    from kerasdl.registry import model_names, model_specs, source_names

    models = [spec.name for spec in model_specs()]
    datasets = [source.name for source in dataset_sources()]
    assert source_names("kerasdl.models", "register_model") == models and models
    assert source_names("kerasdl.data", "register_dataset") == datasets and datasets
    assert model_names() == models and dataset_names() == datasets


def test_source_names_follow_helpers_and_give_up_on_computed_names(tmp_path, monkeypatch):
    from kerasdl import registry
    from kerasdl.registry import source_names

    package = tmp_path / "fakemodels"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('the scan must not import this')\n")
    (package / "plain.py").write_text('@register_model("b", family="x")\ndef build(): ...\n')
    (package / "helper.py").write_text(
        "def add(family, model_name):\n    register_model(model_name, family=family)(lambda: None)\n"
        'add("x", "c")\nadd("x", model_name="a")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert source_names("fakemodels", "register_model") == ["a", "b", "c"]
    (package / "computed.py").write_text('for n in ("d", "e"):\n    register_model(n, family="x")(print)\n')
    registry._source_names.cache_clear()
    assert source_names("fakemodels", "register_model") is None  # then the registry itself is asked


def test_filtered_stderr_drops_known_noise_and_keeps_the_rest_in_order():
    script = textwrap.dedent(
        """
        import logging, os, subprocess, sys
        from kerasdl.quiet import filtered_stderr, quiet_libraries
        with filtered_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
            os.write(2, b"keep 1\\n")
            print("keep 2", file=sys.stderr)
            xnnpack = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            subprocess.run(["sh", "-c", f"echo '{xnnpack}' >&2; echo keep 3 >&2"])
            print("out", flush=True)
        with quiet_libraries():  # TensorFlow's Python warnings: known noise dropped, the rest kept
            logging.getLogger("tensorflow").warning(
                "5 out of the last 7 calls to <function f> triggered tf.function retracing. Tracing is expensive"
            )
            logging.getLogger("tensorflow").warning("keep 4")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stderr.splitlines() == ["keep 1", "keep 2", "keep 3", "keep 4"] and done.stdout == "out\n"


def test_tensorflow_commands_print_no_start_up_noise_unless_verbose(tmp_path):
    result, out, err = probe("train", "mlp", "--epochs", "1", "--no-jit", "--out", str(tmp_path / "run"), block=False)
    assert result["code"] == 0, err
    assert [line for line in err.splitlines() if NOISE.search(line)] == []
    assert result["filtered_imports"] == ["tensorflow"] and result["tf_log_level"] == "3"
    assert re.search(r"^\d+/\d+ - .*val_accuracy", out, re.M), out  # Keras's epoch line (stdout) is unchanged
    assert "mlp on digits (fit loop, 1 epochs): test accuracy" in out

    result, out, err = probe("--verbose", "list", "--json", block=False)
    assert result["code"] == 0 and json.loads(out[: out.rindex("PROBE ")])["models"]
    # TensorFlow's logging untouched: not our level 3 (JAX, which TensorFlow Lite imports when it is installed, sets
    # its own default of 1 where none is set)
    assert result["filtered_imports"] == [] and result["tf_log_level"] in (None, "1")
    # Without a GPU, TensorFlow 2.21 prints `cudart_stub.cc ... Could not find cuda drivers` here; a machine
    # with one may print nothing, so the lines themselves are not required.
