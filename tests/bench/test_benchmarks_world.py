"""The replicated benchmark world (benchmarks/world.py) on the real MariaDB: base scale 1 x 3 copies.

Checked against an independently built base world of the same seed: row counts by the copy
rule, every UNIQUE key and foreign key, no copy naming a base call id or Cal.com uid, the
booking counts per path, the time shift, the marker and the single 144-s loop call; ids that
grow with time (``b * M + k``), with the base rows unchanged but for their integer ids.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import sqlalchemy as sa
from scipy.stats import spearmanr

from benchmarks import world
from rca_toolkit import demo
from rca_toolkit.sources import loaders, schema
from rca_toolkit.rules import call_ids, functions
from rca_toolkit.analyses.bookings import counts as booking_counts, outcomes
from rca_toolkit.demo.injected import LOOP_CALL

from conftest import fresh_mariadb_database

COPIES, STEP_S = 3, 3
REAL = re.compile(r"call_[0-9a-f]{27}")
PAYLOAD_UID = re.compile(r'"uid":"([0-9A-Za-z]{22})"')


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """(world url, base url, build record)."""
    with fresh_mariadb_database("rca_world") as url, fresh_mariadb_database("rca_wbase") as base_url:
        demo.build(base_url, seed=7, scale=1, truth_path=tmp_path_factory.mktemp("t") / "base.json", progress=False)
        record = world.build(url, base_scale=1, copies=COPIES, step_ms=STEP_S * 1000, log=lambda _msg: None)
        yield url, base_url, record
        world.record_path(url).unlink(missing_ok=True)  # data/world-<db>.json of a dropped database


def _frame(url: str, sql: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn)
    finally:
        engine.dispose()


def _scalar(url: str, sql: str):
    return _frame(url, sql).iloc[0, 0]


def _real(ids: pd.Series) -> pd.Series:
    return ids.map(call_ids.is_real_call_id).astype(bool)


def _real_base_calls(base_url: str) -> int:
    """Real calls of the base world (the rule of rules/call_ids), each copied once per copy."""
    return int(_real(_frame(base_url, "SELECT call_id FROM retell_call_sessions")["call_id"]).sum())


def _test_call_booking_uids(base_url: str) -> set[str]:
    """Cal.com webhooks of test-call booking attempts: the first webhook of the same company after the attempt."""
    att = _frame(base_url, "SELECT s.call_id, s.company_id, t.started_at, t.function_name FROM retell_function_traces t "
                           "JOIN retell_call_sessions s ON s.id = t.call_session_id")
    att = att[~_real(att["call_id"]) & att["function_name"].map(functions.function_family).isin(functions.BOOKING_FAMILIES)]
    hooks = _frame(base_url, "SELECT event_id, company_id, created_at FROM webhook_events WHERE provider = 'calcom'")
    found = set()
    for _, a in att.iterrows():
        after = hooks[(hooks["company_id"] == a["company_id"]) & (hooks["created_at"] >= a["started_at"].floor("s"))
                      & (hooks["created_at"] <= a["started_at"] + pd.Timedelta(seconds=2))]
        found |= set(after["event_id"])
    return found


def _expected_per_copy(base_url: str, excluded: set[str]) -> dict[str, int]:
    sessions = _frame(base_url, "SELECT id, call_id FROM retell_call_sessions")
    real_sessions = set(sessions.loc[_real(sessions["call_id"]), "id"])
    out = {"retell_call_sessions": len(real_sessions)}
    for name in ("retell_call_events", "retell_function_traces", "retell_transcript_segments", "retell_error_log"):
        out[name] = int(_frame(base_url, f"SELECT call_session_id FROM {name}")["call_session_id"].isin(real_sessions).sum())
    calls = _frame(base_url, "SELECT id, retell_call_id FROM calls")
    out["calls"] = int(_real(calls["retell_call_id"]).sum())
    appts = _frame(base_url, "SELECT a.call_id, a.calcom_v2_booking_id, c.retell_call_id FROM appointments a "
                             "LEFT JOIN calls c ON c.id = a.call_id")
    linked = appts["call_id"].notna()
    out["appointments"] = int((linked & _real(appts["retell_call_id"].fillna(""))).sum()
                              + (~linked & ~appts["calcom_v2_booking_id"].isin(excluded)).sum())
    hooks = _frame(base_url, "SELECT provider, event_id FROM webhook_events")
    out["webhook_events"] = int(((hooks["provider"] == "retell") & _real(hooks["event_id"])).sum()
                                + ((hooks["provider"] == "calcom") & ~hooks["event_id"].isin(excluded)).sum())
    return out


def test_row_counts_follow_the_copy_rule(worlds):
    url, base_url, record = worlds
    excluded = _test_call_booking_uids(base_url)
    assert len(excluded) == 1 and record["excluded_uids"] == sorted(excluded)  # demo_call_1761249581's booking
    per_copy = _expected_per_copy(base_url, excluded)
    assert record["copied_per_copy"] == per_copy
    for name in schema.DEMO_TABLES:
        base_rows = int(_scalar(base_url, f"SELECT COUNT(*) FROM {name}"))
        expected = base_rows + COPIES * per_copy.get(name, 0)
        assert int(_scalar(url, f"SELECT COUNT(*) FROM {name}")) == expected == record["row_counts"][name], name
    real = _real_base_calls(base_url)
    assert per_copy["calls"] == real == per_copy["retell_call_sessions"]  # every session but the 9 test/typo ids
    assert real == int(_scalar(base_url, "SELECT COUNT(*) FROM retell_call_sessions")) - 9


def test_unique_keys_foreign_keys_and_indexes(worlds):
    url, base_url, _ = worlds
    for table in schema.metadata.sorted_tables:
        for uc in [c for c in table.constraints if isinstance(c, (sa.UniqueConstraint, sa.PrimaryKeyConstraint))]:
            cols = ", ".join(c.name for c in uc.columns)
            dupes = _scalar(url, f"SELECT COUNT(*) FROM (SELECT {cols} FROM {table.name} GROUP BY {cols} HAVING COUNT(*) > 1) d")
            assert dupes == 0, (table.name, cols)
        for fk in table.foreign_key_constraints:
            (col,), (el,) = [c.name for c in fk.columns], fk.elements
            dangling = _scalar(url, f"SELECT COUNT(*) FROM {table.name} x LEFT JOIN {el.column.table.name} p "
                                    f"ON p.{el.column.name} = x.{col} WHERE x.{col} IS NOT NULL AND p.{el.column.name} IS NULL")
            assert dangling == 0, fk.name
    keys = "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, INDEX_TYPE FROM information_schema.STATISTICS " \
           "WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 4"
    assert _frame(url, keys).equals(_frame(base_url, keys))  # same indexes as the demo builder's world
    fks = "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS " \
          "WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY 1, 2"
    assert len(_frame(url, fks)) == 9 and _frame(url, fks).equals(_frame(base_url, fks))


def test_copies_name_only_their_own_ids(worlds):
    url, base_url, record = worlds
    base_calls = set(_frame(base_url, "SELECT call_id FROM retell_call_sessions")["call_id"])
    base_uids = set(_frame(base_url, "SELECT event_id FROM webhook_events WHERE provider = 'calcom'")["event_id"])
    m = record["multiplier"]  # copies are the ids b * M + k with k >= 1
    hooks = _frame(url, f"SELECT provider, event_id, idempotency_key, payload FROM webhook_events WHERE id % {m} != 0")
    assert len(hooks) == COPIES * record["copied_per_copy"]["webhook_events"]
    for _, h in hooks.iterrows():
        named = set(REAL.findall(h["payload"])) | set(PAYLOAD_UID.findall(h["payload"]))
        assert named == {h["event_id"]} and h["event_id"] not in base_calls | base_uids
        assert h["idempotency_key"].endswith(h["event_id"])
    appts = _frame(url, "SELECT a.call_id, a.calcom_v2_booking_id, a.metadata, c.retell_call_id FROM appointments a "
                        f"LEFT JOIN calls c ON c.id = a.call_id WHERE a.id % {m} != 0")
    assert len(appts) == COPIES * record["copied_per_copy"]["appointments"]
    for _, a in appts.iterrows():
        meta = json.loads(a["metadata"])
        meta = json.loads(meta) if isinstance(meta, str) else meta  # P15: double-encoded
        assert a["calcom_v2_booking_id"] not in base_uids
        if pd.isna(a["call_id"]):
            assert meta["calcom_uid"] == a["calcom_v2_booking_id"]
        else:
            assert meta["retell_call_id"] == a["retell_call_id"] and meta["call_id"] == a["call_id"]
            assert a["retell_call_id"] not in base_calls
    errs = _frame(url, "SELECT e.error_message, s.call_id FROM retell_error_log e JOIN retell_call_sessions s "
                       f"ON s.id = e.call_session_id WHERE e.id % {m} != 0 AND e.error_code = '23000'")
    assert len(errs) == COPIES * int(_scalar(base_url, "SELECT COUNT(*) FROM retell_error_log WHERE error_code = '23000'"))
    assert all(set(REAL.findall(m)) == {c} and c not in base_calls for m, c in zip(errs["error_message"], errs["call_id"]))
    raw = _frame(url, f"SELECT retell_call_id, raw FROM calls WHERE raw IS NOT NULL AND id % {m} != 0")
    base_raw = _frame(base_url, "SELECT retell_call_id FROM calls WHERE raw IS NOT NULL")["retell_call_id"]
    assert len(raw) == COPIES * int(_real(base_raw).sum())  # the calls that carry a Retell object, copied
    assert all(json.loads(r)["call_id"] == c and c not in base_calls for c, r in zip(raw["retell_call_id"], raw["raw"]))
    sessions = _frame(url, "SELECT call_id FROM retell_call_sessions")["call_id"]
    copies = sessions[~sessions.isin(base_calls)]
    assert len(copies) == COPIES * _real_base_calls(base_url) and _real(copies).all()  # copies keep the P4 shape: they count as real calls


def test_ids_grow_with_time(worlds):
    """Ordering by id orders by time, as with production's auto-increment ids (the store's refresh reads rows past
    the high-water key and its trailing window by key range). The base's rank correlation is 1.0; the old rule,
    id + k * stride, gave 0.25 here (3 copies) and 0.04 at 25 copies."""
    url, base_url, record = worlds
    m = record["multiplier"]
    assert record["id_rule"] == "id * M + k" and m == COPIES + 1
    times = {"calls": "created_at", "retell_function_traces": "started_at", "retell_error_log": "occurred_at",
             "appointments": "created_at", "webhook_events": "created_at"}
    for name, col in times.items():
        rows = _frame(url, f"SELECT id, {col} AS t FROM {name} ORDER BY id")
        rho = spearmanr(rows["id"], rows["t"].astype("int64")).statistic
        assert rho > 0.99, (name, rho)
        copies = rows[rows["id"] % m != 0]  # the copy k of base id b: id b * M + k, time shifted by k steps
        base = rows.set_index("id")["t"].reindex(copies["id"] - copies["id"] % m).to_numpy()
        assert ((copies["t"].to_numpy() - base) == (copies["id"] % m).to_numpy() * pd.Timedelta(seconds=STEP_S)).all(), name


def test_base_rows_change_only_their_integer_ids(worlds):
    """Base rows (k = 0, copied or not) get ids b * M and references x * M; every string and time is the base's."""
    url, base_url, record = worlds
    m = record["multiplier"]
    for name, refs in [(t, ("id", *world.INT_REFS.get(t, ()))) for t in world.TABLE_ORDER if t != "retell_call_sessions"]:
        base = _frame(base_url, f"SELECT * FROM {name} ORDER BY id")
        kept = _frame(url, f"SELECT * FROM {name} WHERE id % {m} = 0 ORDER BY id")
        for col in refs:  # (all-NULL columns come back as None: compare numbers)
            base[col], kept[col] = pd.to_numeric(base[col]) * m, pd.to_numeric(kept[col])
        if name == "appointments":  # the local call id inside metadata, plain or double-encoded
            base["metadata"] = [meta if pd.isna(c) else
                                re.sub(rf'(call_id\\?":){int(c) // m},', rf"\g<1>{int(c)},", meta)
                                for meta, c in zip(base["metadata"], base["call_id"])]
        pd.testing.assert_frame_equal(kept, base, check_dtype=False, obj=name)
    errors = _frame(url, f"SELECT e.id, s.call_id FROM retell_error_log e LEFT JOIN retell_call_sessions s "
                         f"ON s.id = e.call_session_id WHERE e.id % {m} = 0")
    assert (~_real(errors["call_id"].fillna(""))).sum() >= 1  # a test session's errors are among them, unchanged


def test_loop_call_once_and_copies_shifted(worlds):
    url, base_url, _ = worlds
    assert _scalar(url, f"SELECT COUNT(*) FROM retell_call_sessions WHERE call_id = '{LOOP_CALL}'") == 1
    assert _scalar(url, f"SELECT COUNT(*) FROM calls WHERE retell_call_id = '{LOOP_CALL}'") == 1
    base = _frame(base_url, f"SELECT started_at, duration_ms FROM retell_call_sessions WHERE call_id = '{LOOP_CALL}'").iloc[0]
    same = _frame(url, f"SELECT call_id, started_at, duration_ms FROM retell_call_sessions WHERE duration_ms = {base['duration_ms']} "
                       f"AND started_at BETWEEN '{base['started_at']}' AND '{base['started_at'] + pd.Timedelta(minutes=1)}' ORDER BY started_at")
    assert list(same["started_at"] - base["started_at"]) == [pd.Timedelta(seconds=STEP_S * k) for k in range(COPIES + 1)]
    assert same["call_id"].iloc[0] == LOOP_CALL and same["call_id"].nunique() == COPIES + 1
    calls = _frame(url, "SELECT start_timestamp FROM calls WHERE retell_call_id IN "
                        f"({', '.join(repr(c) for c in same['call_id'])}) ORDER BY start_timestamp")["start_timestamp"]
    assert list(calls - calls.iloc[0]) == [pd.Timedelta(seconds=STEP_S * k) for k in range(COPIES + 1)]  # TIMESTAMP(0) too


def test_booking_counts_scale_with_the_copies(worlds):
    url, base_url, _ = worlds
    base = booking_counts.attempt_counts(loaders.engine_for(base_url)).set_index(outcomes.COUNT_KEYS)["attempts"]
    full = booking_counts.attempt_counts(loaders.engine_for(url)).set_index(outcomes.COUNT_KEYS)["attempts"]
    assert full.to_dict() == (base * (COPIES + 1)).to_dict()


def test_marker_records_the_replication(worlds):
    url, _, _ = worlds
    assert world.marker(url) == {"seed": 7, "scale": 1, "copies": COPIES, "step_ms": STEP_S * 1000, "current": True}
    assert "SYNTHETIC" in _scalar(url, "SELECT note FROM rca_demo_world")
    assert loaders.is_synthetic(url)


def test_refuses_a_database_that_is_not_a_demo_world():
    with fresh_mariadb_database("rca_world") as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE customers (id INT PRIMARY KEY)"))
        engine.dispose()
        with pytest.raises(world.WorldError, match="not a demo world"):
            world.build(url, base_scale=1, copies=1, log=lambda _msg: None)


def test_refuses_an_empty_marker_table_beside_real_rows():
    """A table named rca_demo_world proves nothing: the marker row and demo-shaped session ids must be there."""
    with fresh_mariadb_database("rca_world") as url:
        engine = sa.create_engine(url)
        schema.metadata.create_all(engine, tables=[schema.metadata.tables["rca_demo_world"],
                                                   schema.metadata.tables["retell_call_sessions"]])
        engine.dispose()
        with pytest.raises(world.WorldError, match="does not hold the one marker row"):
            world.build(url, base_scale=1, copies=1, log=lambda _msg: None)
        assert _scalar(url, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()") == 2


def test_the_proof_accepts_a_world_the_builder_made(worlds):
    url, base_url, _ = worlds
    for built in (url, base_url):
        target = sa.make_url(built)
        conn = world._connect(target)
        try:
            world._check_target(conn, target.database)  # raises WorldError if it were not provably ours
        finally:
            conn.close()


def test_without_fulltext_only_that_index_is_missing(worlds):
    """fulltext=False leaves out the FULLTEXT index and nothing else (it is built in the segments' one ALTER)."""
    url, _, _ = worlds
    keys = "SELECT TABLE_NAME, INDEX_NAME, INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() " \
           "AND SEQ_IN_INDEX = 1 ORDER BY 1, 2"
    with fresh_mariadb_database("rca_world") as bare_url:
        world.build(bare_url, base_scale=1, copies=1, fulltext=False, log=lambda _msg: None)
        world.record_path(bare_url).unlink()
        without = _frame(bare_url, keys)
        fks = int(_scalar(bare_url, "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS "
                                    "WHERE CONSTRAINT_SCHEMA = DATABASE()"))
    full = _frame(url, keys)
    missing = full.merge(without, how="left", indicator=True).query("_merge == 'left_only'")
    assert missing[["TABLE_NAME", "INDEX_NAME", "INDEX_TYPE"]].values.tolist() == [
        ["retell_transcript_segments", "idx_transcript_text_search", "FULLTEXT"]]
    assert len(without) == len(full) - 1 and fks == 9


def test_refuses_more_copies_than_the_uid_rewrite_keeps_apart():
    """uid digit + 26 is the same letter in the other case: equal under the unique keys' collation."""
    uid = "'00AIr8orMPq4QtjP9C6xNN'"
    with fresh_mariadb_database("rca_world") as url:
        two, twenty_eight = world.uid_tail(uid, 2), world.uid_tail(uid, 28)
        assert _frame(url, f"SELECT {two} AS a, {twenty_eight} AS b").values.tolist() == [
            ["00AIr8orMPq4QtjP9C6xNP", "00AIr8orMPq4QtjP9C6xNp"]]
        assert _scalar(url, f"SELECT {two} COLLATE utf8mb4_unicode_ci = {twenty_eight}") == 1  # why the limit exists
        with pytest.raises(world.WorldError, match="copies <= 25"):
            world.build(url, base_scale=1, copies=26, log=lambda _msg: None)


def test_a_world_of_the_older_id_rule_is_not_current(tmp_path):
    """``--reuse`` rebuilds a world whose ids were made by the older rule (``id + k * stride``: ids not in time order)."""
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE rca_demo_world (seed INTEGER, scale INTEGER, generator TEXT)"))
        conn.execute(sa.text("INSERT INTO rca_demo_world VALUES (7, 29, 'rca_toolkit.demo/1 x benchmarks.world/1 copies=25 step_ms=3000')"))
    assert world.marker(url) == {"seed": 7, "scale": 29, "copies": 25, "step_ms": 3000, "current": False}
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE rca_demo_world SET generator = 'rca_toolkit.demo/1 x {world.GENERATOR} copies=25 step_ms=3000'"))
    assert world.marker(url)["current"] is True
    engine.dispose()
