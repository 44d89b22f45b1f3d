"""Presidio's analyzer side by side with a routerforge PII model, on the same rows.

    python benchmarks/pii_peer.py MODEL [--spacy-model en_core_web_sm] [--backend onnx-int8] [--out FILE]

The rows are MODEL's template-disjoint PII test split (re-read from its manifest). Both systems are scored
with the project's ``span_metrics``: exact and overlap micro-F1 and F2 with document-bootstrap intervals, per
type, and milliseconds per row (one row at a time, after a warm-up). Presidio's entity names are mapped to
the data's (LOCATION -> GPE, URL -> DOMAIN_NAME); types the data does not label are dropped from its output.

Presidio needs a spaCy pipeline for its NER recognizers (PERSON, LOCATION, NRP, DATE_TIME, ORGANIZATION).
``--spacy-model`` names one (``en_core_web_sm`` installs from spaCy's releases, not from PyPI); without it,
a blank English pipeline is used and Presidio runs its pattern and checksum recognizers only, which the
output says. Needs ``pip install 'routerforge[pii-data]'`` (presidio-analyzer comes with presidio-evaluator).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from routerforge.bundle import head_data
from routerforge.data.schema import Span
from routerforge.evaluation.evaluator import head_splits
from routerforge.evaluation.metrics import span_metrics
from routerforge.io import write_json
from routerforge.runtime.engine import Router, read_info

PRESIDIO_TO_DATA = {"LOCATION": "GPE", "URL": "DOMAIN_NAME"}


def presidio_analyzer(spacy_model: str | None):
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    name = spacy_model
    if name is None:
        name = str(Path(tempfile.mkdtemp()) / "blank_en")
        spacy.blank("en").to_disk(name)
    conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": name}]}
    engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
    return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def timed_predictions(fn, texts: list[str]) -> tuple[list, float]:
    fn(texts[0])
    started = time.perf_counter()
    out = [fn(t) for t in texts]
    return out, 1000 * (time.perf_counter() - started) / len(texts)


def scores(gold, predicted, ms_per_row: float) -> dict:
    out: dict = {"ms_per_row": ms_per_row}
    for matching in ("exact", "overlap"):
        s = span_metrics(gold, predicted, matching=matching)
        out[matching] = {k: s[k] for k in ("micro_precision", "micro_recall", "micro_f1", "micro_f2")} | {
            "per_type": {t["entity_type"]: round(t["f1"], 4) for t in s["per_type"]}
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--spacy-model", default=None, help="spaCy pipeline for Presidio's NER (default: blank)")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    info = read_info(args.model)
    test = head_splits(info, ["pii"], ("test",))["pii"]["test"]
    texts, gold = [e.text for e in test], [list(e.spans) for e in test]
    labels = set(head_data(info, "pii")["manifest"]["labels"])  # the entity types the data labels

    router = Router.load(args.model, args.backend)
    ours, ours_ms = timed_predictions(
        lambda t: [Span(p.entity_type, p.start, p.end) for p in router.classify(t).pii], texts
    )

    analyzer = presidio_analyzer(args.spacy_model)

    def presidio(text: str) -> list[Span]:
        found = [
            Span(PRESIDIO_TO_DATA.get(r.entity_type, r.entity_type), r.start, r.end)
            for r in analyzer.analyze(text, language="en")
        ]
        return [s for s in found if s.entity_type in labels]

    theirs, theirs_ms = timed_predictions(presidio, texts)
    result = {
        "rows": len(test),
        "routerforge": {"model": str(args.model), "backend": router.backend_name} | scores(gold, ours, ours_ms),
        "presidio": {"spacy_model": args.spacy_model or "blank (pattern recognizers only)"}
        | scores(gold, theirs, theirs_ms),
    }
    if args.out:
        write_json(args.out, result)
    for name in ("routerforge", "presidio"):
        r = result[name]
        print(
            f"{name:11} exact F1 {r['exact']['micro_f1']['value']:.3f} {r['exact']['micro_f1']['ci95']} "
            f"F2 {r['exact']['micro_f2']['value']:.3f} | overlap F1 {r['overlap']['micro_f1']['value']:.3f} "
            f"F2 {r['overlap']['micro_f2']['value']:.3f} | {r['ms_per_row']:.2f} ms/row"
        )
        print("   per type (exact F1):", r["exact"]["per_type"])


if __name__ == "__main__":
    main()
