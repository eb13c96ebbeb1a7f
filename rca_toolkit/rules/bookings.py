"""Booking rules: which appointment is a call's own, where a Cal.com booking uid is written, and the
thresholds of a booking verdict (success bands, reach bands, minimum sample).

The outcomes (:mod:`rca_toolkit.analyses.bookings.outcomes`) apply the rules from here. The
thresholds come from ../shared/docs/incidents.md section E ("Monitoring thresholds the team
used"); the runbook checks (PASS/WARN/FAIL), the health report (OK/WATCH/ACT) and the
before/after comparison read them from here, each in its own status words.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rca_toolkit.rules.jsonutil import map_decoded

# §E "Booking success: target > 98 %, critical < 90 %" (D3 Phase 7), judged per code path.
BOOKING_TARGET = 0.98
BOOKING_CRITICAL = 0.90

MIN_ATTEMPTS = 10
"""Fewest booking attempts (per path and window) on which any booking verdict is given.

Why 10: it is the smallest sample on which one failed attempt alone cannot put a path below
the critical band (1 - 1/n >= BOOKING_CRITICAL, i.e. n >= 1 / (1 - 0.90)). Below it a single
unlucky call would decide the verdict; well above it (the runbooks used 20) a quiet day's paths
were never judged at all. Interval-based verdicts (health, compare) still need the whole 95 %
Wilson interval past a band, so 10 is a floor, not a licence.
"""

# Severity of a reach band, mapped by each caller to its own status words.
OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"


@dataclass(frozen=True)
class Band:
    """One reach band: rates at or above ``lower`` (and below the band above) are ``name``."""

    lower: float
    name: str
    severity: str


BOOKING_REACH_FAMILY = "booking"  # collect_appointment + book_appointment (rules.functions.BOOKING_FAMILIES)
# §E reach rates (share of sessions that reached a function family), checked top-down.
REACH_BANDS: dict[str, tuple[Band, ...]] = {
    "initialize_call": (Band(0.90, "ok", OK), Band(0.70, "warn", WARN), Band(0.0, "fail", FAIL)),
    "check_availability": (Band(0.90, "excellent", OK), Band(0.70, "good", OK), Band(0.50, "needs work", WARN),
                           Band(0.0, "critical", FAIL)),
    # below 30 %: info only, callers may not confirm a booking
    BOOKING_REACH_FAMILY: (Band(0.50, "ok", OK), Band(0.30, "warn", WARN), Band(0.0, "info only", INFO)),
}


def reach_band(family: str, rate: float) -> Band:
    """The §E band of a reach rate of ``family`` (one of :data:`REACH_BANDS`)."""
    bands = REACH_BANDS[family]
    return next((band for band in bands if rate >= band.lower), bands[-1])


def lowest_rate(family: str, severity: str) -> float:
    """The lowest rate still in a band of ``severity`` (e.g. the pass line of a check)."""
    return min(band.lower for band in REACH_BANDS[family] if band.severity == severity)

# JSON keys under which the app and Cal.com write a booking's uid (data-contract §6.4); every one
# contains ``uid`` or is ``calcom_v2_booking_id``, which is what the SQL prefilters look for.
UID_KEYS = ("calcom_uid", "booking_uid", "calcom_booking_uid", "calcom_v2_booking_id", "uid")


METADATA_CALL_ID = "retell_call_id"  # the key of appointments.metadata that names the call (data-contract §3.7)


def metadata_call_ids(texts: pd.Series) -> pd.Series:
    """The Retell call id each appointment's ``metadata`` text names (tolerant JSON, P15), as text; NA where it
    names none. A text without the key's bytes is not decoded (the reads' server-side prefilter is the same)."""
    values = texts.astype("object").where(texts.notna(), None)
    named = values.map(lambda v: isinstance(v, str) and METADATA_CALL_ID in v).to_numpy(dtype=bool)
    out = pd.Series(None, index=texts.index, dtype="object")
    if named.any():
        out[named] = map_decoded(values[named], lambda meta: meta.get(METADATA_CALL_ID) if isinstance(meta, dict) else None)
    return out.astype("string")


def appointment_by_call(attempts: pd.DataFrame, appointments: pd.DataFrame, calls: pd.DataFrame) -> pd.Series:
    """Local appointment id of the call (``appointments.call_id`` = ``calls.id``, else ``metadata.retell_call_id``),
    ``Int64`` (a nullable integer: 400k ids as Python objects cost a tenth of a second each way)."""
    result = pd.Series(pd.NA, index=attempts.index, dtype="Int64")
    if appointments.empty:
        return result
    by_meta = appointments.dropna(subset=["retell_call_id"]).drop_duplicates("retell_call_id").set_index("retell_call_id")["id"]
    result = attempts["call_id"].map(by_meta).astype("Int64")
    if len(calls) and "local_call_id" in calls and appointments["call_id"].notna().any():  # none: nothing to look up
        local = calls.dropna(subset=["local_call_id"]).drop_duplicates("call_id").set_index("call_id")["local_call_id"]
        by_local = appointments.dropna(subset=["call_id"]).drop_duplicates("call_id").set_index("call_id")["id"]
        via_local = attempts["call_id"].map(local).map(by_local)
        result = result.fillna(via_local.astype("Int64"))
    return result
