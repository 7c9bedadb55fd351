"""`--loop tape`: the training loop written out with `tf.GradientTape`, resumable with `tf.train.Checkpoint`.

Forward, loss, gradients, `optimizer.apply_gradients` and the metric updates run in one XLA-compiled
`tf.function`; an outer `tf.function` runs `steps_per_execution` of them per Python call, which is
where the per-step overhead goes. It uses the same callbacks as `fit`, so both loops write the same
history, checkpoints and logs.
"""

from __future__ import annotations

import shutil

import keras
import tensorflow as tf

from kerasdl.training.loops import LoopContext, LoopResult, callback_list, compile_model, make_loss, register_loop


@register_loop("tape")
def tape_loop(ctx: LoopContext) -> LoopResult:
    config = ctx.config
    model = ctx.build_model()
    compile_model(model, config, ctx.steps_per_epoch)  # only to attach the optimizer; the loop below does the training
    optimizer, loss_fn = model.optimizer, make_loss()
    optimizer.build(model.trainable_variables)

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    state = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    resume_dir = ctx.run.checkpoints_dir / "tape"
    manager = tf.train.CheckpointManager(state, str(resume_dir), max_to_keep=1)
    if ctx.resuming and manager.latest_checkpoint:
        state.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        ctx.run.truncate_history(int(epoch))

    train_loss, train_accuracy = keras.metrics.Mean(), keras.metrics.SparseCategoricalAccuracy()
    val_loss, val_accuracy = keras.metrics.Mean(), keras.metrics.SparseCategoricalAccuracy()

    @tf.function(jit_compile=config.jit_compile)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits) + tf.add_n([0.0, *model.losses])
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        train_loss.update_state(loss, sample_weight=tf.shape(y)[0])
        train_accuracy.update_state(y, logits)

    @tf.function
    def train_steps(iterator, steps):
        for _ in tf.range(steps):
            train_step(*next(iterator))

    @tf.function(jit_compile=config.jit_compile)
    def eval_step(x, y):
        logits = model(x, training=False)
        val_loss.update_state(loss_fn(y, logits), sample_weight=tf.shape(y)[0])
        val_accuracy.update_state(y, logits)

    callbacks = callback_list(ctx, model)
    train = ctx.train_dataset()
    validation = ctx.validation_dataset()

    model.stop_training = False
    first_epoch = int(epoch)
    callbacks.on_train_begin()
    for current in range(first_epoch, config.epochs):
        callbacks.on_epoch_begin(current)
        for metric in (train_loss, train_accuracy, val_loss, val_accuracy):
            metric.reset_state()
        iterator = iter(train)
        for first in range(0, ctx.steps_per_epoch, config.steps_per_execution):
            steps = min(config.steps_per_execution, ctx.steps_per_epoch - first)
            train_steps(iterator, tf.constant(steps))
            callbacks.on_train_batch_end(
                first + steps - 1, {"loss": train_loss.result(), "accuracy": train_accuracy.result()}
            )
        for x, y in validation:
            eval_step(x, y)
        logs = {
            "accuracy": float(train_accuracy.result()),
            "loss": float(train_loss.result()),
            "val_accuracy": float(val_accuracy.result()),
            "val_loss": float(val_loss.result()),
        }
        callbacks.on_epoch_end(current, logs)
        epoch.assign(current + 1)
        manager.save()  # last, as BackupAndRestore in the fit loop
        if model.stop_training:
            break
    callbacks.on_train_end()
    shutil.rmtree(resume_dir, ignore_errors=True)
    return LoopResult(model, epochs_run=int(epoch) - first_epoch)
