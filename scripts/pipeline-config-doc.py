"""Regenerate the field tables of docs/pipeline-config.md from the pydantic schema (routerforge.config).

    python scripts/pipeline-config-doc.py > /tmp/tables.md   # then paste over the tables in the doc

tests/test_config.py checks that the doc names every field, so a new field without a line there fails CI.
"""

from __future__ import annotations

import json

from routerforge.config import (
    CalibrationConfig,
    ExportConfig,
    GenerateConfig,
    MultitaskConfig,
    ProjectConfig,
    SplitsConfig,
    TaskConfig,
    TrainingConfig,
)
from routerforge.training.hyperparams import Hyperparams
from routerforge.training.lora import LoraSettings

SECTIONS = (
    (ProjectConfig, "", "Top level"),
    (TaskConfig, "tasks.<task>.", "tasks.&lt;task&gt;"),
    (GenerateConfig, "tasks.pii.generate.", "tasks.pii.generate"),
    (SplitsConfig, "splits.", "splits"),
    (TrainingConfig, "training.", "training"),
    (MultitaskConfig, "multitask.", "multitask"),
    (CalibrationConfig, "calibration.", "calibration"),
    (ExportConfig, "export.", "export"),
    (LoraSettings, "lora.", "LoRA settings (`training.lora`, `tasks.<task>.lora`)"),
    (Hyperparams, "", "Hyperparameters (`training.overrides`, `tasks.<task>.overrides`)"),
)


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    return "(section)" if hasattr(value, "model_dump") else f"`{json.dumps(value)}`"


def tables() -> str:
    out = []
    for model, prefix, title in SECTIONS:
        out += [f"## {title}", "", "| field | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            out.append(f"| `{prefix}{name}` | {_default(field)} | {(field.description or '').replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(tables())
