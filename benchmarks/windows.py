"""Window size and overlap for long inputs: PII entity F1 and latency on long texts with known spans.

    python benchmarks/windows.py runs/local-data/bundle [--docs 40] [--rows-per-doc 25]

Long documents are built from the model's own PII *test* rows (re-read from its manifest, hash-checked):
``rows-per-doc`` rows joined by blank lines, gold spans shifted to their place. Each (window, overlap)
setting scores exact-span entity F1 over the documents (with its bootstrap interval) next to the F1 on the
same rows one by one, and the p50 time per document. A merge that lost or doubled spans at window edges
would show as an F1 below the per-row one; too little overlap shows the same way.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from routerforge.data.schema import Span
from routerforge.evaluation.evaluator import head_splits
from routerforge.evaluation.metrics import span_metrics
from routerforge.io import write_json
from routerforge.runtime.engine import Router, read_info

SETTINGS = ((64, 16), (128, 0), (128, 32), (128, 64), (256, 64), (512, 128))


def documents(rows, per_doc: int):
    docs = []
    for start in range(0, len(rows) - per_doc + 1, per_doc):
        text, spans = "", []
        for row in rows[start : start + per_doc]:
            offset = len(text)
            text += row.text + "\n\n"
            spans += [Span(s.entity_type, s.start + offset, s.end + offset) for s in row.spans]
        docs.append((text, spans))
    return docs


def spans_of(signals):
    return [Span(p.entity_type, p.start, p.end) for p in signals.pii]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a bundle or per-task PII model")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--rows-per-doc", type=int, default=25)
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    info = read_info(args.model)
    rows = head_splits(info, ["pii"], ("test",))["pii"]["test"]
    docs = documents(rows, args.rows_per_doc)
    gold = [spans for _, spans in docs]
    results = {"model": args.model, "rows": len(rows), "documents": len(docs), "settings": []}
    base = Router.load(args.model, args.backend)
    single = [spans_of(s) for s in base.classify_batch([r.text for r in rows])]
    results["per_row_f1"] = span_metrics([list(r.spans) for r in rows], single, n_boot=500)["micro_f1"]
    lengths = [len(base.tokenizer.encode(text, add_special_tokens=False).ids) for text, _ in docs]
    results["document_tokens"] = {"mean": float(np.mean(lengths)), "max": int(max(lengths))}
    for window, overlap in SETTINGS:
        router = Router.load(args.model, args.backend, window=window, overlap=overlap, max_windows=10_000)
        router.classify(docs[0][0])  # warm-up
        seconds, predicted, windows = [], [], []
        for text, _ in docs:
            started = time.perf_counter()
            signals = router.classify(text)
            seconds.append(time.perf_counter() - started)
            predicted.append(spans_of(signals))
            windows.append(signals.windows)
        f1 = span_metrics(gold, predicted, n_boot=500)["micro_f1"]
        results["settings"].append(
            {
                "window": window,
                "overlap": overlap,
                "entity_f1": f1,
                "windows_per_doc": float(np.mean(windows)),
                "p50_ms_per_doc": float(np.median(seconds) * 1000),
            }
        )
    table = Table(
        title=f"PII over {len(docs)} documents of {args.rows_per_doc} test rows "
        f"(~{results['document_tokens']['mean']:.0f} tokens); backend {base.backend_name}; "
        f"per-row F1 {results['per_row_f1']['value']:.4f}"
    )
    for column in ("window", "overlap", "entity F1 [95% CI]", "windows/doc", "p50 ms/doc"):
        table.add_column(column)
    for s in results["settings"]:
        f1 = s["entity_f1"]
        table.add_row(
            str(s["window"]),
            str(s["overlap"]),
            f"{f1['value']:.4f} [{f1['ci95'][0]:.4f}, {f1['ci95'][1]:.4f}]",
            f"{s['windows_per_doc']:.1f}",
            f"{s['p50_ms_per_doc']:.1f}",
        )
    Console().print(table)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.output, results)


if __name__ == "__main__":
    main()
