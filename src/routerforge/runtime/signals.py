"""``Signals``: what the runtime returns for one text, and what the classify API serialises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class LabelSignal:
    """A sequence head's answer (category, intent): the top label, its probability, all probabilities."""

    label: str
    confidence: float
    probs: dict[str, float]


@dataclass
class JailbreakSignal:
    label: str
    p_jailbreak: float
    flagged: bool  # p_jailbreak >= the bundle's threshold (chosen on validation for a target FPR)
    threshold: float


@dataclass
class PiiSpan:
    """A PII entity; ``start``/``end`` are Python character offsets into the ORIGINAL text."""

    entity_type: str
    start: int
    end: int
    text: str
    score: float


@dataclass
class Signals:
    category: LabelSignal | None = None
    jailbreak: JailbreakSignal | None = None
    intent: LabelSignal | None = None
    pii: list[PiiSpan] | None = None
    windows: int = 1
    truncated: bool = False  # True only when the window cap was hit and the text's tail was not read
    latency_ms: float = 0.0  # wall time of the call that produced it (for a batch: the whole batch)
    extra: dict[str, LabelSignal] = field(default_factory=dict)  # heads with other names (custom tasks)

    def to_dict(self) -> dict:
        return asdict(self)
