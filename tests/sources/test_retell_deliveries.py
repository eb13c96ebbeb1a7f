"""Retell webhook deliveries merged, never overwritten: ``rca import retell`` of call_started,
call_ended and call_analyzed in any order, in one list or in separate files and runs, gives one
``calls`` row per call built from all of them; a re-import gives the same rows; every Retell
``call_status`` maps to the calls table's vocabulary. Inputs are built with the SDK's own models
and from the real sample (read, never copied).
"""

from __future__ import annotations

import itertools
import json
import os
import uuid

import pytest
import sqlalchemy as sa
from retell.types import PhoneCallResponse

from rca_toolkit import cli
from rca_toolkit.sources import importer
from rca_toolkit.sources.formats.retell import load_call_object, merge_deliveries

SAMPLE = "retell_call_a3d98bb4522f6f1e0bfac5964b1.json"
SAMPLE_ID = "call_a3d98bb4522f6f1e0bfac5964b1"
CALL_ID = "call_" + "f" * 27
START_MS = 1761297670702
ROW_COLUMNS = ("id", "retell_call_id", "status", "call_status", "duration_ms", "duration_sec", "start_timestamp",
               "end_timestamp", "disconnection_reason", "summary", "sentiment", "call_successful", "cost_cents",
               "transcript", "raw")


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("RCA_DATABASE_URL", f"sqlite:///{tmp_path / 'analysed.sqlite'}")
    monkeypatch.setenv("RCA_PROGRESS", "0")
    return f"sqlite:///{tmp_path / 'scratch.sqlite'}"


def _import(capsys, db: str, *files, extra=()) -> str:
    code = cli.main(["import", "retell", *map(str, files), "--db", db, *extra])
    out, err = capsys.readouterr()
    assert code == 0 and not err, err
    return out


def _rows(db: str) -> list[dict]:
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM calls ORDER BY retell_call_id"))]
    engine.dispose()
    return rows


def _count(db: str, table: str) -> int:
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()
    engine.dispose()
    return n


def lifecycle(call_id: str = CALL_ID) -> dict[str, dict]:
    """The three deliveries of one call as Retell sends them, built with the SDK's model."""
    base = dict(call_id=call_id, agent_id="agent_1", agent_version=42, call_type="phone_call", direction="inbound",
                from_number="anonymous", to_number="+4930123456780", start_timestamp=START_MS,
                metadata={"source": "test"})
    started = PhoneCallResponse(call_status="ongoing", **base)
    ended = PhoneCallResponse(call_status="ended", end_timestamp=START_MS + 30_000, duration_ms=30_000,
                              disconnection_reason="user_hangup", transcript="Agent: Guten Tag\nUser: Tschüss",
                              call_cost={"combined_cost": 4.56, "product_costs": [], "total_duration_seconds": 30,
                                         "total_duration_unit_price": 0.152}, **{**base, "metadata": None})
    analyzed = PhoneCallResponse(**{**ended.model_dump(), "call_analysis": {
        "call_summary": "The caller asked for an appointment.", "user_sentiment": "Neutral", "call_successful": True}})
    # model_dump(mode="json") writes every unset field as null: a poorer delivery's nulls must never win
    return {event: {"event": event, "call": model.model_dump(mode="json")}
            for event, model in (("call_started", started), ("call_ended", ended), ("call_analyzed", analyzed))}


def _write(folder, name: str, document) -> str:
    path = folder / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- the merge itself
def test_merge_does_not_depend_on_the_order_and_never_takes_a_null():
    events = lifecycle()
    results = [merge_deliveries([(e["event"], e["call"]) for e in order])
               for order in itertools.permutations(events.values())]
    assert all(r == results[0] for r in results)
    merged, event = results[0]
    assert event == "call_analyzed" and merged["call_status"] == "ended"
    assert merged["duration_ms"] == 30_000 and merged["call_analysis"]["call_summary"].startswith("The caller")
    assert merged["metadata"] == {"source": "test"}  # only call_started said it; the later nulls do not erase it
    call = load_call_object(merged)
    assert call.duration_ms == 30_000 and call.cost_cents == 4.56


def test_a_later_status_wins_and_nested_objects_merge():
    started = {"call_id": CALL_ID, "call_status": "ongoing", "latency": {"e2e": {"p50": 800}}}
    ended = {"call_id": CALL_ID, "call_status": "ended", "latency": {"llm": {"p50": 500}, "e2e": None}}
    merged, event = merge_deliveries([(None, ended), (None, started)])
    assert event is None and merged["call_status"] == "ended"
    assert merged["latency"] == {"e2e": {"p50": 800}, "llm": {"p50": 500}}


# --------------------------------------------------------------------------- rca import retell
def test_one_list_with_ended_and_analyzed_is_one_row(scratch, tmp_path, capsys):
    events = lifecycle()
    dump = _write(tmp_path, "dump.json", [events["call_ended"], events["call_analyzed"]])
    out = _import(capsys, scratch, dump)  # was: UNIQUE constraint failed: calls.retell_call_id (a traceback)
    assert f"imported 1 rows into calls from {dump} ({CALL_ID}, 0 tool calls)" in out
    [row] = _rows(scratch)
    assert (row["status"], row["call_status"], row["duration_ms"], row["duration_sec"]) == ("analyzed", "ended", 30_000, 30)
    assert row["summary"] == "The caller asked for an appointment." and row["call_successful"] == 1
    assert _count(scratch, "retell_deliveries") == 2


def test_glob_order_files_give_the_full_call_and_any_order_the_same_rows(scratch, tmp_path, capsys):
    events = lifecycle()
    files = {e: _write(tmp_path, f"{name}.json", events[e]) for e, name in
             (("call_analyzed", "a_analyzed"), ("call_ended", "b_ended"), ("call_started", "c_started"))}
    _import(capsys, scratch, *files.values())  # the order a shell glob gives: analyzed, ended, started
    [row] = _rows(scratch)
    assert (row["status"], row["duration_ms"], row["disconnection_reason"]) == ("analyzed", 30_000, "user_hangup")
    assert row["summary"] == "The caller asked for an appointment." and row["cost_cents"] == 5
    assert json.loads(row["raw"])["metadata"] == {"source": "test"}
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    for event in ("call_started", "call_ended", "call_analyzed"):  # lifecycle order, one run each
        _import(capsys, other, files[event])
    assert _rows(other) == [row]


def test_reimport_gives_the_same_rows(scratch, tmp_path, capsys):
    events = lifecycle()
    second = lifecycle("call_" + "9" * 27)
    dump = _write(tmp_path, "all.json", [*events.values(), second["call_started"]])
    _import(capsys, scratch, dump)
    first, deliveries = _rows(scratch), _count(scratch, "retell_deliveries")
    assert [r["status"] for r in first] == ["ongoing", "analyzed"] and deliveries == 4
    for _ in range(2):
        _import(capsys, scratch, dump)
        _import(capsys, scratch, _write(tmp_path, "ended.json", events["call_ended"]))  # one of them again, alone
    assert _rows(scratch) == first and _count(scratch, "retell_deliveries") == deliveries


def test_a_late_poorer_delivery_in_a_later_run_changes_nothing(scratch, tmp_path, capsys):
    events = lifecycle()
    _import(capsys, scratch, _write(tmp_path, "analyzed.json", events["call_analyzed"]))
    before = _rows(scratch)
    _import(capsys, scratch, _write(tmp_path, "started.json", events["call_started"]))
    after = _rows(scratch)
    assert [{k: v for k, v in r.items() if k != "raw"} for r in after] == [
        {k: v for k, v in r.items() if k != "raw"} for r in before]
    assert json.loads(after[0]["raw"])["metadata"] == {"source": "test"}  # what only call_started said is added


@pytest.mark.parametrize(("call_status", "event", "status"), [
    ("registered", "call_started", "inbound"),
    ("ongoing", "call_started", "ongoing"),
    ("not_connected", "call_ended", "failed"),
    ("error", "call_ended", "failed"),
    ("ended", "call_ended", "completed"),
    ("ended", "call_analyzed", "analyzed"),
    ("ended", None, "completed"),
])
def test_every_retell_call_status_maps_to_the_calls_vocabulary(call_status, event, status, scratch, tmp_path, capsys):
    reason = {"not_connected": "dial_no_answer", "error": "error_llm_websocket_open"}.get(call_status)
    call = PhoneCallResponse(call_id=CALL_ID, agent_id="agent_1", agent_version=1, call_type="phone_call",
                             direction="outbound", from_number="+4930123456780", to_number="+4915112345678",
                             call_status=call_status, start_timestamp=START_MS, disconnection_reason=reason)
    document = call.model_dump(mode="json") if event is None else {"event": event, "call": call.model_dump(mode="json")}
    _import(capsys, scratch, _write(tmp_path, "call.json", document))
    [row] = _rows(scratch)
    assert (row["status"], row["call_status"]) == (status, call_status)
    assert set(importer.CALL_ROW_STATUS) == set(PhoneCallResponse.model_fields["call_status"].annotation.__args__)


def _sample_lifecycle(shared_data) -> dict[str, dict]:
    """The real sample as its three deliveries: call_started holds what Retell knows when the call starts."""
    sample = json.loads((shared_data / SAMPLE).read_text(encoding="utf-8"))
    started_keys = set(PhoneCallResponse.model_fields) - {
        "end_timestamp", "duration_ms", "disconnection_reason", "transcript", "transcript_object",
        "transcript_with_tool_calls", "latency", "call_cost", "call_analysis", "llm_token_usage",
        "collected_dynamic_variables", "recording_url", "recording_multi_channel_url", "public_log_url"}
    started = {k: v for k, v in sample.items() if k in started_keys} | {"call_status": "ongoing"}
    PhoneCallResponse.model_validate(started)
    ended = {k: v for k, v in sample.items() if k != "call_analysis"}
    return {"call_started": {"event": "call_started", "call": started},
            "call_ended": {"event": "call_ended", "call": ended},
            "call_analyzed": {"event": "call_analyzed", "call": sample}}


def test_the_real_sample_delivered_three_times(scratch, shared_data, tmp_path, capsys):
    events = _sample_lifecycle(shared_data)
    files = [_write(tmp_path, f"{i}.json", events[e]) for i, e in enumerate(("call_analyzed", "call_ended", "call_started"))]
    out = _import(capsys, scratch, *files)
    assert out.count(f"({SAMPLE_ID}, 2 tool calls)") == 3
    [row] = _rows(scratch)
    assert (row["status"], row["call_status"], row["duration_ms"], row["cost_cents"]) == ("analyzed", "ended", 35_303, 5)
    assert row["sentiment"] == "Negative" and row["summary"].startswith("The user, [NAME]")  # masked by default
    assert "Max" not in row["summary"] and "Muster" not in row["summary"]
    alone = f"sqlite:///{tmp_path / 'alone.sqlite'}"
    _import(capsys, alone, shared_data / SAMPLE)  # the bare get-call object gives the same call
    [single] = _rows(alone)
    assert {k: single[k] for k in ROW_COLUMNS if k not in ("status", "raw")} == {
        k: row[k] for k in ROW_COLUMNS if k not in ("status", "raw")}
    assert single["status"] == "completed"  # a bare object is no call_analyzed delivery (syncCallToDatabase)
    assert "Max" not in row["raw"] and "recordings.invalid" not in row["raw"]


@pytest.mark.mariadb
def test_deliveries_merge_on_a_mariadb_scratch(mariadb_url, shared_data, tmp_path, capsys, monkeypatch):
    admin_url = mariadb_url.rsplit("/", 1)[0]
    name = f"rca_scratch_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    target = f"{admin_url}/{name}"
    monkeypatch.setenv("RCA_DATABASE_URL", mariadb_url)
    monkeypatch.setenv("RCA_PROGRESS", "0")
    admin = sa.create_engine(admin_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        events = _sample_lifecycle(shared_data)
        dump = _write(tmp_path, "dump.json", [events["call_analyzed"], events["call_ended"], events["call_started"]])
        for _ in range(2):
            _import(capsys, target, dump, extra=("--writable-scratch",))
        [row] = _rows(target)
        assert (row["status"], row["duration_ms"], row["call_successful"]) == ("analyzed", 35_303, 0)
        assert _count(target, "retell_deliveries") == 3
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()
