"""`--loop fit`: Keras `model.fit` on tf.data, resumable with a crash-safe `BackupAndRestore`."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from kerasdl import files
from kerasdl.errors import RunDirError
from kerasdl.training.loops import LoopContext, LoopResult, register_loop, standard_callbacks

METADATA = "training_metadata.json"


@register_loop("fit")
def fit_loop(ctx: LoopContext) -> LoopResult:
    model = ctx.build_model()
    ctx.compile(model)
    backup_dir = ctx.run.checkpoints_dir / "backup"
    done = backed_up_epochs(backup_dir) if ctx.resuming else 0
    if ctx.resuming:
        ctx.run.truncate_history(done)
    train = ctx.train_dataset(epochs_done=done)
    validation = ctx.validation_dataset()
    history = model.fit(
        train,
        validation_data=validation,
        epochs=ctx.config.epochs,
        steps_per_epoch=_known_batches(train),
        shuffle=False,  # the tf.data pipeline already reshuffles each epoch
        # Backup last: an epoch is only "done" once everything else has recorded it.
        callbacks=[*standard_callbacks(ctx), WholeBackup(backup_dir)],
        verbose=ctx.verbose,
    )
    return LoopResult(model, epochs_run=len(history.epoch), resume_state=backup_dir)


def _known_batches(dataset) -> int | None:
    """The dataset's batches when known. Given to `fit`, Keras makes one iterator an epoch (without it, two: one
    is dropped at each epoch's end), so epoch k draws the k-th shuffle seed, as `train_dataset` assumes."""
    batches = int(dataset.cardinality())
    return batches if batches > 0 else None


def backed_up_epochs(backup_dir: Path) -> int:
    """Epochs the backup holds (0 without one)."""
    metadata = backup_dir / METADATA
    return _read_metadata(metadata)["epoch"] if metadata.exists() else 0


def _read_metadata(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError as err:  # only damage from outside: WholeBackup replaces the file whole
        raise RunDirError(f"{path} is corrupt ({err}); pass --overwrite to start the run again") from err


class WholeBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose backup is always a whole, matching pair, whenever the process is killed.

    Keras writes `latest.weights.h5` and then `training_metadata.json` in place: a kill during the first write
    leaves truncated weights that the resume cannot load, and one between the two leaves epoch k+1's weights
    labelled epoch k, which trains an epoch twice. Here each epoch's weights go to a new file (through a
    temporary one), then the metadata is replaced in one rename to name them, then the older weights go.
    The backup is kept when training ends: `train` removes it once metrics.json is written.
    """

    def __init__(self, backup_dir: str | Path):
        super().__init__(str(backup_dir), delete_checkpoint=False)
        self.folder = Path(backup_dir)

    def _load_model(self) -> None:
        metadata = self.folder / METADATA
        name = _read_metadata(metadata).get("weights") if metadata.exists() else None
        if name:  # None: a backup Keras itself wrote (latest.weights.h5), from before this class
            self._weights_path = str(self.folder / name)
        super()._load_model()

    def _save_model(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch}.weights.h5"
        with files.replacing(self.folder / name) as temporary:
            self.model.save_weights(temporary)
        files.write_json(
            self.folder / METADATA, {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        )
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink()
