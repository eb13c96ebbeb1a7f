"""When monitoring would have caught the incident: the first day whose daily health report says ACT.

Why the health report itself: "when would we have known" is only meaningful against the rules the
team runs, so each day is judged by :func:`rca_toolkit.analyses.health.report.health` (the scheduled
``1d`` report over all companies, its baseline the 7 days before), not by a second rule set. Days
are source-zone (Europe/Berlin) calendar days on which the signature was seen, from the first in
order; the scan stops at the first ACT (a report costs a fraction of a second on the demo world).

When a group was already failing at the start of a given window (``--since``), the days checked
begin at that start, not at the onset: ``limited_from`` names that day, and the first ACT found is
only the first from there on (an earlier day may have said ACT first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from rca_toolkit.analyses.health import report as health_report
from rca_toolkit.rules.timeutil import local_days

FUNCTION = "rca_toolkit.analyses.health.report.health(db, day, '1d', company_id=0).verdict"


@dataclass
class Detection:
    """The first ACT day (None when no checked day said ACT), its verdict line and what was checked."""

    first_act_day: str | None
    verdict_line: str | None = None
    checked: list[dict] = field(default_factory=list)  # [{"day", "verdict"}] in order
    skipped: bool = False  # the caller asked for no detection
    limited_from: str | None = None  # the window-start day the check began at, when the onset lies before it

    @property
    def limited_by_window(self) -> bool:
        return self.limited_from is not None

    def to_dict(self) -> dict:
        return {"first_act_day": self.first_act_day, "verdict_line": self.verdict_line, "checked": self.checked,
                "skipped": self.skipped, "limited_from": self.limited_from, "function": FUNCTION}


def first_act_day(db, days: list[str]) -> Detection:
    """Run the daily health report for each of ``days`` (``YYYY-MM-DD``, ascending) until one says ACT."""
    checked = []
    for day in days:
        report = health_report.health(db, day, "1d", 0)
        checked.append({"day": day, "verdict": report.verdict})
        if report.verdict == "ACT":
            return Detection(day, report.verdict_line, checked)
    return Detection(None, None, checked)


def days_seen(instants: pd.Series, tz: str) -> list[str]:
    """Distinct calendar days (in ``tz``) of the given instants, ascending; each day written once, not each instant
    (150k failures at 1M calls)."""
    if instants.empty:
        return []
    return sorted(day.strftime("%Y-%m-%d") for day in local_days(instants, tz).dropna().unique())


__all__ = ["Detection", "FUNCTION", "days_seen", "first_act_day"]
