"""The demo world: same rows on both backends, ground truth checked by independent SQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from rca_toolkit import demo
from rca_toolkit.sources import schema
from rca_toolkit.cli import main
from rca_toolkit.demo.load import DemoRefused
from rca_toolkit.rules.timeutil import localize_naive

LOOP = "call_ab45deadd7db66c4956d5243861"
DEAD_AIR = "call_4539054ee4892c6abce031bdf95"
VOLATILE = {"backend", "build_seconds", "truth_path"}


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, connect_args={} if url.startswith("sqlite") else {"init_command": "SET time_zone='+00:00'"})


def _query(url: str, sql: str, **params) -> pd.DataFrame:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn, params=params)
    finally:
        engine.dispose()


def _utc(url: str, values: pd.Series) -> pd.Series:
    """Stored times -> UTC: SQLite holds Berlin wall time, MariaDB (session +00:00) holds UTC."""
    if url.startswith("sqlite"):
        return localize_naive(values.astype(str))["ts"]
    return pd.to_datetime(values).dt.tz_localize("UTC")


def test_same_seed_same_world_on_sqlite_and_mariadb(demo_sqlite, demo_mariadb):
    (_, lite), (_, maria) = demo_sqlite, demo_mariadb
    assert lite["row_counts"] == maria["row_counts"]
    assert {k: v for k, v in lite.items() if k not in VOLATILE} == {k: v for k, v in maria.items() if k not in VOLATILE}
    assert lite["row_counts"]["retell_call_sessions"] == lite["calls_total"]
    assert 1_200 < lite["calls_total"] < 1_700


def test_truth_json_written_and_equal_to_returned_dict(demo_sqlite):
    url, truth = demo_sqlite
    assert Path(truth["truth_path"]).name == "demo.truth.json"
    stored = json.loads(Path(truth["truth_path"]).read_text())
    assert stored["synthetic"] is True and stored["seed"] == 7
    assert stored["booking_attempts"] == truth["booking_attempts"]


def test_marker_and_row_counts(demo_db):
    url, truth = demo_db
    marker = _query(url, "SELECT seed, scale, note FROM rca_demo_world")
    assert marker.to_dict("records") == [{"seed": 7, "scale": 1, "note": demo.NOTE}]
    for table, n in truth["row_counts"].items():
        assert _query(url, f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0] == n  # noqa: S608 (table names are ours)


def test_phantom_1054_errors_per_frame_and_window(demo_db):
    url, truth = demo_db
    rows = _query(url, "SELECT occurred_at, error_message, error_context FROM retell_error_log WHERE error_code = :c",
                  c="42S22")
    rows["at"] = _utc(url, rows["occurred_at"])
    rows["frame"] = rows["error_context"].map(lambda v: json.loads(v)["frame"])
    assert (rows["error_message"] == "SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in "
            "'field list' (Connection: mysql, SQL: insert into `appointments` (...) values (...))").all()
    frames = truth["incidents"]["A_phantom_columns"]["frames"]
    for frame, expected in frames.items():
        mine = rows[rows["frame"] == frame]
        lo, hi = (pd.Timestamp(expected["window"][k]) for k in ("start", "end"))
        assert len(mine) == expected["errors"] > 20
        assert ((mine["at"] >= lo) & (mine["at"] < hi + pd.Timedelta(seconds=10))).all()
    collect = rows[rows["frame"].str.contains("AppointmentCreationService")]
    assert collect["at"].max() < pd.Timestamp("2025-10-18T13:20:18+02:00")


def test_booking_attempts_agree_with_traces(demo_db):
    url, truth = demo_db
    traces = _query(url, "SELECT t.function_name, t.status, t.started_at, s.call_id FROM retell_function_traces t "
                         "JOIN retell_call_sessions s ON s.id = t.call_session_id "
                         "WHERE t.function_name IN ('collect_appointment_data', 'book_appointment', "
                         "'book_appointment_v17', 'start_booking')")
    traces = traces[traces["call_id"].str.fullmatch(r"call_[0-9a-f]{27}")]
    traces["at"] = _utc(url, traces["started_at"])
    traces["path"] = traces["function_name"].map(lambda n: "collect_appointment" if n.startswith("collect")
                                                 else "book_appointment")
    for path, windows in truth["booking_attempts"].items():
        for name, expected in windows.items():
            lo, hi = pd.Timestamp(expected["start"]), pd.Timestamp(expected["end"])
            sel = traces[(traces["path"] == path) & (traces["at"] >= lo) & (traces["at"] < hi)]
            assert len(sel) == expected["attempts"], (path, name)
            assert int((sel["status"] == "success").sum()) == expected["success"], (path, name)
    ba = truth["booking_attempts"]
    for path in ba:
        assert ba[path]["phantom_collect"]["attempts"] >= 25
        assert truth["booking_attempts_extra"][path]["before_partial_fix_5d"]["attempts"] >= 25
        assert ba[path]["after_partial_fix_5d"]["attempts"] >= 25
    assert ba["collect_appointment"]["phantom_collect"]["success"] == 0
    assert ba["collect_appointment"]["after_partial_fix_5d"]["success"] >= 25
    assert ba["book_appointment"]["after_partial_fix_5d"]["success"] == 0
    assert ba["book_appointment"]["after_full_fix_5d"]["success"] >= 25
    for rows in truth["change_point_hours"].values():
        assert all(r["attempts"] >= 3 for r in rows)


def test_orphans_are_calcom_bookings_without_local_row(demo_db):
    url, truth = demo_db
    orphans = _query(url, "SELECT COUNT(*) AS n FROM webhook_events w LEFT JOIN appointments a "
                          "ON a.calcom_v2_booking_id = w.event_id WHERE w.provider = 'calcom' AND a.id IS NULL")
    assert orphans["n"].iloc[0] == sum(truth["attempts"]["orphaned"]) > 0
    failed = _query(url, "SELECT COUNT(*) AS n FROM webhook_events WHERE provider = 'calcom' AND status = 'failed'")
    assert failed["n"].iloc[0] == orphans["n"].iloc[0]
    retell = _query(url, "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM webhook_events "
                         "WHERE provider = 'retell'")
    assert retell["n"].iloc[0] == retell["d"].iloc[0] == truth["calls_real"]


def test_the_144_second_call(demo_db):
    url, truth = demo_db
    session = _query(url, "SELECT * FROM retell_call_sessions WHERE call_id = :c", c=LOOP).iloc[0]
    assert session["duration_ms"] == 144_481 and session["disconnection_reason"] == "agent_hangup"
    assert session["agent_version"] == 106 and session["call_status"] == "ended"
    assert _utc(url, pd.Series([session["started_at"]])).iloc[0] == pd.Timestamp("2025-10-18T12:09:27+02:00")
    raw = json.loads(_query(url, "SELECT raw FROM calls WHERE retell_call_id = :c", c=LOOP)["raw"].iloc[0])
    assert raw["call_id"] == LOOP and raw["duration_ms"] == 144_481
    assert raw["end_timestamp"] - raw["start_timestamp"] == 144_481
    call = _query(url, "SELECT start_timestamp, end_timestamp, duration_ms, duration_sec FROM calls "
                       "WHERE retell_call_id = :c", c=LOOP).iloc[0]
    start = _utc(url, pd.Series([call["start_timestamp"]])).iloc[0]
    assert start == pd.Timestamp(raw["start_timestamp"] // 1000, unit="s", tz="UTC")  # whole seconds
    assert call["duration_ms"] == 144_481 and call["duration_sec"] == 144
    invocations = [e for e in raw["transcript_with_tool_calls"] if e["role"] == "tool_call_invocation"]
    assert [e["name"] for e in invocations].count("check_customer") == 7
    ref = truth["reference_calls"][LOOP]
    assert ref["loop"]["iterations"] == 7 and abs(ref["loop"]["extra_span_s"] - 101.0) < 1.5
    assert ref["expected_without_extra_iterations_s"] <= 45
    traces = _query(url, "SELECT t.function_name, t.status, t.duration_ms, t.error_details FROM retell_function_traces t "
                         "JOIN retell_call_sessions s ON s.id = t.call_session_id WHERE s.call_id = :c "
                         "ORDER BY t.execution_sequence", c=LOOP)
    assert traces["function_name"].tolist()[-2:] == ["check_availability", "book_appointment"]
    book = traces.iloc[-1]
    details = json.loads(book["error_details"])
    assert book["status"] == "error" and details["errno"] == 1054 and details["sqlstate"] == "42S22"
    assert details["frame"] == "App\\Http\\Controllers\\RetellFunctionCallHandler::bookAppointment"
    assert traces.iloc[-2]["duration_ms"] == 2_100 and book["duration_ms"] == 4_000
    prompts = _query(url, "SELECT text FROM retell_transcript_segments g JOIN retell_call_sessions s "
                          "ON s.id = g.call_session_id WHERE s.call_id = :c AND g.text LIKE :p", c=LOOP, p="%Nachnamen%")
    assert len(prompts) == 7


def test_dead_air_call(demo_db):
    url, truth = demo_db
    segs = _query(url, "SELECT g.role, g.text, g.call_offset_ms, g.duration_ms FROM retell_transcript_segments g "
                       "JOIN retell_call_sessions s ON s.id = g.call_session_id WHERE s.call_id = :c "
                       "ORDER BY g.segment_sequence", c=DEAD_AIR)
    ends = segs["call_offset_ms"] + segs["duration_ms"]
    hallo = segs.index[segs["text"] == "Hallo?"][0]
    assert ends[hallo - 1] == 8_400 and segs.loc[hallo, "call_offset_ms"] == 27_700
    tools = _query(url, "SELECT t.started_at, s.started_at AS s0 FROM retell_function_traces t JOIN "
                        "retell_call_sessions s ON s.id = t.call_session_id WHERE s.call_id = :c", c=DEAD_AIR)
    assert len(tools) == 2
    assert truth["reference_calls"][DEAD_AIR]["dead_air"]["gap_s"] == pytest.approx(19.3)
    raw = json.loads(_query(url, "SELECT raw FROM calls WHERE retell_call_id = :c", c=DEAD_AIR)["raw"].iloc[0])
    words = [w for u in raw["transcript_object"] for w in u["words"]]
    gaps = [b["start"] - a["end"] for a, b in zip(words, words[1:])]
    assert max(gaps) == pytest.approx(19.3)
    assert raw["duration_ms"] == 72_044


def test_stuck_sessions_test_ids_and_negative_durations(demo_db):
    url, truth = demo_db
    stuck = truth["stuck_session_call_ids"]
    rows = _query(url, "SELECT s.call_id, s.call_status, s.ended_at, c.status FROM retell_call_sessions s "
                       "JOIN calls c ON c.retell_call_id = s.call_id WHERE s.call_status = 'in_progress'")
    assert sorted(rows["call_id"]) == sorted(stuck) and len(stuck) > 30
    assert rows["ended_at"].isna().all() and (rows["status"] == "completed").all()
    present = set(_query(url, "SELECT call_id FROM retell_call_sessions")["call_id"])
    assert set(truth["test_ids"]) <= present and "call_de1656496a133e2cbcd886664988" in present
    assert set(truth["excluded_ids"]) == {c for c in present if not (len(c) == 32 and c.startswith("call_"))}
    neg = _query(url, "SELECT id, duration_ms FROM retell_function_traces WHERE duration_ms < 0")
    assert len(neg) == truth["negative_duration_traces"]["count"]
    exact = dict(zip(neg["duration_ms"], neg["id"]))
    assert exact[-714] == truth["negative_duration_traces"]["exact"]["-714"]
    assert exact[-943] == truth["negative_duration_traces"]["exact"]["-943"]


def test_dst_calls_and_time_storage(demo_db):
    url, truth = demo_db
    dst = truth["dst"]["ambiguous_call_ids"]
    first, second = dst
    rows = _query(url, "SELECT call_id, started_at FROM retell_call_sessions WHERE call_id IN (:a, :b)",
                  a=first, b=second)
    assert len(rows) == 2
    for cid, stored in zip(rows["call_id"], rows["started_at"]):
        if url.startswith("sqlite"):
            assert str(stored)[:19] == dst[cid]["session_wall_time"]
        else:
            assert pd.Timestamp(stored, tz="UTC") == pd.Timestamp(dst[cid]["session_started_at_utc"])
    utc = sorted(v["session_started_at_utc"] for v in dst.values())
    assert utc == ["2025-10-26T00:15:00.000Z", "2025-10-26T01:40:00.000Z"]


def test_schema_shape_double_encoding_and_migrations(demo_db):
    url, truth = demo_db
    engine = _engine(url)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("appointments")}
    engine.dispose()
    assert len(columns) == 69 and not {"created_by", "booking_source", "booked_by_user_id"} & columns
    meta = _query(url, "SELECT metadata FROM appointments")["metadata"]
    double = meta.map(lambda v: isinstance(json.loads(v), str)).sum()
    assert double == truth["incidents"]["P15_double_encoded_metadata"]["count"] > 0
    migrations = _query(url, "SELECT id, migration, batch FROM migrations ORDER BY id")
    assert {324, 325, 340, 361}.isdisjoint(migrations["id"])
    assert "2025_10_18_000001_optimize_appointments_database_schema" in set(migrations["migration"])
    assert migrations["migration"].str.startswith("2025_12_06_").sum() == 4
    assert truth["migrations"]["malformed_ids"] == [1, 311]
    assert len(truth["migrations"]["out_of_order_ids"]) == 13


def test_refuses_a_database_that_is_not_a_demo_world(tmp_path):
    path = tmp_path / "app.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)"))
        conn.execute(sa.text("INSERT INTO users (email) VALUES ('a@example.org')"))
    for replace in (False, True):
        with pytest.raises(DemoRefused, match="not a demo world"):
            demo.build(f"sqlite:///{path}", replace=replace, progress=False)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT email FROM users")).scalars().all() == ["a@example.org"]
        assert sa.inspect(conn).get_table_names() == ["users"]
    engine.dispose()
    assert main(["demo-data", "--db", f"sqlite:///{path}"]) == 2


def test_existing_demo_needs_replace_and_replace_rebuilds(demo_sqlite, tmp_path, capsys):
    url, truth = demo_sqlite
    copy = tmp_path / "copy.sqlite"
    shutil.copy(sa.make_url(url).database, copy)
    with pytest.raises(DemoRefused, match="--replace"):
        demo.build(f"sqlite:///{copy}", progress=False)
    assert main(["demo-data", "--db", f"sqlite:///{copy}", "--replace", "--truth", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and str(tmp_path / "t.json") in out
    rebuilt = json.loads((tmp_path / "t.json").read_text())
    assert rebuilt["row_counts"] == truth["row_counts"]


@pytest.mark.parametrize("argv", [
    ["demo-data", "--db", "not a url"],
    ["demo-data", "--db", "mysql+pymysql://root@127.0.0.1:1/nowhere"],
    ["demo-data", "--db", "postgresql://x@localhost/db"],
])
def test_cli_bad_targets_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rca demo-data: error:")


def test_schema_tables_exposed():
    assert schema.TABLES_REQUIRED[0] == "retell_call_sessions"
    assert "rca_demo_world" in schema.metadata.tables


def test_deployment_resource_matches_ground_truth(demo_sqlite):
    _, truth = demo_sqlite
    from rca_toolkit.sources.deployments import load_deployments

    packaged = load_deployments()
    assert len(packaged) == len(truth["deployments"])
    by_commit = {d["commit"]: pd.Timestamp(d["deployed_at"]) for d in truth["deployments"] if d["commit"]}
    assert by_commit["6110e564122f3f94ab1d3153b7f6dbdc524a2f50"] == pd.Timestamp("2025-10-18T11:20:08Z")
    for row in packaged.itertuples():
        if row.commit:
            assert by_commit[row.commit] == row.deployed_at


@pytest.mark.mariadb
def test_mariadb_bulk_build_ends_with_every_index_and_foreign_key(demo_mariadb):
    url, _ = demo_mariadb
    engine = _engine(url)
    try:
        inspector = sa.inspect(engine)
        for name, table in schema.metadata.tables.items():
            present = {i["name"] for i in inspector.get_indexes(name)}
            present |= {u["name"] for u in inspector.get_unique_constraints(name)}
            wanted = {i.name for i in table.indexes} | {
                c.name for c in table.constraints if isinstance(c, sa.UniqueConstraint)}
            assert wanted <= present, (name, wanted - present)
            fks = {fk["name"] for fk in inspector.get_foreign_keys(name)}
            assert fks == {fk.name for fk in table.foreign_key_constraints}, name
        with engine.connect() as conn:
            ddl = conn.execute(sa.text("SHOW CREATE TABLE retell_call_sessions")).one()[1]
        assert "on update" not in ddl.lower()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- two-step bookings (agent version 25)
def test_two_step_calls_are_appended_and_leave_every_other_row_as_it_was(monkeypatch):
    from rca_toolkit.demo import two_step, world

    tables, truth = world.generate(7, 1)
    monkeypatch.setattr(two_step, "extend", lambda tables, truth, seed: None)
    plain, plain_truth = world.generate(7, 1)
    for name, frame in plain.items():
        pd.testing.assert_frame_equal(tables[name].iloc[:len(frame)].reset_index(drop=True), frame.reset_index(drop=True),
                                      check_dtype=False)
        added = tables[name].iloc[len(frame):]
        if name in two_step.ORDERED:  # ids follow time: the appended rows come after every other row
            assert len(added) and added["id"].min() == frame["id"].max() + 1
            assert added[two_step.ORDERED[name]].min() > frame[two_step.ORDERED[name]].max()
    assert {k for k in truth if truth[k] != plain_truth.get(k)} == {"calls_total", "calls_real", "companies", "attempts",
                                                                    "two_step_bookings"}
    assert truth["calls_real"] - plain_truth["calls_real"] == len(truth["two_step_bookings"]["calls"]) == 5


def test_two_step_traces_as_the_handler_writes_them(demo_db):
    url, truth = demo_db
    two = truth["two_step_bookings"]
    rows = _query(url, "SELECT s.call_id, s.agent_id, s.agent_version, s.company_id, t.function_name, t.status, t.output_result "
                       "FROM retell_function_traces t JOIN retell_call_sessions s ON s.id = t.call_session_id "
                       "WHERE t.function_name IN ('start_booking', 'confirm_booking') AND s.company_id = 3 ORDER BY t.id")
    assert set(rows["call_id"]) == set(two["calls"]) and len(rows) == two["booking_traces"]
    assert set(zip(rows["agent_id"], rows["agent_version"])) == {(two["agent_id"], two["agent_version"])}
    starts = rows[rows["function_name"] == "start_booking"]
    answers = [json.loads(r) for r in starts["output_result"]]
    assert sum(a.get("success") is False for a in answers) == 1  # the refused one: HTTP 200, success false
    assert all(a.get("next_action", a.get("data", {}).get("next_action")) == "confirm_booking" for a in answers if a["success"])
    assert starts["status"].eq("success").all()
    attempts = pd.DataFrame(truth["attempts"])
    mine = attempts[attempts["call_id"].isin(two["calls"])]
    assert len(mine) == two["attempts"] and (mine["outcome"] == "success").sum() == two["success"]
