"""The ``routerforge`` command: thin typer layer over the library; library errors print without a traceback."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from .errors import RouterforgeError


class _NoFlagMetavar:
    """``--help`` without typer's ``<bool>`` metavar (our own flags set ``metavar=""``: :func:`_flag`)."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _Command(_NoFlagMetavar, TyperCommand):
    pass


class _Group(_NoFlagMetavar, TyperGroup):
    pass


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate, export and serve the classifiers behind an LLM semantic router.",
)
err_console = Console(stderr=True, soft_wrap=True)  # for people; stdout carries results only (JSON)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"routerforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="print the version and exit", callback=_version, is_eager=True, metavar="")
    ] = False,
) -> None:
    """Train, evaluate, export and serve the classifiers behind an LLM semantic router."""


def _emit(result, as_json: bool, table: Table | None = None) -> None:
    """One command's result: JSON on stdout with --json, else ``table`` (if any) for people on stderr."""
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    elif table is not None:
        err_console.print(table)


def _table(title: str, columns: list[str], rows: list[list]) -> Table:
    from .reports.format import number

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(number(c) for c in row))
    return table


# what `pip install 'routerforge[train]'` adds to the serving-only base install
TRAINING_MODULES = {
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "onnx",
    "scipy",
    "sklearn",
    "seqeval",
    "torchcrf",
    "pandas",
    "pyarrow",
    "matplotlib",
    "faker",
}


def _friendly(func):
    """Print RouterforgeError as one red line and exit 2 (bad input), never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RouterforgeError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)  # one line, unwrapped
            raise typer.Exit(2) from None
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] not in TRAINING_MODULES:
                raise
            err_console.print(
                f"[bold red]error:[/] this command needs the training extra (no module {err.name!r}): "
                "pip install 'routerforge[train]'",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper


def _flag(name: str, help: str):
    """A boolean --flag (no ``<bool>`` metavar in the help)."""
    return typer.Option(name, help=help, metavar="")


AllowPickle = Annotated[bool, _flag("--allow-pickle", "accept weights that are not safetensors (trusted models only)")]
Json = Annotated[bool, _flag("--json", "print the result as JSON on stdout (tables and progress go to stderr)")]
Data = Annotated[Optional[list[str]], typer.Option("--data", help="data file or hf:ORG/NAME[:split]; repeatable")]
TextField = Annotated[Optional[str], typer.Option(help="column holding the text")]
LabelField = Annotated[Optional[str], typer.Option(help="column holding the label (uses the data's own labels)")]
Labels = Annotated[Optional[str], typer.Option(help="comma-separated label set (default: the task's own)")]
GroupBy = Annotated[Optional[str], typer.Option(help="column whose values never straddle splits (e.g. template_id)")]
SplitField = Annotated[Optional[str], typer.Option(help="column with a predefined split")]
TrainSplit = Annotated[Optional[str], typer.Option(help="split_field value for train")]
ValSplit = Annotated[Optional[str], typer.Option(help="split_field value for validation (default: carve from train)")]
TestSplit = Annotated[Optional[str], typer.Option(help="split_field value for test")]
ValFraction = Annotated[Optional[float], typer.Option(help="validation fraction (default: 0.1)")]
TestFraction = Annotated[Optional[float], typer.Option(help="test fraction (default: 0.1)")]
NearDuplicates = Annotated[
    Optional[float], typer.Option(help="TF-IDF cosine at which a val/test row counts as a near-copy (default: 0.9)")
]
Seed = Annotated[Optional[int], typer.Option(help="seed for splits and training (default: 13)")]
Rules = Annotated[Optional[str], typer.Option(help="intent rule table YAML (default: the built-in one)")]
DataDir = Annotated[Optional[str], typer.Option(help="relative --data / config paths resolve against it")]


def _task_data(task: str, config, data_dir: str | None, options: dict):
    """The task's data as ``--config`` says, with the flags in ``options`` (``rf.data.load`` keywords) on top."""
    from . import data as rf_data

    settings = {}
    if config is not None:
        if task not in config.tasks:
            raise RouterforgeError(f"task {task!r} is not in the config", hint=f"it has {', '.join(config.tasks)}")
        settings = config.load_options(task, data_dir)
        data_dir = data_dir or config.data_dir
    options = dict(options)
    if options.get("data") and data_dir:
        from .data.sources import is_file_spec

        options["data"] = [
            str(Path(data_dir) / d) if is_file_spec(d) and not Path(d).is_absolute() else d for d in options["data"]
        ]
    if isinstance(options.get("labels"), str):
        options["labels"] = [s.strip() for s in options["labels"].split(",")]
    settings |= {k: v for k, v in options.items() if v is not None}
    if not settings.get("data"):
        raise RouterforgeError("no data: pass --data FILE or --config FILE")
    return rf_data.load(task, settings.pop("data"), **settings)


def _targets(value: str | None):
    if value is None or value == "auto":
        return value
    return [name.strip() for name in value.split(",") if name.strip()]


def _lora_settings(base, enabled: bool, flags: dict):
    """The config's LoRA settings (``base``) with the --lora-* flags on top; --lora alone turns LoRA on."""
    from .training.lora import LoraSettings

    flags = {k: v for k, v in flags.items() if v is not None}
    if not enabled and not flags:
        return base
    values = base.model_dump() if base else {}
    if "rank" in flags and "alpha" not in flags:
        values.pop("alpha", None)  # alpha follows the new rank (2 x rank)
    return LoraSettings(**values | flags)


def _print_data_report(data) -> None:
    report = data.report
    table = Table(title=f"{data.task.name} data", show_header=True)
    for column in ("split", "rows", "labels"):
        table.add_column(column)
    for split, count in report["rows_per_split"].items():
        labels = report["labels_per_split"][split]
        table.add_row(
            split,
            str(count),
            ", ".join(f"{k}:{v}" for k, v in list(labels.items())[:8]) + (" ..." if len(labels) > 8 else ""),
        )
    err_console.print(table)
    err_console.print(
        f"duplicates removed: {report['duplicates_removed']}, conflicting-label rows dropped: "
        f"{report['conflicting_label_rows_dropped']}, near-duplicates moved to train: "
        f"{report['near_duplicates_moved_to_train']}, dropped by loader: "
        f"{report['rows_dropped_by_loader']}",
        highlight=False,
    )


@app.command(cls=_Command)
@_friendly
def train(
    task: Annotated[
        Optional[str],
        typer.Option(
            help="category | pii | jailbreak | intent; without it: every task in --config, as its training.mode says"
        ),
    ] = None,
    data: Data = None,
    config: Annotated[
        Optional[Path],
        typer.Option(help="YAML config (docs/pipeline-config.md); flags override it (data flags only with --task)"),
    ] = None,
    mode: Annotated[
        Optional[str], typer.Option(help="per-task | multitask | both (default: the config's training.mode)")
    ] = None,
    data_dir: DataDir = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            help="backbone: minilm, modernbert-base, bert-base, roberta-base, mmbert-base, a local dir or a hub id"
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            help="model directory (default: models/<task>, or runs/<name>/models/<task> with --config); "
            "without --task: the bundle's"
        ),
    ] = None,
    text_field: TextField = None,
    label_field: LabelField = None,
    labels: Labels = None,
    group_by: GroupBy = None,
    split_field: SplitField = None,
    train_split: TrainSplit = None,
    val_split: ValSplit = None,
    test_split: TestSplit = None,
    val: ValFraction = None,
    test: TestFraction = None,
    near_duplicate_threshold: NearDuplicates = None,
    rules: Rules = None,
    augment_synth: Annotated[
        Optional[int], typer.Option(help="add N synthetic rows to the training split only")
    ] = None,
    augment: Annotated[
        bool,
        _flag(
            "--augment",
            "jailbreak: add an obfuscated copy of every training row (both classes) to the training split only",
        ),
    ] = False,
    lora: Annotated[bool, _flag("--lora", "train a LoRA adapter instead of all weights")] = False,
    lora_rank: Annotated[Optional[int], typer.Option(help="LoRA rank (default: 8)")] = None,
    lora_alpha: Annotated[Optional[float], typer.Option(help="LoRA alpha (default: 2 x rank)")] = None,
    lora_dropout: Annotated[Optional[float], typer.Option(help="LoRA dropout (default: 0.1)")] = None,
    lora_targets: Annotated[Optional[str], typer.Option(help="comma-separated module names (default: auto)")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="epochs (default: adaptive)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="batch size per device/process (default: adaptive)")] = None,
    lr: Annotated[Optional[float], typer.Option(help="learning rate (default: adaptive; 1e-4 with LoRA)")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="weight decay (default: adaptive)")] = None,
    warmup: Annotated[Optional[float], typer.Option(help="warmup fraction (default: adaptive)")] = None,
    patience: Annotated[
        Optional[int], typer.Option(help="early-stopping patience in validations (default: adaptive)")
    ] = None,
    max_length: Annotated[Optional[int], typer.Option(help="training window in tokens (default: 128)")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="stop after N optimiser steps")] = None,
    save_steps: Annotated[
        Optional[int], typer.Option(help="validate and checkpoint every N steps (default: each epoch)")
    ] = None,
    seed: Seed = None,
    loss: Annotated[Optional[str], typer.Option(help="ce | weighted | focal (default: weighted if imbalanced)")] = None,
    focal_gamma: Annotated[Optional[float], typer.Option(help="focal loss gamma (default: 2)")] = None,
    gradient_checkpointing: Annotated[
        bool, _flag("--gradient-checkpointing", "recompute activations in the backward pass: less memory, slower")
    ] = False,
    eval_batch_size: Annotated[Optional[int], typer.Option(help="batch size for validation/test (default: 32)")] = None,
    shape_features: Annotated[
        bool,
        _flag("--shape-features", "the encoder also reads each token's case/digit/punctuation shape (PII)"),
    ] = False,
    crf: Annotated[bool, _flag("--crf", "pii: a CRF over the token head (well-formed BIO spans)")] = False,
    allow_pickle: AllowPickle = False,
    resume: Annotated[bool, _flag("--resume", "continue from the last checkpoint in OUTPUT")] = False,
    as_json: Json = False,
):
    """Fine-tune one task's classifier, or (--config without --task) every task of the config: per-task models
    and/or one multitask bundle (one encoder, one head per task), as its training.mode says. Runs unchanged under
    torchrun / accelerate launch (docs/distributed.md)."""
    from .config import load_config

    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun rank 0 reports; the other ranks train quietly
        err_console.quiet = True

    cfg = load_config(config) if config else None
    flags = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        patience=patience,
        max_length=max_length,
        max_steps=max_steps,
        save_steps=save_steps,
        seed=seed,
        loss=loss,
        focal_gamma=focal_gamma,
        gradient_checkpointing=gradient_checkpointing or None,
        eval_batch_size=eval_batch_size,
        shape_features=shape_features or None,
    )
    flags = {k: v for k, v in flags.items() if v is not None}

    def overrides(name: str | None = None) -> dict:  # the config's (the task's own for a per-task model), flags win
        return (cfg.hyperparam_overrides(name) if cfg else {}) | flags

    load_flags = dict(
        data=data,
        text_field=text_field,
        label_field=label_field,
        labels=labels,
        group_by=group_by,
        split_field=split_field,
        train_split=train_split,
        val_split=val_split,
        test_split=test_split,
        rules=rules,
        augment_synth=augment_synth,
    )
    one_task = [f"--{k.replace('_', '-')}" for k, v in load_flags.items() if v is not None]
    if task is None and one_task:  # silently dropped otherwise: the config's own data settings would train
        raise RouterforgeError(
            f"{', '.join(one_task)} describe one task's data", hint="add --task TASK, or set them in the config"
        )
    if task is not None and mode is not None:
        raise RouterforgeError("--mode chooses what a config trains", hint="leave out --task, or leave out --mode")
    lora_flags = dict(rank=lora_rank, alpha=lora_alpha, dropout=lora_dropout, targets=_targets(lora_targets))
    backbone = model or (cfg.backbone if cfg else "minilm")
    from .modeling.backbones import check_backbone

    check_backbone(backbone)  # a missing or unreachable backbone fails now, not after the data split
    split_flags = dict(val=val, test=test, near_duplicate_threshold=near_duplicate_threshold, seed=seed)
    if task is None:
        if cfg is None:
            raise RouterforgeError("pass --task TASK, or --config FILE to train the config's tasks")
        from .training.from_config import planned_models, train_planned

        models = planned_models(cfg, run_dir=Path("runs") / cfg.name, mode=mode)
        datasets, results = {}, []
        for name in cfg.tasks:  # each task's data exactly as a per-task run loads it: same splits either way
            augment_task = (augment and name == "jailbreak") or None
            datasets[name] = _task_data(name, cfg, data_dir, split_flags | {"augment": augment_task})
            _print_data_report(datasets[name])
        for planned in models:
            base_lora = cfg.training.lora if planned.is_bundle else cfg.lora_for(planned.name)
            result = train_planned(
                cfg,
                planned,
                datasets,
                directory=output if planned.is_bundle and output else None,
                backbone=backbone,
                lora=_lora_settings(base_lora, lora, lora_flags),
                overrides=overrides(None if planned.is_bundle else planned.name),
                crf=crf or any(cfg.tasks[t].crf for t in planned.tasks),
                resume=resume,
                allow_pickle=allow_pickle,
                console=err_console,
            )
            results.append(_print_training(result, as_json))
        if as_json:
            print(json.dumps(results))
        return
    task_data = _task_data(task, cfg, data_dir, load_flags | split_flags | {"augment": augment or None})
    _print_data_report(task_data)
    from .training.from_config import train_model

    result = train_model(
        task_data,
        backbone,
        output or (Path("runs") / cfg.name / "models" / task if cfg else Path("models") / task),
        lora=_lora_settings(cfg.lora_for(task) if cfg else None, lora, lora_flags),
        overrides=overrides(task if cfg else None),
        crf=crf or bool(cfg and cfg.tasks[task].crf),
        resume=resume,
        allow_pickle=allow_pickle,
        console=err_console,
    )
    summary = _print_training(result, as_json)
    if as_json:
        print(json.dumps(summary))


def _print_training(result, as_json: bool) -> dict:
    """The test-split headline metrics of every head a training run made, and where it wrote the model."""
    from .bundle import head_metrics, heads_of
    from .evaluation.evaluator import headline

    metrics = {name: headline(head_metrics(result.info, name).get("test", {})) for name in heads_of(result.info)}
    if not as_json:
        rows = [[name, key, value] for name, values in metrics.items() for key, value in values.items()]
        err_console.print(_table(f"{result.output.name}: test split", ["task", "metric", "value"], rows))
        err_console.print(f"model written to [bold]{result.output}[/] in {result.seconds:.0f}s of training")
    return {"output": str(result.output), "train_seconds": round(result.seconds, 1), "test": metrics}


@app.command("eval", cls=_Command)
@_friendly
def eval_command(
    model_dir: Annotated[Path, typer.Argument(help="model directory written by 'routerforge train'")],
    data: Data = None,
    output: Annotated[
        Optional[Path], typer.Option(help="report directory (default: reports/<model name>, -<task> with --task)")
    ] = None,
    split: Annotated[str, typer.Option(help="the model's own split to score when no --data is given")] = "test",
    text_field: TextField = None,
    label_field: LabelField = None,
    task: Annotated[Optional[str], typer.Option(help="which head of a multitask bundle")] = None,
    backend: Annotated[
        Optional[str], typer.Option(help="onnx-int8 | onnx | torch | torchscript (default: torch)")
    ] = None,
    allow_pickle: AllowPickle = False,
    as_json: Json = False,
):
    """Score a model on its own test split (re-read and hash-checked from its manifest) or on --data files."""
    from .evaluation.evaluator import evaluate, headline

    out = output or Path("reports") / (model_dir.name + (f"-{task}" if task else ""))
    metrics = evaluate(
        model_dir,
        data,
        output=out,
        task=task,
        split=split,
        text_field=text_field,
        label_field=label_field,
        backend=backend,
        allow_pickle=allow_pickle,
    )
    summary = headline(metrics) | {"p50_ms": metrics["latency"]["p50_ms"], "p99_ms": metrics["latency"]["p99_ms"]}
    _emit(
        summary | {"report": str(out / "report.md")},
        as_json,
        _table(
            f"{model_dir.name}: {metrics['evaluated_on']['task']}",
            ["metric", "value"],
            [[k, v] for k, v in summary.items()],
        ),
    )
    if not as_json:
        err_console.print(f"report: {out / 'report.md'}")


@app.command(cls=_Command)
@_friendly
def classify(
    model_dir: Annotated[Path, typer.Argument(help="model directory")],
    texts: Annotated[
        list[str],
        typer.Argument(help="text(s) to classify; '-' streams stdin: one text (or JSON object with 'text') per line"),
    ],
    backend: Annotated[
        Optional[str], typer.Option(help="onnx-int8 | onnx | torch | torchscript (default: fastest present)")
    ] = None,
    window: Annotated[
        Optional[int], typer.Option(help="window in tokens for long texts (default: the training window)")
    ] = None,
    overlap: Annotated[
        Optional[int], typer.Option(help="tokens shared by neighbouring windows (default: window / 4)")
    ] = None,
    max_windows: Annotated[
        Optional[int], typer.Option(help="windows read per text; beyond: truncated (default: 64)")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="texts per encoder call when streaming stdin")] = 32,
    allow_pickle: AllowPickle = False,
):
    """Classify text(s): every head's Signals as JSON on stdout. One text: indented JSON; several, or '-'
    (stdin): JSONL, one line per input line in order (blank lines included), progress on stderr."""
    from .runtime.engine import Router

    router = Router.load(
        model_dir, backend, window=window, overlap=overlap, max_windows=max_windows, allow_pickle=allow_pickle
    )
    if texts != ["-"]:
        results = [{"text": t} | s.to_dict() for t, s in zip(texts, router.classify_batch(texts))]
        if len(results) == 1:
            print(json.dumps(results[0], indent=2, ensure_ascii=False))
        else:
            for result in results:
                print(json.dumps(result, ensure_ascii=False))
        return
    _classify_stream(router, sys.stdin, batch_size)


def _stdin_text(line: str, number: int) -> str:
    """A stdin line as a text: a JSON object's ``text`` (JSONL in), else the line itself."""
    line = line.rstrip("\n").rstrip("\r")
    if line.lstrip().startswith("{"):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            return line
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise RouterforgeError("a JSON line needs a string 'text' field", source="stdin", line=number)
        return row["text"]
    return line


def _classify_stream(router, lines, batch_size: int) -> None:
    """Read, classify and write in batches, so output starts before input ends and memory stays flat."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    batch: list[str] = []
    with Progress(
        SpinnerColumn(), TextColumn("{task.completed} texts"), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        bar = progress.add_task("classify", total=None)

        def flush() -> None:
            for text, signals in zip(batch, router.classify_batch(batch, batch_size=batch_size)):
                print(json.dumps({"text": text} | signals.to_dict(), ensure_ascii=False), flush=False)
            sys.stdout.flush()
            progress.advance(bar, len(batch))
            batch.clear()

        for number, line in enumerate(lines, start=1):
            batch.append(_stdin_text(line, number))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()


@app.command(cls=_Command)
@_friendly
def export(
    model_dir: Annotated[Path, typer.Argument(help="model directory or multitask bundle")],
    format: Annotated[
        Optional[list[str]], typer.Option("--format", help="onnx | onnx-int8 | torchscript; repeatable")
    ] = None,
    max_rows: Annotated[
        Optional[int], typer.Option(help="validation rows per head for the parity check (default: all)")
    ] = None,
    allow_pickle: AllowPickle = False,
    as_json: Json = False,
):
    """Export beside the weights (model.onnx, model.int8.onnx, model.torchscript.pt), parity-checked on the
    validation split: a failing check fails that format's export, keeps the model files as they were and records the
    refusal in routerforge.json."""
    from .bundle import CARD_FILE
    from .exporters import ParityError
    from .exporters.exporter import export as run_export

    records, refused = {}, None
    for fmt in format or ["onnx", "onnx-int8"]:
        try:
            records[fmt] = run_export(model_dir, fmt, allow_pickle=allow_pickle, max_rows=max_rows)
        except ParityError as err:
            records[fmt], refused = err.parity, err
        if not as_json:
            err_console.print(_parity_table(fmt, records[fmt]))
    if (model_dir / CARD_FILE).is_file():  # the card says what the directory now holds
        from .reports.model_card import write_model_card

        write_model_card(model_dir)
    if as_json:
        print(json.dumps(records, default=str))
    if refused is not None:
        raise refused


def _parity_table(fmt: str, record: dict) -> Table:
    """One export's parity check, a row per head: what was compared and whether it passed."""
    if record.get("refused"):
        title = f"{fmt}: REFUSED (parity: {record['parity']['criteria']})"
    else:
        recipe = f", recipe {record['recipe']}" if record.get("recipe") else ""
        kept = (record.get("sensitivity") or {}).get(record.get("recipe"), {}).get("kept_fp32")  # sensitive recipe
        recipe += f", {kept} kept fp32" if kept else ""
        title = f"{fmt}: {record['file']} ({record['size_mb']} MB{recipe}), parity {record['parity']['criteria']}"
    from .exporters.parity import describe

    rows = []
    for head, r in record["parity"]["heads"].items():
        gate = describe(r) if "confident" in r else "-"
        rows.append(
            [
                head,
                f"{r['rows']} texts",
                f"{r['max_abs_logit_diff']:.2e}",
                f"{r['label_agreement']:.2%}",
                gate,
                "yes" if r["passed"] else "NO",
            ]
        )
    columns = [
        "head",
        "rows",
        "max |diff|",
        "agreement (texts; PII: tokens)",
        "int8 gate: int8 - torch [paired 95% CI]",
    ]
    return _table(title, [*columns, "passed"], rows)


@app.command(cls=_Command)
@_friendly
def calibrate(
    model_dir: Annotated[Path, typer.Argument(help="model directory or multitask bundle")],
    target_fpr: Annotated[float, typer.Option(help="jailbreak false-positive rate the threshold aims at")] = 0.01,
    allow_pickle: AllowPickle = False,
    as_json: Json = False,
):
    """Refit each head's temperature, the jailbreak threshold and the PII minimum span score on the validation
    split (training does this already); prints ECE before/after and the counts at the threshold."""
    from .evaluation.calibrator import calibrate as run_calibrate

    fitted = run_calibrate(model_dir, target_fpr, allow_pickle=allow_pickle)
    rows = [
        [head, c.get("temperature"), (c.get("val") or {}).get("ece_before"), (c.get("val") or {}).get("ece_after")]
        for head, c in fitted["calibration"].items()
    ]
    _emit(
        fitted,
        as_json,
        _table(f"{model_dir.name}: calibration (validation)", ["head", "temperature", "ECE before", "ECE after"], rows),
    )
    if not as_json and fitted["thresholds"]:
        err_console.print(f"jailbreak threshold: {fitted['thresholds'].get('jailbreak')}")
    if not as_json and "pii_min_score" in fitted:
        err_console.print(f"PII minimum span score: {fitted['pii_min_score']}")


@app.command(cls=_Command)
@_friendly
def adversarial(
    model_dir: Annotated[Path, typer.Argument(help="model directory or bundle with a jailbreak head")],
    output: Annotated[Path, typer.Option(help="JSONL rows for tasks.jailbreak.adversarial")],
    variants: Annotated[int, typer.Option(min=1, help="searches per training jailbreak")] = 3,
    queries: Annotated[int, typer.Option(min=1, help="model queries per search")] = 60,
    per_step: Annotated[int, typer.Option(min=1, help="candidates tried per step")] = 10,
    max_tokens: Annotated[int, typer.Option(min=1, help="attack only training jailbreaks this short")] = 128,
    backend: Annotated[Optional[str], typer.Option(help="default: the fastest passing export")] = None,
    seed: Annotated[int, typer.Option(help="the attacker's seed")] = 0,
    as_json: Json = False,
):
    """Attack the model's own short training jailbreaks with greedy benign padding (what
    benchmarks/adaptive_attack.py does on test) and write each search's result as a training row for the next
    run (``tasks.jailbreak.adversarial: FILE``)."""
    from .training.adversarial import mine

    summary = mine(
        model_dir,
        output,
        variants=variants,
        queries=queries,
        per_step=per_step,
        max_tokens=max_tokens,
        backend=backend,
        seed=seed,
        console=err_console,
    )
    _emit(summary, as_json, _table(f"{model_dir.name}: adversarial rows", list(summary), [list(summary.values())]))


bench_app = typer.Typer(
    cls=_Group, no_args_is_help=True, help="Benchmarks (performance claims live here, not in tests)."
)
app.add_typer(bench_app, name="bench")


@bench_app.command("latency", cls=_Command)
@_friendly
def bench_latency(
    per_task: Annotated[list[str], typer.Option("--per-task", help="TASK=DIR, once per per-task model")],
    bundle: Annotated[Path, typer.Option(help="the multitask bundle")],
    repeats: Annotated[int, typer.Option(help="timed requests (and batches) per configuration")] = 50,
    batch: Annotated[int, typer.Option(help="batch size of the throughput measurement")] = 32,
    output: Annotated[Optional[Path], typer.Option(help="write the full result as JSON here")] = None,
    as_json: Json = False,
):
    """p50/p99 at batch 1 and throughput at batch 32: four per-task PyTorch models one after another vs the
    multitask bundle in PyTorch, ONNX fp32 and ONNX int8, in one process on the same prompts."""
    from .bench.latency import format_table, latency_benchmark
    from .io import write_json

    models = {}
    for item in per_task:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise RouterforgeError(f"--per-task expects TASK=DIR, got {item!r}")
        models[task] = Path(path)
    result = latency_benchmark(models, bundle, repeats=repeats, batch=batch)
    if as_json:
        print(json.dumps(result, default=str))
    else:
        err_console.print(format_table(result), highlight=False)
    if output:
        write_json(output, result)


@app.command("data", cls=_Command)
@_friendly
def data_command(
    task: Annotated[str, typer.Option(help="category | pii | jailbreak | intent")],
    data: Data = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML config")] = None,
    data_dir: DataDir = None,
    output: Annotated[Optional[Path], typer.Option(help="write manifest.json and report.json here")] = None,
    text_field: TextField = None,
    label_field: LabelField = None,
    labels: Labels = None,
    group_by: GroupBy = None,
    split_field: SplitField = None,
    train_split: TrainSplit = None,
    val_split: ValSplit = None,
    test_split: TestSplit = None,
    val: ValFraction = None,
    test: TestFraction = None,
    near_duplicate_threshold: NearDuplicates = None,
    seed: Seed = None,
    rules: Rules = None,
    as_json: Json = False,
):
    """Load, validate and split a task's data without training; prints the data report."""
    from .config import load_config
    from .io import atomic_directory, write_json

    cfg = load_config(config) if config else None
    options = dict(
        data=data,
        text_field=text_field,
        label_field=label_field,
        labels=labels,
        group_by=group_by,
        split_field=split_field,
        train_split=train_split,
        val_split=val_split,
        test_split=test_split,
        val=val,
        test=test,
        near_duplicate_threshold=near_duplicate_threshold,
        seed=seed,
        rules=rules,
    )
    task_data = _task_data(task, cfg, data_dir, options)
    _print_data_report(task_data)
    if output:
        with atomic_directory(output) as tmp:
            write_json(tmp / "manifest.json", task_data.manifest())
            write_json(tmp / "report.json", task_data.report)
        err_console.print(f"split manifest and report written to {output}")
    if as_json:
        print(json.dumps(task_data.report, default=str))


@app.command(cls=_Command)
@_friendly
def synth(
    task: Annotated[str, typer.Option(help="category | pii | jailbreak | intent")],
    output: Annotated[Path, typer.Option(help="JSONL file to write")],
    n: Annotated[int, typer.Option(help="rows")] = 1000,
    seed: Annotated[int, typer.Option(help="generator seed")] = 0,
    as_json: Json = False,
):
    """Write seeded synthetic data (offline; for the quickstart and for trying the tool without data)."""
    from .data.synth import write_jsonl

    path = write_jsonl(task, output, n, seed=seed)
    if as_json:
        print(json.dumps({"path": str(path), "rows": n, "task": task, "seed": seed}))
    else:
        err_console.print(f"{n} synthetic {task} rows written to {path}")


@app.command(cls=_Command)
@_friendly
def pipeline(
    config: Annotated[Path, typer.Argument(help="YAML config (docs/pipeline-config.md)")],
    data_dir: Annotated[
        Optional[str], typer.Option(help="relative data paths resolve against it (default: config's)")
    ] = None,
    from_stage: Annotated[
        Optional[str], typer.Option("--from", help="re-run this stage and every later one, changed or not")
    ] = None,
    only: Annotated[Optional[str], typer.Option(help="run just this stage (its inputs must exist)")] = None,
    runs_dir: Annotated[Path, typer.Option(help="runs/<name>/ holds the artefacts and pipeline.json")] = Path("runs"),
    allow_pickle: AllowPickle = False,
    as_json: Json = False,
):
    """data -> train -> calibrate -> eval -> export -> report from one YAML; stages whose inputs did not change
    are skipped, and a killed run resumes where it stopped (pipeline.json records every stage)."""
    from .pipeline.stages import run_pipeline
    from .reports.run_summary import summary_tables

    state = run_pipeline(
        config,
        runs_dir=runs_dir,
        data_dir=data_dir,
        start=from_stage,
        only=only,
        allow_pickle=allow_pickle,
        console=err_console,
    )
    if as_json:
        print(json.dumps(state, default=str))
        return
    for table in summary_tables(runs_dir / state["name"]):
        err_console.print(table)


# options of both servers (serve, extproc)
ServingBackend = Annotated[Optional[str], typer.Option(help="onnx-int8 | onnx | torch (default: the fastest present)")]
WorkerThreads = Annotated[
    Optional[int], typer.Option(help="ONNX Runtime intra-op threads per worker (default: the cores / workers)")
]
Workers = Annotated[int, typer.Option(help="processes sharing the port, each with its own bundle (docs/serving.md)")]


@app.command(cls=_Command)
@_friendly
def serve(
    bundle: Annotated[Optional[Path], typer.Argument(help="serving bundle (default: the config's bundle)")] = None,
    *,
    config: Annotated[Path, typer.Option(help="router YAML (backends, routes, policies, server limits)")],
    host: Annotated[Optional[str], typer.Option(help="address (default: the config's server.host)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default: the config's server.port)")] = None,
    backend: ServingBackend = None,
    threads: WorkerThreads = None,
    workers: Workers = 1,
    insecure: Annotated[
        bool, _flag("--insecure", "allow a non-loopback address without server.auth_token_env")
    ] = False,
):
    """Serve the OpenAI-compatible router proxy and classify API (SIGHUP or POST /admin/reload reloads the
    bundle and config without dropping requests)."""
    from .serving.proxy import serve as run_server

    run_server(bundle, config, host, port, backend=backend, threads=threads, insecure=insecure, workers=workers)


@app.command(cls=_Command)
@_friendly
def extproc(
    bundle: Annotated[Optional[Path], typer.Argument(help="serving bundle (default: the config's bundle)")] = None,
    *,
    config: Annotated[Path, typer.Option(help="router YAML (backends, routes, policies, server limits)")],
    host: Annotated[
        Optional[str], typer.Option(help="address to listen on (default: the config's server.host)")
    ] = None,
    port: Annotated[int, typer.Option(help="gRPC port Envoy's routerforge_extproc cluster points at")] = 50051,
    route_header: Annotated[
        str, typer.Option(help="header naming the backend; Envoy's routes match it")
    ] = "x-routerforge-backend",
    backend: ServingBackend = None,
    threads: WorkerThreads = None,
    workers: Workers = 1,
    metrics_port: Annotated[
        Optional[int], typer.Option(help="serve Prometheus /metrics on this port (same host)")
    ] = None,
    metrics_host: Annotated[
        Optional[str], typer.Option(help="address for /metrics (default: --host; e.g. 0.0.0.0 beside a loopback gRPC)")
    ] = None,
    insecure: Annotated[
        bool, _flag("--insecure", "allow a non-loopback address without server.auth_token_env")
    ] = False,
):
    """Serve Envoy's external processing gRPC API (docs/envoy.md): Envoy asks, routerforge decides, Envoy
    forwards. SIGHUP reloads the bundle and config without dropping requests."""
    from .serving.extproc import run_extproc

    run_extproc(
        bundle,
        config,
        host,
        port,
        route_header=route_header,
        backend=backend,
        threads=threads,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        insecure=insecure,
        workers=workers,
    )


_OUTCOMES = "data/model_outcomes/mmlu_pro_outcomes.jsonl"
_PRICES = "configs/model-prices.yaml"
Pool = Annotated[
    Optional[list[str]],
    typer.Option(
        "--pool",
        help="a model of the pool (repeatable; default: Llama-3.1 8B and 70B, Mixtral-8x7B, Gemini 1.5 Flash and "
        "Pro, GPT-4o)",
    ),
]


@bench_app.command("routing", cls=_Command)
@_friendly
def bench_routing(
    model_dir: Annotated[Optional[Path], typer.Argument(help="category model or bundle (test split scored)")] = None,
    outcomes: Annotated[Path, typer.Option(help="per-question outcomes JSONL (docs/routing.md)")] = Path(_OUTCOMES),
    prices: Annotated[Path, typer.Option(help="price table YAML")] = Path(_PRICES),
    questions: Annotated[
        Optional[Path], typer.Option(help="questions JSONL: the split source without a model (--probs tfidf)")
    ] = None,
    pool: Pool = None,
    probs: Annotated[str, typer.Option(help="category probabilities: model | tfidf (fitted on train)")] = "model",
    overhead_tokens: Annotated[
        Optional[float], typer.Option(help="prompt tokens besides the question (default: the price table's)")
    ] = None,
    backend: Annotated[Optional[str], typer.Option(help="onnx-int8 | onnx | torch (default: fastest present)")] = None,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples for the 95% intervals")] = 1000,
    output: Annotated[Optional[Path], typer.Option(help="write the full result as JSON here")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="write the frontier plot (PNG) here")] = None,
    as_json: Json = False,
):
    """Accuracy and cost of single models, random, oracle, category routers (predicted and true categories),
    the expected-accuracy router and their cost-aware sweeps, on the category model's test split."""
    from .bench.routing import format_table, plot_frontier, routing_benchmark
    from .io import write_json
    from .routing.outcomes import DEFAULT_POOL

    result = routing_benchmark(
        model_dir,
        outcomes=outcomes,
        prices=prices,
        questions=questions,
        pool=pool or DEFAULT_POOL,
        probs=probs,
        overhead_tokens=overhead_tokens,
        backend=backend,
        resamples=resamples,
    )
    if as_json:
        print(json.dumps(result, default=str))
    else:
        err_console.print(format_table(result), highlight=False)
    if output:
        write_json(output, result)
    if plot:
        plot_frontier(result, plot)


@app.command("train-selector", cls=_Command)
@_friendly
def train_selector_command(
    bundle: Annotated[Path, typer.Argument(help="multitask bundle with a category head (changed in place)")],
    outcomes: Annotated[Path, typer.Option(help="per-question outcomes JSONL (docs/routing.md)")] = Path(_OUTCOMES),
    pool: Pool = None,
    reexport: Annotated[
        bool,
        typer.Option(
            "--reexport/--no-reexport", help="export again the formats the bundle had (parity-checked)", metavar=""
        ),
    ] = True,
    as_json: Json = False,
):
    """Add the model-selector head to a bundle: P(correct) per pool model, fitted on the frozen encoder from the
    outcomes of the category head's training questions; served in the same encoder pass (selection: learned)."""
    from .routing.outcomes import DEFAULT_POOL
    from .training.selector import train_selector

    record = train_selector(bundle, outcomes=outcomes, pool=pool or DEFAULT_POOL, reexport=reexport)
    rows = [
        [
            model,
            f"{record['C'][model]:g}",
            f"{s['accuracy_of_model']:.3f}",
            "-" if s["roc_auc"] is None else f"{s['roc_auc']:.3f}",
            f"{s['brier']:.4f}",
            f"{s['ece']:.3f}",
        ]
        for model, s in record["scores"]["test"].items()
    ]
    choice = record["choice_accuracy"]
    title = (
        f"selector head of {bundle} (test split; the likeliest model is right on {choice['test']:.3f}, "
        f"val {choice['val']:.3f}); re-exported: {', '.join(record['reexported']) or 'nothing'}"
    )
    _emit(record, as_json, _table(title, ["model", "C", "model accuracy", "ROC-AUC", "Brier", "ECE"], rows))


@app.command("route-config", cls=_Command)
@_friendly
def route_config_command(
    model_dir: Annotated[Optional[Path], typer.Argument(help="category model (tables fit on its train split)")] = None,
    outcomes: Annotated[Path, typer.Option(help="per-question outcomes JSONL (docs/routing.md)")] = Path(_OUTCOMES),
    prices: Annotated[Path, typer.Option(help="price table YAML")] = Path(_PRICES),
    questions: Annotated[Optional[Path], typer.Option(help="questions JSONL (without a model: all rows)")] = None,
    pool: Pool = None,
    selection: Annotated[str, typer.Option(help="top_score | expected_accuracy | cost_aware")] = "top_score",
    cost_lambda: Annotated[float, typer.Option("--lambda", help="accuracy given up per USD per 1,000 requests")] = 0.0,
    epsilon: Annotated[
        Optional[float], typer.Option(help="cost_aware: cheapest model within this of the best accuracy")
    ] = None,
    base: Annotated[Optional[Path], typer.Option(help="router YAML whose other fields are kept")] = None,
    output: Annotated[Optional[Path], typer.Option(help="write here (validated when --base is given)")] = None,
):
    """Write a router YAML's categories.<name>.model_scores and default_model from measured outcomes, with
    the accuracy and cost behind each choice as comments (stdout without --output)."""
    from .routing.outcomes import DEFAULT_POOL
    from .routing.route_config import route_config

    text = route_config(
        outcomes,
        prices,
        model_dir=model_dir,
        questions=questions,
        pool=pool or DEFAULT_POOL,
        selection=selection,
        cost_lambda=cost_lambda,
        cost_epsilon=epsilon,
        base=base,
        output=output,
    )
    if output is None:
        print(text, end="")
    else:
        err_console.print(f"wrote {output}")


@app.command(cls=_Command)
@_friendly
def push(
    bundle: Annotated[Path, typer.Argument(help="exported bundle (routerforge.json, model*.onnx, tokenizer)")],
    repo_id: Annotated[str, typer.Argument(help="Hub model repository, ORG/NAME (created if missing)")],
    *,
    private: Annotated[bool, _flag("--private", "create the repository private")] = False,
    revision: Annotated[Optional[str], typer.Option(help="branch to commit to (default: main)")] = None,
    message: Annotated[Optional[str], typer.Option(help="commit message")] = None,
):
    """Push a bundle and its model card (README.md with Hub metadata) to the Hugging Face Hub in one commit;
    serve it anywhere with `routerforge serve hf:ORG/NAME`. The token: HF_TOKEN or `hf auth login`."""
    from .hub import push as push_bundle

    url = push_bundle(bundle, repo_id, private=private, revision=revision, message=message)
    err_console.print(f"pushed {bundle} -> {url}")


def main() -> None:  # pragma: no cover - console entry point
    """The ``routerforge`` console entry point: quiet library defaults, then the typer app."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # rich progress instead of load reports
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    app()
