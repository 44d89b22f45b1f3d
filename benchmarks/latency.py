"""Serving latency: the four per-task models vs the multitask bundle (torch, onnx, onnx-int8), one process.

    python benchmarks/latency.py --per-task category=models/category pii=models/pii-e10 \\
        jailbreak=models/jailbreak intent=models/intent-e8 --bundle runs/local-data/bundle \\
        [--repeats 50] [--output benchmarks/results/latency.json]

Prints a Markdown table (p50/p99 ms per request at batch 1, texts/s at batch 32, p50 speed-up vs the per-task
models) and writes the full result, machine and settings included, as JSON. The prompts are synthetic
(short ~30 tokens, medium ~500 tokens, one 10,000-character text); ONNX backends whose file the bundle lacks
are listed as "not exported" (run ``routerforge export BUNDLE --format onnx|onnx-int8`` first).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from routerforge.bench.latency import format_table, latency_benchmark
from routerforge.errors import RouterforgeError
from routerforge.io import write_json


def _task_dir(value: str) -> tuple[str, Path]:
    task, sep, path = value.partition("=")
    if not sep or not task or not path:
        raise argparse.ArgumentTypeError(f"expected TASK=DIRECTORY, got {value!r}")
    return task, Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--per-task",
        nargs="+",
        type=_task_dir,
        required=True,
        metavar="TASK=DIR",
        help="the per-task models, e.g. category=models/category pii=models/pii-e10",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="the multitask bundle directory")
    parser.add_argument("--repeats", type=int, default=50, help="timed requests (and batches) per configuration")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--window", type=int, help="window size in tokens (default: the runtime's)")
    parser.add_argument("--overlap", type=int, help="window overlap in tokens (default: the runtime's)")
    parser.add_argument("--prompts", type=Path, help="JSON {set name: [texts]} instead of the synthetic prompts")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/latency.json"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    per_task = dict(args.per_task)
    if len(per_task) != len(args.per_task):
        parser.error("a task is named twice in --per-task")
    prompts = json.loads(args.prompts.read_text(encoding="utf-8")) if args.prompts else None
    try:
        result = latency_benchmark(
            per_task,
            args.bundle,
            prompts=prompts,
            repeats=args.repeats,
            batch=args.batch,
            window=args.window,
            overlap=args.overlap,
            progress=not args.no_progress,
        )
    except RouterforgeError as err:
        sys.exit(f"error: {err}")
    machine, settings = result["machine"], result["settings"]
    print(
        f"{machine['platform']}, {machine['cpus_usable']} CPUs, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), onnxruntime {machine['onnxruntime']}; "
        f"{settings['repeats']} repetitions, window {settings['window']['effective']}/"
        f"overlap {settings['overlap']['effective']}; load average {machine['load_average_1_5_15']}\n"
    )
    print(format_table(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.output, result)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
