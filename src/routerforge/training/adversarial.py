"""Adversarial training rows made from a trained model: ``routerforge adversarial MODEL --output FILE``
(:func:`mine`), and ``multitask.adversarial_from`` (:func:`adversarial_rows`), which does it within one run for
the bundle. The search and the rules for the rows are in :mod:`routerforge.data.adversarial`."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from rich.console import Console

from ..data.adversarial import attack_rows, held_out_digest, training_targets, write_rows
from ..errors import RouterforgeError

WAIT_S = 5.0  # how often a process other than rank 0 looks for the rows file


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
    """The rows a greedy attacker makes of ``model_dir``'s own training jailbreaks (``multitask.adversarial_from``),
    made once per version of the model (its weights and what ``routerforge.json`` says but its exports): a
    resumed or re-run bundle reads the same file, a re-trained or re-calibrated model makes a new one. Under
    torchrun rank 0 makes them and the other processes wait for the file (torchrun stops them if rank 0 fails)."""
    if not (model_dir / "model.safetensors").is_file():
        raise RouterforgeError(
            "multitask.adversarial_from: no trained model here",
            source=str(model_dir),
            hint="train it first (training.mode: both trains this run's per-task models before the bundle)",
        )
    path = data_dir / f"jailbreak-adversarial-{_version(model_dir)}.jsonl"
    console = console or Console(stderr=True)
    if path.is_file():
        return path
    if int(os.environ.get("RANK", "0")) > 0:
        console.print(f"waiting for rank 0's adversarial rows: {path}", highlight=False)
        while not path.is_file():
            time.sleep(WAIT_S)
        return path
    console.print(f"adversarial rows from {model_dir} -> {path}", highlight=False)
    partial = path.with_suffix(".partial")
    summary = mine(model_dir, partial, backend="torch", console=console)  # torch: the pipeline exports later
    partial.replace(path)  # a killed search leaves no half file that looks finished
    console.print(f"adversarial rows: {summary | {'output': str(path)}}", highlight=False)
    return path


def _version(model_dir: Path) -> str:
    """A short hash of what the attacker's rows depend on: the weights and the model's settings (thresholds,
    temperatures, normalisation), not its export records."""
    from ..bundle import INFO_FILE
    from ..data.sources import file_sha256

    digest = hashlib.sha256()
    for name in ("model.safetensors", "heads.safetensors"):
        if (model_dir / name).is_file():
            digest.update(f"{name}:{file_sha256(model_dir / name)}\n".encode())
    info = json.loads((model_dir / INFO_FILE).read_text(encoding="utf-8"))
    digest.update(json.dumps({k: v for k, v in info.items() if k != "exports"}, sort_keys=True).encode())
    return digest.hexdigest()[:12]
