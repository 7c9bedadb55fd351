"""`--loop fit`: Keras `model.fit` on tf.data, resumable with `BackupAndRestore`."""

from __future__ import annotations

import json

import keras

from kerasdl.training.loops import LoopContext, LoopResult, register_loop, standard_callbacks


@register_loop("fit")
def fit_loop(ctx: LoopContext) -> LoopResult:
    model = ctx.build_model()
    ctx.compile(model)
    backup_dir = ctx.run.checkpoints_dir / "backup"
    if ctx.resuming:
        ctx.run.truncate_history(_backed_up_epochs(backup_dir))
    train = ctx.train_dataset()
    validation = ctx.validation_dataset()
    history = model.fit(
        train,
        validation_data=validation,
        epochs=ctx.config.epochs,
        shuffle=False,  # the tf.data pipeline already reshuffles each epoch
        # Backup last: an epoch is only "done" once everything else has recorded it.
        callbacks=[*standard_callbacks(ctx), keras.callbacks.BackupAndRestore(str(backup_dir))],
        verbose=ctx.verbose,
    )
    return LoopResult(model, epochs_run=len(history.epoch))


def _backed_up_epochs(backup_dir) -> int:
    metadata = backup_dir / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0
