"""Loaders against the demo world's ground truth, on SQLite and on the real MariaDB."""

from __future__ import annotations


import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from conftest import altered_copy
from rca_toolkit.sources import loaders
from rca_toolkit.errors import ConfigError, NotFound, SchemaError

LOOP_CALL = "call_ab45deadd7db66c4956d5243861"


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def test_calls_exclude_test_ids_and_count_them(demo_db):
    url, truth = demo_db
    frame = loaders.calls(url)
    assert len(frame) == truth["calls_real"]
    assert frame.attrs["excluded_test_ids"] == len(truth["excluded_ids"])
    assert sorted(frame.attrs["excluded_examples"]) == sorted(truth["excluded_ids"])
    assert frame["call_id"].str.fullmatch(r"call_[0-9a-f]{27}").all()
    assert frame.attrs["synthetic"] is True
    with_tests = loaders.calls(url, include_test=True)
    assert len(with_tests) == truth["calls_total"]
    assert set(with_tests.loc[with_tests["is_test"], "call_id"]) == set(truth["excluded_ids"])


def test_calls_without_test_sessions_have_the_categories_of_their_own_values(demo_db):
    """Test sessions are dropped once the frame is typed: no category is left that only a dropped row had (a
    report's counts per status would list it at zero)."""
    url, _ = demo_db
    frame = loaders.calls(url)
    assert frame.attrs["excluded_test_ids"] > 0 and not frame["is_test"].any()
    assert list(frame["id_kind"].cat.categories) == ["retell"]
    for col in frame.select_dtypes("category"):
        assert set(frame[col].cat.categories) == set(frame[col].dropna()), col


def test_calls_dtypes_are_compact_and_utc(demo_db):
    url, _ = demo_db
    frame = loaders.calls(url)
    assert str(frame["started_at"].dtype).endswith("UTC]")
    assert frame["duration_ms"].dtype == "Int64"
    assert frame["call_status"].dtype == "category"
    assert frame["call_id"].dtype == "string"


def test_stuck_sessions_match_truth(demo_db):
    url, truth = demo_db
    frame = loaders.calls(url)
    stuck = set(frame.loc[frame["stuck"], "call_id"])
    expected = {c for c in truth["stuck_session_call_ids"] if c not in truth["excluded_ids"]}
    assert stuck == expected
    assert frame.loc[frame["stuck"], "duration_ms"].isna().all()


def test_dst_repeated_hour(demo_db):
    url, truth = demo_db
    frame = loaders.calls(url, start="2025-10-25T22:00:00Z", end="2025-10-26T04:00:00Z").set_index("call_id")
    for call_id, info in truth["dst"]["ambiguous_call_ids"].items():
        true_utc = pd.Timestamp(info["session_started_at_utc"])
        if _is_sqlite(url):  # naive wall time: flagged, resolved to the first (CEST) reading
            assert bool(frame.loc[call_id, "started_at_ambiguous"]) is True
            first_reading = pd.Timestamp(info["session_wall_time"]).tz_localize("Europe/Berlin", ambiguous=True)
            assert frame.loc[call_id, "started_at"] == first_reading.tz_convert("UTC")
            assert (frame.loc[call_id, "started_at"] == true_utc) == (info["fold"] == 0)
        else:  # TIMESTAMP read in UTC: exact, nothing to flag
            assert bool(frame.loc[call_id, "started_at_ambiguous"]) is False
            assert frame.loc[call_id, "started_at"] == true_utc
    assert frame.drop(index=list(truth["dst"]["ambiguous_call_ids"]))["started_at_ambiguous"].sum() == 0


def test_window_and_company_filters_match_pandas_filtering(demo_db):
    url, _ = demo_db
    everything = loaders.calls(url)
    start, end = pd.Timestamp("2025-10-13T11:16:08+02:00"), pd.Timestamp("2025-10-18T13:20:08+02:00")
    window = loaders.calls(url, start=start.isoformat(), end=end.isoformat(), company_id=2)
    expected = everything[(everything["started_at"] >= start) & (everything["started_at"] < end) & (everything["company_id"] == 2)]
    assert list(window["call_id"]) == list(expected["call_id"])
    assert 0 < len(window) < len(everything)


def test_call_trace_of_the_144_second_call(demo_db):
    url, truth = demo_db
    trace = loaders.call_trace(url, LOOP_CALL)
    assert trace.session["duration_ms"] == 144481
    assert trace.session["started_at"] == pd.Timestamp("2025-10-18T10:09:27Z")
    assert trace.session["disconnection_reason"] == "agent_hangup"
    assert trace.retell is not None and trace.retell["call_id"] == LOOP_CALL
    assert trace.missing == []
    assert len(trace.transcript) > 10 and len(trace.function_traces) >= 3
    assert set(trace.function_traces["family"]) >= {"check_availability", "book_appointment"}
    failed = trace.function_traces[trace.function_traces["status"] == "error"]
    assert failed["error"].str.contains("1054 Unknown column 'created_by'").any()


def test_unknown_call_id_is_not_found(demo_db):
    url, _ = demo_db
    with pytest.raises(NotFound, match="call 'call_000' not found"):
        loaders.call_trace(url, "call_000")


def test_function_traces_match_families_incl_versions_and_aliases(demo_db):
    url, truth = demo_db
    frame = loaders.function_traces(url, start="2025-10-22T00:00:00+02:00", end="2025-10-25T00:00:00+02:00",
                                    families=["book_appointment"])
    assert set(frame["family"]) == {"book_appointment"}
    assert {"book_appointment_v17"} <= set(frame["function_name"])
    d4 = truth["incidents"]["D4_versioned_names"]["by_function"]["book_appointment_v17"]
    unknown = frame["error"].fillna("").str.startswith("Unknown function: book_appointment_v17")
    assert int(unknown.sum()) == d4


def test_error_log_counts_per_frame_match_truth(demo_db):
    url, truth = demo_db
    frame = loaders.errors(url)
    phantom = frame[frame["error_code"] == "42S22"]
    for code_path, info in truth["incidents"]["A_phantom_columns"]["frames"].items():
        assert int((phantom["frame"] == code_path).sum()) == info["errors_real_ids"]
    assert frame["severity_rank"].dropna().isin([1, 2, 3, 4]).all()


def test_errors_read_a_few_keys_at_a_time_are_the_one_read(demo_db, monkeypatch):
    """Read seven ids per statement, the rows, their order and their types are those of one statement; ``keep``
    returns the rows it keeps and nothing else."""
    url, _ = demo_db
    whole = loaders.errors(url)
    monkeypatch.setattr(loaders, "ERROR_CHUNK", 7)
    parts = loaders.errors(url)
    assert len(whole) > 7 * 10
    pd.testing.assert_frame_equal(parts, whole)
    seen = []

    def phantom(rows):
        seen.append(len(rows))
        return rows["error_message"].str.contains("Unknown column", regex=False).fillna(False)

    kept = loaders.errors(url, keep=phantom)
    expected = whole[whole["error_message"].str.contains("Unknown column", regex=False).fillna(False)].reset_index(drop=True)
    assert len(seen) > 10 and sum(seen) == len(whole) and 0 < len(kept) < len(whole)
    pd.testing.assert_frame_equal(kept, expected, check_categorical=False)


def test_errors_read_in_parts_keep_the_stored_order_when_ids_are_not_in_time_order(demo_sqlite, tmp_path, monkeypatch):
    """Rows with the first ids and the latest times (written late, or with a clock that was wrong) come last, as one
    statement gives them."""
    url = altered_copy(demo_sqlite[0], tmp_path,
                       "UPDATE retell_error_log SET occurred_at = '2025-12-31 00:00:00' WHERE id IN "
                       "(SELECT id FROM retell_error_log ORDER BY id LIMIT 3)")
    whole = loaders.errors(url)
    assert (whole["occurred_at"].tail(3) == pd.Timestamp("2025-12-30T23:00:00Z")).all()
    monkeypatch.setattr(loaders, "ERROR_CHUNK", 7)
    pd.testing.assert_frame_equal(loaders.errors(url), whole)


def test_errors_ids_far_apart_are_read_in_a_bounded_number_of_statements(demo_sqlite, tmp_path, monkeypatch):
    """One id moved past nine trillion: the key ranges widen (at most ``MAX_ERROR_PARTS`` statements), the rows stay."""
    url = altered_copy(demo_sqlite[0], tmp_path,
                       "UPDATE retell_error_log SET id = 9000000000000 WHERE id = (SELECT MAX(id) FROM retell_error_log)")
    monkeypatch.setattr(loaders, "ERROR_CHUNK", 10 ** 14)
    whole = loaders.errors(url)
    assert whole["error_id"].max() == 9000000000000
    monkeypatch.setattr(loaders, "ERROR_CHUNK", 7)
    parts = []
    pd.testing.assert_frame_equal(loaders.errors(url, keep=lambda rows: parts.append(len(rows)) or [True] * len(rows)), whole)
    assert len(parts) <= loaders.MAX_ERROR_PARTS and sum(parts) == len(whole)


def test_appointments_double_encoded_metadata(demo_db):
    url, truth = demo_db
    frame = loaders.appointments(url)
    assert len(frame) == truth["row_counts"]["appointments"]
    assert frame.attrs["double_encoded_metadata"] == truth["incidents"]["P15_double_encoded_metadata"]["count"]
    decoded = frame.loc[frame["metadata_double_encoded"], "metadata"]
    assert decoded.map(lambda m: isinstance(m, dict)).all()


def test_webhooks_and_migrations(demo_db):
    url, truth = demo_db
    hooks = loaders.webhook_events(url)
    assert len(hooks) == truth["row_counts"]["webhook_events"]
    retell = hooks[hooks["provider"] == "retell"]
    assert retell["event_id"].is_unique  # P11: at most one row per call
    assert len(loaders.migrations(url)) == truth["row_counts"]["migrations"]


def test_window_end_before_start_is_a_clear_error(demo_db):
    url, _ = demo_db
    with pytest.raises(ConfigError, match="is not after start"):
        loaders.calls(url, start="2025-10-20T00:00:00Z", end="2025-10-19T00:00:00Z")
    with pytest.raises(ConfigError, match="has no time zone"):
        loaders.calls(url, start="2025-10-20T00:00:00")


def test_missing_required_table_is_an_error(demo_sqlite, tmp_path):
    url = altered_copy(demo_sqlite[0], tmp_path, "DROP TABLE retell_function_traces")
    with pytest.raises(SchemaError, match=r"^tables missing: retell_function_traces \(needed by "):
        loaders.function_traces(url)
    with pytest.raises(SchemaError, match=r"^tables missing: retell_function_traces \(needed by "):
        loaders.call_trace(url, LOOP_CALL)


def test_missing_optional_column_is_reported_not_fatal(demo_sqlite, tmp_path):
    frame = loaders.calls(altered_copy(demo_sqlite[0], tmp_path, "ALTER TABLE calls DROP COLUMN session_outcome"))
    assert frame.attrs["missing_columns"] == {"calls": ["session_outcome"]}
    assert frame["session_outcome"].isna().all()


def test_missing_required_column_is_an_error(demo_sqlite, tmp_path):
    url = altered_copy(demo_sqlite[0], tmp_path, "ALTER TABLE retell_call_sessions DROP COLUMN disconnection_reason")
    with pytest.raises(SchemaError, match=r"^table 'retell_call_sessions' lacks disconnection_reason \(needed by the session read"):
        loaders.calls(url)


def test_loaders_never_write(demo_db):
    import sqlalchemy as sa

    url, _ = demo_db
    engine = loaders.engine_for(url)
    loaders.calls(engine)
    from rca_toolkit.errors import WriteRefused

    with pytest.raises(WriteRefused):  # the gate refuses it before the database would
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM migrations"))
    assert len(loaders.migrations(engine)) > 0


def test_laravel_log_round_trip_through_scratch_import(shared_data, tmp_path):
    from rca_toolkit.cli import main

    scratch = f"sqlite:///{tmp_path / 'scratch.sqlite'}"
    assert main(["import", "laravel-log", str(shared_data / "error-monitor.log"), "--db", scratch]) == 0
    everything = loaders.laravel_log(scratch)
    assert len(everything) == 76 and int(everything["truncated"].sum()) == 73
    assert int((everything["errno"] == 2002).sum()) == 48
    morning = loaders.laravel_log(scratch, start="2025-09-24T09:00:00+02:00", end="2025-09-24T10:00:00+02:00", levels=["ERROR"])
    assert len(morning) > 0
    assert morning["ts"].between(pd.Timestamp("2025-09-24T07:00:00Z"), pd.Timestamp("2025-09-24T08:00:00Z"),
                                 inclusive="left").all()


def test_empty_window_gives_empty_frames_with_their_columns(demo_db):
    url, _ = demo_db
    window = dict(start="2025-09-01T00:00:00Z", end="2025-09-02T00:00:00Z")  # before the demo world
    traces = loaders.function_traces(url, **window)
    errors = loaders.errors(url, **window)
    calls = loaders.calls(url, **window)
    assert traces.empty and {"family", "error", "duration_ms"} <= set(traces.columns)
    assert errors.empty and {"frame", "severity_rank"} <= set(errors.columns)
    assert calls.empty and calls.attrs["excluded_test_ids"] == 0


def test_window_without_company_matches_pandas_filtering(demo_db):
    """On MariaDB the window query lists every company so the (company_id, started_at) index is used."""
    url, _ = demo_db
    everything = loaders.calls(url)
    start, end = pd.Timestamp("2025-10-20T00:00:00+02:00"), pd.Timestamp("2025-10-23T00:00:00+02:00")
    window = loaders.calls(url, start=start.isoformat(), end=end.isoformat())
    expected = everything[(everything["started_at"] >= start) & (everything["started_at"] < end)]
    assert list(window["call_id"]) == list(expected["call_id"])
    assert set(window["company_id"]) == {1, 2}


def test_function_traces_without_blobs_keep_timing_columns(demo_db):
    url, _ = demo_db
    window = dict(start="2025-10-20T00:00:00+02:00", end="2025-10-21T00:00:00+02:00")
    full = loaders.function_traces(url, **window)
    lean = loaders.function_traces(url, blobs=False, **window)
    assert list(lean["trace_id"]) == list(full["trace_id"])
    assert lean["duration_ms"].equals(full["duration_ms"]) and list(lean["family"]) == list(full["family"])
    assert "output_result" not in lean.columns


def test_family_filter_matches_unfiltered_traces(demo_db):
    url, _ = demo_db
    window = dict(start="2025-10-21T00:00:00+02:00", end="2025-10-25T00:00:00+02:00")
    everything = loaders.function_traces(url, **window)
    booking = loaders.function_traces(url, families=["book_appointment", "collect_appointment"], **window)
    expected = everything[everything["family"].isin(["book_appointment", "collect_appointment"])]
    assert list(booking["trace_id"]) == list(expected["trace_id"])
    assert {"start_booking", "book_appointment_v17", "collect_appointment_data"} <= set(booking["function_name"])
    assert loaders.function_traces(url, families=["no_such_family"], **window).empty


def test_a_sqlite_bound_compares_as_the_instant_it_names(tmp_path):
    """SQLite compares stored times as text: a bound written with its fraction's trailing zeros would sort after a row
    stored at that very second ("...00:00" < "...00:00.000000"), so exact bounds (the health report's midnights) would
    put that row on the wrong side."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'times.sqlite'}")
    stored = ["2025-10-13 23:59:59.999", "2025-10-14 00:00:00", "2025-10-14 00:00:00.5", "2025-10-14 00:00:00.500001"]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (at TEXT)"))
        conn.execute(sa.text("INSERT INTO t VALUES (:at)"), [{"at": v} for v in stored])

    def at_or_after(ts: str) -> list[str]:
        bound = loaders.naive_param(pd.Timestamp(ts), engine)
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT at FROM t WHERE at >= :b ORDER BY at"), {"b": bound})]

    assert at_or_after("2025-10-14 00:00:00") == stored[1:]
    assert at_or_after("2025-10-14 00:00:00.5") == stored[2:]
    assert at_or_after("2025-10-14 00:00:00.500001") == stored[3:]
    assert loaders.naive_param(pd.Timestamp("2025-10-14 00:00:00.5"), engine) == "2025-10-14 00:00:00.5"


def test_a_window_holds_its_first_instant_and_not_its_end_and_refuses_an_empty_one(demo_sqlite):
    """``[start, end)`` exactly, placed on UTC instants after the padded wall-time read: a session is in the window
    that starts at its start time and not in the one that ends there; a window that ends where it starts is refused."""
    url = demo_sqlite[0]
    first = loaders.calls(url, start="2025-10-14T00:00:00+02:00", end="2025-10-15T00:00:00+02:00").iloc[0]
    at = first["started_at"]
    starting = loaders.calls(url, start=at, end=at + pd.Timedelta(hours=1))
    ending = loaders.calls(url, start=at - pd.Timedelta(hours=1), end=at)
    assert first["call_id"] in set(starting["call_id"]) and first["call_id"] not in set(ending["call_id"])
    with pytest.raises(ConfigError, match="is not after start"):
        loaders.calls(url, start=at, end=at)


def test_a_start_time_the_spring_change_skips_is_flagged_like_a_repeated_one(demo_sqlite, tmp_path):
    """2025-03-30 02:30 does not exist in Berlin (P1): the row loaders flag that session's start as they flag one in
    the hour the autumn change repeats, and count it in ``attrs``; 03:30 that day is not flagged."""
    copy = "CREATE TEMP TABLE one AS SELECT * FROM retell_call_sessions WHERE call_id LIKE 'call_%' LIMIT 1"
    url = altered_copy(demo_sqlite[0], tmp_path, copy, *[statement for n in (2, 3) for statement in (
        f"UPDATE one SET id = 'spring-{n}', call_id = 'call_{n:027x}', started_at = '2025-03-30 0{n}:30:00', "
        f"ended_at = '2025-03-30 0{n}:32:00'", "INSERT INTO retell_call_sessions SELECT * FROM one")])
    calls = loaders.calls(url, start="2025-03-30T00:00:00+01:00", end="2025-03-31T00:00:00+02:00")
    assert calls.set_index("call_id")["started_at_ambiguous"].to_dict() == {f"call_{2:027x}": True, f"call_{3:027x}": False}
    assert calls.attrs["ambiguous_times"] == 1


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(["Europe/Berlin", "America/Havana", "Australia/Lord_Howe", "UTC"]),
       change=st.sampled_from(["2025-03-30 02:00", "2025-10-26 02:00", "2025-11-02 00:00", "2025-04-06 02:00",
                               "2025-03-09 00:00", "2025-10-05 02:00"]),
       bound_s=st.integers(-4 * 3600, 4 * 3600), row_s=st.integers(-4 * 3600, 4 * 3600), fraction=st.sampled_from([0, 500_000]))
def test_the_first_wall_time_splits_stored_wall_times_as_their_readings(zone, change, bound_s, row_s, fraction):
    """Near a DST change of each kind (skipped hour, repeated hour, Havana's repeated midnight, Lord Howe's half hour):
    a stored wall time is at or after the bound's first wall time exactly when its reading (``localize_naive``: the
    first of a repeated time, a skipped one shifted forward) is at or after the bound. So the database compares the
    bound and no row is placed in Python."""
    from rca_toolkit.rules.timeutil import localize_naive

    around = pd.Timestamp(change)
    bound = (around + pd.Timedelta(seconds=bound_s, microseconds=fraction)).tz_localize(zone, ambiguous=bool(bound_s % 2),
                                                                                      nonexistent="shift_forward")
    row = around + pd.Timedelta(seconds=row_s)
    reading = localize_naive(pd.Series([row]), zone)["ts"].iloc[0]
    assert (row >= loaders.first_wall_time(bound, zone)) == (reading >= bound)


def test_typed_flags_read_every_driver_shape_of_a_flag():
    """0/1 as integers, floats, booleans or text; NULL as None, NaN or pd.NA (each driver and the store hand back
    their own): decided once per distinct value (the error log's two flags, per row, took 5 s at 1M calls)."""
    raw = pd.Series([1, 0, None, float("nan"), pd.NA, "1", "0", True, 2.0], dtype="object")
    flags = loaders.typed(pd.DataFrame({"flag": raw}), bools=["flag"])["flag"]
    assert str(flags.dtype) == "boolean"
    assert flags.tolist() == [True, False, pd.NA, pd.NA, pd.NA, True, False, True, True]
    from_store = loaders.typed(pd.DataFrame({"flag": pd.array([1, None, 0], dtype="Int64")}), bools=["flag"])["flag"]
    assert from_store.tolist() == [True, pd.NA, False]
