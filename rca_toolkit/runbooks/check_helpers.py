"""What every topic of runbook checks shares: the end of a window, and the worst of several statuses."""

from __future__ import annotations

import pandas as pd

from rca_toolkit.rules.timeutil import parse_instant
from rca_toolkit.runbooks.framework import Status


def instant_or_now(value, name: str) -> pd.Timestamp:
    """``value`` as an instant with a zone; unset (None or "") is now, so a live run judges the present."""
    return parse_instant(value, name=name) if value not in (None, "") else pd.Timestamp.now(tz="UTC")


def worst_status(statuses) -> Status:
    """The most severe status; PASS for none (callers decide whether "nothing judged" is PASS)."""
    return max(statuses, default=Status.PASS)
