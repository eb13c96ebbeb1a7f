"""Stuck (P5) and cleanup-closed (P20) sessions: the pandas rules and their SQL twins agree row by row.

On the demo world (SQLite and MariaDB), on a hand-edited world whose rows sit on every edge
(exactly 2 h, a completed or a deleted call row, an ended ``in_progress`` row, ``system_timeout``,
NULL reasons), and on generated rows (Hypothesis, SQLite).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import sessions
from rca_toolkit.sources import loaders
from rule_worlds import BACKENDS, empty_world, insert, query, stored

AS_OF = pd.Timestamp("2025-11-05T12:00:00Z")  # November: Berlin is UTC+1 all day, no DST edge near it


def _twin_sql(completed: str, join: str = "") -> str:
    return (f"SELECT s.id AS session_id, "
            f"CASE WHEN {sessions.stuck_sql('s', bound=':stuck_before', completed=completed)} THEN 1 ELSE 0 END AS stuck, "
            f"CASE WHEN {sessions.closed_by_cleanup_sql('s')} THEN 1 ELSE 0 END AS cleanup "
            f"FROM retell_call_sessions s {join} ORDER BY s.id")


JOIN = "LEFT JOIN calls c ON c.retell_call_id = s.call_id AND c.deleted_at IS NULL"
VARIANTS = {  # the two shapes the package uses: an IN subquery (aggregates) and a join (health)
    "subquery": (sessions.call_completed_subquery_sql("s"), ""),
    "join": (sessions.call_completed_sql("c"), JOIN),
}


def _sql_flags(url: str, as_of: pd.Timestamp, variant: str) -> pd.DataFrame:
    engine = loaders.engine_for(url)
    bound = loaders.wall_bound(sessions.stuck_before(as_of), engine)
    completed, join = VARIANTS[variant]
    out = query(url, _twin_sql(completed, join), stuck_before=bound)
    return out.assign(session_id=out["session_id"].astype(str), stuck=out["stuck"].astype(int).astype(bool),
                      cleanup=out["cleanup"].astype(int).astype(bool)).set_index("session_id")


def _pandas_flags(url: str, as_of: pd.Timestamp) -> pd.DataFrame:
    frame = loaders.calls(url, include_test=True, as_of=as_of)
    return pd.DataFrame({"stuck": frame["stuck"].to_numpy(), "cleanup": frame["closed_by_cleanup"].to_numpy()},
                        index=pd.Index(frame["session_id"].astype(str), name="session_id")).sort_index()


# --------------------------------------------------------------------------- demo world
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_demo_world_sql_twin_equals_loader_flags(demo_db, variant):
    url, truth = demo_db
    as_of = pd.Timestamp("2025-10-24T17:00:00+02:00")  # inside the stuck day: some open sessions not yet 2 h old
    got, want = _sql_flags(url, as_of, variant), _pandas_flags(url, as_of)
    assert len(got) == len(want) > 1000
    pd.testing.assert_frame_equal(got.sort_index(), want, check_dtype=False)
    assert want["stuck"].sum() > 30 and want["cleanup"].sum() > 0


def test_demo_world_age_branch_alone(demo_db):
    """Without the calls row (``completed`` never true) only the 2-hour branch decides, in both twins."""
    url, truth = demo_db
    as_of = pd.Timestamp("2025-10-24T17:00:00+02:00")
    frame = loaders.calls(url, include_test=True, as_of=as_of).drop(columns=["call_row_status"])
    engine = loaders.engine_for(url)
    bound = loaders.wall_bound(sessions.stuck_before(as_of), engine)
    got = query(url, _twin_sql("1 = 0"), stuck_before=bound)
    by_id = dict(zip(got["session_id"].astype(str), got["stuck"].astype(int).astype(bool)))
    want = sessions.stuck(frame, as_of)
    assert [by_id[s] for s in frame["session_id"].astype(str)] == want.tolist()
    stuck_ids = set(truth["stuck_session_call_ids"])
    young = frame["call_id"].isin(stuck_ids) & ~want  # open on the stuck day but under 2 h old at 17:00
    assert young.sum() > 0 and want.sum() > 0


# --------------------------------------------------------------------------- hand-edited world
# (label, started_at offset from AS_OF, call_status, ended, disconnection_reason, calls row status or None,
#  calls row deleted, expected stuck, expected cleanup)
EDGES = [
    ("open_3h", -timedelta(hours=3), "in_progress", False, None, None, False, True, False),
    ("open_exactly_2h", -timedelta(hours=2), "in_progress", False, None, None, False, False, False),
    ("open_2h_plus_1s", -timedelta(hours=2, seconds=1), "in_progress", False, None, None, False, True, False),
    ("open_2h_minus_1s", -timedelta(hours=2) + timedelta(seconds=1), "in_progress", False, None, None, False, False, False),
    ("young_completed_row", -timedelta(minutes=10), "in_progress", False, "user_hangup", "completed", False, True, False),
    ("young_deleted_completed_row", -timedelta(minutes=10), "in_progress", False, None, "completed", True, False, False),
    ("young_ongoing_row", -timedelta(minutes=10), "in_progress", False, None, "ongoing", False, False, False),
    ("ended_but_in_progress", -timedelta(hours=5), "in_progress", True, None, "completed", False, False, False),
    ("cleanup_closed", -timedelta(hours=5), "ended", True, "system_timeout", "completed", False, False, True),
    ("cleanup_still_open", -timedelta(hours=5), "in_progress", False, "system_timeout", None, False, True, True),
    ("ongoing_never_ended", -timedelta(hours=5), "ongoing", False, None, None, False, False, False),
    ("started_after_as_of", timedelta(minutes=30), "in_progress", False, None, None, False, False, False),
    ("other_reason", -timedelta(hours=5), "ended", True, "agent_hangup", None, False, False, False),
]


@pytest.fixture(scope="module", params=BACKENDS)
def edge_world(request, tmp_path_factory):
    with empty_world(request.param, tmp_path_factory.mktemp("sessions")) as url:
        rows, calls = [], []
        for i, (label, offset, status, ended, reason, row_status, deleted, _, _) in enumerate(EDGES):
            start = AS_OF + offset
            call_id = f"call_{i:027x}"
            rows.append({"id": f"s-{i:02d}-{label}"[:36], "call_id": call_id, "company_id": 1, "started_at": stored(url, start),
                         "ended_at": stored(url, start + timedelta(minutes=1)) if ended else None, "call_status": status,
                         "disconnection_reason": reason, "duration_ms": 60_000 if ended else None})
            if row_status:
                calls.append({"retell_call_id": call_id, "company_id": 1, "status": row_status,
                              "deleted_at": stored(url, AS_OF - timedelta(days=1)) if deleted else None})
        insert(url, "retell_call_sessions", rows)
        insert(url, "calls", calls)
        yield url


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_edges_sql_twin_equals_pandas_and_the_expected_answer(edge_world, variant):
    got, want = _sql_flags(edge_world, AS_OF, variant), _pandas_flags(edge_world, AS_OF)
    pd.testing.assert_frame_equal(got.sort_index(), want, check_dtype=False)
    expected = pd.DataFrame({"stuck": [e[7] for e in EDGES], "cleanup": [e[8] for e in EDGES]},
                            index=pd.Index([f"s-{i:02d}-{e[0]}"[:36] for i, e in enumerate(EDGES)], name="session_id"))
    pd.testing.assert_frame_equal(want, expected.sort_index())


def test_rule_text_and_the_two_hour_bound():
    assert sessions.STUCK_AFTER == pd.Timedelta(hours=2)
    assert sessions.stuck_before("2025-11-05T13:00:00+01:00") == pd.Timestamp("2025-11-05T10:00:00Z")
    assert "2 h" in sessions.RULE and sessions.COMPLETED_CALL_STATUS in sessions.RULE


# --------------------------------------------------------------------------- the named variant
def test_variant_counts_every_open_session_only_when_the_set_records_no_end_times():
    frame = pd.DataFrame({
        "call_status": ["in_progress", "in_progress", "ended", None],
        "started_at": pd.to_datetime(["2025-11-05T11:30Z", "2025-11-05T08:00Z", "2025-11-05T08:00Z", "2025-11-05T08:00Z"]),
        "ended_at": pd.to_datetime([None, None, None, None], utc=True),
    })
    # no end times at all (an export): the 30-minute-old open session counts too
    assert sessions.stuck_or_open_without_end_times(frame, AS_OF).tolist() == [True, True, False, False]
    assert sessions.stuck(frame, AS_OF).tolist() == [False, True, False, False]
    # one recorded end time anywhere and the variant is the rule itself
    recorded = frame.assign(ended_at=pd.to_datetime([None, None, "2025-11-05T08:05Z", None], utc=True))
    assert sessions.records_end_times(recorded) and not sessions.records_end_times(frame.drop(columns=["ended_at"]))
    assert sessions.stuck_or_open_without_end_times(recorded, AS_OF).tolist() == [False, True, False, False]


# --------------------------------------------------------------------------- generated rows (SQLite)
# weighted towards the edges: open sessions, the exact 2-hour bound, NULLs and look-alike values
STATUSES = st.sampled_from(["in_progress"] * 4 + ["ended", "ongoing", "In_Progress", "in_progress ", "", None])
REASONS = st.sampled_from(["system_timeout"] * 2 + ["user_hangup", "SYSTEM_TIMEOUT", "system_timeout ", "", None])
ROW_STATUS = st.sampled_from([None, None, "completed", "ongoing", "Completed", "completed "])
OFFSET_S = st.sampled_from([-7200, -7201, -7199, 0, None]) | st.integers(min_value=-30_000, max_value=30_000)
SESSION = st.fixed_dictionaries({"status": STATUSES, "reason": REASONS, "offset_s": OFFSET_S,
                                 "ended": st.booleans(), "row_status": ROW_STATUS})
EXACTLY_2H = {"status": "in_progress", "reason": None, "offset_s": -7200, "ended": False, "row_status": None}


@pytest.fixture(scope="module")
def scratch():
    """In-memory SQLite tables ``s`` (sessions) and ``calls``, every column nullable."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE s (id INTEGER PRIMARY KEY, call_id TEXT, started_at DATETIME, ended_at DATETIME, "
                             "call_status TEXT, disconnection_reason TEXT)"))
        conn.execute(sa.text("CREATE TABLE calls (retell_call_id TEXT, status TEXT)"))
    return engine


@settings(max_examples=150, deadline=None)
@given(st.lists(SESSION, min_size=1, max_size=12))
@example([EXACTLY_2H, dict(EXACTLY_2H, offset_s=-7201), dict(EXACTLY_2H, row_status="completed", offset_s=0)])
def test_generated_sessions_agree(scratch, rows):
    naive = AS_OF.tz_localize(None).to_pydatetime()
    frame = pd.DataFrame({
        "call_id": [f"call_{i}" for i in range(len(rows))],
        "started_at": pd.to_datetime([None if r["offset_s"] is None else naive + timedelta(seconds=r["offset_s"])
                                      for r in rows]).tz_localize("UTC"),
        "ended_at": pd.to_datetime([naive if r["ended"] else None for r in rows]).tz_localize("UTC"),
        "call_status": [r["status"] for r in rows], "disconnection_reason": [r["reason"] for r in rows],
        "call_row_status": [r["row_status"] for r in rows],
    })
    as_datetime = sa.DateTime()
    with scratch.begin() as conn:
        conn.execute(sa.text("DELETE FROM s"))
        conn.execute(sa.text("DELETE FROM calls"))
        # a completed row without a Retell call id (NOT NULL in the contract, not here): IN answers NULL, never true
        conn.execute(sa.text("INSERT INTO calls VALUES (NULL, 'completed')"))
        for i, r in enumerate(rows):
            started = None if r["offset_s"] is None else naive + timedelta(seconds=r["offset_s"])
            conn.execute(sa.text("INSERT INTO s VALUES (:i, :cid, :st, :en, :cs, :dr)").bindparams(
                sa.bindparam("st", type_=as_datetime), sa.bindparam("en", type_=as_datetime)),
                {"i": i, "cid": f"call_{i}", "st": started, "en": naive if r["ended"] else None,
                 "cs": r["status"], "dr": r["reason"]})
            if r["row_status"] is not None:
                conn.execute(sa.text("INSERT INTO calls VALUES (:cid, :st)"), {"cid": f"call_{i}", "st": r["row_status"]})
        sql = (f"SELECT CASE WHEN {sessions.stuck_sql('s', completed=sessions.call_completed_subquery_sql('s', skip_deleted=False))} "
               f"THEN 1 ELSE 0 END, CASE WHEN {sessions.closed_by_cleanup_sql('s')} THEN 1 ELSE 0 END FROM s ORDER BY id")
        stuck_before = sessions.stuck_before(AS_OF).tz_localize(None).to_pydatetime()
        got = conn.execute(sa.text(sql).bindparams(sa.bindparam("stuck_before", type_=as_datetime)),
                           {"stuck_before": stuck_before}).all()
    assert [bool(s) for s, _ in got] == sessions.stuck(frame, AS_OF).tolist()
    assert [bool(c) for _, c in got] == sessions.closed_by_cleanup(frame["disconnection_reason"]).tolist()
