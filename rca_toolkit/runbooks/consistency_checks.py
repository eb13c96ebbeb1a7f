"""Runbook checks that the booking records agree with each other (RB040): Cal.com vs appointments vs calls.

Incident A left Cal.com bookings without a local appointment; D3 set ``appointment_made`` before
the insert succeeded. Each check counts disagreements in a window and shows examples.
"""

from __future__ import annotations

import pandas as pd

from rca_toolkit.rules.timeutil import parse_duration, parse_instant
from rca_toolkit.sources import loaders, requirements
from rca_toolkit.sources.requirements import Requirement
from rca_toolkit.analyses import tables
from rca_toolkit.runbooks.check_helpers import NOT_ENOUGH_DATA, instant_or_now, not_enough_data, with_absent, worst_status
from rca_toolkit.runbooks.framework import CheckResult, Status

ORPHAN_WARN, ORPHAN_CRITICAL = 0, 3  # §E failed appointments per window: > 0 warn, > 3 critical
BOOKED_OUTCOMES = ("appointment_booked", "appointment_scheduled", "booked")

# What each check reads (rca_toolkit.sources.requirements), checked before its first statement: a column the
# comparison rests on is required (read as empty it would make every row agree, or every row an orphan)
_ORPHANS = "RB040's orphan check (webhook event_id = appointments.calcom_v2_booking_id, the Cal.com uid)"
_OUTCOMES = "RB040's outcome-vs-appointment check (calls.appointment_made and session_outcome against the appointments)"
OUTCOME_READS = (
    Requirement("calls", ["retell_call_id", "id", "appointment_made", "appointment_id", "session_outcome"], _OUTCOMES,
                optional=["deleted_at"], if_absent="soft-deleted call rows are compared too"),
    Requirement("appointments", ["id", "created_at", "call_id", "metadata"], _OUTCOMES,
                optional=["deleted_at"], if_absent="soft-deleted appointments count as existing"),
)
REQUIRES = {
    "booking_orphans": (
        Requirement("webhook_events", ["id", "event_type", "event_id", "created_at"], _ORPHANS, one_of=["provider", "source"]),
        Requirement("appointments", ["id", "created_at", "calcom_v2_booking_id"], _ORPHANS),
        loaders.REQUIRES["webhook_events"], loaders.REQUIRES["appointments"],
    ),
    "duplicate_booking_ids": loaders.REQUIRES["booking_id_duplicates"],
    "outcome_disagreements": (OUTCOME_READS, loaders.REQUIRES["calls"], loaders.REQUIRES["appointments"]),
}


def _count_band(k: int, warn_above: int = ORPHAN_WARN, fail_above: int = ORPHAN_CRITICAL) -> Status:
    return Status.FAIL if k > fail_above else Status.WARN if k > warn_above else Status.PASS


def booking_orphans(db=None, since=None, until=None, *, pad: str = "1d") -> CheckResult:
    """Cal.com bookings without a local appointment and local appointments without a Cal.com booking."""
    start, end = parse_instant(since, name="since"), instant_or_now(until, "until")
    engine = loaders.engine_for(db)
    requirements.check(engine, *REQUIRES["booking_orphans"])
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
    # a direction with nothing to compare ("0 of 0") has no verdict: WARN, never PASS
    status = worst_status([_count_band(len(calcom_only)) if remote_uids else Status.WARN,
                           _count_band(len(local_only)) if len(linked) else Status.WARN])
    unjudged = [what for what, n in (("no Cal.com booking in the window", len(remote_uids)),
                                     ("no local appointment with a Cal.com id in the window", len(linked))) if not n]
    return CheckResult(
        "orphans between Cal.com and appointments", status,
        f"{len(calcom_only)} of {len(remote_uids)} Cal.com bookings have no local appointment; "
        f"{len(local_only)} of {len(linked)} local appointments with a Cal.com id have no Cal.com booking"
        + (f" ({NOT_ENOUGH_DATA}: {'; '.join(unjudged)})" if unjudged else ""),
        {"window": [start.isoformat(), end.isoformat()], "calcom_bookings": len(remote_uids), "calcom_without_local": len(calcom_only),
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
    absent = requirements.check(engine, *REQUIRES["duplicate_booking_ids"])
    dups, total = loaders.booking_id_duplicates(engine)
    extra = int((dups["rows"] - 1).sum())
    if not total:
        return not_enough_data("duplicate Cal.com booking ids", "no live appointment carries a Cal.com booking id",
                               {"appointments_with_booking_id": 0, "threshold": "any duplicate -> FAIL"})
    result = CheckResult("duplicate Cal.com booking ids", Status.FAIL if len(dups) else Status.PASS,
                       f"{len(dups)} booking ids used by more than one appointment ({extra} extra rows) among {total}",
                       {"appointments_with_booking_id": total, "duplicated_ids": len(dups), "extra_rows": extra,
                        "examples": [{"calcom_v2_booking_id": r.uid, "rows": int(r.rows)} for r in dups.head(5).itertuples()],
                        "threshold": "any duplicate -> FAIL"},
                       "Merge the duplicate rows (keep the one linked to the call) and restore the unique index.")
    return with_absent(result, absent, REQUIRES["duplicate_booking_ids"], hides_findings=False)


def outcome_disagreements(db=None, since=None, until=None) -> CheckResult:
    """``calls.appointment_made``/``session_outcome`` must agree with the appointments that exist."""
    start, end = parse_instant(since, name="since"), instant_or_now(until, "until")
    engine = loaders.engine_for(db)
    requirements.check(engine, *REQUIRES["outcome_disagreements"])
    absent = requirements.check(engine, *OUTCOME_READS)  # what this check itself could not read
    sessions = loaders.calls(engine, start=start, end=end, as_of=end)
    if sessions.empty:
        return not_enough_data("outcome vs appointment agreement", f"no calls in {tables.between(start, end)}",
                               {"window": [start.isoformat(), end.isoformat()], "calls": 0,
                                "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0))})
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
    result = CheckResult("outcome vs appointment agreement", Status.FAIL if total else Status.PASS,
                       f"{total} disagreements among {len(sessions)} calls"
                       + (": " + "; ".join(f"{k} {v}" for k, v in counts.items() if v) if total else ""),
                       {"window": [start.isoformat(), end.isoformat()], "calls": len(sessions), **counts,
                        "examples": {k: list(sessions.loc[v, "call_id"].astype(str))[:3] for k, v in kinds.items() if v.any()},
                        "booked_outcomes": list(BOOKED_OUTCOMES), "threshold": "any disagreement -> FAIL",
                        "excluded_test_ids": int(sessions.attrs.get("excluded_test_ids", 0))},
                       "Correct the call rows or create the appointments; a flag set before the insert succeeds "
                       "(D3) reports bookings that do not exist.")
    return with_absent(result, absent, OUTCOME_READS, hides_findings=False)
