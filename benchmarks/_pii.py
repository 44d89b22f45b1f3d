"""What the benchmarks share: the ~30-token prompt, a p50/p99 timer, a JSONL reader, the result printout."""

from __future__ import annotations

import json
import time
from pathlib import Path

from routerforge.evaluation.metrics import latency_summary
from routerforge.io import write_json

PROMPT_30 = "Hi, please call John Smith at 555-123-4567 or email jane.doe@example.com before Friday about the refund."


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def timed(fn, text: str, reps: int) -> dict:
    """Latency of ``fn(text)`` over ``reps`` calls after three warm-ups."""
    for _ in range(3):
        fn(text)
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(text)
        seconds.append(time.perf_counter() - start)
    return latency_summary(seconds)


def report(result: dict, output: Path | None, **more) -> None:
    """Print each field of a benchmark's result; with ``output``, write it and ``more`` (e.g. per-row runs) as JSON."""
    for key, value in result.items():
        print(f"{key}: {value}")
    if output:
        write_json(output, result | more)
