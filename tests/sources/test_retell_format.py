"""Retell call objects: the real scrubbed sample, every accepted envelope, tool-call outcomes, PII masking."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.sources.formats.retell import load_call_object, load_function_payload, recompute_percentiles

SAMPLE = "retell_call_a3d98bb4522f6f1e0bfac5964b1.json"
REAL_ID = "call_a3d98bb4522f6f1e0bfac5964b1"


@pytest.fixture(scope="module")
def sample_path(shared_data):
    return shared_data / SAMPLE


@pytest.fixture(scope="module")
def sample_dict(sample_path):
    return json.loads(sample_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def call(sample_path):
    return load_call_object(sample_path)


def test_call_facts_of_the_real_sample(call):
    assert call.call_id == REAL_ID
    assert call.duration_ms == 35303 and call.duration_s == 35.303
    assert call.start == pd.Timestamp("2025-10-24 09:21:10.702", tz="UTC")  # 11:21:10.702 +02:00
    assert call.end - call.start == pd.Timedelta(milliseconds=35303)
    assert (call.call_status, call.disconnection_reason, call.direction) == ("ended", "user_hangup", "inbound")
    assert call.agent_version == 42 and call.agent_name == "Conversation Flow Agent Friseur 1"
    assert call.cost_cents == 4.56
    assert [p["product"] for p in call.cost_breakdown["product_costs"]] == ["elevenlabs_tts", "gpt_4o_mini"]
    assert call.analysis["call_successful"] is False and call.analysis["user_sentiment"] == "Negative"


def test_utterances_and_words_rounded_to_ms(call):
    utt = call.utterances
    assert len(utt) == 8
    assert utt["role"].tolist() == ["agent", "user", "user", "user", "agent", "agent", "agent", "agent"]
    assert utt.loc[1, "start_s"] == 10.201  # 10.200999999999999 in the file (P17 float noise)
    assert utt.loc[3, "end_s"] == 15.361  # 15.360999
    assert utt.loc[6, "end_s"] == 19.68 and utt.loc[7, "start_s"] == 30.955  # the 11.3 s silence
    assert utt["n_words"].sum() == len(call.words) == 50
    assert (call.words["start_s"] == call.words["start_s"].round(3)).all()
    assert call.words.loc[0].tolist() == [0, "agent", "Guten ", 2.853, 3.12]


def test_tool_calls_paired_and_failed_at_application_level(call):
    tools = call.tool_calls
    assert tools["name"].tolist() == ["initialize_call", "check_availability_v17"]
    assert tools["family"].tolist() == ["initialize_call", "check_availability"]
    assert tools["latency_s"].tolist() == [1.024, 0.948]
    assert tools["start_s"].tolist() == [0.595, 17.041] and tools["end_s"].tolist() == [1.619, 17.989]
    assert tools["transport_ok"].tolist() == [True, True]  # successful: true ...
    assert tools["ok"].tolist() == [False, False]  # ... but the content says success: false
    assert tools["error"].tolist() == ["Call context not found", "Call context not available"]
    assert tools.loc[1, "arguments"] == {"datum": "04.10.2023", "uhrzeit": "16:00", "dienstleistung": "Herrenhaarschnitt"}
    assert tools.loc[0, "content"]["data"]["success"] is False  # nested result parsed, not a string
    assert call.node_transitions["new_node_name"].tolist()[1:] == ["Kundenrouting", "Anonymer Kunde", "Check Availability"]


def test_retell_percentiles_are_linear_interpolation(call):
    assert set(call.latency) == {"llm", "e2e", "tts"}
    assert call.latency["e2e"].num == 1 and call.latency["llm"].min == 1
    for name, block in call.latency.items():
        again = recompute_percentiles(block)
        for key, value in again.items():
            assert abs(value - getattr(block, key)) < 1e-6, (name, key)
    assert recompute_percentiles(call.latency["llm"])["p50"] == 689.5


def test_every_accepted_shape_gives_the_same_call(sample_dict, sample_path, call):
    shapes = [
        sample_dict,
        json.dumps(sample_dict),
        {"event": "call_ended", "call": sample_dict},
        {"event_type": "call_analyzed", "call": sample_dict},
        json.dumps(json.dumps(sample_dict)),  # calls.raw double encoded (P15)
        str(sample_path),
    ]
    for shape in shapes:
        again = load_call_object(shape)
        assert again.call_id == REAL_ID and again.duration_ms == 35303
        assert again.tool_calls["latency_s"].tolist() == [1.024, 0.948]
        assert again.utterances.equals(call.utterances)


def test_refusals_are_one_clear_error(sample_dict, tmp_path):
    payload = {"name": "check_availability_v17", "args": {"datum": "24.10.2025"}, "call": {"call_id": REAL_ID}}
    with pytest.raises(InputFormatError, match="load_function_payload"):
        load_call_object(payload)
    with pytest.raises(InputFormatError, match="carries no call object"):
        load_call_object({"event": "call_inbound", "call_inbound": {"from_number": "anonymous"}})
    with pytest.raises(NotFound, match="does not exist"):
        load_call_object(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"call_id": "call_x", ', encoding="utf-8")
    with pytest.raises(InputFormatError, match="not valid JSON"):
        load_call_object(bad)
    with pytest.raises(InputFormatError, match="no call_id"):
        load_call_object({"foo": 1})


def _tool_call(content, successful=True):
    return {"call_id": REAL_ID, "duration_ms": 5000, "transcript_with_tool_calls": [
        {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "book_appointment_v17", "arguments": "{}",
         "time_sec": 1.0},
        {"role": "tool_call_result", "tool_call_id": "t1", "successful": successful, "content": content, "time_sec": 2.5},
    ]}


@pytest.mark.parametrize(("content", "successful", "ok", "error"), [
    ('{"success":true,"data":{"booked":true}}', True, True, None),
    ('{"success":false,"error":"slot taken"}', True, False, "slot taken"),
    (json.dumps(json.dumps({"success": True, "data": {"success": False, "message": "HTTP 409"}})), True, False, "HTTP 409"),
    ('{"error":"Call context not found"}', True, False, "Call context not found"),
    ('{"success":true}', False, False, "transport failure (successful: false)"),
    ("plain text answer", True, True, None),
])
def test_tool_outcome_reads_the_content(content, successful, ok, error):
    tools = load_call_object(_tool_call(content, successful)).tool_calls
    assert tools["ok"].tolist() == [ok] and tools["error"].tolist() == [error]
    assert tools.loc[0, "latency_s"] == 1.5 and tools.loc[0, "family"] == "book_appointment"


def test_function_payload_uses_the_envelope_call_id():
    fc = load_function_payload({"name": "check_availability_v17", "args": {"call_id": "call_1", "uhrzeit": "16:00"},
                                "call": {"call_id": REAL_ID, "call_status": "ongoing"}})
    assert (fc.name, fc.family, fc.call_id) == ("check_availability_v17", "check_availability", REAL_ID)
    assert fc.arg_call_id == "call_1" and fc.arg_call_id_suspicious is True
    ok = load_function_payload(json.dumps({"function_name": "initialize_call", "arguments": json.dumps({"call_id": REAL_ID}),
                                           "call": {"call_id": REAL_ID}}))
    assert ok.args == {"call_id": REAL_ID} and ok.arg_call_id_suspicious is False
    assert load_function_payload({"name": "x", "args": {}, "call": {}}).arg_call_id_suspicious is False
    with pytest.raises(InputFormatError, match="load_call_object"):
        load_function_payload({"call_id": REAL_ID})


def test_mask_pii_removes_names_numbers_urls_and_ids(sample_path, call):
    masked = load_call_object(sample_path, mask_pii=True)
    text = json.dumps(masked.raw, ensure_ascii=False)
    for secret in ("Max", "Muster", "+490000000000", "recordings.invalid", "CA000000000000", "AC000000000000"):
        assert secret not in text, secret
    assert masked.utterances.loc[3, "content"] == "Mein Name ist [NAME] [NAME]."
    assert masked.analysis["call_summary"].startswith("The user, [NAME] [NAME], called")
    assert masked.raw["from_number"] == "anonymous" and masked.raw["to_number"] == "[PHONE]"
    assert masked.raw["collected_dynamic_variables"]["current_node"] == "Check Availability"
    # timings, tool calls and the unmasked original are untouched
    assert masked.words[["start_s", "end_s"]].equals(call.words[["start_s", "end_s"]])
    assert masked.tool_calls["ok"].tolist() == [False, False]
    assert "Max" in call.utterances.loc[3, "content"]


def test_mask_pii_uses_dynamic_variables_and_phone_numbers():
    raw = {"call_id": REAL_ID, "from_number": "+4915112345678",
           "retell_llm_dynamic_variables": {"customer_name": "Erika Beispiel", "greeting": "Hallo"},
           "transcript_object": [{"role": "user", "content": "Hier Erika, meine Nummer ist +4915112345678", "words": []}]}
    masked = load_call_object(raw, mask_pii=True)
    assert masked.utterances.loc[0, "content"] == "Hier [NAME], meine Nummer ist [PHONE]"
    assert masked.raw["retell_llm_dynamic_variables"] == {"customer_name": "[REDACTED]", "greeting": "Hallo"}
    assert masked.raw["from_number"] == "[PHONE]"


def test_mask_pii_takes_names_from_tool_calls_and_not_from_service_names():
    """The one rule (personal_data.names_in): a name in tool-call arguments is masked in the result
    too; a service_name is no person, so the word it names stays in the transcript."""
    raw = {"call_id": REAL_ID, "duration_ms": 5000,
           "collected_dynamic_variables": {"service_name": "Beratung", "current_node": "Buchung"},
           "transcript": "Agent: Eine Beratung, gerne.",
           "transcript_object": [{"role": "agent", "content": "Eine Beratung, gerne.", "words": []}],
           "transcript_with_tool_calls": [
               {"role": "tool_call_invocation", "tool_call_id": "t1", "name": "book_appointment",
                "arguments": json.dumps({"customer_name": "Hans Gruber", "service": "Beratung"}), "time_sec": 1.0},
               {"role": "tool_call_result", "tool_call_id": "t1", "successful": True, "time_sec": 2.0,
                "content": json.dumps({"success": True, "message": "Termin für Hans Gruber gebucht"})}]}
    masked = load_call_object(raw, mask_pii=True)
    assert "Hans" not in json.dumps(masked.raw) and "Gruber" not in json.dumps(masked.raw)
    invocation, result = masked.raw["transcript_with_tool_calls"]
    assert json.loads(invocation["arguments"]) == {"customer_name": "[NAME] [NAME]", "service": "Beratung"}
    assert json.loads(result["content"])["message"] == "Termin für [NAME] [NAME] gebucht"
    assert masked.raw["transcript"] == "Agent: Eine Beratung, gerne."
    assert masked.utterances.loc[0, "content"] == "Eine Beratung, gerne."
