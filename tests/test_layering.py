"""The folder list is the pipeline (read -> plan -> apply -> status), and imports keep it so.

Every import of the package, at module level or inside a function, is checked against the rooms
a module may enter: the stages `source`, `router` and `status` never import each other; `render`
and `metrics` see only `report` and `model` (`markdown` also `render`, whose change lines it
shows); `testing` imports nothing of the product; only
`run` and `job` cross from one stage to another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sync_job"

SHARED = {"model", "errors", "logs"}
STAGES = {"source", "router", "status"}
# room -> the rooms its modules may import ("" is the package itself: `__version__`)
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "errors": set(),
    "settings": set(),
    "logs": set(),
    "kubeapi": {"errors"},
    "lease": {"errors", "kubeapi"},
    "source": SHARED | {"kubeapi", "source"},
    "router": SHARED | {"router"},
    "status": SHARED | {"kubeapi", "status"},
    "testing": {"testing"},
    "report": {"model", "router", "status"},
    "render": {"model", "report"},
    "markdown": {"model", "report", "render"},
    "metrics": {"model", "report"},
    "demo": {"job", "report", "testing"},
    "cli": {"", "settings", "job"},
    "__main__": {"cli"},
    "__init__": set(),
    "run": SHARED | STAGES | {"report"},
    "job": SHARED
    | STAGES
    | {"report", "run", "settings", "kubeapi", "lease", "render", "markdown", "metrics"}
    | {"demo"},
}


def room(module: str) -> str:
    """`sync_job.router.planner` -> `router`; `sync_job` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of the package, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"line {node.lineno}: relative import; write sync_job.… instead")
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "sync_job":  # from sync_job import job, render, …
                found += [(node.lineno, f"sync_job.{alias.name}") for alias in node.names]
            elif node.module.startswith("sync_job."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("sync_job")]
    return found


def violations(module_room: str, source: str) -> list[str]:
    allowed = ALLOWED[module_room]
    problems = []
    for line, module in imported_modules(source):
        target = room(module)
        if module == "sync_job.__version__" or module == "sync_job":
            target = ""
        if target != module_room and target not in allowed:
            problems.append(f"line {line}: {module_room} may not import {module}")
    return problems


def product_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_room(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


@pytest.mark.parametrize("path", product_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_what_its_room_may(path: Path) -> None:
    assert violations(module_room(path), path.read_text(encoding="utf-8")) == []


def test_every_module_has_a_room_and_a_docstring() -> None:
    for path in product_modules():
        assert module_room(path) in ALLOWED, f"{path} is in no room of the layering rules"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{path} says nothing about what it owns"


@pytest.mark.parametrize(
    ("room_name", "forbidden"),
    [
        ("source", "from sync_job.router.planner import plan_router"),
        ("router", "from sync_job.status.conditions import build_status"),
        ("status", "from sync_job.source.snapshot import ClusterSnapshot"),
        ("render", "from sync_job.router.plan import Change"),
        ("markdown", "from sync_job.router.guard import HeldBack"),
        ("metrics", "from sync_job.run import run_once"),
        ("testing", "from sync_job.model import Action"),
        ("cli", "from sync_job.run import run_once"),
        ("router", "def late():\n    from sync_job import kubeapi\n"),
    ],
)
def test_a_forbidden_import_is_caught(room_name: str, forbidden: str) -> None:
    assert violations(room_name, forbidden), f"{room_name}: {forbidden!r} went unnoticed"


def test_run_once_fits_on_one_screen() -> None:
    tree = ast.parse((PACKAGE / "run.py").read_text(encoding="utf-8"))
    (run_once,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_once"]
    assert run_once.end_lineno is not None
    assert run_once.end_lineno - run_once.lineno + 1 <= 60
