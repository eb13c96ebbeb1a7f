"""Value histograms for the before/after comparison, computed by the database.

Why: a 60-day comparison at 1M calls loaded every session and ~2.3M function traces as rows
only to compute percentiles and rank tests. Stored durations are integers, so
``GROUP BY side, value`` with ``COUNT(*)`` loses nothing: :mod:`rca_toolkit.analyses.compare.stats` runs the
same statistics on the histograms. :func:`plan` returns the statements (SQL + bound
parameters) so a benchmark can time exactly these statements alone.

Rows are selected like the loaders select them (``loaders.calls`` and
``loaders.function_traces``): session/trace ``started_at`` in ``[start, end)``, test/demo/temp
and malformed call ids left out (the exact ``call_`` + 27 hex rule, as ``REGEXP`` on MariaDB, ``GLOB`` on
SQLite, ``regexp_full_match`` on the local store), stuck (P5) and cleanup-closed (P20) sessions flagged as ``loaders.calls``
flags them with ``as_of`` (the SQL twins in :mod:`rca_toolkit.rules.call_ids` and :mod:`rca_toolkit.rules.sessions`). Time bounds
are compared as the loaders compare them: in the stored time, exactly, near a DST change too (``loaders.first_wall_time``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import loaders, requirements
from rca_toolkit.rules import call_ids, functions, sessions
from rca_toolkit.sources.requirements import Requirement

log = logging.getLogger(__name__)
SIDES = ("before", "after")
DURATION_SOURCES = {"call_duration_session": ("s", "duration_ms"), "call_duration_retell": ("c", "duration_ms")}

# What the histograms read (rca_toolkit.sources.requirements); an absent calls column is a note on the plan
_CALLS_WHY = "the duration histograms (Retell durations and the stuck rule, joined from calls)"
REQUIRES = {"plan": (
    Requirement("retell_call_sessions", ["id", "call_id", "company_id", "started_at", "ended_at", "call_status",
                                         "disconnection_reason", "duration_ms"],
                "the duration histograms (sessions of the windows, stuck and cleanup-closed ones left out)"),
    Requirement("retell_function_traces", ["call_session_id", "function_name", "started_at", "duration_ms"],
                "the function-latency histograms"),
    Requirement("calls", (), _CALLS_WHY, optional=["retell_call_id"],
                if_absent="calls not joined: Retell durations not compared, and sessions in_progress while the call "
                          "row says completed (P5) not left out as stuck"),
    Requirement("calls", (), _CALLS_WHY, optional=["duration_ms"], if_absent="call_duration_retell not compared"),
    Requirement("calls", (), _CALLS_WHY, optional=["status"],
                if_absent="sessions in_progress while the call row says completed (P5) not left out as stuck"),
    Requirement("calls", (), _CALLS_WHY, optional=["deleted_at"], if_absent="soft-deleted call rows are joined too"),
)}


@dataclass
class Statement:
    """One aggregate query: ``metric`` it feeds, SQL with ``:name`` parameters, their values."""

    metric: str
    sql: str
    params: dict


@dataclass
class Plan:
    """The statements of one comparison, and what the read could not include (absent columns)."""

    statements: list[Statement]
    notes: list[str] = field(default_factory=list)

    def only(self, metrics) -> "Plan":
        """The same plan with the statements of ``metrics`` only (fetched apart, e.g. at another time)."""
        return replace(self, statements=[s for s in self.statements if s.metric in metrics])


@dataclass
class Histograms:
    """Value -> count per side: ``durations[metric][side]`` and ``latencies[family][side]`` (pandas Series)."""

    durations: dict[str, dict[str, pd.Series]]
    dropped: dict[str, tuple[int, int]]  # sessions left out per side (stuck, cleanup-closed, no duration)
    latencies: dict[str, dict[str, pd.Series]]
    notes: list[str] = field(default_factory=list)

    def merge(self, other: "Histograms") -> "Histograms":
        """Histograms of two subsets of one plan (``Plan.only``) as one."""
        return Histograms({**self.durations, **other.durations}, {**self.dropped, **other.dropped},
                          {**self.latencies, **other.latencies}, list(dict.fromkeys(self.notes + other.notes)))


MAX_LISTED = 5000  # test sessions bound as a NOT IN list; more than this and traces are joined instead


def _window_sql(col: str, windows: dict, engine, params: dict) -> tuple[str, str]:
    """(WHERE on the two windows, side expression: 0 before, 1 after)."""
    where = " OR ".join("(" + " AND ".join(loaders.window_bounds(col, *windows[key], engine, params, f"w{i}")) + ")"
                        for i, key in enumerate(SIDES))
    params["w_mid"] = loaders.wall_bound(windows["before"][1], engine)
    return f"({where})", f"CASE WHEN {col} < :w_mid THEN 0 ELSE 1 END"


def plan(db=None, *, windows: dict, as_of) -> Plan:
    """The aggregate statements for ``windows`` (``{"before": (lo, hi), "after": (lo, hi)}``, UTC).

    On MariaDB read directly (``--no-cache``) it first looks the test sessions up (:func:`_test_sessions`, so the
    traces need no join: 16.5 s -> 2 s at 1M calls)."""
    engine = loaders.engine_for(db)
    schema = loaders.schema_of(engine)
    absent = requirements.check(schema, *REQUIRES["plan"])
    log.info("histograms: computed by the database, window bounds compared exactly in %s", loaders.storage_zone(engine))
    stuck_before = sessions.stuck_before(pd.Timestamp(as_of).tz_convert("UTC"))
    calls_cols = schema["calls"].columns if "calls" in schema else {}
    joined = "retell_call_id" in calls_cols
    notes, statements = requirements.absent_notes(absent, *REQUIRES["plan"]), []
    live = " AND c.deleted_at IS NULL" if "deleted_at" in calls_cols else ""
    completed = "1 = 0"
    if joined and "status" in calls_cols:  # P5: the call row says completed (MariaDB asks it of open sessions only;
        # DuckDB hashes the completed calls once)
        completed = sessions.call_completed_subquery_sql("s", skip_deleted="deleted_at" in calls_cols)

    for metric, (alias, column) in DURATION_SOURCES.items():
        if alias == "c" and not (joined and column in calls_cols):
            continue  # the note above says so
        params: dict = {}
        where, side = _window_sql("s.started_at", windows, engine, params)
        params["stuck_before"] = loaders.wall_bound(stuck_before, engine)
        inner, outer, v = f"s.{column} AS v FROM retell_call_sessions s", "", "d.v"
        if alias == "c" and loaders.is_mariadb(engine) and "id" in calls_cols:
            # only the Retell duration needs calls joined to every session. Looked up in session order, each
            # call row is a random read of the clustered index (3.4 s at 1M calls). Instead the call-id index
            # alone (covering) gives each session's calls.id, the ids are sorted (ORDER BY kept by the LIMIT),
            # and the rows are read in key order: 4.5 s -> 2.4 s. calls.retell_call_id is unique (one row each).
            inner = "c.id AS cid FROM retell_call_sessions s LEFT JOIN calls c ON c.retell_call_id = s.call_id"
            outer, v = f" LEFT JOIN calls c ON c.id = d.cid{live}", f"c.{column}"
        elif alias == "c":
            inner = f"c.{column} AS v FROM retell_call_sessions s LEFT JOIN calls c ON c.retell_call_id = s.call_id{live}"
        # the exclusions are decided in SQL, left-out sessions count under NULL; CASE WHEN on a NULL condition takes
        # the ELSE branch: a missing call row or reason keeps the value. A live call row joined here says itself whether
        # the call completed (one row per call): the store then hashes the calls once, not twice (1M calls: 0.58 -> 0.39 s)
        done = sessions.call_completed_sql("c") if alias == "c" and not outer and "status" in calls_cols else completed
        stuck = sessions.stuck_sql("s", bound=":stuck_before", completed=done)
        flags = {"side": side, "dropped": f"CASE WHEN {stuck} OR {sessions.closed_by_cleanup_sql('s')} THEN 1 ELSE 0 END"}
        value = f"CASE WHEN d.dropped = 1 THEN NULL ELSE {v} END"
        order = f" ORDER BY c.id LIMIT {2 ** 64 - 1}" if outer else ""
        source = (f"(SELECT {', '.join(f'{sql} AS {name}' for name, sql in flags.items())}, {inner} "
                  f"WHERE {where} AND {call_ids.real_call_id_sql('s.call_id', engine)}{order}) d{outer}")
        select = [f"d.{name}" for name in flags if name != "dropped"] + [f"{value} AS value", "COUNT(*) AS n"]
        keys = ", ".join(str(i) for i in range(1, len(select)))
        statements.append(Statement(metric, f"SELECT {', '.join(select)} FROM {source} GROUP BY {keys}", params))

    params = {}
    where, side = _window_sql("t.started_at", windows, engine, params)
    select = f"{side} AS side, t.function_name AS function_name, t.duration_ms AS value, COUNT(*) AS n"
    test_sessions = _test_sessions(engine)
    if test_sessions is None:
        log.info("function latencies: every trace's session call id tested (joined; kept on the trace on the local store)")
        session = loaders.session_of(engine)
        source, real = f"retell_function_traces t{session.join}", session.real
    else:  # no million-row join
        log.info("function latencies: %d test sessions bound as a list (one scan of the traces, no join)", len(test_sessions))
        source = "retell_function_traces t"
        real = f"t.call_session_id NOT IN ({loaders.bind_list(test_sessions, params, 'x')})" if test_sessions else "1 = 1"
    sql = f"SELECT {select} FROM {source} WHERE {where} AND t.function_name IS NOT NULL AND {real} GROUP BY 1, 2, 3"
    statements.append(Statement("function_latency", sql, params))
    for note in notes:
        log.info("histograms: %s", note)
    return Plan(statements, notes)


def _test_sessions(engine: sa.Engine) -> list | None:
    """Ids of sessions whose call id is not a real one (P4), or None when a join is the better plan.

    On MariaDB a scan of the call-id index finds them in well under a second at 1M sessions;
    up to ``MAX_LISTED`` are bound as a list. SQLite (small, no such cost) keeps the join.
    """
    if not loaders.is_mariadb(engine):
        return None
    ids = loaders.query(engine, "SELECT id FROM retell_call_sessions "
                                 f"WHERE call_id IS NULL OR NOT ({call_ids.real_call_id_sql('call_id', engine)})", {})["id"]
    return None if len(ids) > MAX_LISTED else sorted(ids.tolist())


def _histogram(frame: pd.DataFrame) -> pd.Series:
    values = pd.to_numeric(frame["value"], errors="coerce")
    counts = frame["n"].astype("int64")
    keep = values.notna()
    return counts[keep].groupby(values[keep].astype(float)).sum().sort_index().rename("count")


def fetch(db=None, plan_: Plan | None = None, **plan_args) -> Histograms:
    """Run the plan's statements (on one connection) and turn their rows into histograms."""
    engine = loaders.engine_for(db)
    plan_ = plan_ or plan(engine, **plan_args)
    durations, dropped, latencies = {}, {}, {}
    started = time.perf_counter()
    with engine.connect() as conn:
        results = [(s.metric, loaders.query(engine, s.sql, s.params, conn)) for s in plan_.statements]
    log.info("histograms of %s: %d grouped rows from the database in %.2f s", ", ".join(s.metric for s in plan_.statements),
             sum(len(rows) for _, rows in results), time.perf_counter() - started)
    for metric, rows in results:
        rows["side"] = pd.to_numeric(rows["side"]).astype("Int64")
        if metric == "function_latency":
            # folded as the database returns them: a collation that holds names equal (MariaDB's: case, trailing
            # spaces) groups them under one of their spellings
            rows["family"] = functions.family_series(rows["function_name"].astype("string")).astype(str)
            for fam, part in rows.groupby("family", sort=True):
                latencies[fam] = {key: _histogram(part[part["side"] == i]) for i, key in enumerate(SIDES)}
            continue
        keep = pd.to_numeric(rows["value"], errors="coerce").notna()
        durations[metric] = {key: _histogram(rows[keep & (rows["side"] == i)]) for i, key in enumerate(SIDES)}
        dropped[metric] = tuple(int(rows.loc[~keep & (rows["side"] == i), "n"].sum()) for i in range(2))
    return Histograms(durations, dropped, latencies, list(plan_.notes))

