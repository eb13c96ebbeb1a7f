"""Two-step bookings in the demo world: a small agent version whose ``start_booking`` only validates.

Private helper of :mod:`rca_toolkit.demo`. Real agents book in two steps: ``start_booking`` checks the
data and answers ``{"success": true, "data": {"status": "validating", "next_action": "confirm_booking"}}``
(or refuses it with ``{"success": false, "error": ...}``), then ``confirm_booking`` makes the booking.
Five scripted calls of agent version :data:`AGENT_VERSION` (company :data:`COMPANY`) on the last evening
of the window show every case; each tool call says what it is (``ROLES``), so the ground truth follows
from the scripts, not from the rule under test:

* ``validate``     a validation a later step of the call completes: no attempt of its own;
* ``book``         the step that books (its forced error, if any, decides the outcome);
* ``refuse``       a validation that refused the data: a failed attempt;
* ``unconfirmed``  a validation nothing followed (the caller hung up): a failed attempt, nothing booked.

Why a world of its own, appended: every other row of the demo world comes from one random generator
and gets its id in time order, so extra calls inside it would shift the draws and ids that other tests
quote. These calls draw from their own generator, start after every other row of the world
(:func:`extend` checks it) and take the ids after the existing ones: the rest of the world is unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rca_toolkit.demo import background as B
from rca_toolkit.demo import injected as I
from rca_toolkit.demo import rows as R
from rca_toolkit.demo import spec as S
from rca_toolkit.demo import tables as T
from rca_toolkit.demo.retell import call_object, start_ms_of

AGENT_VERSION = 25
COMPANY = 3
# the last four hex digits differ above the low bits: the benchmark world's copies XOR them with the copy number
BOOKED_CALL = "call_250000000000000000000001000"
CONFIRM_FAILED_CALL = "call_250000000000000000000002000"
REFUSED_CALL = "call_250000000000000000000003000"
UNCONFIRMED_CALL = "call_250000000000000000000004000"
RETRY_CALL = "call_250000000000000000000005000"
ROLES = ("validate", "book", "refuse", "unconfirmed")

SLOT = {"datum": "02.12.2025", "uhrzeit": "10:00", "dienstleistung": "Herrenhaarschnitt"}
# the answer shapes of the real handler (askproai RetellFunctionCallHandler::startBooking / confirmBooking)
VALIDATING = {"success": True, "data": {"status": "validating", "next_action": "confirm_booking",
                                        "service_name": "Herrenhaarschnitt", "appointment_time": "2025-12-02T10:00:00+01:00"},
              "message": "Ich prüfe jetzt die Verfügbarkeit für Herrenhaarschnitt am Dienstag, 02. Dezember um 10:00 Uhr."}
VALIDATED = {"success": True, "status": "validated", "next_action": "confirm_booking"}
REFUSED = {"success": False, "error": "Dieser Service ist leider nicht verfügbar"}
CONFIRMED = {"success": True, "data": {"status": "booked", "appointment_time": "2025-12-02T10:00:00+01:00"},
             "message": "Ihr Termin ist gebucht."}
AVAILABLE = {"success": True, "available": True}
GREETING = I.GREETING


def _call(call_id: str, session_start: str, duration_ms: int, segments: list, tools: list) -> dict:
    """A script in :mod:`rca_toolkit.demo.injected`'s shape; ``tools`` carry their role as a 7th item."""
    return {"call_id": call_id, "session_start": session_start, "duration_ms": duration_ms, "offset_ms": 600,
            "disconnection_reason": "user_hangup", "agent_version": AGENT_VERSION, "segments": segments,
            "tools": [tool[:6] for tool in tools], "roles": [tool[6] for tool in tools]}


def _opening(name: str) -> tuple[list, list]:
    segs = [("agent", GREETING, 0.8, 4.6), ("user", "Ich hätte gern einen Herrenhaarschnitt am Dienstag um zehn.", 5.3, 9.8),
            ("agent", "Einen Moment bitte, ich prüfe die Verfügbarkeit.", 10.3, 12.0),
            ("agent", "Dienstag um 10 Uhr ist frei. Auf welchen Namen darf ich buchen?", 13.6, 17.5),
            ("user", f"{name}.", 18.2, 19.4)]
    tools = [(*I.INIT, ""), ("check_availability_v17", SLOT, 12.0, 13.1, AVAILABLE, "", "")]
    return segs, tools


def scripts() -> list[dict]:
    """The five two-step calls, one case each (the last one books at the second try)."""
    args = {**SLOT, "name": "Schneider"}
    segs, tools = _opening("Schneider")
    booked = _call(BOOKED_CALL, "2025-11-30 20:30:00", 45_210, segs + [
        ("agent", "Ich trage den Termin jetzt für Sie ein.", 20.0, 22.4),
        ("agent", "Ihr Termin am Dienstag um 10 Uhr ist gebucht. Auf Wiederhören!", 33.6, 38.9)], tools + [
        ("start_booking", args, 20.2, 20.7, VALIDATING, "", "validate"),
        ("confirm_booking", args, 30.1, 33.2, CONFIRMED, "", "book")])
    segs, tools = _opening("Schneider")
    failed = _call(CONFIRM_FAILED_CALL, "2025-11-30 20:36:00", 47_880, segs + [
        ("agent", "Ich trage den Termin jetzt für Sie ein.", 20.0, 22.4),
        ("agent", "Es tut mir leid, der Termin wurde gerade vergeben. Bitte rufen Sie später noch einmal an.", 33.9, 40.2)],
        tools + [("start_booking", args, 20.2, 20.7, VALIDATING, "", "validate"),
                 ("confirm_booking", args, 30.1, 33.5, None, "calcom_409", "book")])
    segs, tools = _opening("Schneider")
    refused = _call(REFUSED_CALL, "2025-11-30 20:42:00", 31_450, segs + [
        ("agent", "Diesen Service kann ich leider nicht buchen. Auf Wiederhören.", 21.2, 26.0)],
        tools + [("start_booking", {**args, "dienstleistung": "Dauerwelle"}, 20.2, 20.9, REFUSED, "", "refuse")])
    segs, tools = _opening("Schneider")
    unconfirmed = _call(UNCONFIRMED_CALL, "2025-11-30 20:48:00", 27_300, segs + [
        ("agent", "Einen Moment, ich prüfe Ihre Angaben.", 20.0, 22.4), ("user", "Ach, ich rufe später wieder an.", 23.0, 25.6)],
        tools + [("start_booking", args, 20.2, 20.6, VALIDATED, "", "unconfirmed")])
    segs, tools = _opening("Schneider")
    retry = _call(RETRY_CALL, "2025-11-30 20:54:00", 74_600, segs + [
        ("agent", "Ich trage den Termin jetzt für Sie ein.", 20.0, 22.4),
        ("agent", "Der Termin wurde gerade vergeben. Um 11 Uhr wäre noch frei, passt Ihnen das?", 33.9, 39.0),
        ("user", "Ja, 11 Uhr passt.", 39.8, 41.5), ("agent", "Ich trage den Termin jetzt für Sie ein.", 42.0, 44.4),
        ("agent", "Ihr Termin am Dienstag um 11 Uhr ist gebucht. Auf Wiederhören!", 55.2, 60.5)],
        tools + [("start_booking", args, 20.2, 20.7, VALIDATED, "", "validate"),
                 ("confirm_booking", args, 30.1, 33.5, None, "calcom_409", "book"),
                 ("start_booking", {**args, "uhrzeit": "11:00"}, 42.2, 42.7, VALIDATING, "", "validate"),
                 ("confirm_booking", {**args, "uhrzeit": "11:00"}, 51.0, 54.9, CONFIRMED, "", "book")])
    return [booked, failed, refused, unconfirmed, retry]


def _plan(sc: list[dict], rng: np.random.Generator, first_local_id: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    c, t, g = I.plans(sc)
    t["cidx"], g["cidx"] = t.pop("local"), g.pop("local")
    t["role"] = [role for s in sc for role in s["roles"]]
    t["path"] = np.where(t["role"].isin(["book", "refuse", "unconfirmed"]), "book_appointment", "")
    c["company_id"] = COMPANY
    c["is_real"] = True
    c["forced_status"] = None
    c["session_id"] = B.uuids(rng, len(c))
    c["stuck"] = c["cleanup"] = False
    c["local_id"] = first_local_id + np.argsort(np.argsort(c["start_us"].to_numpy(), kind="stable"), kind="stable")
    return c, t, g


def _attempts(t: pd.DataFrame, c: pd.DataFrame) -> pd.DataFrame:
    """The attempts the scripts declare: every ``book`` step (its status decides), every ``refuse`` and
    ``unconfirmed`` validation (failed, nothing booked)."""
    att = R.attempts(t, c)
    role = t.loc[att["trace_key"], "role"].to_numpy()
    by_rule = np.isin(role, ["refuse", "unconfirmed"])
    att.loc[by_rule, "outcome"] = "failed"
    att.loc[by_rule, "error_kind"] = np.where(role[by_rule] == "refuse", "refused", "unconfirmed")
    att.loc[by_rule, "calcom_booked"] = False
    return att


# (table, time column its ids follow): the appended rows must come after every existing one
ORDERED = {"retell_call_events": "occurred_at", "retell_function_traces": "started_at", "retell_transcript_segments": "occurred_at",
           "retell_error_log": "occurred_at", "webhook_events": "received_at", "appointments": "created_at", "calls": "start_timestamp"}


def extend(tables: dict[str, pd.DataFrame], truth: dict, *, seed: int) -> None:
    """Append the two-step calls to ``tables`` (ids after the existing ones) and their ground truth to ``truth``."""
    rng = np.random.default_rng([seed, 2])  # a stream of their own: the world's draws stay as they were
    sc = scripts()
    taken = set(tables["retell_call_sessions"]["call_id"])
    if taken & {s["call_id"] for s in sc}:
        raise AssertionError("a two-step demo call id is already taken")  # generator bug, never user input
    c, t, g = _plan(sc, rng, int(tables["calls"]["id"].max()) + 1)
    t = R.classify_traces(t, c, rng)  # after every incident window: only the scripts' forced errors
    att = _attempts(t, c)
    c["raw"] = None
    for k, s in enumerate(sc):
        kinds = t[t["cidx"] == k].sort_values("seq")["error_kind"].tolist()
        c.at[k, "raw"] = call_object(s, start_ms=start_ms_of(s), agent_id=S.AGENT_ID_NEW, tool_outcomes=kinds)
    errs = pd.concat([R.error_rows(t), R.duplicate_rows(c)], ignore_index=True)
    traces, events, key_to_event = T.traces_and_events(c, t, errs, rng)
    hooks, appts, appt_of_call, _ = T.bookings(c, att, t, rng)
    att_cidx = t.loc[att["trace_key"], "cidx"].to_numpy()
    won = np.bincount(att_cidx, weights=(att["outcome"] == "success").to_numpy(), minlength=len(c))
    outcome = pd.Series(np.where(won > 0, "success", "failed"))
    offsets = {name: int(tables[name]["id"].max()) for name in ORDERED if name != "calls"}
    events["id"] += offsets["retell_call_events"]
    traces["event_id"] = traces["event_id"] + offsets["retell_call_events"]
    traces["id"] += offsets["retell_function_traces"]
    errors = T.errors(c, errs, traces["id"], key_to_event + offsets["retell_call_events"])
    errors["id"] += offsets["retell_error_log"]
    hooks["id"] += offsets["webhook_events"]
    appts["id"] += offsets["appointments"]
    appt_of_call = appt_of_call + offsets["appointments"]
    segments = T.segments(c, g)
    segments["id"] += offsets["retell_transcript_segments"]
    extra = {
        "retell_call_sessions": T.sessions(c, t, g, errs, events),
        "retell_call_events": events, "retell_function_traces": traces, "retell_transcript_segments": segments,
        "retell_error_log": errors, "calls": T.calls(c, rng, outcome, appt_of_call),
        "appointments": appts.drop(columns=["_double", "_cidx"]), "webhook_events": hooks,
    }
    for name, col in ORDERED.items():
        if len(extra[name]) and extra[name][col].min() <= tables[name][col].max():
            raise AssertionError(f"two-step demo rows of {name} do not come after the world's")  # ids would not follow time
    for name, frame in extra.items():
        tables[name] = pd.concat([tables[name], frame], ignore_index=True)
    _truth(truth, c, t, att)


def _truth(truth: dict, c: pd.DataFrame, t: pd.DataFrame, att: pd.DataFrame) -> None:
    """``two_step_bookings`` (per call: its attempts in time order) and the world's totals with these calls."""
    att = att.sort_values("at_us", kind="stable")
    calls = {}
    for call_id in c["call_id"]:
        mine = att[att["call_id"] == call_id]
        steps = t[(t["cidx"] == int(np.flatnonzero(c["call_id"].to_numpy() == call_id)[0])) & (t["role"] != "")]
        calls[call_id] = {"booking_traces": int(len(steps)), "attempts": [
            {"function": f, "at_utc": S.iso_utc(int(at)), "outcome": o, "kind": k}
            for f, at, o, k in zip(mine["function"], mine["at_us"], mine["outcome"], mine["error_kind"])]}
    truth["two_step_bookings"] = {
        "agent_id": S.AGENT_ID_NEW, "agent_version": AGENT_VERSION, "company_id": COMPANY,
        "window": {"start": S.iso_berlin(int(c["start_us"].min())),
                   "end": S.iso_berlin(int((c["start_us"] + c["dur_ms"] * S.MS).max()) + S.US)},
        "attempts": int(len(att)), "success": int((att["outcome"] == "success").sum()),
        "failed": int((att["outcome"] == "failed").sum()), "booking_traces": int((t["role"] != "").sum()),
        "calls": calls,
        "note": ("start_booking only validates (its response names next_action confirm_booking); the confirm_booking "
                 "that follows is the attempt; a refused or unconfirmed validation is a failed attempt"),
    }
    truth["calls_total"] += len(c)
    truth["calls_real"] += len(c)
    truth["companies"][str(COMPANY)] = len(c)
    if truth.get("attempts"):
        for key, values in (("call_id", att["call_id"].tolist()), ("path", att["path"].tolist()),
                            ("function", att["function"].tolist()),
                            ("at_utc", [S.iso_utc(int(x)) for x in att["at_us"]]), ("outcome", att["outcome"].tolist()),
                            ("error_kind", att["error_kind"].tolist()), ("orphaned", att["orphaned"].astype(bool).tolist()),
                            ("is_real", att["is_real"].astype(bool).tolist())):
            truth["attempts"][key] = truth["attempts"][key] + values
