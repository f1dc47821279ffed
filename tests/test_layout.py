"""The direction of dependencies (ARCHITECTURE.md, "Layout"): the foundation below both sides, the people side
below the publishing side, the web on top of both with nothing importing it, and no import circle anywhere.

Read from the source with `ast`, imports inside functions included (a circle hidden in a function is still
a circle), so the test fails the moment someone adds an import against the direction. Alembic's migration
scripts are left out: Alembic runs them, nothing of Herald imports them, and its env.py loads both sides'
tables to compare the whole schema when a developer writes a migration.
"""

from __future__ import annotations

import ast
from pathlib import Path

from foundation.settings import PROJECT_ROOT

# Bottom to top: each package may import itself and those before it, never one after it.
LAYERS = ("foundation", "subscribers", "worker", "web")
LEFT_OUT = ("migrations",)  # folders of scripts that Alembic runs


def module_name(root: Path, file: Path) -> str:
    name = ".".join(file.relative_to(root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(root: Path, layers: tuple[str, ...] = LAYERS) -> dict[str, set[str]]:
    """Each module of `layers` under `root`, with the modules of `layers` it imports (the most specific one:
    `from worker.campaigns import ledger` imports worker.campaigns.ledger)."""
    graph: dict[str, set[str]] = {}
    for package in layers:
        for file in sorted((root / package).rglob("*.py")):
            if any(part in LEFT_OUT for part in file.relative_to(root).parts):
                continue
            found: set[str] = set()
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    for alias in node.names:
                        full = f"{node.module}.{alias.name}"
                        found.add(full if is_module(root, full) else node.module)
            graph[module_name(root, file)] = {name for name in found if name.split(".")[0] in layers}
    return graph


def against_the_direction(graph: dict[str, set[str]], layers: tuple[str, ...] = LAYERS) -> list[str]:
    """`importer -> imported` for every import of a package above the importer's."""
    rank = {package: number for number, package in enumerate(layers)}
    return [f"{module} -> {imported}" for module, found in sorted(graph.items()) for imported in sorted(found)
            if rank[imported.split(".")[0]] > rank[module.split(".")[0]]]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or round a circle (Tarjan's strongly connected
    components of more than one module, or a module that imports itself)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1 or module in graph.get(module, ()):
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return found


def test_dependencies_point_one_way_and_nothing_imports_the_web():
    assert against_the_direction(imports(PROJECT_ROOT)) == []


def test_no_module_of_herald_is_part_of_an_import_circle():
    assert circles(imports(PROJECT_ROOT)) == []


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


def test_the_checker_finds_an_import_against_the_direction_and_a_circle(tmp_path):
    """A small tree with the mistakes the test exists to catch, so a checker that saw nothing would fail here."""
    root = _package(tmp_path, {
        "foundation/__init__.py": "",
        "foundation/settings.py": "from worker.cli import app\n",  # the foundation reaching up
        "subscribers/__init__.py": "",
        "subscribers/store.py": "def f():\n    from web import app\n",  # the people side importing the web, lazily
        "subscribers/profile.py": "from subscribers import store\n",  # allowed: its own side
        "worker/__init__.py": "",
        "worker/cli.py": "from worker.tasks import run\nfrom subscribers import profile\n",
        "worker/tasks.py": "def run():\n    from worker import cli\n",  # a circle hidden in a function
        "web/__init__.py": "from worker.cli import app\n",  # allowed: the web is on top
        "web/app.py": "",
        "migrations/env.py": "import web\n",  # not a package of the layers: not read
        "foundation/migrations/env.py": "import worker.cli\n",  # Alembic's script: left out
    })
    graph = imports(root)
    assert graph["worker.cli"] == {"worker.tasks", "subscribers.profile"}
    assert against_the_direction(graph) == ["foundation.settings -> worker.cli", "subscribers.store -> web.app"]
    assert circles(graph) == [["worker.cli", "worker.tasks"]]
