"""Runbook checks on booking success and how far calls get (RB001, RB020), judged by the §E bands.

The bands and the minimum sample come from ``rules.bookings``; a path with fewer attempts than
the minimum is WARN ("not enough data"), never PASS. Attempts come from
``analyses.bookings.outcomes``, sessions and traces from the loaders.
"""

from __future__ import annotations

import pandas as pd

from rca_toolkit.rules import bookings, functions
from rca_toolkit.rules.bookings import BOOKING_CRITICAL, BOOKING_TARGET, MIN_ATTEMPTS  # §E booking success, by path
from rca_toolkit.rules.timeutil import parse_duration, parse_instant
from rca_toolkit.sources import loaders, requirements
from rca_toolkit.analyses.bookings import outcomes
from rca_toolkit.analyses import tables
from rca_toolkit.runbooks.check_helpers import NOT_ENOUGH_DATA, instant_or_now, with_absent, worst_status
from rca_toolkit.runbooks.framework import CheckResult, Status

# What each check reads (rca_toolkit.sources.requirements), checked before its first statement
REQUIRES = {
    "booking_success": outcomes.REQUIRES["booking_attempts"],
    "reach_rates": (loaders.SESSIONS_READ, loaders.REQUIRES["function_traces"]),
    "booking_before_after": outcomes.REQUIRES["booking_attempts"],
}

# §E reach rates of rules.bookings as (pass at or above, warn at or above, status below the warn band);
# below the booking warn band is info only (WARN): callers may not confirm
_BELOW = {bookings.FAIL: Status.FAIL, bookings.INFO: Status.WARN}
REACH_BANDS = {family: (bookings.lowest_rate(family, bookings.OK), bookings.lowest_rate(family, bookings.WARN),
                        _BELOW[bands[-1].severity])
               for family, bands in bookings.REACH_BANDS.items()}


def _band(rate: float, n: int, min_n: int, target: float, critical: float) -> tuple[Status, str]:
    if n == 0 or n < min_n:  # 0 of 0 is no verdict whatever the minimum
        return Status.WARN, f"{NOT_ENOUGH_DATA} (n={n} < {max(min_n, 1)})"
    if rate > target:
        return Status.PASS, f"above the {tables.percent(target, 0)} target"
    if rate < critical:
        return Status.FAIL, f"below the {tables.percent(critical, 0)} critical band"
    return Status.WARN, f"between {tables.percent(critical, 0)} and {tables.percent(target, 0)}"


def booking_success(db=None, since=None, until=None, *, min_attempts: int = MIN_ATTEMPTS,
                    target: float = BOOKING_TARGET, critical: float = BOOKING_CRITICAL) -> CheckResult:
    """Booking success by path in [since, until): > target PASS, < critical FAIL, small n WARN."""
    start, end = parse_instant(since, name="since"), instant_or_now(until, "until")
    engine = loaders.engine_for(db)
    absent = requirements.check(engine, *REQUIRES["booking_success"])
    attempts = outcomes.booking_attempts(engine, start=start, end=end)
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
    status = worst_status(statuses)
    text = "; ".join(f"{r['path']}: {r['success']:,}/{r['attempts']:,} succeeded ({tables.percent(r['success_rate'])}) {r['status']}"
                     + (f", {r['why']}" if r["status"] != "PASS" else "") for r in rows)
    evidence = {"window": [start.isoformat(), end.isoformat()], "threshold": f"PASS > {tables.percent(target, 0)}, FAIL < {tables.percent(critical, 0)}, "
                f"WARN below n={min_attempts}", "denominator": "booking attempts (function traces) per path",
                "paths": rows, "excluded_test_attempts": int(attempts.attrs.get("excluded_test_attempts", 0))}
    result = CheckResult("booking success by path", status, text, evidence,
                         "Roll back or hot-fix the failing path; read the top failure signature and the error log of "
                         "its code path, and reconcile Cal.com bookings without a local appointment (RB040).")
    return with_absent(result, absent, REQUIRES["booking_success"], hides_findings=False)


def reach_rates(db=None, since=None, until=None, *, bands: dict | None = None) -> CheckResult:
    """Share of sessions that reached each function family (§E bands, test ids excluded)."""
    bands = bands or REACH_BANDS
    start, end = parse_instant(since, name="since"), instant_or_now(until, "until")
    engine = loaders.engine_for(db)
    requirements.check(engine, *REQUIRES["reach_rates"])
    sessions = loaders.calls(engine, start=start, end=end, as_of=end)
    # which calls reached which family: no JSON column is read (at 1M calls they were most of a week's 44 s)
    traces = loaders.function_traces(engine, start=start, end=end + pd.Timedelta(hours=1), blobs=False)
    traces = traces[traces["call_id"].isin(sessions["call_id"])]
    family = traces["family"].astype("string").where(~traces["family"].isin(functions.BOOKING_FAMILIES), bookings.BOOKING_REACH_FAMILY)
    n = len(sessions)
    rows, statuses = [], []
    for fam, (ok_at, warn_at, below) in bands.items():
        reached = int(traces.loc[family == fam, "call_id"].nunique())
        rate = reached / n if n else 0.0
        if n == 0:
            status, why = Status.WARN, f"{NOT_ENOUGH_DATA} (0 sessions)"
        elif rate >= ok_at:
            status, why = Status.PASS, f">= {tables.percent(ok_at, 0)}"
        elif rate >= warn_at:
            status, why = Status.WARN, f"{tables.percent(warn_at, 0)} to {tables.percent(ok_at, 0)}"
        else:
            status, why = below, f"< {tables.percent(warn_at, 0)}" + (" (info only)" if below == Status.WARN else "")
        rows.append({"family": fam, "sessions_reached": reached, "sessions": n, "rate": round(rate, 4),
                     "bands": f"PASS >= {tables.percent(ok_at, 0)}, WARN >= {tables.percent(warn_at, 0)}", "status": status.name, "why": why})
        statuses.append(status)
    text = "; ".join(f"{r['family']} {r['sessions_reached']:,}/{r['sessions']:,} ({tables.percent(r['rate'])}) {r['status']}" for r in rows)
    return CheckResult("function reach rates by family", worst_status(statuses), text,
                       {"window": [start.isoformat(), end.isoformat()], "denominator": "sessions started in the window",
                        "families": rows, "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0)),
                        "family_rule": "name without _vNN, aliases folded; booking = collect_appointment + book_appointment"},
                       "A family that is rarely reached points at routing (unknown function names, P3) or the agent prompt.")


def booking_before_after(db=None, since=None, until=None, *, baseline: str = "7d") -> list[dict]:
    """Sign-off rows: booking success per path in the ``baseline`` before ``since`` vs [since, until)."""
    start, end = parse_instant(since, name="since"), instant_or_now(until, "until")
    before_start = start - parse_duration(baseline, name="baseline")
    engine = loaders.engine_for(db)
    requirements.check(engine, *REQUIRES["booking_before_after"])
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
            cells[label] = f"{ok:,}/{n:,} ({tables.percent(ok / n)})" if n else "0/0 (no attempts)"
        rows.append({"metric": f"booking success, {path}", **cells, "unit": "success/attempts",
                     "note": f"before = {tables.between(before_start, start)}"})
    return rows
