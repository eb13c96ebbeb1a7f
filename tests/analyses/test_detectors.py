"""Detectors on small hand-made span tables: loops, dead air, tools, duplicates, N+1, what-if."""

from __future__ import annotations

import pandas as pd
import pytest
from rca_toolkit.analyses.calls import detectors as d
from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.functions import function_family
from rca_toolkit.analyses.calls.timeline import SPAN_COLUMNS, attribute

TOOL_COLUMNS = ["name", "family", "start_s", "end_s", "latency_s", "ok", "error", "transport_ok", "arguments"]


def spans(*rows) -> pd.DataFrame:
    """rows: (start, end, role, text); role caller/agent."""
    out = [dict(zip(SPAN_COLUMNS, (s, e, f"{r}_speech", t[:60], r, "test", t, None, None, None))) for s, e, r, t in rows]
    return pd.DataFrame(out, columns=SPAN_COLUMNS)


def tools(*rows) -> pd.DataFrame:
    """rows: (name, start, end, ok, args)."""
    out = [{"name": n, "family": function_family(n), "start_s": s, "end_s": e, "latency_s": round(e - s, 3), "ok": ok,
            "error": None if ok else "failed", "transport_ok": True, "arguments": a} for n, s, e, ok, a in rows]
    return pd.DataFrame(out, columns=TOOL_COLUMNS)


NAME_LOOP = spans(
    (0.5, 3.0, "agent", "Guten Tag, wie kann ich helfen?"),
    (3.5, 6.0, "caller", "Ich möchte einen Termin buchen"),
    (6.8, 9.0, "agent", "Wie ist Ihr Name, bitte?"),
    (9.5, 11.0, "caller", "Max Muster"),
    (12.5, 15.0, "agent", "Wie war noch mal Ihr Name, bitte?"),
    (15.5, 17.0, "caller", "Max Muster"),
    (18.5, 21.0, "agent", "Entschuldigung, wie ist Ihr Name, bitte?"),
    (21.5, 23.0, "caller", "M U S T E R"),
    (24.5, 27.0, "agent", "Wie ist Ihr Nachname, bitte?"),
    (27.5, 29.0, "caller", "Muster"),
    (30.5, 33.0, "agent", "Danke, für wann möchten Sie den Termin?"),
    (33.5, 35.0, "caller", "Morgen um zehn"),
    (40.0, 43.0, "agent", "Der Termin ist gebucht. Auf Wiederhören."),
)
NAME_TOOLS = tools(
    ("check_customer", 11.2, 12.0, False, {"name": "Max Muster"}),
    ("check_customer", 17.2, 18.0, False, {"name": "Max Muster"}),
    ("check_customer", 23.2, 24.0, False, {"name": "M U S T E R"}),
    ("check_customer", 29.2, 30.0, True, {"name": "Muster"}),
    ("book_appointment_v17", 35.5, 38.5, True, {"datum": "25.10.2025", "uhrzeit": "10:00"}),
)


def test_similarity_and_interval_helpers():
    assert d.similarity("Wie ist Ihr Name, bitte?", "wie ist ihr name bitte") == 1.0
    assert d.similarity("Wie ist Ihr Name, bitte?", "Danke, für wann möchten Sie den Termin?") < d.LOOP_SIMILARITY
    assert d.union_length([(0, 2), (1, 3), (5, 6), (6, 6)]) == 4
    assert d.silent_parts(0, 10, [(2, 3), (2.5, 4), (9, 12)]) == [(0, 2), (4, 9)]


def test_turns_merge_consecutive_spans_of_one_role():
    t = d.turns(spans((0, 1, "agent", "Einen Moment"), (1, 2, "agent", "bitte"), (3, 4, "caller", "ja")))
    assert t[["role", "start_s", "end_s", "text"]].values.tolist() == [["agent", 0, 2, "Einen Moment bitte"],
                                                                      ["caller", 3, 4, "ja"]]


def test_name_loop_is_found_with_its_extra_iterations():
    (loop,) = d.detect_loops(NAME_LOOP, NAME_TOOLS, duration_s=44.0)
    assert loop.kind == "loop"
    assert loop.label == "re-asks the caller's name 4× with 4 check_customer call(s)"
    assert loop.details["iterations"] == 4 and loop.details["loop_start_s"] == 6.8
    # extra iterations: from the 2nd prompt (12.5 s) to the next different agent turn (30.5 s)
    assert (loop.start_s, loop.end_s, loop.seconds, loop.removable_s) == (12.5, 30.5, 18.0, 18.0)
    assert loop.details["loop_seconds"] == 23.7


def test_the_name_asked_twice_is_a_loop_and_threshold_is_respected():
    two = NAME_LOOP.iloc[:6]  # "Wie ist Ihr Name, bitte?" (6.8 s), "Wie war noch mal Ihr Name, bitte?" (12.5 s)
    (loop,) = d.detect_loops(two, NAME_TOOLS.iloc[:0], duration_s=20.0)
    end_of_speech = float(two["end_s"].max())  # no other agent turn follows: the loop runs to the end of speech
    assert loop.label == "re-asks the caller's name 2×"
    assert (loop.details["iterations"], loop.details["repeats"]) == (2, 1)
    assert (loop.start_s, loop.end_s, loop.seconds) == (12.5, end_of_speech, round(end_of_speech - 12.5, 3)) == (12.5, 17.0, 4.5)
    assert loop.details["prompt_starts_s"] == [6.8, 12.5] and loop.details["loop_seconds"] == round(end_of_speech - 6.8, 3)
    assert d.detect_loops(two, NAME_TOOLS.iloc[:0], duration_s=20.0, min_repeats=3) == []
    assert d.detect_loops(NAME_LOOP, NAME_TOOLS.iloc[:0], duration_s=44.0, threshold=0.95) == []


def test_two_repeats_must_ask_the_same_thing_again():
    moment = "Einen Moment bitte, ich prüfe die Verfügbarkeit für Sie."
    filler = spans((0, 3, "agent", moment), (3.5, 5, "caller", "ok"), (12, 15, "agent", moment), (16, 18, "caller", "Hallo?"))
    assert d.similarity(moment, moment) == 1.0 and not d.asks(moment)
    assert d.detect_loops(filler, NAME_TOOLS.iloc[:0], duration_s=20.0) == []  # said twice around a lookup: no loop
    thrice = pd.concat([filler, spans((19, 22, "agent", moment))], ignore_index=True)
    (loop,) = d.detect_loops(thrice, NAME_TOOLS.iloc[:0], duration_s=25.0)  # three times: the agent is stuck
    assert (loop.details["iterations"], loop.start_s, loop.end_s) == (3, 12.0, 22.0)
    # a question without a topic counts twice only in nearly the same words
    again = spans((0, 2, "agent", "Kann ich sonst noch helfen?"), (3, 4, "caller", "Äh"),
                  (5, 7, "agent", "Kann ich Ihnen sonst noch helfen?"), (8, 9, "caller", "Nein"), (10, 12, "agent", "Tschüss"))
    (loop,) = d.detect_loops(again, NAME_TOOLS.iloc[:0], duration_s=13.0)
    assert (loop.label, loop.start_s, loop.end_s, loop.seconds) == ('re-asks "Kann ich sonst noch helfen?" 2×', 5.0, 10.0, 5.0)
    other = spans((0, 2, "agent", "Möchten Sie einen Termin buchen?"), (3, 4, "caller", "Nein"),
                  (5, 7, "agent", "Möchten Sie den Termin verschieben?"), (8, 9, "caller", "Ja"))
    assert d.LOOP_SIMILARITY <= d.similarity(*other.loc[[0, 2], "text"]) < d.LOOP_PAIR_SIMILARITY
    assert d.detect_loops(other, NAME_TOOLS.iloc[:0], duration_s=10.0) == []


def node_spans(*rows) -> pd.DataFrame:
    """rows: (time, node name)."""
    return pd.DataFrame([dict(zip(SPAN_COLUMNS, (t, t, "node", n, None, "test", "", None, None, None))) for t, n in rows],
                        columns=SPAN_COLUMNS)


def test_node_re_entries_are_a_loop_until_the_flow_moves_on():
    flow = node_spans((0.0, "Begrüßung"), (4.0, "Name erfragen"), (9.0, "Kunde prüfen"), (14.0, "Name erfragen"),
                      (19.0, "Kunde prüfen"), (19.0, "Kunde prüfen"), (24.0, "Termin wählen"))
    calls = tools(("check_customer", 9.5, 10.5, False, {"name": "Müller"}), ("check_customer", 19.5, 20.5, True, {"name": "Mueller"}))
    (loop,) = d.detect_loops(flow, calls, duration_s=30.0)
    assert loop.label == "re-enters node 'Name erfragen' 2× (the caller's name) with 2 check_customer call(s)"
    assert (loop.start_s, loop.end_s, loop.seconds, loop.details["loop_start_s"]) == (14.0, 24.0, 10.0, 4.0)
    assert (loop.details["iterations"], loop.details["repeats"], loop.details["source"]) == (2, 1, "node re-entries")
    assert d.detect_loops(flow.iloc[[0, 1, 2, 6]], calls.iloc[:1], duration_s=30.0) == []  # every node once


def test_equivalent_arguments():
    assert d.equivalent_key({"name": " Müller ", "datum": "2.12.2025", "call_id": "call_1"}) == \
        d.equivalent_key('{"Datum": "2025-12-02", "name": "mueller", "call_id": "call_2"}')
    assert d.equivalent_key({"n": 2.0}) == d.equivalent_key({"n": 2}) != d.equivalent_key({"n": 2.5})
    assert d.equivalent_key({"name": "Muller"}) != d.equivalent_key({"name": "Müller"})


def test_a_tool_called_twice_with_equivalent_arguments_is_a_loop():
    silent = spans((0.0, 2.0, "agent", "Hallo"), (50.0, 52.0, "agent", "Tschüss"))
    calls = tools(("check_availability_v17", 5.0, 6.0, True, {"datum": "02.12.2025"}),
                  ("check_availability", 20.0, 21.5, True, {"datum": "2025-12-02"}))
    (loop,) = d.detect_loops(silent, calls, duration_s=60.0)
    assert loop.label.startswith("repeats check_availability with equivalent arguments 2×")
    assert (loop.start_s, loop.end_s, loop.seconds, loop.details["repeats"]) == (20.0, 21.5, 1.5, 1)
    different = calls.assign(arguments=[{"datum": "02.12.2025"}, {"datum": "03.12.2025"}])
    assert d.detect_loops(silent, different, duration_s=60.0) == []


def test_repeated_tool_calls_alone_form_a_loop():
    silent = spans((0.0, 2.0, "agent", "Hallo"), (50.0, 52.0, "agent", "Tschüss"))
    calls = tools(*[("check_customer", 5.0 + 10 * i, 6.0 + 10 * i, False, {"name": "Muster"}) for i in range(4)])
    (loop,) = d.detect_loops(silent, calls, duration_s=60.0)
    assert loop.label == "repeats check_customer with similar arguments 4× (the caller's name) with 4 check_customer call(s)"
    assert (loop.start_s, loop.end_s) == (15.0, 36.0)


def test_dead_air_from_attribution_gaps():
    attribution = attribute(NAME_LOOP, 44.0, dead_air_s=3.0)
    (dead,) = d.detect_dead_air(attribution.gaps, NAME_TOOLS, threshold_s=3.0)
    assert (dead.start_s, dead.end_s, dead.seconds, dead.removable_s) == (35.0, 40.0, 5.0, 2.0)
    assert dead.label == "5.0 s of silence after the caller turn while book_appointment_v17 ran"
    assert d.detect_dead_air(attribute(NAME_LOOP, 44.0, dead_air_s=6.0).gaps, NAME_TOOLS, threshold_s=6.0) == []


def test_slow_failed_and_duplicate_tools():
    calls = tools(
        ("check_availability_v17", 1.0, 3.5, True, {"datum": "24.10.2025"}),
        ("book_appointment_v17", 5.0, 6.0, False, {"datum": "24.10.2025", "call_id": "call_1"}),
        ("book_appointment_v17", 7.0, 8.0, True, {"datum": "24.10.2025", "call_id": "call_2"}),
    )
    found = d.detect_tools(calls, spans((5.5, 6.5, "agent", "Einen Moment")), slow_tool_s=2.0)
    assert [(f.kind, f.start_s, f.seconds, f.removable_s) for f in found] == [
        ("slow_tool", 1.0, 2.5, 0.5), ("failed_tool", 5.0, 1.0, 0.5), ("bad_argument", 5.0, 0.0, 0.0),
        ("bad_argument", 7.0, 0.0, 0.0), ("duplicate_side_effect", 7.0, 1.0, 1.0)]
    assert "identical arguments (2×)" in found[4].label  # call_id differences are ignored (P18)


def test_n_plus_one_needs_query_data():
    findings, note = d.detect_n_plus_one(None)
    assert findings == [] and "skipped" in note
    queries = pd.DataFrame({"request_id": ["r1"] * 6 + ["r2"],
                            "sql": [f"select sum(price) from appointments where customer_id = {i}" for i in range(6)]
                            + ["select 1"], "duration_ms": [12] * 7, "start_s": [10.0 + i for i in range(7)]})
    (n1,), note = d.detect_n_plus_one(queries)
    assert note is None and n1.kind == "n_plus_one" and n1.details["count"] == 6 and n1.seconds == 0.072
    assert "select sum(price) from appointments where customer_id = ?" in n1.label
    assert d.normalise_sql("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'") == "select * from t where id in (?) and name = ?"
    wide = pd.DataFrame({"sql": [f"select {', '.join(f'column_{c}' for c in range(30))} from t where id = {i}" for i in range(6)]})
    (long_query,), _ = d.detect_n_plus_one(wide)
    shown = long_query.label.split(": ", 1)[1]  # a query longer than 80 characters says it was cut
    assert len(shown) == 80 and shown.endswith("…") and shown.startswith("select column_0, column_1,")


def test_what_if_takes_the_union_of_removable_time():
    loop = d.Finding("loop", "l", 10.0, 30.0, 20.0, 20.0, [(10.0, 30.0)])
    failed = d.Finding("failed_tool", "f", 20.0, 24.0, 4.0, 4.0, [(20.0, 24.0)])  # inside the loop
    dead = d.Finding("dead_air", "d", 35.0, 40.0, 5.0, 2.0, [(38.0, 40.0)])
    slow = d.Finding("slow_tool", "s", 41.0, 44.0, 3.0, 1.0, [(43.0, 44.0)])
    result = d.what_if(50.0, [loop, failed, dead, slow])
    assert result.removed_s == 22.0 and result.duration_s == 28.0
    assert [r["kind"] for r in result.removed] == ["loop", "failed_tool", "dead_air"]
    assert d.what_if(50.0, [loop, slow], kinds=("slow_tool",)).duration_s == 49.0
    assert d.what_if(None, [loop]).duration_s is None
    assert d.what_if(50.0, [loop, dead], kinds=" loop, dead_air").duration_s == 28.0
    with pytest.raises(ConfigError, match="unknown finding kind.*dead-air"):
        d.what_if(50.0, [loop], kinds=("dead-air",))


def test_template_questions_about_different_things_are_not_a_loop():
    asks = spans((0, 2, "agent", "Könnten Sie mir bitte Ihren Namen nennen?"), (3, 4, "caller", "Muster"),
                 (5, 7, "agent", "Könnten Sie mir bitte Ihre Telefonnummer nennen?"), (8, 9, "caller", "0301234"),
                 (10, 12, "agent", "Könnten Sie mir bitte Ihr Datum nennen?"), (13, 14, "caller", "Montag"))
    assert d.similarity("Könnten Sie mir bitte Ihren Namen nennen?", "Könnten Sie mir bitte Ihre Telefonnummer nennen?") > 0.6
    assert d.detect_loops(asks, NAME_TOOLS.iloc[:0], duration_s=15.0) == []
    assert d.topics("Wie ist Ihre Telefonnummer?") == {"the phone number"}


def test_question_and_filler_repeated_together_are_one_loop():
    rows = []
    for k in range(4):
        t = 10.0 * k
        rows += [(t, t + 2, "agent", "Wie ist Ihr Nachname, bitte?"), (t + 3, t + 5, "caller", "Muster"),
                 (t + 6, t + 8, "agent", "Einen Moment, ich finde keinen Eintrag unter diesem Namen.")]
    rows.append((41.0, 43.0, "agent", "Danke, für wann möchten Sie den Termin?"))
    (loop,) = d.detect_loops(spans(*rows), NAME_TOOLS.iloc[:0], duration_s=45.0)
    assert loop.label == "re-asks the caller's name 4×"
    assert (loop.start_s, loop.end_s, loop.details["loop_start_s"]) == (10.0, 41.0, 0.0)


def test_bad_arguments_placeholder_call_id_and_past_dates():
    from datetime import date

    calls = tools(("check_availability_v17", 1.0, 2.0, True, {"datum": "04.10.2023", "call_id": "call_1"}),
                  ("check_availability_v17", 3.0, 4.0, True, {"datum": "2025-10-27", "call_id": "call_" + "a" * 27}),
                  ("book_appointment_v17", 5.0, 6.0, True, {"datum": "24.10.2025", "uhrzeit": "16:00"}))
    found = d.detect_tools(calls, spans(), slow_tool_s=2.0, call_date=date(2025, 10, 24))
    assert [f.label for f in found] == [
        "check_availability_v17: call_id='call_1' is not a Retell call id (P18)",
        "check_availability_v17: datum='04.10.2023' lies before the call's date 2025-10-24"]
    assert all(f.kind == "bad_argument" and f.removable_s == 0 for f in found)
    assert len(d.detect_tools(calls, spans(), slow_tool_s=2.0)) == 1  # no call date: only the P18 check


def test_the_two_steps_of_one_booking_are_no_duplicate_side_effect():
    args = {"datum": "02.12.2025", "uhrzeit": "10:00"}
    calls = tools(("start_booking", 1.0, 1.5, True, args), ("confirm_booking", 3.0, 4.0, True, args),
                  ("confirm_booking_v2", 6.0, 7.0, True, args))
    assert function_family("start_booking") == function_family("confirm_booking") == "book_appointment"
    found = [f for f in d.detect_tools(calls, spans(), slow_tool_s=2.0) if f.kind == "duplicate_side_effect"]
    assert [(f.details["name"], f.details["occurrence"]) for f in found] == [("confirm_booking_v2", 2)]
