"""Where the notebooks are: ``notebooks/`` and ``runbooks/`` of the working directory, else of the checkout.

Why: ``rca run overview`` and ``rca runbook RB001`` should work from the project root and from
anywhere an installed toolkit is run against its own checkout; a name resolves to exactly one
notebook or fails with the names that are known.
"""

from __future__ import annotations

from pathlib import Path

from rca_toolkit.errors import NotFound
from rca_toolkit.runs.runner import notebook_paths

FOLDERS = ("notebooks", "runbooks")


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
