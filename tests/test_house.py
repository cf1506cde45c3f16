"""The house's seams (ARCHITECTURE.md): firmware/ never imports simulator/ or the CLI above it; the pure
pipelines (omr/, biometrics/ but for its command-line edge) import no service; and no two modules of the
project import each other, directly or round a circle — counting imports made inside functions too, so
a lazy import cannot hide a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ballotbox", "firmware", "hal", "omr", "biometrics", "video", "config", "simulator")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every project module a file imports, anywhere in it, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = {target for target in _imports(path) if target in files and target != name
                       and not name.startswith(target + ".")}  # a module's own package __init__ is not a circle
    return graph


def test_firmware_never_imports_the_simulator_or_the_cli() -> None:
    offenders = {name: sorted(t for t in targets if t.split(".")[0] in ("simulator", "ballotbox"))
                 for name, targets in _graph().items() if name.split(".")[0] == "firmware"}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pure_pipelines_import_no_service() -> None:
    offenders = {}
    for name, targets in _graph().items():
        # biometrics.cli is the command-line edge: it takes its exit codes from firmware.errors
        if name.split(".")[0] in ("omr", "biometrics") and name != "biometrics.cli":
            bad = sorted(t for t in targets if t.split(".")[0] in ("firmware", "simulator", "ballotbox", "hal"))
            if bad:
                offenders[name] = bad
    assert offenders == {}


def test_nothing_in_biometrics_or_omr_imports_the_simulator() -> None:
    offenders = {name: sorted(t for t in targets if t.split(".")[0] in ("simulator", "ballotbox"))
                 for name, targets in _graph().items() if name.split(".")[0] in ("omr", "biometrics")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_circles_between_modules() -> None:
    graph = _graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert circles == []
