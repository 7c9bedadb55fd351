"""Training: the fit and GradientTape loops, run directories, and `train()` that ties them together."""

from kerasdl.training.config import TrainConfig
from kerasdl.training.run_dir import RunDirectory
from kerasdl.training.train import RunResult, train

__all__ = ["RunDirectory", "RunResult", "TrainConfig", "train"]
