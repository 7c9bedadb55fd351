"""Tasks: what a model's job means for training, evaluation, tuning, export and the edge runner."""

# Each module registers its task on import.
from kerasdl.tasks import (  # noqa: F401
    classification,
    detection,
    forecasting,
    generation,
    language_modelling,
    masked_language_modelling,
    reconstruction,
    regression,
    segmentation,
    translation,
    word_embedding,
)
from kerasdl.tasks.base import Bound, ParityTargets, Task, get_task, predict, register_task

__all__ = ["Bound", "ParityTargets", "Task", "get_task", "predict", "register_task"]
