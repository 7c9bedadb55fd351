"""Models by name: builder, family, task, default data set, training loops and curriculum lesson."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from kerasdl.errors import UnknownNameError

Builder = Callable[..., Any]  # (info: DatasetInfo, **hyperparameters) -> keras.Model
# (hp: keras_tuner.HyperParameters) -> {"model_params": {...builder kwargs}, **TrainConfig overrides}
SearchSpace = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: what it is, what it trains on by default, and how to build it."""

    name: str
    build: Builder
    family: str
    task: str
    default_data: str
    lesson: str
    loops: tuple[str, ...] = ("fit", "tape")
    search_space: SearchSpace | None = None
    # Builder arguments that avoid any download (e.g. {"weights": "none"}): what tests and offline runs pass.
    offline_params: dict[str, Any] = field(default_factory=dict)
    # Whether XLA compiles this model's training step by default. Measured per model on CPU: it speeds up
    # dense models and slows convolutions down several-fold (benchmarks/train_throughput.py).
    jit_compile: bool = True
    # TrainConfig values this model trains best with (word2vec: SGD at a large rate, big batches), used by
    # `kerasdl train` and `kerasdl tune` where the command line does not set them.
    train_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The builder's one-line docstring."""
        doc = (self.build.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "default_data": self.default_data,
            "lesson": self.lesson,
            "loops": list(self.loops),
            "summary": self.summary,
        }


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    family: str,
    task: str,
    default_data: str,
    lesson: str,
    loops: tuple[str, ...] = ("fit", "tape"),
    search_space: SearchSpace | None = None,
    offline_params: dict[str, Any] | None = None,
    jit_compile: bool = True,
    train_defaults: dict[str, Any] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator: register a builder `(info, **hyperparameters) -> keras.Model` under `name`."""

    def decorate(build: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelSpec(
            name, build, family, task, default_data, lesson, loops, search_space, dict(offline_params or {}),
            jit_compile, dict(train_defaults or {}),
        )
        return build

    return decorate


def _ensure_loaded() -> None:
    import kerasdl.models  # noqa: F401  (each family module registers its models on import)


def model_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    if name not in _MODELS:
        raise UnknownNameError("model", name, list(_MODELS))
    return _MODELS[name]


def model_specs() -> list[ModelSpec]:
    _ensure_loaded()
    return [_MODELS[name] for name in sorted(_MODELS)]


# --- Registered names without importing the registering modules -------------------------------------------
#
# `kerasdl train nope` should say "unknown model" at once, but the registry learns names by importing
# `kerasdl.models` (Keras, TensorFlow: seconds), and the data set registry by importing `kerasdl.data`
# (scikit-learn). The decorators stay the one source of truth: `source_names` reads them from the modules'
# source with `ast` instead of running it. What cannot be read statically makes it answer None, and
# `model_names` then asks the registry itself; tests/test_cli_startup.py checks that both ways agree.

import functools  # noqa: E402  (kept with the code that uses it)


def _called_name(call: Any) -> str | None:
    """`f` for a call `f(...)` or `module.f(...)`."""
    import ast

    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _name_argument(call: Any, position: int, keyword: str) -> Any:
    """The expression a call passes for the registrar's name parameter, or None when it is not plain."""
    import ast

    if any(isinstance(arg, ast.Starred) for arg in call.args[: position + 1]):
        return None
    if len(call.args) > position:
        return call.args[position]
    return next((kw.value for kw in call.keywords if kw.arg == keyword), None)


def _package_sources(package: str) -> list[Any]:
    """The parsed modules of `package`, sub-packages included, found without importing the package."""
    import ast
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec(package)  # imports the parent package (kerasdl: cheap), not `package`
    trees, folders = [], list(spec.submodule_search_locations or []) if spec else []
    while folders:
        folder = folders.pop()
        trees.append(ast.parse(_read(f"{folder}/__init__.py")))
        for module in pkgutil.iter_modules([folder]):
            if module.ispkg:
                folders.append(f"{folder}/{module.name}")
            else:
                trees.append(ast.parse(_read(f"{folder}/{module.name}.py")))
    return trees


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as source:
            return source.read()
    except FileNotFoundError:  # a namespace package has no __init__.py; an extension module has no .py
        return ""


def source_names(package: str, registrar: str) -> list[str] | None:
    """Names that the modules of `package` register with `registrar(name, ...)`, read from their source.

    Finds decorators (`@register_model("mlp", ...)`) and plain calls, and follows helpers that pass one of
    their parameters on as the name (`def register_transfer(model_name, ...): register_model(model_name,
    ...)` then `register_transfer("resnet50", ...)`). Returns the sorted names, or None when some name is
    not a string literal (computed, or a variable): then only importing the package can tell.
    """
    return _source_names(package, registrar)


@functools.lru_cache(maxsize=None)
def _source_names(package: str, registrar: str) -> list[str] | None:
    import ast

    calls: list[tuple[ast.Call, ast.FunctionDef | ast.AsyncFunctionDef | None]] = []  # (call, enclosing def)

    class Calls(ast.NodeVisitor):
        def __init__(self) -> None:
            self.scope: list[ast.FunctionDef | ast.AsyncFunctionDef] = []

        def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
            for outer in (*node.decorator_list, node.args, *([node.returns] if node.returns else [])):
                self.visit(outer)  # evaluated where the function is defined, not inside it
            self.scope.append(node)
            for statement in node.body:
                self.visit(statement)
            self.scope.pop()

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Call(self, node: ast.Call) -> None:
            calls.append((node, self.scope[-1] if self.scope else None))
            self.generic_visit(node)

    for tree in _package_sources(package):
        Calls().visit(tree)

    def parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
        return [arg.arg for arg in (*function.args.posonlyargs, *function.args.args)]

    # Registrars: the decorator itself, and every function that passes one of its parameters on as the name.
    registrars: dict[str, tuple[int, str]] = {registrar: (0, "name")}  # function -> name's position, keyword
    forwarded: set[int] = set()  # calls inside such helpers: their callers give the names
    changed = True
    while changed:
        changed = False
        for call, function in calls:
            called = _called_name(call)
            if called not in registrars or function is None or id(call) in forwarded:
                continue
            argument = _name_argument(call, *registrars[called])
            if isinstance(argument, ast.Name) and argument.id in parameters(function):
                forwarded.add(id(call))
                if function.name not in registrars:
                    registrars[function.name] = (parameters(function).index(argument.id), argument.id)
                    changed = True

    names: set[str] = set()
    for call, _ in calls:
        if _called_name(call) not in registrars or id(call) in forwarded:
            continue
        argument = _name_argument(call, *registrars[_called_name(call)])
        if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
            return None
        names.add(argument.value)
    return sorted(names)


def model_names() -> list[str]:
    """Registered model names, without importing Keras unless the registry is loaded or the source is unclear."""
    import sys

    if "kerasdl.models" not in sys.modules:
        names = source_names("kerasdl.models", "register_model")
        if names is not None:
            return names
    return [spec.name for spec in model_specs()]
