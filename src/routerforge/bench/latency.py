"""Serving latency: four per-task models (one encoder pass per classifier) vs one multitask bundle, per backend.

>>> from routerforge.evaluation.benchmark import latency_benchmark, format_table
>>> result = latency_benchmark({"category": Path("models/category"), "pii": Path("models/pii-e10"),
...                             "jailbreak": Path("models/jailbreak"), "intent": Path("models/intent-e8")},
...                            Path("runs/local-data/bundle"))                       # doctest: +SKIP
>>> print(format_table(result))                                                     # doctest: +SKIP

Everything runs in ONE process on the same prompts. A request is end to end: ``Router.classify(text)``
(normalise, tokenise, every window through the encoder, decode every head); for the per-task configuration it
is the sum of the four models' ``classify`` calls on the same text, which is what a router built from
separate classifiers pays. Throughput is ``classify_batch`` of ``batch`` texts (each per-task model in turn).
Configurations are interleaved (round-robin, with the order rotated every repetition) after a warm-up, so
noise from the machine (other jobs, frequency changes) falls on all of them alike. A backend whose file is not
in the bundle is reported as "not exported", not measured. torch is imported only where it is needed.
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RouterforgeError
from ..evaluation.metrics import latency_summary
from ..runtime.backends import ONNX_FILES
from ..text.normalise import normalise

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..runtime.engine import Router

BASELINE = "per-task torch"
CONFIGURATIONS = (BASELINE, "multitask torch", "multitask onnx", "multitask onnx-int8")
BUNDLE_BACKENDS = {"multitask torch": "torch", "multitask onnx": "onnx", "multitask onnx-int8": "onnx-int8"}
BATCH1_ONLY = ("long",)  # prompt sets measured at batch 1 only (one long text: its windows are the batch)
WARMUP = 3  # classify calls per configuration and prompt set before timing (+ one batch)
SHORT_TOKENS, MEDIUM_TOKENS, LONG_CHARS, N_TEXTS = 30, 500, 10_000, 64


# ------------------------------------------------------------------------------------------------ prompts
def default_prompts(
    tokenizer,
    *,
    n_texts: int = N_TEXTS,
    short_tokens: int = SHORT_TOKENS,
    medium_tokens: int = MEDIUM_TOKENS,
    long_chars: int = LONG_CHARS,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Synthetic prompts (no external data): ``short`` and ``medium`` texts of ``short_tokens`` /
    ``medium_tokens`` tokens (rows of the four synthetic tasks, interleaved and joined, cut at a token
    boundary) and one ``long`` text of exactly ``long_chars`` characters.

    ``tokenizer``: a ``tokenizers.Tokenizer``, or a model directory holding ``tokenizer.json``.
    """
    from tokenizers import Tokenizer

    from ..data.synth import generate

    if not isinstance(tokenizer, Tokenizer):
        tokenizer = Tokenizer.from_file(str(Path(tokenizer) / "tokenizer.json"))
    per_task = [[e.text for e in generate(task, 300, seed=seed)] for task in ("category", "pii", "jailbreak", "intent")]
    rows = itertools.cycle([text for group in zip(*per_task) for text in group])

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    def text_of(tokens: int) -> str:
        parts, total = [], 0
        while total < tokens:  # rows joined by a space tokenise (almost exactly) as the sum of their tokens
            parts.append(next(rows))
            total += count(parts[-1])
        text = " ".join(parts)
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        return text[: offsets[tokens - 1][1]] if len(offsets) > tokens else text

    short = [text_of(short_tokens) for _ in range(n_texts)]
    medium = [text_of(medium_tokens) for _ in range(n_texts)]
    parts, chars = [], 0
    while chars < long_chars:
        parts.append(next(rows))
        chars += len(parts[-1]) + (len(parts) > 1)  # the length of " ".join(parts): a space between rows
    return {"short": short, "medium": medium, "long": [" ".join(parts)[:long_chars]]}


# ------------------------------------------------------------------------------------------ measurement
@dataclass
class _Configuration:
    name: str
    backend: str
    routers: dict[str, Router] = field(default_factory=dict)  # label -> Router (per task, or "bundle")
    status: str = "ok"
    reason: str | None = None


def _request(config: _Configuration, text: str) -> tuple[list[float], list]:
    """Seconds of each router's ``classify(text)``, in turn, and their Signals."""
    seconds, signals = [], []
    for router in config.routers.values():
        started = time.perf_counter()
        signals.append(router.classify(text))
        seconds.append(time.perf_counter() - started)
    return seconds, signals


def _batch(config: _Configuration, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for router in config.routers.values():
        router.classify_batch(texts, batch_size=batch)
    return time.perf_counter() - started


def _load(per_task: dict[str, Path], bundle: Path, window, overlap) -> list[_Configuration]:
    from ..runtime.engine import Router

    configs = [
        _Configuration(
            BASELINE,
            "torch",
            {task: Router.load(path, "torch", window=window, overlap=overlap) for task, path in per_task.items()},
        )
    ]
    for name, backend in BUNDLE_BACKENDS.items():
        config = _Configuration(name, backend)
        file = ONNX_FILES.get(backend)
        if file and not (bundle / file).is_file():
            config.status, config.reason = "not exported", f"no {file} in {bundle}"
        else:
            config.routers["bundle"] = Router.load(bundle, backend, window=window, overlap=overlap)
        configs.append(config)
    return configs


def _machine() -> dict:
    import torch

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": ort_version,
        "onnxruntime_threads": "onnxruntime default (intra-op = physical cores)",
        "numpy": np.__version__,
    }


def _load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _prompt_stats(texts: list[str], tokenizer, given: bool, name: str) -> dict:
    tokens = [len(tokenizer.encode(normalise(t).text, add_special_tokens=False).ids) for t in texts]
    chars = [len(t) for t in texts]
    return {
        "n_texts": len(texts),
        "source": "given" if given else "routerforge.data.synth",
        "tokens": {"mean": float(np.mean(tokens)), "min": min(tokens), "max": max(tokens)},
        "chars": {"mean": float(np.mean(chars)), "min": min(chars), "max": max(chars)},
        "throughput_measured": name not in BATCH1_ONLY,
    }


def latency_benchmark(
    per_task: dict[str, Path],
    bundle: Path,
    *,
    prompts: dict[str, list[str]] | None = None,
    repeats: int = 50,
    batch: int = 32,
    window: int | None = None,
    overlap: int | None = None,
    progress: bool = True,
) -> dict:
    """p50/p99 batch-1 latency (ms) and batch-``batch`` throughput (texts/s) of four configurations on the same
    prompts: "per-task torch" (the ``per_task`` models, one after another per request), and the ``bundle``
    with the torch, onnx and onnx-int8 backends (an ONNX backend without its file: "not exported").

    ``prompts``: ``{set name: texts}``; default :func:`default_prompts` (short, medium, long). A set named
    "long" is measured at batch 1 only. ``repeats``: timed requests (and timed batches) per configuration
    and prompt set. ``window``/``overlap``: passed to every ``Router.load`` (None: the runtime's defaults).
    """
    if not per_task:
        raise RouterforgeError("the latency benchmark needs the per-task models (task=directory)")
    if repeats < 1 or batch < 1:
        raise RouterforgeError(f"repeats and batch must be >= 1, got repeats={repeats}, batch={batch}")
    per_task, bundle = {task: Path(path) for task, path in per_task.items()}, Path(bundle)
    load_average_start, started = _load_average(), time.perf_counter()
    configs = _load(per_task, bundle, window, overlap)
    measured = [c for c in configs if c.status == "ok"]
    reference = configs[1].routers["bundle"]  # the bundle on torch: its tokenizer counts the prompts' tokens
    given = prompts is not None
    prompts = {name: list(texts) for name, texts in (prompts or default_prompts(reference.tokenizer)).items()}
    empty = [name for name, texts in prompts.items() if not texts]
    if empty:
        raise RouterforgeError(f"prompt sets without texts: {', '.join(empty)}")

    # seconds by configuration, (model label,) prompt set
    request_s: dict[str, dict[str, list[float]]] = {c.name: {p: [] for p in prompts} for c in measured}
    per_model_s: dict[str, dict[str, dict[str, list[float]]]] = {
        c.name: {label: {p: [] for p in prompts} for label in c.routers} for c in measured
    }
    batch_s: dict[str, dict[str, list[float]]] = {
        c.name: {p: [] for p in prompts if p not in BATCH1_ONLY} for c in measured
    }
    windows = {c.name: {p: (0, False) for p in prompts} for c in measured}

    def batch_texts(texts: list[str], rep: int) -> list[str]:
        return [texts[(rep * batch + j) % len(texts)] for j in range(batch)]

    bar = _Bar(progress, total=1 + repeats)
    with bar:
        bar.describe("warm-up")
        for config in measured:
            for name, texts in prompts.items():
                for j in range(WARMUP):
                    _request(config, texts[j % len(texts)])
                if name not in BATCH1_ONLY:
                    _batch(config, batch_texts(texts, 0), batch)
        bar.advance()
        for rep in range(repeats):
            shift = rep % len(measured)
            order = measured[shift:] + measured[:shift]  # rotate: no configuration always runs first
            for name, texts in prompts.items():
                bar.describe(f"{name} {rep + 1}/{repeats}")
                text = texts[rep % len(texts)]
                for config in order:
                    seconds, signals = _request(config, text)
                    request_s[config.name][name].append(sum(seconds))
                    for label, s in zip(config.routers, seconds):
                        per_model_s[config.name][label][name].append(s)
                    w, t = windows[config.name][name]
                    windows[config.name][name] = (
                        max([w] + [s.windows for s in signals]),
                        t or any(s.truncated for s in signals),
                    )
                if name not in BATCH1_ONLY:
                    chunk = batch_texts(texts, rep)
                    for config in order:
                        batch_s[config.name][name].append(_batch(config, chunk, batch))
            bar.advance()

    results: dict[str, dict[str, Any]] = {}
    for config in configs:
        entry: dict[str, Any] = {
            "status": config.status,
            "backend": config.backend,
            "models": {task: str(p) for task, p in per_task.items()}
            if config.name == BASELINE
            else {"bundle": str(bundle)},
        }
        if config.status != "ok":
            results[config.name] = entry | {"reason": config.reason}
            continue
        entry["heads"] = {label: list(router.heads) for label, router in config.routers.items()}
        sets: dict[str, dict[str, Any]] = {}
        for name in prompts:
            w, truncated = windows[config.name][name]
            row: dict[str, Any] = {
                "batch1": latency_summary(request_s[config.name][name]) | {"batch_size": 1},
                "windows": w,
                "truncated": truncated,
                "throughput": None,
            }
            if name in batch_s[config.name]:
                summary = latency_summary(batch_s[config.name][name])
                row["throughput"] = {
                    "batch_size": batch,
                    "texts_per_s": batch / (summary["p50_ms"] / 1000),
                    "batch_ms": summary,
                }
            if len(config.routers) > 1:
                row["per_model"] = {
                    label: latency_summary(per_model_s[config.name][label][name]) for label in config.routers
                }
            sets[name] = row
        results[config.name] = entry | {"sets": sets}
    base = results[BASELINE]["sets"]
    for entry in results.values():
        for name, row in entry.get("sets", {}).items():
            row["speedup_p50_vs_per_task"] = base[name]["batch1"]["p50_ms"] / row["batch1"]["p50_ms"]
            if row["throughput"] is not None:
                row["throughput_ratio_vs_per_task"] = (
                    row["throughput"]["texts_per_s"] / base[name]["throughput"]["texts_per_s"]
                )

    return {
        "kind": "latency_benchmark",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine() | {"load_average_1_5_15": {"start": load_average_start, "end": _load_average()}},
        "settings": {
            "repeats": repeats,
            "warmup_calls": WARMUP,
            "batch": batch,
            "window": {"requested": window, "effective": reference.window},
            "overlap": {"requested": overlap, "effective": reference.overlap},
            "max_windows": reference.max_windows,
            "baseline": BASELINE,
            "order": "round-robin over configurations per request, order rotated every repetition",
            "request": "end-to-end Router.classify (normalise, tokenise, encoder, decode every head); "
            "per-task: sum of the per-task models' classify calls on the same text",
            "throughput": "batch / median seconds of classify_batch(batch texts); per-task: each model in turn",
            "seconds_total": round(time.perf_counter() - started, 1),
        },
        "prompt_sets": {
            name: _prompt_stats(texts, reference.tokenizer, given, name) for name, texts in prompts.items()
        },
        "configurations": results,
    }


class _Bar:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.progress: Progress | None = None
        self.total = total
        self.task: TaskID | None = None  # set on entering the context
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]latency[/] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def describe(self, text: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=text)

    def advance(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)


# ------------------------------------------------------------------------------------------------ table
def format_table(result: dict) -> str:
    """Markdown: one row per configuration and prompt set (p50/p99 ms at batch 1, texts/s at the batch size,
    p50 speed-up vs the per-task models); a configuration that was not measured gets one row saying why."""
    batch = result["settings"]["batch"]
    lines = [
        f"| configuration | prompts | p50 ms | p99 ms | texts/s at batch {batch} | p50 speed-up vs {BASELINE} |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, entry in result["configurations"].items():
        if entry["status"] != "ok":
            lines.append(f"| {name} | | {entry['status']} | | | |")
            continue
        label = f"{name} ({len(entry['models'])} models)" if name == BASELINE else name
        for set_name, row in entry["sets"].items():
            stats = result["prompt_sets"][set_name]
            prompt = f"{set_name} ({stats['tokens']['mean']:.0f} tokens"
            if stats["n_texts"] == 1:
                prompt += f", {stats['chars']['max']} chars"
            if row["windows"] > 1 or row["truncated"]:
                prompt += f", {row['windows']} windows{', truncated' if row['truncated'] else ''}"
            throughput = f"{row['throughput']['texts_per_s']:.1f}" if row["throughput"] else "-"
            lines.append(
                f"| {label} | {prompt}) | {row['batch1']['p50_ms']:.1f} | {row['batch1']['p99_ms']:.1f} "
                f"| {throughput} | {row['speedup_p50_vs_per_task']:.2f}x |"
            )
    return "\n".join(lines)
