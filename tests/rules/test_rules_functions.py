"""Function families (P3): ``family_series(...).isin(families)`` and its SQL twin ``family_in_sql`` select the same rows.

On the demo world (SQLite and MariaDB), on a world of aliases, versions and look-alikes, and on
generated names (Hypothesis, SQLite).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import functions
from rca_toolkit.sources import loaders
from rule_worlds import BACKENDS, empty_world, insert, one_column_table, query, refill

FAMILY_SETS = [functions.BOOKING_FAMILIES, "check_availability", ("initialize_call", "check_customer"), ("no_such_family",)]
NAMES = {  # stored name -> family
    "book_appointment": "book_appointment", "book_appointment_v17": "book_appointment", "start_booking": "book_appointment",
    " start_booking ": "book_appointment", "book_appointment ": "book_appointment", "start_booking_v3": "book_appointment",
    "collect_appointment_data": "collect_appointment", "collect_appointment_data_v2": "collect_appointment",
    "collect_appointment_v106": "collect_appointment", "get_current_context": "initialize_call",
    "initialize_call_v1": "initialize_call", "check_availability_v17": "check_availability",
    "book_appointment_v": "book_appointment_v", "book_appointment_v17x": "book_appointment_v17x",
    "book_appointment_v17_v2": "book_appointment_v17", "check_availabilityv17": "check_availabilityv17",
    "booking": "booking", "check_customer": "check_customer",
    "confirm_booking": "book_appointment", "confirm_booking_v3": "book_appointment", "confirmBooking": "confirmBooking",
}


def _sql_selected(url: str, families) -> pd.DataFrame:
    engine = loaders.engine_for(url)
    params: dict = {}
    clause = loaders.family_clause(engine, "t.function_name", families, params)  # reads the stored names first
    assert clause, "a family set always gives a condition"
    out = query(url, f"SELECT t.id, t.function_name, CASE WHEN {clause[0]} THEN 1 ELSE 0 END AS picked "
                     "FROM retell_function_traces t ORDER BY t.id", **params)
    return out.assign(picked=out["picked"].astype(int).astype(bool))


def _check(url: str, families) -> pd.DataFrame:
    frame = _sql_selected(url, families)
    wanted = functions.wanted_families(families)
    assert frame["picked"].tolist() == functions.family_series(frame["function_name"]).isin(wanted).tolist()
    return frame


@pytest.mark.parametrize("families", FAMILY_SETS, ids=str)
def test_demo_world(demo_db, families):
    url, _ = demo_db
    frame = _check(url, families)
    assert frame["picked"].any() == (families != ("no_such_family",))


@pytest.fixture(scope="module", params=BACKENDS)
def names_world(request, tmp_path_factory):
    with empty_world(request.param, tmp_path_factory.mktemp("functions")) as url:
        at = datetime(2025, 11, 5, 10, 0)
        insert(url, "retell_call_sessions", [{"id": "s-1", "call_id": "call_" + "0" * 27, "company_id": 1, "started_at": at,
                                              "call_status": "ended"}])
        insert(url, "retell_function_traces", [{"call_session_id": "s-1", "function_name": name, "execution_sequence": i,
                                                "started_at": at, "status": "success"} for i, name in enumerate(NAMES)])
        yield url


@pytest.mark.parametrize("families", FAMILY_SETS, ids=str)
def test_aliases_versions_and_look_alikes(names_world, families):
    frame = _check(names_world, families)
    wanted = functions.wanted_families(families)
    assert sorted(frame.loc[frame["picked"], "function_name"]) == sorted(n for n, f in NAMES.items() if f in wanted)


def test_family_of_each_name():
    assert {name: functions.function_family(name) for name in NAMES} == NAMES
    assert functions.function_family(None) is None and functions.function_family(pd.NA) is None


def test_no_family_asked_is_no_condition_and_an_unknown_one_matches_nothing():
    params: dict = {}
    assert functions.family_in_sql("t.function_name", ["book_appointment"], (), params) == [] and params == {}
    assert functions.family_in_sql("t.function_name", ["book_appointment"], "nope", params) == ["1 = 0"]
    assert functions.family_in_sql("t.f", [None, "start_booking", "book_appointment_v2"], "book_appointment", params) == \
        ["t.f IN (:fam0, :fam1)"]
    assert params == {"fam0": "book_appointment_v2", "fam1": "start_booking"}


# --------------------------------------------------------------------------- generated names (SQLite)
PARTS = st.sampled_from(["book_appointment", "start_booking", "confirm_booking", "collect_appointment_data", "get_current_context",
                         "check_availability", "Book_Appointment", "booking", "initialize_call", "x"])
SUFFIX = st.sampled_from(["", "_v1", "_v17", "_v", "_v17x", "_V2", "_v2_v3"])
PAD = st.sampled_from(["", " ", "  ", "\t"])
NAME = st.builds(lambda a, b, c, d: a + b + c + d, PAD, PARTS, SUFFIX, PAD) | st.text(max_size=20) | st.none()


@pytest.fixture(scope="module")
def scratch():
    return one_column_table("function_name")


@settings(max_examples=200, deadline=None)
@given(st.lists(NAME, min_size=1, max_size=15), st.sampled_from(FAMILY_SETS))
def test_generated_names_agree(scratch, names, families):
    with scratch.begin() as conn:
        refill(conn, names)
        stored = [n for (n,) in conn.execute(sa.text("SELECT DISTINCT function_name FROM t"))]
        params: dict = {}
        clause = functions.family_in_sql("function_name", stored, families, params)
        got = [bool(p) for (p,) in conn.execute(sa.text(f"SELECT CASE WHEN {clause[0]} THEN 1 ELSE 0 END FROM t ORDER BY id"),
                                                params)]
    assert got == functions.family_series(pd.Series(names, dtype="object")).isin(functions.wanted_families(families)).tolist()
