"""`--loop tape`: the training loop written out with `tf.GradientTape`, resumable with `tf.train.Checkpoint`.

The task writes the step (`Task.train_step`: forward, loss, gradients, `optimizer.apply_gradients`; a GAN's
two-player update with two tapes) and returns the batch's logs; this loop runs it in one XLA-compiled
`tf.function`, averages the logs over the epoch, and runs `steps_per_execution` steps per Python call in an
outer `tf.function`, which is where the per-step overhead goes. It uses the same callbacks as `fit`, so both
loops write the same history, checkpoints and logs.
"""

from __future__ import annotations

import shutil

import keras
import tensorflow as tf

from kerasdl.training.loops import LoopContext, LoopResult, callback_list, register_loop


@register_loop("tape")
def tape_loop(ctx: LoopContext) -> LoopResult:
    config = ctx.config
    task = ctx.task
    model = ctx.build_model()
    ctx.compile(model)  # only to attach the optimizer(s); the loop below does the training
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    state = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    resume_dir = ctx.run.checkpoints_dir / "tape"
    manager = tf.train.CheckpointManager(state, str(resume_dir), max_to_keep=1)
    if ctx.resuming and manager.latest_checkpoint:
        state.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        ctx.run.truncate_history(int(epoch))

    names = ("loss", *task.log_names)
    train_logs = {name: keras.metrics.Mean(name=name) for name in names}
    val_logs = {name: keras.metrics.Mean(name=f"val_{name}") for name in names}
    task_train_step, task_test_step = task.train_step(model, optimizer), task.test_step(model)

    def record(means, logs, x):
        size = tf.shape(tf.nest.flatten(x)[0])[0]
        for name, mean in means.items():
            mean.update_state(logs[name], sample_weight=size)

    @tf.function(jit_compile=config.jit_compile)
    def train_step(x, y):
        record(train_logs, task_train_step(x, y), x)

    @tf.function
    def train_steps(iterator, steps):
        for _ in tf.range(steps):
            train_step(*next(iterator))

    @tf.function(jit_compile=config.jit_compile)
    def eval_step(x, y):
        record(val_logs, task_test_step(x, y), x)

    callbacks = callback_list(ctx, model)
    train = ctx.train_dataset()
    validation = ctx.validation_dataset()

    model.stop_training = False
    first_epoch = int(epoch)
    callbacks.on_train_begin()
    for current in range(first_epoch, config.epochs):
        callbacks.on_epoch_begin(current)
        for mean in (*train_logs.values(), *val_logs.values()):
            mean.reset_state()
        iterator = iter(train)
        for first in range(0, ctx.steps_per_epoch, config.steps_per_execution):
            steps = min(config.steps_per_execution, ctx.steps_per_epoch - first)
            train_steps(iterator, tf.constant(steps))
            callbacks.on_train_batch_end(first + steps - 1, {name: mean.result() for name, mean in train_logs.items()})
        for x, y in validation:
            eval_step(x, y)
        logs = {name: float(mean.result()) for name, mean in train_logs.items()}
        logs |= {f"val_{name}": float(mean.result()) for name, mean in val_logs.items()}
        callbacks.on_epoch_end(current, logs)
        epoch.assign(current + 1)
        manager.save()  # last, as BackupAndRestore in the fit loop
        if model.stop_training:
            break
    callbacks.on_train_end()
    shutil.rmtree(resume_dir, ignore_errors=True)
    return LoopResult(model, epochs_run=int(epoch) - first_epoch)
