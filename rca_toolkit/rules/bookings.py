"""Booking rules: which appointment is a call's own, and where a Cal.com booking uid is written.

Both the rows path (:mod:`rca_toolkit.analyses.bookings.outcomes`) and the SQL shortcut
(:mod:`rca_toolkit.analyses.bookings.fast_counts`) apply these, so they can never disagree.
"""

from __future__ import annotations

import pandas as pd

# JSON keys under which the app and Cal.com write a booking's uid (data-contract §6.4); every one
# contains ``uid`` or is ``calcom_v2_booking_id``, which is what the SQL prefilters look for.
UID_KEYS = ("calcom_uid", "booking_uid", "calcom_booking_uid", "calcom_v2_booking_id", "uid")


def appointment_by_call(attempts: pd.DataFrame, appointments: pd.DataFrame, calls: pd.DataFrame) -> pd.Series:
    """Local appointment of the call (``appointments.call_id`` = ``calls.id``, else ``metadata.retell_call_id``)."""
    result = pd.Series(pd.NA, index=attempts.index, dtype="object")
    if appointments.empty:
        return result
    by_meta = appointments.dropna(subset=["retell_call_id"]).drop_duplicates("retell_call_id").set_index("retell_call_id")["id"]
    result = attempts["call_id"].map(by_meta).astype("object")
    if "local_call_id" in calls and appointments["call_id"].notna().any():
        local = calls.dropna(subset=["local_call_id"]).drop_duplicates("call_id").set_index("call_id")["local_call_id"]
        by_local = appointments.dropna(subset=["call_id"]).drop_duplicates("call_id").set_index("call_id")["id"]
        via_local = attempts["call_id"].map(local).map(by_local)
        result = result.fillna(via_local.astype("object"))
    return result
