"""Runbook checks on recent activity (RB001, RB040): webhooks arrive and succeed, sessions end, the log is quiet.

Each judges a window ending at ``as_of``/``until`` (now when unset), so a historical run judges
freshness relative to its own end.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rca_toolkit.errors import NotFound
from rca_toolkit.rules import sessions as session_rules  # checks name their frames 'sessions'
from rca_toolkit.rules.timeutil import parse_duration, parse_instant
from rca_toolkit.sources import loaders, requirements
from rca_toolkit.sources.formats.laravel_log import read_laravel_log
from rca_toolkit.sources.requirements import Requirement
from rca_toolkit.analyses import tables
from rca_toolkit.runbooks.check_helpers import instant_or_now, not_enough_data, with_absent, worst_status
from rca_toolkit.runbooks.framework import CheckResult, NotApplicable, Status

WEBHOOK_WARN, WEBHOOK_CRITICAL = "30m", "60m"  # §E last Retell webhook
LOG_WARN, LOG_CRITICAL = 20, 50  # §E Laravel log errors per window
ERROR_LEVELS = ("ERROR", "CRITICAL", "ALERT", "EMERGENCY")

# What each check reads (rca_toolkit.sources.requirements), checked before its first statement
STUCK_RULE = (Requirement("calls", (), "the stuck-session check (P5: in_progress while the call row says completed)",
                          optional=["retell_call_id", "status"],
                          if_absent="sessions in_progress while their call row says completed are not recognised"),)
REQUIRES = {
    "webhook_freshness": (
        Requirement("webhook_events", ["id", "event_type", "created_at"],
                    "the webhook freshness check (the newest webhook per provider and event type)", one_of=["provider", "source"]),
        loaders.REQUIRES["webhook_events"],
    ),
    "failed_webhooks": (
        Requirement("webhook_events", ["id", "status", "created_at"], "the failed-webhooks check (status 'failed' per hour)",
                    one_of=["provider", "source"]),
        loaders.REQUIRES["webhook_events"],
    ),
    "stuck_sessions": (STUCK_RULE, loaders.REQUIRES["calls"]),
}


def webhook_freshness(db=None, as_of=None, *, providers: tuple[str, ...] = ("retell",), warn: str = WEBHOOK_WARN,
                      critical: str = WEBHOOK_CRITICAL, lookback: str = "7d") -> CheckResult:
    """Age of the last webhook per provider/event type at ``as_of``; only ``providers`` are judged."""
    end = instant_or_now(as_of, "as_of")
    warn_td, crit_td = parse_duration(warn, name="warn"), parse_duration(critical, name="critical")
    start = end - parse_duration(lookback, name="lookback")
    engine = loaders.engine_for(db)
    requirements.check(engine, *REQUIRES["webhook_freshness"])
    hooks = loaders.webhook_events(engine, start=start, end=end + pd.Timedelta(microseconds=1))
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
    return CheckResult("webhook freshness", worst_status(statuses) if statuses else Status.FAIL, text,
                       {"as_of": end.isoformat(), "threshold": f"WARN > {warn}, FAIL > {critical} ({', '.join(providers)})",
                        "last_webhooks": rows, "rows_in_lookback": len(hooks)},
                       "Check the provider's webhook settings and signature secret (D10: 401s), then the app's route.")


def failed_webhooks(db=None, since=None, until=None, *, warn: int = 2, critical: int = 5) -> CheckResult:
    """Failed webhook rows per clock hour in [since, until): worst hour > warn WARN, > critical FAIL (§E)."""
    start, end = parse_instant(since, name="since"), instant_or_now(until, "until")
    engine = loaders.engine_for(db)
    requirements.check(engine, *REQUIRES["failed_webhooks"])
    hooks = loaders.webhook_events(engine, start=start, end=end)
    if hooks.empty:
        return not_enough_data("failed webhooks per hour", f"no webhook in {tables.between(start, end)}",
                               {"window": [start.isoformat(), end.isoformat()], "webhooks": 0,
                                "threshold": f"WARN > {warn}/h, FAIL > {critical}/h"},
                               "Check that webhooks arrive at all (provider settings, route); 0 of 0 failed is no verdict.")
    failed = hooks[hooks["status"].astype("string").eq("failed").fillna(False).astype(bool)]
    per_hour = failed.groupby([failed["created_at"].dt.floor("h"), "provider"], observed=True).size()
    worst = int(per_hour.max()) if len(per_hour) else 0
    status = Status.FAIL if worst > critical else Status.WARN if worst > warn else Status.PASS
    top = per_hour.sort_values(ascending=False).head(5)
    return CheckResult("failed webhooks per hour", status,
                       f"{len(failed)} of {len(hooks)} webhooks failed; worst hour {worst}",
                       {"window": [start.isoformat(), end.isoformat()], "failed": len(failed), "webhooks": len(hooks),
                        "worst_hour": worst, "threshold": f"WARN > {warn}/h, FAIL > {critical}/h",
                        "worst_hours": [{"hour": h.isoformat(), "provider": str(p), "failed": int(n)}
                                        for (h, p), n in top.items()]},
                       "Read error_message of the failed rows; rejected Cal.com BOOKING_CREATED rows leave orphans (P19).")


def stuck_sessions(db=None, as_of=None, *, lookback: str = "24h") -> CheckResult:
    """Sessions ``in_progress`` for more than 2 h before ``as_of`` or while the call is completed (P5): WARN."""
    end = instant_or_now(as_of, "as_of")
    start = end - parse_duration(lookback, name="lookback")
    engine = loaders.engine_for(db)
    requirements.check(engine, *REQUIRES["stuck_sessions"])
    absent = requirements.check(engine, *STUCK_RULE)
    sessions = loaders.calls(engine, start=start, end=end, as_of=end)
    stuck = sessions[sessions["stuck"]]
    n, k = len(sessions), len(stuck)
    if n == 0:
        return not_enough_data("stuck sessions", f"no sessions in the {lookback} before as_of",
                               {"window": [start.isoformat(), end.isoformat()], "stuck": 0, "sessions": 0,
                                "rule": session_rules.RULE, "threshold": "any stuck session -> WARN",
                                "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0))},
                               "Check that sessions are recorded at all; a window without sessions judges nothing.")
    completed = int(session_rules.call_completed(stuck).sum()) if k else 0
    status = Status.WARN if k else Status.PASS
    result = CheckResult("stuck sessions", status, f"{k:,} of {n:,} sessions stuck in_progress ({tables.percent(k / n)})",
                         {"window": [start.isoformat(), end.isoformat()], "stuck": k, "sessions": n,
                          "stuck_while_call_completed": completed, "rule": session_rules.RULE,
                          "threshold": "any stuck session -> WARN", "examples": list(stuck["call_id"].astype(str))[:5],
                          "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0))},
                         "Check that call_ended webhooks arrive and end the session (Bug 5, D10); "
                         "keep stuck sessions out of duration statistics.")
    return with_absent(result, absent, STUCK_RULE, hides_findings=True)


def log_errors(log_path: str = "", since=None, until=None, *, warn: int = LOG_WARN, critical: int = LOG_CRITICAL) -> CheckResult:
    """ERROR-or-worse Laravel log entries with a timestamp in [since, until): > warn WARN, > critical FAIL."""
    if not log_path:
        raise NotApplicable("no log file given")
    if not Path(log_path).is_file():
        raise NotFound(f"log file {log_path} does not exist", hint="give storage/logs/laravel.log or a copy")
    start, end = parse_instant(since, name="since"), instant_or_now(until, "until")
    entries = read_laravel_log(log_path)
    timed = entries[entries["ts"].notna()]
    window = timed[(timed["ts"] >= start) & (timed["ts"] < end)]
    if window.empty:  # no entry of any level in the window: 0 errors of 0 entries says nothing about the log
        return not_enough_data("recent log errors", f"no log entry of any level in {tables.between(start, end)} "
                               f"in {log_path} ({len(entries)} entries read)",
                               {"log": str(log_path), "window": [start.isoformat(), end.isoformat()], "entries": len(entries),
                                "without_timestamp": int(entries["ts"].isna().sum()),
                                "threshold": f"WARN > {warn}, FAIL > {critical}"},
                               "Give the log that covers the window (a rotated daily file?); nothing was judged.")
    frame = entries[entries["level"].astype("string").isin(ERROR_LEVELS).fillna(False).astype(bool)]
    inside = window[window["level"].astype("string").isin(ERROR_LEVELS).fillna(False).astype(bool)]
    k = len(inside)
    status = Status.FAIL if k > critical else Status.WARN if k > warn else Status.PASS
    top = inside["message"].astype(str).str.slice(0, 90).value_counts().head(3) if k else pd.Series(dtype=int)
    return CheckResult("recent log errors", status, f"{k} ERROR+ entries in {tables.between(start, end)}",
                       {"log": str(log_path), "window": [start.isoformat(), end.isoformat()], "errors": k,
                        "entries_in_window": len(window), "without_timestamp": int(frame["ts"].isna().sum()),
                        "invalid_utf8_lines": int(entries.attrs.get("n_invalid_utf8_lines", 0)),
                        "threshold": f"WARN > {warn}, FAIL > {critical}",
                        "top_messages": [{"message": m, "count": int(c)} for m, c in top.items()]},
                       "Read the top messages; a new error class after a deploy usually names the broken path.")
