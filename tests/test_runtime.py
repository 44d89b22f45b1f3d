"""The runtime without training: window planning and merging, exact PII offsets through a fake backend, one
encoder pass for every head, Viterbi against brute force, temperature scaling and the FPR threshold."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routerforge.errors import RouterforgeError
from routerforge.evaluation.calibration import calibration_summary, detection_counts, fit_temperature, threshold_at_fpr
from routerforge.runtime.engine import Router, softmax, viterbi
from routerforge.runtime.windows import Window, merge_token_rows, plan_windows

# -- plan_windows -----------------------------------------------------------------------------------------------


def test_plan_windows_zero_tokens_is_one_empty_window():
    windows, truncated = plan_windows(0, 10, 4, 8)
    assert windows == [Window(0, 0, 0, 0)] and truncated is False


def _check_plan(n, size, overlap, windows):
    assert windows and windows[0].start == 0 and windows[0].own_start == 0
    assert windows[-1].own_end == windows[-1].end == n
    for a, b in zip(windows, windows[1:]):
        assert a.own_end == b.own_start  # owned ranges are contiguous, no gap, no double ownership
        assert b.start - a.start == size - overlap
    for w in windows:
        assert 0 <= w.start <= w.own_start <= w.own_end <= w.end <= n  # a window owns only what it reads
        assert w.end - w.start <= size
        if n:
            assert w.own_end > w.own_start  # no window is read for nothing
    owner = np.zeros(n, dtype=int)
    for w in windows:
        owner[w.own_start : w.own_end] += 1
    assert (owner == 1).all()  # every token is owned by exactly one window


def test_plan_windows_every_token_owned_exactly_once():
    for n in range(0, 45):
        for size in range(1, 11):
            for overlap in range(0, size):
                windows, truncated = plan_windows(n, size, overlap, 1000)
                assert truncated is False
                _check_plan(n, size, overlap, windows)
                if 0 < n <= size:
                    assert len(windows) == 1
                # the owned boundary leaves at least overlap // 2 tokens of context on the left
                for w in windows[1:]:
                    assert w.own_start - w.start >= overlap // 2


def test_plan_windows_cap_truncates():
    full, truncated = plan_windows(100, 10, 4, 1000)
    assert truncated is False and len(full) > 3
    capped, truncated = plan_windows(100, 10, 4, 3)
    assert truncated is True and len(capped) == 3
    assert capped[:2] == full[:2] and capped[-1].own_end == capped[-1].end < 100
    exact, truncated = plan_windows(100, 10, 4, len(full))
    assert truncated is False and exact == full


@pytest.mark.parametrize(("size", "overlap", "max_windows"), [(0, 0, 1), (5, 5, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0)])
def test_plan_windows_bad_settings_raise(size, overlap, max_windows):
    with pytest.raises(RouterforgeError, match="bad window settings"):
        plan_windows(10, size, overlap, max_windows)


def test_merge_token_rows_takes_owned_rows():
    windows, _ = plan_windows(23, 10, 4, 100)
    rows = [np.arange(w.start, w.end) for w in windows]  # each window "predicts" the token index
    assert merge_token_rows(windows, rows).tolist() == list(range(23))


# -- a deterministic fake backend: names tagged by token id, B/I by the previous token in the same window -----

PII_INFO = {"task": "pii", "kind": "token", "labels": ["PERSON"], "label_names": ["O", "B-PERSON", "I-PERSON"]}
NAME = "johnny smith"  # four tokens of the tiny vocabulary: john ##n ##y smith


class FakeNameTagger:
    """``(input_ids, attention_mask) -> {"pii": logits}``: a token whose id is one of the name's ids is PERSON,
    B- when the token before it *in this window* is not, I- when it is. A window that starts inside a name so
    tags it wrongly (B- mid-name), which is what the owned ranges must hide."""

    def __init__(self, name_ids):
        self.name_ids, self.calls = set(name_ids), 0

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        is_name = np.isin(input_ids, list(self.name_ids)) & (attention_mask == 1)
        previous = np.zeros_like(is_name)
        previous[:, 1:] = is_name[:, :-1]
        tags = np.where(is_name, np.where(previous, 2, 1), 0)
        logits = np.full(input_ids.shape + (3,), -4.0, dtype=np.float32)
        np.put_along_axis(logits, tags[..., None], 6.0, axis=-1)
        return {"pii": logits}


def _fake_router(path, window=12, overlap=4, max_windows=64):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    name_ids = tokenizer.encode(NAME, add_special_tokens=False).ids
    backend = FakeNameTagger(name_ids)
    return (
        Router(path, PII_INFO, backend, "fake", window=window, overlap=overlap, max_windows=max_windows),
        tokenizer,
        set(name_ids),
    )


@pytest.fixture(scope="module")
def fake(tiny_bert):
    return _fake_router(tiny_bert)


def _filler(tokenizer, name_ids, n_tokens):
    """Words none of whose tokens is a name token, ``n_tokens`` tokens long."""
    words = [
        w
        for w in (
            "the quick brown fox over lazy dog what is derivative of x squared meeting tomorrow "
            "at noon convert this file to email my manager"
        ).split()
        if not set(tokenizer.encode(w, add_special_tokens=False).ids) & name_ids
    ]
    out, count = [], 0
    for word in itertools.cycle(words):
        k = len(tokenizer.encode(word, add_special_tokens=False).ids)
        if count + k > n_tokens:
            break
        out.append(word)
        count += k
    return " ".join(out), count


def test_fake_router_finds_a_name_across_a_window_boundary_exactly_once(fake):
    router, tokenizer, name_ids = fake
    assert router.content == 10 and router.overlap == 4  # windows of 10 text tokens, step 6
    n_name = len(tokenizer.encode(NAME, add_special_tokens=False).ids)
    assert n_name >= 3
    windows, _ = plan_windows(200, router.content, router.overlap, 1000)
    checked = 0
    for lead in range(0, 16):  # slide the name over several window starts and owned boundaries
        before, k = _filler(tokenizer, name_ids, lead)
        after, _ = _filler(tokenizer, name_ids, 14)
        text = f"{before} {NAME.title()} {after}".strip() if before else f"{NAME.title()} {after}"
        start = text.index(NAME.title())
        signals = router.classify(text)
        assert [(s.entity_type, s.start, s.end, s.text) for s in signals.pii] == [
            ("PERSON", start, start + len(NAME), NAME.title())
        ], text
        assert all(text[s.start : s.end] == s.text for s in signals.pii)
        assert signals.windows > 1 and signals.truncated is False
        straddles = any(
            w.start < k + n_name and k < w.end and not (w.start <= k and k + n_name <= w.end) for w in windows
        )
        starts_inside = any(k < w.start < k + n_name for w in windows)  # a window sees the name's tail only
        checked += straddles and starts_inside
    assert checked > 0  # some placements cut the name at a window edge, and it was still found once


def test_fake_router_cap_sets_truncated(tiny_bert):
    router, tokenizer, name_ids = _fake_router(tiny_bert, max_windows=2)
    text, _ = _filler(tokenizer, name_ids, 60)
    text = f"{text} {NAME}"
    signals = router.classify(text)
    assert signals.windows == 2 and signals.truncated is True
    assert signals.pii == []  # the name sits in the unread tail
    router, *_ = _fake_router(tiny_bert, max_windows=64)
    signals = router.classify(text)
    assert signals.truncated is False and [s.text for s in signals.pii] == [NAME]


def test_router_rejects_an_overlap_that_fills_the_window(tiny_bert):
    with pytest.raises(RouterforgeError, match="overlap"):
        _fake_router(tiny_bert, window=12, overlap=10)


ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzJOHNSMITH0123456789 .,;:!?-'\"()@/\n\t")
    + ["é", "ß", "中", "文", "😀", "ñ", "Å", "ﬁ", "Ω", "john", "smith", " john smith "]
)
TEXTS = st.one_of(
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x1FAFF, blacklist_categories=("Cs", "Cc", "Co", "Cn")),
        max_size=120,
    ),
    st.lists(ALPHABET, max_size=80).map("".join),
)


@pytest.fixture(scope="module")
def fake_pair(tiny_bert):
    windowed, *_ = _fake_router(tiny_bert, window=12, overlap=4)
    whole, *_ = _fake_router(tiny_bert, window=512, overlap=0)
    return windowed, whole


@settings(max_examples=200, deadline=None)
@given(text=TEXTS)
def test_windowed_spans_are_exact_and_match_a_single_window(fake_pair, text):
    windowed, whole = fake_pair
    signals = windowed.classify(text)
    spans = sorted(signals.pii, key=lambda s: s.start)
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert text[s.start : s.end] == s.text
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    assert signals.truncated is False
    # the fake looks one token back and every owned token has >= overlap // 2 tokens of left context, so the
    # windowed answer equals the one-window answer
    reference = whole.classify(text)
    assert reference.windows == 1
    assert [(s.start, s.end, s.text) for s in signals.pii] == [(s.start, s.end, s.text) for s in reference.pii]


# -- one encoder pass for every head ---------------------------------------------------------------------------


class Counting:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, input_ids, attention_mask):
        self.calls.append(input_ids.shape)
        return self.inner(input_ids, attention_mask)


def test_one_backend_call_and_one_encoder_pass_for_all_heads(tiny_bundle):
    router = Router.load(tiny_bundle, "torch")
    encoder = router.backend.module.model.encoder
    forwards = []
    handle = encoder.register_forward_hook(lambda module, args, output: forwards.append(1))
    try:
        router.backend = Counting(router.backend)
        signals = router.classify("short text")
        assert len(router.backend.calls) == 1 and len(forwards) == 1
        assert signals.category is not None and signals.category.label in router.heads["category"]["labels"]
        assert signals.intent is not None and signals.intent.label in router.heads["intent"]["labels"]
        assert signals.jailbreak is not None and 0 <= signals.jailbreak.p_jailbreak <= 1
        assert isinstance(signals.pii, list)
        assert set(signals.to_dict()) >= {"category", "jailbreak", "intent", "pii"}
        # a batch of texts, one of them long enough for several windows, is still one pass when it fits a batch
        router.backend.calls.clear()
        forwards.clear()
        long = " ".join(["what is the derivative of x squared"] * 120)
        out = router.classify_batch(["a", "send an email to my manager", long])
        assert out[2].windows > 1 and len(router.backend.calls) == 1 and len(forwards) == 1
    finally:
        handle.remove()


# -- viterbi -----------------------------------------------------------------------------------------------------


def _path_score(path, emissions, crf):
    score = crf["start_transitions"][path[0]] + crf["end_transitions"][path[-1]]
    score += sum(emissions[t, tag] for t, tag in enumerate(path))
    score += sum(crf["transitions"][a, b] for a, b in zip(path, path[1:]))
    return score


def test_viterbi_matches_brute_force():
    rng = np.random.default_rng(0)
    for length in range(1, 6):
        for k in range(1, 5):
            for _ in range(5):
                emissions = rng.normal(size=(length, k))
                crf = {
                    "start_transitions": rng.normal(size=k),
                    "end_transitions": rng.normal(size=k),
                    "transitions": rng.normal(size=(k, k)),
                }
                best = max(itertools.product(range(k), repeat=length), key=lambda p: _path_score(p, emissions, crf))
                path = viterbi(emissions, crf)
                assert path.tolist() == list(best)
                assert _path_score(path.tolist(), emissions, crf) == pytest.approx(_path_score(best, emissions, crf))
    assert viterbi(np.zeros((0, 3)), crf).tolist() == []


# -- calibration --------------------------------------------------------------------------------------------------


def _well_specified(n=4000, k=3, seed=0):
    """Logits whose softmax IS the label distribution: calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n, k))
    probs = softmax(logits)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return logits, labels


def test_temperature_fixes_over_and_under_confidence():
    logits, labels = _well_specified()
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.15)
    over = logits * 4
    t = fit_temperature(over, labels)
    assert t > 1 and t == pytest.approx(4, rel=0.2)
    summary = calibration_summary(over, labels, t)
    assert summary["ece_after"] < summary["ece_before"] and summary["nll_after"] < summary["nll_before"]
    under = logits / 4
    t = fit_temperature(under, labels)
    assert t < 1 and t == pytest.approx(0.25, rel=0.2)
    summary = calibration_summary(under, labels, t)
    assert summary["ece_after"] < summary["ece_before"] and summary["n"] == len(labels)
    # one scalar: the predicted class never changes
    assert (softmax(over, t).argmax(1) == over.argmax(1)).all()


def test_choose_temperature_cannot_collapse_on_tiny_or_separable_validation():
    """15 validation rows once gave T = 0.07 (every probability 0 or 1): small or all-right sets keep T = 1."""
    from routerforge.evaluation.calibration import MIN_CALIBRATION_ROWS, TEMPERATURE_BOUNDS, choose_temperature

    logits, labels = _well_specified(n=15)
    small = choose_temperature(logits / 10, labels)  # the raw fit would be far below 1
    assert small["temperature"] == 1.0 and small["status"] == "skipped" and "15 validation texts" in small["note"]
    # a token head: many rows, but they come from few texts
    many_tokens = choose_temperature(*_well_specified(n=500), texts=MIN_CALIBRATION_ROWS - 1)
    assert many_tokens["status"] == "skipped"
    separable = np.eye(3)[np.arange(300) % 3] * 5.0
    perfect = choose_temperature(separable, np.arange(300) % 3)
    assert perfect == perfect | {"temperature": 1.0, "status": "skipped"} and "not identifiable" in perfect["note"]
    logits, labels = _well_specified()
    fitted = choose_temperature(logits * 4, labels)
    assert fitted["status"] == "fitted" and fitted["temperature"] == pytest.approx(4, rel=0.2)
    clipped = choose_temperature(logits / 10, labels)  # the fit wants T ~ 0.1
    assert clipped == clipped | {"status": "clipped", "temperature": TEMPERATURE_BOUNDS[0]}
    assert fit_temperature(logits / 10, labels) < TEMPERATURE_BOUNDS[0]


def test_threshold_at_fpr_with_enough_negatives():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(1000, dtype=int), np.ones(200, dtype=int)]
    p = np.r_[rng.beta(2, 5, 1000), rng.beta(5, 2, 200)]
    choice = threshold_at_fpr(y, p, 0.01)
    assert choice["resolvable"] is True and choice["fp"] <= 10 and choice["fpr"] <= 0.01
    assert choice["fp"] + choice["tn"] == 1000 and choice["tp"] + choice["fn"] == 200
    # the lowest such threshold: the next negative below it would be one false positive too many
    next_negative = np.sort(p[y == 0])[::-1][choice["fp"]]
    assert next_negative < choice["threshold"]
    assert detection_counts(y, p, next_negative)["fp"] > 10


def test_threshold_at_fpr_with_too_few_negatives_admits_none():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(20, dtype=int), np.ones(20, dtype=int)]
    p = rng.uniform(size=40)
    choice = threshold_at_fpr(y, p, 0.01)
    assert choice["resolvable"] is False and choice["fp"] == 0
    assert choice["threshold"] > p[y == 0].max()


def test_threshold_at_fpr_with_a_saturated_negative_admits_none():
    y = np.array([0] * 20 + [1] * 5)
    p = np.r_[np.linspace(0, 0.5, 19), [1.0], np.ones(5)]  # float64 softmax saturates to exactly 1.0
    choice = threshold_at_fpr(y, p, 0.01)
    assert choice["fp"] == 0
