"""The four router tasks: their kind, default labels and the metric used to pick the best checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import RouterforgeError

MMLU_PRO_CATEGORIES = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)
INTENT_LABELS = (
    "information_retrieval",
    "data_transformation",
    "calculation",
    "communication",
    "scheduling",
    "file_operations",
    "analysis",
    "no_function_needed",
)
JAILBREAK_LABELS = ("benign", "jailbreak")


@dataclass(frozen=True)
class Task:
    """A classification task. ``labels`` is None when the label set comes from the data."""

    name: str
    kind: Literal["sequence", "token"]
    labels: tuple[str, ...] | None
    metric: str = "macro_f1"


TASKS: dict[str, Task] = {
    "category": Task("category", "sequence", MMLU_PRO_CATEGORIES),
    "pii": Task("pii", "token", None, metric="entity_f1"),  # seqeval entity F1 on validation
    "jailbreak": Task("jailbreak", "sequence", JAILBREAK_LABELS),
    "intent": Task("intent", "sequence", INTENT_LABELS),
}


def get_task(name: str) -> Task:
    """A task by name; an unknown name is a clear error listing the four."""
    try:
        return TASKS[name]
    except KeyError:
        raise RouterforgeError(f"unknown task {name!r}", hint=f"choose one of {', '.join(TASKS)}") from None
