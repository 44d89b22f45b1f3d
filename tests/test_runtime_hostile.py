"""The runtime under hostile input with the current (robust) normalisation: any Unicode (controls, zero-width
and bidi marks, lone surrogates, the empty string, 200,000 characters) gives Signals whose PII spans index the input,
and obfuscated names are found and mapped back to the characters the user sent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_tiny_bundle
from routerforge.runtime.engine import Router
from routerforge.runtime.signals import Signals
from routerforge.text.normalise import CURRENT, identity, normalise

PII = ["PERSON", "EMAIL_ADDRESS"]
HOSTILE = list(
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u00ad"
    "\x00\x01\x0b\x0c\x1f\x7f\x85\ud800\udbff\udc00\udfff\t\n\r  ._-*"
    "аеорсхіΑΟΙο𝐈ﬁＡ⑽\ufdfa\u0301"
)
texts = st.text(
    alphabet=st.one_of(st.characters(exclude_categories=()), st.sampled_from(HOSTILE), st.sampled_from("john smith ")),
    max_size=120,
)


@pytest.fixture(scope="module")
def bundle(tiny_bert, tmp_path_factory):
    """A pii + jailbreak MultitaskModel over the tiny encoder with random heads, recorded with the current
    normalisation: the random token head tags spans here and there, which is what the offset checks need."""
    from routerforge.data.spans import bio_label_names

    heads = {
        "pii": ("token", PII, bio_label_names(PII)),
        "jailbreak": ("sequence", ["benign", "jailbreak"], ["benign", "jailbreak"]),
    }
    return make_tiny_bundle(
        tmp_path_factory.mktemp("hostile-bundle"), tiny_bert, heads, seed=1, info={"normalisation": CURRENT}
    )


@pytest.fixture(scope="module")
def router(bundle):
    return Router.load(bundle, "torch", window=16, overlap=4)


@pytest.fixture(scope="module")
def legacy(bundle):
    return Router.load(bundle, "torch", window=16, overlap=4, normalisation="identity")


def _check_signals(text: str, signals: Signals):
    assert isinstance(signals, Signals)
    assert signals.jailbreak is None or 0 <= signals.jailbreak.p_jailbreak <= 1
    for span in signals.pii:
        assert 0 <= span.start < span.end <= len(text), (span, len(text))
        assert span.text == text[span.start : span.end]


@settings(max_examples=300, deadline=None)
@given(texts)
def test_any_text_gives_signals_with_spans_inside_the_input(router, text):
    _check_signals(text, router.classify(text))


@settings(max_examples=200, deadline=None)
@given(texts)
def test_a_model_without_normalisation_survives_any_text_too(legacy, text):
    """Models trained before normalisation get the identity, which must not crash on a lone surrogate."""
    _check_signals(text, legacy.classify(text))


HOSTILE_BATCH = ["", "\u200b", "\ud800", "\x00" * 50, "\u202e" + "john smith" * 20, "j o h n  s m i t h " * 30]


def test_hostile_batch_and_empty_string(router):
    for text, s in zip(HOSTILE_BATCH, router.classify_batch(HOSTILE_BATCH)):
        _check_signals(text, s)


def test_hostile_batch_spans_index_the_input(name_router):
    """The deterministic tagger does find names in the batch, so the offset checks have spans to check."""
    signals = name_router.classify_batch(HOSTILE_BATCH)
    for text, s in zip(HOSTILE_BATCH, signals):
        _check_signals(text, s)
    assert signals[-2].pii and signals[-1].pii


def test_200k_characters(router):
    text = "".join(np.random.default_rng(0).choice(HOSTILE + list("john smith and friends "), 200_000))
    signals = router.classify(text)
    _check_signals(text, signals)
    assert signals.truncated and signals.windows == router.max_windows  # the window cap is reported


def test_normalisation_follows_the_model_and_can_be_overridden(bundle):
    assert Router.load(bundle, "torch").normalise is normalise
    assert Router.load(bundle, "torch", normalisation="identity").normalise is identity


# -- a deterministic tagger: obfuscated names are found and mapped back to what the user sent ------------------


class NameTagger:
    """Tags the tokens of "john smith" as PERSON (B- then I-) and everything else O."""

    def __init__(self, name_ids):
        self.name_ids = list(name_ids)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        is_name = np.isin(input_ids, self.name_ids) & (attention_mask == 1)
        previous = np.zeros_like(is_name)
        previous[:, 1:] = is_name[:, :-1]
        logits = np.full(input_ids.shape + (3,), -4.0, dtype=np.float32)
        np.put_along_axis(logits, np.where(is_name, np.where(previous, 2, 1), 0)[..., None], 6.0, axis=-1)
        return {"pii": logits}


@pytest.fixture(scope="module")
def name_router(tiny_bert):
    """A router whose PII head is the NameTagger over the tiny encoder's tokenizer."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tiny_bert / "tokenizer.json")).encode("john smith", add_special_tokens=False).ids
    info = {
        "task": "pii",
        "kind": "token",
        "labels": ["PERSON"],
        "label_names": ["O", "B-PERSON", "I-PERSON"],
        "normalisation": CURRENT,
    }
    return Router(tiny_bert, info, NameTagger(ids), "fake", window=12, overlap=4)


@pytest.mark.parametrize(
    "name",
    [
        "john smith",
        "j\u200bohn s\u00admith",
        "ｊｏｈｎ ｓｍｉｔｈ",
        "j o h n  s m i t h",
        "\u202ejohn smith\u202c",
        "јоhn smith",
    ],
)
def test_obfuscated_name_found_at_its_original_offsets(name_router, name):
    router = name_router
    text = f"please call {name} tomorrow"
    spans = router.classify(text).pii
    sent = name.strip("\u202e\u202c")  # the bidi marks around the name are not part of it
    assert [(s.start, s.end, s.text) for s in spans] == [(text.index(sent), text.index(sent) + len(sent), sent)]
