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

from .errors import RouterforgeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate, export and serve the classifiers behind an LLM semantic router.",
)
err_console = Console(stderr=True)
out_console = Console()


def _friendly(func):
    """Print RouterforgeError as one red line and exit 2 (bad input), never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RouterforgeError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)  # one line, unwrapped
            raise typer.Exit(2) from None

    return wrapper


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


@app.command()
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
        Optional[Path], typer.Option(help="YAML config (docs/pipeline-config.md); flags override it")
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
        typer.Option(help="model directory (default: models/<task>, or runs/<name>/models/<task> with --config)"),
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
        typer.Option(
            "--augment",
            help="jailbreak: add an obfuscated copy of every training row (both classes) to the training split only",
        ),
    ] = False,
    lora: Annotated[bool, typer.Option("--lora", help="train a LoRA adapter instead of all weights")] = False,
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
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing")] = False,
    eval_batch_size: Annotated[Optional[int], typer.Option(help="batch size for validation/test (default: 32)")] = None,
    crf: Annotated[bool, typer.Option("--crf", help="pii: a CRF over the token head (well-formed BIO spans)")] = False,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="accept non-safetensors backbones")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint in OUTPUT")] = False,
):
    """Fine-tune one task's classifier, or (--config without --task) every task of the config: per-task models
    and/or one multitask bundle (one encoder, one head per task), as its training.mode says. Runs unchanged under
    torchrun / accelerate launch (docs/distributed.md)."""
    from .config import load_config

    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun rank 0 reports; the other ranks train quietly
        err_console.quiet = out_console.quiet = True

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
    )
    flags = {k: v for k, v in flags.items() if v is not None}

    def overrides(name: str | None = None) -> dict:  # the config's (the task's own for a per-task model), flags win
        return (cfg.hyperparam_overrides(name) if cfg else {}) | flags

    lora_flags = dict(rank=lora_rank, alpha=lora_alpha, dropout=lora_dropout, targets=_targets(lora_targets))
    backbone = model or (cfg.backbone if cfg else "minilm")
    split_flags = dict(val=val, test=test, near_duplicate_threshold=near_duplicate_threshold, seed=seed)
    if task is None:
        if cfg is None:
            raise RouterforgeError("pass --task TASK, or --config FILE to train the config's tasks")
        from .training.from_config import planned_models, train_planned

        models = planned_models(cfg, run_dir=Path("runs") / cfg.name, mode=mode)
        datasets = {}
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
            _print_training(result)
        return
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
        augment=augment or None,
    )
    task_data = _task_data(task, cfg, data_dir, load_flags | split_flags)
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
    _print_training(result)


def _print_training(result) -> None:
    """The test-split headline metrics of every head a training run made, and where it wrote the model."""
    from .bundle import head_metrics, heads_of
    from .evaluation.evaluator import headline

    table = Table(title=f"{result.output.name}: test split")
    for column in ("task", "metric", "value"):
        table.add_column(column)
    for name in heads_of(result.info):
        for key, value in headline(head_metrics(result.info, name).get("test", {})).items():
            table.add_row(name, key, f"{value:.4f}" if isinstance(value, float) else str(value))
    err_console.print(table)
    err_console.print(f"model written to [bold]{result.output}[/] in {result.seconds:.0f}s of training")


@app.command("eval")
@_friendly
def eval_command(
    model_dir: Annotated[Path, typer.Argument(help="model directory written by 'routerforge train'")],
    data: Data = None,
    output: Annotated[Optional[Path], typer.Option(help="report directory (default: reports/<model name>)")] = None,
    split: Annotated[str, typer.Option(help="the model's own split to score when no --data is given")] = "test",
    text_field: TextField = None,
    label_field: LabelField = None,
    task: Annotated[Optional[str], typer.Option(help="which head of a multitask bundle")] = None,
    backend: Annotated[
        Optional[str], typer.Option(help="onnx-int8 | onnx | torch | torchscript (default: torch)")
    ] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="allow non-safetensors weights")] = False,
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
    out_console.print_json(json.dumps(summary))
    err_console.print(f"report: {out / 'report.md'}")


@app.command()
@_friendly
def classify(
    model_dir: Annotated[Path, typer.Argument(help="model directory")],
    texts: Annotated[list[str], typer.Argument(help="text(s) to classify; '-' reads lines from stdin")],
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
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle")] = False,
):
    """Classify text(s) with a model or bundle: every head's Signals as JSON on stdout."""
    from .runtime.engine import Router

    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    router = Router.load(
        model_dir, backend, window=window, overlap=overlap, max_windows=max_windows, allow_pickle=allow_pickle
    )
    results = [{"text": t} | s.to_dict() for t, s in zip(texts, router.classify_batch(texts))]
    print(json.dumps(results[0] if len(results) == 1 else results, indent=2, ensure_ascii=False))


@app.command()
@_friendly
def export(
    model_dir: Annotated[Path, typer.Argument(help="model directory or multitask bundle")],
    format: Annotated[
        Optional[list[str]], typer.Option("--format", help="onnx | onnx-int8 | torchscript; repeatable")
    ] = None,
    max_rows: Annotated[
        Optional[int], typer.Option(help="validation rows per head for the parity check (default: all)")
    ] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle")] = False,
):
    """Export beside the weights (model.onnx, model.int8.onnx, model.torchscript.pt), parity-checked on the
    validation split: a failing check fails the export and leaves the directory unchanged."""
    from .exporters.exporter import export as run_export

    for fmt in format or ["onnx", "onnx-int8"]:
        record = run_export(model_dir, fmt, allow_pickle=allow_pickle, max_rows=max_rows)
        recipe = f", recipe {record['recipe']}" if record.get("recipe") else ""
        table = Table(
            title=f"{fmt}: {record['file']} ({record['size_mb']} MB{recipe}), parity {record['parity']['criteria']}"
        )
        for column in (
            "head",
            "rows",
            "max |diff|",
            "agreement (texts; PII: tokens)",
            "metric torch [95% CI] -> exported",
            "passed",
        ):
            table.add_column(column)
        for head, r in record["parity"]["heads"].items():
            metric = (
                (
                    f"{r['metric']} {r['torch']:.4f} [{r['torch_ci95'][0]:.4f}, {r['torch_ci95'][1]:.4f}] -> "
                    f"{r['exported']:.4f}"
                )
                if "metric" in r
                else "-"
            )
            table.add_row(
                head,
                f"{r['rows']} texts",
                f"{r['max_abs_logit_diff']:.2e}",
                f"{r['label_agreement']:.2%}",
                metric,
                str(r["passed"]),
            )
        err_console.print(table)


@app.command()
@_friendly
def calibrate(
    model_dir: Annotated[Path, typer.Argument(help="model directory or multitask bundle")],
    target_fpr: Annotated[float, typer.Option(help="jailbreak false-positive rate the threshold aims at")] = 0.01,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle")] = False,
):
    """Refit each head's temperature and the jailbreak threshold on the validation split (training does this
    already); prints ECE before/after and the counts at the threshold."""
    from .evaluation.calibrator import calibrate as run_calibrate

    fitted = run_calibrate(model_dir, target_fpr, allow_pickle=allow_pickle)
    out_console.print_json(json.dumps(fitted))


bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (performance claims live here, not in tests).")
app.add_typer(bench_app, name="bench")


@bench_app.command("latency")
@_friendly
def bench_latency(
    per_task: Annotated[list[str], typer.Option("--per-task", help="TASK=DIR, once per per-task model")],
    bundle: Annotated[Path, typer.Option(help="the multitask bundle")],
    repeats: Annotated[int, typer.Option(help="timed requests (and batches) per configuration")] = 50,
    batch: Annotated[int, typer.Option(help="batch size of the throughput measurement")] = 32,
    output: Annotated[Optional[Path], typer.Option(help="write the full result as JSON here")] = None,
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
    print(format_table(result))
    if output:
        write_json(output, result)


@app.command("data")
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
    out_console.print_json(json.dumps(task_data.report))


@app.command()
@_friendly
def synth(
    task: Annotated[str, typer.Option(help="category | pii | jailbreak | intent")],
    output: Annotated[Path, typer.Option(help="JSONL file to write")],
    n: Annotated[int, typer.Option(help="rows")] = 1000,
    seed: Annotated[int, typer.Option(help="generator seed")] = 0,
):
    """Write seeded synthetic data (offline; for the quickstart and for trying the tool without data)."""
    from .data.synth import write_jsonl

    path = write_jsonl(task, output, n, seed=seed)
    err_console.print(f"{n} synthetic {task} rows written to {path}")


@app.command()
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
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle")] = False,
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
    for table in summary_tables(runs_dir / state["name"]):
        err_console.print(table)


@app.command()
@_friendly
def serve(
    bundle: Annotated[Optional[Path], typer.Argument(help="serving bundle (default: the config's bundle)")] = None,
    config: Annotated[Path, typer.Option(help="router YAML (backends, routes, policies, server limits)")] = ...,
    host: Annotated[Optional[str], typer.Option(help="address (default: the config's server.host)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default: the config's server.port)")] = None,
    backend: Annotated[
        Optional[str], typer.Option(help="onnx-int8 | onnx | torch (default: the fastest present)")
    ] = None,
    threads: Annotated[Optional[int], typer.Option(help="ONNX Runtime intra-op threads (default: all cores)")] = None,
    insecure: Annotated[bool, typer.Option(help="allow a non-loopback address without server.auth_token_env")] = False,
):
    """Serve the OpenAI-compatible router proxy and classify API (SIGHUP or POST /admin/reload reloads the
    bundle and config without dropping requests)."""
    from .serving.proxy import serve as run_server

    run_server(bundle, config, host, port, backend=backend, threads=threads, insecure=insecure)


@app.command()
@_friendly
def extproc(
    bundle: Annotated[Optional[Path], typer.Argument(help="serving bundle (default: the config's bundle)")] = None,
    config: Annotated[Path, typer.Option(help="router YAML (backends, routes, policies, server limits)")] = ...,
    host: Annotated[
        Optional[str], typer.Option(help="address to listen on (default: the config's server.host)")
    ] = None,
    port: Annotated[int, typer.Option(help="gRPC port Envoy's routerforge_extproc cluster points at")] = 50051,
    route_header: Annotated[
        str, typer.Option(help="header naming the backend; Envoy's routes match it")
    ] = "x-routerforge-backend",
    backend: Annotated[
        Optional[str], typer.Option(help="onnx-int8 | onnx | torch (default: the fastest present)")
    ] = None,
    threads: Annotated[Optional[int], typer.Option(help="ONNX Runtime intra-op threads (default: all cores)")] = None,
    metrics_port: Annotated[
        Optional[int], typer.Option(help="serve Prometheus /metrics on this port (same host)")
    ] = None,
    insecure: Annotated[bool, typer.Option(help="allow a non-loopback address without server.auth_token_env")] = False,
):
    """Serve Envoy's external processing gRPC API (docs/envoy.md): Envoy asks, routerforge decides, Envoy
    forwards. SIGHUP reloads the bundle and config without dropping requests."""
    import asyncio
    import logging

    from .serving.extproc import serve_extproc
    from .serving.service import RouterService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = RouterService.load(bundle, config, backend=backend, threads=threads)
    asyncio.run(
        serve_extproc(service, port, host, route_header=route_header, metrics_port=metrics_port, insecure=insecure)
    )


def main() -> None:  # pragma: no cover - console entry point
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # rich progress instead of load reports
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    app()
