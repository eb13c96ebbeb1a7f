"""Runbook checks on the application code: phantom columns (drift) and migration history (RB001, RB010).

The analyses (``analyses.code.drift``, ``analyses.code.migrations``) find and describe; these
functions only judge their results as CheckResults. The ``check_*`` functions load first, so a
bad input (missing path, unreachable database) becomes an ERROR check instead of a crash.
"""

from __future__ import annotations

from pathlib import Path

from rca_toolkit.errors import NotFound
from rca_toolkit.sources import loaders
from rca_toolkit.sources.db import introspect
from rca_toolkit.analyses.code import drift, migrations
from rca_toolkit.runbooks.check_helpers import not_enough_data
from rca_toolkit.runbooks.framework import CheckResult, NotApplicable, Status

# What the database checks read (rca_toolkit.sources.requirements; loaders.migrations checks it first); the
# drift checks compare the code with whatever tables the live schema has, so they declare none
REQUIRES = {"check_pending": loaders.REQUIRES["migrations"], "check_names": loaders.REQUIRES["migrations"]}


# --------------------------------------------------------------------------- RB001: one summary check
def phantom_columns(db=None, code_path: str = "") -> CheckResult:
    """Columns written by the code but absent from the live schema (drift scanner); FAIL when any raise."""
    if not code_path:
        raise NotApplicable("no code path given")
    root = Path(code_path)
    if not root.is_dir():
        raise NotFound(f"code path {code_path} is not a folder", hint="give the Laravel project root")
    writes = drift.scan_code(root)
    report = drift.find_drift(writes, introspect(loaders.engine_for(db)))
    cols = report.by_column()
    evidence = {"code_path": str(root), "writes_checked": report.writes_checked,
                "phantom_columns": cols.to_dict("records"), "missing_tables": len(report.missing_tables)}
    if report.raises_at_runtime:
        status = Status.FAIL
    elif not report.writes_checked:  # 0 phantom columns of 0 writes: nothing was verified
        return not_enough_data("no phantom columns", f"no column write found under {root}: nothing was verified", evidence,
                               "Point code_path at the Laravel project root (app/ with the models and services).")
    else:
        status = Status.WARN if len(cols) else Status.PASS
    listed = ", ".join(f"{r.table}.{r.column}" for r in cols.itertuples()) or "none"
    return CheckResult("no phantom columns", status, f"{len(cols)} phantom columns ({listed}); "
                       f"{report.writes_checked} writes checked", evidence,
                       "Remove the keys from every write site (forceFill sites raise 1054) or add the columns by migration.")


# --------------------------------------------------------------------------- RB010: loaded and judged
def check_code_writes(code_path, db=None, tables=None) -> CheckResult:
    """RB010 check 1 (seed method 1): see :func:`code_writes_check`."""
    return code_writes_check(drift.load_report(code_path, db, tables))


def check_schema_columns(code_path, db=None, tables=None) -> CheckResult:
    """RB010 check 2 (seed method 2): see :func:`schema_columns_check`."""
    return schema_columns_check(drift.load_report(code_path, db, tables))


def check_pending(db=None, files=None, git=None, today=None, *, code_path=None) -> CheckResult:
    """RB010 check 3: see :func:`pending_check`."""
    return pending_check(migrations.load_history(db, files, git, today, code_path=code_path))


def check_names(db=None, files=None, git=None, today=None, *, code_path=None) -> CheckResult:
    """RB010 check 4: see :func:`names_check`."""
    return names_check(migrations.load_history(db, files, git, today, code_path=code_path))


# --------------------------------------------------------------------------- judging a drift report
def code_writes_check(report: drift.DriftReport) -> CheckResult:
    """Seed verification method 1, per write site: no code writes a column the schema lacks.

    FAIL when a write raises at runtime (1054), WARN when phantom writes are only silently
    dropped (the request succeeds, the data is lost), PASS when no write targets a missing column.
    """
    pc = report.phantom_columns
    raising = pc[pc["effect"].str.startswith("raises")] if len(pc) else pc
    status = Status.FAIL if len(raising) else Status.WARN if len(pc) or not report.writes_checked else Status.PASS
    sites = pc.drop_duplicates(["file", "call_line"]) if len(pc) else pc
    summary = (f"{len(pc)} writes of columns missing from the schema at {len(sites)} site{'s' * (len(sites) != 1)}, "
               f"{len(raising)} raise 1054"
               if len(pc) else f"no write of a missing column ({report.writes_checked} column writes checked)"
               if report.writes_checked else "no column write of the checked tables found: nothing was verified")
    evidence = {"checked_tables": report.checked_tables, "column_writes_checked": report.writes_checked,
                "phantom_writes": len(pc), "raising_writes": len(raising),
                "sites": pc[drift.FINDING_KEYS + ["site"]].to_dict("records") if len(pc) else [],
                "not_checked": [n for n in report.notes if "not checked" in n or "unknown" in n]}
    return CheckResult("No code writes a column the schema lacks (seed method 1)", status, summary, evidence,
                       "Remove the keys from the listed sites (forceFill/DB::table sites first: they fail every "
                       "request) or add a migration creating the columns; re-run this runbook.")


def schema_columns_check(report: drift.DriftReport) -> CheckResult:
    """Seed verification method 2, per column: every column the code writes exists in the schema.

    Also fails on written tables absent from the schema and on NOT NULL columns without a
    default that a create site never sets (both fail at runtime).
    """
    by_column = report.by_column()
    raising_cols = by_column[by_column["raises"] > 0] if len(by_column) else by_column
    failing = len(raising_cols) + len(report.missing_tables) + len(report.missing_required)
    status = Status.FAIL if failing else Status.WARN if len(by_column) else Status.PASS
    if not report.checked_tables and status == Status.PASS:
        status = Status.WARN  # nothing was compared: never a PASS
    summary = (f"{len(by_column)} written columns missing from {', '.join(report.checked_tables) or 'the schema'} "
               f"({len(raising_cols)} with raising writes); {len(report.missing_tables)} missing tables; "
               f"{len(report.missing_required)} required columns never set")
    evidence = {"checked_tables": report.checked_tables,
                "missing_columns": [{k: (int(v) if k in ("sites", "raises", "dropped") else v) for k, v in r.items()}
                                    for r in by_column.to_dict("records")],
                "missing_tables": sorted(set(report.missing_tables["table"])) if len(report.missing_tables) else [],
                "required_never_set": report.missing_required.to_dict("records")}
    return CheckResult("Every written column exists in the schema (seed method 2)", status, summary, evidence,
                       "Compare the listed columns with the migrations: create them by migration or stop "
                       "writing them; a NOT NULL column must be set by every create site.")


# --------------------------------------------------------------------------- judging a migration history
def pending_check(history: migrations.MigrationHistory) -> CheckResult:
    """Every migration file ran and every ran migration still has its file.

    FAIL on pending migrations (the code expects schema the database lacks); WARN when rows
    have no file (deleted or renamed migrations) or when no folder was given (not checked).
    """
    if not history.files_checked:
        return CheckResult("No pending migrations, no ran migration without its file", Status.WARN,
                           f"{history.ran} migrations ran; pending and missing files NOT checked (no folder given)",
                           {"ran": history.ran}, "Pass the application's database/migrations folder.")
    pending, missing = history.pending, history.ran_file_missing
    if not history.ran and not pending:  # an empty table and an empty folder: 0 of 0
        return not_enough_data("No pending migrations, no ran migration without its file",
                               "the migrations table is empty and the folder holds no migration file",
                               {"pending": [], "ran_file_missing": [], "ran": 0},
                               "Check --db and the migrations folder; nothing was compared.")
    status = Status.FAIL if pending else Status.WARN if missing else Status.PASS
    return CheckResult("No pending migrations, no ran migration without its file", status,
                       f"{len(pending)} pending, {len(missing)} ran but their file is missing "
                       f"({history.ran} ran in {len(history.batches)} batches)",
                       {"pending": _capped(pending), "ran_file_missing": _capped(missing), "ran": history.ran},
                       "Run the pending migrations (or find why they did not run); restore or explain the "
                       "missing files before trusting the table as a history.")


def names_check(history: migrations.MigrationHistory) -> CheckResult:
    """Migration names are well formed, unique, in id order and not dated in the future (WARN)."""
    counts = history.counts()
    if not history.ran:
        return not_enough_data("Migration names are clean (format, future dates, duplicates, order)",
                               "the migrations table is empty: no name was checked", {"ran": 0},
                               "Check --db: the migrations table of the application's database has a row per migration.")
    bad = counts["malformed"] + counts["future_dated"] + counts["duplicates"] + counts["out_of_order"]
    return CheckResult(
        "Migration names are clean (format, future dates, duplicates, order)", Status.WARN if bad else Status.PASS,
        f"{counts['malformed']} malformed, {counts['future_dated']} future-dated (after {history.reference_date}, "
        f"{history.reference_basis}), {counts['duplicates']} duplicated, {counts['out_of_order']} out of order; "
        f"{counts['id_gaps']} id gaps; {counts['nonstandard']} hand-named (dated, no HHMMSS: allowed)",
        {"malformed": _capped(history.malformed), "future_dated": _capped(history.future_dated),
         "duplicates": _capped(history.duplicates), "out_of_order": _capped(history.out_of_order),
         "id_gaps": _capped(history.id_gaps)},
        "Rename malformed or future-dated files only with a matching update of the migrations table; "
        "a duplicate row means the migration ran twice.")


def _capped(items: list, limit: int = 30) -> list:
    """Evidence lists stay readable: the first ``limit`` items and a count of the rest."""
    return list(items[:limit]) + ([f"... {len(items) - limit} more"] if len(items) > limit else [])
