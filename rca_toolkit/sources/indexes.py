"""The indexes the toolkit's queries rely on, checked against a live database.

Why: at a million calls a loader that loses its index turns a 20 ms lookup into a full scan
of millions of rows, and nothing else says so. Each entry names the leading columns an
index must start with (any name will do: production and the demo may name them
differently), the production index that provides them, and the queries that use it.
A requirement is met by an index, a UNIQUE key or the primary key whose columns start with
the required ones (on MariaDB a foreign key's implicit index counts; SQLite makes none).
``OPTIONAL`` lists indexes production does not have that would make a read cheaper: reported
apart, never counted as missing.
"""

from __future__ import annotations

import textwrap

from dataclasses import asdict, dataclass

import sqlalchemy as sa

from rca_toolkit.sources import db as dbmod


@dataclass(frozen=True)
class Needed:
    table: str
    columns: tuple[str, ...]
    production: str
    used_by: str
    optional: bool = False  # production has none; where present a read uses it (not counted as missing)


NEEDED: tuple[Needed, ...] = (
    Needed("retell_call_sessions", ("call_id",), "retell_call_sessions_call_id_unique",
           "loaders.call_trace: the session of one call id"),
    Needed("retell_call_sessions", ("company_id", "started_at"), "idx_retell_sessions_company_status",
           "loaders.calls and every windowed load of one company joined to sessions (window on started_at)"),
    Needed("retell_call_events", ("call_session_id",), "idx_events_session_time",
           "loaders.call_trace: the call's events"),
    Needed("retell_function_traces", ("call_session_id",), "idx_traces_session_seq",
           "loaders.call_trace: the call's function traces"),
    Needed("retell_function_traces", ("function_name", "started_at"), "idx_traces_function_time",
           "booking attempts, attempt counts and latencies (function names bound as an IN list, window on started_at)"),
    Needed("retell_transcript_segments", ("call_session_id",), "idx_transcript_session_seq",
           "loaders.call_trace: the call's transcript"),
    Needed("retell_error_log", ("call_session_id",), "retell_error_log_call_session_id_foreign (implicit FK index)",
           "loaders.call_trace and the errors of booking attempts' sessions"),
    Needed("calls", ("retell_call_id",), "calls_retell_call_id_unique",
           "sessions joined to their calls row (durations, raw payload)"),
    Needed("appointments", ("created_at",), "appointments_created_at_index",
           "loaders.appointments over a window (outcome links)"),
    Needed("webhook_events", ("created_at",), "webhook_events_created_at_index",
           "loaders.webhook_events over a window (Cal.com confirmations)"),
)
OPTIONAL: tuple[Needed, ...] = tuple(
    Needed(table, ("updated_at",), "none", "the local store's refresh, to find the rows changed since the last one "
           "without reading every row" + (" (the table has 56 of InnoDB's 64 secondary indexes)" if table == "appointments"
                                          else ""), optional=True)
    for table in ("retell_call_sessions", "calls", "appointments", "webhook_events"))


@dataclass(frozen=True)
class IndexCheck(Needed):
    """A requirement and what the live database has for it."""

    status: str = "missing"  # "present", "missing", "table missing" (defaults: Needed's last field has one)
    found: str | None = None


def _candidates(engine: sa.Engine, table: str) -> list[tuple[str, list[str]]]:
    """(name, columns) of every index, UNIQUE key and the primary key of ``table``."""
    inspector = sa.inspect(engine)
    found = [(ix["name"], list(ix["column_names"])) for ix in inspector.get_indexes(table)]
    found += [(uq["name"] or "unique", list(uq["column_names"])) for uq in inspector.get_unique_constraints(table)]
    pk = inspector.get_pk_constraint(table)
    if pk.get("constrained_columns"):
        found.append((pk.get("name") or "PRIMARY", list(pk["constrained_columns"])))
    return found


def check(db=None, needed: tuple[Needed, ...] = NEEDED + OPTIONAL) -> list[IndexCheck]:
    """One row per requirement: which live index serves it, or that none does."""
    engine = db if isinstance(db, sa.Engine) else dbmod.make_engine(db or None)
    try:
        dbmod.check_connection(engine)
        tables = set(sa.inspect(engine).get_table_names())
        cache: dict[str, list] = {}
        out = []
        for need in needed:
            if need.table not in tables:
                out.append(IndexCheck(**asdict(need), status="table missing", found=None))
                continue
            indexes = cache.setdefault(need.table, _candidates(engine, need.table))
            serving = [name for name, cols in indexes if tuple(cols[:len(need.columns)]) == need.columns]
            match = need.production if need.production in serving else next(iter(serving), None)
            out.append(IndexCheck(**asdict(need), status="present" if match else "missing", found=match))
        return out
    finally:
        if engine is not db:
            engine.dispose()


def secondary_index_counts(engine: sa.Engine) -> dict[str, int]:
    """Secondary indexes per table, as the 64-per-table InnoDB limit counts them.

    MariaDB: distinct non-PRIMARY index names in ``information_schema.STATISTICS`` (UNIQUE keys
    included). SQLite keeps UNIQUE constraints apart from indexes, so both are added up.
    """
    if engine.dialect.name in ("mysql", "mariadb"):
        sql = ("SELECT TABLE_NAME AS table_name, COUNT(DISTINCT INDEX_NAME) AS n_indexes FROM information_schema.STATISTICS "
               "WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME <> 'PRIMARY' GROUP BY TABLE_NAME")
        with engine.connect() as conn:
            return {row.table_name: int(row.n_indexes) for row in conn.execute(sa.text(sql))}
    inspector = sa.inspect(engine)
    return {name: len(info.indexes) + len(inspector.get_unique_constraints(name))
            for name, info in dbmod.introspect(engine).items()}


def missing(rows: list[IndexCheck]) -> list[IndexCheck]:
    """The indexes the toolkit relies on that are not there (an optional one never is missing)."""
    return [r for r in rows if r.status != "present" and not r.optional]


def to_dict(rows: list[IndexCheck]) -> dict:
    return {"missing": len(missing(rows)), "indexes": [asdict(r) for r in rows]}


TEXT_WIDTH = 100  # a terminal's width, as every command's text output


def to_text(rows: list[IndexCheck]) -> str:
    lines = []
    for r in rows:
        cols = ", ".join(r.columns)
        where = f"by {r.found}" if r.found else ("(production has none)" if r.optional else f"(production: {r.production})")
        status = "OPTIONAL" if r.optional and r.status != "present" else r.status.upper()
        lines += textwrap.wrap(f"{status:13} {r.table}({cols}) {where}", TEXT_WIDTH, subsequent_indent=" " * 18,
                               break_on_hyphens=False)
        lines += textwrap.wrap(f"{'would be used' if status == 'OPTIONAL' else 'used'} by {r.used_by}", TEXT_WIDTH,
                               initial_indent=" " * 14, subsequent_indent=" " * 18, break_on_hyphens=False)
    required, absent = [r for r in rows if not r.optional], len(missing(rows))
    optional = [r for r in rows if r.optional]
    lines += textwrap.wrap(f"{len(required) - absent} of {len(required)} indexes the toolkit relies on are present"
                 + (f"; {absent} missing: those queries scan their tables" if absent else "")
                 + (f"; {sum(r.status == 'present' for r in optional)} of {len(optional)} optional ones (at 1M calls they "
                    "cut a refresh's reads from disk five-fold: benchmarks/FINDINGS.md)" if optional else ""),
                           TEXT_WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(lines)
