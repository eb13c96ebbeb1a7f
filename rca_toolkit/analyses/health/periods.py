"""Periods of the health report: a calendar day or week in the source zone (setting ``source_tz``,
Europe/Berlin by default) and the baseline before it.

Why a module of its own: the report, its data queries, the scheduler and the benchmarks all need the
same period edges; each local midnight is converted to UTC separately, so DST days have 23 or 25 hours.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.timeutil import midnight

PERIODS = {"1d": 1, "7d": 7}  # period -> days
BASELINE_PERIODS = {"1d": 7, "7d": 4}  # period -> how many periods before it form the baseline


def period_bounds(day: date | str, period: str = "1d") -> dict[str, pd.Timestamp]:
    """UTC bounds of the period and its baseline, from local midnights in :func:`source_tz` (DST-safe)."""
    if period not in PERIODS:
        raise ConfigError(f"period={period!r} is not supported", hint="use 1d or 7d")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day.strip())
        except ValueError:
            raise ConfigError(f"period_start={day!r} is not a date", hint="write it as YYYY-MM-DD") from None
    days = PERIODS[period]
    return {"start": midnight(day), "end": midnight(day + timedelta(days=days)),
            "baseline_start": midnight(day - timedelta(days=days * BASELINE_PERIODS[period])), "day": day}
