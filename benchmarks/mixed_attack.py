"""Mixed-attack benchmark of the guard (issue 13): can one client's large requests make another client's small
ones time out, fail open or reach a backend unchecked?

    python benchmarks/mixed_attack.py [--bundle DIR] [--baseline-s 30] [--attack-s 60] \\
        [--attack-concurrency 32] [--small-concurrency 4] [--output benchmarks/results/mixed-attack.json]

Everything runs on loopback and stops by itself. A child process serves the proxy (default config: fail
closed, admission by work) over ``--bundle`` (default: a tiny random-headed BERT bundle built on the spot from
tests/conftest.py, torch backend) in front of a recording upstream in the same process. Every text the
classifier reads is recorded (its hash); for every request the upstream receives, the texts
``texts_to_check`` names in it must all have been classified, else it counts as forwarded unchecked. The
benchmark config sets ``pii.action`` and ``jailbreak.action`` to ``allow`` (the random heads flag texts at
random; a block would hide whether the text was checked) and ``tools.enabled: false``.

Phases: ``--baseline-s`` of small requests alone (the p99 to compare with), then ``--attack-s`` of the same
small requests while an attacker keeps ``--attack-concurrency`` large requests in flight (each
``--attack-messages`` messages of ``--attack-chars`` characters, alternating with medium ones of 40 messages of
1,500 characters, at most ``--attack-max`` requests in all).
Small requests: one ~30-word user message, ``--small-concurrency`` clients. Then the check overhead: the new
inspection (``texts_to_check``) against the pre-issue-13 one (a copy of the old function below) on an ordinary
chat request, interleaved, in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from fastapi import Request  # at module level: the upstream's annotations are resolved here

ROOT = Path(__file__).resolve().parents[1]
CHAT = "/v1/chat/completions"
SMALL_TEXT = (
    "Could you explain in a few sentences why the sky looks blue during the day and red at sunset, "
    "and whether the same effect happens on Mars"
)


def bench_config(upstream_port: int) -> dict:
    return {
        "backends": [
            {"name": "local", "base_url": f"http://127.0.0.1:{upstream_port}/v1", "models": ["m"], "timeout_s": 30}
        ],
        "default_model": "m",
        "pii": {"default": {"action": "allow"}},
        "jailbreak": {"action": "allow"},
        "tools": {"enabled": False},
        "server": {"max_body_bytes": 2_000_000, "max_batch_chars": int(os.environ.get("RF_BENCH_BATCH_CHARS", 16000))},
    }


# -- the server child ------------------------------------------------------------------------------------------


def serve(bundle: str, port: int, upstream_port: int, backend: str) -> None:
    import uvicorn
    from fastapi import FastAPI

    from routerforge.runtime.engine import Router
    from routerforge.serving.config import RouterConfig
    from routerforge.serving.fake_upstream import background_server
    from routerforge.serving.policy import texts_to_check
    from routerforge.serving.proxy import create_app
    from routerforge.serving.service import RouterService

    config = RouterConfig.model_validate(bench_config(upstream_port))
    router = Router.load(bundle, backend)
    seen: set[bytes] = set()
    classify_batch = router.classify_batch

    def recording(texts, *args, **kwargs):
        seen.update(hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts)
        return classify_batch(texts, *args, **kwargs)

    router.classify_batch = recording
    stats = Counter()
    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        texts = texts_to_check(body, config)
        unchecked = any(hashlib.blake2b(t.encode(), digest_size=16).digest() not in seen for t in texts.values())
        stats["forwarded"] += 1
        stats["forwarded_unchecked"] += unchecked
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}

    @upstream.get("/stats")
    async def get_stats():
        return dict(stats)

    service = RouterService(router, config)
    with background_server(upstream, port=upstream_port):
        uvicorn.run(create_app(service), host="127.0.0.1", port=port, log_level="warning", limit_concurrency=512)


# -- the load ----------------------------------------------------------------------------------------------------


def small_body() -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": SMALL_TEXT}], "max_tokens": 16}


def large_body(n_messages: int, chars: int, seed: int) -> dict:
    words = (f"w{(seed * 7919 + i) % 997} lorem ipsum dolor sit amet" for i in range(10**9))
    text = []
    for _ in range(n_messages):
        message = ""
        while len(message) < chars:
            message += next(words) + " "
        text.append(message[:chars])
    roles = ["user", "assistant"]
    return {"model": "auto", "messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(text)]}


async def small_clients(url: str, seconds: float, concurrency: int) -> list[tuple[float, int]]:
    results: list[tuple[float, int]] = []
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one():
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    status = (await client.post(CHAT, json=small_body())).status_code
                except httpx.HTTPError:
                    status = 0
                results.append((time.perf_counter() - started, status))

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return results


async def attacker(url: str, seconds: float, concurrency: int, bodies: list[bytes], limit: int) -> Counter:
    statuses: Counter = Counter()
    deadline, sent = time.perf_counter() + seconds, 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one():
            nonlocal sent
            while time.perf_counter() < deadline and sent < limit:
                body, sent = bodies[sent % len(bodies)], sent + 1
                try:
                    response = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
                    statuses[response.status_code] += 1
                except httpx.HTTPError as err:
                    statuses[type(err).__name__] += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return statuses


def summary(results: list[tuple[float, int]]) -> dict:
    ok = [seconds * 1000 for seconds, status in results if status == 200]
    return {
        "requests": len(results),
        "statuses": dict(sorted(Counter(str(status) for _, status in results).items())),
        "p50_ms": round(float(np.percentile(ok, 50)), 1) if ok else None,
        "p90_ms": round(float(np.percentile(ok, 90)), 1) if ok else None,
        "p99_ms": round(float(np.percentile(ok, 99)), 1) if ok else None,
        "max_ms": round(max(ok), 1) if ok else None,
        "p99_all_ms": round(float(np.percentile([s * 1000 for s, _ in results], 99)), 1) if results else None,
    }


# -- the check overhead --------------------------------------------------------------------------------------------


def old_texts_to_check(request: dict, roles: set[str]) -> dict:
    """texts_to_check as it was before issue 13 (content strings and "text" parts of the checked roles)."""
    messages = request["messages"]
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    out = {}
    for i, message in enumerate(messages):
        if i != last and message.get("role") not in roles:
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts = [(None, content)]
        elif isinstance(content, list):
            parts = [
                (n, p["text"])
                for n, p in enumerate(content)
                if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            ]
        else:
            parts = []
        out.update({(i, n): text for n, text in parts if text.strip()})
    return out


def check_overhead(rounds: int = 20_000) -> dict:
    from routerforge.serving.config import RouterConfig
    from routerforge.serving.policy import texts_to_check

    config = RouterConfig.model_validate(bench_config(9))
    request = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": SMALL_TEXT},
        ],
        "temperature": 0.7,
        "max_tokens": 256,
        "stream": False,
    }
    old_roles = {"system", "developer", "user", "tool", "function"}
    new, old = [], []
    for _ in range(rounds):  # interleaved: the same noise hits both
        started = time.perf_counter_ns()
        texts_to_check(request, config)
        new.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        old_texts_to_check(request, old_roles)
        old.append(time.perf_counter_ns() - started)
    return {
        "request": "system + user message, 4 sampling fields",
        "rounds": rounds,
        "new_p50_us": round(float(np.median(new)) / 1000, 2),
        "old_p50_us": round(float(np.median(old)) / 1000, 2),
        "overhead_p50_us": round((float(np.median(new)) - float(np.median(old))) / 1000, 2),
    }


def end_to_end_overhead(url: str, rounds: int = 300) -> dict:
    """p50 of an ordinary chat request through the proxy, measured in the same run as the phases."""
    samples = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(rounds):
            started = time.perf_counter()
            client.post(CHAT, json=small_body())
            samples.append(time.perf_counter() - started)
    return {"rounds": rounds, "p50_ms": round(float(np.median(samples)) * 1000, 2)}


# -- main ------------------------------------------------------------------------------------------------------------


def tiny_bundle(directory: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_tiny_backbone, make_tiny_bundle

    return make_tiny_bundle(directory / "bundle", make_tiny_backbone(directory / "backbone"))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", nargs=3, metavar=("BUNDLE", "PORT", "UPSTREAM_PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--upstream-port", type=int, default=18000)
    parser.add_argument("--baseline-s", type=float, default=30)
    parser.add_argument("--attack-s", type=float, default=60)
    parser.add_argument("--attack-concurrency", type=int, default=32)
    parser.add_argument("--attack-messages", type=int, default=250)
    parser.add_argument("--attack-chars", type=int, default=3000)
    parser.add_argument("--attack-max", type=int, default=5000)
    parser.add_argument("--small-concurrency", type=int, default=4)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/mixed-attack.json")
    args = parser.parse_args()
    if args.serve:
        bundle, port, upstream_port = args.serve
        return serve(bundle, int(port), int(upstream_port), args.backend)

    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or tiny_bundle(Path(tmp))
        url = f"http://127.0.0.1:{args.port}"
        command = [sys.executable, __file__, "--serve", str(bundle), str(args.port), str(args.upstream_port)]
        process = subprocess.Popen([*command, "--backend", args.backend], env=os.environ | {"PYTHONUNBUFFERED": "1"})
        try:
            wait_ready(url, process)
            e2e_before = end_to_end_overhead(url, 100)  # warm-up and the idle p50
            cpu = {"start": (cpu_s(process.pid), cpu_s(os.getpid()), time.perf_counter())}
            baseline = asyncio.run(small_clients(url, args.baseline_s, args.small_concurrency))
            cpu["baseline"] = (cpu_s(process.pid), cpu_s(os.getpid()), time.perf_counter())
            sizes = [(args.attack_messages, args.attack_chars), (40, 1500)]  # too large to admit; admitted
            bodies = [json.dumps(large_body(*sizes[seed % 2], seed)).encode() for seed in range(8)]

            async def mixed():
                return await asyncio.gather(
                    small_clients(url, args.attack_s, args.small_concurrency),
                    attacker(url, args.attack_s, args.attack_concurrency, bodies, args.attack_max),
                )

            started = time.perf_counter()
            under_attack, attack_statuses = asyncio.run(mixed())
            attack_wall = time.perf_counter() - started
            cpu["attack"] = (cpu_s(process.pid), cpu_s(os.getpid()), time.perf_counter())
            stats = httpx.get(f"http://127.0.0.1:{args.upstream_port}/stats", timeout=5).json()
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
        finally:
            process.terminate()
            process.wait(timeout=30)
    guard_series = [
        line
        for line in metrics.splitlines()
        if line.startswith(
            (
                "routerforge_admission_refused_total",
                "routerforge_classification_failures_total",
                "routerforge_fail_open_total",
                "routerforge_blocks_total",
                "routerforge_texts_too_long_total",
            )
        )
    ]
    base, attacked = summary(baseline), summary(under_attack)
    result = {
        "bundle": str(args.bundle) if args.bundle else "tiny random-headed BERT (tests/conftest.py), torch backend",
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("serve", "output", "bundle")},
        "attack_body_bytes": [len(bodies[0]), len(bodies[1])],
        "small_baseline": base,
        "small_under_attack": attacked,
        "small_p99_ratio": round(attacked["p99_ms"] / base["p99_ms"], 2)
        if base["p99_ms"] and attacked["p99_ms"]
        else None,
        "attack": {"statuses": {str(k): v for k, v in attack_statuses.items()}, "wall_s": round(attack_wall, 1)},
        "upstream": stats,
        "cpu_cores_used": {  # CPU seconds per wall second: the server (with its upstream) and this load generator
            phase: {
                "server": round((cpu[phase][0] - cpu[before][0]) / (cpu[phase][2] - cpu[before][2]), 2),
                "load_generator": round((cpu[phase][1] - cpu[before][1]) / (cpu[phase][2] - cpu[before][2]), 2),
            }
            for before, phase in (("start", "baseline"), ("baseline", "attack"))
        },
        "forwarded_unchecked": stats.get("forwarded_unchecked", 0),
        "guard_metrics": guard_series,
        "check_overhead": check_overhead(),
        "end_to_end_idle_p50_ms": e2e_before,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
