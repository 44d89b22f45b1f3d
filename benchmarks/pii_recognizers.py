"""The validated PII recognizers on their own: precision/recall per type, and their cost per request.

    python benchmarks/pii_recognizers.py [--data ../shared/data/presidio_pii/synth_dataset_v2.jsonl]
        [--model runs/pii/model] [--out benchmarks/results/pii_recognizers.json]

1. Quality: every recognizer on every Presidio row; exact-span P/R/F1 per recognizer type (gold restricted to
   the types the recognizers report, so a PERSON the recognizers never claim is not a miss) with the project's
   ``span_metrics`` (document bootstrap), and overlap recall (a gold span touched by a same-type prediction).
2. Cost: p50/p99 of ``Recognizers.apply`` (scan + merge, no model spans) on a ~30-token prompt and on 10,000
   characters of joined Presidio rows, all recognizers and each one alone.
3. With ``--model`` (a PII model trained on the same file): on its template-disjoint test split (re-read from
   its manifest), the learned head alone vs head + recognizers (+ min span score), exact-span F1 per type
   with intervals, through the runtime that serves, at the model's ``pii_min_score`` (chosen on validation by
   training, or by ``routerforge calibrate DIR`` for a model trained before it did).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _pii import PROMPT_30, read_jsonl, timed
from routerforge.bundle import pii_min_score, pii_recognizers, read_info
from routerforge.data.schema import Span
from routerforge.evaluation.evaluator import head_splits
from routerforge.evaluation.metrics import span_metrics
from routerforge.io import write_json
from routerforge.runtime.engine import Router
from routerforge.runtime.recognizers import Recognizers

DATA = Path(__file__).resolve().parents[2] / "shared/data/presidio_pii/synth_dataset_v2.jsonl"
EXAMPLES = (
    "Call John Smith at 555-123-4567 about the integral of x^2",
    "Please email jane.doe@example.com with the quarterly figures",
)


def recognizer_types(rec: Recognizers) -> set[str]:
    return {r.entity_type for r in rec.recognizers}


def quality(rows: list[dict], rec: Recognizers) -> dict:
    types = recognizer_types(rec)
    gold = [
        [Span(s["entity_type"], s["start"], s["end"]) for s in r["spans"] if s["entity_type"] in types] for r in rows
    ]
    pred = [[Span(s.entity_type, s.start, s.end) for s in rec.apply(r["text"], [])] for r in rows]
    exact = span_metrics(gold, pred, min_support=1)
    overlap = {}
    for t in sorted(types):
        g = [(d, s) for d, doc in enumerate(gold) for s in doc if s.entity_type == t]
        hit = sum(any(p.entity_type == t and p.start < s.end and s.start < p.end for p in pred[d]) for d, s in g)
        overlap[t] = {"support": len(g), "overlap_recall": hit / len(g) if g else None}
    return {"exact": exact, "overlap": overlap}


def cost(rows: list[dict], rec: Recognizers, reps: int) -> dict:
    long_text = ""
    for r in rows:
        if len(long_text) >= 10_000:
            break
        long_text += r["text"] + "\n\n"
    long_text = long_text[:10_000]
    out = {"prompt_30_tokens_chars": len(PROMPT_30), "long_chars": len(long_text), "all": {}, "each": {}}
    for name, text, n in (("30_tokens", PROMPT_30, reps), ("10k_chars", long_text, max(reps // 10, 20))):
        out["all"][name] = timed(lambda t: rec.apply(t, []), text, n)
        for r in rec.recognizers:
            one = Recognizers([r], rec.min_score)
            out["each"].setdefault(r.name, {})[name] = timed(lambda t, one=one: one.apply(t, []), text, n)
    return out


def spans_f1(s: dict) -> dict:
    return {
        "micro_f1": s["micro_f1"],
        "micro_precision": s["micro_precision"]["value"],
        "micro_recall": s["micro_recall"]["value"],
        "n_gold": s["n_gold"],
        "per_type": {
            t["entity_type"]: {k: t[k] for k in ("f1", "precision", "recall", "support", "fp", "fn")}
            for t in s["per_type"]
        },
        "below_min_support": s["types_below_min_support"],
    }


def post_processed(router: Router, examples, rec: Recognizers | None) -> list[list[Span]]:
    """Each example's spans: the token head's as decoded (``rec`` None), or after ``rec`` (what
    ``Router.classify`` does when loaded with those settings; one model pass serves every variant)."""
    raw = [s.pii for s in router.classify_batch([e.text for e in examples])]
    out = []
    for e, spans in zip(examples, raw):
        final = spans if rec is None else rec.apply(e.text, spans, router.normalise(e.text))
        out.append([Span(p.entity_type, p.start, p.end) for p in final])
    return out


def with_model(model: Path) -> dict:
    info = read_info(model)
    test = head_splits(info, ["pii"], ("test",))["pii"]["test"]
    gold = [list(e.spans) for e in test]
    raw_router = Router.load(model, "torch", recognizers=False)
    floor = pii_min_score(info)
    variants = {
        "head_alone": None,
        "head_words_min_score": Recognizers.for_model({"enabled": []}, min_score=floor),
        "head_recognizers_no_min_score": Recognizers.for_model({"min_score": 0.0}),
        "head_recognizers_min_score": Recognizers.for_model(pii_recognizers(info), min_score=floor),
    }
    out: dict = {"test_rows": len(test), "pii_min_score": floor}
    for name, rec in variants.items():
        out[name] = spans_f1(span_metrics(gold, post_processed(raw_router, test, rec)))
    served = {"head_alone": raw_router, "head_recognizers_min_score": Router.load(model, "torch")}
    for name, router in served.items():
        out[name]["examples"] = [
            [(p.entity_type, p.text, round(p.score, 3)) for p in router.classify(t).pii] for t in EXAMPLES
        ]
        out[name]["classify_p50_ms_30_tokens"] = timed(lambda t, r=router: r.classify(t), PROMPT_30, 100)["p50_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pii_recognizers.json"))
    args = parser.parse_args()
    rows = read_jsonl(args.data)
    rec = Recognizers.from_config()
    result: dict = {"data": str(args.data), "rows": len(rows), "recognizers": rec.names}
    result["quality"] = quality(rows, rec)
    result["cost"] = cost(rows, rec, args.reps)
    if args.model:
        result["model"] = with_model(args.model)
    write_json(args.out, result)
    q = result["quality"]["exact"]
    print(
        f"recognizers alone, {len(rows)} rows: micro P {q['micro_precision']['value']:.3f} "
        f"R {q['micro_recall']['value']:.3f} F1 {q['micro_f1']['value']:.3f} {q['micro_f1']['ci95']}"
    )
    for t in q["per_type"]:
        ov = result["quality"]["overlap"][t["entity_type"]]["overlap_recall"]
        print(
            f"  {t['entity_type']:14} P {t['precision']:.3f} R {t['recall']:.3f} F1 {t['f1']:.3f} "
            f"n={t['support']} fp={t['fp']} overlap-R {ov:.3f}"
        )
    c = result["cost"]["all"]
    print(f"cost p50: 30 tokens {c['30_tokens']['p50_ms']:.3f} ms, 10k chars {c['10k_chars']['p50_ms']:.2f} ms")
    for name, each in result["cost"]["each"].items():
        print(
            f"  {name:12} 30 tokens {each['30_tokens']['p50_ms']:.3f} ms, "
            f"10k chars {each['10k_chars']['p50_ms']:.2f} ms"
        )
    if "model" in result:
        for name, v in result["model"].items():
            if isinstance(v, dict):
                print(f"{name}: F1 {v['micro_f1']} p50 {v.get('classify_p50_ms_30_tokens')} ms")
                for t, row in v["per_type"].items():
                    print(f"    {t:18} F1 {row['f1']:.3f} (n={row['support']})")
                print("   examples:", v.get("examples"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
