"""What the HTTP path adds to a lone request: ``/v1/classify`` against the same bundle in-process, and chat
through the router against the upstream alone, interleaved in one run (concurrency 1).

    python benchmarks/http_overhead.py [--config benchmarks/load-router.yaml] [--backend onnx-int8] \\
        [--requests 300] [--rounds 3] [--threads 2]

Starts ``routerforge serve`` (the config's bundle, port 8089) in a subprocess and the fake OpenAI-compatible
upstream (``routerforge.serving.fake_upstream``, port 9000, as the config expects) in this process. Each round
sends ``--requests`` ~30-token prompts each way, one at a time, over one kept-alive connection. Prints p50/p99 per
path and the medians of the per-round differences.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from _router import lone_request_parser, wait_ready
from routerforge.runtime.engine import Router
from routerforge.serving.config import load_router_config
from routerforge.serving.fake_upstream import FakeUpstream, background_server

PORT, UPSTREAM_PORT = 8089, 9000
PROMPT = "Please explain how the integral of x squared is computed, step by step, for a first-year calculus exam."


def _ms(samples: list[float]) -> dict:
    return {"p50": float(np.percentile(samples, 50)) * 1e3, "p99": float(np.percentile(samples, 99)) * 1e3}


def _timed(call, first: int, n: int) -> list[float]:
    out = []
    for i in range(first, first + n):
        started = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    args = lone_request_parser(__doc__.split("\n\n")[0]).parse_args()

    bundle = load_router_config(args.config).bundle
    router = Router.load(bundle, args.backend, threads=args.threads)
    cli = str(Path(sys.executable).with_name("routerforge"))
    command = [cli, "serve", "--config", args.config, "--port", str(PORT)]
    command += ["--threads", str(args.threads), "--backend", router.backend_name]  # the same model both ways
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{PORT}"
    try:
        with (
            background_server(FakeUpstream(record=False).app, port=UPSTREAM_PORT) as upstream,
            httpx.Client(timeout=30) as client,
        ):
            wait_ready(client, base)
            # new texts every round: the router's signal cache would answer a repeated chat text without the model
            texts = [f"{PROMPT} ({i})" for i in range(args.requests * (args.rounds + 1))]
            chat = {"model": "auto", "messages": [{"role": "user", "content": ""}]}

            def body(i: int) -> dict:
                return chat | {"messages": [{"role": "user", "content": texts[i]}]}

            paths = {
                "in-process classify": lambda i: router.classify(texts[i]),
                "/v1/classify": lambda i: client.post(base + "/v1/classify", json={"texts": [texts[i]]}),
                "upstream alone (chat)": lambda i: client.post(f"{upstream}/v1/chat/completions", json=body(i)),
                "chat through the router": lambda i: client.post(base + "/v1/chat/completions", json=body(i)),
            }
            for call in paths.values():  # warm-up, and a check that every path answers 200
                response = call(0)
                if isinstance(response, httpx.Response) and response.status_code != 200:
                    raise SystemExit(f"{response.request.url}: {response.status_code} {response.text[:200]}")
            rounds: list[dict[str, dict]] = []
            for r in range(args.rounds):
                first = (r + 1) * args.requests  # this round's texts (the warm-up read text 0)
                rounds.append({name: _ms(_timed(call, first, args.requests)) for name, call in paths.items()})
                print(f"round {r + 1}: " + ", ".join(f"{n} {v['p50']:.2f} ms" for n, v in rounds[-1].items()))
    finally:
        server.terminate()
        server.wait(10)
    for name in paths:
        p50 = statistics.median(x[name]["p50"] for x in rounds)
        p99 = statistics.median(x[name]["p99"] for x in rounds)
        print(f"{name:26s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    for a, b in (("/v1/classify", "in-process classify"), ("chat through the router", "upstream alone (chat)")):
        added = statistics.median(x[a]["p50"] - x[b]["p50"] for x in rounds)
        print(f"added by {a}: {added:.2f} ms at p50 (median of per-round differences)")
    print(f"bundle {bundle}, backend {router.backend_name}, threads {args.threads}, load {os.getloadavg()}")


if __name__ == "__main__":
    main()
