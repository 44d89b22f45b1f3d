"""Admission control past saturation, in-process: many clients on the server's micro-batcher, no HTTP.

    python benchmarks/admission.py MODEL_DIR [--backend onnx-int8] [--clients 128] [--seconds 15]
                                   [--backoff-ms 50] [--max-queue-ms 70] [--output FILE]

Each client sends a ~25-word prompt, waits for its signals and sends the next; a refused one (429: the work
ahead would make it wait past ``--max-queue-ms``) waits ``--backoff-ms`` and tries again. One warm-up call first,
so the cost model has measured something. Without sockets or an HTTP client on the same cores, what is left is
the batcher's own estimate against what admitted requests then wait: reported are admitted requests per second,
their p50/p99 latency, and refusals. ``benchmarks/load_wrk.sh`` measures the same through the HTTP server.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

import numpy as np

from _pii import report
from routerforge.runtime.batcher import MicroBatcher, QueueFull
from routerforge.runtime.engine import Router

WORDS = (
    "please explain how the integral of x squared is computed step by step for a first year calculus exam and call "
    "john at 555-123-4567 today"
).split()


async def client(batcher: MicroBatcher, stop: float, limit_s: float, backoff_s: float, rng, admitted, refused):
    while time.perf_counter() < stop:
        text = " ".join(rng.choice(WORDS) for _ in range(23))
        started = time.perf_counter()
        try:
            await batcher.submit([text], deadline_s=30, max_queue_s=limit_s)
            admitted.append(time.perf_counter() - started)
        except QueueFull:
            refused.append(started)
            await asyncio.sleep(backoff_s)


async def measure(router: Router, args) -> dict:
    admitted: list[float] = []
    refused: list[float] = []
    rng = random.Random(0)
    async with MicroBatcher(router.classify_batch, max_batch_size=16, queue_size=4096, max_batch_work=16_000) as b:
        await b.submit(["warm up"])
        await b.submit(["warm up the cost model"] * 16)
        stop = time.perf_counter() + args.seconds
        await asyncio.gather(
            *(
                client(b, stop, args.max_queue_ms / 1000, args.backoff_ms / 1000, rng, admitted, refused)
                for _ in range(args.clients)
            )
        )
    latency = np.array(admitted) * 1000
    return {
        "admitted_per_s": len(admitted) / args.seconds,
        "refused_per_s": len(refused) / args.seconds,
        "admitted_p50_ms": float(np.percentile(latency, 50)),
        "admitted_p99_ms": float(np.percentile(latency, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--backend", default=None, help="default: the fastest passing export")
    parser.add_argument("--clients", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--backoff-ms", type=float, default=50)
    parser.add_argument("--max-queue-ms", type=float, default=70, help="server.max_queue_ms (its default)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    router = Router.load(args.model, args.backend)
    result = {**vars(args), "backend": router.backend_name, "output": str(args.output) if args.output else None}
    result |= asyncio.run(measure(router, args))
    report(result, args.output)


if __name__ == "__main__":
    main()
