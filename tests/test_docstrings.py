"""Every public function, class and method says why it exists (framework hooks excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

import routerforge

SRC = Path(routerforge.__file__).parent
# methods a framework calls by name: their contract is the framework's
HOOKS = {"forward", "model_post_init", "set_epoch", "gradient_checkpointing_enable", "Process"}


def undocumented() -> list[str]:
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            if not ast.get_docstring(node):
                missing.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if (
                        isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and not sub.name.startswith("_")
                        and sub.name not in HOOKS
                        and not sub.name.startswith("on_")  # transformers callbacks
                        and not ast.get_docstring(sub)
                    ):
                        missing.append(f"{path.relative_to(SRC)}:{sub.lineno} {node.name}.{sub.name}")
    return missing


def test_public_names_have_docstrings():
    missing = undocumented()
    assert not missing, "add a one-line docstring (why, not what) to:\n" + "\n".join(missing)
