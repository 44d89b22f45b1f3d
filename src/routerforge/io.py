"""File I/O every layer shares: atomic writes (a crash or kill never leaves a half-written model, bundle or
report behind; files are as readable as the umask allows, not mkstemp's 0600) and the one YAML -> pydantic
loader (errors name the file, the line and the field)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


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
        make_readable(tmp)
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


def make_readable(path: str | Path) -> None:
    """Give ``path`` (a file, or a directory and everything in it) the permissions the umask allows: some
    writers (safetensors, mkstemp) make files 0600, which a non-root container could not read."""
    path = Path(path)
    mask = _umask()
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chmod(entry, (0o777 if entry.is_dir() else 0o666) & ~mask)


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


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` through a temporary file in the same directory and a rename; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """:func:`write_bytes` for UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, payload) -> Path:
    """Write JSON (indented, numpy values and paths converted) atomically."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")


def load_yaml(path: str | Path, model: type[M], *, what: str, hint: str, prepare=None) -> M:
    """Read the YAML mapping at ``path`` and validate it as ``model`` (pydantic). Every problem is one
    :class:`RouterforgeError` naming the file and line: a missing file, bad YAML, a non-mapping, or the first
    invalid field (with its dotted path, e.g. ``tasks.pii.data``). ``prepare(raw)`` may adjust the mapping
    before validation (e.g. resolve relative paths); ``hint`` says where the fields are documented."""
    import yaml
    from pydantic import ValidationError

    from .errors import RouterforgeError

    path = Path(path)
    if not path.is_file():
        raise RouterforgeError(f"{what} file not found", source=str(path), hint=hint)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RouterforgeError(f"cannot read the {what}: {err.strerror}", source=str(path), hint=hint) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise RouterforgeError(
            f"invalid YAML: {getattr(err, 'problem', None) or err}",
            source=str(path),
            line=mark.line + 1 if mark else None,
        ) from None
    if not isinstance(raw, dict):
        raise RouterforgeError(f"the {what} must be a YAML mapping", source=str(path), hint=hint)
    if prepare is not None:
        prepare(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [part for part in first["loc"] if not str(part).startswith("function-")]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        message = first["msg"].removeprefix("Value error, ")
        more = f"{len(err.errors())} problems; " if len(err.errors()) > 1 else ""
        raise RouterforgeError(
            f"field {where}: {message}" if where else message,
            source=str(path),
            line=_yaml_line(text, loc),
            hint=more + hint,
        ) from None


def _yaml_line(text: str, loc: list) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, v in node.value if k.value == str(part)), None)
            if match is None or key is None:
                break
            line, node = key.start_mark.line + 1, match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


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
