"""The package's layers: no import cycle between its modules, and every import points down.

An AST walk of every module of ``python/fxgrad`` (imports inside functions included, since a
lazy import is still a dependency): the graph of module -> module imports has no cycle, and a
module imports only from its own layer or the layers below it, in the order each subpackage's
docstring states. No plugin is loaded; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "fxgrad"

# Lowest first; ``fxgrad._native`` (the extension) sits below them all, ``python -m fxgrad`` on top.
LAYERS = ["base", "host", "torch", "nn", "io", "config", "data", "train", "match", "evaluation", "cli"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> Dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The package's modules that ``name`` imports (``from X import Y`` counts as X.Y where Y is
    a module, else as X)."""
    found: Set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            found.update(t for t in targets if t == "fxgrad" or t.startswith("fxgrad."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module != "fxgrad" and not module.startswith("fxgrad."):
                continue
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in known or submodule == "fxgrad._native" else module)
    found.discard(name)
    return found


def graph() -> Dict[str, Set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) & (known | {"fxgrad._native"}) for name, path in found.items()}


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def layer(name: str) -> int:
    """The rank of a module's layer: ``import fxgrad`` ranks as the host layer (the root's names
    resolve to it), ``python -m fxgrad`` on top."""
    parts = name.split(".")
    if name == "fxgrad._native":
        return -1
    if len(parts) == 1:
        return LAYERS.index("host")
    if parts[1] == "__main__":
        return len(LAYERS)
    return LAYERS.index(parts[1])


def test_the_walk_sees_the_package():
    edges = graph()
    assert {"fxgrad.host.plugins", "fxgrad.train.trainer", "fxgrad.cli"} <= set(edges)
    # a relative, a lazy (in-function) and an absolute import are all seen
    assert "fxgrad.host.plugins" in edges["fxgrad.host.isolated"]
    assert "fxgrad.base.files" in edges["fxgrad.host.plugins"]
    assert "fxgrad.train" in edges["fxgrad.cli.training"] or "fxgrad.train.trainer" in edges["fxgrad.cli.training"]


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_top_level_holds_only_entry_modules():
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix in (".py", ".pyi"))
    assert top == ["__init__.py", "__main__.py", "_native.pyi", "torch.py"]
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()) == sorted(set(LAYERS) - {"torch"})


@pytest.mark.parametrize("name", [layer_name for layer_name in LAYERS if layer_name != "torch"])
def test_each_layer_says_what_it_may_use(name):
    docstring = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
    assert f"**{name}**" in docstring and "lowest first" in docstring


def test_imports_point_down():
    upward = [
        f"{source} -> {target}"
        for source, targets in sorted(graph().items())
        for target in sorted(targets)
        if layer(target) > layer(source)
    ]
    assert not upward, "imports from a higher layer: " + ", ".join(upward)
