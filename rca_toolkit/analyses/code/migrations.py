"""Migration history: what the ``migrations`` table says ran, against the migration files.

Laravel records each migration it ran as (id, migration, batch); ``migrate`` runs every file
whose name is not there, sorted by name, as one new batch. So the table tells which code
reached the database and when (by batch), but only as well as its names are clean: the
askproai snapshot has id gaps, out-of-order and future-dated names and malformed ones
(data-contract 3.9). Use it for drift checks, never as schema truth.

Name rules (they reproduce the contract's counts: 2 malformed, 13 out of order):
*malformed* = no valid ``YYYY_MM_DD_`` date prefix; *nonstandard* = dated but not the
``YYYY_MM_DD_HHMMSS_snake_case`` form ``make:migration`` writes (hand-named files);
*out of order* = date earlier than the previous dated row's date, by id; *future-dated* =
date after the reference day.

``migration_history`` takes the table as a frame (``rca_toolkit.sources.loaders.migrations``) and
optionally the ``database/migrations`` folder and the app's git checkout (read-only
``git log``) and returns a ``MigrationHistory`` result. Files are the ones Laravel's Migrator finds
(:mod:`rca_toolkit.sources.migration_files`: ``glob('*_*.php')``, not recursive, no hidden names,
named without ``.php``), so *pending* and *ran, file missing* are what ``php artisan migrate:status``
says; the application's ``composer.lock`` names the framework version the rule is checked against.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from rca_toolkit.sources import loaders, migration_files
from rca_toolkit.analyses.markdown import md_items, md_table, md_text
from rca_toolkit.analyses.tables import show as show_table
from rca_toolkit.errors import ConfigError, NotFound, SchemaError

NAME_RE = re.compile(r"^(\d{4}_\d{2}_\d{2}_\d{6})_([a-z0-9]+(?:_[a-z0-9]+)*)$")
DATE_RE = re.compile(r"^(\d{4}_\d{2}_\d{2})_")
REQUIRES = {"load_history": loaders.REQUIRES["migrations"]}  # loaders.migrations checks it before reading


def name_prefix(name: str) -> pd.Timestamp | None:
    """The date (and time, for standard names) a migration name starts with; None if malformed."""
    match = DATE_RE.match(name)
    if not match:
        return None
    full = NAME_RE.match(name)
    try:
        if full:
            return pd.Timestamp(datetime.strptime(full.group(1), "%Y_%m_%d_%H%M%S"))
        return pd.Timestamp(datetime.strptime(match.group(1), "%Y_%m_%d"))
    except ValueError:  # e.g. month 13
        return None


def name_kind(name: str) -> str:
    """``standard``, ``nonstandard`` (dated, not YYYY_MM_DD_HHMMSS_snake_case) or ``malformed``."""
    if name_prefix(name) is None:
        return "malformed"
    return "standard" if NAME_RE.match(name) else "nonstandard"


def git_first_commits(git_dir, files_dir) -> dict[str, pd.Timestamp]:
    """Author date (UTC) of the commit that first added each file in ``files_dir`` (read-only git)."""
    git_dir, files_dir = Path(git_dir), Path(files_dir)
    if not git_dir.is_dir():
        raise NotFound(f"git checkout {git_dir} does not exist", hint="give the application's repository root")
    if not files_dir.is_dir():
        raise NotFound(f"migrations folder {files_dir} does not exist", hint="pass --files DIR")
    cmd = ["git", "-C", str(files_dir), "log", "--diff-filter=A", "--format=@@%aI", "--name-only", "--relative",
           "--no-renames", "--", "."]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise ConfigError("git is not installed", hint="install git or omit --git") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or [f"git exited with {proc.returncode}"])[0]
        raise NotFound(f"{git_dir} is not a readable git checkout: {said}",
                       hint="give the application's repository root (a clone with history)")
    first: dict[str, pd.Timestamp] = {}
    current = None
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            current = pd.Timestamp(line[2:]).tz_convert("UTC")
        elif line.strip() and current is not None and "/" not in line and migration_files.is_migration_file_name(line):
            first[migration_files.migration_name(line)] = current  # newest first: the last seen is the first add
    return first


@dataclass
class MigrationHistory:
    """Ran / pending / missing / suspicious migrations and the batch timeline."""

    migrations: pd.DataFrame
    batches: pd.DataFrame
    pending: list[str]
    ran_file_missing: list[str]
    duplicates: list[str]
    out_of_order: list[str]
    future_dated: list[str]
    malformed: list[str]
    nonstandard: list[str]
    id_gaps: list[int]
    reference_date: date
    reference_basis: str
    files_checked: bool
    git_checked: bool
    notes: list[str] = field(default_factory=list)
    laravel_version: str | None = None  # from the application's composer.lock, when there is one

    @property
    def ran(self) -> int:
        return int(len(self.migrations))

    def counts(self) -> dict[str, int]:
        return {"ran": self.ran, "batches": int(len(self.batches)), "pending": len(self.pending),
                "ran_file_missing": len(self.ran_file_missing), "duplicates": len(self.duplicates),
                "out_of_order": len(self.out_of_order), "future_dated": len(self.future_dated),
                "malformed": len(self.malformed), "nonstandard": len(self.nonstandard),
                "id_gaps": len(self.id_gaps)}

    def to_dict(self) -> dict:
        batches = self.batches.copy()
        for col in ("min_prefix", "max_prefix", "likely_deploy"):
            batches[col] = batches[col].map(lambda v: None if pd.isna(v) else v.isoformat())
        return {
            "counts": self.counts(),
            "pending": self.pending, "ran_file_missing": self.ran_file_missing, "duplicates": self.duplicates,
            "out_of_order": self.out_of_order, "future_dated": self.future_dated, "malformed": self.malformed,
            "nonstandard": self.nonstandard,
            "id_gaps": self.id_gaps, "reference_date": self.reference_date.isoformat(),
            "reference_basis": self.reference_basis, "files_checked": self.files_checked,
            "git_checked": self.git_checked, "laravel_version": self.laravel_version,
            "batches": batches.to_dict("records"), "notes": self.notes,
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str, ensure_ascii=False, **kwargs)

    def _lists(self) -> list[tuple[str, list]]:
        return [("pending (file, no row)", self.pending), ("ran, file missing", self.ran_file_missing),
                ("duplicate names", self.duplicates), ("out of order against ids", self.out_of_order),
                (f"future-dated (after {self.reference_date}, {self.reference_basis})", self.future_dated),
                ("malformed names (no YYYY_MM_DD_ date)", self.malformed),
                ("nonstandard names (dated, not YYYY_MM_DD_HHMMSS_snake_case)", self.nonstandard),
                ("id gaps", self.id_gaps)]

    def to_text(self) -> str:
        c = self.counts()
        lines = [f"{c['ran']} migrations ran in {c['batches']} batches"
                 + ("" if self.files_checked else " (no migration folder given: pending/missing not checked)")]
        for label, items in self._lists():
            if items or label.startswith(("pending", "ran, file")) and self.files_checked:
                lines.append(f"{label}: {len(items)}")
                lines += [f"  {item}" for item in items[:50]]
                if len(items) > 50:
                    lines.append(f"  ... {len(items) - 50} more")
        lines.append("batches:" if len(self.batches) else "batches: none")
        for b in self.batches.itertuples(index=False):
            deploy = "" if pd.isna(b.likely_deploy) else f"  deployed >= {b.likely_deploy.isoformat()} (inferred)"
            lines.append(f"  batch {b.batch}: {b.n} (ids {b.first_id}-{b.last_id}), names "
                         f"{_day(b.min_prefix)} .. {_day(b.max_prefix)}{deploy}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        out = [md_table(pd.DataFrame(list(self.counts().items()), columns=["check", "count"])), ""]
        for label, items in self._lists():
            if items:
                out.append(f"- **{label}:** " + md_text(", ".join(map(str, items[:50]))))
        out += ["", md_table(self.batch_table())]
        out += md_items(self.notes)
        return "\n".join(out)

    def batch_table(self) -> pd.DataFrame:
        return self.batches.drop(columns=["names", "ids"])

    def _repr_html_(self) -> str:
        parts = ["<table><tr><th>check</th><th>count</th></tr>"
                 + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in self.counts().items()) + "</table>"]
        for label, items in self._lists():
            if items:
                parts.append(f"<p><b>{html.escape(label)}:</b> {html.escape(', '.join(map(str, items[:50])))}</p>")
        parts.append(show_table(self.batch_table()).to_html())
        parts += [f"<p><i>{html.escape(n)}</i></p>" for n in self.notes]
        return "\n".join(parts)


def _day(value) -> str:
    return "?" if value is None or pd.isna(value) else value.strftime("%Y-%m-%d")


def _reference(today, commits: dict) -> tuple[date, str]:
    if today is not None:
        try:
            return pd.Timestamp(today).date(), "given"
        except (ValueError, TypeError):
            raise ConfigError(f"today={today!r} is not a date", hint="use YYYY-MM-DD") from None
    if commits:
        return max(commits.values()).date(), "latest migration commit in git"
    return datetime.now(timezone.utc).date(), "today (UTC)"


def migration_history(migrations_df: pd.DataFrame, files_dir=None, git_dir=None, *, today=None) -> MigrationHistory:
    """Analyse the ``migrations`` table; ``files_dir``/``git_dir`` add file and commit checks."""
    missing = [c for c in ("id", "migration", "batch") if c not in migrations_df.columns]
    if missing:
        raise SchemaError(f"migrations frame lacks columns {', '.join(missing)}",
                          hint="load it with rca_toolkit.sources.loaders.migrations(db)")
    if git_dir is not None and files_dir is None:
        files_dir = Path(git_dir) / "database" / "migrations"
    files: set[str] | None = None
    version = None
    if files_dir is not None:
        files = set(migration_files.migration_files(files_dir))  # NotFound when the folder is absent
        version = migration_files.laravel_version(Path(files_dir).parent.parent, git_dir)
    commits = git_first_commits(git_dir, files_dir) if git_dir is not None else {}
    ref_date, basis = _reference(today, commits)

    frame = migrations_df[["id", "migration", "batch"]].copy()
    frame["id"] = frame["id"].astype("int64")
    frame["batch"] = frame["batch"].astype("int64")
    frame["migration"] = frame["migration"].astype(str)
    frame = frame.sort_values("id").reset_index(drop=True)
    frame["prefix"] = pd.to_datetime(frame["migration"].map(name_prefix))
    frame["kind"] = frame["migration"].map(name_kind)
    frame["malformed"] = frame["kind"] == "malformed"
    day = frame["prefix"].dt.normalize()
    frame["duplicate"] = frame["migration"].duplicated(keep=False)
    # An inversion against the previous well-formed name (by id); one future-dated name does not
    # make every later row "out of order".
    # Compared by day: hand-named files carry no time, so finer comparisons invent inversions.
    previous = day.ffill().shift(1)
    frame["out_of_order"] = day.notna() & previous.notna() & (day < previous)
    frame["future"] = day.notna() & (day > pd.Timestamp(ref_date))
    frame["file_present"] = frame["migration"].isin(files) if files is not None else pd.NA
    frame["first_commit"] = pd.to_datetime(frame["migration"].map(commits), utc=True) if commits else pd.NaT

    ids = set(frame["id"])
    gaps = sorted(set(range(min(ids), max(ids) + 1)) - ids) if ids else []
    names = set(frame["migration"])
    notes = [migration_files.rule_note(version)] if files is not None else []
    if commits:
        without = int(frame["first_commit"].isna().sum())
        if without:
            notes.append(f"{without} ran migrations have no commit adding them under {files_dir}")
        notes.append("likely_deploy is inferred: the latest first-commit date of a batch's files "
                     "(the batch cannot have run earlier)")
    return MigrationHistory(
        migrations=frame,
        batches=_batches(frame),
        pending=sorted(files - names) if files is not None else [],
        ran_file_missing=sorted(names - files) if files is not None else [],
        duplicates=sorted(frame.loc[frame["duplicate"], "migration"].unique()),
        out_of_order=list(frame.loc[frame["out_of_order"], "migration"]),
        future_dated=list(frame.loc[frame["future"], "migration"]),
        malformed=list(frame.loc[frame["malformed"], "migration"]),
        nonstandard=list(frame.loc[frame["kind"] == "nonstandard", "migration"]),
        id_gaps=[int(g) for g in gaps],
        reference_date=ref_date, reference_basis=basis,
        files_checked=files is not None, git_checked=git_dir is not None, notes=notes, laravel_version=version,
    )


def _batches(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per batch: size, id range, name-date range and the inferred deploy time."""
    rows = []
    for batch, group in frame.groupby("batch", sort=True):
        commits = group["first_commit"].dropna() if "first_commit" in group else pd.Series(dtype=object)
        rows.append({
            "batch": int(batch), "n": int(len(group)), "first_id": int(group["id"].min()),
            "last_id": int(group["id"].max()), "ids": [int(i) for i in group["id"]],
            "names": list(group["migration"]), "min_prefix": group["prefix"].min(),
            "max_prefix": group["prefix"].max(),
            "likely_deploy": commits.max() if len(commits) else pd.NaT,
            "deploy_inferred": bool(len(commits)),
        })
    columns = ["batch", "n", "first_id", "last_id", "ids", "names", "min_prefix", "max_prefix",
               "likely_deploy", "deploy_inferred"]
    return pd.DataFrame(rows, columns=columns)


def load_history(db=None, files=None, git=None, today=None, *, code_path=None) -> MigrationHistory:
    """Load the migrations table and analyse it; ``code_path`` supplies ``database/migrations`` when
    ``files`` is empty and that folder exists. Empty strings mean "not given" (runbook parameters).

    One path for ``rca migrations`` and the RB010 checks.
    """
    if not files and code_path and (Path(code_path) / "database" / "migrations").is_dir():
        files = Path(code_path) / "database" / "migrations"
    frame = loaders.migrations(db or None)
    return migration_history(frame, files_dir=files or None, git_dir=git or None, today=today or None)
