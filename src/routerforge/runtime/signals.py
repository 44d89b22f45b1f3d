"""``Signals``: what the runtime returns for one text, and what the classify API serialises.

>>> s = router.classify("Call John at 555-123-4567")
>>> s                                    # Signals(category='math' 0.91, jailbreak=0.02 (ok), pii=[PHONE_NUMBER 13:25])
>>> Signals.from_dict(json.loads(s.to_json())) == s
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class LabelSignal:
    """A sequence head's answer (category, intent): the top label, its probability, all probabilities."""

    label: str
    confidence: float
    probs: dict[str, float]

    def __repr__(self) -> str:
        return f"{self.label!r} {self.confidence:.2f}"


@dataclass
class JailbreakSignal:
    """The jailbreak head's answer: P(jailbreak) and whether it reaches the calibrated threshold."""

    label: str
    p_jailbreak: float
    flagged: bool  # p_jailbreak >= the bundle's threshold (chosen on validation for a target FPR)
    threshold: float

    def __repr__(self) -> str:
        return f"{self.p_jailbreak:.2f} ({'flagged' if self.flagged else 'ok'})"


@dataclass
class PiiSpan:
    """A PII entity; ``start``/``end`` are Python character offsets into the ORIGINAL text."""

    entity_type: str
    start: int
    end: int
    text: str
    score: float

    def __repr__(self) -> str:
        return f"{self.entity_type} {self.start}:{self.end}"


@dataclass
class Signals:
    """Every head's answer for one text, from one encoder pass (a head the model lacks is ``None``)."""

    category: LabelSignal | None = None
    jailbreak: JailbreakSignal | None = None
    intent: LabelSignal | None = None
    pii: list[PiiSpan] | None = None
    # the model selector head: P(correct) per pool model (independent sigmoids; the label is the likeliest)
    selector: LabelSignal | None = None
    windows: int = 1
    truncated: bool = False  # True only when the window cap was hit and the text's tail was not read
    latency_ms: float = 0.0  # wall time of the call that produced it (for a batch: the whole batch)
    extra: dict[str, LabelSignal] = field(default_factory=dict)  # heads with other names (custom tasks)

    def to_dict(self) -> dict:
        """Plain JSON-ready data (the shape ``/v1/classify`` and ``routerforge classify`` print). Built field by
        field: ``dataclasses.asdict`` deep-copies every probability (a tenth of the event loop's time per request,
        profiled; benchmarks/asgi_overhead.py)."""
        return {
            "category": _plain(self.category),
            "jailbreak": _plain(self.jailbreak),
            "intent": _plain(self.intent),
            "pii": None if self.pii is None else [_plain(span) for span in self.pii],
            "selector": _plain(self.selector),
            "windows": self.windows,
            "truncated": self.truncated,
            "latency_ms": self.latency_ms,
            "extra": {name: _plain(value) for name, value in self.extra.items()},
        }

    def to_json(self, **kwargs) -> str:
        """``to_dict()`` as JSON text (``kwargs`` go to ``json.dumps``, e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict) -> Signals:
        """The inverse of :meth:`to_dict` (e.g. a ``/v1/classify`` response read back)."""

        def label(value: dict | None) -> LabelSignal | None:
            return LabelSignal(**value) if value is not None else None

        jailbreak = data.get("jailbreak")
        pii = data.get("pii")
        return cls(
            category=label(data.get("category")),
            jailbreak=JailbreakSignal(**jailbreak) if jailbreak is not None else None,
            intent=label(data.get("intent")),
            pii=[PiiSpan(**span) for span in pii] if pii is not None else None,
            selector=label(data.get("selector")),
            windows=data.get("windows", 1),
            truncated=data.get("truncated", False),
            latency_ms=data.get("latency_ms", 0.0),
            extra={name: LabelSignal(**value) for name, value in (data.get("extra") or {}).items()},
        )

    def __repr__(self) -> str:
        parts = [
            f"{name}={value!r}"
            for name in ("category", "jailbreak", "intent", "selector")
            if (value := getattr(self, name))
        ]
        if self.pii is not None:
            shown = ", ".join(map(repr, self.pii[:5])) + (f", +{len(self.pii) - 5} more" if len(self.pii) > 5 else "")
            parts.append(f"pii=[{shown}]")
        parts += [f"{name}={value!r}" for name, value in self.extra.items()]
        if self.truncated:
            parts.append("truncated=True")
        return f"Signals({', '.join(parts)})"


def _plain(value: LabelSignal | JailbreakSignal | PiiSpan | None) -> dict | None:
    """One answer as a dict of its fields (a label head's probabilities copied, not shared)."""
    if value is None:
        return None
    out = dict(vars(value))  # a dataclass's fields (no slots): a shallow copy
    if isinstance(value, LabelSignal):
        out["probs"] = dict(value.probs)
    return out
