"""`--loop tape`: the training loop written out with `tf.GradientTape`, resumable with `tf.train.Checkpoint`.

One training step is forward, loss, gradients, `optimizer.apply_gradients` and the metric updates. Steps
run `steps_per_execution` at a time per Python call, which is where the per-step overhead goes:

* with XLA (the model's default or `jit_compile`), the call takes that many batches from the input
  pipeline, stacks them, and runs all the steps in ONE XLA computation (a loop over the stack), so the
  XLA launch, variable hand-over and graph-loop overhead are paid once per call, not once per step; for
  a small model (the MLP) that overhead is as large as the step itself. A stack always holds the same
  number of batches (padded, the padding skipped), so XLA compiles it once; a batch of another size (the
  epoch's last, partial one) runs on its own. Stacks are capped at STACK_BYTES, so large inputs (photos)
  fall back to one launch per step;
* without XLA, a `tf.function` loops over the iterator, one step per batch.

Either way the steps, and the order of the batches, are those of one step per batch. It uses the same
callbacks as `fit`, so both loops write the same history, checkpoints and logs.
"""

from __future__ import annotations

import math
import shutil

import keras
import tensorflow as tf

from kerasdl.training.loops import LoopContext, LoopResult, callback_list, compile_model, make_loss, register_loop

STACK_BYTES = 64 * 2**20  # most input bytes stacked for one XLA call


@register_loop("tape")
def tape_loop(ctx: LoopContext) -> LoopResult:
    config = ctx.config
    model = ctx.build_model()
    compile_model(model, config, ctx.steps_per_epoch)  # attaches the optimizer and settles XLA on or off
    jit_compile = bool(model.jit_compile)  # as `fit` runs it: the config's choice, or Keras's when None
    optimizer, loss_fn = model.optimizer, make_loss()
    optimizer.build(model.trainable_variables)

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    state = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    resume_dir = ctx.run.checkpoints_dir / "tape"
    manager = tf.train.CheckpointManager(state, str(resume_dir), max_to_keep=1)
    if ctx.resuming and manager.latest_checkpoint:
        state.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        ctx.run.truncate_history(int(epoch))

    # Batches per XLA computation (0: one step per computation, or no XLA).
    full_steps = ctx.data.info.split_sizes["train"] // config.batch_size
    batch_bytes = math.prod((config.batch_size, *ctx.data.info.input_shape)) * 4  # float32 inputs
    stack = min(config.steps_per_execution, full_steps, STACK_BYTES // batch_bytes) if jit_compile else 0

    train_loss, train_accuracy = keras.metrics.Mean(), keras.metrics.SparseCategoricalAccuracy()
    val_loss, val_accuracy = keras.metrics.Mean(), keras.metrics.SparseCategoricalAccuracy()

    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits) + tf.add_n([0.0, *model.losses])
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        train_loss.update_state(loss, sample_weight=tf.shape(y)[0])
        train_accuracy.update_state(y, logits)

    train_step = tf.function(step, jit_compile=jit_compile)

    @tf.function(jit_compile=True)
    def train_stack(xs, ys, steps):  # the first `steps` of `stack` batches of one size; one XLA computation
        for i in tf.range(tf.shape(xs)[0]):  # a fixed trip count: a loop bound `steps` would recompile per value
            if i < steps:
                step(xs[i], ys[i])

    @tf.function
    def train_stacked(iterator, steps: int):  # a Python int: one trace for each count (two per run)
        batches = [next(iterator) for _ in range(steps)]
        batches += [tf.nest.map_structure(tf.zeros_like, batches[0])] * (stack - steps)  # one shape: one compile
        train_stack(tf.stack([x for x, _ in batches]), tf.stack([y for _, y in batches]), tf.constant(steps))

    @tf.function
    def train_steps(iterator, steps):
        for _ in tf.range(steps):
            train_step(*next(iterator))

    @tf.function(jit_compile=jit_compile)
    def eval_step(x, y):
        logits = model(x, training=False)
        val_loss.update_state(loss_fn(y, logits), sample_weight=tf.shape(y)[0])
        val_accuracy.update_state(y, logits)

    callbacks = callback_list(ctx, model)
    train = ctx.train_dataset()
    validation = ctx.validation_dataset()
    # Calls of one epoch: (steps, stacked). Only full batches are stacked; the partial last one runs alone.
    if stack >= 2:
        calls = [(min(stack, full_steps - first), True) for first in range(0, full_steps, stack)]
        calls += [(1, False)] * (ctx.steps_per_epoch - full_steps)
    else:
        spe = config.steps_per_execution
        calls = [(min(spe, ctx.steps_per_epoch - first), False) for first in range(0, ctx.steps_per_epoch, spe)]

    model.stop_training = False
    first_epoch = int(epoch)
    callbacks.on_train_begin()
    for current in range(first_epoch, config.epochs):
        callbacks.on_epoch_begin(current)
        for metric in (train_loss, train_accuracy, val_loss, val_accuracy):
            metric.reset_state()
        iterator = iter(train)
        done = 0
        for steps, stacked in calls:
            if stacked:
                train_stacked(iterator, steps)
            else:
                train_steps(iterator, tf.constant(steps))
            done += steps
            callbacks.on_train_batch_end(done - 1, {"loss": train_loss.result(), "accuracy": train_accuracy.result()})
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
