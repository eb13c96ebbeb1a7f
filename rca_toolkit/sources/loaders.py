"""Read-only loaders: production tables -> typed pandas frames (I/O only, no analysis).

Every function takes ``db`` (a SQLAlchemy URL string, a profile name, an Engine, or None for
the configured default) and returns a frame whose timestamps are tz-aware UTC. Filters are
pushed into SQL with bound parameters. Each loader's reads are declared in ``REQUIRES`` and checked
before its first statement (:mod:`rca_toolkit.sources.requirements`). Columns outside ``retell_*`` are
optional here: queries are built from the columns the live schema has, and what was missing is listed
in ``frame.attrs["missing_columns"]``; an analysis whose result depends on one declares it required.
Other attrs: ``source`` (redacted URL), ``synthetic``
(demo world), ``storage_zone``, ``window``, and loader-specific counts.

Time zones (P1): SQLite and ``db_time_zone=SYSTEM`` servers return naive Europe/Berlin wall
time, which is localised with ambiguous/nonexistent times flagged (``<col>_ambiguous``);
MariaDB sessions pinned to ``+00:00`` return unambiguous UTC.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import sqlalchemy as sa

from rca_toolkit.rules import call_ids, functions, sessions
from rca_toolkit.config import Settings, load_settings
from rca_toolkit.sources import requirements, store
from rca_toolkit.sources.db import TableInfo, database_error, make_engine, naive_param, redact_url
from rca_toolkit.sources.requirements import Requirement
from rca_toolkit.errors import ConfigError, ConnectionFailed, NotFound
from rca_toolkit.distinct import per_distinct, per_object
from rca_toolkit.rules.jsonutil import decode_json
from rca_toolkit.rules.timeutil import localize_naive, parse_instant

log = logging.getLogger(__name__)
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
_SETTINGS: "weakref.WeakKeyDictionary[sa.Engine, Settings]" = weakref.WeakKeyDictionary()

SESSION_COLUMNS = [
    "id", "call_id", "company_id", "customer_id", "agent_version", "started_at", "ended_at",
    "call_status", "disconnection_reason", "duration_ms", "agent_id", "function_call_count",
    "error_count", "total_events",
]
CALL_COLUMNS = {  # calls column -> frame column (all optional, P8)
    "id": "local_call_id", "status": "call_row_status", "call_status": "retell_call_status",
    "start_timestamp": "retell_start", "end_timestamp": "retell_end", "duration_ms": "retell_duration_ms",
    "disconnection_reason": "call_disconnection_reason", "session_outcome": "session_outcome",
    "appointment_made": "appointment_made", "appointment_id": "appointment_id",
    "end_to_end_latency": "end_to_end_latency_ms", "cost_cents": "cost_cents", "from_number": "from_number",
}

TRACE_COLUMNS = ["id", "call_session_id", "function_name", "execution_sequence", "started_at", "completed_at",
                 "duration_ms", "status", "input_params", "output_result", "error_details"]
ERROR_COLUMNS = ["id", "error_code", "error_type", "severity", "occurred_at", "call_offset_ms", "error_message",
                 "error_context", "booking_failed", "call_terminated", "affected_function", "function_trace_id"]
APPOINTMENT_COLUMNS = ["id", "company_id", "customer_id", "call_id", "service_id", "starts_at", "ends_at", "status",
                       "source", "calcom_v2_booking_id", "metadata", "calcom_sync_status", "sync_origin",
                       "requires_manual_review", "idempotency_key", "created_at", "updated_at", "deleted_at"]
WEBHOOK_COLUMNS = ["id", "event_type", "event_id", "status", "payload", "error_message", "received_at", "processed_at",
                   "created_at", "retry_count", "company_id"]
LOG_COLUMNS = ["source", "line_no", "ts_utc", "ts_raw", "ts_placeholder", "ts_ambiguous", "env", "level", "message",
               "exception_class", "sqlstate", "errno", "unknown_column", "truncated"]

# What each loader reads (rca_toolkit.sources.requirements): checked before its first statement. Columns
# outside retell_* are optional here; an analysis that needs one declares it required itself.
SESSIONS_READ = Requirement("retell_call_sessions", SESSION_COLUMNS, "the session read (loaders.calls)")
CALLS_JOINED = Requirement("calls", (), "the call rows joined to each session (loaders.calls)",
                           optional=["retell_call_id", "deleted_at", *CALL_COLUMNS],
                           if_absent="read as empty for every call (attrs['missing_columns'])")
SESSION_JOIN = Requirement("retell_call_sessions", ["id", "call_id", "company_id"],
                           "joining rows to their session's call id and company")
TRACES_READ = Requirement("retell_function_traces", TRACE_COLUMNS, "the function-trace read (loaders.function_traces)")
ERRORS_READ = Requirement("retell_error_log", ["call_session_id", *ERROR_COLUMNS], "the error-log read (loaders.errors)")
APPOINTMENTS_READ = Requirement("appointments", ["id", "created_at"], "the appointment read (loaders.appointments)",
                                optional=[c for c in APPOINTMENT_COLUMNS if c not in ("id", "created_at")],
                                if_absent="read as empty for every appointment")
BOOKING_IDS_READ = Requirement("appointments", ["id", "calcom_v2_booking_id"],
                               "the duplicate Cal.com booking-id count (loaders.booking_id_duplicates)",
                               optional=["deleted_at"], if_absent="no appointment counts as soft-deleted")
WEBHOOKS_READ = Requirement("webhook_events", ["id", "event_type", "status", "created_at"],
                            "the webhook read (loaders.webhook_events)", one_of=["provider", "source"],
                            optional=[c for c in WEBHOOK_COLUMNS if c not in ("id", "event_type", "status", "created_at")],
                            if_absent="read as empty for every webhook")
CALL_TRACE = (
    Requirement("retell_call_sessions", ["id", "call_id", "started_at"], "one call's trace (the session is its clock)",
                optional=["ended_at", "duration_ms", "call_status", "disconnection_reason", "agent_version"],
                if_absent="unknown for this call"),
    Requirement("retell_call_events", ["id", "call_session_id", "occurred_at", "event_type", "function_name"],
                "one call's trace (its events in order)",
                optional=["call_offset_ms", "to_node", "response_time_ms", "function_status"],
                if_absent="events without it are left out"),
    Requirement("retell_function_traces", ["id", "call_session_id", "started_at", "function_name", "status"],
                "one call's trace (its tool calls on the session clock)",
                optional=["completed_at", "duration_ms", "input_params", "output_result", "error_details"],
                if_absent="tool timings and errors without it"),
    Requirement("retell_transcript_segments", ["id", "call_session_id", "occurred_at", "segment_sequence", "role", "text"],
                "one call's trace (its transcript in order)", optional=["call_offset_ms", "duration_ms"],
                if_absent="segments placed by occurred_at, as instants"),
    Requirement("retell_error_log", ["id", "call_session_id", "occurred_at", "error_code", "error_message"],
                "one call's trace (its error-log rows)", optional=["call_offset_ms"], if_absent="errors placed by occurred_at"),
    Requirement("calls", (), "one call's Retell object (calls.raw)", optional=["retell_call_id", "raw"],
                if_absent="the Retell call object is not read"),
)
REQUIRES = {
    "calls": (SESSIONS_READ, CALLS_JOINED),
    "call_trace": CALL_TRACE,
    "function_traces": (TRACES_READ, SESSION_JOIN),
    "errors": (ERRORS_READ, SESSION_JOIN),
    "appointments": (APPOINTMENTS_READ,),
    "booking_id_duplicates": (BOOKING_IDS_READ,),
    "webhook_events": (WEBHOOKS_READ,),
    "migrations": (Requirement("migrations", ["id", "migration", "batch"], "the migration history (loaders.migrations)"),),
    "laravel_log": (Requirement("laravel_log", LOG_COLUMNS, "the imported Laravel log (loaders.laravel_log)"),),
}


# --------------------------------------------------------------------------- plumbing
def engine_for(db=None, settings: Settings | None = None, *, cached: bool = False) -> sa.Engine:
    """Reuse an Engine or build a read-only one from a URL/profile/None.

    ``cached`` (the analyses that count over windows): read the local store of that database instead
    (:mod:`rca_toolkit.sources.store`), refreshed first unless a refresh started less than ``cache_max_age_s``
    ago, when the ``cache`` setting asks for it: ``on``, or ``auto`` for a MariaDB/MySQL server; ``off``
    (``--no-cache``) reads directly."""
    if isinstance(db, sa.Engine):
        return db
    settings = settings or load_settings()
    engine = make_engine(db, settings=settings)
    _SETTINGS[engine] = settings
    if cached and settings.reads_store(engine.dialect.name):
        cached_engine = store.fresh_store(engine, store.folder(settings.cache_dir, engine.url), storage_zone(engine),
                                          max_age_s=settings.cache_max_age_s, max_rows_per_s=settings.cache_max_rows_per_s,
                                          check_every_s=settings.cache_check_every_s)
        _SETTINGS[cached_engine] = settings
        return cached_engine
    return engine


def is_mariadb(engine: sa.Engine) -> bool:
    """MariaDB/MySQL SQL (binary comparisons, REGEXP) rather than the portable SQL SQLite and the store read."""
    return engine.dialect.name in ("mysql", "mariadb")


def schema_of(engine: sa.Engine) -> dict[str, TableInfo]:
    """Introspected schema, cached per engine (one catalogue read per engine, shared with
    :func:`rca_toolkit.sources.requirements.check`)."""
    return requirements.schema_of(engine)


def storage_zone(engine: sa.Engine) -> str:
    """Zone in which the server hands back naive timestamps."""
    settings = _SETTINGS.get(engine) or load_settings()
    if zone := store.storage_zone(engine):
        return zone
    if engine.dialect.name == "sqlite":
        return settings.source_tz
    tz = settings.db_time_zone
    if tz in ("+00:00", "UTC", "-00:00"):
        return "UTC"
    return settings.source_tz if tz == "SYSTEM" else tz


def to_utc(frame: pd.DataFrame, cols: list[str], zone: str, *, flags: bool = True) -> pd.DataFrame:
    for col in cols:
        if col not in frame:
            continue
        if zone == "UTC":
            # microseconds, as every source and the store hand back: a column of NULLs alone would be seconds
            frame[col] = pd.to_datetime(frame[col], errors="coerce", utc=True, format="mixed").dt.as_unit("us")
            if flags:
                frame[f"{col}_ambiguous"] = False
            continue
        local = localize_naive(frame[col], zone)
        frame[col] = local["ts"]
        if flags:
            frame[f"{col}_ambiguous"] = local["ts_ambiguous"] | local["ts_nonexistent"]
    return frame


def first_wall_time(ts: pd.Timestamp, zone: str) -> pd.Timestamp:
    """The least naive wall time of ``zone`` read (:func:`localize_naive`: a repeated hour as its first reading, a
    skipped one shifted past the gap) at or after ``ts``. Why: readings grow with wall time, so ``col >= it`` in
    stored wall time is exactly "read at or after ts", and the database places every row, near a DST change too (P1).
    It is the wall time of ``ts`` itself, or where a change a few hours away starts or ends (on a whole minute)."""
    wall = ts.tz_convert(zone).tz_localize(None)
    if zone == "UTC":
        return wall
    near = pd.date_range(wall.floor("min") - pd.Timedelta(hours=3), wall.ceil("min") + pd.Timedelta(hours=3), freq="min")
    candidates = near.append(pd.DatetimeIndex([wall])).sort_values()
    readings = localize_naive(pd.Series(candidates), zone)["ts"]
    return candidates[(readings >= ts).to_numpy()][0]


def wall_bound(ts: pd.Timestamp, engine: sa.Engine) -> str | datetime:
    """A UTC bound as a value the stored column is compared with, exactly (:func:`first_wall_time`)."""
    return naive_param(first_wall_time(ts, storage_zone(engine)), engine)


def _instant(value, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    return parse_instant(value, name=name)


def window_bounds(col: str, lo, hi, engine: sa.Engine, params: dict, prefix: str) -> list[str]:
    """``col`` in the UTC bounds [lo, hi) (None: open), compared in stored time (``:<prefix>_lo``, ``:<prefix>_hi``)."""
    out = []
    for name, ts, op in (("lo", lo, ">="), ("hi", hi, "<")):
        if ts is not None:
            params[f"{prefix}_{name}"] = wall_bound(ts, engine)
            out.append(f"{col} {op} :{prefix}_{name}")
    return out


def bind_list(values, params: dict, prefix: str) -> str:
    """``:<prefix>0, :<prefix>1, …`` with ``values`` bound into ``params``, for ``IN (…)`` lists."""
    params.update({f"{prefix}{i}": v for i, v in enumerate(values)})
    return ", ".join(f":{prefix}{i}" for i in range(len(values)))


def window_clause(col: str, start, end, engine, params: dict) -> tuple[list[str], pd.Timestamp | None, pd.Timestamp | None]:
    start_ts, end_ts = _instant(start, "start"), _instant(end, "end")
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        raise ConfigError(f"window end {end_ts} is not after start {start_ts}", hint="swap start and end")
    return window_bounds(col, start_ts, end_ts, engine, params, "w"), start_ts, end_ts


def query(engine: sa.Engine, sql: str, params: dict, conn: sa.Connection | None = None) -> pd.DataFrame:
    """Run one statement; pass ``conn`` to reuse a checked-out connection (one ping, one rollback).

    Logs (DEBUG, ``rca -vv``) the statement's first words, the rows read and the seconds it took;
    never the bound parameter values."""
    started, local = time.perf_counter(), store.is_store(engine)
    try:
        if local:
            frame = store.query_frame(engine, sql, params)
        elif conn is not None:
            frame = pd.read_sql(sa.text(sql), conn, params=params)
        else:
            with engine.connect() as own:
                frame = pd.read_sql(sa.text(sql), own, params=params)
    except duckdb.Error as exc:  # only the store raises these
        raise ConnectionFailed(f"query on {engine.rca_label} failed: {str(exc).splitlines()[0]}",
                               hint="refresh the store (`rca cache refresh --full`) or run with --no-cache") from None
    except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:  # pd.read_sql wraps SQLAlchemy's errors
        raise database_error(engine, exc) from None
    log.debug("%s: %d rows in %.3f s%s", statement_label(sql), len(frame), time.perf_counter() - started,
              " (local store)" if local else "")
    return frame


def statement_label(sql: str, width: int = 90) -> str:
    """The first words of a statement, for logs: enough to recognise it, without its bound values."""
    words = " ".join(sql.split())
    return words if len(words) <= width else words[:width - 3] + "..."


def present_columns(schema: dict[str, TableInfo], table: str, wanted) -> tuple[list[str], list[str]]:
    have = schema[table].columns if table in schema else {}
    return [c for c in wanted if c in have], [c for c in wanted if c not in have]


def _where_sql(where: list[str]) -> str:
    return " WHERE " + " AND ".join(where) if where else ""


def _decode_json_columns(frame: pd.DataFrame, cols) -> None:
    """Decode the JSON text of those of ``cols`` the frame has, in place (:func:`decode_json`'s value)."""
    for col in cols:
        if col in frame:
            frame[col] = frame[col].map(lambda v: decode_json(v)[0])


def base_attrs(engine, **extra) -> dict:
    schema = schema_of(engine)
    return {
        "source": getattr(engine, "rca_label", None) or redact_url(engine.url),
        "synthetic": "rca_demo_world" in schema,
        "storage_zone": storage_zone(engine),
        "missing_columns": {},
        **extra,
    }


def company_clause(col: str, company_id, params: dict) -> list[str]:
    if company_id is None:
        return []
    params["company_id"] = int(company_id)
    return [f"{col} = :company_id"]


@dataclass(frozen=True)
class SessionOf:
    """A trace's or error's session in SQL (one statement text for every backend): ``join`` follows the row's
    ``FROM <table> <alias>``; ``found`` keeps the join's inner rows, ``real`` those whose call id is a real one."""

    join: str
    call_id: str
    company_id: str
    started_at: str
    found: str
    real: str


def session_of(engine: sa.Engine, row: str = "t", alias: str = "s") -> SessionOf:
    """Joined on a server; on the local store the row's own copy (``store.SESSION_COLUMNS``, kept by every refresh).
    Why: joining millions of traces to their sessions on uuid texts, and testing the call ids again, was most of
    what a health report's statements cost on the store. ``= TRUE``, not the bare flag: DuckDB guesses a fifth of the
    rows pass a bare boolean and half pass ``= TRUE``; with a fifth, a full read of the attempts' errors hashed every
    error row with its texts instead of the booking traces' ids, and needed 2 GiB at 1M calls instead of 128 MiB."""
    if store.is_store(engine):
        own = {col: f"{row}.{name}" for name, (col, _) in store.SESSION_COLUMNS.items()}
        return SessionOf("", own["call_id"], own["company_id"], own["started_at"], f"{row}.{store.SESSION_REAL} IS NOT NULL",
                         f"{row}.{store.SESSION_REAL} = TRUE")
    return SessionOf(f" JOIN retell_call_sessions {alias} ON {alias}.id = {row}.call_session_id", f"{alias}.call_id",
                     f"{alias}.company_id", f"{alias}.started_at", "1 = 1", call_ids.real_call_id_sql(f"{alias}.call_id", engine))


def _string_category(values: pd.Series) -> pd.Series:
    """``values.astype("string").astype("category")``; a column that is categorical already keeps its codes
    and only its categories become strings, instead of a string per row factorized again; so does a column of
    texts held in Arrow (the store's reads), factorized there."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        values = values.astype("category")
    if isinstance(values.dtype, pd.CategoricalDtype):
        used = values.cat.remove_unused_categories()
        names = used.cat.categories.astype("string")
        if names.is_unique and not names.hasnans:
            return used.cat.rename_categories(names).cat.reorder_categories(names.sort_values())
    return values.astype("string").astype("category")


def typed(frame: pd.DataFrame, *, ints=(), strings=(), cats=(), bools=()) -> pd.DataFrame:
    casts = ((ints, lambda s: s.astype("Int64") if s.dtype.kind in "iu"  # integers already (Int64's kind is "i" too)
              else pd.to_numeric(s, errors="coerce").round().astype("Int64")),
             (strings, lambda s: s.astype("string")),
             (cats, _string_category),
             # once per distinct value; None, NaN (a driver's NULL) and pd.NA (the store's nullable integers) are missing
             (bools, lambda s: pd.Series(per_distinct(s, lambda v: bool(int(v)), pd.NA), index=s.index, dtype="boolean")))
    for cols, cast in casts:
        for col in cols:
            if col in frame:
                frame[col] = cast(frame[col])
    return frame


# --------------------------------------------------------------------------- calls
def calls(db=None, *, start=None, end=None, company_id=None, include_test: bool = False, as_of=None) -> pd.DataFrame:
    """One row per call session in ``[start, end)`` (session ``started_at``), joined to ``calls``.

    Test, demo, temp and malformed ids are excluded unless ``include_test`` and their count is
    in ``attrs["excluded_test_ids"]`` (examples in ``attrs["excluded_examples"]``). ``stuck``
    marks sessions ``in_progress`` for more than 2 h before ``as_of`` (default now) or while the
    call row says ``completed`` (P5); ``closed_by_cleanup`` marks ``system_timeout`` (P20); both
    rules are :mod:`rca_toolkit.rules.sessions`.
    """
    engine = engine_for(db, cached=True)
    schema = schema_of(engine)
    requirements.check(schema, *REQUIRES["calls"])
    params: dict = {}
    where, start_ts, end_ts = window_clause("s.started_at", start, end, engine, params)
    where += company_clause("s.company_id", company_id, params)
    select = [f"s.{c} AS {'session_id' if c == 'id' else c}" for c in SESSION_COLUMNS]
    have, missing = present_columns(schema, "calls", CALL_COLUMNS)
    join = ""
    if "calls" in schema and "retell_call_id" in schema["calls"].columns:
        select += [f"c.{c} AS {CALL_COLUMNS[c]}" for c in have]
        join = "LEFT JOIN calls c ON c.retell_call_id = s.call_id"
        if "deleted_at" in schema["calls"].columns:
            join += " AND c.deleted_at IS NULL"
    else:
        missing = list(CALL_COLUMNS) if "calls" not in schema else missing + ["retell_call_id"]
    frame = query(engine, f"SELECT {', '.join(select)} FROM retell_call_sessions s {join}{_where_sql(where)} "
                          "ORDER BY s.started_at, s.id", params)
    zone = storage_zone(engine)
    frame = to_utc(frame, ["started_at"], zone)
    frame = to_utc(frame, ["ended_at", "retell_start", "retell_end"], zone, flags=False)
    frame["id_kind"] = call_ids.id_kinds(frame["call_id"])
    frame["is_test"] = frame["id_kind"] != "retell"
    excluded, examples = 0, []
    if not include_test:  # test sessions are few (P4): read with the window's, counted here and dropped once typed
        excluded, examples = int(frame["is_test"].sum()), sorted(frame.loc[frame["is_test"], "call_id"].astype(str))[:20]
    as_of_ts = _instant(as_of, "as_of") if as_of is not None else pd.Timestamp.now(tz="UTC")
    frame["stuck"] = sessions.stuck(frame, as_of_ts)
    frame["closed_by_cleanup"] = sessions.closed_by_cleanup(frame["disconnection_reason"])
    frame[[c for c in CALL_COLUMNS.values() if c not in frame]] = pd.NA
    frame = typed(
        frame,
        ints=["company_id", "customer_id", "agent_version", "duration_ms", "function_call_count", "error_count",
              "total_events", "local_call_id", "retell_duration_ms", "appointment_id", "end_to_end_latency_ms", "cost_cents"],
        strings=["session_id", "call_id", "agent_id", "from_number"],
        cats=["call_status", "disconnection_reason", "call_row_status", "retell_call_status",
              "call_disconnection_reason", "session_outcome", "id_kind"],
        bools=["appointment_made"],
    )
    if excluded:  # dropped once typed: the copy moves Python objects and codes, not the texts read (1M sessions: 1.0 s before)
        frame = frame[~frame["is_test"].to_numpy()].reset_index(drop=True)
        for col in frame.select_dtypes("category"):  # as typed without them: categories of the values left
            frame[col] = frame[col].cat.remove_unused_categories()
    frame.attrs = base_attrs(
        engine,
        window=[str(start_ts) if start_ts is not None else None, str(end_ts) if end_ts is not None else None],
        excluded_test_ids=excluded,
        excluded_examples=examples[:20],
        ambiguous_times=int(frame["started_at_ambiguous"].sum()),
        stuck=int(frame["stuck"].sum()),
        missing_columns={"calls": missing} if missing else {},
    )
    return frame


# --------------------------------------------------------------------------- one call
@dataclass
class CallTrace:
    """Everything stored about one call; ``missing`` says what is absent, never invented."""

    call_id: str
    session: dict
    events: pd.DataFrame
    function_traces: pd.DataFrame
    transcript: pd.DataFrame
    errors: pd.DataFrame
    retell: dict | None
    missing: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)


def call_trace(db=None, call_id: str = "") -> CallTrace:
    """Session, events, function traces, transcript segments, errors and ``calls.raw`` of a call."""
    engine = engine_for(db)
    schema = schema_of(engine)
    absent = requirements.check(schema, *REQUIRES["call_trace"])
    zone = storage_zone(engine)
    with engine.connect() as conn:  # six statements on one connection: no pool ping/rollback between them
        trace = _call_trace(engine, conn, schema, zone, call_id)
    trace.missing += [f"{table}.{column} (column absent)" for table, columns in absent.items() for column in columns
                      if f"{table}.{column} (column absent)" not in trace.missing]
    trace.attrs["missing_columns"] = absent
    return trace


# the session's rows of each table, in order: (table, ORDER BY, time columns, JSON columns)
PER_SESSION = (
    ("retell_call_events", "occurred_at, id", ["occurred_at"],
     ("function_arguments", "function_response", "error_context", "metadata")),
    ("retell_function_traces", "started_at, id", ["started_at", "completed_at"],
     ("input_params", "output_result", "error_details", "metadata")),
    ("retell_transcript_segments", "segment_sequence, occurred_at, id", ["occurred_at"], ()),
    ("retell_error_log", "occurred_at, id", ["occurred_at"], ("error_context", "metadata")),
)


def _call_trace(engine: sa.Engine, conn: sa.Connection, schema: dict, zone: str, call_id: str) -> CallTrace:
    sessions = query(engine, "SELECT * FROM retell_call_sessions WHERE call_id = :cid", {"cid": call_id}, conn)
    if sessions.empty:
        raise NotFound(
            f"call {call_id!r} not found in retell_call_sessions of {redact_url(engine.url)}",
            hint="check the id (call_ + 27 hex characters) and the --db database" if call_ids.is_real_call_id(call_id) else
                 "it is no Retell call id (call_ + 27 lowercase hex characters): check it and the --db database",
        )
    sessions = to_utc(sessions, ["started_at", "ended_at"], zone)
    session = sessions.iloc[0].to_dict()
    per_session = []
    for table, order, times, blobs in PER_SESSION:
        sql = f"SELECT * FROM {table} WHERE call_session_id = :sid ORDER BY {order}"
        frame = to_utc(query(engine, sql, {"sid": session["id"]}, conn), times, zone, flags=False)
        _decode_json_columns(frame, blobs)
        per_session.append(frame)
    events, traces, transcript, errors_ = per_session
    if "function_name" in traces:
        traces["family"] = traces["function_name"].map(functions.function_family)
        traces["error"] = traces.get("error_details", pd.Series(dtype=object)).map(error_text)
    retell = None
    missing: list[str] = []
    if "calls" in schema and {"retell_call_id", "raw"} <= set(schema["calls"].columns):
        raw = query(engine, "SELECT raw FROM calls WHERE retell_call_id = :cid", {"cid": call_id}, conn)
        if not raw.empty:
            retell, _, invalid = decode_json(raw.iloc[0]["raw"])
            if invalid or not isinstance(retell, dict):
                retell = None
    else:
        missing.append("calls.raw (column absent)")
    if retell is None:
        missing.append("Retell call object (calls.raw empty)")
    for label, frame in (("function traces", traces), ("transcript segments", transcript), ("events", events)):
        if frame.empty:
            missing.append(label)
    return CallTrace(call_id, session, events, traces, transcript, errors_, retell, missing,
                     attrs=base_attrs(engine, storage_zone=zone))


def error_text(details) -> str | None:
    if isinstance(details, dict):
        return details.get("error") or details.get("message") or None
    return details if isinstance(details, str) else None


# --------------------------------------------------------------------------- many calls
def family_names(engine: sa.Engine, families) -> list[str]:
    """The stored function names that fold into ``families`` (sorted): ``DISTINCT function_name`` (a
    loose scan of the ``(function_name, started_at)`` index) folded by :func:`rca_toolkit.rules.functions.names_of_families`."""
    stored = query(engine, "SELECT DISTINCT function_name FROM retell_function_traces", {})["function_name"]
    return functions.names_of_families(stored, families)


def family_clause(engine: sa.Engine, col: str, families, params: dict, names: list[str] | None = None) -> list[str]:
    """``col IN (<stored names of these families>)``: :func:`rca_toolkit.rules.functions.family_in_sql`
    on the stored names (``names`` when the caller read them with :func:`family_names`, else read here)."""
    if not families:
        return []
    return functions.family_in_sql(col, family_names(engine, families) if names is None else names, families, params)


def _per_call_table(engine, table: str, time_col: str, select: str, start, end, company_id,
                    include_test: bool, extra_where: list[str], params: dict,
                    raw: str | None = None, ordered: bool = True) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """The rows of ``table`` in the window with their session's call and company, in stored order unless not
    ``ordered`` (``raw``: a column to keep ``time_col`` as stored in, so that rows read in parts can be put in that
    order again)."""
    where, start_ts, end_ts = window_clause(f"t.{time_col}", start, end, engine, params)
    session = session_of(engine)
    where += [session.found] + company_clause(session.company_id, company_id, params) + extra_where
    if not include_test:
        where.append(session.real)
    sql = (f"SELECT {session.call_id} AS call_id, {session.company_id} AS company_id, {select} FROM {table} t{session.join}"
           f"{_where_sql(where)}{f' ORDER BY t.{time_col}, t.id' if ordered else ''}")
    frame = query(engine, sql, params)
    if raw:
        frame[raw] = frame[time_col]
    return to_utc(frame, [time_col], storage_zone(engine)), start_ts, end_ts


BLOB_COLUMNS = ("input_params", "output_result", "error_details")


def function_traces(db=None, *, start=None, end=None, company_id=None, families=None, include_test: bool = False,
                    blobs: bool = True) -> pd.DataFrame:
    """Tool-call traces in a window (by ``started_at``), with ``family`` (P3) and error text.

    ``blobs=False`` leaves out the JSON columns (``input_params``, ``output_result``,
    ``error_details``, hence ``error``): latency and reach analyses need none of them, and at
    scale they are most of the bytes fetched and all of the per-row JSON decoding.
    """
    engine = engine_for(db, cached=True)
    requirements.check(engine, *REQUIRES["function_traces"])
    cols = [c for c in TRACE_COLUMNS if blobs or c not in BLOB_COLUMNS]
    params: dict = {}
    select = ", ".join(f"t.{c} AS {'trace_id' if c == 'id' else 'session_id' if c == 'call_session_id' else c}" for c in cols)
    frame, start_ts, end_ts = _per_call_table(engine, "retell_function_traces", "started_at", select, start, end, company_id,
                                              include_test, family_clause(engine, "t.function_name", families, params), params)
    frame = to_utc(frame, ["completed_at"], storage_zone(engine), flags=False)
    _decode_json_columns(frame, BLOB_COLUMNS)
    frame["family"] = functions.family_series(frame["function_name"])  # vectorised (categorical)
    if families:
        frame = frame[frame["family"].isin(functions.wanted_families(families))].reset_index(drop=True)
    frame["error"] = frame["error_details"].map(error_text) if "error_details" in frame else pd.NA
    frame = typed(frame, ints=["company_id", "trace_id", "execution_sequence", "duration_ms"],
                   strings=["call_id", "session_id", "function_name", "error"], cats=["family", "status"])
    frame.attrs = base_attrs(engine, window=[str(start_ts), str(end_ts)])
    return frame


ERROR_CHUNK = 100_000  # error-log ids per statement of :func:`errors`; sorted within the store's 128 MiB (250,000 were not)
MAX_ERROR_PARTS = 100  # statements at most: ids far apart make wider ranges, never more statements
KEPT_BY = ["error_id", "occurred_at", "error_message"]  # what the ``keep`` of :func:`errors` sees of each row


def errors(db=None, *, start=None, end=None, company_id=None, include_test: bool = False, keep=None) -> pd.DataFrame:
    """``retell_error_log`` rows with numeric severity (P12) and the calling ``frame``.

    Read a range of ``ERROR_CHUNK`` keys at a time (one range of the primary key on every backend). ``keep`` (rows ->
    boolean mask) sees each part's ``KEPT_BY`` columns as read (``occurred_at`` in UTC, the text as stored) and only
    the rows it keeps are decoded and returned; on the local store only they are read whole, by their ids, after the
    part's texts. Why: an incident needs the rows that carry its signature, a few percent of a million, and every
    row as one frame took 2.7 GB at 1M calls; every column of every row read, 3 s on the store."""
    engine = engine_for(db, cached=True)
    requirements.check(engine, *REQUIRES["errors"])
    select = ", ".join(f"t.{c} AS {'error_id' if c == 'id' else c}" for c in ERROR_COLUMNS)
    select_kept_by = ", ".join(f"t.{'id' if c == 'error_id' else c} AS {c}" for c in KEPT_BY)
    ids = pd.to_numeric(query(engine, "SELECT MIN(id) AS lo, MAX(id) AS hi FROM retell_error_log", {}).iloc[0],
                        errors="coerce")
    ranges: list = [{}]  # one statement, no key range: few keys, none, or keys that are no numbers (SQLite)
    if ids.notna().all() and (span := int(ids["hi"]) + 1 - int(ids["lo"])) > ERROR_CHUNK:
        step = max(ERROR_CHUNK, -(-span // MAX_ERROR_PARTS))
        ranges = [{"id_lo": lo, "id_hi": lo + step} for lo in range(int(ids["lo"]), int(ids["hi"]) + 1, step)]
    parts, texts_first = [], keep is not None and store.is_store(engine)
    for ids_in in ranges:
        where, params = ["t.id >= :id_lo", "t.id < :id_hi"] if ids_in else [], dict(ids_in)
        if texts_first:  # the texts in any order; the kept rows by one list parameter (DuckDB parses an IN list of
            # 100k ids in seconds)
            rows, _, _ = _per_call_table(engine, "retell_error_log", "occurred_at", select_kept_by, start, end, company_id,
                                         include_test, where, dict(params), ordered=False)
            params["kept"] = rows.loc[np.asarray(keep(rows[KEPT_BY]), dtype=bool), "error_id"].astype("int64").tolist()
            where = where + ["t.id IN (SELECT UNNEST(CAST(:kept AS BIGINT[])))"]
        part, start_ts, end_ts = _per_call_table(engine, "retell_error_log", "occurred_at", select, start, end, company_id,
                                                 include_test, where, params, raw="stored_at")
        parts.append(part if keep is None or texts_first else part[np.asarray(keep(part[KEPT_BY]), dtype=bool)])
    frame = parts[0].reset_index(drop=True) if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    # decoded once per distinct text (a handful for 100k errors); equal texts share one object: read-only
    frame["error_context"] = pd.Series(per_distinct(frame["error_context"], lambda v: decode_json(v)[0]),
                                       index=frame.index, dtype="object")
    frame["frame"] = per_object(frame["error_context"], lambda c: c.get("frame") if isinstance(c, dict) else None)
    frame["severity_rank"] = pd.array(per_distinct(frame["severity"], SEVERITY_RANK.get), dtype="Int64")
    frame["family"] = per_distinct(frame["affected_function"], functions.function_family)
    frame = typed(frame, ints=["company_id", "error_id", "call_offset_ms", "function_trace_id"],
                   strings=["call_id", "error_message", "affected_function", "frame"],
                   cats=["error_code", "error_type", "severity", "family"], bools=["booking_failed", "call_terminated"])
    if len(parts) > 1:  # in the order one statement gives: stored time (text on SQLite), id; NULL first (the store too:
        # store.engine.NULL_ORDER). Sorted once typed: moving Python objects, not the texts read (2M rows: 4.7 -> 1.1 s)
        frame = frame.sort_values(["stored_at", "error_id"], kind="stable", na_position="first", ignore_index=True,
                                  key=lambda col: col.astype("string") if col.dtype == object else col)
    frame = frame.drop(columns="stored_at")
    frame.attrs = base_attrs(engine, window=[str(start_ts), str(end_ts)])
    return frame


# --------------------------------------------------------------------------- other tables
def appointments(db=None, *, start=None, end=None, company_id=None, include_deleted: bool = False) -> pd.DataFrame:
    """Appointments created in a window; ``retell_call_id`` decoded from ``metadata`` (P15)."""
    engine = engine_for(db, cached=True)
    schema = schema_of(engine)
    requirements.check(schema, *REQUIRES["appointments"])
    have, missing = present_columns(schema, "appointments", APPOINTMENT_COLUMNS)
    params: dict = {}
    where, start_ts, end_ts = window_clause("created_at", start, end, engine, params)
    if "company_id" in have:
        where += company_clause("company_id", company_id, params)
    if "deleted_at" in have and not include_deleted:
        where.append("deleted_at IS NULL")
    frame = query(engine, f"SELECT {', '.join(have)} FROM appointments{_where_sql(where)} ORDER BY id", params)
    zone = storage_zone(engine)
    frame = to_utc(frame, ["created_at"], zone)
    frame = to_utc(frame, ["starts_at", "ends_at", "updated_at", "deleted_at"], zone, flags=False)
    decoded = frame["metadata"].map(decode_json) if "metadata" in frame else pd.Series([(None, False, False)] * len(frame))
    frame["metadata"] = decoded.map(lambda t: t[0])
    frame["metadata_double_encoded"] = decoded.map(lambda t: t[1]).astype(bool)
    frame["metadata_invalid"] = decoded.map(lambda t: t[2]).astype(bool)
    frame["retell_call_id"] = frame["metadata"].map(lambda m: m.get("retell_call_id") if isinstance(m, dict) else None)
    frame[missing] = pd.NA
    frame = typed(frame, ints=["id", "company_id", "customer_id", "call_id", "service_id"],
                   strings=["calcom_v2_booking_id", "retell_call_id", "idempotency_key"],
                   cats=["status", "source", "calcom_sync_status", "sync_origin"], bools=["requires_manual_review"])
    frame.attrs = base_attrs(engine, window=[str(start_ts), str(end_ts)],
                              double_encoded_metadata=int(frame["metadata_double_encoded"].sum()),
                              missing_columns={"appointments": missing} if missing else {})
    return frame


def booking_id_duplicates(db=None) -> tuple[pd.DataFrame, int]:
    """Cal.com booking ids shared by live appointments, and how many live appointments carry one.

    The frame has ``uid`` and ``rows`` (more than 1), most rows first; soft-deleted rows do not
    count when the table has ``deleted_at``. The database groups, so no appointment row is read.
    """
    engine = engine_for(db)
    schema = schema_of(engine)
    requirements.check(schema, *REQUIRES["booking_id_duplicates"])
    live = " AND deleted_at IS NULL" if "deleted_at" in schema["appointments"].columns else ""
    dup_sql = ("SELECT calcom_v2_booking_id AS uid, COUNT(*) AS n FROM appointments WHERE calcom_v2_booking_id IS NOT NULL"
               f"{live} GROUP BY calcom_v2_booking_id HAVING COUNT(*) > 1 ORDER BY n DESC")
    total_sql = f"SELECT COUNT(*) FROM appointments WHERE calcom_v2_booking_id IS NOT NULL{live}"
    try:
        with engine.connect() as conn:
            dups = conn.execute(sa.text(dup_sql)).fetchall()
            total = int(conn.execute(sa.text(total_sql)).scalar() or 0)
    except sa.exc.DBAPIError as exc:
        raise database_error(engine, exc) from None
    return pd.DataFrame([(r.uid, int(r.n)) for r in dups], columns=["uid", "rows"]), total


def webhook_events(db=None, *, start=None, end=None, provider: str | None = None) -> pd.DataFrame:
    """Webhook rows (legacy ``provider`` or fresh-install ``source`` shape), event types normalised (P19)."""
    engine = engine_for(db, cached=True)
    schema = schema_of(engine)
    requirements.check(schema, *REQUIRES["webhook_events"])
    cols = schema["webhook_events"].columns
    provider_col = "provider" if "provider" in cols else "source"
    have, missing = present_columns(schema, "webhook_events", WEBHOOK_COLUMNS)
    params: dict = {}
    where, start_ts, end_ts = window_clause("created_at", start, end, engine, params)
    if provider:
        params["provider"] = provider
        where.append(f"{provider_col} = :provider")
    frame = query(engine, f"SELECT {provider_col} AS provider, {', '.join(have)} FROM webhook_events{_where_sql(where)} "
                          "ORDER BY created_at, id", params)
    zone = storage_zone(engine)
    frame = to_utc(frame, ["created_at"], zone)
    frame = to_utc(frame, ["received_at", "processed_at"], zone, flags=False)
    _decode_json_columns(frame, ["payload"])
    frame["event_type_norm"] = frame["event_type"].astype("string").str.upper().str.replace(".", "_", regex=False)
    frame[missing] = pd.NA
    frame = typed(frame, ints=["id", "retry_count", "company_id"], strings=["event_id", "error_message"],
                   cats=["provider", "event_type", "event_type_norm", "status"])
    frame.attrs = base_attrs(engine, window=[str(start_ts), str(end_ts)],
                             missing_columns={"webhook_events": missing} if missing else {})
    return frame


def migrations(db=None) -> pd.DataFrame:
    """The ``migrations`` table (id, migration, batch), for drift checks only (never schema truth)."""
    engine = engine_for(db)
    requirements.check(engine, *REQUIRES["migrations"])
    frame = query(engine, "SELECT id, migration, batch FROM migrations ORDER BY id", {})
    frame = typed(frame, ints=["id", "batch"], strings=["migration"])
    frame.attrs = base_attrs(engine)
    return frame


def laravel_log(db=None, *, start=None, end=None, levels=None) -> pd.DataFrame:
    """Imported Laravel log entries (``rca import laravel-log``) in a window, newest last.

    ``ts_utc`` is stored as naive UTC by the importer, so it is read as UTC on every
    backend; entries whose time was a placeholder have no ``ts`` and are kept only when no
    window is asked for.
    """
    engine = engine_for(db)
    requirements.check(engine, *REQUIRES["laravel_log"])
    params: dict = {}
    where = []
    start_ts, end_ts = _instant(start, "start"), _instant(end, "end")
    for name, ts, op in (("start", start_ts, ">="), ("end", end_ts, "<")):
        if ts is not None:
            where.append(f"ts_utc {op} :{name}")
            params[name] = naive_param(ts.tz_localize(None), engine)
    if levels:
        wanted = [levels] if isinstance(levels, str) else list(levels)
        where.append(f"level IN ({bind_list([lvl.upper() for lvl in wanted], params, 'lvl')})")
    frame = query(engine, f"SELECT {', '.join(LOG_COLUMNS)} FROM laravel_log{_where_sql(where)} ORDER BY ts_utc, source, line_no",
                  params)
    frame = frame.rename(columns={"ts_utc": "ts"})
    frame["ts"] = pd.to_datetime(frame["ts"], errors="coerce", utc=True, format="mixed")
    frame = typed(frame, ints=["line_no", "errno"], strings=["message", "exception_class", "unknown_column", "ts_raw"],
                   cats=["source", "env", "level", "sqlstate"], bools=["ts_placeholder", "ts_ambiguous", "truncated"])
    frame.attrs = base_attrs(engine, window=[str(start_ts), str(end_ts)],
                              placeholder_times=int(frame["ts_placeholder"].sum()), truncated=int(frame["truncated"].sum()))
    return frame


def is_synthetic(db=None) -> bool:
    """True when the database is the synthetic demo world (reports must say so)."""
    return "rca_demo_world" in schema_of(engine_for(db))


__all__ = [
    "CallTrace", "appointments", "booking_id_duplicates", "call_trace", "calls", "engine_for", "errors",
    "function_traces", "is_synthetic", "laravel_log", "migrations", "schema_of", "webhook_events",
]

