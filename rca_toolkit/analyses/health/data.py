"""What the health report needs, as counts and histograms per side (``base`` = baseline, ``cur`` = period).

Why: the report used to load the attempts, sessions, every function trace (with its JSON) and
every error of period + baseline as rows: at 1M calls a weekly report for one company is
millions of rows. Every number it shows is a count, a rate or a statistic of a value
histogram, so the database computes them (:func:`from_sql`): the local store's DuckDB, a MariaDB server read
directly, or SQLite, with the same statements, the report's bounds compared exactly in the stored time (:func:`_bounds`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import aggregates, attempt_inputs, loaders, requirements, store
from rca_toolkit.rules import call_ids, functions, sessions
from rca_toolkit.rules.timeutil import day_edges
from rca_toolkit.analyses.bookings import counts as booking_counts
from rca_toolkit.analyses.compare.stats import Histogram
from rca_toolkit.analyses.health.periods import period_bounds
from rca_toolkit.sources.requirements import Requirement

SIDES = ("base", "cur")
# What one report reads (rca_toolkit.sources.requirements), checked before its first statement: the aggregate
# statements and the booking outcomes
STATEMENT_READS = (
    Requirement("retell_call_sessions", ["id", "call_id", "company_id", "started_at", "ended_at", "call_status",
                                         "disconnection_reason", "duration_ms"],
                "the health report (sessions, stuck and cleanup-closed counts, call durations)"),
    Requirement("retell_function_traces", ["call_session_id", "function_name", "started_at", "duration_ms"],
                "the health report (function latencies and reach)"),
    Requirement("retell_error_log", ["call_session_id", "occurred_at", "error_message", "error_code", "severity",
                                     "booking_failed"], "the health report (error signatures)"),
    *[r for r in aggregates.REQUIRES["plan"] if r.table == "calls"],
)
REQUIRES = {"load_counts": (STATEMENT_READS, attempt_inputs.REQUIRES["load"])}
BOOKING_REACH = "booking (book_appointment or collect_appointment)"
DURATIONS = {"call_duration_session": "value", "call_duration_retell": "retell_value"}  # metric -> its column of "sessions"
log = logging.getLogger(__name__)
CALL_ID_FOLDED = call_ids.CALL_ID_FOLDED


@dataclass
class HealthData:
    """Per side: sessions and their flags, duration/latency histograms, reach, error and attempt counts."""

    sessions: dict  # side -> {"n", "stuck", "cleanup", "untraced", "ambiguous"}
    durations: dict  # metric -> {side: Histogram}; only metrics with any stored value
    latencies: dict  # family -> {side: Histogram} (negative durations left out, P6)
    trace_quality: dict  # period traces: {"n", "negative", "zero", "whole_seconds"}
    families: list  # families among the window's traces
    reached: dict  # (side, family) -> calls of that side with a trace of the family in the window
    errors: pd.DataFrame  # key_text, side, n, first_at, booking_failed
    attempts: pd.DataFrame  # outcomes.count_attempts(bins=Berlin days, first_at=True)
    excluded_test_ids: int = 0
    excluded_test_attempts: int = 0
    missing_columns: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- in the database
def _bounds(engine: sa.Engine, bounds: dict) -> dict:
    """The report's bounds as the database compares its columns, exactly: UTC, or where it stores wall time (the
    SQLite demo, a server read in ``SYSTEM`` time) the first wall time read at or after each (P1)."""
    exact = {"bs": bounds["baseline_start"], "start": bounds["start"], "end": bounds["end"],
             "stuck_before": sessions.stuck_before(bounds["end"])}
    return {name: loaders.wall_bound(ts, engine) for name, ts in exact.items()}


def _unclear_sql(col: str, engine: sa.Engine, bounds: dict, params: dict) -> str:
    """1 where the stored wall time ``col`` is ambiguous or does not exist in the storage zone (P1), else 0: the
    wall-time intervals of the DST changes within the window (none where the database stores UTC)."""
    zone = loaders.storage_zone(engine)
    if zone == "UTC":
        return "0"
    grid = pd.date_range(bounds["baseline_start"], bounds["end"], freq="min")  # offsets change on whole minutes
    offsets = grid.tz_convert(zone).tz_localize(None) - grid.tz_localize(None)
    parts = []
    for i in (offsets[1:] != offsets[:-1]).nonzero()[0] + 1:  # each change: walls between the two offsets
        lo, hi = sorted((grid[i].tz_localize(None) + offsets[i - 1], grid[i].tz_localize(None) + offsets[i]))
        params[f"u{i}_lo"], params[f"u{i}_hi"] = loaders.naive_param(lo, engine), loaders.naive_param(hi, engine)
        parts.append(f"({col} >= :u{i}_lo AND {col} < :u{i}_hi)")
    return f"CASE WHEN {' OR '.join(parts)} THEN 1 ELSE 0 END" if parts else "0"


def statements(db=None, bounds: dict | None = None, company_id: int | None = None) -> list[tuple[str, str, dict]]:
    """The aggregate statements of one report, ``(name, sql, params)``: what :func:`from_sql` runs
    besides :func:`rca_toolkit.analyses.bookings.booking_counts.attempt_counts` (a benchmark can time them alone).

    Bounds are compared in the zone the database stores (:func:`_bounds`), exactly.
    """
    engine = loaders.engine_for(db, cached=True)
    schema = loaders.schema_of(engine)
    requirements.check(schema, *STATEMENT_READS)
    base = _bounds(engine, bounds)
    company = loaders.company_clause("s.company_id", company_id or None, base)
    calls_cols = schema["calls"].columns if "calls" in schema else {}
    joined = "retell_call_id" in calls_cols
    join = ("LEFT JOIN calls c ON c.retell_call_id = s.call_id" + (" AND c.deleted_at IS NULL" if "deleted_at" in calls_cols else "")
            if joined else "")
    completed = sessions.call_completed_sql("c") if joined and "status" in calls_cols else "1 = 0"
    stuck = f"CASE WHEN {sessions.stuck_sql('s', bound=':stuck_before', completed=completed)} THEN 1 ELSE 0 END"
    cleanup = f"CASE WHEN {sessions.closed_by_cleanup_sql('s')} THEN 1 ELSE 0 END"
    side = "CASE WHEN {col} < :start THEN 0 ELSE 1 END"
    s_side = side.format(col="s.started_at")
    out = []
    untraced = ("CASE WHEN s.started_at >= :start AND NOT EXISTS (SELECT 1 FROM retell_function_traces t "
                "WHERE t.call_session_id = s.id AND t.started_at >= :start AND t.started_at < :end) THEN 1 ELSE 0 END")
    real = call_ids.real_call_id_sql("s.call_id", engine)
    scoped = " AND ".join(company + [real])
    ts, es = loaders.session_of(engine, "t"), loaders.session_of(engine, "e")  # a trace's, an error's session

    def scoped_by(session) -> str:  # its company, a real call id (no session: no real call id)
        return " AND ".join(loaders.company_clause(session.company_id, company_id or None, base) + [session.real])

    where = f"s.started_at >= :bs AND s.started_at < :end AND {scoped}"
    # both durations in one pass over the sessions and their calls (the join costs most: 0.2 s of 0.55 s at 1M calls)
    retell = ", c.duration_ms AS retell_value" if joined and "duration_ms" in calls_cols else ""
    out.append(("sessions", f"SELECT {s_side} AS side, {stuck} AS stuck, {cleanup} AS cleanup, "
                            f"{untraced} AS untraced, {_unclear_sql('s.started_at', engine, bounds, base)} AS ambiguous, "
                            f"s.duration_ms AS value{retell}, COUNT(*) AS n FROM retell_call_sessions s {join} WHERE {where} "
                            f"GROUP BY 1, 2, 3, 4, 5, 6{', 7' if retell else ''}", dict(base)))
    # as loaders.calls counts them: the window's sessions whose call id is not a real one (NULL included)
    out.append(("excluded_test_ids", f"SELECT COALESCE(SUM(CASE WHEN {real} THEN 0 ELSE 1 END), 0) AS n "
                                     f"FROM retell_call_sessions s WHERE s.started_at >= :bs AND s.started_at < :end"
                                     f"{''.join(f' AND {c}' for c in company)}", dict(base)))
    stored = loaders.query(engine, "SELECT DISTINCT function_name FROM retell_function_traces WHERE function_name IS NOT NULL",
                            {})["function_name"].astype(str).tolist()
    fam_of = dict(zip(stored, functions.family_series(pd.Series(stored, dtype="string")).astype(str)))
    fn_params: dict = {}
    listed = loaders.bind_list(stored, fn_params, "fn") or "NULL"
    out.append(("latencies", f"SELECT {side.format(col='t.started_at')} AS side, t.function_name, t.duration_ms AS value, "
                             f"COUNT(*) AS n FROM retell_function_traces t{ts.join} "
                             f"WHERE t.function_name IN ({listed}) AND t.started_at >= :bs AND t.started_at < :end "
                             f"AND {scoped_by(ts)} GROUP BY 1, 2, 3", dict(base, **fn_params)))
    fams = sorted(set(fam_of.values()))
    cases = [f"WHEN :fn{i} THEN '{fams.index(fam_of[name])}'" for i, name in enumerate(stored)]
    booking = [f":fn{i}" for i, n in enumerate(stored) if fam_of[n] in functions.BOOKING_FAMILIES] or ["NULL"]
    reach_from = (f"FROM retell_function_traces t{ts.join} WHERE {ts.started_at} >= :bs AND {ts.started_at} < :end "
                  f"AND {scoped_by(ts)} AND t.started_at >= :bs AND t.started_at < :end")
    t_side = side.format(col=ts.started_at)  # the session's side
    out.append(("reach", f"SELECT {t_side} AS side, CASE t.function_name {' '.join(cases) or 'WHEN NULL THEN NULL'} "
                         f"END AS family, COUNT(DISTINCT t.call_session_id) AS n {reach_from} GROUP BY 1, 2 "
                         f"UNION ALL SELECT {t_side}, '-1', COUNT(DISTINCT t.call_session_id) {reach_from} "
                         f"AND t.function_name IN ({', '.join(booking)}) GROUP BY 1", dict(base, **fn_params)))
    severities = loaders.query(engine, "SELECT DISTINCT severity FROM retell_error_log WHERE severity IS NOT NULL", {})["severity"]
    params = dict(base)
    sev = loaders.bind_list([str(v) for v in severities], params, "sev") or "NULL"
    out.append(("errors", f"SELECT {side.format(col='e.occurred_at')} AS side, "
                          f"{folded_message_sql(engine)} AS message, "
                          f"CASE WHEN e.error_message IS NULL THEN e.error_code END AS code, COUNT(*) AS n, "
                          f"MIN(e.occurred_at) AS first_at, SUM(CASE WHEN e.booking_failed <> 0 THEN 1 ELSE 0 END) AS booking_failed "
                          f"FROM retell_error_log e{es.join} "
                          f"WHERE e.severity IN ({sev}) AND e.occurred_at >= :bs AND e.occurred_at < :end "
                          f"AND {scoped_by(es)} GROUP BY 1, 2, 3", params))
    return out


def folded_message_sql(engine: sa.Engine) -> str:
    """``e.error_message`` with its call ids folded where the database can, so that few groups come back: stored
    so on the local store (folded once, when the row was stored: a third of the report's slowest statement); by
    MariaDB's REGEXP_REPLACE (every match, case-sensitive only when told ``(?-i)``: the column's collation is not).
    SQLite hands the texts back raw; :func:`from_sql` folds every text (folding twice changes nothing)."""
    if store.is_store(engine):
        return f"e.{store.ERROR_MESSAGE_FOLDED}"
    if loaders.is_mariadb(engine):
        return f"REGEXP_REPLACE(e.error_message, '(?-i){call_ids.RETELL_CALL_ID_BODY}', '{CALL_ID_FOLDED}')"
    return "e.error_message"


def from_sql(db=None, bounds: dict | None = None, company_id: int | None = None) -> HealthData:
    """Run :func:`statements` and :func:`rca_toolkit.analyses.bookings.booking_counts.attempt_counts` (MariaDB pinned to UTC)."""
    engine = loaders.engine_for(db, cached=True)
    stmts = statements(engine, bounds, company_id)

    def run_statements() -> dict:
        with engine.connect() as conn:
            return {name: loaders.query(engine, sql, params, conn) for name, sql, params in stmts}

    # the statements run on another thread once the attempts are read, beside their classification (Python)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started: list = []  # attempt_counts calls when_fetched once, before it returns
        counts = booking_counts.attempt_counts(engine, start=bounds["baseline_start"], end=bounds["end"],
                                               company_id=company_id or None, first_at=True,
                                               bins=day_edges(bounds["baseline_start"], bounds["end"]),
                                               when_fetched=lambda: started.append(pool.submit(run_statements)))
        rows = started[0].result()
    sides = {0: "base", 1: "cur"}
    rows = {name: r.assign(side=r["side"].astype(int).map(sides)) if "side" in r else r for name, r in rows.items()}
    sess = rows["sessions"].assign(n=lambda f: f["n"].astype("int64"))

    def counted(s: pd.DataFrame) -> dict:
        flagged = {flag: int(s.loc[s[flag].astype(int) == 1, "n"].sum()) for flag in ("stuck", "cleanup", "untraced", "ambiguous")}
        return {"n": int(s["n"].sum()), **flagged}

    sessions = {side: counted(sess[sess["side"] == side]) for side in SIDES}
    durations = {}
    for name, column in DURATIONS.items():
        values = pd.to_numeric(sess[column], errors="coerce") if column in sess else pd.Series(dtype=float)
        if values.notna().any():
            keep = values.notna() & (sess["stuck"].astype(int) == 0) & (sess["cleanup"].astype(int) == 0)
            durations[name] = {side: Histogram.from_counts(values[keep & (sess["side"] == side)].to_numpy(float),
                                                           sess.loc[keep & (sess["side"] == side), "n"].to_numpy("int64"))
                               for side in SIDES}
    lat = rows["latencies"]
    lat["family"] = functions.family_series(lat["function_name"].astype("string")).astype(str)
    lat["value"] = pd.to_numeric(lat["value"], errors="coerce")
    lat["n"] = lat["n"].astype("int64")
    families = sorted(set(lat["family"]))
    latencies = {fam: {side: Histogram.from_counts(*_valid(lat[(lat["family"] == fam) & (lat["side"] == side)]))
                       for side in SIDES} for fam in families}
    cur = lat[lat["side"] == "cur"]
    v = cur["value"]
    trace_quality = {"n": int(cur["n"].sum()), "negative": int(cur.loc[v < 0, "n"].sum()), "zero": int(cur.loc[v == 0, "n"].sum()),
                     "whole_seconds": int(cur.loc[(v % 1000 == 0) & (v != 0), "n"].sum())}
    stored_fams = sorted(set(functions.family_series(pd.Series(list(_stored_names(stmts)), dtype="string")).astype(str)))
    reached = {}
    for rec in rows["reach"].itertuples(index=False):
        idx = int(rec.family)
        family = BOOKING_REACH if idx == -1 else stored_fams[idx]
        reached[(rec.side, family)] = reached.get((rec.side, family), 0) + int(rec.n)
    err = loaders.to_utc(rows["errors"], ["first_at"], loaders.storage_zone(engine), flags=False)
    message = call_ids.fold_call_ids(err["message"].astype("string")).astype("object")  # SQLite's come back raw
    errors = pd.DataFrame({"key_text": message.where(err["message"].notna(), err["code"].astype("object")),
                           "side": err["side"], "n": err["n"].astype("int64"), "first_at": err["first_at"],
                           "booking_failed": pd.to_numeric(err["booking_failed"]).fillna(0).astype("int64")})
    errors = (errors.dropna(subset=["key_text"]).groupby(["key_text", "side"], sort=False)
              .agg(n=("n", "sum"), first_at=("first_at", "min"), booking_failed=("booking_failed", "sum")).reset_index())
    missing = _merged(requirements.check(engine, *REQUIRES["load_counts"]),
                      {"calls": attempt_inputs.calls_missing(loaders.schema_of(engine))})
    return HealthData(sessions, durations, latencies, trace_quality, families, reached, errors, counts,
                      int(rows["excluded_test_ids"]["n"].iloc[0]), int(counts.attrs.get("excluded_test_attempts", 0) or 0),
                      missing)


def _valid(frame: pd.DataFrame):
    keep = frame["value"].notna() & (frame["value"] >= 0)
    return frame.loc[keep, "value"].to_numpy(float), frame.loc[keep, "n"].to_numpy("int64")


def _stored_names(stmts) -> list[str]:
    params = next(p for name, _, p in stmts if name == "reach")
    return [params[k] for k in sorted((k for k in params if k.startswith("fn")), key=lambda k: int(k[2:]))]


def _merged(*missing: dict) -> dict[str, list[str]]:
    """Absent columns per table from several sources, each column once (tables without any left out)."""
    out: dict[str, list[str]] = {}
    for part in missing:
        for table, columns in (part or {}).items():
            out.setdefault(table, [])
            out[table] += [c for c in columns if c not in out[table]]
    return {t: c for t, c in out.items() if c}


# --------------------------------------------------------------------------- one report's inputs
@dataclass
class HealthInputs:
    """One report's period, its bounds (period and baseline) and its counts."""

    day: date
    period: str
    company_id: int
    bounds: dict
    data: HealthData
    source: str | None = None
    synthetic: bool = False
    read_note: str | None = None  # store.read_note: where the counts were read, when that was a store


def load_counts(db=None, period_start: date | str = "2025-10-14", period: str = "1d", company_id: int = 0) -> HealthInputs:
    """The counts and histograms of one report (:func:`from_sql`): what :func:`rca_toolkit.analyses.health.report.health` uses."""
    engine = loaders.engine_for(db, cached=True)
    requirements.check(engine, *REQUIRES["load_counts"])  # before the first statement
    zone = loaders.storage_zone(engine)
    log.info("health counts: counts and histograms computed by %s, bounds compared in %s",
             "the local store" if store.is_store(engine) else "the database", "UTC" if zone == "UTC" else f"{zone} wall time")
    bounds = period_bounds(period_start, period)
    attrs = loaders.base_attrs(engine)
    return HealthInputs(bounds["day"], period, int(company_id), bounds, from_sql(engine, bounds, int(company_id) or None),
                        attrs["source"], bool(attrs["synthetic"]), store.read_note(engine))
