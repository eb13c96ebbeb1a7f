"""The injected incident calls of the demo world, scripted second by second.

Private helper of :mod:`rca_toolkit.demo`. Each script gives the session start (Berlin wall
time), the Retell duration, the utterances ``(role, text, start_s, end_s)`` and the tool calls
``(name, args, start_s, end_s, result, forced_error)`` measured from the Retell start.
:func:`plans` turns them into the same plan frames as the background traffic, and
:func:`reference_truth` states what an analysis must find in them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rca_toolkit.demo import spec as S

LOOP_CALL = "call_ab45deadd7db66c4956d5243861"
DEAD_AIR_CALL = "call_4539054ee4892c6abce031bdf95"
BASELINE_CALL = "call_567cf1b23c68ba38ebdd9578ea2"
DATE_CALL = "call_de1656496a133e2cbcd88664988"
RACE_CALL = "call_331523b6c42f67e17669297bc5c"
RACE_CALL_LOCAL_ID = 569
D8_CALL = "call_d8842d43a3d033e23bab4d0365c"

NAME_PROMPTS = (
    "Könnten Sie mir bitte Ihren Nachnamen nennen?",
    "Könnten Sie mir Ihren Nachnamen bitte noch einmal buchstabieren?",
    "Könnten Sie mir Ihren Nachnamen bitte noch einmal buchstabieren?",
    "Könnten Sie Ihren Nachnamen bitte noch einmal buchstabieren?",
    "Könnten Sie mir Ihren Nachnamen bitte nochmal buchstabieren?",
    "Könnten Sie mir Ihren Nachnamen bitte noch einmal langsam buchstabieren?",
    "Könnten Sie mir Ihren Nachnamen bitte ein letztes Mal buchstabieren?",
)
NAME_ANSWERS = ("Müller, Hans Müller.", "M, Ü, L, L, E, R.", "Müller mit Ü, also M U E L L E R.",
                "M wie Martha, Ü, L, L, E, R.", "Müller. M. Ü. L. L. E. R.", "Mül-ler, mit Umlaut.",
                "Müller, wie der Müller in der Mühle.")
NAME_ARGS = ("Müller", "Mueller", "Muller", "Müller", "Mueller", "Müler", "Müller")
LOOP_ITERATION_S = 101.0 / 6
LOOP_EXTRA_START_S = 19.0
LOOP_END_S = LOOP_EXTRA_START_S + 6 * LOOP_ITERATION_S  # 120.0
GREETING = "Guten Tag, Sie sprechen mit der Terminannahme. Wie kann ich Ihnen helfen?"
NOT_FOUND = {"success": True, "found": False, "message": "Kein Kunde mit diesem Namen gefunden"}
OK = {"success": True}
INIT = ("initialize_call", {}, 0.55, 1.6, {"success": True, "data": {"company": "Demo Salon"}}, "")


def _loop_call() -> dict:
    segs = [("agent", GREETING, 0.8, 5.6),
            ("user", "Hallo, ich möchte gerne einen Termin für einen Herrenhaarschnitt am Montag vormittag.", 6.3, 10.9),
            ("agent", NAME_PROMPTS[0], 11.6, 14.6), ("user", NAME_ANSWERS[0], 15.3, 17.0)]
    tools = [INIT, ("check_customer", {"name": NAME_ARGS[0]}, 17.4, 18.3, NOT_FOUND, "")]
    for k in range(1, 7):
        t0 = LOOP_EXTRA_START_S + (k - 1) * LOOP_ITERATION_S
        segs += [("agent", NAME_PROMPTS[k], t0 + 0.4, t0 + 3.9), ("user", NAME_ANSWERS[k], t0 + 4.6, t0 + 9.6),
                 ("agent", "Einen Moment, ich finde leider keinen Eintrag unter diesem Namen.", t0 + 11.4, t0 + 15.9)]
        tools.append(("check_customer", {"name": NAME_ARGS[k]}, t0 + 10.0, t0 + 10.9, NOT_FOUND, ""))
    segs += [("agent", "Vielen Dank, Herr Müller. Ich prüfe die Verfügbarkeit für Montag.", 120.4, 123.6),
             ("agent", "Am Montag um 10 Uhr ist ein Termin frei. Soll ich ihn für Sie buchen?", 126.3, 131.0),
             ("user", "Ja, bitte.", 131.7, 133.0),
             ("agent", "Es tut mir leid, bei der Buchung ist ein technischer Fehler aufgetreten. "
                       "Bitte rufen Sie später noch einmal an. Auf Wiederhören.", 137.9, 143.9)]
    slot = {"datum": "20.10.2025", "uhrzeit": "10:00", "dienstleistung": "Herrenhaarschnitt"}
    tools += [("check_availability", slot, 123.8, 125.9, {"success": True, "available": True}, ""),
              ("book_appointment", {**slot, "name": "Hans Müller"}, 133.4, 137.4, None, "")]
    return {"call_id": LOOP_CALL, "session_start": "2025-10-18 12:09:27", "duration_ms": 144_481,
            "offset_ms": 588, "disconnection_reason": "agent_hangup", "agent_version": 106,
            "segments": segs, "tools": tools}


def _dead_air_call() -> dict:
    slot = {"datum": "21.10.2025", "uhrzeit": "16:00", "dienstleistung": "Herrenhaarschnitt"}
    segs = [("agent", GREETING, 0.7, 4.2),
            ("user", "Ich möchte einen Termin am Dienstag um 16 Uhr.", 4.9, 8.4),
            ("agent", "Hallo?", 27.7, 28.3), ("user", "Ja, ich bin noch da.", 29.0, 30.6),
            ("agent", "Einen Moment, ich prüfe die Verfügbarkeit.", 31.0, 33.6),
            ("agent", "Leider ist Dienstag um 16 Uhr nicht verfügbar. Möchten Sie einen anderen Termin?", 35.5, 41.2),
            ("user", "Das kann nicht sein, online ist der Termin frei.", 42.0, 46.8),
            ("agent", "Es tut mir leid, laut System ist der Termin belegt. Kann ich Ihnen einen anderen anbieten?", 47.3, 53.0),
            ("user", "Nein danke.", 54.0, 56.2),
            ("agent", "Dann wünsche ich Ihnen noch einen schönen Tag.", 57.0, 61.5),
            ("user", "Tschüss.", 62.3, 63.4),
            ("agent", "Falls Sie es sich anders überlegen, rufen Sie uns gerne wieder an. Auf Wiederhören.", 64.0, 70.9)]
    not_available = {"success": True, "available": False, "message": "Dieser Termin ist leider nicht verfügbar."}
    tools = [INIT, ("check_availability", slot, 33.8, 35.0, not_available, "")]
    return {"call_id": DEAD_AIR_CALL, "session_start": "2025-10-18 16:03:59", "duration_ms": 72_044,
            "offset_ms": 612, "disconnection_reason": "user_hangup", "agent_version": 106,
            "segments": segs, "tools": tools}


def _filler(segs: list, start: float, end: float) -> list:
    """Alternating small-talk turns from ``start`` to ``end`` (keeps silences short)."""
    lines = (("user", "Und wie lange dauert das ungefähr?"), ("agent", "Etwa eine halbe Stunde."),
             ("user", "Gut, danke für die Auskunft."), ("agent", "Gern geschehen. Kann ich sonst noch helfen?"))
    t, k = start, 0
    while t + 4.0 < end:
        role, text = lines[k % len(lines)]
        segs.append((role, text, round(t, 1), round(t + 3.2, 1)))
        t += 4.2
        k += 1
    return segs


def _baseline_call() -> dict:
    slot = {"datum": "21.10.2025", "uhrzeit": "11:00", "dienstleistung": "Damenhaarschnitt"}
    segs = [("agent", GREETING, 0.8, 4.5), ("user", "Ich hätte gern einen Termin am Dienstag um elf.", 5.2, 8.9),
            ("agent", "Einen Moment bitte, ich prüfe die Verfügbarkeit.", 9.5, 11.8),
            ("agent", "Dienstag um 11 Uhr ist frei. Soll ich ihn eintragen?", 13.6, 18.0),
            ("user", "Ja, gerne.", 18.8, 21.0), ("agent", "Darf ich Ihren Namen haben?", 21.5, 24.0),
            ("user", "Schmidt, Anna Schmidt.", 24.6, 26.0),
            ("agent", "Vielen Dank, Frau Schmidt, Ihr Termin ist eingetragen.", 28.8, 34.0)]
    tools = [INIT, ("check_availability", slot, 12.0, 13.1, {"success": True, "available": True}, ""),
             ("collect_appointment_data", {**slot, "name": "Anna Schmidt"}, 26.5, 28.3, None, "")]
    return {"call_id": BASELINE_CALL, "session_start": "2025-10-18 13:54:59", "duration_ms": 64_812,
            "offset_ms": 540, "disconnection_reason": "user_hangup", "agent_version": 106,
            "segments": _filler(segs, 35.0, 62.0), "tools": tools}


def _date_call() -> dict:
    segs = [("agent", GREETING, 0.8, 4.6),
            ("user", "Ich hätte gern einen Termin nächste Woche Dienstag um 14 Uhr.", 5.3, 9.8),
            ("agent", "Einen Moment bitte.", 10.3, 12.5),
            ("agent", "Am Dienstag, den 28. Oktober um 14 Uhr ist frei. Soll ich buchen?", 14.7, 21.0),
            ("user", "Nein, ich meinte nächste Woche, den 21.", 21.8, 26.5), ("agent", "Einen Moment.", 27.0, 29.0),
            ("agent", "Am 21. ist leider nichts frei. Ich könnte Ihnen Donnerstag, den 24. Oktober um 10 Uhr anbieten.",
             31.1, 38.5),
            ("user", "Der 24. ist doch ein Freitag?", 39.3, 44.0),
            ("agent", "Entschuldigung, ich meinte Donnerstag, den 24. Oktober.", 44.6, 52.0),
            ("user", "Ich überlege es mir noch.", 52.8, 58.0)]
    tools = [INIT,
             ("check_availability", {"datum": "28.10.2025", "uhrzeit": "14:00", "dienstleistung": "Herrenhaarschnitt"},
              12.8, 14.2, {"success": True, "available": True}, ""),
             ("check_availability", {"datum": "21.10.2025", "uhrzeit": "14:00", "dienstleistung": "Herrenhaarschnitt"},
              29.3, 30.6, {"success": True, "available": False, "alternatives": ["24.10.2025 10:00"]}, "")]
    return {"call_id": DATE_CALL, "session_start": "2025-10-18 15:53:36", "duration_ms": 103_612,
            "offset_ms": 701, "disconnection_reason": "user_hangup", "agent_version": 106,
            "segments": _filler(segs, 59.0, 101.5), "tools": tools}


def _race_call() -> dict:
    slot = {"datum": "22.10.2025", "uhrzeit": "09:30", "dienstleistung": "Herrenhaarschnitt"}
    segs = [("agent", GREETING, 0.8, 4.4), ("user", "Haben Sie am Mittwoch um halb zehn etwas frei?", 5.1, 9.0),
            ("agent", "Einen Moment, ich schaue nach.", 9.6, 12.0), ("agent", "Ja, Mittwoch 9:30 ist frei.", 19.8, 23.0),
            ("user", "Super, dann buchen Sie bitte.", 23.8, 26.4), ("agent", "Auf welchen Namen?", 27.0, 28.4),
            ("user", "Weber.", 29.0, 30.6),
            ("agent", "Es tut mir leid, der Termin wurde gerade vergeben.", 33.8, 38.0)]
    tools = [INIT, ("check_availability", slot, 18.2, 19.3, {"success": True, "available": True}, ""),
             ("book_appointment", {**slot, "name": "Weber"}, 31.3, 33.1, None, "calcom_409")]
    return {"call_id": RACE_CALL, "session_start": "2025-10-18 18:39:20", "duration_ms": 60_512,
            "offset_ms": 655, "disconnection_reason": "user_hangup", "agent_version": 106,
            "segments": _filler(segs, 38.8, 58.5), "tools": tools}


def _d8_call() -> dict:
    slot = {"datum": "14.11.2025", "uhrzeit": "15:00", "dienstleistung": "Beratung"}
    segs = [("agent", GREETING, 0.8, 4.6), ("user", "Ich brauche einen Beratungstermin morgen um 15 Uhr.", 5.4, 9.9),
            ("agent", "Gerne. Für welche Filiale?", 10.5, 12.4)]
    segs = _filler(segs, 13.0, 32.5)
    segs += [("agent", "Morgen um 15 Uhr ist frei. Darf ich Ihren Namen und Ihre Telefonnummer notieren?", 34.9, 40.0)]
    segs = _filler(segs, 40.8, 70.8)
    segs += [("agent", "Leider konnte der Termin nicht gebucht werden.", 73.4, 77.0)]
    segs = _filler(segs, 77.8, 86.0)
    tools = [("initialize_call", {}, 0.6, 1.6, {"success": True}, ""),
             ("check_availability_v17", slot, 33.2, 34.4, {"success": True, "available": True}, ""),
             ("start_booking", {**slot, "name": "Klein"}, 71.5, 72.9, None, "calcom_400")]
    return {"call_id": D8_CALL, "session_start": "2025-11-13 15:41:12", "duration_ms": 88_304,
            "offset_ms": 623, "disconnection_reason": "user_hangup", "agent_version": 21,
            "segments": segs, "tools": tools}


def scripts() -> list[dict]:
    """Every scripted call (all with a Retell object in ``calls.raw``)."""
    return [_loop_call(), _dead_air_call(), _baseline_call(), _date_call(), _race_call(), _d8_call()]


# Test/demo/temp/typo rows (P4): session start, status, Retell duration, version, traces.
TEST_CALLS = (
    ("test_123", "2025-10-20 10:12:03", "ended", 12_000, None, ()),
    ("test_456", "2025-10-20 10:15:41", "ended", 8_500, None, ()),
    ("test_999", "2025-10-21 09:02:17", "ended", 30_000, 118, ()),
    ("test_direct_999", "2025-10-21 09:05:55", "ended", None, None, ()),
    ("test_fix_verification_001", "2025-10-23 14:20:10", "completed", 15_000, None, ()),
    ("test_opcache_cleared", "2025-10-23 14:31:47", "completed", 5_000, None, ()),
    ("demo_call_1761249581", "2025-10-23 21:59:41", "completed", 45_000, 5,
     (("check_customer", 3.0, 800), ("check_availability_v17", 12.0, 2_100), ("book_appointment_v17", 24.0, 1_500))),
    ("temp_1761122080_9e0002da", "2025-10-22 10:34:40", "inbound", None, None, ()),
    (S.TYPO_ID, "2025-10-18 15:53:28", "ended", None, None, ()),
)


def reference_truth() -> dict:
    """What an analysis must find in the scripted calls (ground truth ``reference_calls``)."""
    loop = _loop_call()
    prompts = [s for s in loop["segments"] if s[1] in NAME_PROMPTS]
    return {
        LOOP_CALL: {
            "duration_ms": 144_481, "session_started_at_berlin": "2025-10-18T12:09:27+02:00",
            "disconnection_reason": "agent_hangup", "agent_version": 106,
            "loop": {"kind": "name-verification re-ask", "iterations": 7, "tool": "check_customer",
                     "first_prompt_start_s": prompts[0][2], "extra_iterations_start_s": LOOP_EXTRA_START_S,
                     "loop_end_s": round(LOOP_END_S, 3), "extra_span_s": round(LOOP_END_S - LOOP_EXTRA_START_S, 3),
                     "prompt_starts_s": [round(p[2], 3) for p in prompts],
                     "check_customer_args": list(NAME_ARGS)},
            "check_availability": {"start_s": 123.8, "end_s": 125.9, "latency_ms": 2_100},
            "book_appointment": {"start_s": 133.4, "end_s": 137.4, "latency_ms": 4_000, "error": S.PHANTOM_ERROR,
                                 "frame": S.BOOK_FRAME},
            "expected_without_extra_iterations_s": round(144.481 - (LOOP_END_S - LOOP_EXTRA_START_S), 3),
            "target_s": 45,
        },
        DEAD_AIR_CALL: {"duration_ms": 72_044, "disconnection_reason": "user_hangup",
                        "dead_air": {"from_s": 8.4, "to_s": 27.7, "gap_s": 19.3, "tool_calls_inside": 0},
                        "false_not_available": {"function": "check_availability", "start_s": 33.8}},
        BASELINE_CALL: {"duration_ms": 64_812, "outcome": "success (collect path after the partial fix)"},
        DATE_CALL: {"duration_ms": 103_612, "typo_twin": S.TYPO_ID,
                    "date_errors": {"requested": "nächste Woche Dienstag", "tool_datum": "28.10.2025",
                                    "offered": "24.10.2025 called Donnerstag (it is a Friday)"}},
        RACE_CALL: {"duration_ms": 60_512, "local_calls_id": RACE_CALL_LOCAL_ID,
                    "availability_end_s": 19.3, "booking_start_s": 31.3, "gap_s": 12.0, "error": S.CALCOM_409},
        D8_CALL: {"availability_start_s": 33.2, "booking_start_s": 71.5, "gap_s": 38.3, "error": S.CALCOM_400},
    }


def plans(scripts_: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Scripts -> (call plan, trace plan, segment plan) with a script-local index ``local``."""
    calls, traces, segs = [], [], []
    for i, sc in enumerate(scripts_):
        session_us = S.berlin(sc["session_start"])
        calls.append({"start_us": session_us - sc["offset_ms"] * S.MS, "dur_ms": float(sc["duration_ms"]),
                      "company_id": 1, "customer_id": -1, "sess_offset_us": sc["offset_ms"] * S.MS,
                      "sess_delay_us": sc["offset_ms"] * S.MS, "disconnection_reason": sc["disconnection_reason"],
                      "anonymous": False, "kind": "injected", "call_id": sc["call_id"],
                      "agent_version": sc["agent_version"]})
        for seq, (name, args, t0, t1, result, forced) in enumerate(sc["tools"], start=1):
            path = {"collect_appointment_data": "collect_appointment"}.get(name, "")
            if name.startswith(("book_appointment", "start_booking")):
                path = "book_appointment"
            traces.append({"local": i, "seq": seq, "function_name": name, "path": path, "offset_ms": round(t0 * 1000),
                           "real_ms": round((t1 - t0) * 1000), "forced_error": forced, "args": args, "result": result})
        for seq, (role, text, t0, t1) in enumerate(sorted(sc["segments"], key=lambda s: s[2]), start=1):
            segs.append({"local": i, "seq": seq, "role": role, "text": text, "offset_ms": round(t0 * 1000),
                         "dur_ms": round((t1 - t0) * 1000)})
    return pd.DataFrame(calls), pd.DataFrame(traces), pd.DataFrame(segs)


def test_plans() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test/demo/temp/typo ids -> (call plan, trace plan) with fixed values."""
    calls, traces = [], []
    for i, (cid, start, status, dur, version, tools) in enumerate(TEST_CALLS):
        calls.append({"start_us": S.berlin(start) - 500 * S.MS, "dur_ms": np.nan if dur is None else float(dur),
                      "company_id": 1, "customer_id": -1, "sess_offset_us": 500 * S.MS, "sess_delay_us": 500 * S.MS,
                      "disconnection_reason": "system_timeout" if cid == S.TYPO_ID else (
                          None if status == "inbound" else "user_hangup"),
                      "anonymous": False, "kind": "test", "call_id": cid, "agent_version": version,
                      "forced_status": status})
        for seq, (name, at, ms) in enumerate(tools, start=1):
            path = "book_appointment" if name.startswith("book_appointment") else ""
            traces.append({"local": i, "seq": seq, "function_name": name, "path": path, "offset_ms": at * 1000,
                           "real_ms": ms, "forced_error": "", "args": {}, "result": {"success": True}})
    return pd.DataFrame(calls), pd.DataFrame(traces)
