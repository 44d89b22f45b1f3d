"""Character spans <-> BIO token labels over a fast tokenizer's offset mapping.

Kept free of torch so the serving runtime can decode spans without it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .schema import Span

IGNORE = -100  # label id the loss ignores: special tokens and padding


def bio_label_names(entity_types: Sequence[str]) -> list[str]:
    """``O`` then ``B-X``, ``I-X`` for every entity type, in a fixed order."""
    names = ["O"]
    for entity in entity_types:
        names += [f"B-{entity}", f"I-{entity}"]
    return names


def bio_labels(offsets: Sequence[tuple[int, int]], spans: Sequence[Span], label2id: dict[str, int]) -> list[int]:
    """One label id per token: a token belongs to a span when their character ranges overlap.

    Special tokens (empty offsets) get :data:`IGNORE`.
    """
    labels, ordered, k = [], sorted(spans, key=lambda s: s.start), 0
    previous: Span | None = None
    for start, end in offsets:
        if start == end:
            labels.append(IGNORE)
            continue
        while k < len(ordered) and ordered[k].end <= start:
            k += 1
        span = ordered[k] if k < len(ordered) and ordered[k].start < end else None
        if span is None:
            labels.append(label2id["O"])
        else:
            labels.append(label2id[("I-" if span is previous else "B-") + span.entity_type])
        previous = span
    return labels


def decode_spans(
    text: str,
    offsets: Sequence[tuple[int, int]],
    label_ids: Sequence[int],
    confidences: Sequence[float],
    id2label: dict[int, str],
) -> list[dict]:
    """Token predictions -> ``{entity_type, start, end, text, score}`` with ``text == input[start:end]``.

    A span starts at ``B-X`` (or at an ``I-X`` that does not continue an ``X`` span) and grows over ``I-X``;
    ``score`` is the mean probability of its tokens' predicted labels.
    """
    spans: list[dict] = []
    current: dict | None = None
    scores: list[float] = []

    def close():
        if current is not None:
            current["score"] = float(sum(scores) / len(scores))
            current["text"] = text[current["start"] : current["end"]]
            spans.append(current)

    for (start, end), label_id, confidence in zip(offsets, label_ids, confidences):
        if start == end:
            continue
        name = id2label[int(label_id)]
        prefix, _, entity = name.partition("-")
        if prefix == "I" and current is not None and current["entity_type"] == entity:
            current["end"] = max(current["end"], end)
            scores.append(float(confidence))
            continue
        close()
        current, scores = None, []
        if prefix in ("B", "I"):
            current, scores = {"entity_type": entity, "start": start, "end": end}, [float(confidence)]
    close()
    return spans
