"""``attempt_counts`` without classifying each successful attempt (MariaDB, sessions pinned to UTC).

Why: at 1M calls a month holds ~200k booking attempts, most of them successes whose count key never
changes; classifying each (``outcomes.classify``) and fetching it through the pure-Python driver cost
tens of seconds. A success only matters to other attempts through the Cal.com uid it claims. So, when
no attempt of the window names a uid in its JSON and no ``BOOKING_CREATED`` payload names a call (both
checked; otherwise ``None`` and the caller classifies every row), the outcome rules reduce to:

* each success claims the uid of its own appointment (the first, by id, of the window's appointments
  naming its call in ``metadata.retell_call_id``, else of those on the call's row,
  ``appointments.call_id`` = ``calls.id``) when a ``BOOKING_CREATED`` webhook of the padded window
  confirms it; the first real success per appointment wins. The window's appointments come as lean rows
  (ids, uid, the ``JSON_VALUE`` of the metadata); the ranking and the uid matching are pandas work (a
  ``GROUP BY`` on the metadata key, a ``ROW_NUMBER`` and the webhooks join to their appointment cost the
  server 5 s at 1M calls);
* the failures and the successes left without a uid are classified row by row as
  :func:`rca_toolkit.analyses.bookings.outcomes.classify` does, against the webhooks no success claimed.

The attempts (successes and failures, failures with their first error row) are read by one scan of the
traces, split into two halves of the window on two connections; the webhooks and the appointments on a
third. Large results travel packed (:mod:`rca_toolkit.sources.packed`), times as integer microseconds. The result
equals ``count_attempts(booking_attempts(...))`` (the tests compare them, also on a perturbed world).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from rca_toolkit.analyses.bookings import outcomes
from rca_toolkit.sources import attempt_inputs as ai
from rca_toolkit.sources import loaders, packed, requirements
from rca_toolkit.rules import bookings, call_ids, functions
from rca_toolkit.rules.timeutil import parse_instant

log = logging.getLogger(__name__)
FAST_BY = {"family", "function_name", "company_id", "error_code"}
UNIQUE_KEYS = (("appointments", "calcom_v2_booking_id"), ("webhook_events", "event_id"))


def _not_applicable(why: str) -> None:
    """Log why the shortcut does not apply (``rca -v``); the caller then classifies every attempt."""
    log.info("booking counts: the sql shortcut does not apply: %s", why)


def _unsupported(engine, by) -> str | None:
    """Why this database or these keys cannot take the shortcut; None when they can."""
    if not loaders.is_mariadb(engine):
        return "SQLite (the shortcut is MariaDB SQL)"
    zone = loaders.storage_zone(engine)
    if zone != "UTC":
        return f"the database hands back wall time ({zone}), not UTC"
    extra = sorted(set(by) - FAST_BY)
    return f"counting by {', '.join(extra)}" if extra else None


def _unique(schema, table: str, column: str) -> bool:
    return any(ix.get("unique") and list(ix.get("column_names") or []) == [column] for ix in schema[table].indexes)


def counts(engine, *, start=None, end=None, company_id=None, freq=None, bins=None, by=(), first_at=False, when_fetched=None):
    """The frame of ``outcomes.count_attempts`` for this window, or None when the shortcut does not apply.
    ``when_fetched`` is called once the attempts are read, before the Python work on them."""

    unsupported = _unsupported(engine, by)
    if unsupported:
        return _not_applicable(unsupported)
    schema = loaders.schema_of(engine)
    need = {"appointments": ["id", "call_id", "calcom_v2_booking_id", "source", "metadata", "created_at", "deleted_at"],
            "webhook_events": ["id", "provider", "event_type", "event_id", "payload", "created_at", "company_id"],
            "calls": ["id", "retell_call_id", "deleted_at"]}
    if any(t not in schema or set(cols) - set(schema[t].columns) for t, cols in need.items()):
        return _not_applicable("a table or column it reads is missing")
    if not all(_unique(schema, t, c) for t, c in UNIQUE_KEYS):  # the claims below rely on one row per uid
        return _not_applicable("no unique index on " + " or ".join(f"{t}.{c}" for t, c in UNIQUE_KEYS))
    start_ts = None if start is None else parse_instant(start, name="start")
    end_ts = None if end is None else parse_instant(end, name="end")
    base: dict = {}
    where = loaders.family_clause(engine, "t.function_name", functions.BOOKING_FAMILIES, base)
    if start_ts is not None:
        base["t_lo"] = loaders.wall_bound(start_ts, engine, pd.Timedelta(0))
        where.append("t.started_at >= :t_lo")
    if end_ts is not None:
        base["t_hi"] = loaders.wall_bound(end_ts, engine, pd.Timedelta(0))
        where.append("t.started_at < :t_hi")
    where += loaders.company_clause("s.company_id", company_id, base)
    traces_from = (f"FROM retell_function_traces t{ai.force_index(engine, schema, 'retell_function_traces', 'idx_traces_function_time')} "
                   f"JOIN retell_call_sessions s ON s.id = t.call_session_id WHERE {' AND '.join(where)}")
    statements = []

    def run(sql, params):
        statements.append((sql, params))
        return loaders.query(engine, sql, params)

    def run_packed(sql, params, columns, key, order):  # the large results: parsed in C (rca_toolkit.sources.packed)
        return packed.read(engine, sql, params, columns, key=key, order=order, statements=statements)

    # first and last real attempt: per stored name, walk (function_name, started_at) from each end
    ends = {"first": None, "last": None}
    for key in [k for k in base if k.startswith("fam")]:
        for label, order in (("first", "ASC"), ("last", "DESC")):
            got = run(f"SELECT t.started_at {traces_from} AND t.function_name = :{key} "
                      f"AND {call_ids.real_call_id_sql('s.call_id')} ORDER BY t.started_at {order} LIMIT 1", base)
            if len(got):
                value = pd.Timestamp(got["started_at"].iloc[0])
                if ends[label] is None or (value < ends[label] if label == "first" else value > ends[label]):
                    ends[label] = value
    if ends["first"] is None:
        return _not_applicable("no attempt of a real call in the window")
    first, last = ends["first"].tz_localize("UTC"), ends["last"].tz_localize("UTC")
    lo, hi = first - ai.EARLY, last + ai.PAD
    base.update(lo=loaders.wall_bound(lo, engine, pd.Timedelta(0)), hi=loaders.wall_bound(hi, engine, pd.Timedelta(0)))
    types = [t for t in ai.stored_values(engine, "webhook_events", "event_type")
             if ai.norm_event_type(pd.Series([t.strip()])).iloc[0] == ai.BOOKING_CREATED]
    base.update({f"et{i}": t for i, t in enumerate(types)})
    type_in = f"w.event_type IN ({', '.join(f':et{i}' for i in range(len(types)))})" if types else "1 = 0"
    hooks = (f"w.created_at >= :lo AND w.created_at < :hi AND w.provider = 'calcom' AND {type_in} "
             f"AND CAST(UPPER(REPLACE(w.event_type, '.', '_')) AS BINARY) = 'BOOKING_CREATED'")
    # no index hint on the webhooks and appointments: the rows are sorted here, and for a window holding most
    # of the table (the 1M-call benchmark) a scan beats the created_at range with a row lookup each
    # (webhooks 2.1 s -> 1.2 s, appointments 0.8 s -> 0.5 s); MariaDB picks the range for narrow windows
    rcid = "COALESCE(JSON_VALUE(metadata, '$.retell_call_id'), JSON_VALUE(JSON_UNQUOTE(metadata), '$.retell_call_id'))"
    # the window's appointments, lean: the call each names in metadata, its uid and source
    appts_sql = (f"SELECT id, calcom_v2_booking_id AS uid, source, "
                 f"CASE WHEN {ai.contains_any('metadata', ['retell_call_id'], engine)} THEN {rcid} END AS rcid "
                 f"FROM appointments WHERE created_at >= :lo AND created_at < :hi AND deleted_at IS NULL")
    # every BOOKING_CREATED webhook of the padded window (the type normalised as attempt_inputs.norm_event_type
    # does), lean; a payload that names a call ends the shortcut; times as integers (attempt_inputs.micros_sql),
    # sorted by (time, id) after the fetch
    hooks_sql = (f"SELECT w.id, {ai.micros_sql('w.created_at')} AS at_us, w.event_id, w.company_id, "
                 f"CASE WHEN {ai.contains_any('w.payload', ['call_id'], engine)} THEN 1 ELSE 0 END AS names_call "
                 f"FROM webhook_events w WHERE {hooks}")
    I, S = packed.INT, packed.STR
    appts_cols = {"id": I, "uid": S, "source": S, "rcid": S}
    hooks_cols = {"id": I, "at_us": I, "event_id": S, "company_id": I, "names_call": I}
    window = {"lo": base["lo"], "hi": base["hi"]}
    first_error, error_params = _error_join(engine, lo, hi, company_id)
    mid = first + (last - first) / 2  # the attempts are read in two halves: [start, mid) and [mid, end)
    if start_ts is not None and mid <= start_ts:  # every real attempt at the window's first instant: one part
        mid = None

    def attempts(part_start, part_end):  # every attempt of the part with its first error row (failures only)
        return ai.attempt_traces(engine, schema, part_start, part_end, company_id, lean=True, statements=statements,
                          extra_params=error_params, extra_select=FIRST_ERROR_SELECT + REAL_CALL_SELECT,
                          extra_kinds={**FIRST_ERROR_KINDS, "real_call": packed.INT}, extra_join=first_error)

    # Each statement keeps the server busy for seconds: the webhooks then the appointments on one connection,
    # the attempts in two halves of the window on two more (one scan of the traces for successes and failures).
    with ThreadPoolExecutor(max_workers=2) as pool:
        lean_future = pool.submit(lambda: (run_packed(hooks_sql, base, hooks_cols, "id", ["at_us", "id"]).drop(columns="id"),
                                           run_packed(appts_sql, base, appts_cols, "id", ["id"])))
        later_future = pool.submit(attempts, mid, end) if mid is not None else None
        rows = attempts(start, end if mid is None else mid)
        attrs = {**rows.attrs, "window": [str(start_ts), str(end_ts)]}  # the part's, for the whole window
        if later_future is not None:
            rows = pd.concat([rows, later_future.result()], ignore_index=True)
        if when_fetched is not None:  # the attempts are read (the webhooks and appointments may still be)
            when_fetched()
        hooks_rows, appts = lean_future.result()
    del later_future, lean_future
    rows["real_call"] = rows["real_call"].eq(1)
    if hooks_rows["names_call"].astype(int).any():  # a payload names a call: classify every row instead
        return _not_applicable("a BOOKING_CREATED webhook payload names a call")
    succeeded = ai.attempt_succeeded(rows).to_numpy()
    real = rows["real_call"].to_numpy()
    if any(outcomes.blob_uids(rows.loc[real, "output_result"], rows.loc[real, "error_details"])):
        return _not_applicable("an attempt names a Cal.com uid in its JSON")  # classify every row instead
    failed, succ = rows[~succeeded].reset_index(drop=True), rows[succeeded].reset_index(drop=True)
    del rows  # the largest frames are freed as soon as they are split or used (peak memory)
    failed, failed_errors = _errors_of_failures(engine, schema, failed, lo, hi, company_id, statements)
    resolved, open_ids, test_ids, webhooks, appointments = _claims(engine, schema, succ, appts, hooks_rows, lo, hi,
                                                                   window, statements)
    del hooks_rows, appts
    odd = ~failed["real_call"]
    excluded_ids = set(test_ids) | set(failed.loc[odd, "call_id"].astype(str))
    excluded = len(test_ids) + int(odd.sum())
    parts = [failed, succ[succ["trace_id"].isin(open_ids)].drop(columns=list(FIRST_ERROR_KINDS))]
    rows = pd.concat(parts, ignore_index=True).sort_values(["started_at", "trace_id"], kind="stable").reset_index(drop=True)
    del parts, failed, succ
    rows = rows[rows["real_call"]].reset_index(drop=True)
    # lean: only failures read errors, so the successes added above need none
    classified = outcomes.classify(rows, failed_errors, appointments, webhooks, ai.empty_calls())
    del rows, failed_errors, appointments, webhooks
    classified["n"] = 1
    inferred = int(classified["calcom_link"].eq("time").sum())
    fam = functions.family_series(resolved["function_name"].astype("string")).astype(str)
    ok = pd.DataFrame({"at": resolved["started_at"].array, "path": fam.to_numpy(),
                       "family": fam.to_numpy(), "function_name": resolved["function_name"].astype(str).to_numpy(),
                       "company_id": pd.to_numeric(resolved["company_id"]).astype("Int64").to_numpy(), "outcome": "success",
                       "rescued_by_webhook": False, "signature": pd.NA, "error_code": pd.NA, "calcom_link": "appointment",
                       "n": 1})
    frame = pd.concat([classified, ok], ignore_index=True) if len(ok) else classified
    del classified, ok, resolved
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    result = outcomes.count_attempts(frame, freq=freq, bins=bins, by=list(by), first_at=first_at, weight="n")
    outcome_counts = frame.groupby(frame["outcome"].astype(str))["n"].sum()
    result.attrs = {**attrs, "excluded_test_ids": len(excluded_ids), "excluded_test_attempts": excluded,
                    "outcome_counts": {o: int(outcome_counts.get(o, 0)) for o in outcomes.OUTCOMES},
                    "inferred_calcom_links": inferred, "statements": len(statements)}
    result.attrs["missing_columns"] = requirements.check(schema, *ai.REQUIRES["load"])
    return result


def _claims(engine, schema, succ, appts, hooks, lo, hi, window: dict, statements: list):
    """Which successes claim a uid: a real success claims its own appointment's uid when it is that
    appointment's first success (real first, then time, then trace id) and a webhook of the padded window
    confirms the uid. Returns the claiming successes (lean), the ids of the other real successes, the test
    call ids, and the webhooks no success claimed with the window's appointments carrying their uids."""
    appts = appts.sort_values("id", kind="stable").reset_index(drop=True)
    appts["id"] = pd.to_numeric(appts["id"]).astype("int64")
    real = succ["real_call"]
    a_id = _own_appointment(engine, schema, succ, appts, lo, hi, window, statements)
    order = pd.DataFrame({"a": a_id, "test": (~real).astype(int), "at": succ["started_at"], "id": succ["trace_id"]})
    first = ~order.sort_values(["a", "test", "at", "id"], kind="stable").duplicated("a")
    # the uids as integer codes, hashed once for the appointments and the webhooks together (-1: NULL)
    appt_uid, hook_uid, n_uids = _codes(appts["uid"], hooks["event_id"])
    row = pd.Index(appts["id"]).get_indexer(a_id.to_numpy(dtype="int64", na_value=-1))  # ids are unsigned: -1 is none
    uid = _pick(appt_uid, row, -1)  # each success's own appointment's uid
    confirmed = _flags(hook_uid, n_uids)
    claims = real.to_numpy() & a_id.notna().to_numpy() & first.reindex(succ.index).to_numpy() & _has(confirmed, uid)
    unclaimed = ~_has(_flags(uid[claims], n_uids), hook_uid)
    local = _has(_flags(hook_uid[unclaimed], n_uids), appt_uid)
    return (succ.loc[claims, ["function_name", "company_id", "started_at"]],
            succ.loc[real.to_numpy() & ~claims, "trace_id"].astype("int64").tolist(),
            succ.loc[~real, "call_id"].dropna().astype(str),
            _webhook_frame(hooks[unclaimed].drop(columns=["names_call"])),
            _local_appointments(appts[local]))


def _codes(*columns: pd.Series) -> tuple:
    """Integer codes of string columns over one shared set of values (-1 for NULL), and how many values."""
    codes, uniques = pd.factorize(np.concatenate([c.to_numpy(dtype=object) for c in columns]))
    bounds = np.cumsum([0] + [len(c) for c in columns])
    return (*[codes[a:b] for a, b in zip(bounds[:-1], bounds[1:])], len(uniques))


def _pick(values: np.ndarray, rows: np.ndarray, missing) -> np.ndarray:
    """``values[rows]``, with ``missing`` where a row is -1 (``get_indexer`` found none)."""
    out = np.full(len(rows), missing, dtype=values.dtype)
    out[rows >= 0] = values[rows[rows >= 0]]
    return out


def _flags(codes: np.ndarray, n: int) -> np.ndarray:
    flags = np.zeros(n, dtype=bool)
    flags[codes[codes >= 0]] = True
    return flags


def _has(flags: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Whether each code's flag is set (never for -1, NULL)."""
    return (codes >= 0) & flags[np.maximum(codes, 0)] if len(flags) else np.zeros(len(codes), dtype=bool)


def _webhook_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The webhooks as ``attempt_inputs`` reads them has them, for the columns ``outcomes.classify`` reads
    (every row is a ``BOOKING_CREATED``: the statement selected only those)."""
    frame = frame.assign(created_at=ai.from_micros(frame["at_us"])).drop(columns="at_us").reset_index(drop=True)
    frame["event_type"] = frame["event_type_norm"] = ai.BOOKING_CREATED
    frame["payload"] = None
    return loaders.typed(frame, ints=["company_id"], strings=["event_id"], cats=["event_type", "event_type_norm"])


FIRST_ERROR_SELECT = (f", fe.id AS fe_id, {ai.micros_sql('fe.occurred_at')} AS fe_at, fe.error_message AS fe_message, "
                      "fe.error_code AS fe_code")
FIRST_ERROR_KINDS = {"fe_id": packed.INT, "fe_at": packed.INT, "fe_message": packed.STR, "fe_code": packed.CAT}
# whether the session's call id is a real one (P4), decided once per attempt by the server
REAL_CALL_SELECT = f", CASE WHEN {call_ids.real_call_id_sql('s.call_id')} THEN 1 ELSE 0 END AS real_call"


def _error_join(engine, lo, hi, company_id) -> tuple[str, dict]:
    """Each failure's error rows by ``function_trace_id``, kept as ``attempt_inputs.attempt_errors`` keeps them
    (window, real call id of their session, company): a foreign-key lookup per failure instead of a second
    100k-row fetch (a correlated ``ORDER BY ... LIMIT 1`` took twice as long; the first row is picked in pandas).
    An error row of the failure's own session needs no session lookup: the failure's company was filtered and
    a failure whose call id is not real keeps no errors (``_errors_of_failures``)."""
    params: dict = {}
    cond = [ai.not_success_sql("t.status", engine)]  # successes read no error rows (lean)
    cond += ai.window_bounds("fe.occurred_at", lo, hi, engine, params, "fe")
    other = [call_ids.real_call_id_sql("es.call_id", engine)] + loaders.company_clause("es.company_id", company_id, params)
    cond.append(f"(fe.call_session_id = t.call_session_id OR EXISTS (SELECT 1 FROM retell_call_sessions es "
                f"WHERE es.id = fe.call_session_id AND {' AND '.join(other)}))")
    return f" LEFT JOIN retell_error_log fe ON fe.function_trace_id = t.id AND {' AND '.join(cond)}", params


def _errors_of_failures(engine, schema, failed: pd.DataFrame, lo, hi, company_id, statements: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The failures without their ``fe_`` columns, and ``attempt_inputs.attempt_errors`` of the real ones: the first
    error rows came with the failures, the session fallback is asked here (lean: successes read no error rows)."""
    if failed["trace_id"].duplicated().any():  # several error rows: the first by (occurred_at, id), as _match_errors
        first = failed.sort_values(["fe_at", "fe_id"], kind="stable").drop_duplicates("trace_id").index
        failed = failed.loc[first.sort_values()].reset_index(drop=True)
    real_call = failed["real_call"]
    linked = failed[real_call].dropna(subset=["fe_id"])
    at = ai.from_micros(linked["fe_at"])
    by_trace = pd.DataFrame({"error_id": linked["fe_id"].to_numpy(), "function_trace_id": linked["trace_id"].to_numpy(),
                             "call_id": linked["call_id"].to_numpy(), "company_id": linked["company_id"].to_numpy(),
                             "occurred_at": at.array, "error_message": linked["fe_message"].to_numpy(),
                             "error_code": linked["fe_code"].to_numpy(), "affected_function": None, "error_context": None,
                             "occurred_raw": at.dt.tz_localize(None).to_numpy()})
    failed = failed.drop(columns=list(FIRST_ERROR_KINDS))
    real = failed[real_call]
    if not len(real):
        return failed, ai.empty_errors()
    return failed, ai.attempt_errors(engine, schema, real, lo, hi, company_id, lean=True, statements=statements, by_trace=by_trace)


def _own_appointment(engine, schema, succ: pd.DataFrame, appts: pd.DataFrame, lo, hi, window: dict,
                     statements: list) -> pd.Series:
    """Each success's own appointment id by ``bookings.appointment_by_call`` (the rows path's rule), on lean
    frames: the call rows (``attempt_inputs.calls_of``) and the appointments on them (``call_id`` index) are
    read only for calls that no appointment of the window names in its metadata."""
    named = appts.dropna(subset=["rcid"]).drop_duplicates("rcid")  # the first appointment (by id) naming each call
    row = pd.Index(named["rcid"]).get_indexer(succ["call_id"].to_numpy(dtype=object))
    own = pd.Series(_pick(named["id"].to_numpy(dtype="int64"), row, 0), index=succ.index, dtype="Int64").where(row >= 0)
    todo = succ[succ["call_id"].notna().to_numpy() & (row < 0)]
    if not len(todo):
        return own
    # the rest: the call's row, then the window's appointments on it (no appointment names these calls)
    traces = pd.DataFrame({"call_id": todo["call_id"].astype(str), "session_started_at": todo["session_started_at"]})
    calls = ai.calls_of(engine, schema, traces, ai.empty_appointments(), lo, hi, statements)
    local_ids = sorted(set(calls["local_call_id"].dropna().astype(int)))
    parts = [(f"SELECT id, call_id FROM appointments WHERE call_id IN ({', '.join(map(str, local_ids[i:i + ai.ID_CHUNK]))}) "
              "AND created_at >= :lo AND created_at < :hi AND deleted_at IS NULL", window)
             for i in range(0, len(local_ids), ai.ID_CHUNK)]
    on_call_rows = ai.run_parts(engine, parts, statements, desc="appointments of the calls", columns=["id", "call_id"])
    on_call_rows = on_call_rows.assign(id=pd.to_numeric(on_call_rows["id"]).astype("int64"))
    on_call_rows = on_call_rows[on_call_rows["id"].isin(appts["id"])].sort_values("id", kind="stable")
    appointments = pd.DataFrame({"id": on_call_rows["id"].to_numpy(), "retell_call_id": pd.NA,
                                 "call_id": pd.to_numeric(on_call_rows["call_id"]).astype("Int64").to_numpy()})
    via_call_row = bookings.appointment_by_call(pd.DataFrame({"call_id": todo["call_id"]}), appointments, calls)
    return own.fillna(pd.to_numeric(via_call_row.reindex(succ.index)).astype("Int64"))


def _local_appointments(appts: pd.DataFrame) -> pd.DataFrame:
    """Appointments of the window carrying an unclaimed uid; their call links left out on purpose: these
    attempts have no own appointment to claim (that was settled by ``_own_appointment``)."""
    return pd.DataFrame({"id": appts["id"].astype("Int64").to_numpy(),
                         "call_id": pd.array([pd.NA] * len(appts), dtype="Int64"),
                         "calcom_v2_booking_id": appts["uid"].astype("string").to_numpy(),
                         "source": appts["source"].astype("string").astype("category").to_numpy(),
                         "retell_call_id": pd.array([pd.NA] * len(appts), dtype="string")})
