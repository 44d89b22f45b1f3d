"""What the proxy's own Python costs per lone request, without sockets: the ASGI app is called directly, the
upstream is an in-memory httpx transport, and the model call is timed apart, so ``overhead = request - model``.

    python benchmarks/asgi_overhead.py [--config benchmarks/load-router.yaml] [--backend onnx-int8] \\
        [--requests 300] [--rounds 3] [--threads 2] [--profile]

Sockets, the HTTP parser and the client are what ``http_overhead.py`` adds on top; on a noisy 2-core machine
their milliseconds vary more than the app's, so this is the number to compare code changes by. ``--profile``
prints cProfile's top functions (event-loop thread only) for each endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import statistics
import time
from collections.abc import Callable

import httpx
import numpy as np

from _router import lone_request_parser
from routerforge.serving.proxy import create_app
from routerforge.serving.service import RouterService

PROMPT = "Please explain how the integral of x squared is computed, step by step, for a first-year calculus exam."
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "small-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31},
}


def _bodies(i: int) -> dict[str, bytes]:
    text = f"{PROMPT} ({i})"
    return {
        "/v1/classify": json.dumps({"texts": [text]}).encode(),
        "/v1/chat/completions": json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}).encode(),
    }


async def _call(app, path: str, body: bytes) -> None:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8089), "state": {},
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = []

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise SystemExit(f"{path}: status {status}")


async def _measure(args) -> None:
    service = RouterService.load(None, args.config, backend=args.backend, threads=args.threads)
    app = create_app(service)
    model_s: list[float] = []
    classify_batch = service.router.classify_batch

    def timed(texts):
        started = time.perf_counter()
        try:
            return classify_batch(texts)
        finally:
            model_s.append(time.perf_counter() - started)

    service.router.classify_batch = timed
    upstream = httpx.MockTransport(lambda request: httpx.Response(200, json=ANSWER))
    async with service, httpx.AsyncClient(transport=upstream) as client:
        app.state.client = client
        for i in range(20):  # warm-up
            for path, body in _bodies(i).items():
                await _call(app, path, body)
        rounds: list[dict[str, dict]] = []
        for r in range(args.rounds + args.profile):  # with --profile, a first round profiled and not counted
            result = {}
            for path in ("/v1/classify", "/v1/chat/completions"):
                model_s.clear()
                total, profile = [], cProfile.Profile() if args.profile and r == 0 else None
                if profile:
                    profile.enable()
                for i in range(args.requests):
                    started = time.perf_counter()
                    await _call(app, path, _bodies(i)[path])
                    total.append(time.perf_counter() - started)
                if profile:
                    profile.disable()
                    print(f"-- {path} (profiled round, not counted)")
                    pstats.Stats(profile).sort_stats("tottime").print_stats(15)
                    continue
                result[path] = {
                    "request_ms": float(np.median(total)) * 1e3,
                    "model_ms": float(np.median(model_s)) * 1e3,
                    "overhead_ms": (float(np.mean(total)) - float(np.mean(model_s))) * 1e3,
                }
            if result:
                rounds.append(result)
                print(f"round {len(rounds)}: " + ", ".join(f"{p} {v['overhead_ms']:.3f} ms" for p, v in result.items()))
    for path in rounds[0]:
        med = {key: statistics.median(x[path][key] for x in rounds) for key in rounds[0][path]}
        print(
            f"{path:22s} request p50 {med['request_ms']:.2f} ms, model p50 {med['model_ms']:.2f} ms, "
            f"app overhead (mean request - mean model) {med['overhead_ms']:.3f} ms"
        )
    print(f"backend {service.router.backend_name}, threads {args.threads}, load {os.getloadavg()}")


def main() -> None:
    parser = lone_request_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="profile an extra first round (not counted)")
    args = parser.parse_args()
    run: Callable = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # what `routerforge serve` runs on where installed

        run = uvloop.run
    run(_measure(args))


if __name__ == "__main__":
    main()
