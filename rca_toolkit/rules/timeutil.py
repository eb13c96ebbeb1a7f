"""Naive Europe/Berlin wall time -> tz-aware UTC, with DST gaps and repeats flagged (P1).

Production timestamps carry no offset. On 2025-10-26 the hour 02:00-02:59 happens twice
(ambiguous) and on 2025-03-30 / 2026-03-29 it never happens (nonexistent). We never guess
silently: ambiguous times resolve to the first (summer-time) occurrence, nonexistent ones
shift forward past the gap, and both are flagged so reports can say so.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from rca_toolkit.config import load_settings
from rca_toolkit.errors import ConfigError

_OFFSET_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"
# Longest duration accepted: windows, histories (6x a window) and retention stay inside the
# nanosecond timestamps pandas computes with; nothing the toolkit reads spans more than years.
MAX_DURATION = pd.Timedelta(days=3653)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.ASCII)
# Instants the toolkit accepts: its data starts after 1970, and a window, its 6x history and a
# ten-year duration around any instant in this range stay inside pandas' nanosecond timestamps.
EARLIEST_INSTANT = pd.Timestamp("1970-01-01", tz="UTC")
LATEST_INSTANT = pd.Timestamp("2200-01-01", tz="UTC")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def source_tz() -> str:
    """The zone of production wall times and of report days: setting ``source_tz`` (``RCA_SOURCE_TZ``,
    ``rca.yaml``; default Europe/Berlin), read when asked so a changed setting is never stale."""
    return load_settings().source_tz


def midnight(day: date, tz: str | None = None) -> pd.Timestamp:
    """The UTC instant a day begins in ``tz`` (default :func:`source_tz`). Where the clocks change at midnight,
    a repeated midnight is its first occurrence and a skipped one the first instant of the day."""
    return pd.Timestamp(day).tz_localize(tz or source_tz(), ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def local_days(instants: pd.Series, tz: str | None = None) -> pd.Series:
    """Each instant's calendar day in ``tz`` (default :func:`source_tz`) as its naive midnight; missing stays missing.
    Taken from the wall time, so a day whose midnight the clocks skip has one too; each day can then be written
    once, not each instant (a million error rows at 1M calls)."""
    return pd.to_datetime(instants, utc=True).dt.tz_convert(tz or source_tz()).dt.tz_localize(None).dt.normalize()


def day_edges(start, end) -> list[pd.Timestamp]:
    """``start``, every local midnight (:func:`midnight`) after it and before ``end``, then ``end`` (UTC): the bins
    of counts per local day (``attempt_counts(..., bins=...)``), each bin's left edge on the day it counts, DST
    days of 23 or 25 hours included."""
    lo, hi = parse_instant(start, name="start"), parse_instant(end, name="end")
    zone = source_tz()
    days = pd.date_range(lo.tz_convert(zone).date(), hi.tz_convert(zone).date(), freq="D")
    return [lo, *[m for m in (midnight(d.date(), zone) for d in days) if lo < m < hi], hi]


def localize_naive(values: pd.Series, tz: str | None = None) -> pd.DataFrame:
    """Return ``ts`` (UTC), ``ts_ambiguous`` and ``ts_nonexistent`` for naive wall times in ``tz``
    (default :func:`source_tz`).

    Values that already carry an offset are converted as they are and never flagged.
    """
    tz = tz or source_tz()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        return _localize_text(values, tz)
    raw = pd.to_datetime(values, errors="coerce")
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        utc = raw.dt.tz_convert("UTC")
        false = pd.Series(False, index=values.index)
        return pd.DataFrame({"ts": utc, "ts_ambiguous": false, "ts_nonexistent": false})
    naive = raw.astype("datetime64[us]")
    summer = np.ones(len(naive), dtype=bool)  # resolve repeats to the first (summer-time) reading
    nonexistent = naive.dt.tz_localize(tz, ambiguous=summer, nonexistent="NaT").isna() & naive.notna()
    ambiguous = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").isna() & naive.notna() & ~nonexistent
    resolved = naive.dt.tz_localize(tz, ambiguous=summer, nonexistent="shift_forward")
    return pd.DataFrame(
        {
            "ts": resolved.dt.tz_convert("UTC"),
            "ts_ambiguous": ambiguous,
            "ts_nonexistent": nonexistent,
        },
        index=values.index,
    )


def _localize_text(values: pd.Series, tz: str) -> pd.DataFrame:
    """Strings may mix explicit offsets (converted as they are) and naive wall times."""
    text = values.astype("string").str.strip()
    zoned = text.str.contains(_OFFSET_SUFFIX, na=False)
    out = pd.DataFrame(
        {"ts": pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]"),
         "ts_ambiguous": False, "ts_nonexistent": False},
        index=values.index,
    )
    if zoned.any():
        out.loc[zoned, "ts"] = pd.to_datetime(text[zoned], errors="coerce", utc=True, format="ISO8601")
    naive_part = text[~zoned]
    if len(naive_part):
        parsed = pd.to_datetime(naive_part, errors="coerce", format="ISO8601")
        local = localize_naive(parsed, tz)
        out.loc[~zoned, ["ts", "ts_ambiguous", "ts_nonexistent"]] = local.values
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out.astype({"ts_ambiguous": bool, "ts_nonexistent": bool})


def to_utc(values: pd.Series, tz: str | None = None) -> pd.Series:
    """Like :func:`localize_naive` but only the UTC series."""
    return localize_naive(values, tz)["ts"]


def parse_instant(text: str, *, name: str = "timestamp") -> pd.Timestamp:
    """Parse an ISO-8601 instant that must carry an explicit zone; returns UTC.

    An instant outside 1970-2199 (``9999-12-31T00:00Z``) is refused: no data is there, and the
    windows computed around it would leave pandas' timestamp range.
    """
    shown = _shown(text)
    try:
        printed = _as_printed(str(text), name) if isinstance(text, str) else None
        ts = printed if printed is not None else (
            pd.Timestamp(text) if isinstance(text, (pd.Timestamp, datetime)) else pd.Timestamp(str(text).strip()))
    except (ValueError, TypeError, OverflowError, NotImplementedError):  # OutOfBoundsDatetime is a ValueError
        raise ConfigError(
            f"{name}={shown} is not an ISO-8601 timestamp",
            hint="write it like 2025-10-18T13:20:08+02:00, or as a report prints it: 2025-10-18 13:20:08 CEST",
        ) from None
    if ts is pd.NaT or ts.tzinfo is None:
        raise ConfigError(
            f"{name}={shown} has no time zone",
            hint="add an offset or Z, e.g. 2025-10-18T13:20:08+02:00",
        )
    try:
        utc = ts.tz_convert("UTC")
        inside = EARLIEST_INSTANT <= utc < LATEST_INSTANT
    except (ValueError, OverflowError, NotImplementedError):  # the offset moves it out of range
        inside = False
    if not inside:
        raise ConfigError(f"{name}={shown} is outside the years 1970-2199",
                          hint="give an instant the data can hold, e.g. 2025-10-18T13:20:08+02:00")
    return utc


_PRINTED = re.compile(r"(?P<wall>\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (?P<zone>[A-Za-z]{2,5})")


def _as_printed(text: str, name: str) -> pd.Timestamp | None:
    """A time as the toolkit prints it (``2025-10-26 02:30:00 CET``, ``tables.when``), copied from a report: its wall
    time in the report's zone, the abbreviation telling which 02:30 of the hour repeated at the end of summer time.
    None when ``text`` has another form. Why: people paste the times they read; the abbreviation makes them exact."""
    match = _PRINTED.fullmatch(text.strip())
    if match is None:
        return None
    wall, abbreviation, zone = pd.Timestamp(match["wall"]), match["zone"].upper(), source_tz()
    if abbreviation == "UTC":
        return wall.tz_localize("UTC")
    try:
        readings = {wall.tz_localize(zone, ambiguous=summer) for summer in (True, False)}  # one, or two in a repeated hour
    except ValueError:  # a wall time the clocks skip (pandas: "nonexistent")
        raise ConfigError(f"{name}={_shown(text)} does not exist in {zone} (the clocks skip that hour)",
                          hint="give the time after the change, or an offset, e.g. 2025-03-30T03:30:00+02:00") from None
    for reading in sorted(readings):
        if reading.tzname() == abbreviation:
            return reading
    said = " or ".join(sorted({r.tzname() for r in readings}))
    raise ConfigError(f"{name}={_shown(text)}: {zone} is {said} at that time, not {abbreviation}",
                      hint=f"write {match['wall']} {said.split(' or ')[0]} or give an offset, e.g. 2025-10-18T13:20:08+02:00")


def _shown(value) -> str:
    """A user's value in an error line: its repr, one line and at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_date(text, *, name: str = "date") -> date:
    """A calendar day ``YYYY-MM-DD`` in the years the instants may have (1970-2199), else one line naming ``name``."""
    if isinstance(text, datetime):
        text = text.date()
    try:
        day = text if isinstance(text, date) else date.fromisoformat(str(text).strip())
    except ValueError:
        raise ConfigError(f"{name}={_shown(text)} is not a date", hint="write it as YYYY-MM-DD, e.g. 2025-10-14") from None
    if not EARLIEST_INSTANT.date() <= day < LATEST_INSTANT.date():
        raise ConfigError(f"{name}={_shown(text)} is outside the years 1970-2199",
                          hint="give a day the data can hold, e.g. 2025-10-14")
    return day


def parse_duration(text: str | timedelta, *, name: str = "duration") -> pd.Timedelta:
    """Parse ``30m``, ``5d``, ``2h``, ``90s``, ``1w`` into a Timedelta (non-negative, at most ten years)."""
    if isinstance(text, (timedelta, pd.Timedelta)) and text is not pd.NaT:
        if not timedelta(0) <= text <= MAX_DURATION:
            raise ConfigError(f"{name}={_shown(text)} is not a duration between 0 and {MAX_DURATION.days}d",
                              hint="give a non-negative duration of at most ten years")
        return pd.Timedelta(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(
            f"{name}={_shown(text)} is not a duration",
            hint="use a number and a unit s/m/h/d/w, e.g. 30m or 5d",
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(f"{name}={_shown(text)} is longer than a duration can be",
                          hint=f"give at most {MAX_DURATION.days}d (ten years)")
    return pd.Timedelta(seconds=seconds).as_unit("ns")
