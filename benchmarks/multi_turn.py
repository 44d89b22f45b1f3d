"""What a growing conversation costs the guard, with the signal cache and without it.

A chat client resends the whole conversation each turn and the guard reads every role, so turn *n* holds
*2n - 1* texts. Each conversation here is sent turn by turn (request *k* holds its first *k* user turns and the
assistant turns between them) to two services that differ only in ``server.signal_cache`` (the config's value,
and 0) and share one loaded Router, alternated conversation by conversation; ``decide`` is timed
(classification, queueing and the policy; no HTTP). User turns are MMLU-Pro questions, assistant turns other
questions of the set standing in for answers (only their length matters to the encoder); every conversation is
new to both services. The decisions of the two are compared field by field.

    python benchmarks/multi_turn.py --config ROUTER_YAML --data-dir DATA_DIR [--turns 10] [--conversations 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

from _pii import read_jsonl, report
from routerforge.serving.service import RouterService


def conversations(data_dir: Path, count: int, turns: int, seed: int = 0) -> list[list[dict]]:
    """``count`` conversations of ``turns`` user turns, no question used twice."""
    questions = [r["question"] for r in read_jsonl(data_dir / "mmlu_pro/questions.jsonl")]
    rng = random.Random(seed)
    picked = rng.sample(questions, count * (2 * turns - 1))
    out = []
    for c in range(count):
        texts = picked[c * (2 * turns - 1) : (c + 1) * (2 * turns - 1)]
        out.append([{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)])
    return out


async def measure(args) -> dict:
    on = RouterService.load(None, args.config, backend=args.backend, threads=args.threads)
    config = on.config
    off = RouterService(  # the same Router object: the two differ in the cache alone
        on.router, config.model_copy(update={"server": config.server.model_copy(update={"signal_cache": 0})})
    )
    services = {"cache": on, "no_cache": off}
    seconds: dict[str, list[list[float]]] = {name: [[] for _ in range(args.turns)] for name in services}
    differ = 0
    async with on, off:
        warm = {"model": "auto", "messages": [{"role": "user", "content": "warm up"}]}
        for service in services.values():
            for _ in range(3):
                await service.decide(warm)
        for i, messages in enumerate(conversations(args.data_dir, args.conversations, args.turns)):
            order = list(services.items()) if i % 2 == 0 else list(services.items())[::-1]
            decided = {}
            for name, service in order:
                decided[name] = []
                for turn in range(args.turns):
                    request = {"model": "auto", "messages": messages[: 2 * turn + 1]}
                    start = time.perf_counter()
                    decision = await service.decide(request)
                    seconds[name][turn].append(time.perf_counter() - start)
                    decided[name].append((decision.action, decision.model, decision.reasons, decision.body))
            differ += sum(a != b for a, b in zip(decided["cache"], decided["no_cache"]))
    hits = on.metrics.registry.get_sample_value("routerforge_signal_cache_total", {"result": "hit"}) or 0
    misses = on.metrics.registry.get_sample_value("routerforge_signal_cache_total", {"result": "miss"}) or 0
    p50 = {name: [statistics.median(s) * 1000 for s in per_turn] for name, per_turn in seconds.items()}
    return {
        "config": args.config,
        "backend": on.router.backend_name,
        "conversations": args.conversations,
        "turns": args.turns,
        "p50_ms_by_turn": {name: [round(v, 2) for v in values] for name, values in p50.items()},
        "conversation_ms_median": {
            name: round(statistics.median(sum(s[c] for s in per_turn) for c in range(args.conversations)) * 1000, 1)
            for name, per_turn in seconds.items()
        },
        "cache_hits": hits,
        "cache_misses": misses,
        "decisions_that_differ": differ,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="router config naming a bundle (its path relative to it)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--backend", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    report(result, args.out)
    print(json.dumps(result["p50_ms_by_turn"]))


if __name__ == "__main__":
    main()
