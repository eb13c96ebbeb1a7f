"""The four benchmark jobs, each in variants that must give the same digest.

* ``toolkit`` - what an analyst calls (loaders, outcomes, the compare path), reading the server directly
  ("direct SQL" in the report);
* ``naive``   - what an analyst would write without it: ``pd.read_sql`` of whole tables, then pandas;
* ``floor``   - the aggregate SQL alone, executed by the server, rows fetched, no pandas;
* ``cold`` / ``warm`` / ``incremental`` - the toolkit's function on the local DuckDB store
  (:mod:`rca_toolkit.sources.store`), refreshed first when ``rca`` would (``store.fresh_store``, default max
  age): from an empty store (the whole extraction), from one refreshed moments ago (no refresh: a second
  command; the refresh that finds nothing new is timed apart) and from one a day old whose last day was deleted
  (a refresh that reads one new day). ``prepare`` makes the store so, untimed.

Every variant returns a small JSON-able *digest* (counts per path and side, rows per trace
table) so the harness and the smoke test can check that the three agree before comparing
their times. The toolkit's own variants (direct, its SQL, the store's) add the ``detail`` of what only the toolkit
computes: each attempt's outcome (orphaned, rescued), the signatures, the histograms' statistics, the whole report;
they must agree on it too (``run.summarise``). Times are bound per backend: UTC instants on MariaDB (session pinned to
``+00:00``), Europe/Berlin wall-time strings on SQLite (what the demo stores there).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import aggregates, attempt_inputs, loaders, store
from rca_toolkit.sources.store import catalog as store_catalog, files as store_files, tables as store_tables
from rca_toolkit.sources.store.engine import FRESH_FOR_S
from rca_toolkit.analyses.health import report as health, data as health_data
from rca_toolkit.rules import call_ids, functions
from rca_toolkit.analyses.bookings import outcomes
from rca_toolkit.analyses.compare.before_after import before_after
from rca_toolkit.rules.timeutil import parse_duration

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


DETAIL = "detail"  # the digest's key for what only the toolkit computes (naive and floor give no such key)
STORE_LABEL = re.compile(r" \(local store [^)]*\)")  # what the store adds to a source's name (store.open_store)
READ_NOTE = re.compile(r"read from .* \(local store [^)]*\)")  # the note of a result read from a store (store.read_note)


def counts_only(digest: dict) -> dict:
    """The part of a digest every variant gives."""
    return {k: v for k, v in digest.items() if k != DETAIL}


def _detail(result: dict) -> dict:
    """A result's dict as every toolkit variant must give it: where it was read (``source``, the store's name, the
    note that names it) left out, numbers to 10 significant digits (a sum in DuckDB and in MariaDB may differ in the
    last bit)."""
    def clean(node):
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k != "source"}
        if isinstance(node, list):
            return [clean(v) for v in node if not (isinstance(v, str) and READ_NOTE.fullmatch(v))]
        return float(f"{node:.10g}") if isinstance(node, float) else node
    cleaned = clean(json.loads(json.dumps(result, sort_keys=True, default=str)))
    return json.loads(STORE_LABEL.sub("", json.dumps(cleaned, sort_keys=True)))


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
    kinds = attempts.groupby(["path", "outcome", "rescued_by_webhook", "signature"], observed=True, dropna=False).size()
    detail = {"|".join(map(str, key)): int(n) for key, n in kinds.items() if n}
    return {"calls": len(calls), "attempts": _attempt_counts(attempts), DETAIL: _detail(detail)}


def day_floor(engine) -> dict:
    p = {"lo": bound(engine, DAY[0]), "hi": bound(engine, DAY[1])}
    n = _fetch(engine, "SELECT COUNT(*) FROM retell_call_sessions s LEFT JOIN calls c ON c.retell_call_id = s.call_id "
                       f"WHERE s.started_at >= :lo AND s.started_at < :hi AND {call_ids.real_call_id_sql('s.call_id', engine)}", p)[0][0]
    rows = _fetch(engine, f"SELECT {path_sql('t.function_name')} AS path, COUNT(*), SUM(t.status = 'success') "
                          "FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                          f"WHERE t.started_at >= :lo AND t.started_at < :hi AND {call_ids.real_call_id_sql('s.call_id', engine)} "
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
    sessions = sessions[sessions["call_id"].astype(str).str.fullmatch(call_ids.RETELL_CALL_ID_BODY)]
    family = traces["function_name"].map(functions.function_family)
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
    out[DETAIL] = _detail(result.to_dict())  # outcomes per window (orphaned, rescued), every metric and histogram statistic
    return out


def compare_floor(engine) -> dict:
    """The comparison's aggregate statements (``aggregates.plan``) executed alone, plus attempts and
    successes per side and path: what any implementation must ask the database. The toolkit also
    classifies failed attempts (orphaned, rescued, signatures) from their rows; the floor does not."""
    w = compare_windows()
    windows = {"before": w.before, "after": w.after}
    for statement in aggregates.plan(engine, windows=windows, as_of=w.after[1]).statements:
        _fetch(engine, statement.sql, statement.params)
    p = {"b0": bound(engine, w.before[0]), "b1": bound(engine, w.before[1]),
         "a0": bound(engine, w.after[0]), "a1": bound(engine, w.after[1])}
    where = loaders.family_clause(engine, "t.function_name", functions.BOOKING_FAMILIES, p)
    side = "CASE WHEN t.started_at < :b1 THEN 'before' ELSE 'after' END"
    rows = _fetch(engine, f"SELECT {side} AS side, t.function_name, COUNT(*), SUM(t.status = 'success') "
                          "FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                          f"WHERE {' AND '.join(where)} AND ((t.started_at >= :b0 AND t.started_at < :b1) "
                          "OR (t.started_at >= :a0 AND t.started_at < :a1)) "
                          f"AND {call_ids.real_call_id_sql('s.call_id', engine)} GROUP BY side, t.function_name", p)
    out: dict = {}
    for sd in ("before", "after"):
        out[sd] = _paths_digest([(functions.function_family(fn), n, ok) for s_, fn, n, ok in rows if s_ == sd])
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


# --------------------------------------------------------------------------- job 4: the health report, one company
HEALTH_DAY, HEALTH_PERIOD = "2025-10-13", "7d"  # the phantom-column week (Mon) and its 4-week baseline


def _health_digest(rows) -> dict:
    """``[(side, path, attempts, success)]`` -> ``{path: [attempts, success, baseline attempts, baseline success]}``."""
    out = {p: [0, 0, 0, 0] for p in PATHS}
    for side, path, n, ok in rows:
        if path in out:
            at = 0 if side == "period" else 2
            out[path][at] += int(n)
            out[path][at + 1] += int(ok)
    return out


def health_toolkit(engine) -> dict:
    report = health.health(engine, HEALTH_DAY, HEALTH_PERIOD, COMPANY)
    rows = []
    for r in report.booking.itertuples():
        if r.path in PATHS:
            rows.append(("period", r.path, r.attempts, r.success))
            rows.append(("baseline", r.path, r.baseline_attempts, round(r.baseline_success_rate * r.baseline_attempts)))
    return {**_health_digest(rows), DETAIL: _detail(report.to_dict())}


def health_floor_statements(engine, period_start: str = HEALTH_DAY, period: str = HEALTH_PERIOD,
                            company_id: int | None = COMPANY) -> list[tuple[str, str, dict]]:
    """The SQL floor of one health report: its aggregate statements (``health_data.statements``) plus attempts
    and successes per side and function name (what its booking table needs before the orphan and rescue
    classification): the least any implementation must ask the database (MariaDB, UTC bounds)."""
    bounds = health.period_bounds(period_start, period)
    out = health_data.statements(engine, bounds, company_id)
    params: dict = {"bs": bound(engine, bounds["baseline_start"]), "start": bound(engine, bounds["start"]),
                    "end": bound(engine, bounds["end"])}
    where = loaders.family_clause(engine, "t.function_name", functions.BOOKING_FAMILIES, params)
    if company_id:
        params["company_id"] = int(company_id)
        where.append("s.company_id = :company_id")
    out.append(("attempts", f"SELECT CASE WHEN t.started_at < :start THEN 0 ELSE 1 END AS side, t.function_name, "
                            f"CASE WHEN {attempt_inputs.is_success_sql('t.status', engine)} THEN 1 ELSE 0 END AS success, "
                            f"COUNT(*) AS n FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                            f"WHERE {' AND '.join(where)} AND t.started_at >= :bs AND t.started_at < :end "
                            f"AND {call_ids.real_call_id_sql('s.call_id', engine)} GROUP BY 1, 2, 3", params))
    return out


def health_floor(engine) -> dict:
    """Every statement of :func:`health_floor_statements` executed alone; the attempts one gives the digest.

    Those statements compare UTC instants (MariaDB); SQLite's Berlin wall time gets the counts alone.
    """
    digest_rows = []
    if engine.dialect.name == "sqlite":
        bounds = health.period_bounds(HEALTH_DAY, HEALTH_PERIOD)
        p = {"bs": bound(engine, bounds["baseline_start"]), "start": bound(engine, bounds["start"]),
             "end": bound(engine, bounds["end"]), "cid": COMPANY}
        rows = _fetch(engine, f"SELECT CASE WHEN t.started_at < :start THEN 'baseline' ELSE 'period' END AS side, "
                              f"{path_sql('t.function_name')} AS path, COUNT(*), SUM(t.status = 'success') "
                              "FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                              f"WHERE t.started_at >= :bs AND t.started_at < :end AND s.company_id = :cid "
                              f"AND {call_ids.real_call_id_sql('s.call_id', engine)} GROUP BY side, path", p)
        return _health_digest(rows)
    for name, sql, params in health_floor_statements(engine):
        rows = _fetch(engine, sql, params)
        if name == "attempts":
            for side, function_name, success, n in rows:
                family = functions.function_family(function_name)
                digest_rows.append(("period" if int(side) else "baseline", family, n, int(n) if int(success) else 0))
    return _health_digest(digest_rows)


def health_naive(engine) -> dict:
    sessions, traces = _naive_frames(engine)
    bounds = health.period_bounds(HEALTH_DAY, HEALTH_PERIOD)
    att = traces.merge(sessions[["id", "call_id", "company_id"]], left_on="call_session_id", right_on="id", suffixes=("", "_s"))
    att = att[att["path"].notna() & (att["company_id"] == COMPANY)]
    rows = []
    for side, lo, hi in (("baseline", bounds["baseline_start"], bounds["start"]), ("period", bounds["start"], bounds["end"])):
        part = att[(att["started_at"] >= lo) & (att["started_at"] < hi)]
        for path, (n, ok) in _naive_counts(part).items():
            rows.append((side, path, n, ok))
    return _health_digest(rows)


JOBS = {
    "trace": {"toolkit": trace_toolkit, "floor": trace_floor, "naive": trace_naive,
              "what": f"one call's trace by call id ({TRACE_CALL})"},
    "day": {"toolkit": day_toolkit, "floor": day_floor, "naive": day_naive,
            "what": "one day's calls with booking outcomes (2025-10-14 Berlin)"},
    "compare": {"toolkit": compare_toolkit, "floor": compare_floor, "naive": compare_naive,
                "what": f"before/after around {AT}, {SPAN} each side, by path"},
    "health": {"toolkit": health_toolkit, "floor": health_floor, "naive": health_naive,
               "what": f"the {HEALTH_PERIOD} health report of company {COMPANY} from {HEALTH_DAY} with its baseline"},
}
STORE_VARIANTS = ("cold", "warm", "incremental")
DIRECT_VARIANTS = ("toolkit", "sql", "floor", "naive")  # sql: the toolkit's own statements replayed (measure.py)
VARIANTS = ("toolkit", "sql", "floor", *STORE_VARIANTS, "naive")  # the order of a run: the slow naive ones last
STORE_JOBS = ("day", "compare", "health")  # one call's trace reads the server directly (the store never holds it)
# the whole tables each naive variant reads (its rows read are their row counts)
NAIVE_TABLES = {"trace": ("retell_call_sessions", *TRACE_TABLES, "calls"),
                "day": ("retell_call_sessions", "retell_function_traces", "calls"),
                "compare": ("retell_call_sessions", "retell_function_traces", "calls"),
                "health": ("retell_call_sessions", "retell_function_traces")}
NEW_DAY = pd.Timedelta(days=1)


def has_variant(job: str, variant: str) -> bool:
    return variant not in STORE_VARIANTS or job in STORE_JOBS


# --------------------------------------------------------------------------- the local store variants
def store_folder(root: str | Path, engine: sa.Engine) -> Path:
    """The benchmark's store of ``engine`` under ``root`` (a scratch folder, never the user's cache)."""
    return store.folder(root, engine.url)


def prepare(variant: str, source: sa.Engine, folder: Path) -> dict:
    """Untimed: make the store what ``variant`` starts from. ``cold``: no store; ``warm``: filled and refreshed
    moments ago (a second refresh, finding nothing new but checking the older rows as ``rca cache refresh`` does,
    is timed apart as ``noop_refresh_s``, with what the server read for it, ``noop_server``: the day in
    ``cache_check_every_s`` that an analysis's refresh checks them); ``incremental``: filled, then every row within
    the last day of each table's newest time deleted from the store (never the source) and its refresh and check
    times set a day back, so the next command refreshes and has one new day to read."""
    from .measure import server_counters, server_delta

    store.close(folder)
    if variant == "cold":
        return {"dropped": store.drop(folder)}
    done = store.refresh(source, folder, storage_zone=loaders.storage_zone(source))
    out = {"filled_rows_read": done.total_read, "filled_s": round(done.seconds, 2), "built": done.built}
    if variant == "warm":
        before = server_counters(source)
        again = store.refresh(source, folder, storage_zone=loaders.storage_zone(source), check_old=True)
        out.update(noop_refresh_s=round(again.seconds, 2), noop_rows_read=again.total_read,
                   noop_server=server_delta(before, server_counters(source)))
    if variant == "incremental":
        out["deleted"] = delete_last_day(folder)
    return out


def delete_last_day(folder: Path) -> dict[str, int]:
    """Delete from the store file every row within ``NEW_DAY`` of its table's newest time and move the store's
    last refresh and last check ``NEW_DAY`` back (a store a day old); rows deleted per table."""
    con = duckdb.connect(str(Path(folder) / store_files.STORE_FILE))
    try:
        held = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        deleted = {}
        for spec in store_tables.TABLES:
            if spec.time is None or spec.name not in held:
                continue
            (n,), = con.execute(f'DELETE FROM "{spec.name}" WHERE "{spec.time}" >= '
                                f'(SELECT max("{spec.time}") FROM "{spec.name}") - ?', [NEW_DAY.to_pytimedelta()]).fetchall()
            deleted[spec.name] = int(n)
        info = store_catalog.info(con)
        for key in ("refreshed_at_utc", "checked_at_utc"):
            if info.get(key):
                store_catalog.write_info(con, **{key: (pd.Timestamp(info[key]) - NEW_DAY).isoformat()})
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return deleted


def on_store(source: sa.Engine, folder: Path) -> tuple[sa.Engine, "store.Refresh | None"]:
    """What ``store.fresh_store`` does in a new process at the default max age (refresh unless the last refresh
    started less than that ago, then open read-only), keeping what the refresh did (None when there was none)."""
    store.close(folder)
    done = store.refresh_if_old(source, folder, loaders.storage_zone(source), max_age_s=FRESH_FOR_S)
    return store.open_store(Path(folder)), done


def store_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


def run(job: str, variant: str, engine: sa.Engine, store_root: str | Path | None = None) -> dict:
    """Run one variant of one job and return its digest (``sql`` is the toolkit's, whose statements it replays;
    a store variant prepares its store under ``store_root`` first, then runs the toolkit's function on it)."""
    if variant in STORE_VARIANTS:
        if not has_variant(job, variant) or store_root is None:
            raise ValueError(f"the {variant} variant needs a job of {', '.join(STORE_JOBS)} and a store folder (got {job})")
        folder = store_folder(store_root, engine)
        prepare(variant, engine, folder)
        stored, _ = on_store(engine, folder)
        return JOBS[job]["toolkit"](stored)
    return JOBS[job]["toolkit" if variant == "sql" else variant](engine)
