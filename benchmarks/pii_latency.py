"""The PII path's cost, int8, one process, interleaved rounds: the token head alone (``recognizers=False``, what
was served before the recognizers and merge rules) against the full path, on ~30 tokens and 10,000 characters.

    python benchmarks/pii_latency.py MODEL
"""

import json
import statistics
import sys

from _pii import PROMPT_30, timed
from routerforge.runtime.engine import Router

model = sys.argv[1]
full = Router.load(model, "onnx-int8", threads=2)
bare = Router.load(model, "onnx-int8", threads=2, recognizers=False)
long = (PROMPT_30 + " ") * (10000 // (len(PROMPT_30) + 1))
long = long[:10000]
out = {"full": {"30": [], "10k": []}, "head": {"30": [], "10k": []}}
for _ in range(5):
    for name, r in (("head", bare), ("full", full)):
        out[name]["30"].append(timed(r.classify, PROMPT_30, 200)["p50_ms"])
        out[name]["10k"].append(timed(r.classify, long, 3)["p50_ms"])
summary = {n: {k: statistics.median(v) for k, v in d.items()} for n, d in out.items()}
summary["added_30_ms"] = summary["full"]["30"] - summary["head"]["30"]
summary["rounds"] = out
print(json.dumps(summary, indent=1))
