"""Booking verdict thresholds (incidents.md §E): defined once in rules.bookings, read the same by every verdict."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from rca_toolkit.analyses.compare import stats as cmp
from rca_toolkit.analyses.health import report as health
from rca_toolkit.rules import bookings
from rca_toolkit.rules.bookings import BOOKING_CRITICAL, MIN_ATTEMPTS
from rca_toolkit.runbooks import booking_checks, checks
from rca_toolkit.runbooks.framework import Status

ROOT = Path(__file__).resolve().parents[2]
RATES = sorted({round(x, 4) for x in np.linspace(0, 1, 101)} | {b.lower for bs in bookings.REACH_BANDS.values() for b in bs}
               | {round(b.lower - 1e-4, 4) for bs in bookings.REACH_BANDS.values() for b in bs if b.lower > 0})


def test_minimum_sample_is_the_smallest_where_one_failure_cannot_reach_the_critical_band():
    assert (MIN_ATTEMPTS - 1) / MIN_ATTEMPTS >= BOOKING_CRITICAL
    assert (MIN_ATTEMPTS - 2) / (MIN_ATTEMPTS - 1) < BOOKING_CRITICAL


def test_every_booking_verdict_uses_the_one_minimum():
    assert inspect.signature(checks.booking_success).parameters["min_attempts"].default == MIN_ATTEMPTS
    assert inspect.signature(cmp.rate_metric).parameters["min_n"].default == MIN_ATTEMPTS
    assert health.MIN_ATTEMPTS is MIN_ATTEMPTS
    # compare: all-failing after a fix is judged at the minimum, not one below it
    assert cmp.rate_metric("booking_success_rate", "p", (MIN_ATTEMPTS, MIN_ATTEMPTS), (0, MIN_ATTEMPTS - 1)).verdict == \
        "not enough data"
    assert cmp.rate_metric("booking_success_rate", "p", (MIN_ATTEMPTS, MIN_ATTEMPTS), (0, MIN_ATTEMPTS)).verdict == "regressed"


@pytest.mark.parametrize("family,rate,name", [("initialize_call", 0.90, "ok"), ("initialize_call", 0.8999, "warn"),
                                              ("initialize_call", 0.70, "warn"), ("initialize_call", 0.6999, "fail"),
                                              ("check_availability", 0.95, "excellent"), ("check_availability", 0.70, "good"),
                                              ("check_availability", 0.50, "needs work"), ("check_availability", 0.4999, "critical"),
                                              ("booking", 0.50, "ok"), ("booking", 0.30, "warn"), ("booking", 0.0, "info only")])
def test_reach_bands_of_section_e(family, rate, name):
    assert bookings.reach_band(family, rate).name == name


@pytest.mark.parametrize("family", sorted(bookings.REACH_BANDS))
def test_the_runbook_view_of_the_bands_judges_every_rate_like_the_rule(family):
    ok_at, warn_at, below = booking_checks.REACH_BANDS[family]
    as_check = {bookings.OK: Status.PASS, bookings.WARN: Status.WARN, bookings.FAIL: Status.FAIL, bookings.INFO: Status.WARN}
    for rate in RATES:
        judged = Status.PASS if rate >= ok_at else Status.WARN if rate >= warn_at else below
        assert judged == as_check[bookings.reach_band(family, rate).severity], rate


@pytest.mark.parametrize("family", sorted(bookings.REACH_BANDS))
def test_the_health_view_of_the_bands_judges_every_rate_like_the_rule(family):
    label = health.BOOKING_REACH if family == bookings.BOOKING_REACH_FAMILY else family
    as_health = {bookings.OK: "OK", bookings.WARN: "WATCH", bookings.FAIL: "ACT", bookings.INFO: "OK"}
    for rate in RATES:
        band, level = next((b, lv) for lower, b, lv in health.REACH_BANDS[label] if rate >= lower)
        rule = bookings.reach_band(family, rate)
        assert (band, level) == (rule.name, as_health[rule.severity]), rate


@pytest.mark.parametrize("runbook", ["RB001-post-deployment", "RB020-booking-health"])
def test_runbook_parameter_defaults_are_the_rule(runbook):
    """A papermill parameters cell needs a literal default: it must be the rule's number."""
    notebook = nbformat.read(ROOT / "runbooks" / f"{runbook}.ipynb", as_version=4)
    source = next(c.source for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert re.search(r"^min_attempts: int = (\d+)", source, re.M).group(1) == str(MIN_ATTEMPTS)


def test_a_call_s_appointment_is_found_by_metadata_first_then_by_the_local_call_row():
    """``appointments.call_id`` holds the local ``calls.id``: an appointment whose metadata names no call is the
    call's through that row; without call rows to look up, only the metadata links."""
    import pandas as pd

    attempts = pd.DataFrame({"call_id": pd.Series(["call_a", "call_b", "call_c"], dtype="string")})
    appointments = pd.DataFrame({"id": pd.Series([10, 11, 12], dtype="Int64"),
                                 "retell_call_id": pd.Series(["call_a", None, None], dtype="string"),
                                 "call_id": pd.Series([None, 7, 8], dtype="Int64")})
    calls = pd.DataFrame({"call_id": pd.Series(["call_b", "call_a"], dtype="string"),
                          "local_call_id": pd.Series([7, 8], dtype="Int64")})

    def ids(found: pd.Series) -> list:
        return [None if pd.isna(v) else int(v) for v in found]

    assert ids(bookings.appointment_by_call(attempts, appointments, calls)) == [10, 11, None]  # call_a: metadata first
    assert ids(bookings.appointment_by_call(attempts, appointments, calls.iloc[:0])) == [10, None, None]
