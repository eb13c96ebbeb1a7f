"""Assemble the final table frames of the demo world from the plans.

Private helper of :mod:`rca_toolkit.demo`. Every frame uses the production column names;
time columns are UTC microseconds (NaN = NULL) and get rendered per backend by
:mod:`rca_toolkit.demo.load`. Ids are assigned in time order so they are stable across
backends and can be quoted in the ground truth.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rca_toolkit.demo import background as B
from rca_toolkit.demo import rows as R
from rca_toolkit.demo import spec as S


def _ids_by_time(times: np.ndarray, *tie) -> np.ndarray:
    """1-based ids in (time, tie...) order."""
    order = np.lexsort(tuple(reversed((times,) + tie)))
    ids = np.empty(len(times), dtype=np.int64)
    ids[order] = np.arange(1, len(times) + 1)
    return ids


def _nullable(values, sentinel=-1):
    """Integers with ``sentinel`` meaning NULL -> nullable Int64."""
    values = np.asarray(values, dtype="float64")
    return pd.array(np.where(values == sentinel, np.nan, values), dtype="Int64")


def sessions(c: pd.DataFrame, t: pd.DataFrame, seg: pd.DataFrame, errors: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """``retell_call_sessions``: one row per call (including test/typo ids)."""
    started = c["start_us"].to_numpy() + c["sess_offset_us"].to_numpy()
    dur = c["dur_ms"].to_numpy()
    ended = c["start_us"].to_numpy() + np.nan_to_num(dur) * S.MS + c["sess_delay_us"].to_numpy()
    open_ = np.isnan(dur) | c["stuck"].to_numpy() | c["cleanup"].to_numpy()
    ended = np.where(open_, np.nan, ended)
    status = np.where(started < S.STATUS_COMPLETED_FROM, "ended", "completed").astype(object)
    status[c["stuck"].to_numpy()] = "in_progress"
    forced = c["forced_status"].to_numpy()
    status = np.where(pd.notna(forced), forced, status)
    n = len(c)
    counts = lambda frame: np.bincount(frame["cidx"].to_numpy(), minlength=n)  # noqa: E731
    rt = t.groupby("cidx")["real_ms"].agg(["mean", "max", "min"]).reindex(range(n))
    disc = np.where(c["stuck"].to_numpy() | (forced == "inbound"), None, c["disconnection_reason"].to_numpy())
    disc = np.where(c["cleanup"].to_numpy(), "system_timeout", disc)
    versions = pd.array(c["agent_version"].to_numpy(), dtype="Int64")
    return pd.DataFrame({
        "id": c["session_id"].to_numpy(), "call_id": c["call_id"].to_numpy(),
        "company_id": c["company_id"].to_numpy(), "customer_id": _nullable(c["customer_id"].to_numpy()),
        "agent_id": np.where(c["start_us"].to_numpy() < S.AGENT_SWITCH, S.AGENT_ID_OLD, S.AGENT_ID_NEW),
        "agent_version": versions, "started_at": started, "ended_at": ended, "call_status": status,
        "disconnection_reason": disc,
        "duration_ms": pd.array(np.where(open_, np.nan, np.round((ended - started) / S.MS)), dtype="Int64"),
        "current_flow_node": np.where(open_, None, "end"),
        "total_events": counts(events), "function_call_count": counts(t), "transcript_segment_count": counts(seg),
        "error_count": counts(errors),
        "avg_response_time_ms": pd.array(rt["mean"].round().to_numpy(), dtype="Int64"),
        "max_response_time_ms": pd.array(rt["max"].to_numpy(), dtype="Int64"),
        "min_response_time_ms": pd.array(rt["min"].to_numpy(), dtype="Int64"),
        "created_at": started, "updated_at": np.where(np.isnan(ended), started, ended),
    })


def calls(c: pd.DataFrame, rng: np.random.Generator, outcome: pd.Series, appointment_id: pd.Series) -> pd.DataFrame:
    """``calls``: one row per call except the typo session (which has no call row)."""
    keep = c[c["call_id"] != S.TYPO_ID]
    n = len(keep)
    start = keep["start_us"].to_numpy()
    dur = keep["dur_ms"].to_numpy()
    cleanup = keep["cleanup"].to_numpy()
    end = np.where(np.isnan(dur), np.nan, start + np.nan_to_num(dur) * S.MS)
    cleanup_end = start + (2 * S.HOUR_US + rng.uniform(0, 1_800, n) * S.US)
    end = np.where(cleanup, cleanup_end, end)
    e2e = rng.normal(1_150, 220, n).clip(500, 3_000).round().astype(np.int64)
    llm = (e2e * rng.uniform(0.55, 0.75, n)).round().astype(np.int64)
    tts = rng.normal(290, 40, n).clip(150, 600).round().astype(np.int64)
    latency = ('{"e2e":{"p50":' + pd.Series(e2e).astype(str) + ',"p90":' + pd.Series((e2e * 1.4).round().astype(int)).astype(str)
               + ',"num":' + pd.Series(rng.integers(3, 20, n)).astype(str) + '},"llm":{"p50":' + pd.Series(llm).astype(str)
               + '},"tts":{"p50":' + pd.Series(tts).astype(str) + "}}")
    cents = np.round(np.nan_to_num(dur) / 1000 * 0.137).astype(np.int64)
    oc = outcome.reindex(keep.index).to_numpy()
    plain = np.where(rng.random(n) < 0.75, "information_only", "abandoned")
    session_outcome = np.select([oc == "success", oc == "failed"], ["appointment_booked", "technical_issue"], plain)
    real = keep["is_real"].to_numpy()
    status = np.where(rng.random(n) < 0.4, "analyzed", "completed").astype(object)
    status[keep["stuck"].to_numpy() | cleanup | ~real] = "completed"
    status[(keep["forced_status"] == "inbound").to_numpy()] = "inbound"
    numbers = "+4915" + pd.Series(rng.integers(10_000_000, 99_999_999, n)).astype(str)
    versions = keep["agent_version"].to_numpy()
    frame = pd.DataFrame({
        "id": keep["local_id"].to_numpy(), "retell_call_id": keep["call_id"].to_numpy(),
        "call_id": keep["call_id"].to_numpy(), "company_id": keep["company_id"].to_numpy(),
        "customer_id": _nullable(keep["customer_id"].to_numpy()),
        "appointment_id": pd.array(appointment_id.reindex(keep.index).to_numpy(), dtype="Int64"),
        "from_number": np.where(keep["anonymous"].to_numpy(), "anonymous", numbers.to_numpy()),
        "to_number": np.where(keep["company_id"].to_numpy() == 1, "+4930123456780", "+4989123456790"),
        "direction": "inbound", "status": status,
        "call_status": np.where(status == "inbound", "registered", "ended"),
        "start_timestamp": start.astype(float), "end_timestamp": end, "call_time": start.astype(float),
        "duration_ms": pd.array(np.where(cleanup, np.nan, dur), dtype="Int64"),
        "duration_sec": pd.array(np.where(cleanup, np.round((end - start) / S.US), np.round(dur / 1000)), dtype="Int64"),
        "disconnection_reason": np.where(cleanup, "system_timeout",
                                         np.where(status == "inbound", None, keep["disconnection_reason"].to_numpy())),
        "retell_agent_id": np.where(start < S.AGENT_SWITCH, S.AGENT_ID_OLD, S.AGENT_ID_NEW),
        "agent_id": "1",
        "agent_version": pd.Series(versions).map(lambda v: None if pd.isna(v) else str(int(v))).to_numpy(),
        "latency_metrics": np.where(real & ~np.isnan(dur), latency.to_numpy(), None),
        "end_to_end_latency": pd.array(np.where(real & ~np.isnan(dur), e2e, np.nan), dtype="Int64"),
        "cost_cents": cents, "cost": np.round(cents / 100, 2),
        "raw": keep["raw"].to_numpy(),
        "sentiment": np.where(oc == "failed", "Negative", np.where(oc == "success", "Positive", "Neutral")),
        "call_successful": (oc == "success").astype(int), "appointment_made": (oc == "success").astype(int),
        "session_outcome": session_outcome,
        "created_at": start.astype(float), "updated_at": np.where(np.isnan(end), start, end),
    })
    return frame


def traces_and_events(c: pd.DataFrame, t: pd.DataFrame, errs: pd.DataFrame, rng: np.random.Generator):
    """``retell_function_traces`` and ``retell_call_events`` (function calls, errors, a flow start)."""
    js = R.trace_json(t)
    started = t["t_us"].to_numpy()
    real = t["real_ms"].to_numpy()
    duration = real.astype(np.int64).copy()
    # P6: ~3 % of background traces carry a negative (before the Bug-6 fix) or zero (after) duration.
    bg = np.isin(c["kind"].to_numpy()[t["cidx"].to_numpy()], ["background", "topup"])
    hit = bg & (rng.random(len(t)) < 0.03)
    before = started < S.BUG6_FIX
    neg = hit & before
    duration[neg] = -rng.integers(80, 1_500, int(neg.sum()))
    duration[hit & ~before] = 0
    first_two = np.flatnonzero(neg)[np.argsort(started[neg], kind="stable")[:2]]
    duration[first_two[:1]] = -714
    duration[first_two[1:2]] = -943
    session = c["session_id"].to_numpy()[t["cidx"].to_numpy()]
    offsets = (started - c["start_us"].to_numpy()[t["cidx"].to_numpy()]) // S.MS
    fn_events = pd.DataFrame({
        "key": t.index.to_numpy(), "cidx": t["cidx"].to_numpy(), "call_session_id": session,
        "event_type": "function_call",
        "occurred_at": started, "call_offset_ms": offsets, "function_name": t["function_name"].to_numpy(),
        "function_arguments": js["input_params"].to_numpy(), "function_response": js["output_result"].to_numpy(),
        "response_time_ms": real.astype(np.int64), "function_status": t["status"].to_numpy()})
    err_t = errs[errs["trace_key"] >= 0]
    err_events = pd.DataFrame({
        "key": -1 - err_t["trace_key"].to_numpy(), "cidx": err_t["cidx"].to_numpy(), "call_session_id": c["session_id"].to_numpy()[err_t["cidx"].to_numpy()],
        "event_type": "error", "occurred_at": err_t["t_us"].to_numpy(), "call_offset_ms": err_t["offset_ms"].to_numpy(),
        "error_code": err_t["error_code"].to_numpy(), "error_message": err_t["error_message"].to_numpy()})
    starts = c["start_us"].to_numpy() + c["sess_offset_us"].to_numpy()
    flow = pd.DataFrame({
        "key": -10**12 - np.arange(len(c)), "cidx": np.arange(len(c)), "call_session_id": c["session_id"].to_numpy(), "event_type": "flow_transition",
        "occurred_at": starts, "call_offset_ms": (c["sess_offset_us"].to_numpy() // S.MS),
        "from_node": "begin", "to_node": "greeting", "transition_trigger": "call_started"})
    events = pd.concat([flow, fn_events, err_events], ignore_index=True)
    events["id"] = _ids_by_time(events["occurred_at"].to_numpy(), -events["key"].to_numpy())
    key_to_event = pd.Series(events["id"].to_numpy(), index=events["key"].to_numpy())
    t_ids = _ids_by_time(started, t["cidx"].to_numpy(), t["seq"].to_numpy())
    traces = pd.DataFrame({
        "id": t_ids, "call_session_id": session, "event_id": key_to_event.reindex(t.index.to_numpy()).to_numpy(),
        "function_name": t["function_name"].to_numpy(), "execution_sequence": t["seq"].to_numpy(),
        "started_at": started, "completed_at": started + real * S.MS, "duration_ms": duration,
        "input_params": js["input_params"].to_numpy(), "output_result": js["output_result"].to_numpy(),
        "error_details": js["error_details"].to_numpy(), "status": t["status"].to_numpy()}, index=t.index)
    return traces, events.drop(columns="key"), key_to_event


def segments(c: pd.DataFrame, g: pd.DataFrame) -> pd.DataFrame:
    """``retell_transcript_segments``."""
    occurred = c["start_us"].to_numpy()[g["cidx"].to_numpy()] + (g["offset_ms"].to_numpy() * S.MS).astype(np.int64)
    return pd.DataFrame({
        "id": _ids_by_time(occurred, g["cidx"].to_numpy(), g["seq"].to_numpy()),
        "call_session_id": c["session_id"].to_numpy()[g["cidx"].to_numpy()], "occurred_at": occurred,
        "call_offset_ms": g["offset_ms"].to_numpy().astype(np.int64), "segment_sequence": g["seq"].to_numpy(),
        "role": g["role"].to_numpy(), "text": g["text"].to_numpy(),
        "word_count": _word_counts(g["text"].to_numpy(dtype=object)),
        "duration_ms": g["dur_ms"].to_numpy().astype(np.int64)})


def _word_counts(texts: np.ndarray) -> np.ndarray:
    """Words per segment, counted once per distinct text (PHP ``str_word_count`` would differ)."""
    codes, uniques = pd.factorize(texts)
    return np.array([len(str(u).split()) for u in uniques], dtype=np.int64)[codes]


def errors(c: pd.DataFrame, errs: pd.DataFrame, trace_ids: pd.Series, key_to_event: pd.Series) -> pd.DataFrame:
    """``retell_error_log`` from failed traces and duplicate-key webhook writes."""
    tk = errs["trace_key"].to_numpy()
    has = tk >= 0
    event = np.full(len(errs), np.nan)
    event[has] = key_to_event.reindex(-1 - tk[has]).to_numpy()
    trace = np.full(len(errs), np.nan)
    trace[has] = trace_ids.reindex(tk[has]).to_numpy()
    return pd.DataFrame({
        "id": _ids_by_time(errs["t_us"].to_numpy(), errs["cidx"].to_numpy(), tk),
        "call_session_id": c["session_id"].to_numpy()[errs["cidx"].to_numpy()],
        "event_id": pd.array(event, dtype="Int64"), "function_trace_id": pd.array(trace, dtype="Int64"),
        "error_code": errs["error_code"].to_numpy(), "error_type": errs["error_type"].to_numpy(),
        "severity": errs["severity"].to_numpy(), "occurred_at": errs["t_us"].to_numpy(),
        "call_offset_ms": errs["offset_ms"].to_numpy().astype(np.int64),
        "error_message": errs["error_message"].to_numpy(), "error_context": errs["error_context"].to_numpy(),
        "affected_function": errs["affected_function"].to_numpy(), "booking_failed": errs["booking_failed"].to_numpy()})


def bookings(c: pd.DataFrame, att: pd.DataFrame, t: pd.DataFrame, rng: np.random.Generator):
    """Cal.com webhooks, Retell ``call_started`` webhooks and appointments (+ calls.appointment_id)."""
    booked = att[att["calcom_booked"]].reset_index(drop=True)
    nb = len(booked)
    uid = pd.Series(_calcom_uids(rng, nb), dtype=object)
    trace_end = booked["at_us"].to_numpy() + (t.loc[booked["trace_key"], "real_ms"].to_numpy() * S.MS).astype(np.int64)
    received = booked["at_us"].to_numpy() + rng.integers(300_000, 1_500_000, nb)
    days_ahead = rng.integers(1, 15, nb) * S.DAY_US
    slot = (booked["at_us"].to_numpy() // S.HOUR_US) * S.HOUR_US + days_ahead
    cidx = t.loc[booked["trace_key"], "cidx"].to_numpy()
    company = c["company_id"].to_numpy()[cidx]
    payload = ('{"triggerEvent":"BOOKING_CREATED","createdAt":"' + pd.Series(_iso(received)) + '","payload":{"uid":"'
               + uid + '","eventTypeId":' + pd.Series(np.where(company == 1, 1_320_965, 1_320_966)).astype(str)
               + ',"title":"Termin","startTime":"' + pd.Series(_iso(slot)) + '","endTime":"'
               + pd.Series(_iso(slot + 1_800 * S.US)) + '","attendees":[{"name":"[PII]","timeZone":"Europe/Berlin"}]}}')
    failed = booked["orphaned"].to_numpy()
    calcom = pd.DataFrame({
        "company_id": company, "provider": "calcom", "event_type": "BOOKING_CREATED", "event_id": uid.to_numpy(),
        "idempotency_key": ("calcom_" + uid).to_numpy(), "payload": payload.to_numpy(),
        "status": np.where(failed, "failed", "processed"), "processed_at": np.where(failed, np.nan, received + 80_000),
        "error_message": np.where(failed, S.CALCOM_REJECTED, None), "received_at": received.astype(float),
        "created_at": received.astype(float), "updated_at": received.astype(float)})
    real = c[c["is_real"]]
    first = (real["start_us"] + real["sess_offset_us"]).to_numpy()
    retell = pd.DataFrame({
        "company_id": real["company_id"].to_numpy(), "provider": "retell", "event_type": "call_started",
        "event_id": real["call_id"].to_numpy(), "idempotency_key": ("retell_call_started_" + real["call_id"]).to_numpy(),
        "payload": ('{"event":"call_started","call":{"call_id":"' + real["call_id"] + '","call_status":"ongoing",'
                    '"start_timestamp":' + (real["start_us"] // S.MS).astype(str) + "}}").to_numpy(),
        "status": "processed", "processed_at": (first + 50_000).astype(float), "received_at": first.astype(float),
        "created_at": first.astype(float), "updated_at": first.astype(float)})
    hooks = pd.concat([retell, calcom], ignore_index=True)
    hooks.insert(0, "id", _ids_by_time(hooks["received_at"].to_numpy(), np.arange(len(hooks))))
    # appointments: direct inserts (success) and webhook upserts of phantom failures (rescued)
    ok = booked["outcome"].to_numpy() == "success"
    rescued = booked["rescued"].to_numpy()
    keep = ok | rescued
    local_call = c["local_id"].to_numpy()[cidx]
    created = np.where(ok, trace_end, received + 80_000)
    meta = np.where(ok, '{"call_id":' + pd.Series(local_call).astype(str) + ',"retell_call_id":"' + booked["call_id"]
                    + '","customer_name":"[PII]","synced_at":"' + pd.Series(_iso(created)) + '"}',
                    '{"calcom_uid":"' + uid + '","synced_at":"' + pd.Series(_iso(created)) + '"}').astype(object)
    double = rng.random(nb) < 0.10
    meta[double] = [json.dumps(m) for m in meta[double]]
    customer = c["customer_id"].to_numpy()[cidx]
    appt = pd.DataFrame({
        "company_id": company, "customer_id": np.where(customer > 0, customer, rng.integers(1, 500, nb)),
        "starts_at": slot.astype(float), "ends_at": (slot + 1_800 * S.US).astype(float),
        "status": "confirmed", "source": np.where(ok, "retell_phone", "cal.com"),
        "created_at": created.astype(float), "updated_at": created.astype(float),
        "call_id": pd.array(np.where(ok, local_call, np.nan), dtype="Int64"),
        "calcom_v2_booking_id": uid.to_numpy(), "metadata": meta, "calcom_sync_status": "synced",
        "sync_origin": np.where(ok, "retell", "calcom"), "_double": double, "_cidx": cidx})[keep].reset_index(drop=True)
    appt.insert(0, "id", _ids_by_time(appt["created_at"].to_numpy(), np.arange(len(appt))))
    direct = appt[appt["call_id"].notna()]
    appointment_of_call = pd.Series(direct["id"].to_numpy(), index=direct["_cidx"].to_numpy())
    return hooks, appt, appointment_of_call, uid


def _calcom_uids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Cal.com-style booking uids (22 alphanumerics)."""
    return B.random_strings(rng, n, 22, B.ALNUM)


def _iso(us: np.ndarray) -> np.ndarray:
    """UTC microseconds -> ``YYYY-MM-DDTHH:MM:SS.000Z`` (vectorised)."""
    ms = np.asarray(us, dtype="int64") // S.MS
    return np.char.add(np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms"), "Z")
