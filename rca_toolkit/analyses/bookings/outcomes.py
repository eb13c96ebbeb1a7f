"""Booking attempts and their outcomes: one row per attempt, from five tables.

Why: "appointment creation success 0 % before, ~100 % after" was asserted without a
denominator or a path. An attempt is a function trace of a booking family (``collect_appointment``
or ``book_appointment``, P3 aliases folded). Its outcome comes from joining what each system saw:

* ``success``  the booking function succeeded;
* ``orphaned`` it failed, but Cal.com did create the booking (a ``calcom`` webhook row whose
  ``event_id`` is the Cal.com uid) and no local appointment has that ``calcom_v2_booking_id``;
* ``failed``   every other failure. ``rescued_by_webhook`` marks failures whose Cal.com booking
  was later upserted locally by the Cal.com webhook (``source='cal.com'``, no call link): the
  appointment exists, but the booking path still failed.

The error text comes from the error log (matched by ``function_trace_id``, else the same call
and family) or the trace, and is normalised into a signature (:mod:`rca_toolkit.rules.signatures`).

Two-step bookings (:func:`rca_toolkit.rules.functions.booking_steps`): a ``start_booking`` that only
validated is no attempt when a later booking trace of its call completes it (the ``confirm_booking``
that books is the attempt); one whose data was refused, or that nothing followed, is a failed attempt
whose error is the rule's text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rca_toolkit.sources import attempt_inputs
from rca_toolkit.rules import bookings, call_ids, functions
from rca_toolkit.distinct import identity_codes, per_object
from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.signatures import NO_ERROR_TEXT, signature_keys

CODE_PATHS = {  # the write site each booking family reaches (incidents.md A)
    "collect_appointment": r"App\Services\Retell\AppointmentCreationService::createLocalRecord",
    "book_appointment": r"App\Http\Controllers\RetellFunctionCallHandler::bookAppointment",
}
OUTCOMES = ("success", "failed", "orphaned")
PAD = attempt_inputs.PAD  # appointments/webhooks land shortly after the trace starts
LINK_WINDOW = pd.Timedelta(seconds=60)  # Cal.com's BOOKING_CREATED arrives within seconds of the attempt
COLUMNS = ["call_id", "company_id", "at", "function_name", "family", "path", "code_path", "outcome",
           "rescued_by_webhook", "error_message", "signature", "error_code", "calcom_uid", "calcom_link", "appointment_id", "trace_id"]
# the five tables an outcome is read from, checked by attempt_inputs.load before its first statement
REQUIRES = {"booking_attempts": attempt_inputs.REQUIRES["load"]}


def booking_attempts(db=None, *, start=None, end=None, company_id=None) -> pd.DataFrame:
    """One row per booking attempt in ``[start, end)`` (trace ``started_at``), test ids excluded and counted.

    The other tables are read only where the attempts can reach them (:mod:`rca_toolkit.sources.attempt_inputs`):
    errors of the attempts' traces and sessions through the FK indexes, appointments and Cal.com
    ``BOOKING_CREATED`` webhooks of the padded window with the few columns used.
    """
    return attempts_of(attempt_inputs.load(db, start=start, end=end, company_id=company_id))


def attempts_of(inputs: attempt_inputs.AttemptInputs) -> pd.DataFrame:
    """Classify loaded inputs and attach the exclusion and inference counts as ``attrs``."""
    frame = classify(inputs.traces, inputs.errors, inputs.appointments, inputs.webhooks, inputs.calls)
    frame.attrs = dict(inputs.traces.attrs)
    frame.attrs.update(excluded_test_ids=len(inputs.excluded_ids), excluded_test_attempts=inputs.excluded_attempts,
                       excluded_examples=inputs.excluded_ids[:20], outcome_counts=frame["outcome"].value_counts().to_dict(),
                       inferred_calcom_links=int(frame["calcom_link"].eq("time").sum()))
    frame.attrs["missing_columns"] = {**inputs.missing_columns, **frame.attrs.get("missing_columns", {})}
    return frame


def classify(traces: pd.DataFrame, errors: pd.DataFrame, appointments: pd.DataFrame, webhooks: pd.DataFrame,
             calls: pd.DataFrame) -> pd.DataFrame:
    """Join the five frames into attempts (pure: frames in, frame out)."""
    out = pd.DataFrame({
        "call_id": traces["call_id"].astype("string"),
        "company_id": traces["company_id"],
        "at": traces["started_at"],
        "function_name": traces["function_name"].astype("string"),
        "family": traces["family"].astype("string"),
        "trace_id": traces["trace_id"],
        "status": traces["status"].astype("string"),
    })
    out["path"] = out["family"]
    err = _match_errors(traces, errors)
    out["error_message"] = err["error_message"].fillna(traces["error"]).astype("string")
    out["error_code"] = err["error_code"].astype("string")
    # a refused or unconfirmed validation (two-step bookings) never reached the booking: the rule's text explains it
    by_rule = (traces["step"].astype("object").isin(functions.FAILED_STEPS).to_numpy() if "step" in traces
               else np.zeros(len(traces), dtype=bool))
    out.loc[by_rule, "error_message"] = traces.loc[by_rule, "error"].astype("string").to_numpy()
    out.loc[by_rule, "error_code"] = pd.NA
    trace_frame = pd.Series(per_object(traces["error_details"], lambda d: d.get("frame") if isinstance(d, dict) else None),
                            index=traces.index, dtype="object")
    out["code_path"] = (err["frame"].astype("object").fillna(trace_frame.astype("object"))
                        .fillna(out["family"].map(CODE_PATHS).astype("object")).astype("string"))
    local = appointments.dropna(subset=["calcom_v2_booking_id"]).drop_duplicates("calcom_v2_booking_id")
    local_uids = local["calcom_v2_booking_id"].astype("object").to_numpy()
    by_call = bookings.appointment_by_call(out, appointments, calls)
    ok = attempt_inputs.attempt_succeeded(traces)
    # the row in ``local`` of the call's own appointment, the success's only
    own_row = pd.Index(local["id"].astype("Int64")).get_indexer(by_call)  # integers: exact, as the ids
    own_row[~ok.to_numpy()] = -1
    if by_rule.any():  # a validation books nothing: no Cal.com booking is linked to it
        uids, how, booked_row = _calcom_uids(traces[~by_rule], webhooks, own_row[~by_rule], local_uids)
        uids, how = uids.reindex(traces.index), how.reindex(traces.index)
        row = np.full(len(traces), -1)
        row[~by_rule] = booked_row
    else:
        uids, how, row = _calcom_uids(traces, webhooks, own_row, local_uids)
    out["calcom_uid"] = uids.astype("string")
    out["calcom_link"] = how.astype("string")
    has_local = pd.Series(row >= 0, index=out.index)  # row: the local appointment holding the attempt's uid
    local_source = _at_rows(local["source"].astype("string"), row, out.index)
    linked = pd.Series(pd.array(local["id"], dtype="Int64").take(row, allow_fill=True), index=out.index)  # -1: NA
    out["appointment_id"] = linked.where(row >= 0, by_call)  # integers throughout: exact past 2**53 too
    booked_remote = out["calcom_uid"].notna()
    out["outcome"] = "failed"
    out.loc[ok, "outcome"] = "success"
    out.loc[~ok & booked_remote & ~has_local, "outcome"] = "orphaned"
    out["rescued_by_webhook"] = (~ok & has_local & local_source.eq("cal.com").fillna(False)).astype(bool)
    out.loc[ok, ["error_message", "error_code"]] = pd.NA
    out["signature"] = signature_keys(out["error_message"])
    out["outcome"] = pd.Categorical(out["outcome"], categories=list(OUTCOMES))
    out["path"] = out["path"].astype("category")
    return out[COLUMNS].sort_values("at", kind="stable").reset_index(drop=True)


def _positions(index: pd.Index, values) -> np.ndarray:
    """Each value's position in ``index`` (unique), -1 where it is missing or absent: only present values are hashed
    (most attempts name no uid in their blob)."""
    values = np.asarray(values, dtype=object)
    found = np.full(len(values), -1)
    present = pd.notna(values)
    found[present] = index.get_indexer(values[present])
    return found


def _at_rows(values: pd.Series, rows: np.ndarray, index: pd.Index) -> pd.Series:
    """``values`` at positions ``rows`` (-1: missing), on ``index``."""
    picked = values.iloc[np.where(rows >= 0, rows, 0)].to_numpy(dtype=object) if len(values) else np.full(len(rows), None)
    return pd.Series(np.where(rows >= 0, picked, None), index=index, dtype="object")


def _match_errors(traces: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """Error-log row per trace: by ``function_trace_id`` first, else same call+family at or after the start."""
    cols = ["error_message", "error_code", "frame"]
    result = pd.DataFrame({c: pd.Series(pd.NA, index=traces.index, dtype="object") for c in cols})
    if errors.empty:
        return result
    errs = errors.dropna(subset=["function_trace_id"]).drop_duplicates("function_trace_id")
    row = pd.Index(errs["function_trace_id"]).get_indexer(traces["trace_id"])
    for col in cols:
        result[col] = _at_rows(errs[col], row, traces.index)
    todo = result["error_message"].isna() & traces["status"].ne("success")
    if todo.any():
        pool = errors[errors["function_trace_id"].isna() & errors["family"].isin(functions.BOOKING_FAMILIES)]
        pool = pool.sort_values("occurred_at", kind="stable")  # stable: ties keep the (occurred_at, id) order
        left = traces.loc[todo, ["call_id", "family", "started_at"]].reset_index().sort_values("started_at", kind="stable")
        left["family"] = left["family"].astype(str)
        right = pool[["call_id", "family", "occurred_at"] + cols].copy()
        right["family"] = right["family"].astype(str)
        merged = pd.merge_asof(left, right, left_on="started_at", right_on="occurred_at", by=["call_id", "family"],
                               direction="forward", tolerance=pd.Timedelta(minutes=10))
        merged = merged.set_index("index")
        for col in cols:
            result.loc[merged.index, col] = merged[col].astype("object")
    return result


def _calcom_uids(traces: pd.DataFrame, webhooks: pd.DataFrame, own_row: np.ndarray,
                 local_uids: np.ndarray) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Cal.com uid of each attempt, how it was linked, and the position in ``local_uids`` (the uids of local
    appointments, unique) of the one holding it (-1: none). ``own_row``: each attempt's own appointment in there.

    Links, strongest first: a uid named in the trace blob (``trace``), the call id in the
    webhook payload (``payload``), the uid of the call's own local appointment
    (``appointment``), else the first ``BOOKING_CREATED`` webhook of the same company received
    within ``LINK_WINDOW`` after the attempt started (``time``, inferred, one webhook per attempt; a webhook two
    attempts could claim goes to the nearer one, then to the earlier, whatever else the window holds).
    Only uids that Cal.com's webhook confirms count as bookings.

    Each uid is handled as its position among the confirmed ones: 400k attempts are linked by integer arrays,
    not by hashing their uid texts again at every step; the local uids are hashed once, against the confirmed ones.
    """
    uids = pd.Series(None, index=traces.index, dtype="object")
    how = pd.Series(None, index=traces.index, dtype="object")
    created = webhooks[webhooks["event_type_norm"].eq("BOOKING_CREATED").fillna(False)] if not webhooks.empty else webhooks
    if created.empty:  # no Cal.com webhook confirms any booking: nothing can be called orphaned
        return uids, how, np.full(len(traces), -1)
    # as texts (an id stored as a number too), numpy objects: iterating a StringArray is slow
    event_ids = created["event_id"].astype("string").to_numpy(dtype=object)
    event_uid, known_uids = pd.factorize(event_ids)  # hashed once: each webhook's uid as a position in known
    known = pd.Index(known_uids)
    known_of_local = np.append(known.get_indexer(local_uids), -1)  # the last slot answers -1 (no own appointment)
    linked = np.full(len(traces), -1)  # each attempt's uid, as a position in known
    taken = np.zeros(len(known), dtype=bool)  # uids already linked to an attempt
    links = np.full(len(traces), None, dtype=object)

    def link(rows: np.ndarray, uid: np.ndarray, label: str) -> None:
        """Attempts ``rows`` (positions) claim uids ``uid`` (positions, -1: none): a claim counts where the attempt
        has no uid yet and the uid is free, the first claim of a uid in ``rows``' order wins."""
        free = uid >= 0
        free[free] = (linked[rows[free]] < 0) & ~taken[uid[free]]
        rows, uid = rows[free], uid[free]
        _, first = np.unique(uid, return_index=True)
        rows, uid = rows[np.sort(first)], uid[np.sort(first)]
        linked[rows], taken[uid], links[rows] = uid, True, label

    every = np.arange(len(traces))
    link(every, _positions(known, blob_uids(traces["output_result"], traces["error_details"])), "trace")
    calls_of = {}
    with_payload = created["payload"].notna().to_numpy()
    for event_id, payload in zip(event_ids[with_payload], created["payload"].to_numpy(dtype=object)[with_payload]):
        call = _call_of_payload(payload) if isinstance(payload, dict) else None
        if call and isinstance(event_id, str) and event_id:
            calls_of.setdefault(call, event_id)
    if calls_of:
        link(every, _positions(known, traces["call_id"].astype("object").map(calls_of)), "payload")
    link(every, known_of_local[own_row], "appointment")
    todo = linked < 0
    if todo.any():
        # floor to the second: webhook times are often stored without fractions (TIMESTAMP(0))
        left = pd.DataFrame({"at": traces.loc[todo, "started_at"].dt.floor("s").array,
                             "company_id": traces.loc[todo, "company_id"].astype("float").to_numpy(),
                             "key": every[todo]}).dropna(subset=["at"]).sort_values("at", kind="stable")
        uid = event_uid.copy()
        free = uid < 0  # a webhook without an event id stays: an attempt it is nearest to gets no uid, as always
        free[~free] = ~taken[uid[~free]]
        right = pd.DataFrame({"created_at": created["created_at"].array[free], "uid": uid[free],
                              "company_id": (created["company_id"].astype("float").to_numpy()[free] if "company_id" in created
                                             else 0.0)})
        if "company_id" not in created or right["company_id"].isna().all():
            left["company_id"] = right["company_id"] = 0.0
        right = right.dropna(subset=["created_at"]).sort_values("created_at", kind="stable")
        right["created_at"] = right["created_at"].astype(left["at"].dtype)
        merged = pd.merge_asof(left, right, left_on="at", right_on="created_at", by="company_id",
                               direction="forward", tolerance=LINK_WINDOW)
        merged = merged[merged["uid"].fillna(-1).to_numpy() >= 0]
        merged = merged.assign(gap=merged["created_at"] - merged["at"]).sort_values("gap", kind="stable").drop_duplicates("uid")
        link(merged["key"].to_numpy(), merged["uid"].to_numpy(dtype=np.int64), "time")
    has = linked >= 0
    uids[has] = known.to_numpy(dtype=object)[linked[has]]
    how[:] = links
    local_of_known = np.full(len(known) + 1, -1)  # the last slot answers -1 (no uid)
    in_known = known_of_local >= 0
    local_of_known[known_of_local[in_known]] = np.flatnonzero(in_known)
    return uids, how, local_of_known[linked]


def blob_uids(outputs: pd.Series, details: pd.Series) -> np.ndarray:
    """The uid each trace's JSON names (output first), looked up once per pair of objects: loads share
    one decoded object per distinct text (as ``attempt_inputs`` decodes them), so 100k failures cost a few lookups."""
    (out_codes, _), (det_codes, det_first) = identity_codes(outputs), identity_codes(details)
    pairs = out_codes.astype(np.int64) * max(len(det_first), 1) + det_codes
    _, first, codes = np.unique(pairs, return_index=True, return_inverse=True)
    out_objects, det_objects = outputs.to_numpy(dtype=object), details.to_numpy(dtype=object)
    found = np.empty(len(first), dtype=object)
    found[:] = [_uid_in_blob(out_objects[i]) or _uid_in_blob(det_objects[i]) for i in first]
    return found[codes.reshape(-1)]


def _uid_in_blob(blob) -> str | None:
    if not isinstance(blob, dict):
        return None
    for key in bookings.UID_KEYS:
        if isinstance(blob.get(key), str) and blob[key]:
            return blob[key]
    for nested in ("booking", "data", "calcom"):
        found = _uid_in_blob(blob.get(nested))
        if found:
            return found
    return None


def _call_of_payload(payload) -> str | None:
    if not isinstance(payload, dict):
        return None
    inner = payload.get("payload") if isinstance(payload.get("payload"), dict) else payload
    for holder in (inner.get("metadata"), inner.get("responses"), inner):
        if isinstance(holder, dict):
            for key in ("retell_call_id", "call_id"):
                value = holder.get(key)
                if isinstance(value, str) and call_ids.is_real_call_id(value):
                    return value
    return None


def outcome_summary(attempts: pd.DataFrame, *, by: str = "path") -> pd.DataFrame:
    """Counts per group: attempts, success, failed, orphaned, rescued, success rate (denominator shown)."""
    grouped = attempts.groupby(by, observed=True)
    out = pd.DataFrame({
        "attempts": grouped.size(),
        **{o: grouped["outcome"].apply(lambda s, o=o: int((s == o).sum())) for o in OUTCOMES},
        "rescued_by_webhook": grouped["rescued_by_webhook"].sum().astype(int),
    })
    out["success_rate"] = out["success"] / out["attempts"]
    return out.reset_index()


COUNT_KEYS = ["path", "outcome", "rescued_by_webhook", "signature"]
BY_COLUMNS = ("code_path", "family", "function_name", "company_id", "error_code", "calcom_link")


def count_attempts(attempts: pd.DataFrame, *, freq: str | None = None, bins=None, by=(), first_at: bool = False,
                   weight: str | None = None) -> pd.DataFrame:
    """The grouping of :func:`attempt_counts` on an attempts frame (pure); ``first_at`` adds each group's earliest ``at``.

    ``weight`` names a column of row multiplicities (rows that stand for several attempts).
    """
    if freq and bins is not None:
        raise ConfigError("attempt_counts takes freq or bins, not both", hint="drop one of them")
    by = [by] if isinstance(by, str) else list(by)
    keys = (["period"] if freq or bins is not None else []) + COUNT_KEYS + by
    frame = attempts.assign(signature=attempts["signature"].astype("object").fillna(NO_ERROR_TEXT),
                            path=attempts["path"].astype(str), outcome=attempts["outcome"].astype(str))
    for col in by:
        frame[col] = frame[col].astype("object")
    if freq:
        frame["period"] = frame["at"].dt.tz_convert("UTC").dt.floor(freq)
    elif bins is not None:
        edges = pd.DatetimeIndex([pd.Timestamp(b) for b in bins])
        edges = edges.tz_localize("UTC") if edges.tz is None else edges.tz_convert("UTC")
        at = frame["at"].dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()
        slot = np.searchsorted(edges.as_unit("ns").asi8, at, side="right") - 1
        inside = (slot >= 0) & (slot < len(edges) - 1)
        frame = frame[inside]
        frame["period"] = edges[slot[inside]]
    grouped = frame.groupby(keys, observed=True, dropna=False)
    counts = (grouped[weight].sum().astype("int64") if weight else grouped.size()).rename("attempts").reset_index()
    if first_at:
        counts["first_at"] = grouped["at"].min().to_numpy()
    counts.attrs = {k: v for k, v in attempts.attrs.items() if k != "excluded_examples"}
    return counts
