"""Retell call objects as Retell's official SDK (``retell-sdk``) describes them: every transcript entry
the SDK's unions name, phone and web calls, the webhook envelopes, tool calls without ``time_sec``,
built-in tool types, the scrubbed transcript alone, pre-/post-session tool calls, and the real sample
through the SDK's model. Inputs are built with the SDK's own models and dumped with ``.to_json()`` /
``.model_dump(mode="json")``.
"""

from __future__ import annotations

import copy
import json
import typing

import pandas as pd
import pydantic
import pytest
from retell.types import PhoneCallResponse, WebCallResponse

from rca_toolkit.analyses.calls.timeline import build_timeline
from rca_toolkit.errors import InputFormatError
from rca_toolkit.sources.formats.retell import load_call_object, sdk_model

SAMPLE = "retell_call_a3d98bb4522f6f1e0bfac5964b1.json"
CALL_ID = "call_" + "e" * 27
START_MS = 1761297670702  # 2025-10-24 11:21:10.702 +02:00, the sample's start


def _words(text: str, start: float, end: float) -> list[dict]:
    parts = text.split()
    step = (end - start) / len(parts)
    return [{"word": w, "start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3)}
            for i, w in enumerate(parts)]


def _say(role: str, text: str, start: float, end: float) -> dict:
    return {"role": role, "content": text, "words": _words(text, start, end)}


def _invoke(tid: str, name: str, tool_type: str | None = "custom", args: str = "{}") -> dict:
    entry = {"role": "tool_call_invocation", "tool_call_id": tid, "name": name, "arguments": args}
    return entry if tool_type is None else {**entry, "type": tool_type}


def _result(tid: str, content: str = '{"success": true}', successful: bool = True) -> dict:
    return {"role": "tool_call_result", "tool_call_id": tid, "content": content, "successful": successful}


# one entry per role the SDK's transcript unions name, in the order a call would hold them
ROLE_ENTRIES = {
    "agent": _say("agent", "Guten Tag wie kann ich helfen", 0.5, 2.5),
    "user": _say("user", "Einen Termin bitte", 3.0, 4.0),
    "node_transition": {"role": "node_transition", "former_node_id": "begin", "former_node_name": "Begin",
                        "new_node_id": "n1", "new_node_name": "Check Availability", "transition_type": "normal"},
    "tool_call_invocation": _invoke("t1", "check_availability_v17", "custom", '{"datum": "25.10.2025"}'),
    "tool_call_result": _result("t1"),
    "dtmf": {"role": "dtmf", "digit": "1"},
    "sms": {"role": "sms", "content": "ok", "time_sec": 6.0},
    "injected": {"role": "injected", "content": "VIP caller", "time_sec": 6.5},
    "transfer_target": _say("transfer_target", "Salon hier", 8.0, 9.0),
}


def _members(annotation) -> list:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _members(arg)]


def sdk_roles(model, key: str) -> set[str]:
    """The roles the SDK's models allow in the transcript list ``key`` (read from the installed SDK)."""
    return {role for member in _members(model.model_fields[key].annotation)
            for role in typing.get_args(member.model_fields["role"].annotation)}


LIST_KEYS = [k for k in PhoneCallResponse.model_fields if "transcript" in k and k != "transcript"]


def sdk_call(model=PhoneCallResponse, **fields):
    """A call object validated by the SDK's model (phone or web call)."""
    base = dict(call_id=CALL_ID, agent_id="agent_1", agent_version=42, call_status="ended",
                start_timestamp=START_MS, end_timestamp=START_MS + 20_000, duration_ms=20_000,
                disconnection_reason="user_hangup")
    if model is PhoneCallResponse:
        base.update(call_type="phone_call", direction="inbound", from_number="anonymous", to_number="+4930123456780")
    else:
        base.update(call_type="web_call", access_token="token")
    return model(**{**base, **fields})


# --------------------------------------------------------------------------- every shape the SDK describes
def test_the_list_keys_are_the_sdks():
    assert set(LIST_KEYS) == {"transcript_object", "transcript_with_tool_calls", "scrubbed_transcript_with_tool_calls",
                              "pre_session_transcript_with_tool_calls", "post_session_transcript_with_tool_calls",
                              "scrubbed_pre_session_transcript_with_tool_calls",
                              "scrubbed_post_session_transcript_with_tool_calls"}


@pytest.mark.parametrize("model", [PhoneCallResponse, WebCallResponse])
@pytest.mark.parametrize("key", LIST_KEYS)
def test_every_entry_the_sdk_describes_is_read(model, key):
    roles = sdk_roles(model, key)
    assert roles <= set(ROLE_ENTRIES), f"the SDK names roles this test does not build: {roles - set(ROLE_ENTRIES)}"
    call = sdk_call(model, **{key: [ROLE_ENTRIES[r] for r in ROLE_ENTRIES if r in roles]})
    for shape in (call.to_json(), call.model_dump(mode="json"), {"event": "call_ended", "call": call.to_dict()}):
        parsed = load_call_object(shape)
        assert parsed.call_id == CALL_ID and parsed.call_type == call.call_type
        assert sdk_model(parsed.raw) is model
        if key == "transcript_object":
            assert parsed.utterances["role"].tolist() == ["agent", "user", "transfer_target"]
            assert len(parsed.words) == 11  # 6 + 3 + 2 words
        elif "session" in key:  # before the session started / after the analysis: not on the call's clock
            assert parsed.tool_calls.empty
            phase = "pre_session" if "pre_session" in key else "post_session"
            assert parsed.session_tool_calls[["phase", "name", "ok"]].values.tolist() == [
                [phase, "check_availability_v17", True]]
        else:
            assert parsed.tool_source == key
            tools = parsed.tool_calls
            assert tools[["name", "family", "type", "kind", "ok", "placed"]].values.tolist() == [
                ["check_availability_v17", "check_availability", "custom", "function", True, "words"]]
            assert tools.loc[0, "start_s"] == tools.loc[0, "end_s"] == 4.0  # after "Einen Termin bitte"
            assert parsed.node_transitions[["new_node_name", "time_s", "placed"]].values.tolist() == [
                ["Check Availability", 4.0, "words"]]
            assert parsed.utterances["role"].tolist() == ["agent", "user", "transfer_target"]
            timeline = build_timeline(parsed)
            assert timeline.to_dict()["tool_calls"][0]["placed"] == "words"
            assert not any("tool calls unknown" in g for g in timeline.data_gaps)


@pytest.mark.parametrize("event", ["call_started", "call_ended", "call_analyzed"])
def test_webhook_envelopes_of_sdk_objects(event):
    call = sdk_call(call_status="ongoing" if event == "call_started" else "ended")
    for envelope in ({"event": event, "call": call.to_dict()}, {"event_type": event, "call": call.to_dict()},
                     json.dumps({"event": event, "call": call.to_json()})):  # the call itself a JSON string
        parsed = load_call_object(envelope)
        assert (parsed.call_id, parsed.event) == (CALL_ID, event)
    assert load_call_object(call.to_json()).event is None


def test_extra_fields_are_kept_and_a_started_call_needs_no_more_than_retell_sends():
    started = {"call_id": CALL_ID, "call_type": "phone_call", "agent_id": "agent_1", "call_status": "registered",
               "from_number": "anonymous", "to_number": "+4930123456780", "direction": "inbound",
               "a_field_retell_adds_later": {"x": 1}}
    parsed = load_call_object({"event": "call_started", "call": started})
    assert parsed.raw["a_field_retell_adds_later"] == {"x": 1} and parsed.duration_ms is None
    entries = [dict(_invoke("t1", "x"), time_sec=1.5, metadata={"response_id": 3})]
    parsed = load_call_object(sdk_call(transcript_with_tool_calls=entries).to_json())
    assert parsed.raw["transcript_with_tool_calls"][0]["time_sec"] == 1.5  # the SDK keeps it as an extra field
    assert parsed.tool_calls.loc[0, "placed"] == "time_sec"


def test_tolerated_deviations_from_the_sdk():
    """Absent and null fields, enum values Retell added after this SDK, decoded JSON content and arguments."""
    call = sdk_call(transcript_with_tool_calls=[_invoke("t1", "book_appointment_v17"), _result("t1")]).to_dict()
    call.update(call_status="some_new_status", disconnection_reason="a_new_reason", agent_id=None)
    call["transcript_with_tool_calls"][0]["arguments"] = {"datum": "25.10.2025"}
    call["transcript_with_tool_calls"][1].update(content={"success": False, "error": "slot taken"}, tool_call_id="t1")
    del call["from_number"]
    parsed = load_call_object(call)
    assert parsed.tool_calls[["arguments", "ok", "error"]].values.tolist() == [
        [{"datum": "25.10.2025"}, False, "slot taken"]]
    assert parsed.call_status == "some_new_status"


@pytest.mark.parametrize(("change", "said"), [
    ({"agent_version": "v42"}, "agent_version is string 'v42', expected a valid integer"),
    ({"call_analysis": {"call_successful": "maybe"}}, "call_analysis.call_successful is string 'maybe'"),
    ({"call_cost": {"combined_cost": 4.56, "product_costs": [{"product": "tts", "cost": "free"}]}},
     "call_cost.product_costs[0].cost is string 'free'"),
    ({"transcript_with_tool_calls": [{"role": "node_transition", "former_node_id": "a", "former_node_name": "A",
                                      "new_node_id": "b", "new_node_name": "B", "transition_type": 5}]},
     "transcript_with_tool_calls[0].transition_type is number 5"),
    ({"telephony_identifier": {"twilio_call_sid": 12}}, "telephony_identifier.twilio_call_sid is number 12"),
])
def test_a_field_against_the_sdks_type_is_one_line(change, said):
    call = {**sdk_call().to_dict(), **change}
    with pytest.raises(InputFormatError) as caught:
        load_call_object(call)
    assert said in str(caught.value) and "(Retell's" in str(caught.value) and len(str(caught.value).splitlines()) == 1


# --------------------------------------------------------------------------- tool calls without time_sec
def test_the_real_sample_round_trips_through_the_sdk(shared_data):
    raw = json.loads((shared_data / SAMPLE).read_text(encoding="utf-8"))
    model = PhoneCallResponse.model_validate(raw)  # the real object is valid by Retell's own types
    again = load_call_object(model.model_dump(mode="json", exclude_unset=True))
    direct = load_call_object(raw)
    cols = ["name", "start_s", "end_s", "latency_s", "ok", "type", "kind", "placed"]
    assert again.tool_calls[cols].equals(direct.tool_calls[cols])
    assert direct.tool_calls["placed"].tolist() == ["time_sec", "time_sec"]
    assert direct.tool_calls["type"].tolist() == ["custom", "custom"]


def test_the_real_sample_without_time_sec_is_placed_by_its_words(shared_data):
    raw = json.loads((shared_data / SAMPLE).read_text(encoding="utf-8"))
    stripped = copy.deepcopy(raw)
    for entry in stripped["transcript_with_tool_calls"]:
        entry.pop("time_sec", None)
    PhoneCallResponse.model_validate(stripped)  # still valid for the SDK
    truth, placed = load_call_object(raw), load_call_object(stripped)
    tools = placed.tool_calls
    assert tools["placed"].tolist() == ["words", "words"] and tools["latency_s"].isna().all()
    # check_availability_v17: invoked at 17.041 inside "Einen Moment | bitte": placed at the end of "Moment "
    assert tools.loc[1, "start_s"] == 17.079 and abs(tools.loc[1, "start_s"] - truth.tool_calls.loc[1, "start_s"]) < 0.2
    assert tools.loc[1, "end_s"] == 18.124 and abs(tools.loc[1, "end_s"] - truth.tool_calls.loc[1, "end_s"]) < 0.2
    assert tools.loc[0, ["start_s", "end_s"]].tolist() == [0.0, 0.0]  # before any word: the call's start
    assert tools["ok"].tolist() == [False, False]  # outcomes still read from the results
    nodes = placed.node_transitions
    assert nodes["time_s"].tolist() == [0.0, 0.0, 14.001, 15.361] and set(nodes["placed"]) == {"words"}
    timeline = build_timeline(placed)
    gap = next(g for g in timeline.data_gaps if "have no time_sec" in g)
    assert gap.startswith("2 tool calls (initialize_call, check_availability_v17) and 4 flow steps have no time_sec")
    assert [f["kind"] for f in timeline.to_dict()["findings"]].count("dead_air") == 1


def test_an_sdk_call_with_no_time_anywhere_lists_its_tool_calls_unplaced():
    call = sdk_call(transcript_with_tool_calls=[{"role": "user", "content": "Hallo", "words": [{"word": "Hallo"}]},
                                                _invoke("t1", "check_customer"), _result("t1")])
    parsed = load_call_object(call.to_json())
    assert parsed.tool_calls["placed"].tolist() == [None] and parsed.tool_calls["start_s"].isna().all()
    timeline = build_timeline(parsed)  # was ValueError: cannot convert float NaN to integer
    assert timeline.tool_calls.empty
    assert any("neither time_sec nor word timings" in g for g in timeline.data_gaps)


# --------------------------------------------------------------------------- built-in tool types
def _builtin_call():
    return sdk_call(duration_ms=30_000, end_timestamp=START_MS + 30_000, disconnection_reason="call_transfer",
                    transfer_destination="+4930999999999", transfer_end_timestamp=START_MS + 28_000,
                    transcript_with_tool_calls=[
        _say("agent", "Guten Tag wie kann ich helfen", 0.5, 2.5),
        _say("user", "Mein Name ist Erika", 3.0, 4.5),
        _invoke("t1", "extract_name", "extract_dynamic_variable"), _result("t1", "Erika"),
        _invoke("t2", "check_availability_v17", "custom"), _result("t2", '{"success": true}'),
        _say("agent", "Ich verbinde Sie mit dem Salon", 5.0, 7.0),
        _invoke("t3", "an_den_salon", "transfer_call"),
        _say("transfer_target", "Salon hier", 15.0, 16.0),
        _invoke("t4", "auflegen", "end_call"),
    ])


def test_builtin_tools_by_their_semantics():
    parsed = load_call_object(_builtin_call().to_json(), mask_pii=True)
    tools = parsed.tool_calls.set_index("name")
    assert tools["kind"].to_dict() == {"extract_name": "builtin", "check_availability_v17": "function",
                                       "an_den_salon": "transfer", "auflegen": "end_call"}
    assert tools.loc["auflegen", "ok"] and tools.loc["auflegen", "error"] is None  # ends the call: no result to wait for
    assert tools.loc["an_den_salon", "ok"] and not tools.loc["an_den_salon", "answered"]
    assert tools.loc["extract_name", "family"] is None  # not a backend call: in no function family
    assert tools.loc["check_availability_v17", "family"] == "check_availability"
    assert parsed.transfer_end_s == 28.0 and parsed.raw["transfer_destination"] == "[PHONE]"
    timeline = build_timeline(parsed)
    assert not [f for f in timeline.findings if f.kind in ("failed_tool", "slow_tool", "loop")]
    transfer = timeline.spans[timeline.spans["kind"] == "transfer"]
    assert transfer[["start_s", "end_s"]].values.tolist() == [[7.0, 28.0]]  # from the hand-over to the leg's end
    # the transfer target's words belong to the transfer leg; the silence after it ends is the tail
    assert (timeline.attribution.ms["transfer"], timeline.attribution.ms["tail"]) == (21_000, 2_000)
    assert "dead_air" not in [f.kind for f in timeline.findings]
    assert sum(timeline.attribution.ms.values()) == 30_000
    text = timeline.to_text()
    assert "ended the call" in text and "handed the call over" in text and "an_den_salon (transfer_call)" in text
    assert timeline.known["call_type"] == "phone_call"


def test_a_function_without_result_still_fails_and_a_failed_transfer_is_a_failed_tool():
    call = sdk_call(transcript_with_tool_calls=[
        _say("agent", "Einen Moment", 1.0, 2.0), _invoke("t1", "book_appointment_v17", None),
        _say("agent", "Ich verbinde", 5.0, 6.0), _invoke("t2", "transfer", "transfer_call"),
        _result("t2", '{"success": false, "error": "no answer"}', successful=False)])
    parsed = load_call_object(call.to_json())
    assert parsed.tool_calls[["name", "kind", "ok", "error"]].values.tolist() == [
        ["book_appointment_v17", "function", False, "no tool_call_result recorded"],
        ["transfer", "transfer", False, "no answer"]]
    failed = [f.details["name"] for f in build_timeline(parsed).findings if f.kind == "failed_tool"]
    assert failed == ["book_appointment_v17", "transfer"]


# --------------------------------------------------------------------------- scrubbed and session transcripts
def test_the_scrubbed_transcript_alone_gives_the_tool_calls():
    entries = [_say("agent", "Guten Tag", 0.5, 1.5), _say("user", "Ich bin [NAME]", 2.0, 3.0),
               dict(_invoke("t1", "check_customer"), time_sec=3.2), dict(_result("t1"), time_sec=4.0)]
    parsed = load_call_object(sdk_call(scrubbed_transcript_with_tool_calls=entries).to_json())
    assert parsed.tool_source == "scrubbed_transcript_with_tool_calls"
    assert parsed.tool_calls[["name", "start_s", "end_s", "latency_s", "ok"]].values.tolist() == [
        ["check_customer", 3.2, 4.0, 0.8, True]]
    assert len(parsed.utterances) == 2 and any("scrubbed_transcript_with_tool_calls" in n for n in parsed.notes)
    timeline = build_timeline(parsed)
    assert not any("tool calls unknown" in g for g in timeline.data_gaps) and len(timeline.tool_calls) == 1


def test_pre_and_post_session_tool_calls_are_shown_beside_the_timeline():
    call = sdk_call(transcript_with_tool_calls=[_say("agent", "Hallo", 0.5, 1.0)],
                    pre_session_transcript_with_tool_calls=[_invoke("p1", "lookup_customer"),
                                                            _result("p1", '{"success": false, "error": "unknown caller"}')],
                    scrubbed_post_session_transcript_with_tool_calls=[_invoke("q1", "crm_sync"), _result("q1")])
    parsed = load_call_object(call.to_json())
    assert parsed.session_tool_calls[["phase", "name", "ok"]].values.tolist() == [
        ["pre_session", "lookup_customer", False], ["post_session", "crm_sync", True]]
    timeline = build_timeline(parsed)
    assert timeline.tool_calls.empty and not timeline.findings
    text = timeline.to_text()
    assert "pre-session: lookup_customer failed: unknown caller" in text and "post-session: crm_sync ok" in text
    assert [t["phase"] for t in timeline.to_dict()["session_tool_calls"]] == ["pre_session", "post_session"]
    assert "pre-session: lookup_customer" in timeline.to_markdown()


def test_a_web_call_reads_through_the_web_call_model():
    parsed = load_call_object(sdk_call(WebCallResponse).to_json())
    assert parsed.call_type == "web_call" and sdk_model(parsed.raw) is WebCallResponse
    assert build_timeline(parsed).known["call_type"] == "web_call"
    assert pd.isna(parsed.raw.get("from_number"))


def test_reconciliation_counts_only_the_calls_that_reach_the_backend():
    """The app logs its functions only: an end_call, a transfer or an extracted variable is not one of them."""
    from rca_toolkit.analyses.bookings.reconcile import retell_calls_frame

    parsed = load_call_object(_builtin_call().to_json(), mask_pii=True)
    row = retell_calls_frame([parsed]).iloc[0]
    assert (row["tool_call_count"], row["tool_names"]) == (1, ["check_availability_v17"])
