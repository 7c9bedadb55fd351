"""Requests per second and latency of `kerasdl serve` under a bounded load, with micro-batching on and off.

Two real server processes serve the same model repository, one batching (--max-batch-size 32, --batch-wait-ms
2) and one not (--max-batch-size 1). `--clients` threads, each with its own keep-alive session, send a fixed
number of requests to each: real MNIST test digits as JSON pixels to cnn-mnist, real SST-2 test sentences to
text-cnn-sst2. After a warm-up the configurations take turns in rounds (the order flips each round), so both
meet the same machine; the ratio batching on / off is measured in the same run.

    kerasdl export RUN --format tflite --to-repo /tmp/repo          (for each of the two models)
    python benchmarks/serve_load.py --models models [--requests 5000] [--clients 16]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import requests

from kerasdl.data.base import data_root
from kerasdl.data.mnist import load_mnist
from kerasdl.data.text import load_sst2
from kerasdl.serve.repository import ModelRepository

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"
CONFIGURATIONS = {
    "batching-on": ["--max-batch-size", "32", "--batch-wait-ms", "2"],
    "batching-off": ["--max-batch-size", "1"],
}
ROUNDS = 4
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Measurement:
    """What the client saw of one model under one configuration, summed over the rounds."""

    latencies: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def figures(self) -> dict:
        milliseconds = np.asarray(self.latencies) * 1000.0
        p50, p90, p99 = (round(float(np.percentile(milliseconds, q)), 2) for q in (50, 90, 99))
        return {"requests": len(self.latencies), "requests_per_second": round(len(self.latencies) / self.seconds, 1),
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
                "responses": {kind: self.outcomes[kind] for kind in ("2xx", "4xx", "5xx", "failed")}}


def payloads() -> dict[str, list[bytes]]:
    """Per model, request bodies from the real test sets, serialized once (the client's work is sending)."""
    digits = load_mnist(data_root()).x_test[:1000]
    sentences = load_sst2(data_root()).test[0]
    return {
        "cnn-mnist": [json.dumps({"inputs": pixels.tolist()}).encode() for pixels in digits],
        "text-cnn-sst2": [json.dumps({"text": text}).encode() for text in sentences],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def server(models: str, flags: list[str], workers: int) -> Iterator[str]:
    """`kerasdl serve` in its own process on a free loopback port; its URL once /healthz answers."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "kerasdl", "serve", models, "--port", str(port),
                                    "--workers", str(workers), *flags], stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_healthy(url: str, process: subprocess.Popen, log, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise SystemExit(f"kerasdl serve exited with {process.returncode}:\n{log.read().decode()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/healthz", timeout=2).ok:
                return
        time.sleep(0.2)
    raise SystemExit(f"kerasdl serve did not answer {url}/healthz within {timeout_s:.0f} s")


def load(url: str, bodies: list[bytes], count: int, clients: int, timeout_s: float, into: Measurement) -> None:
    """`count` requests from `clients` threads, each with a keep-alive session, as fast as answers come."""
    tickets, record = itertools.count(), threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while (ticket := next(tickets)) < count:
                started = time.perf_counter()
                try:
                    response = session.post(url, data=bodies[ticket % len(bodies)], headers=JSON_HEADERS,
                                            timeout=timeout_s)
                    outcome = f"{response.status_code // 100}xx"
                except requests.RequestException:
                    outcome = "failed"
                elapsed = time.perf_counter() - started
                with record:
                    into.latencies.append(elapsed)
                    into.outcomes[outcome] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    into.seconds += time.perf_counter() - started


def measure(urls: dict[str, str], bodies: dict[str, list[bytes]], args: argparse.Namespace) -> dict:
    """Per model and configuration, the summed measurement of `args.requests` requests in ROUNDS turns."""
    results = {model: {name: Measurement() for name in urls} for model in bodies}
    for model, model_bodies in bodies.items():
        for url in urls.values():  # warm-up: connections, interpreter sizes, first-call costs
            load(f"{url}/v1/models/{model}:predict", model_bodies, 4 * args.clients, args.clients, args.timeout,
                 Measurement())
        for turn in range(ROUNDS):
            for name in (list(urls) if turn % 2 == 0 else list(urls)[::-1]):
                load(f"{urls[name]}/v1/models/{model}:predict", model_bodies, args.requests // ROUNDS, args.clients,
                     args.timeout, results[model][name])
    return {model: {name: measurement.figures() for name, measurement in by_name.items()}
            for model, by_name in results.items()}


def model_ms_per_sample(models: str, bodies: dict[str, list[bytes]], repeats: int = 50) -> dict:
    """The model call alone, in this process: ms per sample at batch 1 and at batch 32 (the median of
    `repeats` calls), the share of a request that batching can save."""
    repository, timings = ModelRepository.load(models), {}
    for name, model_bodies in bodies.items():
        model = repository.get(name).model
        spec = model.preprocessing
        raw = [json.loads(body) for body in model_bodies[:32]]
        batch = (spec.encoder.encode([r["text"] for r in raw]) if spec.kind == "text"
                 else spec.normalize(np.asarray([r["inputs"] for r in raw], np.float32)))
        timings[name] = {}
        for size in (1, 32):
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                model.logits(batch[:size])
                seconds.append(time.perf_counter() - started)
            timings[name][f"batch_{size}"] = round(float(np.median(seconds)) * 1000.0 / size, 4)
    return timings


def ratios(figures: dict) -> dict:
    """Batching on / off, per model: requests per second and latency percentiles."""
    return {model: {key: round(by_name["batching-on"][key] / by_name["batching-off"][key], 2)
                    for key in ("requests_per_second", "p50_ms", "p90_ms", "p99_ms")}
            for model, by_name in figures.items()}


def print_table(figures: dict, speedups: dict) -> None:
    print(f"{'model':15s} {'configuration':13s} {'req/s':>8s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} "
          f"{'2xx':>6s} {'4xx':>4s} {'5xx':>4s} {'failed':>6s}")
    for model, by_name in figures.items():
        for name, row in by_name.items():
            r = row["responses"]
            print(f"{model:15s} {name:13s} {row['requests_per_second']:8.1f} {row['p50_ms']:8.2f} {row['p90_ms']:8.2f} "
                  f"{row['p99_ms']:8.2f} {r['2xx']:6d} {r['4xx']:4d} {r['5xx']:4d} {r['failed']:6d}")
        s = speedups[model]
        print(f"{model:15s} on / off      x{s['requests_per_second']:.2f} req/s, p50 x{s['p50_ms']:.2f}, "
              f"p99 x{s['p99_ms']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="a model repository holding cnn-mnist and text-cnn-sst2")
    parser.add_argument("--requests", type=int, default=5000, help="timed requests per model and configuration")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--workers", type=int, default=16, help="each server's request threads (kerasdl serve "
                        "--workers); at least --clients, or the server caps the batches")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    bodies = payloads()
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(server(args.models, flags, args.workers))
                for name, flags in CONFIGURATIONS.items()}
        figures = measure(urls, bodies, args)
    speedups = ratios(figures)
    model_ms = model_ms_per_sample(args.models, bodies)
    print_table(figures, speedups)
    for model, timing in model_ms.items():
        print(f"{model:15s} model call alone: {timing['batch_1']:.3f} ms/sample at batch 1, "
              f"{timing['batch_32']:.3f} at batch 32")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "models": args.models, "requests": args.requests, "clients": args.clients, "workers": args.workers,
        "rounds": ROUNDS, "configurations": CONFIGURATIONS, "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "figures": figures, "batching_on_over_off": speedups,
        "model_ms_per_sample": model_ms,
    }, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
