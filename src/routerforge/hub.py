"""Bundles on the Hugging Face Hub: push a bundle to a model repository, and serve ``hf:ORG/NAME`` bundles.

>>> push("runs/local-data/bundle", "acme/router-minilm")          # `routerforge push BUNDLE ORG/NAME`
'https://huggingface.co/acme/router-minilm/commit/...'
>>> resolve_bundle("hf:acme/router-minilm@v2")                    # a local snapshot directory (Hub cache)
PosixPath('.../models--acme--router-minilm/snapshots/...')

``routerforge serve hf:acme/router-minilm --config router.yaml`` (or ``bundle: hf:acme/router-minilm`` in the
router YAML) downloads the snapshot through ``huggingface_hub.snapshot_download`` (the Hub cache, ``HF_HOME``;
``HF_TOKEN`` for private repositories; ``HF_HUB_OFFLINE=1`` serves the cached snapshot only). With the bundle
named in the router YAML, a reload downloads again, so it picks up a new revision of a branch.

The pushed commit holds the bundle's files (no training logs or checkpoints) and its model card as
``README.md``: a ``huggingface_hub.ModelCard`` whose metadata (license, base model, datasets, metrics) the Hub
indexes. The bundle's own README.md (written by ``routerforge export`` and the pipeline) is used when present;
otherwise the card is built from ``routerforge.json`` (needs the training extra: Jinja templates).
"""

from __future__ import annotations

import re
from pathlib import Path

from .bundle import CARD_FILE, read_info
from .errors import RouterforgeError

PREFIX = "hf:"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
#: never pushed: training byproducts and local state
EXCLUDED = ("logs/", "ckpt", "checkpoint-", ".cache/", "__pycache__/", ".lock", ".tmp")


def is_hub_spec(spec: str | Path | None) -> bool:
    """Whether a bundle argument names a Hub repository (``hf:``) rather than a directory."""
    return spec is not None and str(spec).startswith(PREFIX)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``hf:ORG/NAME[@REVISION]`` -> (repo id, revision or None)."""
    body = str(spec).removeprefix(PREFIX)
    repo_id, _, revision = body.partition("@")
    check_repo_id(repo_id)
    return repo_id, revision or None


def check_repo_id(repo_id: str) -> None:
    """Refuse anything but ORG/NAME before it reaches a URL (no paths, no full URLs, no traversal)."""
    if not _REPO.match(repo_id) or ".." in repo_id:
        raise RouterforgeError(
            f"{repo_id[:80]!r} is not a Hub model id",
            hint="write ORG/NAME (letters, digits, '.', '_', '-'), e.g. hf:acme/router-minilm or hf:acme/router@v2",
        )


def resolve_bundle(spec: str | Path) -> Path:
    """A local bundle directory: ``spec`` itself, or the downloaded snapshot of an ``hf:`` bundle."""
    if not is_hub_spec(spec):
        return Path(spec)
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, revision = parse_spec(str(spec))
    try:
        path = Path(huggingface_hub.snapshot_download(repo_id=repo_id, revision=revision, repo_type="model"))
    except LocalEntryNotFoundError:
        raise RouterforgeError(
            f"{spec} is not in the local Hub cache and the Hub cannot be reached",
            hint="connect to the Hub once (unset HF_HUB_OFFLINE), or copy the bundle and pass its directory",
        ) from None
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        raise RouterforgeError(
            f"cannot download {spec} from the Hub (HTTP {status})",
            hint="check the name and revision; a private repository needs HF_TOKEN",
        ) from None
    read_info(path)  # a clear error when the repository holds no routerforge bundle
    return path


def bundle_files(bundle: Path) -> list[Path]:
    """The files a push uploads, relative to ``bundle``, sorted."""
    files = []
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if path.is_file() and not any(part in rel for part in EXCLUDED):
            files.append(Path(rel))
    return files


def card_text(bundle: Path, repo_id: str) -> str:
    """The bundle's model card (its README.md, else one built from routerforge.json), checked to carry Hub
    metadata."""
    from huggingface_hub import ModelCard

    card_file = bundle / CARD_FILE
    if card_file.is_file():
        card = ModelCard.load(card_file)
    else:
        try:
            from .reports.model_card import model_card
        except ImportError as err:  # pragma: no cover - depends on the install
            raise RouterforgeError(
                f"the bundle has no {CARD_FILE} and building one needs {err.name}",
                hint="run `routerforge export BUNDLE` where the training extra is installed, or pip install jinja2",
            ) from None
        card = model_card(read_info(bundle), name=repo_id)
    if not card.data.to_dict():
        raise RouterforgeError(f"{CARD_FILE} of {bundle} has no metadata", hint="regenerate it: routerforge export")
    return str(card)


def push(
    bundle: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    message: str | None = None,
) -> str:
    """Upload ``bundle`` (and its card as README.md) to the Hub model repository ``repo_id`` in one commit,
    creating the repository if needed; returns the commit URL."""
    import huggingface_hub

    bundle = Path(bundle)
    check_repo_id(repo_id)
    info = read_info(bundle)
    files = bundle_files(bundle)
    if not any(f.suffix == ".onnx" for f in files):
        raise RouterforgeError(
            f"{bundle} has no ONNX export: the serving-only install could not run it",
            hint="run `routerforge export BUNDLE` first",
        )
    card = card_text(bundle, repo_id)
    api = huggingface_hub.HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    operations = [
        huggingface_hub.CommitOperationAdd(path_in_repo=f.as_posix(), path_or_fileobj=str(bundle / f))
        for f in files
        if f.as_posix() != CARD_FILE
    ]
    operations.append(huggingface_hub.CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode()))
    heads = ", ".join(sorted(info.get("heads") or {})) or info.get("task", "model")
    commit = api.create_commit(
        repo_id,
        operations=operations,
        commit_message=message or f"routerforge bundle ({heads})",
        repo_type="model",
        revision=revision,
    )
    return str(getattr(commit, "commit_url", commit))
