"""The PII path's cost, int8, one process and one ONNX Runtime session, interleaved rounds: the token head alone
(``recognizers=False``: no recognizers, no merge rules) against the full path, on ~30 tokens and 10,000 characters.

    python benchmarks/pii_latency.py MODEL [--phone-regions US ...] [--text "..."]

``--phone-regions`` adds a third arm, the full path with the phone recognizer limited to those regions
(``pii.recognizers.phone_regions``); ``--text`` replaces the README's prompt (its 555 number is VALID in none of
the US ranges, so the default regions try seven before one accepts it).
"""

import argparse
import json
import statistics

from _pii import PROMPT_30, timed
from routerforge.runtime.engine import Router

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("model")
parser.add_argument("--phone-regions", nargs="+", default=None)
parser.add_argument("--text", default=PROMPT_30)
args = parser.parse_args()
router = Router.load(args.model, "onnx-int8", threads=2)
# one ONNX Runtime session for every arm (two sessions' thread pools on two cores disturb each other): the arms
# differ only in the Router's post-processing, swapped in between rounds
arms = {"head": None, "full": router.recognizers}
if args.phone_regions:
    regions = {"phone_regions": args.phone_regions}
    arms["full_regions"] = Router.load(args.model, "onnx-int8", threads=1, recognizers=regions).recognizers
long = ((args.text + " ") * (10000 // (len(args.text) + 1) + 1))[:10000]
out: dict = {name: {"30": [], "10k": []} for name in arms}
for _ in range(5):
    for name, recognizers in arms.items():
        router.recognizers = recognizers
        out[name]["30"].append(timed(router.classify, args.text, 200)["p50_ms"])
        out[name]["10k"].append(timed(router.classify, long, 3)["p50_ms"])
# the post-processing alone (recognizers + merge on the head's spans), timed apart from the model: what the full
# path adds, without ONNX Runtime's run-to-run spread of a millisecond or more on a shared 2-core machine
router.recognizers = None
inputs = {
    size: (text, router.normalise(text), router.classify(text).pii) for size, text in (("30", args.text), ("10k", long))
}
post: dict = {name: {"30": [], "10k": []} for name in arms if name != "head"}
for _ in range(5):
    for name in post:
        for size, (text, norm, spans) in inputs.items():
            apply = arms[name].apply
            reps = 500 if size == "30" else 20
            post[name][size].append(timed(lambda t, a=apply, s=spans, n=norm: a(t, s, n), text, reps)["p50_ms"])
summary: dict = {n: {k: statistics.median(v) for k, v in d.items()} for n, d in out.items()}
summary["post_processing_ms"] = {n: {k: statistics.median(v) for k, v in d.items()} for n, d in post.items()}
summary["added_30_ms"] = summary["full"]["30"] - summary["head"]["30"]
if args.phone_regions:
    summary["phone_regions"] = args.phone_regions
    summary["added_30_ms_regions"] = summary["full_regions"]["30"] - summary["head"]["30"]
summary |= {"text": args.text, "rounds": out}
print(json.dumps(summary, indent=1))
