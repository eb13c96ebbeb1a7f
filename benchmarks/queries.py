"""The four benchmark jobs, each in three variants that must give the same digest.

* ``toolkit`` - what an analyst calls (loaders, outcomes, the compare path);
* ``naive``   - what an analyst would write without it: ``pd.read_sql`` of whole tables, then pandas;
* ``floor``   - the aggregate SQL alone, executed by the server, rows fetched, no pandas.

Every variant returns a small JSON-able *digest* (counts per path and side, rows per trace
table) so the harness and the smoke test can check that the three agree before comparing
their times. Times are bound per backend: UTC instants on MariaDB (session pinned to
``+00:00``), Europe/Berlin wall-time strings on SQLite (what the demo stores there).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from rca_toolkit import loaders, names, outcomes
from rca_toolkit.commands.compare import before_after
from rca_toolkit.timeutil import parse_duration

TRACE_CALL = "call_ab45deadd7db66c4956d5243861"  # the injected 144-second call: present at every scale
DAY = ("2025-10-14T00:00:00+02:00", "2025-10-15T00:00:00+02:00")  # a Tuesday in the phantom window
AT, SPAN, GUARD = "2025-10-18T13:20:08+02:00", "30d", "30m"  # the phantom-column fix, +-30 days
COMPANY = 1
PATHS = {"collect_appointment": ("collect_appointment", "collect_appointment_data"),
         "book_appointment": ("book_appointment", "start_booking")}
TRACE_TABLES = ("retell_call_events", "retell_function_traces", "retell_transcript_segments", "retell_error_log")


@dataclass(frozen=True)
class Windows:
    """Before/after windows of the comparison (UTC)."""

    before: tuple[pd.Timestamp, pd.Timestamp]
    after: tuple[pd.Timestamp, pd.Timestamp]


def compare_windows() -> Windows:
    at, span, guard = pd.Timestamp(AT).tz_convert("UTC"), parse_duration(SPAN), parse_duration(GUARD)
    return Windows((at - span, at - guard), (at + guard, at + span))


# --------------------------------------------------------------------------- SQL helpers
def bound(engine: sa.Engine, ts) -> object:
    """A UTC instant as the stored column compares it (exact at the whole-second bounds used here)."""
    ts = pd.Timestamp(ts).tz_convert("UTC")
    if engine.dialect.name == "sqlite":
        return ts.tz_convert("Europe/Berlin").strftime("%Y-%m-%d %H:%M:%S")
    return ts.tz_localize(None).to_pydatetime()


def real_id_sql(engine: sa.Engine, col: str) -> str:
    """The exact P4 rule (``call_`` + 27 hex) in the backend's own pattern syntax."""
    if engine.dialect.name == "sqlite":
        return f"{col} GLOB 'call_{'[0-9a-f]' * 27}'"
    return f"{col} REGEXP BINARY '^call_[0-9a-f]{{27}}$'"


def path_sql(col: str) -> str:
    """Booking path of a function name (P3 aliases and ``_vNN`` suffixes folded), else NULL."""
    whens = []
    for path, bases in PATHS.items():
        tests = " OR ".join(f"{col} = '{b}' OR {col} LIKE '{b}!_v%' ESCAPE '!'" for b in bases)
        whens.append(f"WHEN {tests} THEN '{path}'")
    return "CASE " + " ".join(whens) + " END"


def _fetch(engine: sa.Engine, sql: str, params: dict | None = None) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params or {}).fetchall()]


def _paths_digest(rows) -> dict:
    """``[(path, attempts, success)]`` -> ``{path: [attempts, success]}`` for both paths."""
    out = {p: [0, 0] for p in PATHS}
    for path, n, ok in rows:
        if path in out:
            out[path] = [out[path][0] + int(n), out[path][1] + int(ok or 0)]
    return out


def _attempt_counts(attempts: pd.DataFrame) -> dict:
    got = attempts.groupby(attempts["path"].astype(str), observed=True)["outcome"].agg(
        lambda s: [len(s), int((s == "success").sum())])
    return {p: list(got.get(p, [0, 0])) for p in PATHS}


# --------------------------------------------------------------------------- job 1: one call's trace
def trace_toolkit(engine) -> dict:
    tr = loaders.call_trace(engine, TRACE_CALL)
    return {"retell_call_events": len(tr.events), "retell_function_traces": len(tr.function_traces),
            "retell_transcript_segments": len(tr.transcript), "retell_error_log": len(tr.errors)}


def trace_floor(engine) -> dict:
    sid = _fetch(engine, "SELECT id FROM retell_call_sessions WHERE call_id = :cid", {"cid": TRACE_CALL})[0][0]
    out = {t: len(_fetch(engine, f"SELECT * FROM {t} WHERE call_session_id = :sid", {"sid": sid})) for t in TRACE_TABLES}
    _fetch(engine, "SELECT raw FROM calls WHERE retell_call_id = :cid", {"cid": TRACE_CALL})
    return out


def trace_naive(engine) -> dict:
    with engine.connect() as conn:
        sessions = pd.read_sql("SELECT * FROM retell_call_sessions", conn)
        sid = sessions.loc[sessions["call_id"] == TRACE_CALL, "id"].iloc[0]
        out = {}
        for table in TRACE_TABLES:
            frame = pd.read_sql(f"SELECT * FROM {table}", conn)
            out[table] = int((frame["call_session_id"] == sid).sum())
            del frame
        calls = pd.read_sql("SELECT * FROM calls", conn)
        calls[calls["retell_call_id"] == TRACE_CALL]
    return out


# --------------------------------------------------------------------------- job 2: one day's calls + outcomes
def day_toolkit(engine) -> dict:
    calls = loaders.calls(engine, start=DAY[0], end=DAY[1], as_of=DAY[1])
    attempts = outcomes.booking_attempts(engine, start=DAY[0], end=DAY[1])
    return {"calls": len(calls), "attempts": _attempt_counts(attempts)}


def day_floor(engine) -> dict:
    p = {"lo": bound(engine, DAY[0]), "hi": bound(engine, DAY[1])}
    n = _fetch(engine, "SELECT COUNT(*) FROM retell_call_sessions s LEFT JOIN calls c ON c.retell_call_id = s.call_id "
                       f"WHERE s.started_at >= :lo AND s.started_at < :hi AND {real_id_sql(engine, 's.call_id')}", p)[0][0]
    rows = _fetch(engine, f"SELECT {path_sql('t.function_name')} AS path, COUNT(*), SUM(t.status = 'success') "
                          "FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                          f"WHERE t.started_at >= :lo AND t.started_at < :hi AND {real_id_sql(engine, 's.call_id')} "
                          "GROUP BY path", p)
    return {"calls": int(n), "attempts": _paths_digest(rows)}


def _naive_frames(engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Whole sessions and traces tables, times made UTC the way an analyst would."""
    with engine.connect() as conn:
        sessions = pd.read_sql("SELECT * FROM retell_call_sessions", conn)
        traces = pd.read_sql("SELECT * FROM retell_function_traces", conn)
    for frame, col in ((sessions, "started_at"), (traces, "started_at")):
        when = pd.to_datetime(frame[col], format="mixed")
        if engine.dialect.name == "sqlite":
            when = when.dt.tz_localize("Europe/Berlin", ambiguous="NaT", nonexistent="NaT")
        else:
            when = when.dt.tz_localize("UTC")
        frame[col] = when
    sessions = sessions[sessions["call_id"].astype(str).str.fullmatch(names.RETELL_CALL_ID.pattern[1:-1])]
    family = traces["function_name"].map(names.function_family)
    traces["path"] = family.where(family.isin(PATHS))
    return sessions, traces


def _naive_counts(att: pd.DataFrame) -> dict:
    got = att.groupby("path")["status"].agg(lambda s: [len(s), int((s == "success").sum())])
    return {p: list(got.get(p, [0, 0])) for p in PATHS}


def day_naive(engine) -> dict:
    sessions, traces = _naive_frames(engine)
    with engine.connect() as conn:
        calls = pd.read_sql("SELECT * FROM calls", conn)
    lo, hi = pd.Timestamp(DAY[0]), pd.Timestamp(DAY[1])
    day = sessions[(sessions["started_at"] >= lo) & (sessions["started_at"] < hi)]
    day = day.merge(calls, how="left", left_on="call_id", right_on="retell_call_id", suffixes=("", "_call"))
    att = traces.merge(sessions[["id", "call_id"]], left_on="call_session_id", right_on="id", suffixes=("", "_s"))
    att = att[att["path"].notna() & (att["started_at"] >= lo) & (att["started_at"] < hi)]
    return {"calls": len(day), "attempts": _naive_counts(att)}


# --------------------------------------------------------------------------- job 3: before/after over two months
def compare_toolkit(engine) -> dict:
    result = before_after(engine, at=AT, before=SPAN, after=SPAN, exclude=GUARD, by="path", with_changepoints=False)
    out = {}
    for metric in result.comparison.metrics:
        if metric.name == "booking_success_rate" and metric.group in PATHS:
            for side in ("before", "after"):
                s = getattr(metric, side)
                out.setdefault(side, {})[metric.group] = [int(s.n), int(round(s.value * s.n)) if s.n else 0]
    return out


def compare_floor(engine) -> dict:
    w = compare_windows()
    p = {"b0": bound(engine, w.before[0]), "b1": bound(engine, w.before[1]),
         "a0": bound(engine, w.after[0]), "a1": bound(engine, w.after[1])}
    side = ("CASE WHEN {c} >= :b0 AND {c} < :b1 THEN 'before' WHEN {c} >= :a0 AND {c} < :a1 THEN 'after' END")
    in_window = "{c} >= :b0 AND {c} < :a1"
    rows = _fetch(engine, f"SELECT {side.format(c='t.started_at')} AS side, {path_sql('t.function_name')} AS path, "
                          "COUNT(*), SUM(t.status = 'success') "
                          "FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                          f"WHERE {in_window.format(c='t.started_at')} AND {real_id_sql(engine, 's.call_id')} "
                          "GROUP BY side, path", p)
    # what the comparison also reports: call durations and function latencies per side (n and mean)
    _fetch(engine, f"SELECT {side.format(c='s.started_at')} AS side, COUNT(s.duration_ms), AVG(s.duration_ms), "
                   "COUNT(c.duration_ms), AVG(c.duration_ms) "
                   "FROM retell_call_sessions s LEFT JOIN calls c ON c.retell_call_id = s.call_id "
                   f"WHERE {in_window.format(c='s.started_at')} AND {real_id_sql(engine, 's.call_id')} "
                   "AND NOT (s.call_status = 'in_progress' AND s.ended_at IS NULL) "
                   "AND COALESCE(s.disconnection_reason, '') <> 'system_timeout' GROUP BY side", p)
    _fetch(engine, f"SELECT {side.format(c='t.started_at')} AS side, t.function_name, COUNT(*), AVG(t.duration_ms), "
                   "SUM(t.duration_ms < 0) FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                   f"WHERE {in_window.format(c='t.started_at')} AND {real_id_sql(engine, 's.call_id')} "
                   "GROUP BY side, t.function_name", p)
    out: dict = {"before": {}, "after": {}}
    for s in ("before", "after"):
        out[s] = _paths_digest([(path, n, ok) for sd, path, n, ok in rows if sd == s])
    return out


def compare_naive(engine) -> dict:
    sessions, traces = _naive_frames(engine)
    with engine.connect() as conn:
        calls = pd.read_sql("SELECT * FROM calls", conn)
    w = compare_windows()
    att = traces.merge(sessions[["id", "call_id"]], left_on="call_session_id", right_on="id", suffixes=("", "_s"))
    att = att[att["path"].notna()]
    merged = sessions.merge(calls, how="left", left_on="call_id", right_on="retell_call_id", suffixes=("", "_call"))
    out: dict = {}
    for side, (lo, hi) in (("before", w.before), ("after", w.after)):
        out[side] = _naive_counts(att[(att["started_at"] >= lo) & (att["started_at"] < hi)])
        part = merged[(merged["started_at"] >= lo) & (merged["started_at"] < hi)]
        part["duration_ms"].median(), part["duration_ms_call"].median()
        lat = traces[(traces["started_at"] >= lo) & (traces["started_at"] < hi)]
        lat.groupby("function_name")["duration_ms"].median()
    return out


# --------------------------------------------------------------------------- job 4: booking health, one company
def health_toolkit(engine) -> dict:
    attempts = outcomes.booking_attempts(engine, company_id=COMPANY)
    summary = outcomes.outcome_summary(attempts, by="path")
    return {str(r.path): [int(r.attempts), int(r.success)] for r in summary.itertuples()} | {
        p: [0, 0] for p in PATHS if p not in set(summary["path"].astype(str))}


def health_floor(engine) -> dict:
    rows = _fetch(engine, f"SELECT {path_sql('t.function_name')} AS path, COUNT(*), SUM(t.status = 'success') "
                          "FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                          f"WHERE s.company_id = :cid AND {real_id_sql(engine, 's.call_id')} GROUP BY path",
                  {"cid": COMPANY})
    return _paths_digest(rows)


def health_naive(engine) -> dict:
    sessions, traces = _naive_frames(engine)
    att = traces.merge(sessions[["id", "call_id", "company_id"]], left_on="call_session_id", right_on="id", suffixes=("", "_s"))
    return _naive_counts(att[att["path"].notna() & (att["company_id"] == COMPANY)])


JOBS = {
    "trace": {"toolkit": trace_toolkit, "floor": trace_floor, "naive": trace_naive,
              "what": f"one call's trace by call id ({TRACE_CALL})"},
    "day": {"toolkit": day_toolkit, "floor": day_floor, "naive": day_naive,
            "what": "one day's calls with booking outcomes (2025-10-14 Berlin)"},
    "compare": {"toolkit": compare_toolkit, "floor": compare_floor, "naive": compare_naive,
                "what": f"before/after around {AT}, {SPAN} each side, by path"},
    "health": {"toolkit": health_toolkit, "floor": health_floor, "naive": health_naive,
               "what": f"booking success by path for company {COMPANY}, whole window"},
}
VARIANTS = ("toolkit", "floor", "naive")


def run(job: str, variant: str, engine: sa.Engine) -> dict:
    """Run one variant of one job and return its digest."""
    return JOBS[job][variant](engine)
