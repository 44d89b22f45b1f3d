"""Serving latency of two model directories side by side, interleaved in one run (a noisy machine moves both).

    python benchmarks/bundle_latency.py runs/local-data/bundle runs/local-data/bundle-selector \
        --backend onnx --rounds 5 --requests 200
    python benchmarks/bundle_latency.py runs/local-data/bundle@onnx runs/local-data/bundle@onnx-int8

A directory may name its backend after ``@`` (fp32 against int8 of one bundle).

Prompts: ``routerforge.bench.latency.default_prompts`` (30-token ``short`` prompts, one 10,000-character
``long`` text). Each round sends ``--requests`` short and ``--long`` long texts, each to both directories in turn
(alternating which goes first), so that the machine's drift moves both alike; p50/p99 are over all rounds. ONNX
Runtime runs one intra-op thread by default here: with more, the idle threads of one session spin while the other
runs, and both slow down (2 threads: ~11.5 ms against ~5.5 ms for a session alone). Used for the model-selector
head's extra cost (the 4-head bundle against the same bundle with the fifth head).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from routerforge.bench.latency import default_prompts
from routerforge.runtime.engine import Router


def _load(spec: str, args, scratch: Path) -> Router:
    model, _, backend = spec.partition("@")  # DIR or DIR@BACKEND
    if args.quantize is None:
        return Router.load(model, backend or args.backend, threads=args.threads)
    from routerforge.exporters.quantize import quantize_int8
    from routerforge.runtime.backends import OnnxBackend

    quantize_int8(Path(model) / "model.onnx", scratch, args.quantize)
    fp32 = Router.load(model, "onnx")
    return Router(fp32.path, fp32.info, OnnxBackend(scratch, args.threads, row_wise=True), f"unchecked {args.quantize}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs=2, help="DIR or DIR@BACKEND")
    parser.add_argument("--backend", default=None, help="onnx-int8 | onnx | torch (default: fastest present)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (module docstring)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="short prompts per directory per round")
    parser.add_argument("--long", type=int, default=3, help="10,000-character texts per directory per round")
    parser.add_argument(
        "--quantize",
        default=None,
        help="time an int8 graph made from each directory's model.onnx with this recipe (exporters.quantize), "
        "built in a temporary directory and never parity-checked: for latency only, where the gate refuses int8",
    )
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    routers = [_load(m, args, Path(scratch.name) / f"{i}.onnx") for i, m in enumerate(args.models)]
    prompts = default_prompts(routers[0].path)
    short, long = prompts["short"], prompts["long"][0]
    times: dict[str, dict[str, list[float]]] = {m: {"short": [], "long": []} for m in args.models}
    for router in routers:  # warm-up
        for text in short[:20]:
            router.classify(text)
    for r in range(args.rounds):  # request by request in turn, alternating which goes first: the machine drifts
        for i in range(args.requests + args.long):
            text = short[i % len(short)] if i < args.requests else long
            order = list(zip(args.models, routers))
            for name, router in order if (r + i) % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                router.classify(text)
                times[name]["short" if i < args.requests else "long"].append(time.perf_counter() - started)
    result = {
        name: {
            "heads": list(router.heads),
            "backend": router.backend_name,
            **{
                kind: {
                    "n": len(values),
                    "p50_ms": float(np.percentile(values, 50) * 1000),
                    "p99_ms": float(np.percentile(values, 99) * 1000),
                }
                for kind, values in times[name].items()
            },
        }
        for name, router in zip(args.models, routers)
    }
    a, b = (result[m]["short"]["p50_ms"] for m in args.models)
    result["short_p50_difference_ms"] = b - a
    print(json.dumps(result, indent=2))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
