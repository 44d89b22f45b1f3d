"""The run report's routing section: the frontier table of ``routerforge bench routing`` as Markdown.

>>> from routerforge.reports.routing_section import routing_section
>>> markdown = routing_section("benchmarks/results/routing.json", plot="routing.png")

A separate function so the run report can add it when a routing result exists (it needs no model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast


def routing_section(result: dict | str | Path, plot: str | None = None) -> str:
    """Markdown: what was measured, the table of every router and the frontier summary, the plot if given."""
    from ..bench.routing import format_table

    if not isinstance(result, dict):
        result = cast(dict, json.loads(Path(result).read_text(encoding="utf-8")))  # a routing result: a JSON object
    setup = result["setup"]
    lines = [
        "## Routing for quality and cost",
        "",
        f"{setup['test_rows']} test questions ({setup['split']}), category probabilities from {setup['probs']} "
        f"(test accuracy {setup['category_accuracy_test']:.3f}); pool: {', '.join(setup['pool'])}. "
        f"Tables fitted on {setup['train_rows']} training questions. Costs: list prices, "
        f"{setup['prompt_overhead_tokens']:g} prompt overhead tokens, {setup['chars_per_token']:g} characters a token.",
        "",
        format_table(result),
        "",
        f"Category router, predicted vs true categories: {100 * result['classification_loss']:+.1f} accuracy points "
        "lost to classification errors.",
    ]
    if plot:
        lines += ["", f"![routing frontier]({plot})"]
    return "\n".join(lines) + "\n"
