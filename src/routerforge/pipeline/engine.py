"""The pipeline engine: an explicit table of stages, each a list of items, run with state, hashing, skip and
resume. It knows nothing about training or models; :mod:`routerforge.pipeline.stages` holds the stages.

Each stage is a list of *items* (a task's data, one model's training, one head's evaluation, ...). An item's
input hash covers what it reads (config sections, source hashes, the hashes recorded by the items it depends
on) and the routerforge version. An item whose hash matches the one ``pipeline.json`` records as done, and
whose output is still there, is skipped; ``start`` forces a stage and the later ones, ``only`` runs one stage.
An item is recorded done only after its output is in place, so a killed run re-runs just the item it was in.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import __version__
from ..errors import RouterforgeError
from ..io import write_json
from ..reports.run_contents import PIPELINE_FILE as STATE_FILE


def value_hash(value) -> str:
    """A short, stable hash of any JSON-able value (config sections, records)."""
    text = json.dumps(value, sort_keys=True, default=lambda v: v.model_dump() if hasattr(v, "model_dump") else str(v))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """A short hash of a file's bytes."""
    from ..data.sources import file_sha256

    return file_sha256(path)[:16]


def tree_hash(path: Path) -> str:
    """A file's hash, or a directory's (its files' names and hashes)."""
    if path.is_file():
        return file_hash(path)
    return value_hash(sorted([str(p.relative_to(path)), file_hash(p)] for p in path.rglob("*") if p.is_file()))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Item:
    """One unit of a stage: ``run()`` does the work and returns what to record (``output_hash`` at least).
    ``path``: what it writes (recorded); ``done_when``: the file whose presence lets it be skipped."""

    name: str
    inputs: dict
    path: Path
    done_when: Path
    run: Callable[[], dict]

    @property
    def input_hash(self) -> str:
        """What the item's output depends on, hashed with the routerforge version."""
        return value_hash(self.inputs | {"routerforge": __version__})


class Engine:
    """Runs an ordered table of stages (``{name: build_items(engine)}``) under ``run_dir`` and keeps
    ``pipeline.json`` current; ``meta`` is recorded at the top of the state. A stage function is given the
    engine itself, so a subclass's table may take the subclass (``Self``)."""

    stages: Mapping[str, Callable[[Self], list[Item]]]

    def __init__(
        self,
        run_dir: Path,
        stages: Mapping[str, Callable[[Self], list[Item]]],
        meta: dict,
        console: Console | None = None,
    ):
        self.run_dir, self.stages = Path(run_dir), stages
        self.console = console or Console(stderr=True)
        path = self.run_dir / STATE_FILE
        self.state = json.loads(path.read_text()) if path.is_file() else {"stages": {}}
        self.state |= meta | {"routerforge_version": __version__, "stage_order": list(stages)}

    def run(self, start: str | None = None, only: str | None = None) -> dict:
        """Run every stage in order (``start``: force it and later ones; ``only``: one stage)."""
        order = list(self.stages)
        for flag, stage in (("--from", start), ("--only", only)):
            if stage is not None and stage not in order:
                raise RouterforgeError(f"{flag}: unknown stage {stage!r}", hint=f"choose one of {', '.join(order)}")
        if start and only:
            raise RouterforgeError("--from and --only do not combine", hint="--only STAGE runs one stage")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state["last_run"] = {"started": _now(), "from": start, "only": only}
        first = only or start
        forced_from = order.index(first) if first else len(order)
        for index, stage in enumerate(order):
            if only and stage != only:
                continue
            self._stage(stage, force=index >= forced_from)
        self.state["last_run"]["ended"] = _now()
        self._save()
        return self.state

    def _save(self) -> None:
        self.state["updated"] = _now()
        write_json(self.run_dir / STATE_FILE, self.state)

    def _stage(self: Self, stage: str, force: bool) -> None:
        self.console.rule(f"[bold]{stage}")
        items = self.stages[stage](self)  # raises before anything is recorded if an input is missing
        record = self.state["stages"].setdefault(stage, {})
        previous = record.get("items", {})
        record |= {
            "status": "running",
            "started": _now(),
            "ended": None,
            "input_hash": value_hash(sorted(i.input_hash for i in items)),
            "items": {i.name: previous[i.name] for i in items if i.name in previous},
            "ran": [],
            "skipped": [],
        }
        self._save()
        started = time.perf_counter()
        with Progress(
            TextColumn(f"[bold]{stage}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
        ) as progress:
            bar = progress.add_task("", total=len(items))
            for item in items:
                progress.update(bar, description=item.name)
                self._item(stage, item, record, force, progress.console)
                progress.advance(bar)
        record |= {"status": "done", "ended": _now(), "seconds": round(time.perf_counter() - started, 2)}
        self._save()

    def _item(self, stage: str, item: Item, record: dict, force: bool, console: Console) -> None:
        input_hash = item.input_hash
        previous = record["items"].get(item.name)
        if (
            not force
            and previous
            and previous.get("status") == "done"
            and previous.get("input_hash") == input_hash
            and item.done_when.exists()
        ):
            record["skipped"].append(item.name)
            console.print(f"  {stage} {item.name}: skipped (unchanged)", highlight=False)
            return
        entry: dict[str, Any] = {
            "status": "running",
            "input_hash": input_hash,
            "started": _now(),
            "ended": None,
            "path": str(item.path.relative_to(self.run_dir)),
        }
        record["items"][item.name] = entry
        self._save()
        started = time.perf_counter()
        try:
            entry |= item.run()
        except BaseException as err:
            entry |= {"status": "failed", "error": f"{type(err).__name__}: {err}", "ended": _now()}
            record["status"] = "failed"
            self._save()
            raise
        entry |= {"status": "done", "ended": _now(), "seconds": round(time.perf_counter() - started, 2)}
        record["ran"].append(item.name)
        self._save()
        console.print(f"  {stage} {item.name}: done in {entry['seconds']:.1f}s", highlight=False)

    def recorded(self, stage: str, name: str) -> dict:
        """A finished upstream item's record; a clear error when ``--only`` finds it missing."""
        entry = self.state["stages"].get(stage, {}).get("items", {}).get(name)
        if not entry or entry.get("status") != "done" or not (self.run_dir / entry["path"]).exists():
            raise RouterforgeError(
                f"the {stage} stage has no finished output for {name!r}",
                source=str(self.run_dir / STATE_FILE),
                hint=f"run the pipeline without --only (or with --only {stage}) first",
            )
        return entry
