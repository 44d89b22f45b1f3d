"""Load benchmark of a running router: N concurrent clients for a fixed time per point, ~30-token prompts.

    python benchmarks/load.py --url http://127.0.0.1:8080 --endpoint classify|chat \\
        [--concurrency 1 8 32 128] [--duration 60] [--fake-upstream-port 9000] \\
        [--label batching-on] [--honour-retry-after] [--output benchmarks/results/load.json]

Per concurrency point: throughput (successful requests/s), p50/p99 latency of the successful requests,
responses by status code, client-side exceptions (timeouts, refused connections), and the server's mean
batch size during the point (from its /metrics). The saturation point is the lowest concurrency whose p99
exceeds 100 ms or whose throughput grew less than 10% over the previous point. JSON goes to --output, a
table to the terminal. ``--fake-upstream-port`` starts the fake OpenAI-compatible upstream
(``routerforge.serving.fake_upstream``) in this process, so the chat benchmark needs no LLM.

The full benchmark (on an otherwise idle machine; the client shares its cores with the server, so note
the load average the JSON records), batching on, then off:

    routerforge serve --config benchmarks/load-router.yaml &               # max_batch_size 16, adaptive
    python benchmarks/load.py --endpoint classify --label batching-on \\
        --output benchmarks/results/load-classify-on.json
    python benchmarks/load.py --endpoint chat --fake-upstream-port 9000 --label batching-on \\
        --output benchmarks/results/load-chat-on.json
    kill %1
    routerforge serve --config benchmarks/load-router-nobatch.yaml &       # max_batch_size 1: no batching
    python benchmarks/load.py --endpoint classify --label batching-off \\
        --output benchmarks/results/load-classify-off.json
    python benchmarks/load.py --endpoint chat --fake-upstream-port 9000 --label batching-off \\
        --output benchmarks/results/load-chat-off.json

Both configs serve ``runs/local-data/bundle`` (pass BUNDLE to ``serve`` for another) and send chat requests
to the fake upstream on 127.0.0.1:9000. Prompts are rows of the four synthetic tasks joined and cut at 30
tokens of ``--tokenizer`` (a bundle directory), or at 23 words (about 30 WordPiece tokens) without it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from routerforge.io import write_json

PATHS = {"classify": "/v1/classify", "chat": "/v1/chat/completions"}
P99_LIMIT_MS, MIN_GROWTH = 100.0, 1.10
WORDS_PER_30_TOKENS = 23


def make_prompts(n: int = 256, tokenizer: Path | None = None, seed: int = 0) -> list[str]:
    """``n`` varied ~30-token prompts from the synthetic tasks (category, PII, jailbreak and intent rows)."""
    if tokenizer is not None:
        from routerforge.bench.latency import default_prompts

        return default_prompts(tokenizer, n_texts=n, seed=seed)["short"]
    from routerforge.data.synth import generate

    per_task = [[e.text for e in generate(task, n, seed=seed)] for task in ("category", "pii", "jailbreak", "intent")]
    words = itertools.cycle(word for row in itertools.chain(*zip(*per_task)) for word in row.split())
    return [" ".join(itertools.islice(words, WORDS_PER_30_TOKENS)) for _ in range(n)]


def payload(endpoint: str, prompt: str, model: str) -> dict:
    if endpoint == "classify":
        return {"text": prompt}
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16}


async def batch_stats(client: httpx.AsyncClient) -> tuple[float, float] | None:
    """(batches, texts) so far from the server's routerforge_batch_size histogram; None without /metrics."""
    try:
        response = await client.get("/metrics")
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(response.text):
        if family.name == "routerforge_batch_size":
            values = {s.name: s.value for s in family.samples}
            return values.get("routerforge_batch_size_count", 0.0), values.get("routerforge_batch_size_sum", 0.0)
    return None


async def run_point(
    client: httpx.AsyncClient,
    endpoint: str,
    concurrency: int,
    duration: float,
    prompts: list[str],
    model: str,
    honour_retry_after: bool = False,
) -> dict:
    """``concurrency`` workers, each sending its next request as soon as the previous one answers (after a 429,
    with ``honour_retry_after``, once its ``Retry-After`` has passed, as the OpenAI SDK waits)."""
    path, latencies, statuses, exceptions = PATHS[endpoint], [], Counter(), Counter()
    before = await batch_stats(client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + duration

    async def worker(index: int) -> None:
        for k in itertools.count(index, concurrency):
            if loop.time() >= deadline:
                return
            sent = time.perf_counter()
            try:
                response = await client.post(path, json=payload(endpoint, prompts[k % len(prompts)], model))
            except httpx.TimeoutException:
                exceptions["timeout"] += 1
                continue
            except httpx.HTTPError as err:
                exceptions[type(err).__name__] += 1
                await asyncio.sleep(0.01)  # a refused connection fails at once: do not spin
                continue
            statuses[response.status_code] += 1
            if response.is_success:
                latencies.append(time.perf_counter() - sent)
            elif response.status_code == 429 and honour_retry_after:
                await asyncio.sleep(min(float(response.headers.get("retry-after", 1)), deadline - loop.time()))

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = loop.time() - started
    after = await batch_stats(client)
    ms = np.array(latencies) * 1000
    point = {
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "ok": len(latencies),
        "throughput_rps": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "status_codes": {str(code): n for code, n in sorted(statuses.items())},
        "exceptions": dict(exceptions),
        "mean_batch_size": None,
    }
    if before and after and after[0] > before[0]:
        point["mean_batch_size"] = round((after[1] - before[1]) / (after[0] - before[0]), 2)
    return point


def saturation(points: list[dict]) -> dict | None:
    previous = None
    for point in points:
        if point["p99_ms"] is not None and point["p99_ms"] > P99_LIMIT_MS:
            return {"concurrency": point["concurrency"], "reason": f"p99 {point['p99_ms']} ms > {P99_LIMIT_MS:g} ms"}
        if previous is not None and point["throughput_rps"] < MIN_GROWTH * previous["throughput_rps"]:
            return {
                "concurrency": point["concurrency"],
                "reason": f"throughput {point['throughput_rps']} req/s grew < {MIN_GROWTH - 1:.0%} over "
                f"concurrency {previous['concurrency']} ({previous['throughput_rps']} req/s)",
            }
        previous = point
    return None


async def benchmark(args, prompts: list[str]) -> dict:
    headers = {"Authorization": f"Bearer {os.environ[args.token_env]}"} if args.token_env else {}
    most = max(args.concurrency)
    limits = httpx.Limits(max_connections=most + 2, max_keepalive_connections=most + 2)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout, limits=limits) as client:
        ready = await client.get("/readyz")
        ready.raise_for_status()
        if args.warmup:
            await run_point(client, args.endpoint, min(args.concurrency), args.warmup, prompts, args.model)
        points = []
        for concurrency in args.concurrency:
            points.append(
                await run_point(
                    client, args.endpoint, concurrency, args.duration, prompts, args.model, args.honour_retry_after
                )
            )
            print(
                f"concurrency {concurrency}: {points[-1]['throughput_rps']} req/s, p99 {points[-1]['p99_ms']} ms",
                file=sys.stderr,
            )
    return {
        "label": args.label,
        "url": args.url,
        "endpoint": args.endpoint,
        "server": ready.json(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "timeout_s": args.timeout,
            "concurrency": args.concurrency,
            "n_prompts": len(prompts),
            "prompt_words_mean": round(float(np.mean([len(p.split()) for p in prompts])), 1),
            "prompts": f"30 tokens of {args.tokenizer}"
            if args.tokenizer
            else f"{WORDS_PER_30_TOKENS} words (~30 WordPiece tokens)",
            "model": args.model if args.endpoint == "chat" else None,
            "fake_upstream_port": args.fake_upstream_port,
            "honour_retry_after": args.honour_retry_after,
        },
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        },
        "points": points,
        "saturation": saturation(points),
    }


def print_table(result: dict) -> None:
    table = Table(
        title=f"{result['endpoint']} load ({result['label'] or result['url']}), "
        f"{result['settings']['duration_s']:g} s per point"
    )
    for column in ("concurrency", "req/s", "p50 ms", "p99 ms", "mean batch", "status codes", "exceptions"):
        table.add_column(column, justify="right" if column not in ("status codes", "exceptions") else "left")
    for p in result["points"]:
        table.add_row(
            str(p["concurrency"]),
            f"{p['throughput_rps']:.1f}",
            str(p["p50_ms"]),
            str(p["p99_ms"]),
            str(p["mean_batch_size"] or "-"),
            ", ".join(f"{k}: {v}" for k, v in p["status_codes"].items()),
            ", ".join(f"{k}: {v}" for k, v in p["exceptions"].items()) or "-",
        )
    console = Console()
    console.print(table)
    found = result["saturation"]
    console.print(
        f"saturation: concurrency {found['concurrency']} ({found['reason']})" if found else "saturation: not reached",
        highlight=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the router's base URL")
    parser.add_argument("--endpoint", choices=sorted(PATHS), default="classify")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--duration", type=float, default=60, help="seconds per concurrency point")
    parser.add_argument("--warmup", type=float, default=5, help="seconds at the lowest concurrency, not recorded")
    parser.add_argument("--timeout", type=float, default=30, help="client timeout per request (seconds)")
    parser.add_argument("--model", default="auto", help="chat: the model field sent")
    parser.add_argument("--tokenizer", type=Path, help="bundle directory: cut prompts at exactly 30 of its tokens")
    parser.add_argument("--token-env", help="environment variable holding the router's bearer token")
    parser.add_argument("--fake-upstream-port", type=int, help="start the fake upstream on 127.0.0.1:PORT here")
    parser.add_argument("--label", help="a name for this run (e.g. batching-on)")
    parser.add_argument(
        "--honour-retry-after", action="store_true", help="after a 429, wait its Retry-After (default: resend at once)"
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/load.json"))
    args = parser.parse_args()
    if min(args.concurrency) < 1 or args.duration <= 0:
        parser.error("--concurrency values must be >= 1 and --duration > 0")
    prompts = make_prompts(tokenizer=args.tokenizer)
    with ExitStack() as stack:
        if args.fake_upstream_port:
            from routerforge.serving.fake_upstream import FakeUpstream, background_server

            stack.enter_context(background_server(FakeUpstream(record=False).app, port=args.fake_upstream_port))
        try:
            result = asyncio.run(benchmark(args, prompts))
        except httpx.HTTPError as err:
            sys.exit(f"error: the router at {args.url} is not ready ({type(err).__name__}: {err})")
    print_table(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.output, result)
    print(f"written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
