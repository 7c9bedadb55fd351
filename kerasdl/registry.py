"""Models by name: builder, family, task, default data set, training loops and curriculum lesson."""

from __future__ import annotations

from dataclasses import dataclass
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
) -> Callable[[Builder], Builder]:
    """Decorator: register a builder `(info, **hyperparameters) -> keras.Model` under `name`."""

    def decorate(build: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelSpec(name, build, family, task, default_data, lesson, loops, search_space)
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
