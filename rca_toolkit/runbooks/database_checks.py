"""Runbook checks on the database itself: reachable, the contract's tables and columns, index headroom."""

from __future__ import annotations

from rca_toolkit.errors import ConnectionFailed, NotFound, SchemaError
from rca_toolkit.sources import indexes, loaders
from rca_toolkit.sources.db import check_connection, introspect, ping_ms, redact_text
from rca_toolkit.sources.schema import TABLES_REQUIRED, metadata
from rca_toolkit.runs.kernel import db_label
from rca_toolkit.runbooks.framework import CheckResult, Status

DB_PING_WARN_MS = 100  # §E infra
INDEX_LIMIT = 64  # InnoDB secondary indexes per table


def db_reachable(db=None, *, warn_ms: float = DB_PING_WARN_MS) -> CheckResult:
    """FAIL when the database cannot be reached; WARN when a ping takes longer than ``warn_ms``."""
    try:
        engine = loaders.engine_for(db)
        label = db_label(engine)
        check_connection(engine)
        ms = ping_ms(engine)
    except (ConnectionFailed, NotFound) as exc:
        return CheckResult("database reachable", Status.FAIL, str(exc), {"database": redact_text(str(db or "default"))},
                           "Check host, port, credentials and that the server runs; nothing else can be verified.")
    status = Status.WARN if ms > warn_ms else Status.PASS
    return CheckResult("database reachable", status, f"SELECT 1 on {label} took {ms:.1f} ms",
                       {"database": label, "ping_ms": round(ms, 1), "threshold_ms": warn_ms},
                       "A slow ping points at network or server load; check the DB host before trusting timings.")


def required_columns(db=None, *, extra: dict[str, list[str]] | None = None) -> CheckResult:
    """Every column of the five ``retell_*`` contract tables (plus ``extra``) must exist; else ERROR."""
    wanted = {t: [c.name for c in metadata.tables[t].columns] for t in TABLES_REQUIRED}
    for table, cols in (extra or {}).items():
        wanted[table] = list(dict.fromkeys(wanted.get(table, []) + list(cols)))
    schema = introspect(loaders.engine_for(db), list(wanted))
    missing_tables = sorted(t for t in wanted if t not in schema)
    missing_cols = {t: [c for c in cols if c not in schema[t].columns] for t, cols in wanted.items() if t in schema}
    missing_cols = {t: c for t, c in missing_cols.items() if c}
    evidence = {"tables_checked": len(wanted), "columns_checked": sum(map(len, wanted.values())),
                "missing_tables": missing_tables, "missing_columns": missing_cols}
    if missing_tables or missing_cols:
        parts = [f"table {t} missing" for t in missing_tables] + [f"{t} lacks {', '.join(c)}" for t, c in missing_cols.items()]
        return CheckResult("required tables and columns", Status.ERROR, "; ".join(parts), evidence,
                           "Point the runbook at the production schema or run the missing migrations; "
                           "no check that reads these tables can be trusted.")
    return CheckResult("required tables and columns", Status.PASS,
                       f"all {evidence['columns_checked']} required columns of {len(wanted)} tables present", evidence)


def index_count(db=None, *, limit: int = INDEX_LIMIT) -> CheckResult:
    """Secondary indexes per table: FAIL above ``limit``, WARN at it (the next index migration fails)."""
    counts = indexes.secondary_index_counts(loaders.engine_for(db))
    if not counts:
        raise SchemaError("the database has no tables to count indexes on", hint="check --db")
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    over = [t for t, n in counts.items() if n > limit]
    at = [t for t, n in counts.items() if n == limit]
    status = Status.FAIL if over else Status.WARN if at else Status.PASS
    summary = (f"{', '.join(over)} above {limit} indexes" if over else f"{', '.join(at)} at the {limit}-index limit" if at
               else f"largest: {top[0][0]} with {top[0][1]} secondary indexes (limit {limit})")
    return CheckResult("index count per table", status, summary,
                       {"threshold": f"<= {limit} secondary indexes", "tables": len(counts),
                        "largest": [{"table": t, "indexes": n} for t, n in top]},
                       "Drop unused indexes before any migration that adds one (InnoDB refuses the 65th).")
