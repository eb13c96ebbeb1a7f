"""Session states that keep a call out of duration statistics: stuck (P5) and closed by cleanup (P20).

Why one module: the loaders flag these rows, the before/after histograms and the health report
decide them inside SQL, the quality report and the runbooks count them. Each pandas function has
its SQL twin beside it; ``tests/rules/test_rules_sessions.py`` runs both on the same rows.

The rule (data-contract P5, incidents.md §E "stuck calls"): a session is **stuck** when it is
``in_progress`` with no ``ended_at`` and either started more than :data:`STUCK_AFTER` (2 h)
before ``as_of``, or its ``calls`` row already says ``completed``. Exactly 2 h is not yet stuck.
A call is **closed by cleanup** (P20) when ``disconnection_reason = 'system_timeout'``, a value
the app's ``CleanupStuckCalls`` job writes, never Retell.

One named variant, :func:`stuck_or_open_without_end_times`, is for sets that record no end time
at all (call-history exports): there a live call cannot be told from a stuck one, so every open
session counts.
"""

from __future__ import annotations

import pandas as pd

STUCK_AFTER = pd.Timedelta(hours=2)
OPEN_STATUS = "in_progress"
COMPLETED_CALL_STATUS = "completed"
CLEANUP_REASON = "system_timeout"
RULE = "in_progress with no ended_at, and started > 2 h before as_of or calls.status = completed"


def stuck_before(as_of) -> pd.Timestamp:
    """The UTC instant before which an open session has been open too long (``as_of - STUCK_AFTER``)."""
    ts = pd.Timestamp(as_of)
    return (ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")) - STUCK_AFTER


def _flag(values: pd.Series) -> pd.Series:
    """Missing -> False, as a SQL ``CASE WHEN`` on NULL takes the ELSE branch."""
    return values.fillna(False).astype(bool)


def _column(frame: pd.DataFrame, col: str) -> pd.Series:
    return frame[col] if col in frame else pd.Series(pd.NA, index=frame.index, dtype="object")


# --------------------------------------------------------------------------- pandas
def open_sessions(frame: pd.DataFrame) -> pd.Series:
    """``call_status = 'in_progress'`` and no ``ended_at`` (a missing ``ended_at`` column counts as none)."""
    status = frame["call_status"].astype("string").eq(OPEN_STATUS)
    ended = frame["ended_at"].notna() if "ended_at" in frame else pd.Series(False, index=frame.index)
    return _flag(status) & ~ended


def started_before(frame: pd.DataFrame, as_of) -> pd.Series:
    """``started_at`` (UTC) more than 2 h before ``as_of``; a missing start is not."""
    return _flag(frame["started_at"] < stuck_before(as_of))


def call_completed(frame: pd.DataFrame) -> pd.Series:
    """The ``calls`` row says ``completed`` (column ``call_row_status``; absent -> never)."""
    return _flag(_column(frame, "call_row_status").astype("string").eq(COMPLETED_CALL_STATUS))


def stuck(frame: pd.DataFrame, as_of) -> pd.Series:
    """Stuck sessions (P5) of a frame with ``call_status``, ``ended_at``, ``started_at`` and, when
    joined, ``call_row_status``. Twin: :func:`stuck_sql`."""
    return open_sessions(frame) & (started_before(frame, as_of) | call_completed(frame))


def records_end_times(frame: pd.DataFrame) -> bool:
    """Whether the set records end times at all (an export has no ``ended_at``)."""
    return "ended_at" in frame and bool(frame["ended_at"].notna().any())


def stuck_or_open_without_end_times(frame: pd.DataFrame, as_of) -> pd.Series:
    """:func:`stuck`, except in a set that records no end times at all: there every open session counts.

    Why a variant: a call-history export has no ``ended_at``, so a call that is still live cannot
    be told from one that never ended; counting both (and saying so) is the honest reading of
    such a set. With any end time recorded this is exactly :func:`stuck`.
    """
    if records_end_times(frame):
        return stuck(frame, as_of)
    return open_sessions(frame)


def closed_by_cleanup(reasons: pd.Series) -> pd.Series:
    """``disconnection_reason = 'system_timeout'`` (P20). Twin: :func:`closed_by_cleanup_sql`."""
    return _flag(reasons.astype("string").eq(CLEANUP_REASON))


# --------------------------------------------------------------------------- SQL twins
def open_session_sql(s: str = "s") -> str:
    """:func:`open_sessions` on the session alias ``s``."""
    return f"({s}.call_status = '{OPEN_STATUS}' AND {s}.ended_at IS NULL)"


def started_before_sql(s: str = "s", bound: str = ":stuck_before") -> str:
    """:func:`started_before`; bind ``bound`` to :func:`stuck_before` in the column's storage zone."""
    return f"({s}.started_at < {bound})"


def call_completed_sql(c: str = "c") -> str:
    """:func:`call_completed` on a joined ``calls`` alias ``c`` (no joined row: NULL, i.e. not completed)."""
    return f"({c}.status = '{COMPLETED_CALL_STATUS}')"


def call_completed_subquery_sql(s: str = "s", *, skip_deleted: bool = True) -> str:
    """:func:`call_completed` without a join: a live ``calls`` row of the session's call says completed.

    ``IN`` rather than a correlated ``EXISTS``: DuckDB (the local store) answers it with one hash table of the
    completed calls instead of a mark join per session (a two-month compare at 1M calls: 0.67 -> 0.39 s for
    both duration histograms); MariaDB runs both forms alike (an index lookup per open session). Where no row
    matches and a call row has no ``retell_call_id``, ``IN`` answers NULL, not false: test it for true only (as
    ``CASE WHEN`` does), never negate it."""
    live = " AND c.deleted_at IS NULL" if skip_deleted else ""
    return f"({s}.call_id IN (SELECT c.retell_call_id FROM calls c WHERE {call_completed_sql('c')}{live}))"


def stuck_sql(s: str = "s", *, bound: str = ":stuck_before", completed: str = "1 = 0") -> str:
    """:func:`stuck` as a SQL condition; ``completed`` is :func:`call_completed_sql` or
    :func:`call_completed_subquery_sql` when ``calls`` has a ``status`` column, else never."""
    return f"({open_session_sql(s)} AND ({started_before_sql(s, bound)} OR {completed}))"


def closed_by_cleanup_sql(s: str = "s") -> str:
    """:func:`closed_by_cleanup` on the session alias ``s``."""
    return f"({s}.disconnection_reason = '{CLEANUP_REASON}')"
