"""Which run folders the toolkit wrote, so commands that delete, replace or nest touch only their own.

Why: ``rca report prune`` deletes folders and ``--out`` creates them. A folder that merely holds
a file named ``run.json`` (a user's notes, another tool's output, a copy with extra files) must
never be deleted, and a new run must never be nested inside an "immutable" one. The proof is
the signature the runner writes into ``run.json`` (``"generator": "rca_toolkit/<version>"``, the
keys every run has, a run id of the runner's shape) and a folder holding only what a run writes
(:data:`RUN_FILES`, the executed notebook, PNG figures, the Markdown report's images).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from rca_toolkit.errors import ConfigError

RUN_JSON = "run.json"
GENERATOR_PREFIX = "rca_toolkit/"
REQUIRED_KEYS = frozenset({"generator", "notebook", "run_id", "parameters", "started_at", "ended_at", "status",
                           "outcome"})
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
RUN_FILES = frozenset({RUN_JSON, "metrics.json", "params.yaml", "report.html", "report.md", "signoff.md",
                       "signoff.json"})
RUN_SUBFOLDERS = {"figures": (".png",), "report_files": (".png", ".jpg", ".jpeg", ".gif", ".svg")}


def toolkit_version() -> str:
    """The installed package version (what a run records as its provenance)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rca_toolkit")
    except PackageNotFoundError:
        return "unknown (not installed)"


def generator() -> str:
    """The signature the runner writes into every ``run.json``."""
    return GENERATOR_PREFIX + toolkit_version()


def read_signed_run(folder: str | Path) -> dict | None:
    """``run.json`` of ``folder`` when the toolkit wrote it (signature, keys, run id shape), else None."""
    path = Path(folder) / RUN_JSON
    try:
        if path.is_symlink() or not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not REQUIRED_KEYS <= data.keys():
        return None
    signed = isinstance(data["generator"], str) and data["generator"].startswith(GENERATOR_PREFIX)
    shaped = isinstance(data["run_id"], str) and RUN_ID.fullmatch(data["run_id"]) is not None
    notebook = isinstance(data["notebook"], str) and data["notebook"].endswith(".ipynb")
    return data if signed and shaped and notebook else None


def foreign_reason(folder: str | Path) -> str | None:
    """Why ``folder`` is not a run folder the toolkit wrote; None when it is (safe to delete)."""
    folder = Path(folder)
    if folder.is_symlink():
        return "it is a symbolic link"
    run = read_signed_run(folder)
    if run is None:
        return f"its {RUN_JSON} was not written by rca (no {GENERATOR_PREFIX}<version> signature)"
    allowed = RUN_FILES | {Path(run["notebook"]).name}
    try:
        for entry in os.scandir(folder):
            if entry.is_symlink():
                return f"it holds a symbolic link {entry.name}"
            if entry.is_dir(follow_symlinks=False):
                suffixes = RUN_SUBFOLDERS.get(entry.name)
                if suffixes is None:
                    return f"it holds a folder {entry.name}/ that no run writes"
                for sub in os.scandir(entry.path):
                    if sub.is_symlink():
                        return f"it holds a symbolic link {entry.name}/{sub.name}"
                    if not sub.is_file(follow_symlinks=False) or not sub.name.lower().endswith(suffixes):
                        return f"it holds {entry.name}/{sub.name}, which no run writes"
            elif not entry.is_file(follow_symlinks=False) or entry.name not in allowed:
                return f"it holds {entry.name}, which no run writes"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    return None


def check_output_folder(folder: str | Path, *, option: str = "--out") -> None:
    """Refuse an output folder that is (under) a file or lies inside a run folder, before anything is created.

    Why: a run folder is immutable; a run nested inside it would change it and be deleted with it.
    """
    given = Path(folder)
    target = given.expanduser().resolve()
    for candidate in (target, *target.parents):
        if candidate.exists() and not candidate.is_dir():
            where = "is a file" if candidate == target else f"lies under the file {candidate}"
            raise ConfigError(f"{option} {given} {where}", hint="give a folder path")
        if candidate.is_dir() and read_signed_run(candidate) is not None:
            raise ConfigError(f"{option} {given} lies inside the run folder {candidate}, which is immutable",
                              hint="give a folder outside every run folder, e.g. reports/")


__all__ = ["GENERATOR_PREFIX", "REQUIRED_KEYS", "RUN_FILES", "RUN_JSON", "check_output_folder", "foreign_reason",
           "generator", "read_signed_run", "toolkit_version"]
