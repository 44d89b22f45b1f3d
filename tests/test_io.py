"""Atomic writes: a directory is replaced only when the block succeeds; nothing temporary is left behind."""

from __future__ import annotations

import json

import pytest

from routerforge.io import atomic_directory, write_json


def listing(path):
    return sorted(p.name for p in path.iterdir())


def test_creates_new_directory(tmp_path):
    target = tmp_path / "deep" / "model"
    with atomic_directory(target) as tmp:
        assert tmp.is_dir() and tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing visible until the block ends
        (tmp / "weights.bin").write_text("new")
    assert (target / "weights.bin").read_text() == "new"
    assert listing(target.parent) == ["model"]


def test_replaces_existing_directory_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # still the old one while writing
    assert listing(target) == ["new.txt"]
    assert listing(tmp_path) == ["model"]


@pytest.mark.parametrize("error", [ValueError("boom"), KeyboardInterrupt()])
def test_failure_leaves_old_directory_untouched(tmp_path, error):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(type(error)):
        with atomic_directory(target) as tmp:
            (tmp / "half-written.txt").write_text("partial")
            raise error
    assert listing(target) == ["old.txt"] and (target / "old.txt").read_text() == "old"
    assert listing(tmp_path) == ["model"]


def test_failure_without_existing_target_leaves_nothing(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "x").write_text("x")
            raise RuntimeError("fail")
    assert not target.exists() and listing(tmp_path) == []


def test_write_json(tmp_path):
    import numpy as np

    path = tmp_path / "report.json"
    path.write_text("old")
    write_json(path, {"a": np.arange(3), "p": tmp_path, "s": {3, 1}})
    assert json.loads(path.read_text()) == {"a": [0, 1, 2], "p": str(tmp_path), "s": [1, 3]}
    assert listing(tmp_path) == ["report.json"]


def test_write_json_failure_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "report.json"
    path.write_text('{"old": true}')
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})
    assert json.loads(path.read_text()) == {"old": True}
    assert listing(tmp_path) == ["report.json"]
