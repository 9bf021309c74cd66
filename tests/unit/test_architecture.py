"""The layout holds: imports point inward (never to a layer above), no cycles, short files.

Layers, lowest first. A module may import its own package and any package of a
lower layer; packages of the same layer never import each other (the gateway
and the nodes share no code but what lies below them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mpc_gateway"
ROOT = PACKAGE.parent

LAYERS: dict[str, int] = {
    "errors": 0,
    "canonical": 0,
    "lanes": 0,
    "proto": 0,
    "schemas": 0,
    "settings": 1,
    "pki": 1,
    "query": 1,
    "audit": 1,
    "pseudonym": 1,
    "tables": 1,
    "text": 1,
    "oprf": 2,
    "policy": 2,
    "privacy": 1,
    "sql": 4,
    "computations": 3,
    "orders": 4,
    "mpc": 4,
    "rpc": 5,
    "gateway": 6,
    "node": 6,
    "client": 7,
    "client_calls": 6,
    "auditor": 7,
    "devnet": 8,
    "cli": 9,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST, runtime_top_level: bool) -> Iterator[str]:
    """The mpc_gateway modules imported; only those run at import time if ``runtime_top_level``."""
    body: list[ast.stmt] = list(getattr(tree, "body", []))
    while body:
        node = body.pop(0)
        if isinstance(node, ast.If) and runtime_top_level and _is_type_checking(node.test):
            body += node.orelse
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("mpc_gateway"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mpc_gateway"):
            module = str(node.module)
            for alias in node.names:  # "from package import module" imports the module
                sub = f"{module}.{alias.name}"
                yield sub if sub in MODULES else module
        if runtime_top_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If | ast.Try | ast.With | ast.ClassDef):
            body += [n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]
        elif not runtime_top_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body += node.body


def _graph(runtime_top_level: bool) -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {i for i in _imports(tree, runtime_top_level) if i in MODULES} - {name}
    return graph


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in MODULES if _package(m)}
    assert packages == set(LAYERS), "add the new package to LAYERS, at the layer it belongs"


def test_no_module_imports_a_layer_above_it_or_a_sibling_package() -> None:
    wrong = []
    for module, imported in _graph(runtime_top_level=False).items():
        mine = _package(module)
        for target in imported:
            theirs = _package(target)
            if theirs and mine and theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_between_modules_or_packages() -> None:
    modules = _graph(runtime_top_level=True)
    assert _cycle(modules) is None, " -> ".join(_cycle(modules) or [])
    packages: dict[str, set[str]] = {}
    for module, imported in _graph(runtime_top_level=False).items():
        packages.setdefault(_package(module), set()).update(
            _package(t) for t in imported if _package(t) != _package(module)
        )
    assert _cycle(packages) is None, " -> ".join(_cycle(packages) or [])


def test_the_checker_sees_an_upward_import() -> None:
    tree = ast.parse("from mpc_gateway.gateway.service import Gateway\n")
    assert list(_imports(tree, runtime_top_level=True)) == ["mpc_gateway.gateway.service"]
    hidden = ast.parse("def f():\n    from mpc_gateway.cli import app\n")
    assert list(_imports(hidden, runtime_top_level=False)) == ["mpc_gateway.cli.app"]
    assert list(_imports(hidden, runtime_top_level=True)) == []  # a lazy import runs later
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def _sources() -> list[Path]:
    found = []
    for top in ("mpc_gateway", "tests", "benchmarks", "scripts"):
        found += [p for p in (ROOT / top).rglob("*.py") if "proto" not in p.relative_to(ROOT).parts]
    return sorted(found)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_stays_under_400_lines(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines < 400, f"{path.relative_to(ROOT)} has {lines} lines: split it by what it is for"
