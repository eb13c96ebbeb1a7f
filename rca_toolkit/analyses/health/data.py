"""What the health report needs, as counts and histograms per side (``base`` = baseline, ``cur`` = period).

Why: the report used to load the attempts, sessions, every function trace (with its JSON) and
every error of period + baseline as rows: at 1M calls a weekly report for one company is
millions of rows. Every number it shows is a count, a rate or a statistic of a value
histogram, so the database can compute them (:func:`from_sql`: on a MariaDB server read directly, and on
its local store, :mod:`rca_toolkit.sources.store`, whose DuckDB runs the same statements); :func:`from_frames`
computes the same structure from loaded frames (storage zones other than UTC, such as the SQLite demo, where
wall-time bounds need the loaders' DST handling).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import aggregates, attempt_inputs, loaders, requirements, store
from rca_toolkit.rules import call_ids, functions, sessions
from rca_toolkit.rules.timeutil import source_tz
from rca_toolkit.analyses.bookings import counts as booking_counts, outcomes
from rca_toolkit.analyses.compare.stats import Histogram
from rca_toolkit.analyses.health.periods import period_bounds
from rca_toolkit.sources.requirements import Requirement

SIDES = ("base", "cur")
# What one report reads (rca_toolkit.sources.requirements), checked before its first statement: the aggregate
# statements (database path) or the loaders (rows path), and the booking outcomes on both
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
REQUIRES = {"load_counts": (STATEMENT_READS, attempt_inputs.REQUIRES["load"], loaders.REQUIRES["calls"],
                            loaders.REQUIRES["function_traces"], loaders.REQUIRES["errors"])}
REQUIRES["load"] = REQUIRES["load_counts"]
BOOKING_REACH = "booking (book_appointment or collect_appointment)"
DURATIONS = (("call_duration_session", "duration_ms"), ("call_duration_retell", "retell_duration_ms"))
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


def day_edges(bounds: dict) -> list[pd.Timestamp]:
    """Local midnights (the source zone, Europe/Berlin by default) from the baseline start to the
    period end (DST-safe), as UTC instants."""
    tz = source_tz()
    days = pd.date_range(bounds["baseline_start"].tz_convert(tz).date(), bounds["end"].tz_convert(tz).date(), freq="D")
    return [pd.Timestamp(d).tz_localize(tz).tz_convert("UTC") for d in days]


def _in_sides(ts: pd.Series, bounds: dict) -> dict[str, pd.Series]:
    return {"base": (ts >= bounds["baseline_start"]) & (ts < bounds["start"]), "cur": (ts >= bounds["start"]) & (ts < bounds["end"])}


def _side(ts: pd.Series, bounds: dict) -> pd.Series:
    side = pd.Series(pd.NA, index=ts.index, dtype="object")
    for name, inside in _in_sides(ts, bounds).items():
        side[inside] = name
    return side


def _hist(values) -> Histogram:
    return Histogram.of(np.asarray(values, dtype=float))


# --------------------------------------------------------------------------- from frames (pure)
def from_frames(calls: pd.DataFrame, traces: pd.DataFrame, errors: pd.DataFrame, attempts: pd.DataFrame,
                bounds: dict) -> HealthData:
    """The report's inputs computed from loaded frames (what :func:`from_sql` computes in the database)."""
    call_in = _in_sides(calls["started_at"], bounds)
    trace_in = _in_sides(traces["started_at"], bounds)
    side_calls = {side: calls.loc[call_in[side], "call_id"].astype(str) for side in SIDES}
    traced = set(traces.loc[trace_in["cur"], "call_id"].astype(str))
    sessions = {}
    for side in SIDES:
        c = calls[call_in[side]]
        sessions[side] = {"n": len(c), "stuck": int(c["stuck"].sum()), "cleanup": int(c["closed_by_cleanup"].sum()),
                          "untraced": int((~side_calls[side].isin(traced)).sum()),
                          "ambiguous": int(c.get("started_at_ambiguous", pd.Series(dtype=bool)).fillna(False).sum())}
    durations = {}
    for name, col in DURATIONS:
        if col in calls and calls[col].notna().any():
            keep = calls[col].notna() & ~calls["stuck"].fillna(False).astype(bool) & ~calls["closed_by_cleanup"].fillna(False).astype(bool)
            durations[name] = {side: _hist(calls.loc[keep & call_in[side], col].astype(float)) for side in SIDES}
    families = sorted(set(traces["family"].dropna().astype(str)))
    latencies = {}
    for fam in families:
        of_fam = traces["family"].astype(str) == fam
        latencies[fam] = {}
        for side in SIDES:
            v = traces.loc[of_fam & trace_in[side], "duration_ms"].astype(float)
            latencies[fam][side] = _hist(v[v >= 0].dropna())
    dur = traces.loc[trace_in["cur"], "duration_ms"].astype(float)
    trace_quality = {"n": len(dur), "negative": int((dur < 0).sum()), "zero": int((dur == 0).sum()),
                     "whole_seconds": int(((dur % 1000 == 0) & (dur != 0)).sum())}
    fams = traces[["call_id", "family"]].dropna().astype(str)
    fams = pd.concat([fams, fams[fams["family"].isin(list(functions.BOOKING_FAMILIES))].assign(family=BOOKING_REACH)])
    reached = {(side, family): int(side_calls[side].isin(callers).sum())
               for family, callers in fams.groupby("family")["call_id"] for side in SIDES}
    # every real call id in a text becomes one (as in from_sql): the texts of one signature group together,
    # so the signature rule runs per distinct text, not per error
    texts = call_ids.fold_call_ids(errors["error_message"].astype("string")).astype("object")
    err = pd.DataFrame({"key_text": texts.where(errors["error_message"].notna(), errors["error_code"].astype("object")),
                        "side": _side(errors["occurred_at"], bounds), "at": errors["occurred_at"],
                        "failed": errors["booking_failed"].fillna(False).astype(bool)})
    err = err.dropna(subset=["key_text", "side"])
    grouped = (err.groupby(["key_text", "side"], sort=False)
               .agg(n=("at", "size"), first_at=("at", "min"), booking_failed=("failed", "sum")).reset_index())
    frame = attempts if "rescued_by_webhook" in attempts else attempts.assign(rescued_by_webhook=False)
    counts = outcomes.count_attempts(frame, bins=day_edges(bounds), first_at=True)
    return HealthData(sessions, durations, latencies, trace_quality, families, reached, grouped, counts,
                      int(calls.attrs.get("excluded_test_ids", 0) or 0), int(attempts.attrs.get("excluded_test_attempts", 0) or 0),
                      dict(calls.attrs.get("missing_columns") or {}))


# --------------------------------------------------------------------------- in the database
def _utc(ts: pd.Timestamp):
    return ts.tz_convert("UTC").tz_localize(None).to_pydatetime()


def statements(db=None, bounds: dict | None = None, company_id: int | None = None) -> list[tuple[str, str, dict]]:
    """The aggregate statements of one report, ``(name, sql, params)``: what :func:`from_sql` runs
    besides :func:`rca_toolkit.analyses.bookings.booking_counts.attempt_counts` (a benchmark can time them alone).

    Needs a MariaDB session pinned to UTC (``storage_zone == "UTC"``): bounds are compared exactly.
    """
    engine = loaders.engine_for(db, cached=True)
    schema = loaders.schema_of(engine)
    requirements.check(schema, *STATEMENT_READS)
    base: dict = {"bs": _utc(bounds["baseline_start"]), "start": _utc(bounds["start"]), "end": _utc(bounds["end"]),
                  "stuck_before": _utc(sessions.stuck_before(bounds["end"]))}
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
    out.append(("sessions", f"SELECT {s_side} AS side, {stuck} AS stuck, {cleanup} AS cleanup, "
                            f"{untraced} AS untraced, s.duration_ms AS value, COUNT(*) AS n "
                            f"FROM retell_call_sessions s {join} WHERE {where} GROUP BY 1, 2, 3, 4, 5", dict(base)))
    if joined and "duration_ms" in calls_cols:
        out.append(("retell_durations", f"SELECT {s_side} AS side, {stuck} AS stuck, "
                                        f"{cleanup} AS cleanup, "
                                        f"c.duration_ms AS value, COUNT(*) AS n FROM retell_call_sessions s {join} "
                                        f"WHERE {where} GROUP BY 1, 2, 3, 4", dict(base)))
    # as loaders.calls counts them: the approximate SQL rule over the 2 h-padded window, the exact rule inside it
    params = dict(base, bs_pad=_utc(bounds["baseline_start"] - pd.Timedelta(hours=2)), end_pad=_utc(bounds["end"] + pd.Timedelta(hours=2)))
    approx = call_ids.real_call_id_prefilter_sql("s.call_id")
    out.append(("excluded_test_ids", f"SELECT COALESCE(SUM(CASE WHEN NOT {approx} THEN 1 WHEN s.started_at >= :bs AND "
                                     f"s.started_at < :end AND NOT ({real}) THEN 1 ELSE 0 END), 0) AS n "
                                     f"FROM retell_call_sessions s WHERE "
                                     f"{' AND '.join(['s.started_at >= :bs_pad', 's.started_at < :end_pad'] + company)}", params))
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
                          f"{_folded_message(engine)} AS message, "
                          f"CASE WHEN e.error_message IS NULL THEN e.error_code END AS code, COUNT(*) AS n, "
                          f"MIN(e.occurred_at) AS first_at, SUM(CASE WHEN e.booking_failed <> 0 THEN 1 ELSE 0 END) AS booking_failed "
                          f"FROM retell_error_log e{es.join} "
                          f"WHERE e.severity IN ({sev}) AND e.occurred_at >= :bs AND e.occurred_at < :end "
                          f"AND {scoped_by(es)} GROUP BY 1, 2, 3", params))
    return out


def _folded_message(engine: sa.Engine) -> str:
    """The error message with its call ids folded: stored so on the local store (folded once, when the row was
    stored: a third of the report's slowest statement), folded by the database elsewhere."""
    if store.is_store(engine):
        return f"e.{store.ERROR_MESSAGE_FOLDED}"
    return call_ids_folded_sql("e.error_message", engine)


def call_ids_folded_sql(col: str, engine: sa.Engine) -> str:
    """``col`` with every real call id replaced by one (case-sensitive, every match): MariaDB's REGEXP_REPLACE
    replaces all matches under the column's case-insensitive collation unless told ``(?-i)``; DuckDB's (the
    local store) replaces the first match unless told ``'g'``."""
    if store.is_store(engine):
        return f"regexp_replace({col}, '{call_ids.RETELL_CALL_ID_BODY}', '{CALL_ID_FOLDED}', 'g')"
    return f"REGEXP_REPLACE({col}, '(?-i){call_ids.RETELL_CALL_ID_BODY}', '{CALL_ID_FOLDED}')"


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
                                               company_id=company_id or None, bins=day_edges(bounds), first_at=True,
                                               when_fetched=lambda: started.append(pool.submit(run_statements)))
        rows = started[0].result()
    sides = {0: "base", 1: "cur"}
    rows = {name: r.assign(side=r["side"].astype(int).map(sides)) if "side" in r else r for name, r in rows.items()}
    sess = rows["sessions"].assign(n=lambda f: f["n"].astype("int64"))

    def counted(s: pd.DataFrame) -> dict:
        flagged = {flag: int(s.loc[s[flag].astype(int) == 1, "n"].sum()) for flag in ("stuck", "cleanup", "untraced")}
        return {"n": int(s["n"].sum()), **flagged, "ambiguous": 0}

    sessions = {side: counted(sess[sess["side"] == side]) for side in SIDES}
    durations = {}
    for name, key in (("call_duration_session", "sessions"), ("call_duration_retell", "retell_durations")):
        if key not in rows:
            continue
        r = rows[key]
        values = pd.to_numeric(r["value"], errors="coerce")
        if values.notna().any():
            keep = values.notna() & (r["stuck"].astype(int) == 0) & (r["cleanup"].astype(int) == 0)
            durations[name] = {side: Histogram.from_counts(values[keep & (r["side"] == side)].to_numpy(float),
                                                           r.loc[keep & (r["side"] == side), "n"].to_numpy("int64"))
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
    err = rows["errors"]
    errors = pd.DataFrame({"key_text": err["message"].astype("object").where(err["message"].notna(), err["code"].astype("object")),
                           "side": err["side"], "n": err["n"].astype("int64"),
                           "first_at": pd.to_datetime(err["first_at"], utc=True),
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


# --------------------------------------------------------------------------- loading one report's inputs
@dataclass
class HealthInputs:
    """Frames of the period plus its baseline (one load, so both sides come from the same query)."""

    day: date
    period: str
    company_id: int
    bounds: dict
    attempts: pd.DataFrame
    calls: pd.DataFrame
    traces: pd.DataFrame
    errors: pd.DataFrame
    source: str | None = None
    synthetic: bool = False
    data: HealthData | None = None  # counts and histograms; computed from the frames when None


def load(db=None, period_start: date | str = "2025-10-14", period: str = "1d", company_id: int = 0) -> HealthInputs:
    """Read the period and its baseline as rows through the loaders (read-only; traces without JSON)."""
    bounds = period_bounds(period_start, period)
    engine = loaders.engine_for(db, cached=True)
    absent = requirements.check(engine, *REQUIRES["load"])
    company = int(company_id) or None
    window = {"start": bounds["baseline_start"], "end": bounds["end"], "company_id": company}
    attempts = outcomes.booking_attempts(engine, **window)
    calls = loaders.calls(engine, **window, as_of=bounds["end"])
    calls.attrs["missing_columns"] = _merged(absent, calls.attrs.get("missing_columns"))
    traces = loaders.function_traces(engine, **window, blobs=False)
    errors = loaders.errors(engine, **window)
    return HealthInputs(bounds["day"], period, int(company_id), bounds, attempts, calls, traces, errors,
                        calls.attrs.get("source"), bool(calls.attrs.get("synthetic")))


def load_counts(db=None, period_start: date | str = "2025-10-14", period: str = "1d", company_id: int = 0) -> HealthInputs:
    """Read only counts and histograms (:func:`from_sql`): what :func:`rca_toolkit.analyses.health.report.health` uses.

    The database computes them when it hands back UTC (MariaDB pinned to ``+00:00``, and the local store of
    such a server); with wall-time storage (SQLite, ``SYSTEM`` zone) the rows are loaded and counted here, so
    DST is handled as the loaders handle it.
    """
    engine = loaders.engine_for(db, cached=True)
    requirements.check(engine, *REQUIRES["load_counts"])  # before the first statement of either path
    zone = loaders.storage_zone(engine)
    if zone != "UTC":
        log.info("health counts: rows loaded and counted in Python (the database hands back wall time, %s)", zone)
        return load(engine, period_start, period, company_id)
    log.info("health counts: counts and histograms computed by %s (it stores UTC)",
             "the local store" if store.is_store(engine) else "the database")
    bounds = period_bounds(period_start, period)
    data = from_sql(engine, bounds, int(company_id) or None)
    attrs = loaders.base_attrs(engine)
    empty = pd.DataFrame()
    return HealthInputs(bounds["day"], period, int(company_id), bounds, empty, empty, empty, empty,
                        attrs["source"], bool(attrs["synthetic"]), data)
