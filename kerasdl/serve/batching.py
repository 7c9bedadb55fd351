"""Micro-batching, as TensorFlow Serving's batching does it: concurrent requests to one model wait up to
`max_wait_ms` for company, then run as one batch of at most `max_batch_size` samples.

One worker thread per model makes every batched call, so the model is never entered from two threads. A
batch is padded up to the next allowed size (powers of two up to the maximum), so the interpreter is resized
to a handful of shapes instead of one per batch; the padding rows are dropped from the outputs. Requests
whose samples differ in shape or dtype never share a call, and a failing call fails only its own requests.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from kerasdl.serve.backends import ServedModel

Request = tuple[np.ndarray, Future]


@dataclass(frozen=True)
class BatchingConfig:
    """`max_batch_size` samples per model call at most (1: no batching); `max_wait_ms` a request may wait."""

    max_batch_size: int = 32
    max_wait_ms: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1

    def allowed_sizes(self) -> list[int]:
        """The batch sizes a call is padded to: 1, 2, 4, ... below the maximum, then the maximum."""
        sizes = [1 << i for i in range(self.max_batch_size.bit_length()) if 1 << i < self.max_batch_size]
        return [*sizes, self.max_batch_size]


class MicroBatcher:
    """`batcher(x)` from any thread: the model's outputs for x (n samples), computed in a shared batch."""

    def __init__(self, model: ServedModel, config: BatchingConfig):
        self.model, self.config = model, config
        self.sizes = config.allowed_sizes()
        self.requests: queue.Queue[Request] = queue.Queue()
        self.worker: threading.Thread | None = None  # started by the first request: an app never asked owns none
        self.starting = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0 or len(x) >= self.config.max_batch_size:  # nothing to share: run it as it is
            return self.model.logits(x)
        with self.starting:
            if self.worker is None:
                self.worker = threading.Thread(target=self._serve, name=f"batcher-{id(self.model):x}", daemon=True)
                self.worker.start()
        done: Future = Future()
        self.requests.put((x, done))
        return done.result()

    def _serve(self) -> None:
        """Forever: the first waiting request opens a batch, which closes when full or at its deadline."""
        while True:
            waiting = [self.requests.get()]
            rows = len(waiting[0][0])
            deadline = time.perf_counter() + self.config.max_wait_ms / 1000.0
            while rows < self.config.max_batch_size:
                try:
                    item = self.requests.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if rows + len(item[0]) > self.config.max_batch_size:  # does not fit: it opens the next batch
                    self._run(waiting)
                    waiting, rows = [item], len(item[0])
                    deadline = time.perf_counter() + self.config.max_wait_ms / 1000.0
                    continue
                waiting.append(item)
                rows += len(item[0])
            self._run(waiting)

    def _run(self, waiting: list[Request]) -> None:
        """One model call per group of requests whose samples share a shape and dtype."""
        groups: dict[tuple, list[Request]] = {}
        for request in waiting:
            groups.setdefault((request[0].shape[1:], request[0].dtype.str), []).append(request)
        for group in groups.values():
            self._call(group)

    def _call(self, group: list[Request]) -> None:
        """The group's inputs as one padded batch; each request gets its rows, or the call's error."""
        inputs = [x for x, _ in group]
        rows = sum(len(x) for x in inputs)
        size = next(s for s in self.sizes if s >= rows)
        try:
            outputs = self.model.logits(np.concatenate([*inputs, np.repeat(inputs[0][:1], size - rows, axis=0)]))
        except Exception as err:  # each waiting request gets the error; the worker lives on
            for _, done in group:
                done.set_exception(err)
            return
        start = 0
        for x, done in group:
            done.set_result(outputs[start : start + len(x)])
            start += len(x)
