"""Reusable runbook checks: each computes its status from data and returns a CheckResult.

Bands come from incidents.md §E and are module constants so a sign-off can quote them.
Every check shows its denominator and window; a sample below ``min_attempts`` is WARN
("not enough data"), never PASS. Tables and columns are required through the loaders, so a
missing one raises ``SchemaError`` and :func:`rca_toolkit.runbooks.framework.run_check` makes it ERROR.
Checks that do not apply (no Redis, no log file, no code tree) raise ``NotApplicable``.
Times are ISO-8601 strings with a zone (or Timestamps); ``as_of`` defaults to now, so a
historical run judges freshness relative to its own ``as_of``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import loaders
from rca_toolkit.rules import names
from rca_toolkit.sources.db import check_connection, introspect, redact_text, redact_url
from rca_toolkit.errors import ConnectionFailed, NotFound, SchemaError
from rca_toolkit.runs.runner import db_label
from rca_toolkit.runbooks.framework import CheckResult, NotApplicable, Status
from rca_toolkit.rules.timeutil import parse_duration, parse_instant

BOOKING_TARGET, BOOKING_CRITICAL, MIN_ATTEMPTS = 0.98, 0.90, 20  # §E booking success, by path
WEBHOOK_WARN, WEBHOOK_CRITICAL = "30m", "60m"  # §E last Retell webhook
DB_PING_WARN_MS = 100  # §E infra
INDEX_LIMIT = 64  # InnoDB secondary indexes per table
LOG_WARN, LOG_CRITICAL = 20, 50  # §E Laravel log errors per window
ORPHAN_WARN, ORPHAN_CRITICAL = 0, 3  # §E failed appointments per window: > 0 warn, > 3 critical
# §E reach rates: (pass at or above, warn at or above, status below the warn band)
REACH_BANDS = {
    "initialize_call": (0.90, 0.70, Status.FAIL),
    "check_availability": (0.70, 0.50, Status.FAIL),
    "booking": (0.50, 0.30, Status.WARN),  # below 30 %: info only, callers may not confirm
}
ERROR_LEVELS = ("ERROR", "CRITICAL", "ALERT", "EMERGENCY")


def _ts(value, name: str) -> pd.Timestamp:
    return parse_instant(value, name=name) if value not in (None, "") else pd.Timestamp.now(tz="UTC")


def _iso(ts: pd.Timestamp) -> str:
    return ts.isoformat()


def _worst(statuses) -> Status:
    return max(statuses, default=Status.PASS)


# --------------------------------------------------------------------------- connectivity
def db_reachable(db=None, *, warn_ms: float = DB_PING_WARN_MS) -> CheckResult:
    """FAIL when the database cannot be reached; WARN when a ping takes longer than ``warn_ms``."""
    try:
        engine = loaders.engine_for(db)
        label = db_label(engine)
        check_connection(engine)
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        ms = (time.perf_counter() - started) * 1000
    except (ConnectionFailed, NotFound) as exc:
        return CheckResult("database reachable", Status.FAIL, str(exc), {"database": redact_text(str(db or "default"))},
                           "Check host, port, credentials and that the server runs; nothing else can be verified.")
    status = Status.WARN if ms > warn_ms else Status.PASS
    return CheckResult("database reachable", status, f"SELECT 1 on {label} took {ms:.1f} ms",
                       {"database": label, "ping_ms": round(ms, 1), "threshold_ms": warn_ms},
                       "A slow ping points at network or server load; check the DB host before trusting timings.")


def redis_reachable(redis_url: str = "") -> CheckResult:
    """PING Redis; NotApplicable when no Redis is configured."""
    import redis

    if not redis_url:
        raise NotApplicable("no Redis configured (redis_url empty)")
    label = redact_url(redis_url)
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
        started = time.perf_counter()
        client.ping()
        ms = (time.perf_counter() - started) * 1000
        version = client.info("server").get("redis_version")
    except (redis.RedisError, ValueError) as exc:
        return CheckResult("redis reachable", Status.FAIL, f"{label}: {redact_text(str(exc))}", {"redis": label},
                           "Start Redis or fix the URL; cache invalidation and queues depend on it.")
    return CheckResult("redis reachable", Status.PASS, f"PING {label} answered in {ms:.1f} ms (Redis {version})",
                       {"redis": label, "ping_ms": round(ms, 1), "version": version})


# --------------------------------------------------------------------------- schema
def required_columns(db=None, *, extra: dict[str, list[str]] | None = None) -> CheckResult:
    """Every column of the five ``retell_*`` contract tables (plus ``extra``) must exist; else ERROR."""
    from rca_toolkit.sources.schema import TABLES_REQUIRED, metadata

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
    engine = loaders.engine_for(db)
    if engine.dialect.name in ("mysql", "mariadb"):
        sql = ("SELECT TABLE_NAME AS table_name, COUNT(DISTINCT INDEX_NAME) AS n_indexes FROM information_schema.STATISTICS "
               "WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME <> 'PRIMARY' GROUP BY TABLE_NAME")
        with engine.connect() as conn:
            counts = {row.table_name: int(row.n_indexes) for row in conn.execute(sa.text(sql))}
    else:
        inspector = sa.inspect(engine)  # SQLite keeps UNIQUE constraints apart from indexes; MariaDB counts both
        counts = {name: len(info.indexes) + len(inspector.get_unique_constraints(name))
                  for name, info in introspect(engine).items()}
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


def phantom_columns(db=None, code_path: str = "") -> CheckResult:
    """Columns written by the code but absent from the live schema (drift scanner); FAIL when any raise."""
    from rca_toolkit.analyses.code import drift

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
    else:
        status = Status.WARN if len(cols) else Status.PASS
    listed = ", ".join(f"{r.table}.{r.column}" for r in cols.itertuples()) or "none"
    return CheckResult("no phantom columns", status, f"{len(cols)} phantom columns ({listed}); "
                       f"{report.writes_checked} writes checked", evidence,
                       "Remove the keys from every write site (forceFill sites raise 1054) or add the columns by migration.")


# --------------------------------------------------------------------------- rates
def _band(rate: float, n: int, min_n: int, target: float, critical: float) -> tuple[Status, str]:
    if n < min_n:
        return Status.WARN, f"not enough data (n={n} < {min_n})"
    if rate > target:
        return Status.PASS, f"above the {target:.0%} target"
    if rate < critical:
        return Status.FAIL, f"below the {critical:.0%} critical band"
    return Status.WARN, f"between {critical:.0%} and {target:.0%}"


def booking_success(db=None, since=None, until=None, *, min_attempts: int = MIN_ATTEMPTS,
                    target: float = BOOKING_TARGET, critical: float = BOOKING_CRITICAL) -> CheckResult:
    """Booking success by path in [since, until): > target PASS, < critical FAIL, small n WARN."""
    from rca_toolkit.analyses.bookings import outcomes

    start, end = parse_instant(since, name="since"), _ts(until, "until")
    attempts = outcomes.booking_attempts(loaders.engine_for(db), start=start, end=end)
    summary = outcomes.outcome_summary(attempts, by="path") if len(attempts) else pd.DataFrame()
    rows, statuses = [], []
    for path in dict.fromkeys(list(outcomes.CODE_PATHS) + (list(summary["path"].astype(str)) if len(summary) else [])):
        got = summary[summary["path"].astype(str) == path] if len(summary) else summary
        n = int(got["attempts"].iloc[0]) if len(got) else 0
        ok = int(got["success"].iloc[0]) if len(got) else 0
        rate = ok / n if n else 0.0
        status, why = _band(rate, n, min_attempts, target, critical)
        failures = attempts[(attempts["path"].astype(str) == path) & (attempts["outcome"] != "success")]
        top = failures["signature"].dropna().astype(str).value_counts()
        rows.append({"path": path, "attempts": n, "success": ok,
                     "failed": int(got["failed"].iloc[0]) if len(got) else 0,
                     "orphaned": int(got["orphaned"].iloc[0]) if len(got) else 0,
                     "success_rate": round(rate, 4), "status": status.name, "why": why,
                     "top_failure": f"{top.index[0]} (x{int(top.iloc[0])})" if len(top) else ""})
        statuses.append(status)
    status = _worst(statuses)
    text = "; ".join(f"{r['path']}: {r['success']}/{r['attempts']} succeeded ({r['success_rate']:.1%}) {r['status']}"
                     + (f", {r['why']}" if r["status"] != "PASS" else "") for r in rows)
    evidence = {"window": [_iso(start), _iso(end)], "threshold": f"PASS > {target:.0%}, FAIL < {critical:.0%}, "
                f"WARN below n={min_attempts}", "denominator": "booking attempts (function traces) per path",
                "paths": rows, "excluded_test_attempts": int(attempts.attrs.get("excluded_test_attempts", 0))}
    return CheckResult("booking success by path", status, text, evidence,
                       "Roll back or hot-fix the failing path; read the top failure signature and the error log of "
                       "its code path, and reconcile Cal.com bookings without a local appointment (RB040).")


def reach_rates(db=None, since=None, until=None, *, bands: dict | None = None) -> CheckResult:
    """Share of sessions that reached each function family (§E bands, test ids excluded)."""
    bands = bands or REACH_BANDS
    start, end = parse_instant(since, name="since"), _ts(until, "until")
    engine = loaders.engine_for(db)
    sessions = loaders.calls(engine, start=start, end=end, as_of=end)
    traces = loaders.function_traces(engine, start=start, end=end + pd.Timedelta(hours=1))
    traces = traces[traces["call_id"].isin(sessions["call_id"])]
    family = traces["family"].astype("string").where(~traces["family"].isin(names.BOOKING_FAMILIES), "booking")
    n = len(sessions)
    rows, statuses = [], []
    for fam, (ok_at, warn_at, below) in bands.items():
        reached = int(traces.loc[family == fam, "call_id"].nunique())
        rate = reached / n if n else 0.0
        if n == 0:
            status, why = Status.WARN, "not enough data (0 sessions)"
        elif rate >= ok_at:
            status, why = Status.PASS, f">= {ok_at:.0%}"
        elif rate >= warn_at:
            status, why = Status.WARN, f"{warn_at:.0%} to {ok_at:.0%}"
        else:
            status, why = below, f"< {warn_at:.0%}" + (" (info only)" if below == Status.WARN else "")
        rows.append({"family": fam, "sessions_reached": reached, "sessions": n, "rate": round(rate, 4),
                     "bands": f"PASS >= {ok_at:.0%}, WARN >= {warn_at:.0%}", "status": status.name, "why": why})
        statuses.append(status)
    text = "; ".join(f"{r['family']} {r['sessions_reached']}/{r['sessions']} ({r['rate']:.1%}) {r['status']}" for r in rows)
    return CheckResult("function reach rates by family", _worst(statuses), text,
                       {"window": [_iso(start), _iso(end)], "denominator": "sessions started in the window",
                        "families": rows, "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0)),
                        "family_rule": "name without _vNN, aliases folded; booking = collect_appointment + book_appointment"},
                       "A family that is rarely reached points at routing (unknown function names, P3) or the agent prompt.")


def booking_before_after(db=None, since=None, until=None, *, baseline: str = "7d") -> list[dict]:
    """Sign-off rows: booking success per path in the ``baseline`` before ``since`` vs [since, until)."""
    from rca_toolkit.analyses.bookings import outcomes

    start, end = parse_instant(since, name="since"), _ts(until, "until")
    before_start = start - parse_duration(baseline, name="baseline")
    engine = loaders.engine_for(db)
    sides = {}
    for label, (lo, hi) in {"before": (before_start, start), "after": (start, end)}.items():
        attempts = outcomes.booking_attempts(engine, start=lo, end=hi)
        summary = outcomes.outcome_summary(attempts, by="path") if len(attempts) else pd.DataFrame(columns=["path"])
        sides[label] = {str(r["path"]): (int(r["success"]), int(r["attempts"])) for r in summary.to_dict("records")}
    rows = []
    for path in dict.fromkeys(list(outcomes.CODE_PATHS) + list(sides["before"]) + list(sides["after"])):
        cells = {}
        for label in ("before", "after"):
            ok, n = sides[label].get(path, (0, 0))
            cells[label] = f"{ok}/{n} ({ok / n:.1%})" if n else "0/0 (no attempts)"
        rows.append({"metric": f"booking success, {path}", **cells, "unit": "success/attempts",
                     "note": f"before = {before_start.isoformat()} to {start.isoformat()}"})
    return rows


# --------------------------------------------------------------------------- freshness and stuck work
def webhook_freshness(db=None, as_of=None, *, providers: tuple[str, ...] = ("retell",), warn: str = WEBHOOK_WARN,
                      critical: str = WEBHOOK_CRITICAL, lookback: str = "7d") -> CheckResult:
    """Age of the last webhook per provider/event type at ``as_of``; only ``providers`` are judged."""
    end = _ts(as_of, "as_of")
    warn_td, crit_td = parse_duration(warn, name="warn"), parse_duration(critical, name="critical")
    start = end - parse_duration(lookback, name="lookback")
    hooks = loaders.webhook_events(loaders.engine_for(db), start=start, end=end + pd.Timedelta(microseconds=1))
    rows, statuses = [], []
    last = (hooks.groupby(["provider", "event_type_norm"], observed=True)["created_at"].max().reset_index()
            if len(hooks) else pd.DataFrame(columns=["provider", "event_type_norm", "created_at"]))
    for provider in providers:
        if not (last["provider"].astype(str) == provider).any():
            rows.append({"provider": provider, "event_type": "(any)", "last_at": None, "age_min": None, "status": "FAIL"})
            statuses.append(Status.FAIL)
    for rec in last.itertuples(index=False):
        age = end - rec.created_at
        judged = str(rec.provider) in providers
        status = (Status.FAIL if age > crit_td else Status.WARN if age > warn_td else Status.PASS) if judged else None
        rows.append({"provider": str(rec.provider), "event_type": str(rec.event_type_norm), "last_at": rec.created_at.isoformat(),
                     "age_min": round(age.total_seconds() / 60, 1), "status": "info" if status is None else status.name})
        if status is not None:
            statuses.append(status)
    judged_rows = [r for r in rows if r["provider"] in providers]
    text = "; ".join(f"{r['provider']} {r['event_type']}: " + (f"{r['age_min']} min old" if r["age_min"] is not None
                     else f"none in the {lookback} before as_of") for r in judged_rows)
    return CheckResult("webhook freshness", _worst(statuses) if statuses else Status.FAIL, text,
                       {"as_of": _iso(end), "threshold": f"WARN > {warn}, FAIL > {critical} ({', '.join(providers)})",
                        "last_webhooks": rows, "rows_in_lookback": len(hooks)},
                       "Check the provider's webhook settings and signature secret (D10: 401s), then the app's route.")


def failed_webhooks(db=None, since=None, until=None, *, warn: int = 2, critical: int = 5) -> CheckResult:
    """Failed webhook rows per clock hour in [since, until): worst hour > warn WARN, > critical FAIL (§E)."""
    start, end = parse_instant(since, name="since"), _ts(until, "until")
    hooks = loaders.webhook_events(loaders.engine_for(db), start=start, end=end)
    failed = hooks[hooks["status"].astype("string").eq("failed").fillna(False).astype(bool)]
    per_hour = failed.groupby([failed["created_at"].dt.floor("h"), "provider"], observed=True).size()
    worst = int(per_hour.max()) if len(per_hour) else 0
    status = Status.FAIL if worst > critical else Status.WARN if worst > warn else Status.PASS
    top = per_hour.sort_values(ascending=False).head(5)
    return CheckResult("failed webhooks per hour", status,
                       f"{len(failed)} of {len(hooks)} webhooks failed; worst hour {worst}",
                       {"window": [_iso(start), _iso(end)], "failed": len(failed), "webhooks": len(hooks),
                        "worst_hour": worst, "threshold": f"WARN > {warn}/h, FAIL > {critical}/h",
                        "worst_hours": [{"hour": h.isoformat(), "provider": str(p), "failed": int(n)}
                                        for (h, p), n in top.items()]},
                       "Read error_message of the failed rows; rejected Cal.com BOOKING_CREATED rows leave orphans (P19).")


def stuck_sessions(db=None, as_of=None, *, lookback: str = "24h") -> CheckResult:
    """Sessions ``in_progress`` for more than 2 h before ``as_of`` or while the call is completed (P5): WARN."""
    end = _ts(as_of, "as_of")
    start = end - parse_duration(lookback, name="lookback")
    sessions = loaders.calls(loaders.engine_for(db), start=start, end=end, as_of=end)
    stuck = sessions[sessions["stuck"]]
    n, k = len(sessions), len(stuck)
    completed = int(stuck["call_row_status"].eq("completed").fillna(False).sum()) if k else 0
    status = Status.WARN if k else Status.PASS
    if n == 0:
        status = Status.WARN
    return CheckResult("stuck sessions", status,
                       f"{k} of {n} sessions stuck in_progress ({k / n:.1%})" if n else f"no sessions in the {lookback} before as_of",
                       {"window": [_iso(start), _iso(end)], "stuck": k, "sessions": n,
                        "stuck_while_call_completed": completed, "rule": "in_progress > 2 h, or calls.status = completed",
                        "threshold": "any stuck session -> WARN", "examples": list(stuck["call_id"].astype(str))[:5],
                        "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0))},
                       "Check that call_ended webhooks arrive and end the session (Bug 5, D10); "
                       "keep stuck sessions out of duration statistics.")


def log_errors(log_path: str = "", since=None, until=None, *, warn: int = LOG_WARN, critical: int = LOG_CRITICAL) -> CheckResult:
    """ERROR-or-worse Laravel log entries with a timestamp in [since, until): > warn WARN, > critical FAIL."""
    from rca_toolkit.sources.formats.laravel_log import read_laravel_log

    if not log_path:
        raise NotApplicable("no log file given")
    if not Path(log_path).is_file():
        raise NotFound(f"log file {log_path} does not exist", hint="give storage/logs/laravel.log or a copy")
    start, end = parse_instant(since, name="since"), _ts(until, "until")
    frame = read_laravel_log(log_path, levels=ERROR_LEVELS)
    timed = frame[frame["ts"].notna()]
    inside = timed[(timed["ts"] >= start) & (timed["ts"] < end)]
    k = len(inside)
    status = Status.FAIL if k > critical else Status.WARN if k > warn else Status.PASS
    top = inside["message"].astype(str).str.slice(0, 90).value_counts().head(3) if k else pd.Series(dtype=int)
    return CheckResult("recent log errors", status, f"{k} ERROR+ entries between {_iso(start)} and {_iso(end)}",
                       {"log": str(log_path), "window": [_iso(start), _iso(end)], "errors": k,
                        "without_timestamp": int(frame["ts"].isna().sum()),
                        "threshold": f"WARN > {warn}, FAIL > {critical}",
                        "top_messages": [{"message": m, "count": int(c)} for m, c in top.items()]},
                       "Read the top messages; a new error class after a deploy usually names the broken path.")


# --------------------------------------------------------------------------- consistency
BOOKED_OUTCOMES = ("appointment_booked", "appointment_scheduled", "booked")


def _count_band(k: int, warn_above: int = ORPHAN_WARN, fail_above: int = ORPHAN_CRITICAL) -> Status:
    return Status.FAIL if k > fail_above else Status.WARN if k > warn_above else Status.PASS


def booking_orphans(db=None, since=None, until=None, *, pad: str = "1d") -> CheckResult:
    """Cal.com bookings without a local appointment and local appointments without a Cal.com booking."""
    start, end = parse_instant(since, name="since"), _ts(until, "until")
    engine = loaders.engine_for(db)
    padding = parse_duration(pad, name="pad")
    hooks = loaders.webhook_events(engine, start=start - padding, end=end + padding, provider="calcom")
    created = hooks[hooks["event_type_norm"].eq("BOOKING_CREATED").fillna(False).astype(bool)]
    in_window = created[(created["created_at"] >= start) & (created["created_at"] < end)]
    remote_uids = set(in_window["event_id"].dropna().astype(str))
    appts = loaders.appointments(engine, start=start - padding, end=end + padding, include_deleted=True)
    local_uids = set(appts["calcom_v2_booking_id"].dropna().astype(str))
    calcom_only = sorted(remote_uids - local_uids)
    local_in_window = appts[(appts["created_at"] >= start) & (appts["created_at"] < end)]
    linked = local_in_window.dropna(subset=["calcom_v2_booking_id"])
    local_only = sorted(set(linked["calcom_v2_booking_id"].astype(str)) - set(created["event_id"].dropna().astype(str)))
    status = _worst([_count_band(len(calcom_only)), _count_band(len(local_only))])
    return CheckResult(
        "orphans between Cal.com and appointments", status,
        f"{len(calcom_only)} of {len(remote_uids)} Cal.com bookings have no local appointment; "
        f"{len(local_only)} of {len(linked)} local appointments with a Cal.com id have no Cal.com booking",
        {"window": [_iso(start), _iso(end)], "calcom_bookings": len(remote_uids), "calcom_without_local": len(calcom_only),
         "local_with_calcom_id": len(linked), "local_without_calcom": len(local_only),
         "local_without_calcom_id": int(local_in_window["calcom_v2_booking_id"].isna().sum()),
         "threshold": f"per direction: WARN > {ORPHAN_WARN}, FAIL > {ORPHAN_CRITICAL}",
         "examples_calcom_only": calcom_only[:5], "examples_local_only": local_only[:5],
         "join": "webhook_events(provider=calcom, BOOKING_CREATED).event_id = appointments.calcom_v2_booking_id"},
        "Recreate the missing local rows from the Cal.com payloads (or cancel the Cal.com bookings) and fix the write path "
        "that failed after the Cal.com call (incident A).")


def duplicate_booking_ids(db=None) -> CheckResult:
    """``appointments.calcom_v2_booking_id`` must be unique among live rows: any duplicate is FAIL."""
    engine = loaders.engine_for(db)
    schema = loaders.schema_of(engine)
    from rca_toolkit.sources.db import require_columns

    require_columns(schema, "appointments", ["id", "calcom_v2_booking_id"])
    live = " AND deleted_at IS NULL" if "deleted_at" in schema["appointments"].columns else ""
    dup_sql = ("SELECT calcom_v2_booking_id AS uid, COUNT(*) AS n FROM appointments WHERE calcom_v2_booking_id IS NOT NULL"
               f"{live} GROUP BY calcom_v2_booking_id HAVING COUNT(*) > 1 ORDER BY n DESC")
    total_sql = f"SELECT COUNT(*) FROM appointments WHERE calcom_v2_booking_id IS NOT NULL{live}"
    with engine.connect() as conn:
        dups = conn.execute(sa.text(dup_sql)).fetchall()
        total = int(conn.execute(sa.text(total_sql)).scalar() or 0)
    extra = sum(int(r.n) - 1 for r in dups)
    return CheckResult("duplicate Cal.com booking ids", Status.FAIL if dups else Status.PASS,
                       f"{len(dups)} booking ids used by more than one appointment ({extra} extra rows) among {total}",
                       {"appointments_with_booking_id": total, "duplicated_ids": len(dups), "extra_rows": extra,
                        "examples": [{"calcom_v2_booking_id": r.uid, "rows": int(r.n)} for r in dups[:5]],
                        "threshold": "any duplicate -> FAIL"},
                       "Merge the duplicate rows (keep the one linked to the call) and restore the unique index.")


def outcome_disagreements(db=None, since=None, until=None) -> CheckResult:
    """``calls.appointment_made``/``session_outcome`` must agree with the appointments that exist."""
    start, end = parse_instant(since, name="since"), _ts(until, "until")
    engine = loaders.engine_for(db)
    sessions = loaders.calls(engine, start=start, end=end, as_of=end)
    missing = sessions.attrs.get("missing_columns", {}).get("calls", [])
    if {"appointment_made", "appointment_id"} & set(missing):
        raise SchemaError(f"table 'calls' lacks {', '.join(sorted({'appointment_made', 'appointment_id'} & set(missing)))}",
                          hint="the outcome columns are needed to compare with appointments")
    appts = loaders.appointments(engine, start=start - pd.Timedelta(days=1), end=end + pd.Timedelta(days=1))
    by_local = set(appts["call_id"].dropna().astype(int)) if "call_id" in appts else set()
    by_retell = set(appts["retell_call_id"].dropna().astype(str))
    appt_ids = set(appts["id"].dropna().astype(int))
    has_appt = (sessions["appointment_id"].isin(appt_ids).fillna(False).astype(bool)
                | sessions["local_call_id"].isin(by_local).fillna(False).astype(bool)
                | sessions["call_id"].isin(by_retell).fillna(False).astype(bool))
    made = sessions["appointment_made"].fillna(False).astype(bool)
    booked = sessions["session_outcome"].astype("string").isin(BOOKED_OUTCOMES).fillna(False).astype(bool)
    kinds = {"appointment_made without an appointment": made & ~has_appt,
             "appointment exists but appointment_made is false": ~made & has_appt,
             "session_outcome booked but appointment_made false": booked & ~made}
    counts = {k: int(v.sum()) for k, v in kinds.items()}
    total = sum(counts.values())
    return CheckResult("outcome vs appointment agreement", Status.FAIL if total else Status.PASS,
                       f"{total} disagreements among {len(sessions)} calls"
                       + (": " + "; ".join(f"{k} {v}" for k, v in counts.items() if v) if total else ""),
                       {"window": [_iso(start), _iso(end)], "calls": len(sessions), **counts,
                        "examples": {k: list(sessions.loc[v, "call_id"].astype(str))[:3] for k, v in kinds.items() if v.any()},
                        "booked_outcomes": list(BOOKED_OUTCOMES), "threshold": "any disagreement -> FAIL",
                        "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0))},
                       "Correct the call rows or create the appointments; a flag set before the insert succeeds "
                       "(D3) reports bookings that do not exist.")


# --------------------------------------------------------------------------- cache invalidation
CLEAR_NAME = re.compile(r"(?i)(clear|flush|forget|invalidate|bust|purge|evict)\w*(availabilit|slot)"
                        r"|(availabilit|slot)\w*(clear|flush|forget|invalidate|bust|purge|evict)")
_CACHE_VERBS = {"forget", "flush", "delete", "del", "forgetMany", "tags", "unlink", "deleteMultiple"}
_CACHE_TOPIC = re.compile(r"(?i)availab|slot")
_CALLS = ("member_call_expression", "nullsafe_member_call_expression", "scoped_call_expression", "function_call_expression")


def _php_calls(node, src: bytes):
    """(name, receiver text, string literals) of every call below ``node`` (comments never match)."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.type in _CALLS:
            name_node = cur.child_by_field_name("function" if cur.type == "function_call_expression" else "name")
            recv = cur.child_by_field_name("object") or cur.child_by_field_name("scope")
            strings = [src[n.start_byte:n.end_byte].decode(errors="replace") for n in _descend(cur)
                       if n.type in ("string", "encapsed_string", "string_content")]
            if name_node is not None:
                yield (src[name_node.start_byte:name_node.end_byte].decode(), "" if recv is None else
                       src[recv.start_byte:recv.end_byte].decode(), strings)
        stack.extend(cur.children)


def _descend(node):
    stack = list(node.children)
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(cur.children)


def _clearing_call(name: str, strings: list[str]) -> bool:
    return bool(CLEAR_NAME.search(name)) or (name in _CACHE_VERBS and any(_CACHE_TOPIC.search(s) for s in strings))


def cache_handlers(code_path, *, class_pattern: str = r"(?i)cal\.?com", method_pattern: str = r"^handleBooking") -> pd.DataFrame:
    """Every Cal.com webhook handler method and whether it clears the availability cache.

    A method clears when it calls a function whose name says so (``clearAvailabilityCache``,
    ``invalidateSlots`` ...), a cache verb (``Cache::forget``, ``->tags([...])->flush()``)
    with an availability/slot key, or (transitively) a method of the same class that does.
    """
    from rca_toolkit.analyses.code import drift
    from rca_toolkit.sources import php_scan

    root = Path(code_path)
    rows = []
    for file in drift.php_files(root, drift.DEFAULT_EXCLUDE):
        src = file.read_bytes()
        tree = php_scan.parse(src)
        for cls in _descend(tree.root_node):
            if cls.type != "class_declaration":
                continue
            cname = src[cls.child_by_field_name("name").start_byte:cls.child_by_field_name("name").end_byte].decode()
            if not re.search(class_pattern, cname):
                continue
            methods = {}
            for m in _descend(cls):
                if m.type == "method_declaration":
                    name = m.child_by_field_name("name")
                    methods[src[name.start_byte:name.end_byte].decode()] = (m, list(_php_calls(m, src)))
            clears = {n: next((f"{recv}->{c}" if recv else c for c, recv, st in calls if _clearing_call(c, st)), None)
                      for n, (_, calls) in methods.items()}
            changed = True
            while changed:  # same-class helpers: $this->x(), self::x(), static::x()
                changed = False
                for n, (_, calls) in methods.items():
                    if clears[n] is None:
                        via = next((c for c, recv, _ in calls if recv in ("$this", "self", "static") and clears.get(c)), None)
                        if via:
                            clears[n], changed = f"$this->{via} -> {clears[via]}", True
            for n, (m, _) in methods.items():
                if re.search(method_pattern, n):
                    rows.append({"class": cname, "method": n, "file": str(file.relative_to(root)),
                                 "line": m.start_point[0] + 1, "clears_cache": clears[n] is not None, "via": clears[n] or ""})
    frame = pd.DataFrame(rows, columns=["class", "method", "file", "line", "clears_cache", "via"])
    return frame.sort_values(["file", "line"], kind="stable").reset_index(drop=True)


def cache_invalidation(code_path: str = "", **patterns) -> CheckResult:
    """Every Cal.com ``handleBooking*`` handler must clear the availability cache; a miss is FAIL."""
    if not code_path:
        raise NotApplicable("no code path given")
    if not Path(code_path).is_dir():
        raise NotFound(f"code path {code_path} is not a folder", hint="give the Laravel project root")
    handlers = cache_handlers(code_path, **patterns)
    if handlers.empty:
        raise NotFound(f"no Cal.com webhook handler (handleBooking*) found under {code_path}",
                       hint="check the path or the class/method patterns; nothing was verified")
    misses = handlers[~handlers["clears_cache"]]
    status = Status.FAIL if len(misses) else Status.PASS
    text = (f"{len(misses)} of {len(handlers)} handlers do not clear the availability cache: "
            + ", ".join(f"{r['class']}::{r['method']} ({r['file']}:{r['line']})" for r in misses.to_dict("records"))
            if len(misses) else f"all {len(handlers)} handlers clear the availability cache")
    return CheckResult("webhook handlers invalidate availability cache", status, text,
                       {"code_path": str(code_path), "handlers": handlers.to_dict("records"),
                        "rule": "calls a clear/invalidate...availability function or a cache verb on an availability key"},
                       "Call the availability-cache invalidation in every handler that changes a booking, "
                       "or stale slots are offered (the race in incident C).")


def redis_key_watch(redis_url: str = "", pattern: str = "*availability*", duration: str = "30s",
                    interval: str = "1s") -> CheckResult:
    """Watch keys matching ``pattern`` for ``duration``: PASS when an invalidation (key removed) is seen."""
    import redis

    if not redis_url:
        raise NotApplicable("no Redis configured (redis_url empty)")
    total, step = parse_duration(duration, name="duration"), parse_duration(interval, name="interval")
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3, decode_responses=True)
    try:
        seen = set(client.scan_iter(match=pattern, count=500))
        first, removed, added, samples = set(seen), set(), set(), 1
        deadline = time.monotonic() + total.total_seconds()
        while time.monotonic() < deadline:
            time.sleep(max(step.total_seconds(), 0.05))
            now = set(client.scan_iter(match=pattern, count=500))
            removed |= seen - now
            added |= now - seen
            seen, samples = now, samples + 1
    except redis.RedisError as exc:
        raise ConnectionFailed(f"Redis {redact_url(redis_url)}: {redact_text(str(exc))}", hint="check redis_url") from None
    status = Status.PASS if removed else Status.WARN
    text = (f"{len(removed)} of {len(first | added)} keys matching {pattern!r} were removed during {duration}"
            if removed else f"no key matching {pattern!r} was removed during {duration} "
            f"({len(first)} present at start): no invalidation observed")
    return CheckResult("availability cache keys invalidated", status, text,
                       {"redis": redact_url(redis_url), "pattern": pattern, "window": duration, "samples": samples,
                        "keys_at_start": len(first), "removed": sorted(removed)[:10], "added": sorted(added)[:10]},
                       "Make a test booking during the watch; if no key disappears, the handler does not invalidate.")


__all__ = [
    "booking_before_after", "booking_orphans", "failed_webhooks", "booking_success", "cache_handlers", "cache_invalidation", "redis_key_watch", "duplicate_booking_ids", "outcome_disagreements", "db_reachable", "index_count", "log_errors", "phantom_columns", "reach_rates",
    "redis_reachable", "required_columns", "stuck_sessions", "webhook_freshness",
]
