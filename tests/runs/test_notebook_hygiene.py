"""Every notebook in notebooks/ and runbooks/: valid nbformat, one typed and documented
parameters cell that papermill reads the same way, outputs stripped, and thin cells
(no def, class, try, SQL or shell installs: the package computes, notebooks narrate)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from rca_toolkit.runs import parameters, runner

ROOT = Path(__file__).resolve().parents[2]
ALL = runner.notebook_paths(ROOT / "notebooks", ROOT / "runbooks")
RUNBOOKS = [p for p in ALL if p.parent.name == "runbooks"]
SQL = re.compile(r"(?is)\b(select\b.+\bfrom|insert\s+into|update\s+\w+\s+set|delete\s+from|create\s+table|drop\s+table)\b")
BANNED = {ast.FunctionDef: "def", ast.AsyncFunctionDef: "async def", ast.ClassDef: "class", ast.Try: "try"}


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


def test_the_notebooks_exist():
    names = {p.name for p in RUNBOOKS}
    assert {"RB001-post-deployment.ipynb", "RB020-booking-health.ipynb", "RB030-cache-invalidation.ipynb",
            "RB040-data-consistency.ipynb"} <= names


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_valid_nbformat_and_python_kernel(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("language") == "python"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# ")


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_one_typed_documented_parameters_cell_papermill_can_read(path):
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    assert code[0] is tagged[0], "the parameters cell is the first code cell"
    declared = parameters.parse_parameters(tagged[0].source, where=path.name)
    assert declared, "at least one parameter"
    seen = papermill.inspect_notebook(str(path))
    assert list(seen) == [p.name for p in declared], "papermill reads every parameter line (no '=' in help texts)"
    for p in declared:
        assert seen[p.name]["inferred_type_name"] == p.type and seen[p.name]["help"] == p.help


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_outputs_are_stripped(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.get('id')} has outputs"
        assert "papermill" not in cell.metadata, "an executed copy was committed"
    assert "papermill" not in nb.metadata


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_cells_are_thin(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not re.search(r"(?m)^\s*[!%]+\s*(pip|conda)\b", cell.source), "no installs from a notebook"
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            for kind, word in BANNED.items():
                assert not isinstance(node, kind), f"`{word}` in cell {cell.get('id')}: move it into the package"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not SQL.search(node.value), f"SQL text in cell {cell.get('id')}: use a loader"
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                assert name not in {"read_sql", "read_sql_query", "execute", "text"}, f"raw query call {name}()"


def _forbidden_imports(source: str) -> list[str]:
    """Toolkit imports a notebook must not make: the host-side runner (a notebook runs inside the
    kernel: ``rca_toolkit.runs.kernel``), the CLI's ``commands``, or any ``_private`` name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rca_toolkit"):
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("rca_toolkit")]
        else:
            continue
        found += [n for n in names if n.startswith(("rca_toolkit.commands", "rca_toolkit.runs.runner"))
                  or any(part.startswith("_") for part in n.split("."))]
    return found


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_notebooks_import_the_kernel_helpers_and_public_modules_only(path):
    nb = nbformat.read(str(path), as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert _forbidden_imports(source) == []


@pytest.mark.parametrize("path", RUNBOOKS, ids=_ids(RUNBOOKS))
def test_runbooks_are_numbered_documented_and_record_a_verdict(path):
    assert re.match(r"^RB\d{3}-[a-z0-9-]+\.ipynb$", path.name)
    nb = nbformat.read(str(path), as_version=4)
    intro = nb.cells[0].source
    for section in ("When to use", "Safety", "Steps"):
        assert section in intro, f"{path.name} intro lacks '{section}'"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert ".record()" in code, "the runbook must record its verdict for `rca runbook`"


def test_hygiene_catches_a_bad_notebook(tmp_path):
    """The rules above fail on a notebook that breaks them (so the suite can fail)."""
    bad = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Bad"),
        nbformat.v4.new_code_cell("limit = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("def helper():\n    return 'SELECT * FROM calls'"),
    ])
    with pytest.raises(Exception):
        parameters.parse_parameters(bad.cells[1].source)
    tree = ast.parse(bad.cells[2].source)
    assert any(isinstance(n, ast.FunctionDef) for n in ast.walk(tree))
    assert SQL.search("SELECT * FROM calls")
    assert _forbidden_imports("from rca_toolkit.runs import runner as notebooks\n"
                              "from rca_toolkit.commands.compare import before_after\n"
                              "from rca_toolkit.sources.loaders import _SCHEMAS\n"
                              "from rca_toolkit.runs import kernel") == [
        "rca_toolkit.runs.runner", "rca_toolkit.commands.compare.before_after", "rca_toolkit.sources.loaders._SCHEMAS"]
