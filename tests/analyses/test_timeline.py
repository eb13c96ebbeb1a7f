"""Call timelines: the real Retell sample, honest thin records, DB traces, the demo world, CLI and notebook."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from rca_toolkit import cli
from rca_toolkit.runs import plots
from rca_toolkit.errors import NotFound
from rca_toolkit.sources.formats.exports import read_call_history
from rca_toolkit.sources.loaders import CallTrace
from rca_toolkit.analyses.calls.timeline import attribute, build_spans, build_timeline, load_timeline

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "retell_call_a3d98bb4522f6f1e0bfac5964b1.json"
SAMPLE_ID = "call_a3d98bb4522f6f1e0bfac5964b1"
REF_ID = "call_ab45deadd7db66c4956d5243861"
DEAD_AIR_ID = "call_4539054ee4892c6abce031bdf95"
BROKEN_RAW_ID = "call_" + "4" * 27


@pytest.fixture(scope="module")
def sample_path(shared_data):
    return shared_data / SAMPLE


@pytest.fixture(scope="module")
def sample(sample_path):
    return build_timeline(sample_path)


def _words(text, start, end):
    parts = text.split()
    step = (end - start) / len(parts)
    return [{"word": w + " ", "start": start + i * step, "end": start + (i + 1) * step} for i, w in enumerate(parts)]


def retell_call(call_id, duration_ms, utterances, tool_calls=()):
    """A small Retell object: utterances (role, text, start, end), tools (name, start, end, args, content)."""
    twt, transcript = [], []
    for role, text, start, end in utterances:
        transcript.append({"role": role, "content": text, "words": _words(text, start, end)})
    for i, (name, start, end, args, content) in enumerate(tool_calls):
        twt += [{"role": "tool_call_invocation", "tool_call_id": f"t{i}", "name": name, "arguments": json.dumps(args),
                 "time_sec": start},
                {"role": "tool_call_result", "tool_call_id": f"t{i}", "successful": True, "content": content, "time_sec": end}]
    return {"call_id": call_id, "call_status": "ended", "disconnection_reason": "user_hangup", "duration_ms": duration_ms,
            "start_timestamp": 1760781600000, "transcript_object": transcript, "transcript_with_tool_calls": twt}


OVERLAP_CALL = retell_call("call_" + "1" * 27, 20000, [
    ("agent", "Guten Tag wie kann ich helfen", 0.4, 4.0),
    ("user", "Ich hätte gern einen Termin morgen", 3.5, 7.0),  # barges in: 0.5 s overlap
    ("agent", "Einen Moment ich prüfe", 7.8, 9.0),
    ("agent", "Morgen um zehn ist frei", 11.0, 13.0),
    ("user", "Super danke", 13.6, 14.5),
], [("check_availability_v17", 8.5, 10.5, {"datum": "25.10.2025"}, '{"success":true,"data":{"available":true}}')])


# --------------------------------------------------------------------------- the real Retell sample
def test_real_sample_tool_calls_and_duration(sample):
    out = sample.to_dict()
    assert out["call_id"] == SAMPLE_ID and out["duration_s"] == 35.303
    assert [(t["name"], t["family"], t["start_s"], t["end_s"], t["latency_s"], t["ok"]) for t in out["tool_calls"]] == [
        ("initialize_call", "initialize_call", 0.595, 1.619, 1.024, False),
        ("check_availability_v17", "check_availability", 17.041, 17.989, 0.948, False)]
    assert out["known"]["disconnection_reason"] == "user_hangup"


def test_real_sample_has_exactly_one_dead_air_finding(sample):
    dead = [f for f in sample.to_dict()["findings"] if f["kind"] == "dead_air"]
    assert len(dead) == 1
    assert (dead[0]["start_s"], dead[0]["end_s"], dead[0]["seconds"]) == (19.68, 30.955, 11.275)
    assert dead[0]["removable_s"] == 8.275  # beyond the 3 s threshold
    assert "check_availability_v17 failed" in dead[0]["label"]
    assert {f["kind"] for f in sample.to_dict()["findings"]} == {"dead_air", "failed_tool", "bad_argument"}
    (bad,) = [f for f in sample.to_dict()["findings"] if f["kind"] == "bad_argument"]
    assert bad["label"] == "check_availability_v17: datum='04.10.2023' lies before the call's date 2025-10-24"


def test_real_sample_attribution(sample):
    ms = sample.attribution.ms
    assert sum(ms.values()) == 35303
    assert ms["dead_air"] == 11275 and ms["tool_wait_silent"] == 1024  # initialize_call ran before the greeting
    assert ms["overlap"] == 0 and ms["tail"] == 900  # 34.403 -> 35.303
    assert sample.attribution.tool_coverage == {"tool_running_s": 1.972, "covered_by_speech_s": 0.948, "silent_s": 1.024}
    # what-if: dead air beyond 3 s (8.275) and the silent failed initialize_call (1.024) removed
    assert sample.what_if.duration_s == 26.004 and sample.what_if.removed_s == 9.299


def test_renderings_agree(sample):
    text, md, page = sample.to_text(), sample.to_markdown(), sample._repr_html_()
    for rendering in (text, md, page):
        assert SAMPLE_ID in rendering and "dead_air" in rendering and "Call context not found" in rendering
    assert json.loads(sample.to_json())["what_if"]["duration_s"] == 26.004
    assert "SYNTHETIC" not in text and sample.banner() == "Data: Retell call object."


def test_waterfall_artists(sample):
    fig = plots.plot_waterfall(sample)
    ax = fig.axes[0]
    gids = [c.get_gid() for c in ax.collections]
    assert gids.count("tool:initialize_call:failed") == 1 and "tool:check_availability_v17:failed" in gids
    assert {"speech:caller", "speech:agent", "finding:dead_air", "finding:failed_tool"} <= set(gids)
    bars = {p.get_gid(): p.get_width() for p in ax.patches}
    assert bars == {"whatif:actual": 35.303, "whatif:projected": 26.004}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["caller", "agent", "tools", "findings", "actual", "what-if"]


# --------------------------------------------------------------------------- attribution sums
def _thin_trace(shared_data) -> CallTrace:
    """The real export row of the 144 s call: a session and nothing else (no trace, no transcript)."""
    history = read_call_history(shared_data / "call_history_2025-10-24_184034.json")
    row = history[history["call_id"] == REF_ID].iloc[0]
    session = {k: row[k] for k in ("call_id", "started_at", "duration_ms", "call_status", "disconnection_reason",
                                   "agent_version")}
    empty = pd.DataFrame()
    return CallTrace(REF_ID, session, empty, empty, empty, empty, None,
                     ["Retell call object (calls.raw empty)", "function traces", "transcript segments", "events"])


def test_thin_record_is_honest(shared_data):
    tl = build_timeline(_thin_trace(shared_data))
    out = tl.to_dict()
    assert out["duration_s"] == 144.481
    assert out["attribution"] == {"unaccounted": 144.481}
    assert out["findings"] == [] and out["tool_calls"] == []
    assert out["what_if"]["duration_s"] == 144.481 and out["what_if"]["removed"] == []
    assert out["known"]["disconnection_reason"] == "agent_hangup" and out["known"]["agent_version"] == 106
    assert out["known"]["started_at"] == "2025-10-18T10:09:27+00:00"
    assert any("no transcript" in g for g in out["data_gaps"])
    assert any("no evidence for phase timings" in n for n in out["notes"])
    fig = plots.plot_waterfall(tl)
    assert "no-data" in [t.get_gid() for t in fig.axes[0].texts]


def _db_trace() -> CallTrace:
    """A trace as loaders.call_trace returns it when calls.raw is empty (segments on the session clock)."""
    t0 = pd.Timestamp("2025-10-18 14:03:59", tz="UTC")
    seg = pd.DataFrame({
        "occurred_at": [t0 + pd.Timedelta(seconds=s) for s in (0.5, 4.0, 8.9, 28.0)],
        "call_offset_ms": [500, 4000, 8900, 28000], "duration_ms": [3000, 4000, 1500, 1200],
        "role": ["agent", "user", "agent", "agent"], "segment_sequence": [1, 2, 3, 4],
        "text": ["Guten Tag", "Einen Termin bitte", "Einen Moment", "Hallo?"]})
    traces = pd.DataFrame({
        "started_at": [t0 + pd.Timedelta(seconds=9.0)], "completed_at": [t0 + pd.Timedelta(seconds=11.5)],
        "duration_ms": [2500], "function_name": ["check_availability"], "status": ["success"], "error": [None],
        "input_params": [{"datum": "2025-10-20"}], "output_result": [{"success": False, "error": "not available"}]})
    errors = pd.DataFrame({"occurred_at": [t0 + pd.Timedelta(seconds=11.5)], "call_offset_ms": [11500],
                           "error_code": ["calcom_409"], "error_message": ["slot taken"]})
    session = {"call_id": DEAD_AIR_ID, "started_at": t0, "ended_at": t0 + pd.Timedelta(seconds=32),
               "duration_ms": 32000, "call_status": "ended", "disconnection_reason": "user_hangup", "agent_version": 106}
    return CallTrace(DEAD_AIR_ID, session, pd.DataFrame(), traces, seg, errors, None,
                     ["Retell call object (calls.raw empty)", "events"], attrs={"synthetic": True})


def test_db_trace_without_raw_uses_segments_and_traces():
    tl = build_timeline(_db_trace())
    assert tl.source == "database trace" and tl.synthetic and tl.banner().startswith("**SYNTHETIC DEMO DATA**")
    spans = tl.spans
    assert spans["kind"].value_counts().to_dict() == {"agent_speech": 3, "caller_speech": 1, "tool": 1, "error": 1}
    (tool,) = tl.to_dict()["tool_calls"]
    assert (tool["start_s"], tool["end_s"], tool["latency_s"], tool["ok"]) == (9.0, 11.5, 2.5, False)
    assert tool["error"] == "not available"  # status success, but the result says success: false
    kinds = [(f.kind, f.start_s, f.end_s) for f in tl.findings]
    assert ("dead_air", 10.4, 28.0) in kinds and ("slow_tool", 9.0, 11.5) in kinds and ("failed_tool", 9.0, 11.5) in kinds
    assert tl.attribution.ms["dead_air"] == 17600 - 1100  # 10.4 -> 28.0 minus the silent tool wait 10.4 -> 11.5
    assert tl.attribution.ms["tool_wait_silent"] == 1100


def test_trace_status_and_missing_error_text():
    t0 = pd.Timestamp("2025-10-18 14:00", tz="UTC")
    traces = pd.DataFrame({
        "started_at": [t0 + pd.Timedelta(seconds=s) for s in (1, 3, 5)], "completed_at": [t0 + pd.Timedelta(seconds=2), pd.NaT, pd.NaT],
        "duration_ms": [1000, 800, None], "function_name": ["initialize_call", "check_availability_v17", "book_appointment"],
        "status": ["success", "error", "pending"], "error": pd.array([pd.NA, pd.NA, pd.NA], dtype="string"),
        "output_result": [None, None, None]})
    trace = CallTrace("call_" + "2" * 27, {"started_at": t0, "duration_ms": 9000}, pd.DataFrame(), traces,
                      pd.DataFrame(), pd.DataFrame(), None, [])
    got = [(t["name"], t["end_s"], t["ok"], t["error"]) for t in build_timeline(trace).to_dict()["tool_calls"]]
    assert got == [("initialize_call", 2.0, True, None), ("check_availability_v17", 3.8, False, "status error"),
                   ("book_appointment", 5.0, False, "status pending")]


def test_events_stand_in_for_missing_function_traces():
    t0 = pd.Timestamp("2025-10-18 14:00", tz="UTC")
    events = pd.DataFrame({
        "event_type": ["flow_transition", "function_call", "function_call"], "call_offset_ms": [0, 1200, 6000],
        "response_time_ms": [None, 900, 2500], "function_name": [None, "initialize_call", "check_availability_v17"],
        "function_status": [None, "success", "success"], "to_node": ["greeting", None, None],
        "function_arguments": [None, {}, {"datum": "20.10.2025"}],
        "function_response": [None, {"success": True}, {"success": False, "error": "Cal.com HTTP 500"}]})
    trace = CallTrace("call_" + "3" * 27, {"started_at": t0, "duration_ms": 10000}, events, pd.DataFrame(),
                      pd.DataFrame(), pd.DataFrame(), None, ["function traces"])
    tl = build_timeline(trace)
    got = [(t["name"], t["start_s"], t["end_s"], t["ok"], t["error"]) for t in tl.to_dict()["tool_calls"]]
    assert got == [("initialize_call", 1.2, 2.1, True, None), ("check_availability_v17", 6.0, 8.5, False, "Cal.com HTTP 500")]
    assert "no function traces: tool calls taken from function_call events (offset + response_time_ms)" in tl.notes
    assert tl.spans[tl.spans["kind"] == "node"]["label"].tolist() == ["greeting"]
    assert tl.attribution.ms == {"tool_running": 3400, "unaccounted": 6600}  # no transcript: no speech/silence split


@pytest.mark.parametrize("dead_air_s", [0.5, 1.0, 3.0, 10.0])
def test_categories_sum_exactly_to_the_duration(shared_data, sample_path, dead_air_s):
    sources = [sample_path, json.loads(sample_path.read_text()), OVERLAP_CALL, _db_trace(), _thin_trace(shared_data)]
    for source in sources:
        tl = build_timeline(source, dead_air_s=dead_air_s)
        assert sum(tl.attribution.ms.values()) == round(tl.duration_s * 1000), tl.call_id
        assert abs(sum(tl.to_dict()["attribution"].values()) - tl.duration_s) < 1e-9
        assert all(v >= 0 for v in tl.attribution.ms.values())


def test_overlap_and_covered_tool_wait():
    att = attribute(build_spans(OVERLAP_CALL), 20.0)
    assert att.ms["overlap"] == 500
    assert att.ms["agent_response_latency"] == 800  # 7.0 -> 7.8 after the caller turn
    assert att.ms["tool_wait_silent"] == 1500 and att.tool_coverage["covered_by_speech_s"] == 0.5  # 9.0 -> 10.5 silent
    assert att.ms["tail"] == 5500
    assert sum(att.ms.values()) == 20000


# --------------------------------------------------------------------------- through the real loaders
@pytest.fixture(scope="module")
def small_db(tmp_path_factory, sample_path):
    """A SQLite file with the contract's tables: the sample call in calls.raw (double encoded, session stuck
    in_progress as in production) and a call with only segments, a trace and an error row (Berlin wall time)."""
    import sqlalchemy as sa

    from rca_toolkit.sources import schema

    url = f"sqlite:///{tmp_path_factory.mktemp('timeline') / 'small.sqlite'}"
    engine = sa.create_engine(url)
    names = ["retell_call_sessions", "retell_call_events", "retell_function_traces", "retell_transcript_segments",
             "retell_error_log", "calls"]
    schema.metadata.create_all(engine, tables=[schema.metadata.tables[n] for n in names])
    t = schema.metadata.tables
    wall = lambda s: datetime(2025, 10, 18, 16, 3, 59) + timedelta(seconds=s)  # noqa: E731
    raw = sample_path.read_text(encoding="utf-8")
    with engine.begin() as conn:
        conn.execute(t["retell_call_sessions"].insert(), [
            {"id": "a" * 36, "call_id": SAMPLE_ID, "started_at": datetime(2025, 10, 24, 11, 20, 37), "call_status": "in_progress"}])
        conn.execute(t["retell_call_sessions"].insert(), [
            {"id": "b" * 36, "call_id": DEAD_AIR_ID, "started_at": wall(0), "ended_at": wall(32), "duration_ms": 32000,
             "call_status": "ended", "disconnection_reason": "user_hangup", "agent_version": 106}])
        conn.execute(t["calls"].insert(), [{"retell_call_id": SAMPLE_ID, "company_id": 1, "raw": json.dumps(raw)}])
        conn.execute(t["retell_call_sessions"].insert(), [
            {"id": "c" * 36, "call_id": BROKEN_RAW_ID, "started_at": wall(0), "duration_ms": 5000, "call_status": "ended"}])
        conn.execute(t["calls"].insert(), [{"retell_call_id": BROKEN_RAW_ID, "company_id": 1,
                                            "raw": json.dumps({"event": "call_inbound", "call_inbound": {}})}])
        conn.execute(t["retell_transcript_segments"].insert(), [
            {"call_session_id": "b" * 36, "occurred_at": wall(off / 1000), "call_offset_ms": off, "duration_ms": dur,
             "role": role, "text": text, "segment_sequence": i}
            for i, (off, dur, role, text) in enumerate([(500, 3000, "agent", "Guten Tag"), (4000, 4000, "user", "Einen Termin"),
                                                       (8900, 1500, "agent", "Einen Moment"), (28000, 1200, "agent", "Hallo?")])])
        conn.execute(t["retell_function_traces"].insert(), [
            {"call_session_id": "b" * 36, "function_name": "check_availability", "execution_sequence": 1,
             "started_at": wall(9.0), "completed_at": wall(11.5), "duration_ms": 2500, "status": "error",
             "error_details": json.dumps({"error": "Cal.com HTTP 409"})}])
        conn.execute(t["retell_error_log"].insert(), [
            {"call_session_id": "b" * 36, "error_code": "calcom_409", "error_type": "api_error", "occurred_at": wall(11.5),
             "call_offset_ms": 11500, "error_message": "slot taken"}])
    engine.dispose()
    return url


def test_db_with_calls_raw_reads_the_retell_object(small_db, sample):
    tl = load_timeline(SAMPLE_ID, db=small_db)
    assert tl.source == "calls.raw" and not tl.synthetic
    assert tl.to_dict()["tool_calls"] == sample.to_dict()["tool_calls"]
    assert tl.to_dict()["key_numbers"] == {"duration (s)": tl.duration_s, "findings": len(tl.findings),
                                          **({"what-if (s)": round(tl.what_if.duration_s, 1)} if tl.what_if.removed else {})}
    assert tl.attribution.ms == sample.attribution.ms
    assert "session call_status is 'in_progress' but Retell says 'ended' (the timeline uses Retell's)" in tl.notes


def test_db_without_raw_goes_through_segments(small_db):
    tl = load_timeline(DEAD_AIR_ID, db=small_db)
    assert tl.source == "database trace" and tl.duration_s == 32.0
    assert tl.known["started_at"] == "2025-10-18T14:03:59+00:00"  # 16:03:59 Berlin wall time
    (tool,) = tl.to_dict()["tool_calls"]
    assert (tool["start_s"], tool["end_s"], tool["ok"], tool["error"]) == (9.0, 11.5, False, "Cal.com HTTP 409")
    dead = [f for f in tl.findings if f.kind == "dead_air"]
    assert [(f.start_s, f.end_s, f.seconds) for f in dead] == [(10.4, 28.0, 17.6)]
    assert (tl.spans["kind"] == "error").sum() == 1
    assert sum(tl.attribution.ms.values()) == 32000
    assert any("4 transcript segments covering 30 % of the call" in n for n in tl.notes)  # 9.7 s of 32 s


def test_db_with_a_broken_raw_falls_back_to_rows(small_db):
    tl = load_timeline(BROKEN_RAW_ID, db=small_db)
    assert tl.source == "database trace" and tl.attribution.ms == {"unaccounted": 5000}
    assert any(n.startswith("calls.raw is not a Retell call object (webhook event 'call_inbound'") for n in tl.notes)


def test_unknown_call_in_the_db_is_not_found(small_db):
    with pytest.raises(NotFound, match="not found in retell_call_sessions"):
        load_timeline("call_" + "0" * 27, db=small_db)


@pytest.mark.parametrize("pasted", [f"https://dashboard.retellai.com/call-history?history={DEAD_AIR_ID}",
                                    f"  {DEAD_AIR_ID.upper().replace('CALL_', 'call_')}\n", f"call_id={DEAD_AIR_ID.upper()};"])
def test_a_pasted_url_log_line_or_id_in_capitals_reads_the_call_it_holds_and_says_so(small_db, pasted, capsys):
    tl = load_timeline(pasted, db=small_db)
    assert tl.call_id == DEAD_AIR_ID and tl.notes[0] == f"read {DEAD_AIR_ID}: the call id in {pasted!r}"
    assert cli.main(["timeline", pasted, "--db", small_db]) == 0 and f"Call {DEAD_AIR_ID}: 32.000 s" in capsys.readouterr().out


@pytest.mark.parametrize("given, hint", [
    ("call_" + "0" * 27, "check the id (call_ + 27 hex characters) and the --db database"),
    (DEAD_AIR_ID[:-1], "it is no Retell call id (call_ + 27 lowercase hex characters): check it and the --db database"),
    (f"{DEAD_AIR_ID} {BROKEN_RAW_ID}", "it is no Retell call id"),  # two ids pasted: which one is not guessed
])
def test_an_id_that_is_not_there_says_whether_it_has_the_retell_shape(small_db, given, hint, capsys):
    assert cli.main(["timeline", given, "--db", small_db]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"call {given!r} not found in retell_call_sessions" in err and hint in err


# --------------------------------------------------------------------------- CLI
def test_cli_json_on_the_real_file(sample_path, capsys):
    assert cli.main(["timeline", SAMPLE_ID, "--retell-json", str(sample_path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["duration_s"] == 35.303 and [f["kind"] for f in out["findings"]].count("dead_air") == 1
    assert cli.main(["timeline", SAMPLE_ID, "--retell-json", str(sample_path), "--dead-air", "15"]) == 0
    assert "dead_air" not in capsys.readouterr().out.split("Findings:")[1].split("What-if")[0]


def test_cli_user_mistakes_are_one_line_exit_2(sample_path, tmp_path, capsys):
    assert cli.main(["timeline", REF_ID, "--retell-json", str(sample_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"holds call {SAMPLE_ID}, not {REF_ID}" in err
    assert cli.main(["timeline", REF_ID, "--retell-json", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_on_an_sdk_call_whose_tool_calls_have_no_time_sec(tmp_path, capsys):
    """Valid for Retell's SDK, no ``time_sec``: was ``ValueError: cannot convert float NaN to integer``."""
    from retell.types import PhoneCallResponse

    call_id = "call_" + "7" * 27
    speech = [("agent", "Guten Tag wie kann ich helfen", 0.5, 2.5), ("user", "Einen Termin heute bitte", 3.0, 4.5),
              ("agent", "Einen Moment ich prüfe", 5.0, 6.0), ("agent", "Leider ist nichts frei auf Wiederhören", 9.5, 12.0)]
    twt = [{"role": r, "content": t, "words": _words(t, a, b)} for r, t, a, b in speech[:3]]
    twt += [{"role": "tool_call_invocation", "tool_call_id": "t1", "name": "check_availability_v17", "type": "custom",
             "arguments": '{"datum": "24.10.2025"}'},
            {"role": "tool_call_result", "tool_call_id": "t1", "successful": True, "content": '{"success": false, "error": "busy"}'},
            {"role": "agent", "content": speech[3][1], "words": _words(*speech[3][1:])},
            {"role": "tool_call_invocation", "tool_call_id": "t2", "name": "end_call", "type": "end_call", "arguments": "{}"}]
    call = PhoneCallResponse(call_id=call_id, agent_id="agent_1", agent_version=3, call_type="phone_call",
                             call_status="ended", direction="inbound", from_number="anonymous", to_number="+4930123456780",
                             start_timestamp=1761297670702, duration_ms=13_000, transcript_with_tool_calls=twt)
    path = tmp_path / "sdk_call.json"
    path.write_text(call.to_json(), encoding="utf-8")
    assert cli.main(["timeline", call_id, "--retell-json", str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(t["name"], t["start_s"], t["end_s"], t["ok"], t["kind"], t["placed"]) for t in out["tool_calls"]] == [
        ("check_availability_v17", 6.0, 6.0, False, "function", "words"), ("end_call", 12.0, None, True, "end_call", "words")]
    assert [f["label"] for f in out["findings"] if f["kind"] == "failed_tool"] == ["check_availability_v17 failed: busy"]
    assert any(g.startswith("2 tool calls (check_availability_v17, end_call) have no time_sec") for g in out["data_gaps"])
    assert plots.plot_waterfall(build_timeline(path)) is not None


# --------------------------------------------------------------------------- demo world
def test_demo_reference_call(demo_db, capsys):
    url, truth = demo_db
    assert cli.main(["timeline", REF_ID, "--db", url, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["duration_s"] - 144.5) <= 0.5
    assert out["duration_s"] == truth["reference_calls"][REF_ID]["duration_ms"] / 1000
    ref = truth["reference_calls"][REF_ID]
    (loop,) = [f for f in out["findings"] if f["kind"] == "loop"]
    assert loop["label"] == "re-asks the caller's name 7× with 7 check_customer call(s)"
    assert loop["seconds"] >= 90 and abs(loop["seconds"] - ref["loop"]["extra_span_s"]) < 0.5
    assert loop["details"]["iterations"] == ref["loop"]["iterations"] == 7
    assert loop["details"]["prompt_starts_s"] == ref["loop"]["prompt_starts_s"]
    assert out["what_if"]["duration_s"] <= 45
    assert out["what_if"]["duration_s"] <= ref["expected_without_extra_iterations_s"]
    tools = {t["family"]: t for t in out["tool_calls"]}
    assert tools["check_availability"]["latency_s"] * 1000 == ref["check_availability"]["latency_ms"]
    assert tools["book_appointment"]["ok"] is False
    (failed,) = [f for f in out["findings"] if f["kind"] == "failed_tool"]
    assert "1054 Unknown column 'created_by'" in failed["label"]  # the error log row, placed on the Retell clock
    # a long message is cut with an ellipsis in the label (it read "(Connection: mys)", as if the data ended there);
    # the details keep the whole of it
    assert failed["label"].endswith("'field list' (Connect…)")
    (logged,) = failed["details"]["error_log"]
    assert logged.startswith("42S22: SQLSTATE[42S22]") and logged.endswith("(Connection: mysql, SQL: insert into "
                                                                           "`appointments` (...) values (...))")
    assert tools["book_appointment"]["latency_s"] * 1000 == ref["book_appointment"]["latency_ms"]
    assert out["synthetic"] is True and out["source"] == "calls.raw"
    assert abs(sum(out["attribution_ms"].values()) - out["duration_s"] * 1000) < 1e-6


def test_demo_dead_air_call(demo_db, capsys):
    url, _truth = demo_db
    assert cli.main(["timeline", DEAD_AIR_ID, "--db", url, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = _truth["reference_calls"][DEAD_AIR_ID]["dead_air"]
    (dead,) = [f for f in out["findings"] if f["kind"] == "dead_air"]
    assert (dead["start_s"], dead["end_s"], dead["seconds"]) == (ref["from_s"], ref["to_s"], ref["gap_s"]) == (8.4, 27.7, 19.3)
    assert out["attribution"]["dead_air"] == 19.3
    assert sum(out["attribution_ms"].values()) == round(out["duration_s"] * 1000)


def test_demo_unknown_call_is_one_line_and_odd_records_are_flagged(demo_db, capsys):
    url, _truth = demo_db
    assert cli.main(["timeline", "call_" + "0" * 27, "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not found" in err
    typo = "call_de1656496a133e2cbcd886664988"  # 33 characters, closed by the cleanup job, no duration
    assert cli.main(["timeline", typo, "--db", url, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["duration_s"] is None and out["attribution"] == {} and out["what_if"]["duration_s"] is None
    assert any("is malformed, not a Retell id (P4)" in n for n in out["notes"])
    assert any("system_timeout was written by the app's cleanup job (P20)" in n for n in out["notes"])
    assert "duration unknown: the session has neither duration_ms nor ended_at" in out["data_gaps"]


# --------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_notebook_runs_with_the_real_file(sample_path, tmp_path):
    papermill = pytest.importorskip("papermill")
    import nbformat

    out = tmp_path / "call_timeline.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "call_timeline.ipynb"), str(out), kernel_name="python3",
                               parameters={"call_id": SAMPLE_ID, "source": str(sample_path), "dead_air_s": 5.0},
                               progress_bar=False, cwd=str(ROOT))
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert SAMPLE_ID in html and "<td>dead_air</td>" in html and "11.3" in html  # dead air, shown to 0.1 s
    assert ">NaN<" not in html and ">None<" not in html  # one mark for no value
    assert any("image/png" in o.get("data", {}) for o in outputs)
    from rca_toolkit.runs import render  # the Markdown report: the timeline's tables as Markdown, not its raw HTML

    md, _ = render.render_markdown(nb, title="call_timeline")
    assert "| dead_air |" in md and "### Where the time went" in md and "<table" not in md and "<h4>" not in md


def test_committed_notebook_has_no_outputs_and_no_definitions():
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "call_timeline.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    for cell in code:
        for word in ("def ", "class ", "try:", "SELECT ", "select "):
            assert word not in cell.source, (word, cell.source)
