"""The load figures of `serve` (docs/inference-and-export.md, "Serving over HTTP"): requests/s
and p50/p99 latency for 1, 8 and 64 concurrent clients, batching on and off, on the CPU.

It starts `python -m fmnist_lightning.serve` on 127.0.0.1 (the server on every core but the
client's), then sends one 28x28 PNG upload per request from threads pinned to one core, each
thread with its own keep-alive connection; each cell stops after --requests requests or
--seconds seconds, whichever comes first. Prints a markdown table. Run it alone on the machine:

    python docs/benchmarks/serve_load.py [--model CKPT] [--requests 2000] [--seconds 10]

Batching is off with --max-batch-sizes 1; other sizes wait --batch-timeout seconds at most
(default: serve's defaults, which these figures chose).
"""

import argparse
import http.client
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import numpy as np
from PIL import Image

from fmnist_lightning.inference.http_api import BATCH_TIMEOUT, MAX_BATCH_SIZE
from fmnist_lightning.training.machine import this_cpu_model

HOST = "127.0.0.1"  # never anything else: this load stays on the machine


def upload_body() -> tuple[bytes, str]:
    """One multipart request body: a 28x28 grey PNG in the field 'file'."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
    body = f"{head}Content-Type: image/png\r\n\r\n".encode() + buffer.getvalue()
    return body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def start_server(model: list[str], batching: list[str], port: int, cores: set[int]):
    """The serve command on ``cores`` (its processes inherit the affinity), once healthy."""
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    command = [sys.executable, "-m", "fmnist_lightning.serve", *model, "--port", str(port)]
    try:
        process = subprocess.Popen([*command, *batching], stdout=subprocess.DEVNULL)
    finally:
        os.sched_setaffinity(0, own)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as response:
                if response.read() == b"ok":
                    return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    sys.exit(f"serve did not become healthy (exit status {process.poll()})")


def run_clients(port: int, clients: int, requests: int, seconds: float) -> dict:
    """``clients`` threads sending requests until ``requests`` are sent or ``seconds`` pass."""
    body, content_type = upload_body()
    latencies: list[float] = []
    errors, lock, sent = [0], threading.Lock(), iter(range(requests))
    deadline = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        while time.perf_counter() < deadline:
            with lock:
                if next(sent, None) is None:
                    break
            start = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"Content-Type": content_type})
                response = connection.getresponse()
                ok = response.status == 200 and "class" in json.loads(response.read())
            except (OSError, http.client.HTTPException):  # counted; a new connection next
                connection.close()
                ok = False
            with lock:
                latencies.append(time.perf_counter() - start)
                errors[0] += not ok
        connection.close()

    begin = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    milliseconds = sorted(1000 * latency for latency in latencies)
    return {
        "requests": len(milliseconds),
        "per_second": len(milliseconds) / elapsed,
        "p50": statistics.median(milliseconds),
        "p99": milliseconds[min(len(milliseconds) - 1, int(0.99 * len(milliseconds)))],
        "errors": errors[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a .ckpt file or run folder; default: the shipped model")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--requests", type=int, default=2000, help="at most, per cell")
    parser.add_argument("--seconds", type=float, default=10.0, help="at most, per cell")
    parser.add_argument("--client-core", type=int, default=0)
    parser.add_argument("--max-batch-sizes", type=int, nargs="+", default=[1, MAX_BATCH_SIZE])
    parser.add_argument("--batch-timeout", type=float, default=BATCH_TIMEOUT)
    args = parser.parse_args()
    cores = os.sched_getaffinity(0)
    server_cores = cores - {args.client_core} or cores
    os.sched_setaffinity(0, {args.client_core})
    model = [args.model] if args.model else []
    print(f"{this_cpu_model() or platform.machine()}, {len(cores)} cores: the client on")
    print(f"core {args.client_core}, the server on {len(server_cores)}; one PNG per request.\n")
    print("| batching | clients | requests | requests/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.max_batch_sizes:
        name = f"up to {size}, {1000 * args.batch_timeout:g} ms" if size > 1 else "off"
        batching = ["--max-batch-size", str(size), "--batch-timeout", str(args.batch_timeout)]
        process = start_server(model, batching, args.port, server_cores)
        try:
            run_clients(args.port, 4, 50, 5.0)  # warm-up: first batches, connections
            for clients in args.clients:
                cell = run_clients(args.port, clients, args.requests, args.seconds)
                print(
                    f"| {name} | {clients} | {cell['requests']} | {cell['per_second']:.0f} "
                    f"| {cell['p50']:.1f} | {cell['p99']:.1f} | {cell['errors']} |",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
