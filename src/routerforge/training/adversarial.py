"""Adversarial training rows made from a trained model: ``routerforge adversarial MODEL --output FILE``
(:func:`mine`), and ``multitask.adversarial_from`` (:func:`adversarial_rows`), which does it within one run for
the bundle. The search and the rules for the rows are in :mod:`routerforge.data.adversarial`."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from ..data.adversarial import attack_rows, held_out_digest, training_targets, write_rows
from ..errors import RouterforgeError


def mine(
    model_dir: Path,
    output: Path,
    *,
    variants: int = 3,
    queries: int = 60,
    per_step: int = 10,
    max_tokens: int = 128,
    backend: str | None = None,
    seed: int = 0,
    console: Console | None = None,
) -> dict:
    """Attack ``model_dir``'s own short training jailbreaks (:func:`attack_rows` on each of
    :func:`training_targets`) and write the rows to ``output``; returns a summary. Refused when the model was
    trained on ``output`` itself."""
    from rich.progress import track

    from ..bundle import head_data
    from ..data.located import located
    from ..evaluation.evaluator import head_splits
    from ..runtime.engine import Router

    router = Router.load(model_dir, backend)
    if "jailbreak" not in router.heads:
        raise RouterforgeError("the model has no jailbreak head", source=str(model_dir))
    manifest = head_data(router.info, "jailbreak")["manifest"]
    trained_on = manifest["load_options"].get("adversarial")
    if trained_on:
        trained_on = located(trained_on, manifest["load_options"].get("adversarial_sha256"))
    if trained_on and Path(trained_on).resolve() == output.resolve():
        raise RouterforgeError(
            "the model was trained on this file: overwriting it would orphan the model's training split",
            source=str(output),
            hint="write the next round's rows to another file",
        )
    held_out = held_out_digest(map(tuple, manifest["splits"]["val"] + manifest["splits"]["test"]))
    train = head_splits(router.info, ["jailbreak"], ("train",))["jailbreak"]["train"]
    targets, pool = training_targets(router, train, max_tokens)
    rows = [
        row
        for target in track(targets, description="attacking training jailbreaks", console=console)
        for row in attack_rows(
            router, target, pool, held_out, variants=variants, queries=queries, per_step=per_step, seed=seed
        )
    ]
    write_rows(rows, output)
    caught = [r for r in rows if r["flagged_before"]]
    return {
        "targets": len(targets),
        "rows": len(rows),
        "targets_not_flagged": len({r["augmented_from"] for r in rows if not r["flagged_before"]}),
        "flipped_of_flagged": f"{sum(r['flipped'] for r in caught)}/{len(caught)}",
        "output": str(output),
    }


def adversarial_rows(model_dir: Path, data_dir: Path, console: Console | None = None) -> Path:
    """The rows a greedy attacker makes of ``model_dir``'s own training jailbreaks
    (``multitask.adversarial_from``), written once per version of its weights: a resumed or re-run bundle reads
    the same file, a re-trained model makes a new one."""
    from ..data.sources import file_sha256

    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise RouterforgeError(
            "multitask.adversarial_from: no trained model here",
            source=str(model_dir),
            hint="train it first (training.mode: both trains this run's per-task models before the bundle)",
        )
    path = data_dir / f"jailbreak-adversarial-{file_sha256(weights)[:12]}.jsonl"
    if not path.is_file() and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every process would attack at once
        raise RouterforgeError(
            "multitask.adversarial_from: the rows are made in one process, not under torchrun",
            source=str(model_dir),
            hint=f"first run `routerforge adversarial {model_dir} --output {path}` without a launcher",
        )
    if not path.is_file():
        console = console or Console(stderr=True)
        console.print(f"adversarial rows from {model_dir} -> {path}", highlight=False)
        partial = path.with_suffix(".partial")
        mine(model_dir, partial, console=console)
        partial.replace(path)  # a killed search leaves no half file that looks finished
    return path
