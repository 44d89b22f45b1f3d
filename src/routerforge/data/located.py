"""Where a model's data files are now, when they moved after training.

A manifest records each file it read (data, intent rules, PII templates and PII-free texts, adversarial rows) by
absolute path and sha256, so that evaluation, export and resume re-read exactly the rows of the recorded splits.
A model copied to another machine, or data moved to another disk, would then find nothing. ``ROUTERFORGE_DATA_DIRS``
(directories, separated like ``PATH``) says where to look: a file missing at its recorded path is searched for
under each directory by the recorded path's trailing parts, longest first (``/old/data/mmlu_pro/questions.jsonl``
-> ``DIR/old/data/mmlu_pro/questions.jsonl``, ``DIR/data/mmlu_pro/questions.jsonl``,
``DIR/mmlu_pro/questions.jsonl``, ``DIR/questions.jsonl``), and only a file with the recorded sha256 is taken.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from .sources import file_sha256

DATA_DIRS_ENV = "ROUTERFORGE_DATA_DIRS"


def moved_hint() -> str:
    """What to do about a recorded file that is not where the manifest says."""
    if os.environ.get(DATA_DIRS_ENV):
        return f"no file with the recorded sha256 under {DATA_DIRS_ENV} ({os.environ[DATA_DIRS_ENV]})"
    return f"set {DATA_DIRS_ENV} to the directory the data is in now (files are matched by name and sha256)"


def located(path: str, sha256: str | None) -> str:
    """The file recorded at ``path``: ``path`` itself when it is there, else the first candidate under
    ``ROUTERFORGE_DATA_DIRS`` with the recorded ``sha256``; ``path`` when none is (the caller refuses it)."""
    if Path(path).is_file() or not sha256:
        return path
    parts = PurePath(path).parts[1:] if PurePath(path).is_absolute() else PurePath(path).parts
    for directory in filter(None, os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep)):
        for start in range(len(parts)):
            candidate = Path(directory).expanduser().joinpath(*parts[start:])
            if candidate.is_file() and file_sha256(candidate) == sha256:
                return str(candidate)
    return path
