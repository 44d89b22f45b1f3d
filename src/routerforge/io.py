"""Atomic writes: a crash or kill never leaves a half-written model, bundle or report behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``target``; on success it replaces ``target`` in one rename.

    If ``target`` exists it is moved aside first and deleted only after the new directory is in place. On an
    exception the temporary directory is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a model dir should be as readable as any other
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def refuse_to_replace(target: str | Path, markers: tuple[str, ...], allowed: tuple[str, ...] = ()) -> None:
    """Refuse to replace a non-empty directory that is not one of ours (has none of ``markers``).

    ``--output models`` by mistake must not delete every model in ``models/``; ``allowed`` names entries that
    may be there anyway (e.g. the ``checkpoints`` of an interrupted run).
    """
    from .errors import RouterforgeError

    target = Path(target)
    if target.exists() and not target.is_dir():
        raise RouterforgeError("output path exists and is not a directory", source=str(target))
    if not target.is_dir() or any((target / m).exists() for m in markers):
        return
    foreign = sorted(p.name for p in target.iterdir() if p.name not in allowed)
    if foreign:
        raise RouterforgeError(
            f"refusing to replace a directory that routerforge did not write (holds {', '.join(foreign[:5])})",
            source=str(target),
            hint="choose another --output",
        )


def write_json(path: str | Path, payload) -> None:
    """Write JSON through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False, default=_jsonable)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
