"""Clean command output: TensorFlow's start-up noise stays off stderr unless `kerasdl --verbose`.

What prints what (measured on TF 2.21, a CPU-only Linux machine) and how each is silenced:

* `E... cuda_platform.cc] failed call to cuInit ...`, `I... cpu_feature_guard.cc] This TensorFlow binary
  is optimized ...`, `I... port.cc] oneDNN custom operations are on ...`: TensorFlow's C++ logging, which
  honours TF_CPP_MIN_LOG_LEVEL (cuInit runs at the first device query, after the import). Set to 3 unless
  the user set it. oneDNN itself stays as TensorFlow chose (TF_ENABLE_ONEDNN_OPTS is not touched).
* `WARNING: All log messages before absl::InitializeLog() is called are written to STDERR` followed by
  `I... cudart_stub.cc] Could not find cuda drivers on your machine, GPU will not be used.`: absl's C++
  logging, from static initializers of libtensorflow_framework.so and _pywrap_profiler_plugin.so (each
  links its own absl) while `import tensorflow` loads them; nothing has configured absl yet, so no setting
  reaches them. The first `import tensorflow` therefore runs with file descriptor 2 sent to a temporary
  file; afterwards every line that is not known noise (NOISE, below) is written to stderr. This costs no
  device visibility: CUDA_VISIBLE_DEVICES is not touched, and a GPU machine prints none of these lines.
* `WARNING:tensorflow:5 out of the last 7 calls to <function ...> triggered tf.function retracing`:
  Python logging (logger "tensorflow"), expected when `kerasdl tune` builds one model per trial; a filter
  on that logger drops it, and every other TensorFlow warning still shows. The same filter drops the
  TensorFlow 1 deprecation notices tf2onnx's graph freezing triggers on every `kerasdl export --format onnx`.
* `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` and `fully_quantize: 0, inference_type: ...`:
  LiteRT / the TFLite converter, printed directly to stderr while `kerasdl export` and `kerasdl infer`
  run a model; those commands run that step inside `filtered_stderr()`.

Progress bars and results go to stdout, which none of this touches. `kerasdl --verbose` does none of it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
from typing import Iterator

# Every line of known noise, in one place: a stderr line that matches any of these is dropped.
NOISE = tuple(
    re.compile(pattern)
    for pattern in (
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
        r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.$",
        r"failed call to cuInit",
        r"oneDNN custom operations are on\.",
        r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU instructions",
        r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$",
        r"Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin",
        r"TF-TRT Warning: Could not find TensorRT$",
        r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",
        r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$",
        r"triggered tf\.function retracing\. Tracing is expensive",
        r"^From .*/tf2onnx/.*: .* is deprecated and will be removed in a future version\.",
        r"^From .*/convert_to_constants\.py:\d+: extract_sub_graph .* is deprecated and will be removed",
    )
)

QUIET_IMPORTS = ("tensorflow",)  # modules whose first import runs inside filtered_stderr()
filtered_imports: list[str] = []  # what ran filtered in this process (tests read it)


def is_noise(line: str) -> bool:
    return any(pattern.search(line.rstrip("\r\n")) for pattern in NOISE)


@contextlib.contextmanager
def filtered_stderr(enabled: bool = True) -> Iterator[None]:
    """Send file descriptor 2 (C/C++ and Python alike) to a temporary file; then write what is not noise.

    A file rather than a pipe: writers never block, however much they write, and no thread is needed. The
    lines come out in their order once the block ends (or raises). If stderr cannot be redirected (no fd 2,
    no temporary folder), or `enabled` is False, the block runs unfiltered.
    """
    if not enabled:
        yield
        return
    try:
        capture = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    with capture:
        _flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                _flush()
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        capture.seek(0)
        lines = capture.read().splitlines(keepends=True)
        kept = [line for line in lines if not is_noise(line.decode(errors="replace"))]
        if kept:
            _flush()
            os.write(2, b"".join(kept))


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not is_noise(record.getMessage())
        except Exception:  # a record that cannot format itself is not ours to judge
            return True


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of a QUIET_IMPORTS module inside filtered_stderr(), then steps aside."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # later readers see the real loader
        filtered_imports.append(module.__name__)
        with filtered_stderr():
            self.loader.exec_module(module)

    def __getattr__(self, name: str):  # get_code, get_resource_reader, is_package, ...
        return getattr(self.loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds QUIET_IMPORTS modules with the other finders and wraps their loader."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in QUIET_IMPORTS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


_noise_filter = _NoiseFilter()


@contextlib.contextmanager
def quiet_libraries(enabled: bool = True) -> Iterator[None]:
    """While the block runs, TensorFlow starts without noise (see the module docstring); `enabled=False`
    (`kerasdl --verbose`) leaves TensorFlow's logging alone. Must be entered before TensorFlow is imported
    for the import-time lines; TF_CPP_MIN_LOG_LEVEL and the logger filter stay set afterwards."""
    if not enabled:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").addFilter(_noise_filter)  # the same filter object is added once only
    finder = None
    if not any(name in sys.modules for name in QUIET_IMPORTS):
        finder = _QuietFinder()
        sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder is not None and finder in sys.meta_path:
            sys.meta_path.remove(finder)
