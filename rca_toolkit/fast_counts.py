"""``attempt_counts`` without a row per successful attempt (MariaDB, sessions pinned to UTC).

Why: at 1M calls a month holds ~200k booking attempts; fetching each as a row (pure-Python
driver) costs tens of seconds although most are successes whose count key never changes.
A success only matters to other attempts through the Cal.com uid it claims. So, when no
attempt of the window names a uid in its JSON and no ``BOOKING_CREATED`` payload names a call
(both checked; otherwise ``None`` and the caller classifies every row), the outcome rules
reduce to:

* each success claims the uid of its own appointment (``metadata.retell_call_id``, else
  ``appointments.call_id`` = ``calls.id``; first appointment by id) when a ``BOOKING_CREATED``
  webhook of the padded window confirms it, first success per uid wins: the own appointment and
  the rank per appointment come from SQL (JSON, a correlated lookup, ``ROW_NUMBER()``); the
  confirmation from the webhooks' join to their appointment (unique ``calcom_v2_booking_id``);
* the failures and the successes left without a uid are classified row by row as
  :func:`rca_toolkit.outcomes.classify` does, against the webhooks no success claimed.

The claims statement runs on a second connection while the first reads the webhooks and the
failures with their error rows. Times travel as integer microseconds. The result equals
``count_attempts(booking_attempts(...))`` (the tests compare them, also on a perturbed world).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from . import attempt_inputs as ai
from . import loaders, names
from .timeutil import parse_instant

FAST_BY = {"family", "function_name", "company_id", "error_code"}
UNIQUE_KEYS = (("appointments", "calcom_v2_booking_id"), ("webhook_events", "event_id"))


def _unique(schema, table: str, column: str) -> bool:
    return any(ix.get("unique") and list(ix.get("column_names") or []) == [column] for ix in schema[table].indexes)


def counts(engine, *, start=None, end=None, company_id=None, freq=None, bins=None, by=(), first_at=False):
    """The frame of ``outcomes.count_attempts`` for this window, or None when the shortcut does not apply."""
    from . import outcomes

    if engine.dialect.name == "sqlite" or loaders.storage_zone(engine) != "UTC" or set(by) - FAST_BY:
        return None
    schema = loaders.schema_of(engine)
    need = {"appointments": ["id", "call_id", "calcom_v2_booking_id", "source", "metadata", "created_at", "deleted_at"],
            "webhook_events": ["id", "provider", "event_type", "event_id", "payload", "created_at", "company_id"],
            "calls": ["id", "retell_call_id", "deleted_at"]}
    if any(t not in schema or set(cols) - set(schema[t].columns) for t, cols in need.items()):
        return None
    if not all(_unique(schema, t, c) for t, c in UNIQUE_KEYS):  # the claims below rely on one row per uid
        return None
    start_ts = None if start is None else parse_instant(start, name="start")
    end_ts = None if end is None else parse_instant(end, name="end")
    base: dict = {}
    where = loaders._family_clause(engine, "t.function_name", names.BOOKING_FAMILIES, base)
    if start_ts is not None:
        base["t_lo"] = loaders._wall_bound(start_ts, engine, pd.Timedelta(0))
        where.append("t.started_at >= :t_lo")
    if end_ts is not None:
        base["t_hi"] = loaders._wall_bound(end_ts, engine, pd.Timedelta(0))
        where.append("t.started_at < :t_hi")
    where += loaders._company_clause("s.company_id", company_id, base)
    traces_from = (f"FROM retell_function_traces t{ai.force_index(engine, schema, 'retell_function_traces', 'idx_traces_function_time')} "
                   f"JOIN retell_call_sessions s ON s.id = t.call_session_id WHERE {' AND '.join(where)}")
    statements = []

    def run(sql, params):
        statements.append((sql, params))
        return loaders._query(engine, sql, params)

    uid_blob = f"({ai._like_any('t.output_result', ai.UID_TEXT)} OR {ai._like_any('t.error_details', ai.UID_TEXT)})"
    # first and last real attempt: per stored name, walk (function_name, started_at) from each end
    ends = {"first": None, "last": None}
    for key in [k for k in base if k.startswith("fam")]:
        for label, order in (("first", "ASC"), ("last", "DESC")):
            got = run(f"SELECT t.started_at {traces_from} AND t.function_name = :{key} "
                      f"AND {loaders.real_call_id_sql('s.call_id')} ORDER BY t.started_at {order} LIMIT 1", base)
            if len(got):
                value = pd.Timestamp(got["started_at"].iloc[0])
                if ends[label] is None or (value < ends[label] if label == "first" else value > ends[label]):
                    ends[label] = value
    if ends["first"] is None:
        return None
    first, last = ends["first"].tz_localize("UTC"), ends["last"].tz_localize("UTC")
    lo, hi = first - ai.EARLY, last + ai.PAD
    base.update(lo=loaders._wall_bound(lo, engine, pd.Timedelta(0)), hi=loaders._wall_bound(hi, engine, pd.Timedelta(0)),
                lo_calls=loaders._wall_bound(lo - ai.PAD, engine, pd.Timedelta(0)))
    types = [t for t in ai._stored_values(engine, "webhook_events", "event_type")
             if ai._norm_event_type(pd.Series([t.strip()])).iloc[0] == ai.BOOKING_CREATED]
    base.update({f"et{i}": t for i, t in enumerate(types)})
    type_in = f"w.event_type IN ({', '.join(f':et{i}' for i in range(len(types)))})" if types else "1 = 0"
    hooks = (f"w.created_at >= :lo AND w.created_at < :hi AND w.provider = 'calcom' AND {type_in} "
             f"AND CAST(UPPER(REPLACE(w.event_type, '.', '_')) AS BINARY) = 'BOOKING_CREATED'")
    hint_w = ai.force_index(engine, schema, "webhook_events", "webhook_events_created_at_index")
    hint_a = ai.force_index(engine, schema, "appointments", "appointments_created_at_index")
    window_a = "created_at >= :lo AND created_at < :hi AND deleted_at IS NULL"
    rcid = "COALESCE(JSON_VALUE(metadata, '$.retell_call_id'), JSON_VALUE(JSON_UNQUOTE(metadata), '$.retell_call_id'))"
    # an indexable, case- and length-exact key (the derived table gets an index on it: ref, not a join buffer)
    cte = (f"WITH am AS (SELECT rb, rlen, MIN(id) AS id FROM (SELECT id, CAST({rcid} AS CHAR(64)) COLLATE utf8mb4_bin AS rb, "
           f"CHAR_LENGTH({rcid}) AS rlen FROM appointments{hint_a} WHERE {window_a} "
           f"AND {ai._like_any('metadata', ['retell_call_id'])}) m WHERE rb IS NOT NULL GROUP BY rb, rlen), "
           f"succ AS (SELECT t.id AS trace_id, t.started_at, t.function_name, s.company_id, "
           f"CASE WHEN {loaders.real_call_id_sql('s.call_id')} THEN 0 ELSE 1 END AS test_rank, "
           f"CASE WHEN {loaders.real_call_id_sql('s.call_id')} THEN NULL ELSE s.call_id END AS test_id, "
           f"CASE WHEN {loaders.real_call_id_sql('s.call_id')} AND {uid_blob} THEN 1 ELSE 0 END AS uid_like, "
           # the call's own appointment: the first naming it in metadata, else (looked up only then) the first
           # of the call's row (calls.id); both come from the window's appointments
           f"COALESCE(am.id, (SELECT MIN(a2.id) FROM calls c JOIN appointments a2 "
           f"ON a2.call_id = c.id WHERE c.retell_call_id = s.call_id AND CAST(c.retell_call_id AS BINARY) = CAST(s.call_id AS BINARY) "
           f"AND c.deleted_at IS NULL AND s.started_at >= :lo_calls AND s.started_at < :hi "
           f"AND a2.created_at >= :lo AND a2.created_at < :hi AND a2.deleted_at IS NULL)) AS a_id "
           f"FROM retell_function_traces t{ai.force_index(engine, schema, 'retell_function_traces', 'idx_traces_function_time')} "
           f"JOIN retell_call_sessions s ON s.id = t.call_session_id "
           f"LEFT JOIN am ON am.rb = s.call_id COLLATE utf8mb4_bin AND am.rlen = CHAR_LENGTH(s.call_id) "
           f"WHERE {' AND '.join(where)} AND {ai.is_success_sql('t.status', engine)}) ")
    # rank 1 = the first real success of its appointment (test rows sort last); whether a webhook confirms the
    # appointment's uid comes from the webhooks' own join to their appointment (one appointment per uid)
    succ_sql = (f"{cte}SELECT trace_id, a_id, ROW_NUMBER() OVER (PARTITION BY a_id ORDER BY test_rank, started_at, trace_id) AS rk, "
                f"function_name, company_id, {ai.micros_sql('started_at')} AS at_us, test_id, uid_like FROM succ")
    # every BOOKING_CREATED webhook of the padded window, lean, with the local appointment of its uid (unique
    # index; exact, case-sensitive match); a payload that names a call ends the shortcut
    # times as integers (attempt_inputs.micros_sql); ORDER BY is the index order (created_at, id): no
    # filesort (one appointment per uid, so a.id needs no order)
    hooks_sql = (f"SELECT w.id, w.event_type, {ai.micros_sql('w.created_at')} AS at_us, w.event_id, w.company_id, "
                 f"CASE WHEN {ai._like_any('w.payload', ['call_id'])} THEN 1 ELSE 0 END AS names_call, "
                 f"a.id AS a_id, a.source AS a_source FROM webhook_events w{hint_w} "
                 f"LEFT JOIN appointments a ON a.calcom_v2_booking_id = w.event_id "
                 f"AND CAST(a.calcom_v2_booking_id AS BINARY) = CAST(w.event_id AS BINARY) "
                 f"AND a.created_at >= :lo AND a.created_at < :hi AND a.deleted_at IS NULL "
                 f"WHERE {hooks} ORDER BY w.created_at, w.id")
    # The successes' claims keep the server busy for seconds: they run on a second connection
    # while this one reads the webhooks, the failures and their errors (independent of the claims).
    with ThreadPoolExecutor(max_workers=1) as pool:
        succ_future = pool.submit(run, succ_sql, base)
        hooks_rows = run(hooks_sql, base).drop_duplicates("id")
        first_error, error_params = _error_join(engine, lo, hi, company_id)
        failed = ai._traces(engine, schema, start, end, company_id, lean=True, statements=statements,
                            extra_where=[ai._not_success_sql("t.status", engine)], extra_params=error_params,
                            extra_select=FIRST_ERROR_SELECT, extra_join=first_error)
        failed, failed_errors = _errors_of_failures(engine, schema, failed, lo, hi, company_id, statements)
        succ = succ_future.result()
    if hooks_rows["names_call"].astype(int).any():  # a payload names a call: classify every row instead
        return None
    if succ["uid_like"].astype(int).any():  # a success names a uid in its JSON: classify every row instead
        return None
    # a real success claims its appointment's uid when it ranks first there and a webhook confirms the uid
    real = succ["test_id"].isna()
    a_id = pd.to_numeric(succ["a_id"])
    hooked_a = pd.to_numeric(hooks_rows["a_id"])
    claims = real & (pd.to_numeric(succ["rk"]) == 1) & a_id.isin(set(hooked_a.dropna()))
    unclaimed = hooks_rows[~hooked_a.isin(set(a_id[claims]))]
    webhooks = _webhook_frame(unclaimed.drop(columns=["names_call", "a_id", "a_source"]))
    resolved = succ[claims]
    open_ids = succ.loc[real & ~claims, "trace_id"].astype("int64").tolist()
    test_ids = succ["test_id"].dropna().astype(str)
    parts = [failed]
    for i in range(0, len(open_ids), ai.ID_CHUNK):
        ids = ", ".join(str(v) for v in open_ids[i:i + ai.ID_CHUNK])
        parts.append(ai._traces(engine, schema, start, end, company_id, lean=True, statements=statements,
                                extra_where=[f"t.id IN ({ids})"]))
    attrs = failed.attrs
    odd = ~names.real_call_ids(failed["call_id"])
    excluded_ids = set(test_ids) | set(failed.loc[odd, "call_id"].astype(str))
    excluded = len(test_ids) + int(odd.sum())
    real_failed = failed[~odd]
    if any(outcomes.blob_uids(real_failed["output_result"], real_failed["error_details"])):
        return None  # a failure names a uid in its JSON
    rows = pd.concat(parts, ignore_index=True).sort_values(["started_at", "trace_id"], kind="stable").reset_index(drop=True)
    rows = rows[names.real_call_ids(rows["call_id"])].reset_index(drop=True)
    errors = failed_errors  # lean: only failures read errors, so the successes added above need none
    appointments = _local_appointments(unclaimed)
    classified = outcomes.classify(rows, errors, appointments, webhooks, ai._empty_calls())
    classified["n"] = 1
    fam = names.family_series(resolved["function_name"].astype("string")).astype(str)
    ok = pd.DataFrame({"at": ai.from_micros(resolved["at_us"]).array, "path": fam.to_numpy(),
                       "family": fam.to_numpy(), "function_name": resolved["function_name"].astype(str).to_numpy(),
                       "company_id": pd.to_numeric(resolved["company_id"]).astype("Int64").to_numpy(), "outcome": "success",
                       "rescued_by_webhook": False, "signature": pd.NA, "error_code": pd.NA, "calcom_link": "appointment",
                       "n": 1})
    frame = pd.concat([classified, ok], ignore_index=True) if len(ok) else classified
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    result = outcomes.count_attempts(frame, freq=freq, bins=bins, by=list(by), first_at=first_at, weight="n")
    outcome_counts = frame.groupby(frame["outcome"].astype(str))["n"].sum()
    result.attrs = {**attrs, "excluded_test_ids": len(excluded_ids), "excluded_test_attempts": excluded,
                    "outcome_counts": {o: int(outcome_counts.get(o, 0)) for o in outcomes.OUTCOMES},
                    "inferred_calcom_links": int(classified["calcom_link"].eq("time").sum()), "statements": len(statements)}
    missing = {t: m for t, m in (("appointments", loaders._present(schema, "appointments", loaders.APPOINTMENT_COLUMNS)[1]),
                                 ("webhook_events", loaders._present(schema, "webhook_events", ai.WEBHOOK_WANTED)[1])) if m}
    result.attrs["missing_columns"] = missing
    return result


def _webhook_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(created_at=ai.from_micros(frame["at_us"])).drop(columns="at_us")
    frame["event_type_norm"] = ai._norm_event_type(frame["event_type"])
    frame = frame[frame["event_type_norm"].eq(ai.BOOKING_CREATED).fillna(False)].reset_index(drop=True)
    frame["payload"] = None
    return loaders._typed(frame, ints=["id", "company_id"], strings=["event_id"], cats=["event_type", "event_type_norm"])


FIRST_ERROR_SELECT = (f", fe.id AS fe_id, {ai.micros_sql('fe.occurred_at')} AS fe_at, fe.error_message AS fe_message, "
                      "fe.error_code AS fe_code")


def _error_join(engine, lo, hi, company_id) -> tuple[str, dict]:
    """Each failure's error rows by ``function_trace_id``, kept as ``attempt_inputs._errors`` keeps them
    (window, real call id of their session, company): a foreign-key lookup per failure instead of a second
    100k-row fetch (a correlated ``ORDER BY ... LIMIT 1`` took twice as long; the first row is picked in pandas)."""
    params: dict = {}
    cond = ai._bounds("fe.occurred_at", lo, hi, engine, params, "fe") + loaders._company_clause("es.company_id", company_id, params)
    cond.append(loaders.real_call_id_sql("es.call_id", engine))
    return (f" LEFT JOIN (retell_error_log fe JOIN retell_call_sessions es ON es.id = fe.call_session_id AND "
            f"{' AND '.join(cond)}) ON fe.function_trace_id = t.id"), params


def _errors_of_failures(engine, schema, failed: pd.DataFrame, lo, hi, company_id, statements: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The failures without their ``fe_`` columns, and ``attempt_inputs._errors`` of the real ones: the first
    error rows came with the failures, the session fallback is asked here (lean: successes read no error rows)."""
    attrs = failed.attrs
    if failed["trace_id"].duplicated().any():  # several error rows: the first by (occurred_at, id), as _match_errors
        first = failed.sort_values(["fe_at", "fe_id"], kind="stable").drop_duplicates("trace_id").index
        failed = failed.loc[first.sort_values()].reset_index(drop=True)
    real_call = names.real_call_ids(failed["call_id"])
    linked = failed[real_call].dropna(subset=["fe_id"])
    at = ai.from_micros(linked["fe_at"])
    by_trace = pd.DataFrame({"error_id": linked["fe_id"].to_numpy(), "function_trace_id": linked["trace_id"].to_numpy(),
                             "call_id": linked["call_id"].to_numpy(), "company_id": linked["company_id"].to_numpy(),
                             "occurred_at": at.to_numpy(), "error_message": linked["fe_message"].to_numpy(),
                             "error_code": linked["fe_code"].to_numpy(), "affected_function": None, "error_context": None,
                             "occurred_raw": at.dt.tz_localize(None).to_numpy()})
    failed = failed.drop(columns=["fe_id", "fe_at", "fe_message", "fe_code"])
    failed.attrs = attrs
    real = failed[real_call]
    if not len(real):
        return failed, ai._empty_errors()
    return failed, ai._errors(engine, schema, real, lo, hi, company_id, lean=True, statements=statements, by_trace=by_trace)


def _local_appointments(hooks: pd.DataFrame) -> pd.DataFrame:
    """Appointments of the window carrying an unclaimed uid, from the webhooks' join; their call links left
    out on purpose: these attempts have no own appointment to claim (that was settled in SQL)."""
    frame = hooks.dropna(subset=["a_id"]).drop_duplicates("a_id").sort_values("a_id", kind="stable")
    return pd.DataFrame({"id": pd.to_numeric(frame["a_id"]).astype("Int64").to_numpy(),
                         "call_id": pd.array([pd.NA] * len(frame), dtype="Int64"),
                         "calcom_v2_booking_id": frame["event_id"].astype("string").to_numpy(),
                         "source": frame["a_source"].astype("string").astype("category").to_numpy(),
                         "retell_call_id": pd.array([pd.NA] * len(frame), dtype="string")})
