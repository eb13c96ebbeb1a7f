"""``attempt_counts`` without a row per successful attempt (MariaDB, sessions pinned to UTC).

Why: at 1M calls a month holds ~200k booking attempts; fetching each as a row (pure-Python
driver) costs tens of seconds although most are successes whose count key never changes.
A success only matters to other attempts through the Cal.com uid it claims. So, when no
attempt of the window names a uid in its JSON and no ``BOOKING_CREATED`` payload names a call
(checked first; otherwise ``None`` and the caller classifies every row), the outcome rules
reduce to:

* each success claims the uid of its own appointment (``metadata.retell_call_id``, else
  ``appointments.call_id`` = ``calls.id``; first appointment by id) when a ``BOOKING_CREATED``
  webhook of the padded window confirms it, first success per uid wins: computed in SQL
  (JSON, the unique ``event_id``/``calcom_v2_booking_id`` indexes and ``ROW_NUMBER()``) and
  counted there;
* the failures and the successes left without a uid are classified row by row as
  :func:`rca_toolkit.outcomes.classify` does, against the webhooks no success claimed.

The result equals ``count_attempts(booking_attempts(...))`` (the tests compare them).
"""

from __future__ import annotations

import pandas as pd

from . import attempt_inputs as ai
from . import loaders, names
from .timeutil import parse_instant

GRAINS = ((pd.Timedelta(hours=1), "%Y-%m-%d %H"), (pd.Timedelta(minutes=1), "%Y-%m-%d %H:%i"),
          (pd.Timedelta(seconds=1), "%Y-%m-%d %H:%i:%s"))
FAST_BY = {"family", "function_name", "company_id", "error_code"}
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def _grain(freq, bins) -> str | None | bool:
    """DATE_FORMAT pattern whose buckets never straddle a period edge; None: no time key; False: not possible."""
    if not freq and bins is None:
        return None
    if freq:
        try:
            steps = [pd.Timedelta(freq)]
        except (ValueError, TypeError):
            return False
        offsets = [pd.Timedelta(0)]
    else:
        steps = [pd.Timedelta(0)]
        offsets = [pd.Timestamp(b).tz_convert("UTC") - EPOCH if pd.Timestamp(b).tzinfo else pd.Timestamp(b).tz_localize("UTC") - EPOCH
                   for b in bins]
    for size, pattern in GRAINS:
        if all(s % size == pd.Timedelta(0) for s in steps) and all(o % size == pd.Timedelta(0) for o in offsets):
            return pattern
    return False


def _real(col: str) -> str:
    return f"({col} REGEXP '(?-i)^call_[0-9a-f]{{27}}$')"


def counts(engine, *, start=None, end=None, company_id=None, freq=None, bins=None, by=(), first_at=False):
    """The frame of ``outcomes.count_attempts`` for this window, or None when the shortcut does not apply."""
    from . import outcomes

    if engine.dialect.name == "sqlite" or loaders.storage_zone(engine) != "UTC" or set(by) - FAST_BY:
        return None
    grain = _grain(freq, bins)
    if grain is False:
        return None
    schema = loaders.schema_of(engine)
    need = {"appointments": ["id", "call_id", "calcom_v2_booking_id", "source", "metadata", "created_at", "deleted_at"],
            "webhook_events": ["id", "provider", "event_type", "event_id", "payload", "created_at", "company_id"],
            "calls": ["id", "retell_call_id", "deleted_at"]}
    if any(t not in schema or set(cols) - set(schema[t].columns) for t, cols in need.items()):
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
    head = run(f"SELECT COUNT(*) AS n, SUM(CASE WHEN {_real('s.call_id')} THEN 0 ELSE 1 END) AS excluded, "
               f"MIN(CASE WHEN {_real('s.call_id')} THEN t.started_at END) AS first, "
               f"MAX(CASE WHEN {_real('s.call_id')} THEN t.started_at END) AS last, "
               f"SUM(CASE WHEN {_real('s.call_id')} AND {uid_blob} THEN 1 ELSE 0 END) AS uid_blobs, "
               f"COUNT(DISTINCT CASE WHEN NOT {_real('s.call_id')} THEN CAST(s.call_id AS BINARY) END) AS excluded_ids "
               f"{traces_from}", base).iloc[0]
    if head["first"] is None or pd.isna(head["first"]) or int(head["uid_blobs"] or 0):
        return None
    first = pd.Timestamp(head["first"]).tz_localize("UTC")
    last = pd.Timestamp(head["last"]).tz_localize("UTC")
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
    named = run(f"SELECT COUNT(*) AS n FROM webhook_events w{hint_w} WHERE {hooks} AND {ai._like_any('w.payload', ['call_id'])}", base)
    if int(named["n"].iloc[0]):
        return None
    hint_a = ai.force_index(engine, schema, "appointments", "appointments_created_at_index")
    window_a = "created_at >= :lo AND created_at < :hi AND deleted_at IS NULL"
    rcid = "COALESCE(JSON_VALUE(metadata, '$.retell_call_id'), JSON_VALUE(JSON_UNQUOTE(metadata), '$.retell_call_id'))"
    # an indexable, case- and length-exact key (the derived table gets an index on it: ref, not a join buffer)
    cte = (f"WITH am AS (SELECT rb, rlen, MIN(id) AS id FROM (SELECT id, CAST({rcid} AS CHAR(64)) COLLATE utf8mb4_bin AS rb, "
           f"CHAR_LENGTH({rcid}) AS rlen FROM appointments{hint_a} WHERE {window_a} "
           f"AND {ai._like_any('metadata', ['retell_call_id'])}) m WHERE rb IS NOT NULL GROUP BY rb, rlen), "
           f"al AS (SELECT call_id, MIN(id) AS id FROM appointments{hint_a} WHERE {window_a} AND call_id IS NOT NULL GROUP BY call_id), "
           f"succ AS (SELECT t.id AS trace_id, t.started_at, t.function_name, s.company_id, "
           f"a.calcom_v2_booking_id COLLATE utf8mb4_bin AS uid_b, CHAR_LENGTH(a.calcom_v2_booking_id) AS ulen, "
           f"CASE WHEN w.id IS NULL THEN 0 ELSE ROW_NUMBER() OVER (PARTITION BY a.calcom_v2_booking_id COLLATE utf8mb4_bin, "
           f"CHAR_LENGTH(a.calcom_v2_booking_id), w.id IS NULL ORDER BY t.started_at, t.id) END AS rk "
           f"FROM retell_function_traces t{ai.force_index(engine, schema, 'retell_function_traces', 'idx_traces_function_time')} "
           f"JOIN retell_call_sessions s ON s.id = t.call_session_id "
           f"LEFT JOIN am ON am.rb = s.call_id COLLATE utf8mb4_bin AND am.rlen = CHAR_LENGTH(s.call_id) "
           f"LEFT JOIN calls c ON c.retell_call_id = s.call_id AND CAST(c.retell_call_id AS BINARY) = CAST(s.call_id AS BINARY) "
           f"AND c.deleted_at IS NULL AND s.started_at >= :lo_calls AND s.started_at < :hi "
           f"LEFT JOIN al ON al.call_id = c.id "
           f"LEFT JOIN appointments a ON a.id = COALESCE(am.id, al.id) "
           f"LEFT JOIN webhook_events w ON w.event_id = a.calcom_v2_booking_id "
           f"AND CAST(w.event_id AS BINARY) = CAST(a.calcom_v2_booking_id AS BINARY) AND {hooks} "
           f"WHERE {' AND '.join(where)} AND {ai.is_success_sql('t.status', engine)} AND {_real('s.call_id')}) ")
    bucket = f"DATE_FORMAT(started_at, '{grain}')" if grain else "''"
    succ = run(f"{cte}SELECT CASE WHEN rk = 1 THEN 1 ELSE 0 END AS resolved, function_name, company_id, {bucket} AS bucket, "
               f"CASE WHEN rk = 1 THEN NULL ELSE trace_id END AS trace_id, COUNT(*) AS n, MIN(started_at) AS at "
               f"FROM succ GROUP BY 1, 2, 3, 4, 5", base)
    unclaimed_sql = (f"{cte}SELECT w.id, w.event_type, w.created_at, w.event_id, w.company_id, NULL AS payload FROM webhook_events w{hint_w} "
                     f"WHERE {hooks} AND (w.event_id COLLATE utf8mb4_bin, CHAR_LENGTH(w.event_id)) NOT IN "
                     f"(SELECT uid_b, ulen FROM succ WHERE rk = 1 AND uid_b IS NOT NULL) ORDER BY w.created_at, w.id")
    webhooks = _webhook_frame(run(unclaimed_sql, base))

    resolved = succ[succ["resolved"].astype(int) == 1]
    open_ids = succ.loc[succ["resolved"].astype(int) == 0, "trace_id"].dropna().astype("int64").tolist()
    failed = ai._traces(engine, schema, start, end, company_id, lean=True, statements=statements,
                        extra_where=[ai._not_success_sql("t.status", engine)])
    parts = [failed]
    for i in range(0, len(open_ids), ai.ID_CHUNK):
        ids = ", ".join(str(v) for v in open_ids[i:i + ai.ID_CHUNK])
        parts.append(ai._traces(engine, schema, start, end, company_id, lean=True, statements=statements,
                                extra_where=[f"t.id IN ({ids})"]))
    attrs = failed.attrs
    rows = pd.concat(parts, ignore_index=True).sort_values(["started_at", "trace_id"], kind="stable").reset_index(drop=True)
    rows = rows[rows["call_id"].map(names.is_real_call_id).astype(bool)].reset_index(drop=True)
    errors = ai._errors(engine, schema, rows, lo, hi, company_id, lean=True, statements=statements) if len(rows) else ai._empty_errors()
    appointments = _appointments_of(engine, schema, webhooks, lo, hi, statements)
    classified = outcomes.classify(rows, errors, appointments, webhooks, ai._empty_calls())
    classified["n"] = 1
    fam = names.family_series(resolved["function_name"].astype("string")).astype(str)
    ok = pd.DataFrame({"at": pd.to_datetime(resolved["at"]).dt.tz_localize("UTC"), "path": fam.to_numpy(),
                       "family": fam.to_numpy(), "function_name": resolved["function_name"].astype(str).to_numpy(),
                       "company_id": pd.to_numeric(resolved["company_id"]).astype("Int64").to_numpy(), "outcome": "success",
                       "rescued_by_webhook": False, "signature": pd.NA, "error_code": pd.NA, "calcom_link": "appointment",
                       "n": resolved["n"].astype("int64").to_numpy()})
    frame = pd.concat([classified, ok], ignore_index=True) if len(ok) else classified
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    result = outcomes.count_attempts(frame, freq=freq, bins=bins, by=list(by), first_at=first_at, weight="n")
    outcome_counts = frame.groupby(frame["outcome"].astype(str))["n"].sum()
    result.attrs = {**attrs, "excluded_test_ids": int(head["excluded_ids"] or 0), "excluded_test_attempts": int(head["excluded"] or 0),
                    "outcome_counts": {o: int(outcome_counts.get(o, 0)) for o in outcomes.OUTCOMES},
                    "inferred_calcom_links": int(classified["calcom_link"].eq("time").sum()), "statements": len(statements)}
    missing = {t: m for t, m in (("appointments", loaders._present(schema, "appointments", loaders.APPOINTMENT_COLUMNS)[1]),
                                 ("webhook_events", loaders._present(schema, "webhook_events", ai.WEBHOOK_WANTED)[1])) if m}
    result.attrs["missing_columns"] = missing
    return result


def _webhook_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = loaders._to_utc(frame, ["created_at"], "UTC", flags=False)
    frame["event_type_norm"] = ai._norm_event_type(frame["event_type"])
    frame = frame[frame["event_type_norm"].eq(ai.BOOKING_CREATED).fillna(False)].reset_index(drop=True)
    frame["payload"] = None
    return loaders._typed(frame, ints=["id", "company_id"], strings=["event_id"], cats=["event_type", "event_type_norm"])


def _appointments_of(engine, schema, webhooks: pd.DataFrame, lo, hi, statements: list) -> pd.DataFrame:
    """Appointments of the window carrying an unclaimed uid (unique index); their call links left out on purpose:
    these attempts have no own appointment to claim (that was settled in SQL)."""
    uids = webhooks["event_id"].dropna().astype(str).unique().tolist()
    frames = []
    for i in range(0, len(uids), ai.ID_CHUNK):
        chunk = uids[i:i + ai.ID_CHUNK]
        params = {f"u{k}": v for k, v in enumerate(chunk)}
        params.update(lo=loaders._wall_bound(lo, engine, pd.Timedelta(0)), hi=loaders._wall_bound(hi, engine, pd.Timedelta(0)))
        sql = (f"SELECT id, calcom_v2_booking_id, source FROM appointments WHERE calcom_v2_booking_id IN "
               f"({', '.join(f':u{k}' for k in range(len(chunk)))}) AND created_at >= :lo AND created_at < :hi "
               f"AND deleted_at IS NULL ORDER BY id")
        statements.append((sql, params))
        frames.append(loaders._query(engine, sql, params))
    frame = pd.concat(frames, ignore_index=True).sort_values("id", kind="stable") if frames else ai._empty_appointments()
    frame = frame[frame["calcom_v2_booking_id"].astype("string").isin(set(uids))].reset_index(drop=True)
    out = pd.DataFrame({"id": pd.to_numeric(frame["id"]).astype("Int64"), "call_id": pd.array([pd.NA] * len(frame), dtype="Int64"),
                        "calcom_v2_booking_id": frame["calcom_v2_booking_id"].astype("string"),
                        "source": frame["source"].astype("string").astype("category"),
                        "retell_call_id": pd.array([pd.NA] * len(frame), dtype="string")})
    return out
