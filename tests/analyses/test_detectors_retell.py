"""Loops from two repeats on whole Retell call objects: the real sample and calls built with Retell's SDK models.

Each expected repeat count and its seconds are computed from the input: the start of the second prompt (node
entry, tool call) and where the loop ends (the next different agent turn, the next node, the end of the last
repeated call).
"""

from __future__ import annotations

import json

import pytest
from retell.types import PhoneCallResponse

from rca_toolkit.analyses.calls.detectors import similarity
from rca_toolkit.analyses.calls.timeline import build_timeline

START_MS = 1764531000000  # 2025-11-30 19:30:00 UTC


def _words(text: str, start: float, end: float) -> list[dict]:
    parts = text.split()
    step = (end - start) / len(parts)
    return [{"word": w + " ", "start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3)}
            for i, w in enumerate(parts)]


def sdk_call(call_id: str, duration_s: float, utterances=(), nodes=(), tool_calls=()):
    """A phone call validated by the SDK's model: utterances (role, text, start, end), nodes (time, name),
    tool calls (name, start, end, arguments, content); all in one time-ordered transcript_with_tool_calls."""
    said = [{"role": r, "content": t, "words": _words(t, a, b)} for r, t, a, b in utterances]
    entries = [(a, 0, s) for (_, _, a, _), s in zip(utterances, said)]
    former = "begin"
    for at, name in nodes:
        entries.append((at, 1, {"role": "node_transition", "former_node_id": former, "former_node_name": former,
                                "new_node_id": name, "new_node_name": name, "time_sec": at}))
        former = name
    for i, (name, start, end, args, content) in enumerate(tool_calls):
        entries.append((start, 2, {"role": "tool_call_invocation", "tool_call_id": f"t{i}", "name": name, "type": "custom",
                                   "arguments": json.dumps(args, ensure_ascii=False), "time_sec": start}))
        entries.append((end, 3, {"role": "tool_call_result", "tool_call_id": f"t{i}", "successful": True,
                                 "content": json.dumps(content, ensure_ascii=False), "time_sec": end}))
    call = PhoneCallResponse(
        call_id=call_id, agent_id="agent_f1ce85d06a84afb989dfbb16a9", agent_version=25, call_type="phone_call",
        call_status="ended", direction="inbound", from_number="anonymous", to_number="+4930123456780",
        start_timestamp=START_MS, end_timestamp=START_MS + int(duration_s * 1000), duration_ms=int(duration_s * 1000),
        disconnection_reason="user_hangup", transcript_object=said,
        transcript_with_tool_calls=[e for *_, e in sorted(entries, key=lambda e: e[:2])])
    return call.model_dump(mode="json")


def loops(call) -> list:
    return [f for f in build_timeline(call).findings if f.kind == "loop"]


def test_the_real_sample_repeats_a_filler_but_asks_nothing_twice(shared_data):
    sample = json.loads((shared_data / "retell_call_a3d98bb4522f6f1e0bfac5964b1.json").read_text())
    agent = [e["content"] for e in sample["transcript_object"] if e["role"] == "agent"]
    twice = "Einen Moment bitte, ich prüfe die Verfügbarkeit für Sie..."
    # the sample's agent says the same waiting line twice (once in fragments), its nodes are all different and
    # its two tool calls differ: nothing was asked again, so there is no loop (the silence is the dead-air finding)
    assert agent[-1] == twice and similarity(" ".join(agent[1:4]), twice) == 1.0
    nodes = [e["new_node_name"] for e in sample["transcript_with_tool_calls"] if e["role"] == "node_transition"]
    assert len(nodes) == len(set(nodes)) == 4
    timeline = build_timeline(shared_data / "retell_call_a3d98bb4522f6f1e0bfac5964b1.json")
    assert [f for f in timeline.findings if f.kind == "loop"] == []
    assert timeline.thresholds["loop_min_repeats"] == 2


def test_the_name_asked_twice_in_similar_words():
    speech = [("agent", "Guten Tag, Sie sprechen mit der Terminannahme.", 0.6, 3.4),
              ("user", "Ich möchte einen Termin am Dienstag.", 4.0, 6.5),
              ("agent", "Wie ist Ihr Nachname, bitte?", 7.0, 9.0), ("user", "Schneider.", 9.6, 10.4),
              ("agent", "Entschuldigung, wie war Ihr Nachname, bitte?", 14.2, 18.0),
              ("user", "Schneider, S C H N E I D E R.", 18.6, 22.0),
              ("agent", "Danke. Um wie viel Uhr möchten Sie kommen?", 23.5, 26.0), ("user", "Um zehn.", 26.6, 27.4)]
    tools = [("check_customer", 10.8, 11.6, {"name": "Schneider"}, {"success": True, "found": False}),
             ("check_customer", 22.2, 23.0, {"name": "Schneider"}, {"success": True, "found": True})]
    (loop,) = loops(sdk_call("call_" + "5" * 27, 30.0, speech, [], tools))
    second, next_turn = speech[4][2], speech[6][2]
    assert similarity(speech[2][1], speech[4][1]) >= 0.6  # similar wording, the same topic
    assert loop.label == "re-asks the caller's name 2× with 2 check_customer call(s)"  # the repeated lookup inside it
    assert (loop.details["iterations"], loop.details["repeats"]) == (2, 1)
    assert (loop.start_s, loop.end_s, loop.seconds) == (second, next_turn, round(next_turn - second, 3)) == (14.2, 23.5, 9.3)
    assert loop.details["loop_start_s"] == speech[2][2]


def test_node_re_entries_of_a_conversation_flow():
    nodes = [(0.0, "Begrüßung"), (4.2, "Name erfragen"), (9.0, "Kunde prüfen"), (14.1, "Name erfragen"),
             (19.3, "Kunde prüfen"), (24.4, "Termin wählen")]
    speech = [("agent", "Guten Tag, wie kann ich helfen?", 0.5, 3.0), ("user", "Einen Termin bitte.", 3.3, 4.0),
              ("agent", "Wie heißen Sie?", 4.6, 5.8), ("user", "Müller.", 6.5, 7.2),
              ("agent", "Ich habe Sie leider nicht gefunden. Bitte buchstabieren Sie Ihren Nachnamen.", 14.5, 18.0),
              ("user", "M U E L L E R.", 18.5, 19.0), ("agent", "Danke, welcher Tag passt Ihnen?", 24.8, 27.0)]
    tools = [("check_customer", 9.4, 10.2, {"name": "Müller"}, {"success": True, "found": False}),
             ("check_customer", 19.6, 20.3, {"name": "Mueller"}, {"success": True, "found": True})]
    call = sdk_call("call_" + "6" * 27, 30.0, speech, nodes, tools)
    (loop,) = loops(call)
    assert loop.details["source"] == "node re-entries"
    assert loop.label == "re-enters node 'Name erfragen' 2× (the caller's name) with 2 check_customer call(s)"
    assert (loop.start_s, loop.end_s, loop.seconds) == (nodes[3][0], nodes[5][0], round(nodes[5][0] - nodes[3][0], 3))
    assert (loop.details["iterations"], loop.details["repeats"], loop.details["loop_start_s"]) == (2, 1, nodes[1][0])


def test_a_booking_cycle_repeated_twice():
    slot = {"datum": "02.12.2025", "uhrzeit": "10:00", "dienstleistung": "Herrenhaarschnitt", "name": "Schneider"}
    same = {"datum": "2025-12-02", "uhrzeit": "10:00 ", "dienstleistung": "herrenhaarschnitt", "name": "Schneider"}
    validating = {"success": True, "data": {"status": "validating", "next_action": "confirm_booking"}}
    failed = {"success": False, "error": "Fehler bei der Terminbuchung"}
    tools = [("check_availability_v17", 10.0, 11.0, slot, {"success": True, "available": True}),
             ("start_booking", 15.0, 15.6, slot, validating), ("confirm_booking", 20.0, 22.5, slot, failed),
             ("check_availability_v17", 30.0, 31.1, same, {"success": True, "available": True}),
             ("start_booking", 35.0, 35.5, same, validating), ("confirm_booking", 40.0, 42.4, same, failed)]
    speech = [("agent", "Guten Tag, wie kann ich helfen?", 0.5, 3.0), ("user", "Dienstag um zehn, Herrenhaarschnitt.", 3.5, 7.0),
              ("agent", "Einen Moment bitte.", 9.0, 10.0), ("agent", "Das hat leider nicht geklappt, ich versuche es erneut.", 23.0, 27.0),
              ("agent", "Einen Moment bitte.", 29.0, 30.0), ("agent", "Es tut mir leid, die Buchung ist fehlgeschlagen.", 43.0, 46.0)]
    timeline = build_timeline(sdk_call("call_" + "8" * 27, 48.0, speech, [], tools))
    (loop,) = [f for f in timeline.findings if f.kind == "loop"]
    assert loop.label == ("repeats the cycle check_availability_v17 → start_booking → confirm_booking 2× (equivalent "
                          "arguments) with 4 book_appointment, 2 check_availability call(s)")
    assert (loop.details["iterations"], loop.details["repeats"]) == (2, 1)
    assert (loop.start_s, loop.end_s, loop.seconds) == (tools[3][1], tools[5][2], round(tools[5][2] - tools[3][1], 3))
    assert loop.details["loop_start_s"] == tools[0][1]
    assert loop.removable == [(30.0, 42.4)] and timeline.what_if.removed_s >= loop.seconds
    # the same cycle with another slot the second time is a retry, not a loop
    moved = [(n, a, b, {**args, "uhrzeit": "11:00"} if i >= 3 else args, c) for i, (n, a, b, args, c) in enumerate(tools)]
    assert loops(sdk_call("call_" + "9" * 27, 48.0, speech, [], moved)) == []


@pytest.mark.parametrize("repeats", [1, 2, 3])
def test_the_finding_counts_the_repeats_and_their_seconds(repeats):
    """The name asked 1 + repeats times, 9 s apart: the extra iterations cost repeats × 9 s up to the next question."""
    speech = [("agent", "Guten Tag, Sie sprechen mit der Terminannahme.", 0.5, 3.0)]
    for k in range(repeats + 1):
        t = 4.0 + 9.0 * k
        speech += [("agent", ["Wie ist Ihr Name?", "Wie war noch mal Ihr Name?", "Wie war Ihr Name bitte?",
                              "Ihr Name bitte?"][k], t, t + 2.0), ("user", "Schneider.", t + 3.0, t + 4.0)]
    nxt = 4.0 + 9.0 * (repeats + 1)
    speech.append(("agent", "Danke. Welcher Tag passt Ihnen?", nxt, nxt + 2.0))
    (loop,) = loops(sdk_call("call_" + "a" * 27, nxt + 5.0, speech))
    assert (loop.details["iterations"], loop.details["repeats"]) == (repeats + 1, repeats)
    assert (loop.start_s, loop.end_s, loop.seconds) == (13.0, nxt, round(9.0 * repeats, 3))
