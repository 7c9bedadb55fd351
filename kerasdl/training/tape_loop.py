"""`--loop tape`: the training loop written out with `tf.GradientTape`, resumable with `tf.train.Checkpoint`.

The task writes the step (`Task.train_step`: forward, loss, gradients, `optimizer.apply_gradients`; a GAN's
two-player update with two tapes) and returns the batch's logs; this loop runs it in one XLA-compiled
`tf.function`, averages the logs over the epoch, and runs `steps_per_execution` steps per Python call in an
outer `tf.function`, which is where the per-step overhead goes. It uses the same callbacks as `fit`, so both
loops write the same history, checkpoints and logs. Under a tf.distribute strategy each replica runs the step
on its slice of every global batch (`strategy.run`), and the epoch means sum their variables over replicas.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import tensorflow as tf

from kerasdl.errors import RunDirError
from kerasdl.training.loops import LoopContext, LoopResult, callback_list, register_loop


@register_loop("tape")
def tape_loop(ctx: LoopContext) -> LoopResult:
    config = ctx.config
    task = ctx.task
    strategy = ctx.distribution.strategy
    model = ctx.build_model()
    ctx.compile(model)  # only to attach the optimizer(s); the loop below does the training
    optimizer = model.optimizer
    with strategy.scope():
        optimizer.build(model.trainable_variables)

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    state = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    resume_dir = ctx.run.checkpoints_dir / "tape"
    # Two kept, numbered by epoch: a cluster's worker that died first may be one epoch behind the others.
    manager = tf.train.CheckpointManager(state, str(resume_dir), max_to_keep=2)
    saved = {int(path.rpartition("-")[2]): path for path in manager.checkpoints} if ctx.resuming else {}
    resumed = ctx.distribution.agreed_epoch(max(saved, default=0))
    if resumed:
        resumed = _restore(state, saved, resumed)
    if ctx.resuming:  # also with no checkpoint yet: a row logged before the first save is trained again
        ctx.run.truncate_history(resumed)

    names = ("loss", *task.log_names)
    with strategy.scope():  # each replica adds its batches; a result sums them over all replicas
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
            strategy.run(train_step, args=next(iterator))

    @tf.function(jit_compile=config.jit_compile)
    def eval_step(x, y):
        record(val_logs, task_test_step(x, y), x)

    callbacks = callback_list(ctx, model)
    # Each global batch split among the replicas (the default strategy passes it through whole).
    train = strategy.experimental_distribute_dataset(ctx.train_dataset(epochs_done=resumed))
    validation = strategy.experimental_distribute_dataset(ctx.validation_dataset())

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
            strategy.run(eval_step, args=(x, y))
        logs = {name: float(mean.result()) for name, mean in train_logs.items()}
        logs |= {f"val_{name}": float(mean.result()) for name, mean in val_logs.items()}
        callbacks.on_epoch_end(current, logs)
        epoch.assign(current + 1)
        manager.save(checkpoint_number=current + 1)  # last, as WholeBackup in the fit loop
        if model.stop_training:
            break
    callbacks.on_train_end()
    return LoopResult(model, epochs_run=int(epoch) - first_epoch, resume_state=resume_dir)


def _restore(state: tf.train.Checkpoint, saved: dict[int, str], newest: int) -> int:
    """Restore the newest readable checkpoint up to epoch `newest`; its epoch. TensorFlow writes each one whole
    (temporary files, then a rename), so only damage from outside makes one unreadable: the older one is used."""
    for number in sorted((n for n in saved if n <= newest), reverse=True):
        try:
            state.restore(saved[number]).assert_existing_objects_matched()
            return number
        except Exception as err:  # TensorFlow's reader raises OpError, IndexError... for a damaged file
            print(f"kerasdl: checkpoint {saved[number]} is unreadable ({type(err).__name__}); trying an older one",
                  file=sys.stderr)
    raise RunDirError(f"no readable checkpoint in {Path(saved[newest]).parent}; pass --overwrite to start again")
