"""Runbook checks on a small hand-built world with known answers (SQLite, real loaders).

The world (Europe/Berlin wall time, 2025-10-18, deploy 13:20:08): ten real calls from 14:00
every 10 minutes plus one test call. Calls 0-5 try ``book_appointment_v17`` and fail with
1054; Cal.com created uid-0..uid-5 anyway, uid-0/uid-1 were rescued by the webhook upsert and
uid-2..uid-5 are orphaned. Calls 6-8 book via ``collect_appointment_data`` successfully.
Call 9 only checks availability and its session is still ``in_progress``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from rca_toolkit.runbooks import checks
from rca_toolkit.sources import db, loaders, schema
from rca_toolkit.runbooks.framework import NotApplicable, Status, run_check

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"
T0 = datetime(2025, 10, 18, 14, 0, 0)
ERR_1054 = "SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in 'field list'"


def _cid(i: int) -> str:
    return f"call_{i:027x}"


def _wall(dt: datetime) -> datetime:
    return dt  # naive Berlin wall time, as production stores it


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("checks") / "mini.sqlite"
    url = f"sqlite:///{path}"
    engine = db.make_engine(url, writable=True)
    schema.metadata.create_all(engine)
    t = schema.metadata.tables
    sessions, calls, traces, hooks, appts = [], [], [], [], []
    for i in range(11):
        call_id = _cid(i) if i < 10 else "test_123"
        start = T0 + timedelta(minutes=10 * i)
        stuck = i == 9
        sessions.append({"id": f"s-{i:02d}", "call_id": call_id, "started_at": _wall(start), "company_id": 1,
                         "call_status": "in_progress" if stuck else "ended",
                         "ended_at": None if stuck else _wall(start + timedelta(seconds=60)),
                         "duration_ms": None if stuck else 60000})
        calls.append({"id": 100 + i, "retell_call_id": call_id, "company_id": 1,
                      "status": "ongoing" if stuck else "completed",
                      "appointment_made": 1 if i in (0, 6, 7) else 0, "appointment_id": None})
        hooks.append({"provider": "retell", "event_type": "call_started", "event_id": call_id,
                      "idempotency_key": f"r-{i}", "payload": "{}", "status": "processed", "created_at": _wall(start)})
        seq = iter(range(1, 10))
        traces.append({"call_session_id": f"s-{i:02d}", "function_name": "initialize_call", "execution_sequence": next(seq),
                       "started_at": _wall(start + timedelta(seconds=1)), "status": "success", "duration_ms": 1000})
        if i not in (4, 5):
            traces.append({"call_session_id": f"s-{i:02d}", "function_name": "check_availability_v17",
                           "execution_sequence": next(seq), "started_at": _wall(start + timedelta(seconds=15)),
                           "status": "success", "duration_ms": 2100})
        at = start + timedelta(seconds=30)
        if i < 6:
            traces.append({"call_session_id": f"s-{i:02d}", "function_name": "book_appointment_v17",
                           "execution_sequence": next(seq), "started_at": _wall(at), "status": "error", "duration_ms": 4000,
                           "error_details": json.dumps({"error": ERR_1054})})
            hooks.append({"provider": "calcom", "event_type": "BOOKING_CREATED", "event_id": f"uid-{i}",
                          "idempotency_key": f"c-{i}", "status": "processed" if i < 2 else "failed", "created_at": _wall(at),
                          "payload": json.dumps({"uid": f"uid-{i}", "metadata": {"retell_call_id": call_id}})})
            if i < 2:  # rescued by the Cal.com webhook upsert: no call link
                appts.append({"company_id": 1, "customer_id": 1, "calcom_v2_booking_id": f"uid-{i}", "source": "cal.com",
                              "status": "confirmed", "created_at": _wall(at + timedelta(seconds=2))})
        elif i in (6, 7, 8, 10):
            uid = f"uid-{i}"
            traces.append({"call_session_id": f"s-{i:02d}", "function_name": "collect_appointment_data",
                           "execution_sequence": next(seq), "started_at": _wall(at), "status": "success", "duration_ms": 3000,
                           "output_result": json.dumps({"success": True, "calcom_uid": uid})})
            hooks.append({"provider": "calcom", "event_type": "BOOKING_CREATED", "event_id": uid, "idempotency_key": f"c-{i}",
                          "status": "processed", "created_at": _wall(at),
                          "payload": json.dumps({"uid": uid, "metadata": {"retell_call_id": call_id}})})
            appts.append({"company_id": 1, "customer_id": 1, "calcom_v2_booking_id": uid, "call_id": 100 + i,
                          "source": "retell_phone", "status": "confirmed", "created_at": _wall(at + timedelta(seconds=1)),
                          "metadata": json.dumps({"retell_call_id": call_id})})
    appts.append({"company_id": 1, "customer_id": 3, "calcom_v2_booking_id": "uid-local-only", "source": "phone",
                  "status": "confirmed", "created_at": _wall(T0 + timedelta(hours=3, minutes=5))})
    errors = [{"call_session_id": tr["call_session_id"], "function_trace_id": n + 1, "error_code": "42S22",
               "error_type": "function_error", "severity": "high", "occurred_at": tr["started_at"] + timedelta(seconds=4),
               "error_message": ERR_1054, "affected_function": tr["function_name"], "booking_failed": 1,
               "error_context": json.dumps({"frame": "App\\Http\\Controllers\\RetellFunctionCallHandler::bookAppointment"})}
              for n, tr in enumerate(traces) if tr["status"] == "error"]
    with engine.begin() as conn:
        for name, rows in (("retell_call_sessions", sessions), ("calls", calls), ("retell_function_traces", traces),
                           ("webhook_events", hooks), ("appointments", appts), ("retell_error_log", errors)):
            keys = sorted({k for row in rows for k in row})  # executemany uses one column list for all rows
            conn.execute(t[name].insert(), [{k: row.get(k) for k in keys} for row in rows])
    engine.dispose()
    return loaders.engine_for(url)


SINCE, UNTIL = "2025-10-18T13:20:08+02:00", "2025-10-18T18:00:00+02:00"


def test_booking_success_fails_the_book_path_with_denominators(world):
    result = checks.booking_success(world, SINCE, UNTIL, min_attempts=3)
    assert result.status == Status.FAIL
    paths = {row["path"]: row for row in result.evidence["paths"]}
    assert paths["book_appointment"]["attempts"] == 6 and paths["book_appointment"]["success"] == 0
    assert paths["book_appointment"]["orphaned"] == 4 and paths["book_appointment"]["status"] == "FAIL"
    assert "1054" in paths["book_appointment"]["top_failure"] or "created_by" in paths["book_appointment"]["top_failure"]
    assert paths["collect_appointment"]["attempts"] == 3 and paths["collect_appointment"]["status"] == "PASS"
    assert result.evidence["excluded_test_attempts"] == 1
    assert "book_appointment: 0/6 succeeded (0.0 %) FAIL" in result.summary


def test_booking_success_small_sample_is_warn_never_pass(world):
    result = checks.booking_success(world, SINCE, UNTIL, min_attempts=20)
    assert result.status == Status.WARN
    assert all(row["why"].startswith("not enough data") for row in result.evidence["paths"])
    empty = checks.booking_success(world, "2025-10-19T00:00:00+02:00", "2025-10-20T00:00:00+02:00")
    assert empty.status == Status.WARN and "0/0" in empty.summary


def test_booking_before_after_rows(world):
    rows = checks.booking_before_after(world, SINCE, UNTIL, baseline="1d")
    by = {r["metric"]: r for r in rows}
    assert by["booking success, book_appointment"]["after"] == "0/6 (0.0 %)"
    assert by["booking success, collect_appointment"]["before"] == "0/0 (no attempts)"


def test_reach_rates_by_family_with_bands(world):
    result = checks.reach_rates(world, SINCE, UNTIL)
    fam = {row["family"]: row for row in result.evidence["families"]}
    assert fam["initialize_call"]["sessions_reached"] == 10 and fam["initialize_call"]["sessions"] == 10
    assert fam["check_availability"]["rate"] == 0.8 and fam["check_availability"]["status"] == "PASS"  # _v17 folded
    assert fam["booking"]["sessions_reached"] == 9 and fam["booking"]["status"] == "PASS"
    assert result.status == Status.PASS and result.evidence["excluded_test_ids"] == 1


def test_webhook_freshness_is_relative_to_as_of(world):
    fresh = checks.webhook_freshness(world, "2025-10-18T15:50:00+02:00")
    assert fresh.status == Status.PASS
    row = next(r for r in fresh.evidence["last_webhooks"] if r["provider"] == "retell")
    assert row["age_min"] == 10.0  # the test call's webhook at 15:40 counts: webhooks carry no test flag
    assert checks.webhook_freshness(world, "2025-10-18T16:15:00+02:00").status == Status.WARN
    late = checks.webhook_freshness(world, "2025-10-18T17:00:00+02:00")
    assert late.status == Status.FAIL and "80.0 min old" in late.summary
    calcom = [r for r in late.evidence["last_webhooks"] if r["provider"] == "calcom"]
    assert calcom and calcom[0]["status"] == "info"  # shown, not judged
    none = checks.webhook_freshness(world, "2025-10-10T12:00:00+02:00")
    assert none.status == Status.FAIL and "none in the 7d" in none.summary


def test_stuck_sessions_counts_against_as_of(world):
    early = checks.stuck_sessions(world, "2025-10-18T16:00:00+02:00")
    assert early.status == Status.PASS and early.evidence["stuck"] == 0 and early.evidence["sessions"] == 10
    late = checks.stuck_sessions(world, "2025-10-18T18:00:00+02:00")
    assert late.status == Status.WARN and late.evidence["stuck"] == 1 and late.evidence["examples"] == [_cid(9)]


def test_orphans_both_ways(world):
    result = checks.booking_orphans(world, SINCE, UNTIL)
    ev = result.evidence
    assert ev["calcom_bookings"] == 10 and ev["calcom_without_local"] == 4  # Cal.com rows carry no test flag
    assert ev["examples_calcom_only"] == ["uid-2", "uid-3", "uid-4", "uid-5"]
    assert ev["local_without_calcom"] == 1 and ev["examples_local_only"] == ["uid-local-only"]
    assert result.status == Status.FAIL  # 4 > 3 on the Cal.com side


def test_duplicate_booking_ids(world, tmp_path):
    clean = checks.duplicate_booking_ids(world)
    assert clean.status == Status.PASS and clean.evidence["appointments_with_booking_id"] == 7
    # Production dropped unique indexes at the 64-index limit: a table without the constraint.
    path = tmp_path / "dups.sqlite"
    engine = db.make_engine(f"sqlite:///{path}", writable=True)
    meta = sa.MetaData()
    table = sa.Table("appointments", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("calcom_v2_booking_id", sa.String(255)), sa.Column("deleted_at", sa.DateTime))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"calcom_v2_booking_id": u, "deleted_at": d} for u, d in
                                      [("a", None), ("a", None), ("a", None), ("b", None), ("b", T0), ("c", None), (None, None)]])
    engine.dispose()
    result = checks.duplicate_booking_ids(f"sqlite:///{path}")
    assert result.status == Status.FAIL  # "b" twice only counting a deleted row is not a duplicate
    assert result.evidence["examples"] == [{"calcom_v2_booking_id": "a", "rows": 3}]
    assert result.evidence["extra_rows"] == 2 and result.evidence["appointments_with_booking_id"] == 5


def test_outcome_disagreements(world):
    result = checks.outcome_disagreements(world, SINCE, UNTIL)
    ev = result.evidence
    assert ev["appointment_made without an appointment"] == 1  # call 0: flag set, booking failed
    assert ev["appointment exists but appointment_made is false"] == 1  # call 8
    assert result.status == Status.FAIL and ev["calls"] == 10


def test_required_columns_index_count_and_reachability(world, tmp_path):
    assert checks.required_columns(world).status == Status.PASS
    assert checks.db_reachable(world).status in (Status.PASS, Status.WARN)
    idx = checks.index_count(world)
    assert idx.status == Status.PASS and idx.evidence["largest"][0]["indexes"] <= 64
    assert checks.index_count(world, limit=idx.evidence["largest"][0]["indexes"]).status == Status.WARN
    missing = checks.db_reachable(f"sqlite:///{tmp_path / 'absent.sqlite'}")
    assert missing.status == Status.FAIL and "does not exist" in missing.summary


def test_missing_table_is_error_never_pass(tmp_path):
    path = tmp_path / "partial.sqlite"
    engine = db.make_engine(f"sqlite:///{path}", writable=True)
    keep = [schema.metadata.tables[n] for n in ("retell_call_sessions", "calls", "webhook_events")]
    schema.metadata.create_all(engine, tables=keep)
    engine.dispose()
    ro = loaders.engine_for(f"sqlite:///{path}")
    result = checks.required_columns(ro)
    assert result.status == Status.ERROR and "retell_function_traces" in result.evidence["missing_tables"]
    booking = run_check("booking", checks.booking_success, ro, SINCE, UNTIL)
    assert booking.status == Status.ERROR and "SchemaError" in booking.summary
    assert run_check("dups", checks.duplicate_booking_ids, ro).status == Status.ERROR


def test_not_applicable_checks_are_skipped():
    for fn, args in ((checks.redis_reachable, ("",)), (checks.log_errors, ("",)), (checks.cache_invalidation, ("",)),
                     (checks.redis_key_watch, ("",)), (checks.phantom_columns, (None, ""))):
        with pytest.raises(NotApplicable):
            fn(*args)


def test_log_errors_counts_the_window(tmp_path):
    log = tmp_path / "laravel.log"
    lines = [f"[2025-10-18 14:{m:02d}:00] production.ERROR: SQLSTATE[42S22]: Column not found {{}}" for m in range(25)]
    lines += ["[2025-10-18 12:00:00] production.ERROR: before the deploy {}",
              "[2025-10-18 14:30:00] production.INFO: fine {}", "[2025-10-18 XX:XX:XX] production.ERROR: placeholder {}"]
    log.write_text("\n".join(lines) + "\n")
    result = checks.log_errors(str(log), SINCE, UNTIL)
    assert result.evidence["errors"] == 25 and result.status == Status.WARN
    assert result.evidence["without_timestamp"] == 1
    assert checks.log_errors(str(log), SINCE, UNTIL, warn=30).status == Status.PASS


def test_cache_invalidation_finds_the_handler_that_forgets():
    from rca_toolkit.analyses.code.cache_handlers import cache_handlers

    handlers = cache_handlers(FIXTURES / "calcom_cache")
    assert list(handlers["method"]) == ["handleBookingCreated", "handleBookingCancelled", "handleBookingRescheduled"]
    assert list(handlers["clears_cache"]) == [True, True, False]  # comment and string in the third do not count
    result = checks.cache_invalidation(str(FIXTURES / "calcom_cache"))
    assert result.status == Status.FAIL and "handleBookingRescheduled" in result.summary and "1 of 3" in result.summary
    none = run_check(None, checks.cache_invalidation, str(FIXTURES.parent / "formats"))
    assert none.status == Status.ERROR  # no handler found is not a pass


def test_redis_checks_against_the_local_server():
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    assert checks.redis_reachable(url).status == Status.PASS
    assert checks.redis_reachable("redis://127.0.0.1:1/0").status == Status.FAIL
    watch = checks.redis_key_watch(url, pattern="rca-test-none:*", duration="0.2s", interval="0.1s")
    assert watch.status == Status.WARN and watch.evidence["keys_at_start"] == 0


def test_redis_watch_sees_an_invalidation():
    import threading

    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/14"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    keys = [f"rca-test:availability:{i}" for i in range(3)]
    client.mset({k: "slots" for k in keys})
    started = threading.Event()
    box = {}

    def watch():
        started.set()
        box["result"] = checks.redis_key_watch(url, pattern="rca-test:availability:*", duration="3s", interval="0.1s")

    thread = threading.Thread(target=watch)
    thread.start()
    started.wait()
    __import__("time").sleep(0.5)  # let the first SCAN see all three keys (ordering, not a timing assertion)
    client.delete(keys[1])  # what a booking webhook handler should do
    thread.join()
    client.delete(*keys)
    result = box["result"]
    assert result.status == Status.PASS and result.evidence["removed"] == [keys[1]]
    assert result.evidence["keys_at_start"] == 3


def test_phantom_columns_from_the_code_tree(world):
    laravel = FIXTURES.parent / "laravel_before"
    result = checks.phantom_columns(world, str(laravel))
    assert result.status == Status.FAIL
    found = {r["column"] for r in result.evidence["phantom_columns"]}
    assert found == {"created_by", "booking_source", "booked_by_user_id", "cancelled_by", "cancellation_source",
                     "reschedule_source", "rescheduled_by", "previous_starts_at"}  # incidents.md A, item 3
    assert run_check(None, checks.phantom_columns, world, str(FIXTURES / "nope")).status == Status.ERROR


@pytest.mark.mariadb
def test_index_count_on_mariadb_matches_the_contract(demo_mariadb, world):
    url, _ = demo_mariadb
    result = checks.index_count(url)
    largest = {r["table"]: r["indexes"] for r in result.evidence["largest"]}
    assert largest["webhook_events"] == 13  # data-contract §3.8: 13 indexes
    assert result.status == Status.PASS
    sqlite = {r["table"]: r["indexes"] for r in checks.index_count(world).evidence["largest"]}
    assert sqlite["webhook_events"] == 13  # unique constraints counted on SQLite too


def test_failed_webhooks_per_hour(world):
    result = checks.failed_webhooks(world, SINCE, UNTIL)
    assert result.evidence["failed"] == 4 and result.evidence["webhooks"] == 21  # uid-2..uid-5 rejected
    assert result.evidence["worst_hour"] == 4 and result.status == Status.WARN
    assert result.evidence["worst_hours"][0]["hour"] == "2025-10-18T12:00:00+00:00"
    assert checks.failed_webhooks(world, SINCE, UNTIL, critical=3).status == Status.FAIL


def test_cache_handlers_of_a_missing_code_path_is_an_error_not_an_empty_answer(tmp_path):
    from rca_toolkit.analyses.code.cache_handlers import cache_handlers
    from rca_toolkit.errors import NotFound

    with pytest.raises(NotFound, match="does not exist"):
        cache_handlers(tmp_path / "no-such-app")
