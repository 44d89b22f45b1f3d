"""Training as a config says: which models a ``training.mode`` makes, and the one call that trains each of them.
Shared by ``routerforge train --config`` and the pipeline's train stage, so both make the same models.

>>> from routerforge.training.from_config import planned_models, train_planned
>>> for model in planned_models(cfg, run_dir=Path("runs") / cfg.name):
...     train_planned(cfg, model, {t: rf.data.load(t, ...) for t in model.tasks})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ..config import MultitaskConfig, ProjectConfig
from ..data import with_adversarial
from ..errors import RouterforgeError
from .adversarial import adversarial_rows

if TYPE_CHECKING:
    from .setup import Resume

MODES = ("per-task", "multitask", "both")
BUNDLE = "bundle"


@dataclass(frozen=True)
class PlannedModel:
    """One model a config trains: a task's own model (``name`` = the task) or the bundle (``name`` = "bundle")."""

    name: str
    directory: Path
    tasks: list[str]

    @property
    def is_bundle(self) -> bool:
        """Whether this is the multitask bundle."""
        return self.name == BUNDLE


def planned_models(cfg: ProjectConfig, *, run_dir: Path, mode: str | None = None) -> list[PlannedModel]:
    """The models ``mode`` (default: the config's ``training.mode``) makes: per-task models under
    ``run_dir/models/<task>``, the bundle at ``run_dir/bundle``."""
    mode = mode or cfg.training.mode
    if mode not in MODES:
        raise RouterforgeError(f"unknown training mode {mode!r}", hint="per-task, multitask or both")
    out = []
    if mode in ("per-task", "both"):
        out += [PlannedModel(task, run_dir / "models" / task, [task]) for task in cfg.tasks]
    if mode in ("multitask", "both"):
        out.append(PlannedModel(BUNDLE, run_dir / BUNDLE, list(cfg.tasks)))
    return out


def train_planned(
    cfg: ProjectConfig,
    model: PlannedModel,
    datasets: dict,
    *,
    directory: Path | None = None,
    backbone: str | None = None,
    lora=...,
    overrides: dict | None = None,
    crf: bool | None = None,
    resume: Resume = False,
    allow_pickle: bool = False,
    console: Console | None = None,
):
    """Train one planned model with the config's settings for it (LoRA, CRF, hyperparameter overrides: a
    per-task model takes its task's own); any argument given replaces the config's."""
    common: dict[str, Any] = dict(
        resume=resume,
        allow_pickle=allow_pickle,
        console=console,
        overrides=cfg.hyperparam_overrides(None if model.is_bundle else model.name) if overrides is None else overrides,
    )
    backbone = backbone or cfg.backbone
    directory = directory or model.directory
    if model.is_bundle:
        if cfg.multitask.adversarial_from:
            attacked = Path(cfg.multitask.adversarial_from)
            if attacked.resolve() == directory.resolve():
                raise RouterforgeError("multitask.adversarial_from names the bundle itself", source=str(attacked))
            rows = adversarial_rows(attacked, model.directory.parent / "data", console)
            datasets = datasets | {"jailbreak": with_adversarial(datasets["jailbreak"], rows)}
        return train_bundle(
            {t: datasets[t] for t in model.tasks},
            backbone,
            directory,
            multitask=cfg.multitask,
            lora=cfg.training.lora if lora is ... else lora,
            crf=any(cfg.tasks[t].crf for t in model.tasks) if crf is None else crf,
            **common,
        )
    return train_model(
        datasets[model.name],
        backbone,
        directory,
        lora=cfg.lora_for(model.name) if lora is ... else lora,
        crf=cfg.tasks[model.name].crf if crf is None else crf,
        **common,
    )


def _announced(console: Console, what: str, n_train: int, kind: str, backbone: str, lora, overrides: dict | None):
    """The adaptive hyperparameters for ``n_train`` rows with ``overrides`` on top, said before training."""
    from .hyperparams import adaptive_hyperparams

    try:
        hyper = adaptive_hyperparams(n_train, lora=lora is not None, kind=kind, overrides=overrides or {})
    except ValueError as err:
        raise RouterforgeError(f"bad hyperparameter: {err}") from None
    console.print(
        f"training {what} on {backbone} ({'LoRA' if lora else 'full'}): {hyper.model_dump()}", highlight=False
    )
    return hyper


def train_model(
    task_data,
    backbone: str,
    output: Path,
    *,
    lora=None,
    overrides: dict | None = None,
    crf: bool = False,
    resume: Resume = False,
    allow_pickle: bool = False,
    console: Console | None = None,
):
    """One task's model: adaptive hyperparameters by its training rows with ``overrides`` on top."""
    from .progress import RichProgressCallback
    from .trainer import train

    console = console or Console(stderr=True)
    hyper = _announced(
        console, task_data.task.name, len(task_data.train), task_data.task.kind, backbone, lora, overrides
    )
    return train(
        task_data,
        model=backbone,
        output=output,
        lora=lora,
        hyperparams=hyper,
        crf=crf,
        resume=resume,
        allow_pickle=allow_pickle,
        progress=False,
        callbacks=[RichProgressCallback(f"train {task_data.task.name}", console)],
    )


def train_bundle(
    datasets: dict,
    backbone: str,
    output: Path,
    *,
    multitask: MultitaskConfig,
    lora=None,
    overrides: dict | None = None,
    crf: bool = False,
    resume: Resume = False,
    allow_pickle: bool = False,
    console: Console | None = None,
):
    """One multitask bundle over ``datasets``: hyperparameters by the total training rows."""
    from .multitask import train_multitask
    from .progress import RichProgressCallback

    console = console or Console(stderr=True)
    hyper = _announced(
        console,
        f"a multitask bundle ({', '.join(datasets)})",
        sum(len(d.train) for d in datasets.values()),
        "sequence",
        backbone,
        lora,
        overrides,
    )
    console.print(f"bundle settings: {multitask.model_dump()}", highlight=False)
    return train_multitask(
        datasets,
        model=backbone,
        output=output,
        lora=lora,
        hyperparams=hyper,
        temperature=multitask.temperature,
        loss_weights=multitask.loss_weights,
        group_task_lengths=multitask.group_task_lengths,
        cross_task_negatives=multitask.cross_task_negatives,
        teachers=multitask.teachers,
        crf=crf,
        resume=resume,
        allow_pickle=allow_pickle,
        progress=False,
        callbacks=[RichProgressCallback("train multitask", console)],
    )
