"""The layout's rules, checked: no import cycle between routerforge's modules (function-level imports included),
and the layers below training never import torch or transformers (what ``routerforge[serve]`` relies on)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import routerforge

SRC = Path(routerforge.__file__).parent
TORCH_FREE = [
    "routerforge.bundle",
    "routerforge.io",
    "routerforge.config",
    "routerforge.text.normalise",
    "routerforge.evaluation.metrics",
    "routerforge.evaluation.calibration",
    "routerforge.reports.format",
    "routerforge.reports.eval_report",
    "routerforge.reports.model_card",
    "routerforge.reports.run_report",
    "routerforge.runtime.engine",
    "routerforge.runtime.batcher",
    "routerforge.serving.policy",
    "routerforge.serving.service",
    "routerforge.serving.proxy",
    "routerforge.serving.extproc",
]


SERVING = ["routerforge.serving.proxy", "routerforge.serving.extproc", "routerforge.runtime.engine", "routerforge.cli"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the routerforge modules it imports anywhere in its body (relative imports resolved)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                while target and target not in modules:  # "pkg.mod.func" -> "pkg.mod"
                    target = target.rpartition(".")[0]
                # importing a parent package is what importing any submodule does anyway: not an edge
                if target and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert len(graph) > 50 and "routerforge.serving.policy" in graph["routerforge.serving.service"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


@pytest.mark.parametrize("module", TORCH_FREE)
def test_layers_below_training_do_not_import_torch(module):
    """Checked in a fresh interpreter by what is actually loaded, so a transitive import is caught too."""
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("module", SERVING)
def test_the_serving_path_needs_only_the_base_install(module):
    """``pip install routerforge`` (no [train] extra) serves ONNX bundles: none of the training stack loads."""
    from routerforge.cli import TRAINING_MODULES

    code = (
        f"import sys, {module}\n"
        f"heavy = sorted(m for m in {sorted(TRAINING_MODULES)!r} if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_public_api_is_visible_and_names_are_functions_not_modules():
    import inspect

    import routerforge as rf
    from routerforge.evaluation import calibrate, evaluate
    from routerforge.exporters import export
    from routerforge.runtime import Router, Signals

    assert {
        "train",
        "train_multitask",
        "evaluate",
        "export",
        "calibrate",
        "run_pipeline",
        "load_config",
        "Router",
        "Signals",
    } <= set(dir(rf))
    assert all(inspect.isfunction(f) for f in (evaluate, calibrate, export, rf.run_pipeline, rf.load_config))
    assert rf.Router is Router and rf.Signals is Signals
    for package in (
        "runtime",
        "evaluation",
        "training",
        "modeling",
        "reports",
        "bench",
        "serving",
        "pipeline",
        "exporters",
        "data",
        "text",
    ):
        module = __import__(f"routerforge.{package}", fromlist=["__all__"])
        assert module.__all__ and set(module.__all__) <= set(dir(module)), package
        for name in module.__all__:
            assert getattr(module, name) is not None and not inspect.ismodule(getattr(module, name)), (package, name)
