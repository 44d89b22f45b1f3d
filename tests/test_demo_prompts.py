"""The demo bundle (``make demo``: runs/quickstart/bundle) gives the answers README.md and docs/ print.

Skipped until the demo has been built; the prompts and expected answers live in benchmarks/demo_prompts.py,
which also counts the benign prompts flagged as jailbreaks and the natural category questions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "runs" / "quickstart" / "bundle"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BUNDLE / "routerforge.json").is_file(), reason="run `make demo` first (no demo bundle)"),
]


demo = load_script(ROOT / "benchmarks" / "demo_prompts.py", "demo_prompts")


@pytest.fixture(scope="module")
def router():
    from routerforge.runtime.engine import Router

    return Router.load(BUNDLE)


@pytest.mark.parametrize("text", sorted(demo.DOC_EXAMPLES))
def test_doc_example_gives_the_documented_answer(router, text):
    assert demo.doc_example_failures(router.classify(text), demo.DOC_EXAMPLES[text]) == []


def test_doc_example_checker_can_fail(router):
    """The checker itself: an answer that contradicts the expectation is reported."""
    signals = router.classify("What is the integral of x^2?")
    wrong = {"category": "history" if signals.category.label != "history" else "law", "pii": [("PERSON", "Nobody")]}
    failures = demo.doc_example_failures(signals, wrong)
    assert len(failures) == 2 and "docs show" in failures[0] and "Nobody" in failures[1]
