"""The package's shape, checked: layers, no cycles, no private reach-ins, commands only behind the CLI.

Why: the restructuring made the folder listing the architecture; these checks keep it so. Every
import counts, including those inside functions, because a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rca_toolkit"
TOP_LEVEL_LIMIT = 8
# A layer may import only the layers before it in this list (and itself).
LAYERS = ["basics", "rules", "sources", "analyses", "runs", "runbooks", "commands"]
SIDE_LAYERS = {"demo": {"basics", "rules", "sources", "demo"}}
BASICS = {"rca_toolkit", "rca_toolkit.config", "rca_toolkit.errors", "rca_toolkit.distinct", "rca_toolkit.outcome",
          "rca_toolkit.frames", "rca_toolkit.flock"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> str:
    if module in BASICS:
        return "basics"
    if module == "rca_toolkit.cli":
        return "commands"
    return module.split(".")[1]


def imported_modules(source: str, current: str, is_package: bool) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every rca_toolkit import anywhere in the source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("rca_toolkit")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = current if is_package else current.rsplit(".", 1)[0]
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            if not base.startswith("rca_toolkit"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, None) if sub in MODULES else (base, alias.name))
    return found


def package_edges() -> dict[str, set[str]]:
    edges = {}
    for name, path in MODULES.items():
        deps = {m for m, _ in imported_modules(path.read_text(), name, path.name == "__init__.py")}
        edges[name] = {d for d in deps if d in MODULES and d != name}
    return edges


def test_the_top_level_holds_at_most_eight_modules_and_the_layers():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert len(modules) <= TOP_LEVEL_LIMIT, modules
    assert set(folders) == {"rules", "sources", "analyses", "runs", "runbooks", "demo", "commands"}, folders


def test_no_import_cycles_counting_imports_inside_functions():
    edges = package_edges()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    assert cycles == []


def test_every_import_goes_down_the_layers():
    order = {layer: i for i, layer in enumerate(LAYERS)}
    wrong = []
    for module, deps in package_edges().items():
        layer = layer_of(module)
        for dep in deps:
            dep_layer = layer_of(dep)
            if module.startswith("rca_toolkit.demo"):
                ok = dep_layer in SIDE_LAYERS["demo"]
            elif dep_layer == "demo":
                ok = layer == "commands"
            else:
                ok = order[dep_layer] <= order[layer]
            if not ok:
                wrong.append(f"{module} ({layer}) imports {dep} ({dep_layer})")
    assert wrong == []


def _private_uses(source: str, current: str, is_package: bool) -> list[str]:
    tree = ast.parse(source)
    aliases, uses = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) or isinstance(node, ast.Import):
            for module, name in imported_modules(ast.unparse(node), current, is_package):
                if name and name.startswith("_") and not name.startswith("__"):
                    uses.append(f"{module}.{name}")
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    for module, name in imported_modules(ast.unparse(node), current, is_package):
                        if name is None and module.endswith("." + alias.name):
                            aliases[alias.asname or alias.name] = module
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            uses.append(f"{aliases[node.value.id]}.{node.attr}")
    return uses


def notebook_sources(folder: Path):
    for path in sorted(folder.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_no_module_reaches_into_another_modules_private_names():
    found = []
    for name, path in MODULES.items():
        found += [f"{name}: {u}" for u in _private_uses(path.read_text(), name, path.name == "__init__.py")]
    for path in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py")):
        found += [f"{path.name}: {u}" for u in _private_uses(path.read_text(), "tests", False)]
    assert found == []


def test_only_the_cli_imports_commands():
    wrong = [f"{module} imports {dep}" for module, deps in package_edges().items() for dep in deps
             if dep.startswith("rca_toolkit.commands") and not (module == "rca_toolkit.cli" or module.startswith("rca_toolkit.commands"))]
    assert wrong == []


@pytest.mark.parametrize("folder", ["notebooks", "runbooks"])
def test_notebooks_import_only_public_layer_modules(folder):
    wrong = []
    for path, source in notebook_sources(ROOT / folder):
        for module, name in imported_modules(source, "notebook", False):
            if module.startswith("rca_toolkit.commands") or (name or "").startswith("_"):
                wrong.append(f"{path.name}: {module}.{name or ''}")
            if module not in MODULES:
                wrong.append(f"{path.name}: {module} is not a module")
    assert wrong == []
