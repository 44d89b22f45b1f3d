"""What a user of the PII head needs to know, on one model as served: spans on short rows, in long documents and
false alarms on PII-free text (the cost of the PII path: ``pii_latency.py``, one session, interleaved).

    python benchmarks/pii_quality.py MODEL [--data-dir DATA_DIR] [--backend onnx-int8] [--out FILE]

1. **Test split** (the model's template-disjoint test rows, re-read from its manifest): exact and overlap span
   micro-F1 and F2 with document-bootstrap intervals, per type with counts.
2. **Long documents**: every test row as a needle at the start, middle or end of filler (Banking77 customer
   queries the model did not train on, joined) of 1,000, 4,000 and 10,000 characters; exact-span F1 over the
   documents (a span found in the filler counts against it), and the needle's F1 alone (spans found inside
   the needle: what the length costs), next to the F1 of the same rows alone.
3. **False alarms**: spans per 1,000 words on texts meant to be PII-free (those Banking77 queries and MMLU-Pro
   questions of math, physics, chemistry and engineering), with the flagged types and examples. Both counts
   are upper bounds: a word problem's "John" is a name, and a customer's "UK" or "France" is a GPE.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

from _pii import read_jsonl
from routerforge.bundle import head_data
from routerforge.data.pii_generator import negative_rows
from routerforge.data.schema import Span
from routerforge.evaluation.evaluator import head_splits
from routerforge.evaluation.metrics import span_metrics
from routerforge.io import write_json
from routerforge.runtime.engine import Router, read_info

LENGTHS = (1000, 4000, 10000)
POSITIONS = ("start", "middle", "end")
STEM = {"math", "physics", "chemistry", "engineering"}


def spans_of(signals) -> list[Span]:
    return [Span(p.entity_type, p.start, p.end) for p in signals.pii]


def summary(s: dict) -> dict:
    keep = ("micro_precision", "micro_recall", "micro_f1", "micro_f2")
    return {k: s[k] for k in keep} | {
        "n_docs": s["n_docs"],
        "n_gold": s["n_gold"],
        "per_type": {
            t["entity_type"]: {k: t[k] for k in ("f1", "precision", "recall", "support")} for t in s["per_type"]
        },
        "below_min_support": s["types_below_min_support"],
    }


def filler_stream(texts: list[str], seed: int):
    rng = random.Random(seed)
    while True:
        yield rng.choice(texts)


def document(needle, length: int, position: str, stream) -> tuple[str, list[Span], int]:
    """``needle``'s text inside filler sentences so the document is about ``length`` characters long; also where
    the needle starts."""
    room = max(length - len(needle.text) - 1, 0)
    before_len = {"start": 0, "middle": room // 2, "end": room}[position]
    before, after = [], []
    while sum(len(t) + 1 for t in before) < before_len:
        before.append(next(stream))
    while sum(len(t) + 1 for t in after) < room - before_len:
        after.append(next(stream))
    prefix = " ".join(before) + (" " if before else "")
    text = prefix + needle.text + (" " if after else "") + " ".join(after)
    return text, [Span(s.entity_type, s.start + len(prefix), s.end + len(prefix)) for s in needle.spans], len(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a bundle or a per-task PII model")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="the public data (DATA_DIR)")
    parser.add_argument("--backend", default=None, help="default: what serving would pick")
    parser.add_argument("--false-alarm-rows", type=int, default=1000, help="PII-free texts per source")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    info = read_info(args.model)
    test = head_splits(info, ["pii"], ("test",))["pii"]["test"]
    router = Router.load(args.model, args.backend)
    bare = Router.load(args.model, args.backend, recognizers=False)
    result: dict = {"model": str(args.model), "backend": router.backend_name, "test_rows": len(test)}

    gold = [list(e.spans) for e in test]
    single = [spans_of(s) for s in router.classify_batch([e.text for e in test])]
    result["test"] = {m: summary(span_metrics(gold, single, matching=m)) for m in ("exact", "overlap")}
    result["test"]["head_alone_exact"] = summary(
        span_metrics(gold, [spans_of(s) for s in bare.classify_batch([e.text for e in test])])
    )

    options = head_data(info, "pii")["manifest"]["load_options"]
    generate = options.get("generate") or {}
    trained_on = {  # PII-free training rows (generate.negatives): not filler, not false-alarm texts
        e.text for e in negative_rows(generate.get("negatives", []), generate.get("negative_rows", 0), options["seed"])
    }
    banking = [r["text"] for r in read_jsonl(args.data_dir / "intent/banking77.jsonl") if r["text"] not in trained_on]
    result["documents"] = {
        "filler": f"Banking77 queries the model did not train on ({len(banking)})",
        "per_row_f1": result["test"]["exact"]["micro_f1"],
    }
    for length in LENGTHS:
        for position in POSITIONS:
            stream = filler_stream(banking, seed=length)
            docs = [document(e, length, position, stream) for e in test]
            predicted = [spans_of(s) for s in router.classify_batch([text for text, _, _ in docs], batch_size=4)]
            f1 = span_metrics([g for _, g, _ in docs], predicted, n_boot=500)["micro_f1"]
            in_needle = [  # the needle's own spans as found in the document; filler false alarms are section 3's
                [Span(p.entity_type, p.start - at, p.end - at) for p in pred if at <= p.start < at + len(e.text)]
                for e, (_, _, at), pred in zip(test, docs, predicted)
            ]
            needle_f1 = span_metrics(gold, in_needle, n_boot=500)
            result["documents"][f"{length}_{position}"] = {
                "f1": f1,
                "needle_f1": needle_f1["micro_f1"],  # the needle's spans only: what length costs
                "mean_chars": sum(len(t) for t, _, _ in docs) / len(docs),
                "filler_spans": sum(
                    not any(p.start < g.end and g.start < p.end for g in gold_doc)
                    for (_, gold_doc, _), pred_doc in zip(docs, predicted)
                    for p in pred_doc
                ),
            }
            print(
                f"documents {length} {position}: F1 {f1['value']:.3f} {f1['ci95']}; needle alone "
                f"{needle_f1['micro_f1']['value']:.3f}",
                flush=True,
            )

    rng = random.Random(0)
    questions = [
        r["question"]
        for r in read_jsonl(args.data_dir / "mmlu_pro/questions.jsonl")
        if r.get("category") in STEM and r["question"] not in trained_on
    ]
    sources = {"banking77": banking, "mmlu_pro_stem": questions}
    result["false_alarms"] = {}
    for name, texts in sources.items():
        sample = rng.sample(texts, min(args.false_alarm_rows, len(texts)))
        flagged = [(t, s) for t, sig in zip(sample, router.classify_batch(sample)) for s in sig.pii]
        words = sum(len(t.split()) for t in sample)
        result["false_alarms"][name] = {
            "texts": len(sample),
            "words": words,
            "spans": len(flagged),
            "per_1000_words": 1000 * len(flagged) / words,
            "types": dict(Counter(s.entity_type for _, s in flagged).most_common()),
            "examples": [(s.entity_type, s.text, round(s.score, 3)) for _, s in flagged[:15]],
        }
        print(f"false alarms {name}: {1000 * len(flagged) / words:.2f} per 1,000 words", flush=True)

    if args.out:
        write_json(args.out, result)
    exact, overlap = result["test"]["exact"], result["test"]["overlap"]
    alone = result["test"]["head_alone_exact"]["micro_f1"]["value"]
    print(
        f"test ({len(test)} rows): exact F1 {exact['micro_f1']['value']:.3f} {exact['micro_f1']['ci95']} "
        f"F2 {exact['micro_f2']['value']:.3f}; overlap F1 {overlap['micro_f1']['value']:.3f} "
        f"F2 {overlap['micro_f2']['value']:.3f}; head alone {alone:.3f}"
    )
    for t, row in exact["per_type"].items():
        print(f"  {t:18} F1 {row['f1']:.3f} P {row['precision']:.3f} R {row['recall']:.3f} (n={row['support']})")


if __name__ == "__main__":
    main()
