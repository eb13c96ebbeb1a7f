"""Plans -> table rows (pandas frames keyed like the production tables).

Private helper of :mod:`rca_toolkit.demo`. Times stay int64/float64 UTC microseconds here
(NaN = NULL); :mod:`rca_toolkit.demo.load` renders them per backend. Incident rules are
applied by instant: D2 and D4 make traces fail before Cal.com is reached, the phantom
columns make the local insert of a booking path fail after Cal.com booked (1054), and the
Cal.com webhook of such a booking is rejected (orphan) or rescued by the upsert.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rca_toolkit.demo import spec as S

DUP_FRAME = "App\\Http\\Controllers\\RetellWebhookController::__invoke"
TOOL_FRAME = "App\\Http\\Controllers\\RetellFunctionCallHandler::handleFunctionCall"
CALCOM_FRAME = "App\\Services\\CalcomV2Client::createBooking"
_J = json.dumps


def classify_traces(traces: pd.DataFrame, calls: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Add ``t_us``, ``status``, ``error_kind`` and webhook fate of booking traces."""
    t = traces.copy()
    t["t_us"] = calls["start_us"].to_numpy()[t["cidx"].to_numpy()] + (t["offset_ms"].to_numpy() * S.MS).astype(np.int64)
    at = t["t_us"].to_numpy()
    name = t["function_name"].astype(str)
    d2 = (at >= S.D2_START) & (at < S.D2_FIX)
    d4 = name.str.contains(r"_v\d+$", regex=True).to_numpy() & (at >= S.AGENT_SWITCH) & (at < S.D4_FIX)
    path = t["path"].to_numpy()
    phantom = ((path == "collect_appointment") & (at >= S.PHANTOM_START) & (at < S.PARTIAL_FIX)) | (
        (path == "book_appointment") & (at >= S.PHANTOM_START) & (at < S.FULL_FIX))
    forced = t["forced_error"].fillna("").to_numpy()
    kind = np.select([d2, d4, forced != "", phantom], ["d2", "d4", forced, "phantom"], default="")
    t["error_kind"] = kind
    t["status"] = np.where(kind == "", "success", "error")
    # 40 % of the Cal.com BOOKING_CREATED webhooks of phantom failures are rejected (orphans).
    t["webhook_failed"] = (kind == "phantom") & (rng.random(len(t)) < 0.4)
    t["calcom_booked"] = (path != "") & np.isin(kind, ["", "phantom"])
    return t


def attempts(traces: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """One row per booking attempt with its outcome (``success``/``failed``) and orphan flag."""
    b = traces[traces["path"] != ""]
    return pd.DataFrame({
        "call_id": calls["call_id"].to_numpy()[b["cidx"].to_numpy()],
        "is_real": calls["is_real"].to_numpy()[b["cidx"].to_numpy()],
        "path": b["path"].to_numpy(), "function": b["function_name"].to_numpy(), "at_us": b["t_us"].to_numpy(),
        "outcome": np.where(b["status"].to_numpy() == "success", "success", "failed"),
        "error_kind": b["error_kind"].to_numpy(), "calcom_booked": b["calcom_booked"].to_numpy(),
        "orphaned": b["webhook_failed"].to_numpy(), "rescued": (b["error_kind"] == "phantom").to_numpy() & ~b["webhook_failed"].to_numpy(),
        "trace_key": b.index.to_numpy(),
    })


def _error_details(t: pd.DataFrame) -> pd.Series:
    kind, name = t["error_kind"].to_numpy(), t["function_name"].astype(str)
    frame = np.where(t["path"].to_numpy() == "collect_appointment", S.COLLECT_FRAME, S.BOOK_FRAME)
    out = pd.Series(None, index=t.index, dtype=object)
    ph = kind == "phantom"
    out[ph] = np.where(frame[ph] == S.COLLECT_FRAME,
                       _J({"error": S.PHANTOM_ERROR, "frame": S.COLLECT_FRAME, "sqlstate": "42S22", "errno": 1054}),
                       _J({"error": S.PHANTOM_ERROR, "frame": S.BOOK_FRAME, "sqlstate": "42S22", "errno": 1054}))
    out[kind == "d2"] = _J({"error": S.D2_ERROR, "frame": TOOL_FRAME})
    d4 = kind == "d4"
    out[d4] = ('{"error":"Unknown function: ' + name[d4] + '","frame":' + _J(TOOL_FRAME) + "}").to_numpy()
    out[kind == "calcom_409"] = _J({"error": S.CALCOM_409, "frame": CALCOM_FRAME, "http_status": 409})
    out[kind == "calcom_400"] = _J({"error": S.CALCOM_400, "frame": CALCOM_FRAME, "http_status": 400})
    return out


def error_rows(t: pd.DataFrame) -> pd.DataFrame:
    """``retell_error_log`` rows of failed traces (keys: trace index)."""
    e = t[t["status"] == "error"]
    kind, name = e["error_kind"].to_numpy(), e["function_name"].astype(str).to_numpy()
    frame = np.where(e["path"].to_numpy() == "collect_appointment", S.COLLECT_FRAME, S.BOOK_FRAME)
    message = pd.Series(np.select(
        [kind == "phantom", kind == "d2", kind == "calcom_409", kind == "calcom_400"],
        [S.PHANTOM_ERROR, S.D2_ERROR, S.CALCOM_409, S.CALCOM_400], default=""), dtype=object)
    message[kind == "d4"] = ("Unknown function: " + pd.Series(name[kind == "d4"], dtype=object)).to_numpy()
    context = pd.Series(None, index=range(len(e)), dtype=object)
    ph = kind == "phantom"
    context[ph] = ('{"frame":' + pd.Series(frame[ph], dtype=object).map(_J) + ',"sqlstate":"42S22","errno":1054,'
                   '"column":"created_by","function":"' + pd.Series(name[ph], dtype=object) + '"}').to_numpy()
    context[~ph] = ('{"frame":' + pd.Series(np.where(np.isin(kind[~ph], ["d2", "d4"]), TOOL_FRAME, CALCOM_FRAME),
                                            dtype=object).map(_J) + "}").to_numpy()
    return pd.DataFrame({
        "trace_key": e.index.to_numpy(), "cidx": e["cidx"].to_numpy(),
        "t_us": e["t_us"].to_numpy() + (e["real_ms"].to_numpy() * S.MS).astype(np.int64),
        "offset_ms": (e["offset_ms"] + e["real_ms"]).to_numpy(),
        "error_code": np.select([kind == "phantom", np.isin(kind, ["d2", "d4"])], ["42S22", "unknown_function"],
                                default="calcom_api_error"),
        "error_type": np.select([kind == "phantom", np.isin(kind, ["d2", "d4"])], ["function_error", "function_error"],
                                default="api_error"),
        "severity": np.where(np.isin(kind, ["phantom", "calcom_409", "calcom_400"]), "high", "medium"),
        "error_message": message.to_numpy(), "error_context": context.to_numpy(),
        "affected_function": np.where(kind == "d2", None, name),
        "booking_failed": (e["path"].to_numpy() != "").astype(int),
    })


def duplicate_rows(calls: pd.DataFrame) -> pd.DataFrame:
    """P11: every real call's ``call_ended`` and ``call_analyzed`` webhook hits the UNIQUE key."""
    real = calls[calls["is_real"]]
    end = real["start_us"].to_numpy() + (real["dur_ms"].fillna(0).to_numpy() * S.MS).astype(np.int64)
    out = []
    for event, delay in (("call_ended", 400_000), ("call_analyzed", 9_000_000)):
        out.append(pd.DataFrame({
            "trace_key": -1, "cidx": real.index.to_numpy(), "t_us": end + delay,
            "offset_ms": real["dur_ms"].to_numpy() + delay / S.MS,
            "error_code": "23000", "error_type": "system_error", "severity": "medium",
            "error_message": ("SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry '" + real["call_id"]
                              + "' for key 'webhook_events_event_id_unique' (Connection: mysql, SQL: insert into "
                              "`webhook_events` (...) values (...))").to_numpy(),
            "error_context": '{"frame":' + _J(DUP_FRAME) + ',"event":"' + event + '","sqlstate":"23000","errno":1062}',
            "affected_function": None, "booking_failed": 0,
        }))
    return pd.concat(out, ignore_index=True)


_INPUT = {
    "initialize_call": "{}",
    "check_availability": '{"datum":"morgen","uhrzeit":"10:00","dienstleistung":"Herrenhaarschnitt"}',
    "book": '{"datum":"morgen","uhrzeit":"10:00","dienstleistung":"Herrenhaarschnitt","name":"[PII_REDACTED]"}',
}
_OUTPUT = {
    "initialize_call": '{"success":true,"data":{"company":"Demo Salon"}}',
    "check_availability": '{"success":true,"available":true}',
    "book": '{"success":true,"booking_id":"confirmed"}',
}


def trace_json(t: pd.DataFrame) -> pd.DataFrame:
    """``input_params``/``output_result``/``error_details`` JSON text for every trace."""
    fam = np.where(t["path"].to_numpy() != "", "book",
                   np.where(t["function_name"].astype(str).str.startswith("check_availability"), "check_availability",
                            "initialize_call"))
    inp = pd.Series([_INPUT[f] for f in ("initialize_call", "check_availability", "book")], dtype=object)
    out = pd.Series([_OUTPUT[f] for f in ("initialize_call", "check_availability", "book")], dtype=object)
    idx = np.select([fam == "initialize_call", fam == "check_availability"], [0, 1], default=2)
    input_params = inp.to_numpy()[idx].copy()
    output = out.to_numpy()[idx].copy()
    if "args" in t:
        scripted = t["args"].map(lambda a: isinstance(a, dict)).to_numpy()
        input_params[scripted] = t.loc[scripted, "args"].map(lambda a: _J(a, ensure_ascii=False)).to_numpy()
        has_result = t["result"].map(lambda r: isinstance(r, dict)).to_numpy() & scripted
        output[has_result] = t.loc[has_result, "result"].map(lambda r: _J(r, ensure_ascii=False)).to_numpy()
    failed = t["status"].to_numpy() == "error"
    output[failed] = None
    return pd.DataFrame({"input_params": input_params, "output_result": output,
                         "error_details": _error_details(t).to_numpy()}, index=t.index)
