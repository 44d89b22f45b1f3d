"""Where ONNX Runtime spends a ~30-token request: p50 of the bare session (no tokenizer, no decoding) per thread
count, then ONNX Runtime's own profiler over the same runs, time per operator type. The 2-thread figures need
both cores idle: with other work on the machine one thread can be the faster.

    python benchmarks/ort_profile.py MODEL_DIR/model.int8.onnx [--tokens 30] [--runs 400]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from _pii import timed

WARM_UP = 50


def session(file: Path, threads: int, profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
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
    parser.add_argument("model", type=Path)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()

    for rnd in range(2):  # interleaved: this machine's speed drifts
        for threads in (1, 2):
            s = session(args.model, threads)
            feed = feed_for(s, args.tokens)
            for _ in range(WARM_UP):
                s.run(None, feed)
            p50 = timed(lambda f, s=s: s.run(None, f), feed, args.runs)["p50_ms"]
            print(f"round {rnd + 1}, {threads} thread(s): p50 {p50:.2f} ms")

    s = session(args.model, 2, profile=True)
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
    print(f"profiled, 2 threads: {total / args.runs:.0f} us of kernels per run (the profiler adds its own cost)")
    for op, us in busy.most_common(8):
        print(f"  {op:28s} {us / args.runs:7.0f} us  {nodes[op] // args.runs:3d} nodes  {100 * us / total:5.1f}%")


if __name__ == "__main__":
    main()
