"""Every routerforge command README.md and docs/ show names a real subcommand and real options (nothing runs:
scripts/check-docs.py runs the cheap ones after `make demo`), and the checker's own parsing is right."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer

from conftest import load_script
from routerforge.cli import app

ROOT = Path(__file__).resolve().parent.parent


check = load_script(ROOT / "scripts" / "check-docs.py", "check_docs")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHOWN = [(where, line, command) for where, line, command, _ in check.commands(DOCS)]


def _routerforge_args(command: str) -> list[str] | None:
    """The arguments after ``routerforge`` (also behind torchrun's ``$(which routerforge)``), else None."""
    words = shlex.split(command.replace("$(which routerforge)", "routerforge"))
    if "routerforge" not in words or words[0] == "pip":
        return None
    return words[words.index("routerforge") + 1 :]


def _resolve(args: list[str]):
    """The (sub)command the words name and the words after it (typer vendors its own click: duck typing)."""
    command = typer.main.get_command(app)
    while hasattr(command, "commands") and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    return command, args


def test_the_docs_show_routerforge_commands():
    assert sum(_routerforge_args(c) is not None for _, _, c in SHOWN) >= 30


@pytest.mark.parametrize(
    ("where", "command"), [(f"{w}:{n}", c) for w, n, c in SHOWN if _routerforge_args(c) is not None]
)
def test_a_documented_command_uses_real_options(where, command):
    resolved, rest = _resolve(_routerforge_args(command))
    assert not hasattr(resolved, "commands"), f"{where}: no such subcommand in {command!r}"
    known = {opt for param in resolved.params for opt in (*param.opts, *param.secondary_opts)}
    used = {word.split("=")[0] for word in rest if word.startswith("--")}
    assert used <= known, f"{where}: {sorted(used - known)} are not options of {resolved.name}"


def test_the_checker_joins_continuations_drops_comments_and_explains_what_it_skips(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "```bash\nrouterforge classify B \\\n  'a # not a comment'   # a comment\n```\n"
        "```python\nnot.a_command()\n```\n```bash\ncurl -s localhost:8080/readyz\n```\n"
    )
    check.ROOT = tmp_path
    found = check.commands([doc])
    assert [(line, command) for _, line, command, _ in found] == [
        (2, "routerforge classify B 'a # not a comment'"),
        (9, "curl -s localhost:8080/readyz"),
    ]
    assert check.plan("routerforge pipeline CONFIG --from eval") == (
        "run",
        "routerforge pipeline configs/quickstart.yaml --from eval",
    )
    assert check.plan("routerforge eval runs/local-data/bundle --task pii")[0] == "skip"
    assert check.plan("routerforge serve runs/quickstart/bundle --config configs/router.example.yaml")[0] == "serve"
    assert "public data" in check.plan("routerforge train --config configs/local-data.yaml --task category")[1]
