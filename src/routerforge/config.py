"""The YAML schema for data and training (docs/pipeline-config.md), as pydantic models; every field documented
and validated.

CLI flags and YAML keys share their names (``--text-field`` <-> ``text_field``), so a single
``routerforge train --task T --data F`` call is this file with one task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .data.sources import is_file_spec, parse_synth
from .errors import RouterforgeError
from .tasks import TASKS
from .training.hyperparams import BUNDLE_SETTINGS, Hyperparams
from .training.lora import LoraSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _known_hyperparams(value: dict) -> dict:
    unknown = sorted(set(value) - set(Hyperparams.model_fields))
    bundle_only = [k for k in unknown if k in BUNDLE_SETTINGS]
    if bundle_only:
        raise ValueError(f"{', '.join(bundle_only)}: bundle settings, put them under multitask:, not in overrides")
    if unknown:
        raise ValueError(f"unknown hyperparameters {unknown}; known: {sorted(Hyperparams.model_fields)}")
    return value


def _under(base: str, path: str) -> str:
    """``path`` resolved against ``base`` unless it is absolute."""
    return path if Path(path).is_absolute() else str(Path(base) / path)


class GenerateConfig(_Strict):
    """pii only: rows made from the training split's templates (``tasks.pii.generate``; data.pii_generator)."""

    rows: int = Field(0, ge=0, description="sentences from presidio-evaluator's faker on the training templates")
    documents: int = Field(0, ge=0, description="multi-sentence documents joined from those sentences")
    templates: str | None = Field(
        None,
        description="the template list the data's template_id indexes (relative paths resolve against data_dir; "
        "null: presidio-evaluator's own templates.txt)",
    )
    lower_case_ratio: float = Field(0.05, ge=0, le=1, description="share of sentences lower-cased, as people type")
    negatives: list[str] = Field(
        [],
        description="data files of PII-free texts (a `text` field, else `question` or `prompt`; relative paths "
        "resolve against data_dir): "
        "rows with no span, and filler between the sentences of documents; only texts with no capitalised word "
        "inside a sentence, no digit run of 5 or more and no @ are kept",
    )
    negative_rows: int = Field(0, ge=0, description="PII-free rows taken from `negatives` (also used as filler)")
    context_rows: int = Field(
        0,
        ge=0,
        description="sentences from the training templates with a word beside each place or organisation that is "
        "not part of it ('Northern {{country}}', '{{organization}} Choir'): spans of the value alone; off by "
        "default (validation +5.7 points, test -0.5: benchmarks/README.md)",
    )


class TaskConfig(_Strict):
    """How to read one task's data (``tasks.<name>`` in the YAML)."""

    data: list[str] = Field(
        description="files (JSONL/JSON/CSV/Parquet; relative paths resolve against data_dir), "
        "http(s):// or file:// URLs of such files (downloaded once, hashed), "
        "hf:ORG/NAME[:split], or synth:N for N offline synthetic rows "
        "(routerforge.data.synth, seeded by the config's seed; synth:N:SEED "
        "names another seed)"
    )
    text_field: str | None = Field(None, description="column holding the text (default: text/question/prompt)")
    label_field: str | None = Field(None, description="column holding the label; set it to use the data's own labels")
    labels: list[str] | None = Field(None, description="explicit label set (default: the task's built-in labels)")
    group_by: str | None = Field(None, description="column whose values never straddle two splits (e.g. template_id)")
    split_field: str | None = Field(None, description="column with a predefined split; val is carved from train")
    train_split: str = Field("train", description="value of split_field for training rows")
    val_split: str | None = Field(None, description="value of split_field for validation rows (default: carve)")
    test_split: str = Field("test", description="value of split_field for test rows")
    rules: str | None = Field(None, description="intent only: YAML rule table (null = the built-in one)")
    crf: bool = Field(False, description="pii only: a CRF over the token head")
    lora: LoraSettings | None = Field(
        None,
        description="LoRA settings for this task's own model (overrides "
        "training.lora; the multitask bundle uses training.lora)",
    )
    overrides: dict = Field(
        default_factory=dict,
        description="hyperparameters for this task's own model, over training.overrides (the bundle uses those)",
    )
    augment_synth: int = Field(0, ge=0, description="add N synthetic rows (routerforge.data.synth) to train only")
    generate: GenerateConfig | None = Field(
        None, description="pii only: generated rows and documents from the training templates, to train only"
    )
    augment: bool = Field(
        False,
        description="jailbreak only: add an obfuscated copy (spaced, leet, zero-width, "
        "homoglyphs, benign padding before or after; routerforge.data.augment) of every training row, both classes, "
        "labels kept, to train only",
    )
    adversarial: str | None = Field(
        None,
        description="jailbreak only: JSONL rows a greedy attacker made from an earlier model's training "
        "jailbreaks (`routerforge adversarial MODEL --output FILE`; relative to the working directory), to train "
        "only; refused if any was made from a row outside this run's training split",
    )

    @field_validator("overrides")
    @classmethod
    def _overrides_are_hyperparams(cls, value: dict) -> dict:
        return _known_hyperparams(value)

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("data")
    @classmethod
    def _valid_specs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no data: list at least one file, URL, hf: or synth:N source")
        for spec in value:
            if spec.startswith("synth:"):
                try:
                    parse_synth(spec)
                except RouterforgeError as err:
                    raise ValueError(str(err)) from None
        return value

    def load_options(self) -> dict:
        """The keyword arguments of :func:`routerforge.data.load` (everything but the model options; ``adversarial``
        and ``generate.context_rows`` only when set, so a pipeline run made before they existed keeps its data
        stage's hash)."""
        options = self.model_dump(
            exclude={"crf", "lora", "overrides"} | ({"adversarial"} if not self.adversarial else set())
        )
        if options.get("generate") and not options["generate"]["context_rows"]:
            del options["generate"]["context_rows"]
        return options


class SplitsConfig(_Strict):
    """How rows are split (``splits`` in the YAML)."""

    val: float = Field(default=0.1, ge=0, lt=1, description="validation fraction (of rows, or of groups with group_by)")
    test: float = Field(default=0.1, ge=0, lt=1, description="test fraction")
    near_duplicate_threshold: float = Field(
        default=0.9,
        gt=0,
        le=1.01,
        description="TF-IDF cosine at which a val/test row counts as a near-copy of a train "
        "row and moves to train (above 1: off)",
    )


class TrainingConfig(_Strict):
    """What is trained and how (``training`` in the YAML)."""

    mode: Literal["per-task", "multitask", "both"] = Field(
        default="per-task", description="per-task models, one multitask bundle, or both"
    )
    max_length: int = Field(
        default=128, ge=8, description="training window in tokens; longer rows are truncated, counted"
    )
    lora: LoraSettings | None = Field(default=None, description="LoRA settings, or null for full fine-tuning")
    overrides: dict = Field(default_factory=dict, description="any Hyperparams field, e.g. {epochs: 2, lr: 3e-5}")

    @field_validator("overrides")
    @classmethod
    def _overrides_are_hyperparams(cls, value: dict) -> dict:
        return _known_hyperparams(value)


class MultitaskConfig(_Strict):
    """How the bundle samples, weighs and batches its tasks, and what its jailbreak head takes as benign
    (``multitask`` in the YAML)."""

    temperature: float = Field(default=0.5, ge=0, le=1, description="tasks sampled in proportion to size^temperature")
    loss_weights: dict[str, float] = Field(default_factory=dict, description="per-task loss weights (default 1)")
    group_task_lengths: bool = Field(
        False,
        description="batch similar lengths within each task (2.3x the real tokens/s on MMLU-Pro, but it cost the "
        "local-data bundle's PII head 2.5 points of validation F1, with or without a per-token loss; "
        "benchmarks/README.md). Per-task training always groups",
    )
    cross_task_negatives: int = Field(
        0,
        ge=0,
        description="add this many training texts of the other tasks (equal shares) to the jailbreak head's "
        "training split as benign, the prompts a router serves; at most this many, never a text the jailbreak data "
        "holds (the four-head local-data bundle with 1,000: validation tool requests flagged 4.4% -> 0%, questions "
        "scored >= 0.5 24% -> 0%; jailbreak recall the same or better; benchmarks/README.md)",
    )
    teachers: dict[str, str] = Field(
        default_factory=dict,
        description="per-task models (relative to the working directory) that teach the bundle's label heads of "
        "the same names, with teacher annealing: the target moves from the teacher's probabilities to the gold "
        "label over training (docs/training-and-evaluation.md); each must have trained on none of the bundle's "
        "validation or test rows",
    )
    adversarial_from: str | None = Field(
        None,
        description="a model with a jailbreak head (relative to the working directory; usually this run's "
        "per-task jailbreak model, which `training.mode: both` trains first): before the bundle trains, a greedy "
        "attacker pads that model's own short training jailbreaks until they pass (`routerforge adversarial`), "
        "and the rows, kept in the run's `data/`, join the bundle's jailbreak training split only. Not with "
        "`tasks.jailbreak.adversarial`. Measured to help on the four-head bundle with cross-task negatives, to hurt "
        "on a jailbreak-only one (docs/training-and-evaluation.md)",
    )

    def hashed(self) -> dict:
        """What a bundle's pipeline hash covers: the later settings only when on, so a bundle trained before they
        existed keeps its hash."""
        return {k: v for k, v in self.model_dump().items() if k not in BUNDLE_SETTINGS or v}


class CalibrationConfig(_Strict):
    """The operating point of the jailbreak head (``calibration`` in the YAML)."""

    target_fpr: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="jailbreak false-positive rate the threshold aims at (chosen on validation data)",
    )


ExportFormat = Literal["onnx", "onnx-int8", "torchscript"]


def _default_formats() -> list[ExportFormat]:
    return ["onnx", "onnx-int8"]


class ExportConfig(_Strict):
    """Which exports the export stage makes (``export`` in the YAML)."""

    formats: list[ExportFormat] = Field(
        default_factory=_default_formats,
        description="export formats, each parity-checked; an int8 export that fails parity is refused and recorded",
    )


class ProjectConfig(_Strict):
    """A whole run: data for any subset of the four tasks, splits, training, export."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9._-]+$", description="run name: artefacts go under runs/<name>/")
    seed: int = Field(13, description="seed for splits and training")
    backbone: str = Field("minilm", description="alias (minilm, modernbert-base, ...), local dir or hub id")
    data_dir: str | None = Field(None, description="relative data paths resolve against it (CLI --data-dir wins)")
    tasks: dict[str, TaskConfig] = Field(description="task name -> how to read its data")
    splits: SplitsConfig = Field(default_factory=SplitsConfig, description="split fractions and near-copy rule")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="mode, window, LoRA, overrides")
    multitask: MultitaskConfig = Field(
        default_factory=MultitaskConfig, description="the bundle's task sampling and batching, its jailbreak negatives"
    )
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig, description="the jailbreak threshold")
    export: ExportConfig = Field(default_factory=ExportConfig, description="which exports the export stage makes")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; known: {sorted(TASKS)}")
        if not value:
            raise ValueError("at least one task is needed")
        return value

    @model_validator(mode="after")
    def _adversarial_rows_once(self) -> ProjectConfig:
        jailbreak, attacked = self.tasks.get("jailbreak"), self.multitask.adversarial_from
        if attacked and self.multitask.teachers.get("jailbreak") == attacked:
            raise ValueError("multitask.adversarial_from is also the jailbreak teacher (which calls its rows benign)")
        if attacked and (jailbreak is None or jailbreak.adversarial):
            raise ValueError(
                "multitask.adversarial_from needs a jailbreak task without its own adversarial file"
                if jailbreak
                else "multitask.adversarial_from needs a jailbreak task"
            )
        return self

    def data_paths(self, task: str, data_dir: str | None = None) -> list[str]:
        """The task's data specs with relative paths resolved against ``data_dir`` (or the config's)."""
        base = data_dir or self.data_dir
        return [
            _under(base, spec) if base is not None and is_file_spec(spec) else spec for spec in self.tasks[task].data
        ]

    def load_options(self, task: str, data_dir: str | None = None) -> dict:
        """``routerforge.data.load`` keyword arguments for ``task``: its data with paths resolved, its reading
        options, the splits and the seed (one definition for ``train --config``, ``data`` and ``pipeline``)."""
        options = self.tasks[task].load_options()
        base = data_dir or self.data_dir
        generate = options.get("generate")
        if generate and base is not None:
            if generate["templates"]:
                generate["templates"] = _under(base, generate["templates"])
            generate["negatives"] = [_under(base, f) for f in generate["negatives"]]
        return options | {"data": self.data_paths(task, data_dir)} | self.splits.model_dump() | {"seed": self.seed}

    def hyperparam_overrides(self, task: str | None = None) -> dict:
        """``training.overrides`` plus the training window and the seed the config sets; with ``task``, that
        task's own ``overrides`` on top (its per-task model)."""
        own = dict(self.tasks[task].overrides) if task else {}
        return {"max_length": self.training.max_length, "seed": self.seed} | dict(self.training.overrides) | own

    def lora_for(self, task: str) -> LoraSettings | None:
        """The task's own LoRA settings, else ``training.lora`` (None: full fine-tuning)."""
        return self.tasks[task].lora or self.training.lora


def load_config(path: str | Path) -> ProjectConfig:
    """Read and validate a pipeline YAML config; errors name the file, the line and the field."""
    from .io import load_yaml

    return load_yaml(path, ProjectConfig, what="config", hint="the fields are in docs/pipeline-config.md")
