"""Where the notebooks are: ``notebooks/`` and ``runbooks/`` of the working directory, else of the checkout.

Why: ``rca run overview`` and ``rca runbook RB001`` should work from the project root and from
anywhere an installed toolkit is run against its own checkout; a name resolves to exactly one
notebook or fails with the names that are known.
"""

from __future__ import annotations

import json
from pathlib import Path

from rca_toolkit.errors import NotFound

FOLDERS = ("notebooks", "runbooks")


def notebook_paths(*folders: str | Path) -> list[Path]:
    """Every ``*.ipynb`` (checkpoints excluded) under the given folders, sorted."""
    out: list[Path] = []
    for folder in folders:
        out += [p for p in sorted(Path(folder).glob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
    return out


def declared_parameters(path: str | Path) -> list:
    """The parameters a notebook declares, read as plain JSON (``rca list`` stays under a second: no
    nbformat and its schema validator). Anything but a plain v4 notebook with a parameters cell goes
    through :func:`rca_toolkit.runs.parameters.read_parameters`, whose errors name the problem."""
    from rca_toolkit.runs.parameters import parse_parameters, read_parameters

    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"] if isinstance(nb, dict) and nb.get("nbformat") == 4 else None
        cell = next(c for c in cells if c.get("cell_type") == "code"
                    and "parameters" in (c.get("metadata") or {}).get("tags", []))
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError, StopIteration):
        return read_parameters(path)
    return parse_parameters(source, where=path.name)


def _roots() -> list[Path]:
    """The working directory, then the checkout this package was installed from."""
    project = Path(__file__).resolve().parents[2]
    return [Path.cwd()] + ([project] if project != Path.cwd().resolve() else [])


def all_notebooks() -> list[Path]:
    """Every notebook and runbook of the first root that has any (relative to the working directory when inside it)."""
    for root in _roots():
        found = notebook_paths(*(root / f for f in FOLDERS))
        if found:
            return [p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p for p in found]
    return []


def find_notebook(name: str, *, runbook: bool = False) -> Path:
    """Resolve a path, file name, stem or runbook number (``RB001``) to one notebook."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path
    candidates = [p for p in all_notebooks() if not runbook or p.parent.name == "runbooks"]
    key = path.name[:-6] if path.name.endswith(".ipynb") else path.name
    exact = [p for p in candidates if p.stem == key]
    prefix = [p for p in candidates if p.stem.split("-")[0].upper() == key.upper()]
    match = exact or prefix
    if len(match) == 1:
        return match[0]
    known = ", ".join(p.stem for p in candidates) or "none"
    if len(match) > 1:
        raise NotFound(f"{name!r} matches several notebooks: {', '.join(p.stem for p in match)}", hint="give the full stem")
    raise NotFound(f"no {'runbook' if runbook else 'notebook'} named {name!r}", hint=f"known: {known}")
