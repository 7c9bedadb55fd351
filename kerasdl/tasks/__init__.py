"""Tasks: what a model's job means for training, evaluation, tuning, export and the edge runner."""

from kerasdl.tasks import classification, detection, generation, reconstruction, segmentation  # noqa: F401  (each module registers its task on import)
from kerasdl.tasks.base import Bound, ParityTargets, Task, get_task, predict, register_task

__all__ = ["Bound", "ParityTargets", "Task", "get_task", "predict", "register_task"]
