"""Two-step bookings (rules.functions.booking_steps): which booking trace is an attempt, decided from the response
or per agent version; and its SQL twins, which pick the responses the rule must read.

Responses are the real shapes of the askproai handler (``startBooking`` answers ``{"success": true, "data":
{"status": "validating", "next_action": "confirm_booking", ...}}`` or ``{"success": false, "error": ...}``).
The twins run on SQLite and the real MariaDB (names) and on generated rows (Hypothesis, SQLite): the lean read
sends exactly the responses the rule needs, so the rule gives the same steps on what was sent as on every text.
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import functions
from rca_toolkit.rules.jsonutil import decode_json
from rca_toolkit.sources.attempt_inputs import contains_any
from rule_worlds import BACKENDS, empty_world, insert, query

T0 = pd.Timestamp("2025-11-30T19:30:00Z")
VALIDATING = {"success": True, "data": {"status": "validating", "next_action": "confirm_booking",
                                        "service_name": "Herrenhaarschnitt", "appointment_time": "2025-11-07T10:00:00+01:00"},
              "message": "Ich prüfe jetzt die Verfügbarkeit für Herrenhaarschnitt am Freitag, 07. November um 10:00 Uhr."}
VALIDATED = {"success": True, "status": "validated", "next_action": "confirm_booking"}
REFUSED = {"success": False, "error": "Dieser Service ist leider nicht verfügbar"}
BOOKED = {"success": True, "booking_id": "confirmed"}
A, B = "call_" + "a" * 27, "call_" + "b" * 27


def frame(*rows, agent=None) -> pd.DataFrame:
    """rows: (call, seconds after T0, function name, status, response)."""
    out = pd.DataFrame([{"call_id": c, "started_at": T0 + pd.Timedelta(seconds=s), "trace_id": i + 1, "function_name": n,
                         "status": st_, "output_result": r} for i, (c, s, n, st_, r) in enumerate(rows)])
    if agent is not None:
        out["agent_id"], out["agent_version"] = agent
    return out


def steps(f: pd.DataFrame, setting: dict | None = None) -> list:
    got = functions.booking_steps(f, f["status"].eq("success").to_numpy(), {} if setting is None else setting)
    return got["step"].tolist()


# --------------------------------------------------------------------------- the response
def test_next_action_names_the_booking_function_a_validation_hands_over_to():
    assert functions.next_action(VALIDATING) == "confirm_booking"  # under "data", as the real handler answers
    assert functions.next_action(VALIDATED) == "confirm_booking"  # at the top level
    assert functions.next_action({"next_action": " confirm_booking_v2 "}) == "confirm_booking_v2"
    for other in ({"success": True, "next_action": "end_call"}, {"next_action": ""}, {"next_action": 3}, BOOKED, REFUSED,
                  None, "next_action", {"data": "next_action"}):
        assert functions.next_action(other) is None
    assert functions.response_refused(REFUSED) and not functions.response_refused({"success": "false"})
    assert not functions.response_refused({"data": {"status": "validating"}})  # says nothing of success: not refused
    assert functions.response_error(REFUSED) == "Dieser Service ist leider nicht verfügbar"
    assert functions.response_error({"success": False, "message": "Bitte erneut", "error": "Slot belegt"}) == "Slot belegt"
    assert functions.response_error({"success": False, "message": " Anrufkontext nicht gefunden "}) == "Anrufkontext nicht gefunden"


# --------------------------------------------------------------------------- which trace is the attempt
def test_a_validation_completed_by_its_confirmation_is_no_attempt_of_its_own():
    failed = frame((A, 20, "start_booking", "success", VALIDATING), (A, 30, "confirm_booking", "error", None))
    assert steps(failed) == ["validated", "booking"]  # one attempt: the failed confirmation
    booked = frame((A, 20, "start_booking", "success", VALIDATED), (A, 30, "confirm_booking_v3", "success", BOOKED))
    assert steps(booked) == ["validated", "booking"]  # one successful attempt, not two


def test_a_refused_validation_is_a_failed_attempt_with_the_response_text():
    got = functions.booking_steps(frame((A, 20, "start_booking", "success", REFUSED)), [True], {})
    assert got["step"].tolist() == ["rejected"] and got["step_error"].tolist() == ["Dieser Service ist leider nicht verfügbar"]
    got = functions.booking_steps(frame((A, 20, " start_booking_v2", "success", {"success": False})), [True], {})
    assert got["step_error"].tolist() == ["start_booking refused the booking data"]
    assert steps(frame((A, 20, "start_booking", "error", None))) == ["booking"]  # a failed status decides as always
    assert steps(frame((A, 20, "start_booking", "error", REFUSED))) == ["booking"]  # also when the answer refused
    # a refusal by another function is left to its status (only a validation's answer is always read)
    assert steps(frame((A, 20, "book_appointment", "success", REFUSED))) == ["booking"]


def test_a_validation_nothing_followed_is_unconfirmed():
    got = functions.booking_steps(frame((A, 20, "start_booking", "success", VALIDATING)), [True], {})
    assert got["step"].tolist() == ["unconfirmed"]
    assert got["step_error"].tolist() == ["start_booking only validated the booking; confirm_booking never followed"]


def test_the_next_booking_trace_of_the_same_call_completes_a_validation():
    assert steps(frame((A, 10, "start_booking", "success", VALIDATED), (A, 20, "start_booking", "success", VALIDATING),
                       (A, 30, "confirm_booking", "success", BOOKED))) == ["validated", "validated", "booking"]
    assert steps(frame((A, 10, "start_booking", "success", VALIDATED), (A, 20, "confirm_booking", "error", None),
                       (A, 30, "start_booking", "success", VALIDATING))) == ["validated", "booking", "unconfirmed"]
    # another call's confirmation completes nothing; the order is by time, then trace id, not by row
    assert steps(frame((B, 25, "confirm_booking", "success", BOOKED), (A, 20, "start_booking", "success", VALIDATED))) == \
        ["booking", "unconfirmed"]
    assert steps(frame((A, 20, "confirm_booking", "success", BOOKED), (A, 20, "start_booking", "success", VALIDATED))) == \
        ["booking", "unconfirmed"]  # same instant: the later trace id comes last


def test_one_step_bookings_stay_attempts():
    assert steps(frame((A, 20, "start_booking", "success", BOOKED), (A, 40, "book_appointment_v17", "success", BOOKED))) == \
        ["booking", "booking"]
    assert steps(frame((A, 20, "start_booking", "success", None))) == ["booking"]  # no response read: no validation
    assert steps(frame((A, 20, "start_booking", "error", VALIDATING))) == ["booking"]


def test_the_setting_decides_per_agent_version():
    plain = ((A, 20, "start_booking", "success", {"success": True}), (A, 30, "confirm_booking", "success", BOOKED))
    said = ((A, 20, "start_booking", "success", VALIDATING), (A, 30, "confirm_booking", "success", BOOKED))
    agent = ("agent_x", 25)
    assert steps(frame(*plain, agent=agent), {"agent_x:25": "confirm_booking"}) == ["validated", "booking"]
    assert steps(frame(*plain, agent=agent), {"agent_x:24": "confirm_booking"}) == ["booking", "booking"]
    assert steps(frame(*said, agent=agent), {"agent_x": "start_booking"}) == ["booking", "booking"]  # one step: says nothing
    assert steps(frame(*said, agent=agent), {"25": "start_booking"}) == ["booking", "booking"]  # any agent of version 25
    assert steps(frame(*said, agent=agent), {"agent_x:25": "auto", "agent_x": "start_booking", "25": "start_booking"}) == \
        ["validated", "booking"]  # the most specific key wins
    assert steps(frame(*said, agent=(None, None)), {"25": "start_booking"}) == ["validated", "booking"]
    assert steps(frame(*plain[:1], agent=agent), {"agent_x": "confirm_booking"}) == ["unconfirmed"]
    alone = functions.booking_steps(frame(*plain[:1], agent=agent), [True], {"agent_x": "confirm_booking"})
    assert alone["step_error"].tolist() == ["start_booking only validated the booking; confirm_booking never followed"]
    # where every validation hands over, a refusal is still a failed attempt, with its text
    refused = functions.booking_steps(frame((A, 20, "start_booking", "success", REFUSED), agent=agent), [True],
                                      {"agent_x:25": "confirm_booking"})
    assert refused[["step", "step_error"]].values.tolist() == [["rejected", "Dieser Service ist leider nicht verfügbar"]]
    assert steps(frame(*plain, agent=agent)) == ["booking", "booking"]  # without a setting the response decides
    assert functions.booking_function_of("agent_x", 25.0, {"25": "confirm_booking"}) == "confirm_booking"
    assert functions.booking_function_of("agent_x", 25, {"25": "confirm_booking", "agent_x": "start_booking"}) == \
        "start_booking"  # the agent's own key before any agent's version


def test_the_setting_comes_from_rca_yaml(tmp_path, monkeypatch):
    config = tmp_path / "rca.yaml"
    config.write_text("booking_steps:\n  25: confirm_booking\n  agent_f1ce85d06a84afb989dfbb16a9: auto\n")
    monkeypatch.setenv("RCA_CONFIG", str(config))
    assert functions.booking_steps_setting() == {"25": "confirm_booking", "agent_f1ce85d06a84afb989dfbb16a9": "auto"}
    f = frame((A, 20, "start_booking", "success", {"success": True}), agent=("agent_other", 25))
    assert functions.booking_steps(f, [True])["step"].tolist() == ["unconfirmed"]  # setting=None reads the file


def test_a_wrong_setting_is_one_config_error(tmp_path, monkeypatch):
    from rca_toolkit.config import load_settings
    from rca_toolkit.errors import ConfigError

    config = tmp_path / "rca.yaml"
    monkeypatch.setenv("RCA_CONFIG", str(config))
    for text, message in (("booking_steps: {25: two_step}", "booking_steps.25='two_step' is not a booking step choice"),
                          ("booking_steps: [25]", "booking_steps is not a mapping of agent versions"),
                          ("booking_steps: {true: auto}", "booking_steps has the key True, not an agent version")):
        config.write_text(text + "\n")
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
            load_settings()


# --------------------------------------------------------------------------- SQL twins
NAMES = ["start_booking", "start_booking_v2", " start_booking ", "start_booking_v", "confirm_booking", "book_appointment_v17",
         "collect_appointment_data", "start_bookingv2", "restart_booking"]


@pytest.fixture(scope="module", params=BACKENDS)
def steps_world(request, tmp_path_factory):
    with empty_world(request.param, tmp_path_factory.mktemp("steps")) as url:
        at = datetime(2025, 11, 30, 19, 30)
        insert(url, "retell_call_sessions", [{"id": "s-1", "call_id": A, "company_id": 3, "started_at": at, "call_status": "ended"}])
        responses = [VALIDATING, VALIDATED, REFUSED, BOOKED, {"success": True, "next_action": "end_call"}, None,
                     {"message": "next_action confirm_booking"}, "not json", {"data": {"next_action": "book_appointment"}}]
        insert(url, "retell_function_traces", [
            {"call_session_id": "s-1", "function_name": name, "execution_sequence": i, "started_at": at, "status": "success",
             "output_result": r if r is None or isinstance(r, str) else json.dumps(r, ensure_ascii=i % 2 == 0)}
            for i, (name, r) in enumerate((n, r) for n in NAMES for r in responses)])
        yield url


def _sent(url: str) -> pd.DataFrame:
    """The names and responses as the lean read sends them (attempt_inputs.attempt_traces' CASE), and in full."""
    from rca_toolkit.sources import loaders

    engine = loaders.engine_for(url)
    params: dict = {}
    stored = query(url, "SELECT DISTINCT function_name FROM retell_function_traces")["function_name"]
    wanted = (f"{contains_any('output_result', (functions.NEXT_ACTION,), engine)} "
              f"OR {functions.validation_steps_in_sql('function_name', stored, params)}")
    engine.dispose()
    return query(url, f"SELECT id, function_name, output_result AS full_text, CASE WHEN {wanted} THEN output_result END AS sent, "
                      f"CASE WHEN {functions.validation_steps_in_sql('function_name', stored, {})} THEN 1 ELSE 0 END AS step_name "
                      "FROM retell_function_traces ORDER BY id", **params)


def test_validation_step_names_in_sql_and_pandas_agree(steps_world):
    got = _sent(steps_world)
    assert got["step_name"].astype(bool).tolist() == functions.is_validation_step(got["function_name"]).tolist()
    assert sorted(set(got.loc[got["step_name"].astype(bool), "function_name"])) == [" start_booking ", "start_booking",
                                                                                   "start_booking_v2"]
    assert functions.validation_steps_in_sql("f", ["confirm_booking", None], {}) == "1 = 0"


def _rule_on(got: pd.DataFrame, column: str) -> pd.DataFrame:
    f = pd.DataFrame({"call_id": A, "started_at": T0, "trace_id": got["id"], "function_name": got["function_name"],
                      "output_result": got[column].map(lambda v: decode_json(v)[0])})
    return functions.booking_steps(f, [True] * len(f), {}).reset_index(drop=True)


def test_the_lean_read_sends_every_response_the_rule_reads(steps_world):
    got = _sent(steps_world)
    pd.testing.assert_frame_equal(_rule_on(got, "sent"), _rule_on(got, "full_text"))
    assert got["sent"].notna().sum() < got["full_text"].notna().sum()  # and leaves the others out


RESPONSE = st.fixed_dictionaries({}, optional={
    "success": st.sampled_from([True, False, None, "false", 0]),
    "next_action": st.sampled_from(["confirm_booking", "confirm_booking_v9", "end_call", "", None, 7]),
    "status": st.sampled_from(["validating", "validated", "booked"]),
    "error": st.sampled_from(["Fehler bei der Terminbuchung", "", None]),
    "message": st.sampled_from(["next_action", "Einen Moment", "näxt_action"]),
    "data": st.fixed_dictionaries({}, optional={"next_action": st.sampled_from(["confirm_booking", "ask_name"]),
                                                "status": st.just("validating")}),
})
TEXT = st.builds(lambda r, ascii_, double: json.dumps(json.dumps(r) if double else r, ensure_ascii=ascii_),
                 RESPONSE, st.booleans(), st.booleans()) | st.none() | st.text(max_size=15)
ROW = st.tuples(st.sampled_from([A, B]), st.integers(0, 5), st.sampled_from(NAMES), st.sampled_from(["success", "error", None]),
                TEXT, st.sampled_from([24, 25]))


@pytest.fixture(scope="module")
def scratch():
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, function_name TEXT, output_result TEXT)"))
    return engine


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=8), st.sampled_from([{}, {"25": "confirm_booking"}, {"agent_x": "start_booking"}]))
def test_generated_rows_give_the_same_steps_on_what_the_lean_read_sends(scratch, rows, setting):
    with scratch.begin() as conn:
        conn.execute(sa.text("DELETE FROM t"))
        conn.execute(sa.text("INSERT INTO t VALUES (:i, :n, :r)"), [{"i": i, "n": r[2], "r": r[4]} for i, r in enumerate(rows)])
        stored = [n for (n,) in conn.execute(sa.text("SELECT DISTINCT function_name FROM t"))]
        params: dict = {}
        wanted = (f"{contains_any('output_result', (functions.NEXT_ACTION,), scratch)} "
                  f"OR {functions.validation_steps_in_sql('function_name', stored, params)}")
        sent = [v for (v,) in conn.execute(sa.text(f"SELECT CASE WHEN {wanted} THEN output_result END FROM t ORDER BY id"),
                                           params)]
    base = pd.DataFrame({"call_id": [r[0] for r in rows], "started_at": [T0 + pd.Timedelta(seconds=r[1]) for r in rows],
                         "trace_id": range(1, len(rows) + 1), "function_name": [r[2] for r in rows],
                         "agent_id": "agent_x", "agent_version": [r[5] for r in rows]})
    ok = [r[3] == "success" for r in rows]
    full = functions.booking_steps(base.assign(output_result=[decode_json(r[4])[0] for r in rows]), ok, setting)
    lean = functions.booking_steps(base.assign(output_result=[decode_json(v)[0] for v in sent]), ok, setting)
    pd.testing.assert_frame_equal(lean, full)


def test_a_version_that_is_no_number_falls_back_to_the_agent_key():
    """SQLite keeps text in an INTEGER column: 'v3' matched no key before and raised ValueError (exit 3)."""
    setting = {"agent_x": "confirm_booking", "agent_x:25": "start_booking", "25": "auto"}
    assert functions.booking_function_of("agent_x", "v3", setting) == "confirm_booking"
    assert functions.booking_function_of("agent_x", 25.0, setting) == "start_booking"
    assert functions.booking_function_of(None, "inf", setting) == "auto"
