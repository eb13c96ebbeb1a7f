"""What every topic of runbook checks shares: the end of a window, the worst of several statuses, the
no-verdict result for "0 of 0", and how absent optional columns are written on a result."""

from __future__ import annotations

import pandas as pd

from rca_toolkit.rules.timeutil import parse_instant
from rca_toolkit.sources import requirements
from rca_toolkit.runbooks.framework import CheckResult, Status

NOT_ENOUGH_DATA = "not enough data"


def instant_or_now(value, name: str) -> pd.Timestamp:
    """``value`` as an instant with a zone; unset (None or "") is now, so a live run judges the present."""
    return parse_instant(value, name=name) if value not in (None, "") else pd.Timestamp.now(tz="UTC")


def worst_status(statuses) -> Status:
    """The most severe status; PASS for none (callers decide whether "nothing judged" is PASS)."""
    return max(statuses, default=Status.PASS)


def not_enough_data(name: str, what: str, evidence: dict, remedy: str = "") -> CheckResult:
    """The no-verdict result: nothing was there to judge ("0 of 0"), so WARN "not enough data", never PASS.

    WARN is the framework's status for "no verdict" (the booking checks use it below the minimum
    sample); ``evidence["verdict"]`` says why, so a reader does not take it for a borderline value."""
    evidence = {**evidence, "verdict": NOT_ENOUGH_DATA}
    return CheckResult(name, Status.WARN, f"{NOT_ENOUGH_DATA}: {what}", evidence,
                       remedy or "Widen the window or check that the data arrives; nothing was judged.")


def with_absent(result: CheckResult, absent: dict, reqs, *, hides_findings: bool) -> CheckResult:
    """Write absent optional columns (``requirements.check``'s answer) on ``result``: evidence, summary, and,
    when the absence can hide a finding (``hides_findings``), WARN instead of PASS (not fully checked)."""
    if not absent:
        return result
    notes = requirements.absent_notes(absent, *reqs)
    result.evidence["missing_columns"] = absent
    result.evidence["absent_columns"] = notes
    result.summary += "; " + "; ".join(notes) + ("; not fully checked" if hides_findings else "")
    if hides_findings and result.status == Status.PASS:
        result.status = Status.WARN
    return result
