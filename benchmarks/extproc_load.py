"""Throughput of ``routerforge extproc`` with one worker and with several, as Envoy would drive it.

    python benchmarks/extproc_load.py [--bundle runs/local-data/bundle] [--workers 1 2] [--connections 1 8 32]

For each worker count the script starts ``routerforge extproc`` (``--threads`` = cores / workers), then for each
connection count opens that many gRPC channels (Envoy's connections: the kernel hands each to one worker) and on
each sends Envoy's exchange (request headers, then the buffered chat body) back to back for ``--seconds``. It
prints requests/s (all answers and routed ones), p50/p99 ms and the answers (routed, or an immediate reply with
its HTTP status: 429 when admission refuses) per point, as JSON lines. The
client shares the machine's cores with the server, as in benchmarks/load_wrk.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

PROMPT = "Can you help me figure out the derivative of x squared times sine x, and explain the chain rule used?"
HEADERS = {
    ":method": "POST",
    ":path": "/v1/chat/completions",
    ":authority": "router",
    "content-type": "application/json",
}


def requests() -> tuple[pb.ProcessingRequest, pb.ProcessingRequest]:
    pairs = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in HEADERS.items()]
    headers = base_pb2.HeaderMap(headers=pairs)
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    return (
        pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers)),
        pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True)),
    )


async def connection(port: int, until: float, latencies: list[float], outcomes: Counter) -> None:
    """One Envoy connection: one stream per request, each waited for before the next."""
    first, second = requests()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ExternalProcessorStub(channel)
        while time.perf_counter() < until:
            started = time.perf_counter()
            call = stub.Process()
            await call.write(first)
            await call.read()
            await call.write(second)
            answer = await call.read()
            await call.done_writing()
            latencies.append((time.perf_counter() - started) * 1000)
            routed = answer.HasField("request_body")
            outcomes["routed" if routed else f"immediate {answer.immediate_response.status.code}"] += 1


async def load(port: int, connections: int, seconds: float) -> dict:
    latencies: list[float] = []
    outcomes: Counter = Counter()
    until = time.perf_counter() + seconds
    await asyncio.gather(*(connection(port, until, latencies, outcomes) for _ in range(connections)))
    return {
        "connections": connections,
        "requests_per_s": round(len(latencies) / seconds, 1),
        "routed_per_s": round(outcomes["routed"] / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "outcomes": dict(outcomes),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="runs/local-data/bundle")
    parser.add_argument("--config", default="benchmarks/load-router.yaml")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    for workers in args.workers:
        port = free_port()
        command = [str(Path(sys.executable).with_name("routerforge")), "extproc", args.bundle, "--config", args.config]
        command += ["--port", str(port), "--backend", args.backend, "--workers", str(workers)]
        command += ["--threads", str(max(1, cores // workers))]
        log = Path(tempfile.mkdtemp()) / "extproc.log"
        server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            while log.read_text().count("ExtProc server on") < workers:  # each worker logs once it serves
                if server.poll() is not None:
                    raise SystemExit(f"routerforge extproc exited before it served:\n{log.read_text()}")
                time.sleep(0.2)
            asyncio.run(load(port, 1, 2))  # warm-up
            for connections in args.connections:
                point = asyncio.run(load(port, connections, args.seconds))
                print(json.dumps({"workers": workers, "threads": max(1, cores // workers)} | point), flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
