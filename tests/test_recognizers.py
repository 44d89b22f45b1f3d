"""Validated PII recognizers: each one's hits and misses, offsets after normalisation, the merge, config, engine."""

from __future__ import annotations

import pytest

from routerforge.errors import RouterforgeError
from routerforge.runtime.recognizers import RecognizerConfig, Recognizers, builtin_recognizers
from routerforge.runtime.signals import PiiSpan
from routerforge.text.normalise import normalise


def _spans(text: str, *found: tuple[str, str]) -> list[PiiSpan]:
    """Model spans (score 0.9), each ``(kind, value)`` over the first occurrence of ``value`` in ``text``."""
    return [PiiSpan(kind, text.index(v), text.index(v) + len(v), v, 0.9) for kind, v in found]


def found(name: str, text: str) -> list[tuple[str, str]]:
    return [(f.entity_type, text[f.start : f.end]) for f in builtin_recognizers()[name].find(text)]


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("email", "Please email jane.doe@example.com today.", "jane.doe@example.com"),
        ("phone", "Call John Smith at 555-123-4567 about it", "555-123-4567"),
        ("phone", "ring +41 (0)96 471 07 95 after six", "+41 (0)96 471 07 95"),
        ("phone", "UK office: 020 7946 0018.", "020 7946 0018"),
        ("phone", "or dial 0161.496.0000 today", "0161.496.0000"),  # dots, not a decimal
        ("phone", "dial 555 123 4567 x 2 for sales", "555 123 4567 x 2"),  # a one-digit extension
        ("phone", "Stockholm +46 8 123 456 78 now", "+46 8 123 456 78"),  # one digit after a + code
        ("credit_card", "card 4111 1111 1111 1111 expires soon", "4111 1111 1111 1111"),
        ("credit_card", "amex 378282246310005.", "378282246310005"),
        ("iban", "IBAN GB82 WEST 1234 5698 7654 32 and more", "GB82 WEST 1234 5698 7654 32"),
        ("iban", "to de89370400440532013000 please", "de89370400440532013000"),
        ("us_ssn", "my ssn is 853-37-1694.", "853-37-1694"),
        ("ip_address", "from 192.168.10.7, then", "192.168.10.7"),
        ("ip_address", "v6 2001:db8::8a2e:370:7334 here", "2001:db8::8a2e:370:7334"),
        ("url", "see https://www.example.com/a?b=1. Then", "https://www.example.com/a?b=1"),
        ("us_zip", "Springfield, IL 62704", "62704"),
        ("date", "born 1978-04-13 in", "1978-04-13"),
        ("date", "on March 3, 2024 we", "March 3, 2024"),
        ("date", "at 2015-08-14 03:45:27.164395 UTC", "2015-08-14 03:45:27.164395"),
    ],
)
def test_each_recognizer_finds_its_value(name, text, value):
    assert [v for _, v in found(name, text)] == [value]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("email", "write to jane..doe@example.com or @example.com"),
        ("phone", "the integral of x^2 from 1 to 12"),
        ("credit_card", "card 4111 1111 1111 1112 (Luhn fails)"),
        ("credit_card", "order 1234567812345670 (Luhn passes, no issuer)"),
        ("iban", "IBAN GB82 WEST 1234 5698 7654 33 (mod-97 fails)"),
        ("iban", "GB82 WEST 1234 5698 7654 (too short for GB)"),
        ("us_ssn", "ids 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000"),
        ("us_ssn", "mixed separators 123-45 6789"),
        ("ip_address", "version 1.2.3.456 and 10:30:00 and 256.1.1.1"),
        ("us_zip", "we sold 62704 units"),
        ("date", "on 2024-02-30 and 13/13/2020"),
        # a time's fraction of a second, a decimal, a short local digit run (each VALID in some region)
        ("phone", "at 2015-08-14 03:45:27.164395 and pi 3.1415926535 and 3449 96"),
        ("phone", "x is 0.9000000, or 6.9469 - .1999, or between 0.804 88.1"),  # decimals
        ("phone", "the sequence 2 3 4 5 6 7 8 9 10, and 02000 5"),  # lists of numbers
    ],
)
def test_each_recognizer_rejects_invalid_values(name, text):
    assert found(name, text) == []


def test_offsets_are_exact_on_the_original_after_normalisation():
    original = "Ｃａｌｌ ５５５-１２３-４５６７ or mail ja\u200bne.doe@example.com"
    norm = normalise(original)
    assert norm.text != original
    spans = Recognizers.from_config().apply(original, [], norm)
    assert [(s.entity_type, s.text) for s in spans] == [
        ("PHONE_NUMBER", "５５５-１２３-４５６７"),
        ("EMAIL_ADDRESS", "ja\u200bne.doe@example.com"),
    ]
    assert all(original[s.start : s.end] == s.text for s in spans)


def test_merge_validated_span_wins_over_model_fragments():
    text = "Contact jane.doe@example.com or Call John Smith at 555-123-4567"
    rec = Recognizers.from_config({"min_score": 0.0})
    e, p = text.index("jane"), text.index("555")
    model = [
        PiiSpan("PERSON", e, e + 4, "jane", 0.9),  # the demo bundle's split of an address
        PiiSpan("EMAIL_ADDRESS", e + 4, e + 20, text[e + 4 : e + 20], 0.8),
        PiiSpan("PERSON", text.index("John"), text.index("Smith") + 5, "John Smith", 0.9),
        PiiSpan("US_SSN", p, p + 7, "555-123", 0.6),
        PiiSpan("PHONE_NUMBER", p + 7, p + 12, "-4567", 0.6),
    ]
    out = [(s.entity_type, s.text) for s in rec.apply(text, model)]
    assert out == [
        ("EMAIL_ADDRESS", "jane.doe@example.com"),
        ("PERSON", "John Smith"),
        ("PHONE_NUMBER", "555-123-4567"),
    ]


def test_merge_free_text_span_keeps_its_whole_word_remainder_and_contains_weak_spans():
    text = "Ship to 1 Main St, Springfield, IL 62704 for Ann Lee 555-123-4567"
    rec = Recognizers.from_config({"min_score": 0.0})
    address = PiiSpan("STREET_ADDRESS", 8, text.index("62704") + 5, text[8 : text.index("62704") + 5], 0.8)
    person = PiiSpan(
        "PERSON", text.index("Ann"), text.index("555") + 3, text[text.index("Ann") : text.index("555") + 3], 0.7
    )
    out = [(s.entity_type, s.text) for s in rec.apply(text, [address, person])]
    # the ZIP (weak) yields to the address holding it; the phone (strong) cuts the name's tail off
    assert out == [
        ("STREET_ADDRESS", "1 Main St, Springfield, IL 62704"),
        ("PERSON", "Ann Lee"),
        ("PHONE_NUMBER", "555-123-4567"),
    ]


def test_min_score_and_whole_words_for_model_spans():
    text = "Dear Jonathan Smith, hello"
    rec = Recognizers.from_config({"min_score": 0.5})
    model = [
        PiiSpan("PERSON", 5, 8, "Jon", 0.9),
        PiiSpan("PERSON", 14, 19, "Smith", 0.08),
        PiiSpan("AGE", 19, 20, ",", 0.9),
    ]
    assert [(s.text, s.start, s.end) for s in rec.apply(text, model)] == [("Jonathan", 5, 13)]
    assert len(Recognizers.from_config({"min_score": 0.05}).apply(text, model)) == 2


def test_model_spans_of_validated_types_must_validate_and_names_need_two_letters():
    text = "Mass 5.14 g of e at 10.0.0.1 for Kim"
    rec = Recognizers.from_config({"enabled": [], "min_score": 0.0})  # the model's spans alone
    model = [
        PiiSpan("IP_ADDRESS", 5, 9, "5.14", 0.9),  # a number, not an address
        PiiSpan("ORGANIZATION", 15, 16, "e", 0.9),
        PiiSpan("IP_ADDRESS", 20, 28, "10.0.0.1", 0.9),
        PiiSpan("PERSON", 33, 36, "Kim", 0.9),
    ]
    assert [s.text for s in rec.apply(text, model)] == ["10.0.0.1", "Kim"]


def test_widened_model_spans_never_overlap():
    text = "JOHN0ITH and Ann"
    rec = Recognizers.from_config({"enabled": [], "min_score": 0.0})
    same = [PiiSpan("PERSON", 0, 4, "JOHN", 0.6), PiiSpan("PERSON", 5, 8, "ITH", 0.9)]
    assert [(s.text, s.score) for s in rec.apply(text, same)] == [("JOHN0ITH", 0.9)]
    two = [PiiSpan("PERSON", 0, 4, "JOHN", 0.6), PiiSpan("ORGANIZATION", 5, 8, "ITH", 0.9)]
    assert [(s.entity_type, s.text) for s in rec.apply(text, two)] == [("ORGANIZATION", "JOHN0ITH")]


def test_only_an_address_runs_over_line_breaks():
    """The uncased encoder does not see a line break, so it carries a name on into the next line's place; a name,
    place or company span is cut at its line breaks (a multi-line address stays one span)."""
    text = "Maha Cazares\n\nChiclana de la Frontera\nPSC 3294, Box 9168\nAPO AA 61487"
    rec = Recognizers.from_config({"enabled": [], "min_score": 0.0})
    model = _spans(
        text, ("PERSON", "Maha Cazares\n\nChiclana de"), ("STREET_ADDRESS", "PSC 3294, Box 9168\nAPO AA 61487")
    )
    assert [(s.entity_type, s.text) for s in rec.apply(text, model)] == [
        ("PERSON", "Maha Cazares"),
        ("PERSON", "Chiclana de"),
        ("STREET_ADDRESS", "PSC 3294, Box 9168\nAPO AA 61487"),
    ]
    assert all(text[s.start : s.end] == s.text for s in rec.apply(text, model))
    # any line break; a comma ending a line is not part of the name; a line too short to stand as a name ("J."
    # of "Smith,\nJ.") keeps the span whole, so a cut never uncovers what the span covered
    for text, want in (
        ("Maha Cazares,\r\nChiclana", ["Maha Cazares", "Chiclana"]),
        ("Maha Cazares\u2028Chiclana", ["Maha Cazares", "Chiclana"]),
        ("Smith,\nJ.", ["Smith,\nJ."]),
        ("Ann\nB", ["Ann\nB"]),
    ):
        got = rec.apply(text, [PiiSpan("PERSON", 0, len(text), text, 0.9)])
        assert [s.text for s in got] == want and all(text[s.start : s.end] == s.text for s in got)


def test_config_enable_disable_and_an_ad_hoc_recognizer():
    text = "mail jane@example.com, ticket TCK-123456 and tck-000001"
    custom = {"name": "ticket", "entity_type": "TICKET_ID", "pattern": r"\bTCK-\d{6}\b", "score": 0.7}
    rec = Recognizers.from_config({"disabled": ["email"], "custom": [custom]})
    assert "email" not in rec.names and "ticket" in rec.names
    assert [(s.entity_type, s.text, s.score) for s in rec.apply(text, [])] == [("TICKET_ID", "TCK-123456", 0.7)]
    only = Recognizers.from_config({"enabled": ["email"], "custom": [custom | {"ignore_case": True}]})
    assert [s.text for s in only.apply(text, [])] == ["jane@example.com", "TCK-123456", "tck-000001"]
    luhn = {"name": "account", "entity_type": "ACCOUNT", "pattern": r"\b\d{8}\b", "validator": "luhn"}
    checked = Recognizers.from_config({"enabled": [], "custom": [luhn]})
    assert [s.text for s in checked.apply("acct 12345674 or 12345678", [])] == ["12345674"]
    assert Recognizers.from_config({"enabled": []}).apply(text, []) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"enabled": ["emails"]},
        {"custom": [{"name": "x", "entity_type": "X", "pattern": "("}]},
        {"custom": [{"name": "x", "entity_type": "X", "pattern": "a", "validator": "crc"}]},
        {"min_score": 2},
        {"typo": True},
        {"phone_regions": ["XX"]},
        {"phone_regions": []},
    ],
)
def test_bad_config_is_one_clear_error(bad):
    with pytest.raises((RouterforgeError, ValueError)):
        Recognizers.for_model(bad)


def test_phone_regions_choose_where_a_local_number_must_be_valid():
    text = "US desk 201-555-0123, Paris 01 42 68 53 00, fictional 555-123-4567, intl +44 20 7946 0018"
    every = [s.text for s in Recognizers.from_config({"enabled": ["phone"]}).apply(text, [])]
    assert every == ["201-555-0123", "01 42 68 53 00", "555-123-4567", "+44 20 7946 0018"]
    us = Recognizers.from_config({"enabled": ["phone"], "phone_regions": ["us"]})
    assert [s.text for s in us.apply(text, [])] == ["201-555-0123", "+44 20 7946 0018"]  # a + number: any region
    canada = Recognizers.from_config({"enabled": ["phone"], "phone_regions": ["CA", "ca"]})  # +1: one plan
    assert [s.text for s in canada.apply(text, [])] == ["201-555-0123", "+44 20 7946 0018"]
    assert canada.recognizers[0].regions == ("CA",)
    france = Recognizers.for_model({"enabled": ["phone"]}, RecognizerConfig(phone_regions=["FR"]))
    assert [s.text for s in france.apply(text, [])] == ["01 42 68 53 00", "+44 20 7946 0018"]


def test_router_config_fields_replace_the_bundle_ones():
    bundle = {"disabled": ["phone"], "min_score": 0.2}
    rec = Recognizers.for_model(bundle, RecognizerConfig(min_score=0.6), min_score=0.4)
    assert "phone" not in rec.names and rec.min_score == 0.6
    assert Recognizers.for_model({}, None, min_score=0.4).min_score == 0.4


def test_engine_applies_recognizers_per_bundle_and_per_router(tiny_bundle):
    from routerforge.bundle import read_info
    from routerforge.runtime.engine import Router

    text = "Please email jane.doe@example.com or call 555-123-4567"
    only_rules = {"min_score": 1.0}  # no random-head span reaches 1.0: what is left is the recognizers'
    router = Router.load(tiny_bundle, "torch", recognizers=only_rules)
    assert [(p.entity_type, p.text) for p in router.classify(text).pii] == [
        ("EMAIL_ADDRESS", "jane.doe@example.com"),
        ("PHONE_NUMBER", "555-123-4567"),
    ]
    info = read_info(tiny_bundle) | {"pii_recognizers": {"disabled": ["email"]}, "pii_min_score": 1.0}
    from_bundle = Router.load(tiny_bundle, "torch", info=info)
    assert [p.entity_type for p in from_bundle.classify(text).pii] == ["PHONE_NUMBER"]
    overridden = Router.load(tiny_bundle, "torch", info=info, recognizers={"disabled": []})
    assert [p.entity_type for p in overridden.classify(text).pii] == ["EMAIL_ADDRESS", "PHONE_NUMBER"]
    raw = Router.load(tiny_bundle, "torch", recognizers=False)
    assert raw.recognizers is None
    assert all(text[p.start : p.end] == p.text for p in raw.classify(text).pii)


def test_router_config_carries_recognizers():
    from routerforge.serving.config import PiiConfig

    config = PiiConfig.model_validate({"recognizers": {"disabled": ["date"], "min_score": 0.4}})
    assert config.recognizers.disabled == ["date"] and config.recognizers.min_score == 0.4
    assert PiiConfig().recognizers is None  # the bundle's settings apply
    with pytest.raises(ValueError):
        PiiConfig.model_validate({"recognizers": {"enabled": "email"}})


def test_an_address_over_several_lines_is_one_span_and_one_line_keeps_its_parts():
    text = "Send it to 018 74 Diakou Street\n Suite 692\n Kissousa\n Cyprus 91815 or 12 Main Street, Boston"
    rec = Recognizers.from_config({"enabled": [], "min_score": 0.0})

    model = _spans(
        text,
        ("STREET_ADDRESS", "018 74 Diakou Street\n Suite 692"),
        ("GPE", "Kissousa"),
        ("STREET_ADDRESS", "Cyprus 91815"),
        ("STREET_ADDRESS", "12 Main Street"),
        ("GPE", "Boston"),
    )
    assert [(s.entity_type, s.text) for s in rec.apply(text, model)] == [
        ("STREET_ADDRESS", "018 74 Diakou Street\n Suite 692\n Kissousa\n Cyprus 91815"),
        ("STREET_ADDRESS", "12 Main Street"),
        ("GPE", "Boston"),
    ]


def test_model_spans_lose_the_function_words_at_their_edges():
    text = "Stop at the corner of Rua das Pedras 930. and at Cyprus (Greek) near the Hague; main street 12"
    rec = Recognizers.from_config({"enabled": [], "min_score": 0.0})

    model = _spans(
        text,
        ("STREET_ADDRESS", "the corner of Rua das Pedras 930. and"),
        ("GPE", "Cyprus (Greek)"),
        ("GPE", "the Hague"),
        ("STREET_ADDRESS", "main street 12"),  # typed in lower case: nothing says where it starts
    )
    kept = ["Rua das Pedras 930.", "Cyprus (Greek)", "Hague", "main street 12"]
    assert [s.text for s in rec.apply(text, model)] == kept
    # a span of lower-case function words alone is no name ("the" of "I live in the US"); "An" may be one
    text = "I live in the US and An lives in The Hague"
    model = _spans(text, ("GPE", "the"), ("GPE", "US"), ("ORGANIZATION", "and"), ("PERSON", "An"), ("GPE", "Hague"))
    assert [s.text for s in rec.apply(text, model)] == ["US", "An", "Hague"]
