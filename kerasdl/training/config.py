"""Everything that defines a training run, saved as `config.json` in its run directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kerasdl.errors import KerasdlError

# A run may resume only under the same values of these; epochs or learning rate may change.
RESUME_KEYS = (
    "model", "data", "loop", "batch_size", "seed", "validation_fraction", "image_size", "augment", "model_params",
    "task_params", "precision", "target",
)
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
LR_SCHEDULES = ("constant", "cosine", "exponential")
# tf.distribute strategies (kerasdl.training.distribute): one device, every local device, or a TF_CONFIG cluster.
STRATEGIES = ("default", "mirrored", "multiworker")
# Keras dtype policies: variables stay float32; "mixed_*" computes in 16 bits, with float32 model outputs.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass
class TrainConfig:
    """Hyperparameters of one run. Defaults follow the curriculum (Adam 1e-3, batch 64)."""

    model: str
    data: str | None = None  # None: the model's default data set
    epochs: int = 10
    batch_size: int = 64
    loop: str | None = None  # None: the model's first loop ("fit" for Keras models)
    seed: int = 0
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    clipnorm: float | None = None  # clip each gradient tensor to this L2 norm
    validation_fraction: float = 0.1
    patience: int = 5  # early stopping on val_loss, best weights restored
    image_size: int | None = None  # image data sets: resize to image_size x image_size (None: the set's default)
    augment: bool = True  # the data set's training augmentation (photos: flip, rotation, zoom, jitter), if any
    # Builder keyword arguments: dropout, l1, l2, batch_norm, units... (what the model's builder takes).
    model_params: dict[str, Any] = field(default_factory=dict)
    # Options of the model's task (kerasdl.tasks): a denoising autoencoder's input noise, a held-out class...
    task_params: dict[str, Any] = field(default_factory=dict)
    # Speed knobs that do not change what is computed: steps per tf.function call and XLA compilation.
    steps_per_execution: int = 32
    jit_compile: bool | None = None  # None: the model's default (registry), XLA where it measured faster
    # Scale: where the steps run (batch_size stays the global batch, split among the replicas) and in what dtype.
    strategy: str = "default"
    precision: str = "float32"
    # A CSV/TSV table's column to predict: --data is then a table of features (kerasdl.data.tabular).
    target: str | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise KerasdlError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.image_size is not None and self.image_size < 8:
            raise KerasdlError(f"image-size must be >= 8, got {self.image_size}")
        if not self.learning_rate > 0:
            raise KerasdlError(f"learning-rate must be > 0, got {self.learning_rate}")
        if self.optimizer not in OPTIMIZERS:
            raise KerasdlError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise KerasdlError(f"unknown lr-schedule {self.lr_schedule!r}; known: {', '.join(LR_SCHEDULES)}")
        if self.strategy not in STRATEGIES:
            raise KerasdlError(f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        if self.precision not in PRECISIONS:
            raise KerasdlError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
