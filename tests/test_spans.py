"""Character spans <-> BIO labels over a real fast tokenizer's offsets: round trip property and edge cases."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerforge.data.schema import Span
from routerforge.data.spans import IGNORE, bio_label_names, bio_labels, decode_spans

TYPES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER")
NAMES = bio_label_names(TYPES)
LABEL2ID = {name: i for i, name in enumerate(NAMES)}
ID2LABEL = {i: name for name, i in LABEL2ID.items()}


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    assert tok.is_fast
    return tok


def offsets_of(tokenizer, text: str) -> list[tuple[int, int]]:
    return [tuple(o) for o in tokenizer(text, return_offsets_mapping=True)["offset_mapping"]]


def round_trip(tokenizer, text: str, spans: list[Span]) -> list[dict]:
    offsets = offsets_of(tokenizer, text)
    labels = bio_labels(offsets, spans, LABEL2ID)
    assert len(labels) == len(offsets)
    return decode_spans(text, offsets, labels, [1.0] * len(labels), ID2LABEL)


WORD = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12),
    st.sampled_from(list(",.!?;:-@#$%&()'\"/")),
)


@st.composite
def texts_with_spans(draw):
    words = draw(st.lists(WORD, min_size=1, max_size=25))
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    text = " ".join(words)
    spans, i = [], 0
    while i < len(words):
        if draw(st.booleans()):
            length = draw(st.integers(1, min(4, len(words) - i)))
            entity = draw(st.sampled_from(TYPES))
            last = i + length - 1
            spans.append(Span(entity, starts[i], starts[last] + len(words[last])))
            i += length  # the next word may start another span right away (adjacent spans)
        else:
            i += 1
    return text, spans


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=texts_with_spans())
def test_round_trip_property(tokenizer, case):
    text, spans = case
    decoded = round_trip(tokenizer, text, spans)
    assert [(d["entity_type"], d["start"], d["end"]) for d in decoded] == [
        (s.entity_type, s.start, s.end) for s in spans
    ]
    for d in decoded:
        assert text[d["start"] : d["end"]] == d["text"]
        assert d["score"] == 1.0


def test_adjacent_spans_of_one_type_stay_separate(tokenizer):
    text = "call john smith 555 1234 now"
    spans = [Span("PERSON", 5, 9), Span("PERSON", 10, 15), Span("PHONE_NUMBER", 16, 19), Span("PHONE_NUMBER", 20, 24)]
    decoded = round_trip(tokenizer, text, spans)
    assert [(d["entity_type"], d["text"]) for d in decoded] == [
        ("PERSON", "john"),
        ("PERSON", "smith"),
        ("PHONE_NUMBER", "555"),
        ("PHONE_NUMBER", "1234"),
    ]


def test_spans_given_out_of_order(tokenizer):
    text = "mail jane at jane@example.com"
    spans = [Span("EMAIL_ADDRESS", 13, 29), Span("PERSON", 5, 9)]
    decoded = round_trip(tokenizer, text, spans)
    assert [(d["entity_type"], d["start"], d["end"]) for d in decoded] == [("PERSON", 5, 9), ("EMAIL_ADDRESS", 13, 29)]


def test_special_tokens_get_ignore(tokenizer):
    text = "call john"
    encoding = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    labels = bio_labels(offsets, [Span("PERSON", 5, 9)], LABEL2ID)
    special = encoding["special_tokens_mask"]
    assert special[0] == special[-1] == 1
    assert [label == IGNORE for label in labels] == [bool(s) for s in special]
    assert IGNORE not in [label for label, s in zip(labels, special) if not s]
    in_span = [label for (start, end), label in zip(offsets, labels) if start >= 5 and end > start]
    assert in_span == [LABEL2ID["B-PERSON"]] + [LABEL2ID["I-PERSON"]] * (len(in_span) - 1)


def test_padding_gets_ignore():
    assert bio_labels([(0, 0), (0, 4), (0, 0), (0, 0)], [Span("PERSON", 0, 4)], LABEL2ID) == [
        IGNORE,
        LABEL2ID["B-PERSON"],
        IGNORE,
        IGNORE,
    ]


def test_span_starting_mid_token():
    """A token overlapping a span belongs to it, so a span that starts inside a token widens to that token."""
    text = "hello world"
    offsets = [(0, 0), (0, 5), (6, 11), (0, 0)]
    labels = bio_labels(offsets, [Span("PERSON", 2, 8)], LABEL2ID)
    assert labels == [IGNORE, LABEL2ID["B-PERSON"], LABEL2ID["I-PERSON"], IGNORE]
    decoded = decode_spans(text, offsets, labels, [0.5, 0.8, 0.6, 0.1], ID2LABEL)
    assert decoded == [
        {"entity_type": "PERSON", "start": 0, "end": 11, "text": "hello world", "score": pytest.approx(0.7)}
    ]


def test_span_inside_one_token_with_real_tokenizer(tokenizer):
    text = "contact johnsmithx today"  # one word, several word pieces
    offsets = offsets_of(tokenizer, text)
    labels = bio_labels(offsets, [Span("PERSON", 12, 17)], LABEL2ID)  # "smith", not on a word boundary
    labelled = [o for o, label in zip(offsets, labels) if label not in (IGNORE, LABEL2ID["O"])]
    assert labelled and all(start < 17 and end > 12 for start, end in labelled)
    (decoded,) = decode_spans(text, offsets, labels, [1.0] * len(labels), ID2LABEL)
    assert decoded["start"] <= 12 and decoded["end"] >= 17
    assert decoded["text"] == text[decoded["start"] : decoded["end"]]


def test_decode_rules():
    text = "aa bb cc dd"
    offsets = [(0, 2), (3, 5), (6, 8), (9, 11)]
    o, b_p, i_p, i_e = (LABEL2ID[n] for n in ("O", "B-PERSON", "I-PERSON", "I-EMAIL_ADDRESS"))
    # an I- that does not continue a span of its type starts one
    assert [
        (d["entity_type"], d["text"]) for d in decode_spans(text, offsets, [o, i_p, i_e, i_e], [1] * 4, ID2LABEL)
    ] == [("PERSON", "bb"), ("EMAIL_ADDRESS", "cc dd")]
    # B- after B- of the same type: two spans
    assert [d["text"] for d in decode_spans(text, offsets, [b_p, b_p, i_p, o], [1] * 4, ID2LABEL)] == ["aa", "bb cc"]
    assert decode_spans(text, offsets, [o] * 4, [1] * 4, ID2LABEL) == []


def test_label_names():
    assert bio_label_names(["A", "B"]) == ["O", "B-A", "I-A", "B-B", "I-B"]
    assert bio_label_names([]) == ["O"]
