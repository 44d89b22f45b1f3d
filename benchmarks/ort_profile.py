"""Where ONNX Runtime spends a ~30-token request: p50 of the bare session (no tokenizer, no decoding) per thread
count, then ONNX Runtime's own profiler over the same runs, time per operator type. The 2-thread figures need
both cores idle: with other work on the machine one thread can be the faster. Several files (two int8 recipes of
one bundle, two bundles) are measured call by call in turn (the order rotating), so the drift moves them alike, with
ONNX Runtime's thread spinning off (else each session's idle threads spin on while the next one runs).

    python benchmarks/ort_profile.py MODEL_DIR/model.int8.onnx [OTHER.onnx ...] [--tokens 30] [--runs 400]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from routerforge.evaluation.metrics import latency_summary

WARM_UP = 50


def session(file: Path, threads: int, profile: bool = False, spinning: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def feed_for(s: ort.InferenceSession, tokens: int) -> dict:
    ids = np.array([[101] + [2000 + i for i in range(tokens - 2)] + [102]], dtype=np.int64)
    every = {"input_ids": ids, "attention_mask": np.ones_like(ids), "shape_ids": np.zeros_like(ids)}
    return {i.name: every[i.name] for i in s.get_inputs()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    for rnd in range(args.rounds):
        for threads in (1, 2):
            # several sessions called in turn: one's threads would spin on while the next runs (2 threads: 15 ms)
            sessions = [session(model, threads, spinning=len(args.models) == 1) for model in args.models]
            feeds = [feed_for(s, args.tokens) for s in sessions]
            for s, feed in zip(sessions, feeds):
                for _ in range(WARM_UP):
                    s.run(None, feed)
            seconds: list[list[float]] = [[] for _ in sessions]
            for i in range(args.runs):  # call by call in turn, the order rotating: the machine drifts within seconds
                for j in range(len(sessions)):
                    k = (i + j) % len(sessions)
                    start = time.perf_counter()
                    sessions[k].run(None, feeds[k])
                    seconds[k].append(time.perf_counter() - start)
            spinning = "on" if len(args.models) == 1 else "off"
            for model, times in zip(args.models, seconds):
                p50 = latency_summary(times)["p50_ms"]
                print(f"round {rnd + 1}, {threads} thread(s), spinning {spinning}, {model}: p50 {p50:.2f} ms")
    for model in args.models:
        profile(model, args)


def profile(model: Path, args) -> None:
    s = session(model, 2, profile=True)
    feed = feed_for(s, args.tokens)
    for _ in range(WARM_UP + args.runs):
        s.run(None, feed)
    trace = Path(s.end_profiling())
    events = json.loads(trace.read_text())
    shutil.rmtree(trace.parent)
    runs = sorted(e["ts"] + e["dur"] for e in events if e.get("name") == "model_run")
    after_warm_up = runs[WARM_UP - 1]  # the profile covers the session from its creation: skip the warm-up runs
    busy, nodes = Counter(), Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] > after_warm_up:
            busy[e["args"]["op_name"]] += e["dur"]
            nodes[e["args"]["op_name"]] += 1
    total = sum(busy.values())
    print(f"{model} profiled, 2 threads: {total / args.runs:.0f} us of kernels per run (the profiler adds its cost)")
    for op, us in busy.most_common(8):
        print(f"  {op:28s} {us / args.runs:7.0f} us  {nodes[op] // args.runs:3d} nodes  {100 * us / total:5.1f}%")


if __name__ == "__main__":
    main()
