"""Where a lone ``/v1/classify`` request's time goes inside the server: a py-spy profile, grouped by layer.

    pip install py-spy        # a profiler, not a routerforge dependency
    python benchmarks/http_profile.py [--config benchmarks/load-router.yaml] [--requests 3000] [--rate 1000]

Starts ``routerforge serve`` under ``py-spy record`` (raw collapsed stacks, every thread, idle samples left out),
sends ``--requests`` ~30-token prompts one at a time over one kept-alive connection, stops the server, and
prints the share of busy samples (idle waits left out) whose stack passes through each layer (the innermost
frame that matches one), with the two commonest innermost frames of each.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _router import wait_ready

PORT = 8089
PROMPT = "Please explain how the integral of x squared is computed, step by step, for a first-year calculus exam."
# waits py-spy's idle detection misses (a pool thread parked on its queue, the loop in epoll): not work
IDLE_LEAVES = ("Condition.wait (threading", "_worker (concurrent/futures", "select (selectors")
LAYERS = [  # (layer, substrings of a frame "function (file:line)"), first match wins, innermost frames first
    ("encoder (ONNX Runtime run)", ("onnxruntime",)),
    ("tokenise + windows", ("tokenizers", "encode_batch", "plan_windows", "normalise")),
    ("decode heads (softmax, spans, recognizers)", ("_decode", "_spans", "recognizers", "decode_spans")),
    ("JSON (encode/decode)", ("json/", "jsonable_encoder", "to_dict", "asdict", "render")),
    ("pydantic", ("pydantic",)),
    ("HTTP parsing/writing (uvicorn, h11/httptools)", ("h11", "httptools", "uvicorn/protocols")),
    ("routing/middleware (starlette, fastapi)", ("starlette", "fastapi")),
    ("batcher + thread hand-off", ("batcher", "concurrent/futures", "threading")),
    ("asyncio loop", ("asyncio",)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="benchmarks/load-router.yaml")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp()) / "stacks.txt"
    cli = str(Path(sys.executable).with_name("routerforge"))
    spy = str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--format", "raw", "--rate", str(args.rate), "--threads", "-o", str(out), "--"]
    command += [cli, "serve", "--config", args.config, "--port", str(PORT)]
    command += ["--backend", args.backend] if args.backend else []
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{PORT}"
    with httpx.Client(timeout=30) as client:
        wait_ready(client, base)
        for i in range(50):  # warm-up
            client.post(base + "/v1/classify", json={"text": f"{PROMPT} ({i})"})
        started = time.perf_counter()
        for i in range(args.requests):
            client.post(base + "/v1/classify", json={"text": f"{PROMPT} ({i})"}).raise_for_status()
        wall = time.perf_counter() - started
    server.send_signal(2)  # SIGINT: py-spy stops the server and writes the profile
    server.wait(60)
    counts: collections.Counter[str] = collections.Counter()
    leaves: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")[::-1]  # innermost first
        if frames[0].startswith(IDLE_LEAVES):
            continue
        layer = next(
            (name for frame in frames for name, keys in LAYERS if any(k in frame for k in keys)),
            "other",
        )
        counts[layer] += int(n)
        leaves[layer][frames[0]] += int(n)
        total += int(n)
    per_request_ms = 1000 * wall / args.requests
    print(f"{args.requests} requests, {per_request_ms:.2f} ms each (client wall, under the profiler)")
    print(f"{total} busy samples (every thread; idle waits left out), share per layer:")
    for name, n in counts.most_common():
        print(f"  {n / total:6.1%}  {name}")
        for leaf, k in leaves[name].most_common(2):
            print(f"            {k / total:6.1%} innermost: {leaf[:110]}")


if __name__ == "__main__":
    main()
