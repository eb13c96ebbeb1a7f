"""The five inputs of booking outcomes, read lean: only the rows and columns an outcome can depend on.

Why: :func:`rca_toolkit.analyses.bookings.outcomes.booking_attempts` used to load every error, appointment,
webhook and call of the padded window with all their columns (at 1M calls: errors through a
full scan of the sessions, 175 s and 6.4 GiB for 70 days). Outcomes only ever look up

* errors **of the attempts**: by ``function_trace_id`` (the FK index) or, for failed attempts
  without one, errors of the same session (the ``call_session_id`` FK index) that name a function;
* appointments and ``BOOKING_CREATED`` webhooks of the padded window, a few columns each; JSON
  (``metadata``, ``payload``, trace ``output_result``) is sent and decoded only when its text can
  hold what is looked for (a ``retell_call_id`` / ``call_id`` key, a uid key);
* the local ``calls.id`` of the attempts' calls (joined on ``calls.retell_call_id``, unique).

Every restriction keeps the frames equivalent for :func:`rca_toolkit.analyses.bookings.outcomes.classify`: it only
drops rows and values that no lookup of the window's attempts can reach (tests compare the
outcomes with the whole-table loads). Time bounds are compared as the loaders compare them, exactly in stored time
(``loaders.first_wall_time``). What is read is declared in ``REQUIRES`` and checked before the first
statement (:mod:`rca_toolkit.sources.requirements`): every column an outcome depends on is required.
The same statements read SQLite, the local store (:mod:`rca_toolkit.sources.store`, which a MariaDB
server is read through) and a server read directly (``--no-cache``): plain SQL, no hints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import loaders, requirements, store
from rca_toolkit.rules import bookings, functions
from rca_toolkit.config import progress
from rca_toolkit.sources.requirements import Requirement
from rca_toolkit.distinct import per_distinct, per_object
from rca_toolkit.rules.jsonutil import decode_json
from rca_toolkit.rules.timeutil import parse_instant

PAD = pd.Timedelta(hours=6)  # appointments/webhooks land shortly after the trace starts (outcomes.PAD)
EARLY = pd.Timedelta(minutes=5)  # errors/webhooks may be stamped a little before the trace

# What the outcome of an attempt is read from (rca_toolkit.sources.requirements). Every column that can change
# an outcome, a link or a rescue is required: read as empty, it would move attempts between success, failed
# and orphaned without a word. Only soft-delete markers are optional (absent: nothing counts as deleted).
ATTEMPT_TRACES = Requirement("retell_function_traces", ["id", "call_session_id", "function_name", "started_at", "status",
                                                        "output_result", "error_details"],
                             "booking attempts (the booking-function traces, their status and the uid they name)")
ATTEMPT_SESSIONS = Requirement("retell_call_sessions", ["id", "call_id", "company_id", "started_at"],
                               "booking attempts (each attempt's call, company and session start)")
# read only when the booking_steps setting names agent versions (rules.functions.booking_steps)
ATTEMPT_AGENTS = Requirement("retell_call_sessions", ["agent_id", "agent_version"],
                             "the booking_steps setting (which function makes the booking, per agent version)")
ATTEMPT_ERRORS = Requirement("retell_error_log", ["id", "call_session_id", "function_trace_id", "occurred_at", "error_message",
                                                  "error_code", "affected_function", "error_context"],
                             "booking outcomes (the error text and code path of each failed attempt)")
ATTEMPT_APPOINTMENTS = Requirement("appointments", ["id", "created_at", "call_id", "calcom_v2_booking_id", "source", "metadata"],
                                   "booking outcomes (orphaned = Cal.com uid without a local appointment; rescued = "
                                   "the appointment's source; a success's own appointment by metadata or call_id)",
                                   optional=["deleted_at"], if_absent="no appointment counts as soft-deleted")
ATTEMPT_WEBHOOKS = Requirement("webhook_events", ["id", "event_type", "created_at", "event_id", "company_id", "payload"],
                               "booking outcomes (Cal.com BOOKING_CREATED webhooks: the uid Cal.com booked, its "
                               "company and the call its payload names)", one_of=["provider", "source"])
ATTEMPT_CALLS = Requirement("calls", ["id", "retell_call_id"],
                            "booking outcomes (an appointment linked by appointments.call_id = calls.id)",
                            optional=["deleted_at"], if_absent="no call row counts as soft-deleted")
REQUIRES = {"load": (ATTEMPT_TRACES, ATTEMPT_SESSIONS, ATTEMPT_ERRORS, ATTEMPT_APPOINTMENTS, ATTEMPT_WEBHOOKS, ATTEMPT_CALLS)}


@dataclass
class AttemptInputs:
    """Frames in the shapes :func:`rca_toolkit.analyses.bookings.outcomes.classify` reads, plus exclusion counts."""

    traces: pd.DataFrame
    errors: pd.DataFrame
    appointments: pd.DataFrame
    webhooks: pd.DataFrame
    calls: pd.DataFrame
    excluded_ids: list[str] = field(default_factory=list)
    excluded_attempts: int = 0
    missing_columns: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- SQL pieces
def is_success_sql(col: str, engine: sa.Engine) -> str:
    """``col = 'success'`` compared like pandas does (case- and space-sensitive)."""
    if not loaders.is_mariadb(engine):
        return f"({col} = 'success')"
    return f"(CAST({col} AS BINARY) = 'success')"


def is_success(status: pd.Series) -> pd.Series:
    """``status == 'success'`` per row, False for NULL: the pandas twin of :func:`is_success_sql`."""
    return status.eq("success").fillna(False).astype(bool)


def attempt_succeeded(traces: pd.DataFrame) -> pd.Series:
    """An attempt succeeded: its trace status says so and it is no refused or unconfirmed validation (``step``)."""
    ok = is_success(traces["status"])
    if "step" in traces:
        ok &= ~traces["step"].astype("object").isin(functions.FAILED_STEPS).to_numpy()
    return ok


def not_success_sql(col: str, engine: sa.Engine) -> str:
    return f"({col} IS NULL OR NOT {is_success_sql(col, engine)})"


def contains_any(col: str, needles, engine: sa.Engine) -> str:
    """True when the text holds any needle, byte for byte: a cheap server-side prefilter for JSON keys,
    which Python matches case-sensitively too. Binary: a ``LIKE '%...%'`` under the tables'
    ``utf8mb4_unicode_ci`` compares by collation (1.0 s against 0.4 s over 440k webhook payloads)."""
    if not loaders.is_mariadb(engine):
        parts = [f"instr({col}, '{n}') > 0" for n in needles]
    else:
        parts = [f"LOCATE('{n}', CAST({col} AS BINARY)) > 0" for n in needles]
    return "(" + " OR ".join(parts) + ")"


UID_TEXT = ("uid", "calcom_v2_booking_id")  # every bookings.UID_KEYS name contains one of these


def _decode(series: pd.Series) -> pd.Series:
    """decode_json once per distinct text (read-only values: equal texts share one object).

    Why: 100k failures of one incident carry a handful of distinct ``error_details``; a dict
    per row cost hundreds of MiB at 1M calls."""
    return pd.Series(per_distinct(series, lambda text: decode_json(text)[0]), index=series.index, dtype="object")


# --------------------------------------------------------------------------- traces
def trace_where(engine, start, end, company_id, params: dict, stored_booking: list) -> tuple[list[str], pd.Timestamp | None,
                                                                                        pd.Timestamp | None]:
    """The booking traces of the window (``t``, with their session: ``loaders.session_of``)."""
    where, start_ts, end_ts = loaders.window_clause("t.started_at", start, end, engine, params)
    where += loaders.family_clause(engine, "t.function_name", functions.BOOKING_FAMILIES, params, stored_booking)
    session = loaders.session_of(engine)
    return where + [session.found] + loaders.company_clause(session.company_id, company_id, params), start_ts, end_ts


def attempt_traces(engine, schema, start, end, company_id, *, lean: bool, stored_booking: list | None = None) -> pd.DataFrame:
    """Booking traces of the window with their session's call, company and start (``stored_booking``: the
    stored names of the booking functions, :func:`rca_toolkit.sources.loaders.family_names`, read when not given)."""
    requirements.check(schema, ATTEMPT_TRACES, ATTEMPT_SESSIONS)
    params: dict = {}
    if stored_booking is None:
        stored_booking = loaders.family_names(engine, functions.BOOKING_FAMILIES)
    where, start_ts, end_ts = trace_where(engine, start, end, company_id, params, stored_booking)
    setting = functions.booking_steps_setting()
    agents = ""
    if setting:  # which function books depends on the agent version: its columns are needed
        requirements.check(schema, ATTEMPT_AGENTS)
        agents = ", s.agent_id AS agent_id, s.agent_version AS agent_version"
    # a response is sent when it can name a uid, names a next step, or is a validation step's (two-step bookings)
    response = (f"{contains_any('t.output_result', UID_TEXT + (functions.NEXT_ACTION,), engine)} "
                f"OR {functions.validation_steps_in_sql('t.function_name', stored_booking, params)}")
    details = "t.error_details" if not lean else (
        f"CASE WHEN {not_success_sql('t.status', engine)} OR {contains_any('t.error_details', UID_TEXT, engine)} THEN t.error_details END")
    # only failures look their session's unlinked errors up (attempt_errors): lean loads leave successes' session ids out
    session = "t.call_session_id" if not lean else f"CASE WHEN {not_success_sql('t.status', engine)} THEN t.call_session_id END"
    zone, of = loaders.storage_zone(engine), loaders.session_of(engine)
    join = of.join or (" JOIN retell_call_sessions s ON s.id = t.call_session_id" if agents else "")  # agents: not kept
    sql = (f"SELECT t.id AS trace_id, {session} AS session_id, {of.call_id} AS call_id, {of.company_id} AS company_id, "
           f"t.started_at AS started_at, t.function_name, t.status, CASE WHEN {response} THEN t.output_result END "
           f"AS output_result, {details} AS error_details, {of.started_at} AS session_started_at, {of.real} AS real_call{agents} "
           f"FROM retell_function_traces t{join} WHERE " + " AND ".join(where))
    frame = loaders.query(engine, sql, params)
    # a handful of names and statuses in 100k+ rows: categories once, then every rule runs per category
    for col in ("function_name", "status"):  # column by column: DataFrame.astype would copy every other column too
        frame[col] = frame[col].astype("category")
    for col in ("output_result", "error_details"):  # decoded before the sort: it then moves shared objects, not texts
        frame[col] = _decode(frame[col])
    # ORDER BY done here, as SQLite and MariaDB order stored values (NULL first). Why: sorting this join with its JSON in
    # DuckDB (the local store) needs the whole sorted result in its memory; past its limit it fails instead of spilling
    frame = frame.sort_values(["started_at", "trace_id"], kind="stable", na_position="first").reset_index(drop=True)
    frame = loaders.to_utc(frame, ["started_at"], zone)
    frame = loaders.to_utc(frame, ["session_started_at"], zone, flags=False)
    frame["family"] = functions.family_series(frame["function_name"])
    booking = frame["family"].isin(functions.BOOKING_FAMILIES).to_numpy()
    frame = frame if booking.all() else frame[booking].reset_index(drop=True)
    frame["error"] = per_object(frame["error_details"], loaders.error_text)  # decoded blobs are shared objects
    frame = _steps(engine, frame, end_ts, stored_booking, setting)
    frame["real_call"] = frame["real_call"].to_numpy(dtype=object, na_value=False).astype(bool)  # call_ids.real_call_id_sql
    frame = loaders.typed(frame, ints=["company_id", "trace_id"],
                           strings=["call_id", "session_id", "error"], cats=["function_name", "family", "status", "step"])
    frame.attrs = loaders.base_attrs(engine, window=[str(start_ts), str(end_ts)])
    return frame


def _steps(engine, frame: pd.DataFrame, end_ts, stored_booking: list, setting: dict) -> pd.DataFrame:
    """Two-step bookings (:func:`rca_toolkit.rules.functions.booking_steps`): validations that a later booking trace
    of their call completes are left out (the trace that books is the attempt); a refused or unconfirmed
    validation stays as a failed attempt with its ``step`` and the rule's text as its ``error``. A call may go on
    after the window: its booking traces from ``end`` on are looked up before a validation is called unconfirmed."""
    steps = functions.booking_steps(frame, is_success(frame["status"]), setting)
    open_ = steps["step"].eq("unconfirmed").to_numpy()
    if open_.any() and end_ts is not None:
        went_on = continued_calls(engine, frame.loc[open_, "call_id"], end_ts, stored_booking)
        completed = open_ & frame["call_id"].astype("object").isin(went_on).to_numpy()
        steps.loc[completed, ["step", "step_error"]] = ["validated", None]
    failed = steps["step"].isin(functions.FAILED_STEPS).to_numpy()
    frame["step"] = steps["step"].to_numpy()
    if failed.any():
        frame["error"] = frame["error"].astype("object")
        frame.loc[failed, "error"] = steps.loc[failed, "step_error"].to_numpy()
    keep = frame["step"].ne("validated").to_numpy()
    return frame if keep.all() else frame[keep].reset_index(drop=True)


def continued_calls(engine, calls: pd.Series, end_ts, stored_booking: list) -> set[str]:
    """The calls among ``calls`` that have a booking-family trace starting at or after ``end_ts`` (UTC)."""
    wanted = sorted(set(calls.dropna().astype(str)))
    if not wanted or not stored_booking:  # stored names (loaders.family_names): no None among them
        return set()
    found: set[str] = set()
    for chunk in _chunks(wanted, engine):
        params: dict = {}
        calls_in, names_in = loaders.bind_list(chunk, params, "lc"), loaders.bind_list(stored_booking, params, "ln")
        where = loaders.window_bounds("t.started_at", end_ts, None, engine, params, "la")
        of = loaders.session_of(engine)
        sql = (f"SELECT DISTINCT {of.call_id} AS call_id FROM retell_function_traces t{of.join} WHERE {of.call_id} IN ({calls_in}) "
               f"AND t.function_name IN ({names_in}) AND {' AND '.join(where)}")
        # each row's own call id: a call matched only by the server's case-insensitive compare is one that goes on
        found |= set(loaders.query(engine, sql, params)["call_id"].astype(str))
    return found


# --------------------------------------------------------------------------- errors of the attempts
ID_CHUNK = 5000  # ids per IN list: each statement is a range on the FK index
STORE_CHUNK = 200_000  # on the local store each statement scans its tables once: few, large lists


def _chunks(values, engine):
    """``values`` in IN lists of ``ID_CHUNK`` on a server, ``STORE_CHUNK`` on the local store."""
    size = STORE_CHUNK if store.is_store(engine) else ID_CHUNK
    for i in range(0, len(values), size):
        yield values[i:i + size]


def attempt_errors(engine, traces: pd.DataFrame, lo, hi, company_id, *, lean: bool, window: tuple,
                   stored_booking: list) -> pd.DataFrame:
    """Error rows of these attempts (``window``: their ``start, end``; ``stored_booking`` as for
    :func:`attempt_traces`): by ``function_trace_id`` and, for failures, unlinked rows of their sessions.

    On a server both go through the foreign-key indexes (``retell_error_log`` has no ``occurred_at`` index,
    so a window alone is a full scan); ids are sent in chunks of ``ID_CHUNK``.
    """
    failed = ~is_success(traces["status"])
    context, es = "NULL" if lean else "e.error_context", loaders.session_of(engine, "e", "es")
    select = (f"SELECT e.id AS error_id, e.function_trace_id, {es.call_id} AS call_id, {es.company_id} AS company_id, "
              f"e.occurred_at, e.error_message, e.error_code, e.affected_function, {context} AS error_context "
              f"FROM retell_error_log e{es.join} WHERE ")
    base: dict = {}
    cond = loaders.window_bounds("e.occurred_at", lo, hi, engine, base, "e") + [es.found, es.real] + \
        loaders.company_clause(es.company_id, company_id, base)
    tail = "".join(f" AND {c}" for c in cond)
    parts = by_trace_parts(engine, traces.loc[failed if lean else slice(None), "trace_id"], f"{select}e.function_trace_id IN ",
                           tail, base, window, company_id, lean, stored_booking)
    by_trace = _clean_errors(run_parts(engine, parts), engine)
    # Unlinked errors of the session are only a fallback for failures that no error row names (outcomes._match_errors)
    first = by_trace.dropna(subset=["function_trace_id"]).drop_duplicates("function_trace_id")
    named_ids = pd.to_numeric(first.loc[first["error_message"].notna(), "function_trace_id"], errors="coerce")  # as typed
    named = np.isin(traces["trace_id"].to_numpy(dtype="float64", na_value=np.nan), named_ids.to_numpy(dtype="float64"))
    sessions = traces.loc[failed & ~named, "session_id"].dropna().astype(str).unique()
    parts = []
    for chunk in _chunks(sessions, engine):
        params = dict(base)
        marks = loaders.bind_list(chunk, params, "sid")
        parts.append((f"{select}e.call_session_id IN ({marks}) AND e.function_trace_id IS NULL "
                      f"AND e.affected_function IS NOT NULL{tail}", params))
    by_session = _clean_errors(run_parts(engine, parts), engine)
    frame = pd.concat([by_trace, by_session], ignore_index=True) if len(by_session) else by_trace
    if frame.empty:
        return _empty("errors")
    frame = frame.sort_values(["occurred_raw", "error_id"], kind="stable").reset_index(drop=True).drop(columns=["occurred_raw"])
    context = _decode(frame["error_context"])
    frame["frame"] = per_object(context, lambda c: c.get("frame") if isinstance(c, dict) else None)  # decoded once per text
    frame["family"] = per_distinct(frame["affected_function"], functions.function_family)
    return loaders.typed(frame.drop(columns=["error_context"]), ints=["company_id", "error_id", "function_trace_id"],
                          strings=["call_id", "error_message", "frame"], cats=["affected_function", "error_code", "family"])


def by_trace_parts(engine, trace_ids: pd.Series, head: str, tail: str, base: dict, window: tuple, company_id,
                   lean: bool, stored_booking: list) -> list[tuple[str, dict]]:
    """The statements reading the errors of these traces: on a server, their ids in chunks (ranges of the FK
    index); elsewhere one semi-join on the traces' own filter, a superset (rows of traces that are no attempt
    are never looked up). Why: DuckDB (the local store) parses an IN list of 100k ids in 1.4 s, joins in 0.2 s."""
    if not loaders.is_mariadb(engine):
        params = dict(base)
        where, _, _ = trace_where(engine, *window, company_id, params, stored_booking)
        where += [not_success_sql("t.status", engine)] if lean else []
        return [(f"{head}(SELECT t.id FROM retell_function_traces t{loaders.session_of(engine).join} WHERE "
                 f"{' AND '.join(where)}){tail}", params)]
    ids = trace_ids.dropna().astype("int64").unique()
    return [(f"{head}({', '.join(str(int(v)) for v in chunk)}){tail}", dict(base))  # integers: inlined
            for chunk in _chunks(ids, engine)]


ERROR_ROW_COLUMNS = ["error_id", "function_trace_id", "call_id", "company_id", "occurred_at", "error_message", "error_code",
                     "affected_function", "error_context"]


def run_parts(engine, parts: list) -> pd.DataFrame:
    """Statements (id chunks or one semi-join) on one connection, rows concatenated (none: ``ERROR_ROW_COLUMNS``)."""
    with engine.connect() as conn:
        frames = [loaders.query(engine, sql, params, conn)
                  for sql, params in progress(parts, "errors of the attempts", unit="chunk", at_least=4, leave=False)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ERROR_ROW_COLUMNS)


def _clean_errors(frame: pd.DataFrame, engine) -> pd.DataFrame:
    """Stored order (ORDER BY occurred_at, id: the first error per trace wins), times in UTC."""
    frame = frame.assign(occurred_raw=frame["occurred_at"]).sort_values(["occurred_raw", "error_id"], kind="stable")
    return loaders.to_utc(frame, ["occurred_at"], loaders.storage_zone(engine), flags=False)


# --------------------------------------------------------------------------- appointments and webhooks
# Only load reads these, after requirements.check(REQUIRES["load"]): every column but an optional deleted_at is there.
def _appointments(engine, schema, lo, hi) -> pd.DataFrame:
    params: dict = {}
    where = loaders.window_bounds("created_at", lo, hi, engine, params, "a")
    if "deleted_at" in schema["appointments"].columns:
        where.append("deleted_at IS NULL")
    select = ["id", "call_id", "calcom_v2_booking_id", "source", "created_at"]
    if store.is_store(engine):  # metadata decoded once, when the row was stored
        select.append(f"{store.METADATA_CALL_ID} AS retell_call_id")
    else:
        select.append(f"CASE WHEN {contains_any('metadata', [bookings.METADATA_CALL_ID], engine)} THEN metadata END AS metadata")
    sql = f"SELECT {', '.join(select)} FROM appointments" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    frame = loaders.query(engine, sql, params)
    frame = loaders.to_utc(frame, ["created_at"], loaders.storage_zone(engine), flags=False)
    if "metadata" in frame:  # the one key outcomes read; no decoded object is kept (400k at 1M calls, nearly all distinct)
        frame["retell_call_id"] = bookings.metadata_call_ids(frame["metadata"])
    return loaders.typed(frame.drop(columns=["metadata"], errors="ignore"), ints=["id", "call_id"],
                         strings=["calcom_v2_booking_id", "retell_call_id"], cats=["source"])


BOOKING_CREATED = "BOOKING_CREATED"


def norm_event_type(values: pd.Series) -> pd.Series:
    """``booking.created`` -> ``BOOKING_CREATED``, once per distinct type (a window holds a few, in 400k rows)."""
    return pd.Series(per_distinct(values, lambda v: str(v).upper().replace(".", "_")), index=values.index, dtype="string")


def _webhooks(engine, schema, lo, hi) -> pd.DataFrame:
    """Cal.com ``BOOKING_CREATED`` rows of the window (the only ones outcomes read), payload only if it can name a call."""
    provider_col = "provider" if "provider" in schema["webhook_events"].columns else "source"
    stored = loaders.query(engine, "SELECT DISTINCT event_type AS v FROM webhook_events WHERE event_type IS NOT NULL", {})["v"]
    types = [t for t in map(str, stored) if norm_event_type(pd.Series([t.strip()])).iloc[0] == BOOKING_CREATED]
    params: dict = {"provider": "calcom"}
    where = loaders.window_bounds("created_at", lo, hi, engine, params, "w") + [f"{provider_col} = :provider"]
    where.append(f"event_type IN ({loaders.bind_list(types, params, 'et')})" if types else "1 = 0")
    select = ["id", "event_type", "created_at", "event_id", "company_id",
              f"CASE WHEN {contains_any('payload', ['call_id'], engine)} THEN payload END AS payload"]
    sql = f"SELECT {', '.join(select)} FROM webhook_events WHERE {' AND '.join(where)} ORDER BY created_at, id"
    frame = loaders.query(engine, sql, params)
    frame = loaders.to_utc(frame, ["created_at"], loaders.storage_zone(engine), flags=False)
    frame["event_type_norm"] = norm_event_type(frame["event_type"])
    frame = frame[frame["event_type_norm"].eq(BOOKING_CREATED).fillna(False)].reset_index(drop=True)
    frame["payload"] = _decode(frame["payload"])
    return loaders.typed(frame, ints=["id", "company_id"], strings=["event_id"], cats=["event_type", "event_type_norm"])


# --------------------------------------------------------------------------- everything
def padded_window(traces: pd.DataFrame, start, end) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Where appointments, webhooks and errors of these attempts can be: first start - 5 min to last start + 6 h."""
    if traces.empty:
        return tuple(None if v is None else parse_instant(v, name=n) for v, n in ((start, "start"), (end, "end")))
    return traces["started_at"].min() - EARLY, traces["started_at"].max() + PAD


def load(db=None, *, start=None, end=None, company_id=None, lean: bool = False) -> AttemptInputs:
    """Read the inputs of the attempts in ``[start, end)``; ``lean`` leaves out what only row-level output shows.

    ``lean`` (counts): error rows of failed attempts only and no ``error_context`` (so no
    ``code_path`` frame), trace ``error_details`` only of failures or when it names a uid.
    """
    engine = loaders.engine_for(db, cached=True)
    schema = loaders.schema_of(engine)
    missing = requirements.check(schema, *REQUIRES["load"])  # before any statement
    stored_booking = loaders.family_names(engine, functions.BOOKING_FAMILIES)  # read once: traces and errors
    traces = attempt_traces(engine, schema, start, end, company_id, lean=lean, stored_booking=stored_booking)
    real = traces.pop("real_call").to_numpy()
    excluded_ids = sorted(set(traces.loc[~real, "call_id"].astype(str).to_numpy(dtype=object)))
    excluded = int((~real).sum())
    traces = traces if real.all() else traces[real].reset_index(drop=True)  # pandas carries attrs through both
    if traces.empty:  # nothing to look up
        return AttemptInputs(traces, _empty("errors"), _empty("appointments"), _empty("webhooks"), _empty("calls"),
                             excluded_ids, excluded, missing)
    lo, hi = padded_window(traces, start, end)
    errors = attempt_errors(engine, traces, lo, hi, company_id, lean=lean, window=(start, end), stored_booking=stored_booking)
    traces = traces.drop(columns=["session_id"])  # only the error lookup needs it: 176k uuids fewer while classifying
    appointments = _appointments(engine, schema, lo, hi)
    webhooks = _webhooks(engine, schema, lo, hi)
    succeeded = traces.loc[attempt_succeeded(traces), "call_id"]
    if appointments["call_id"].notna().any() and not succeeded.isin(appointments["retell_call_id"].dropna()).all():
        # as booking_attempts always did: local calls.id only when some success has no metadata link
        calls = calls_of(engine, schema, traces, set(appointments["retell_call_id"].dropna().astype(str)), lo, hi)
    else:
        calls = _empty("calls")
    return AttemptInputs(traces, errors, appointments, webhooks, calls, excluded_ids, excluded, missing)


def calls_of(engine, schema, traces: pd.DataFrame, named: set, lo, hi) -> pd.DataFrame:
    """(call_id, local ``calls.id``) as ``loaders.calls(start=lo - 6 h, end=hi)`` has them, for the calls that need it.

    Only attempts whose call has no appointment naming it in ``metadata`` (``named``) fall back to
    ``appointments.call_id`` = ``calls.id``, so only their calls are looked up (unique index
    ``calls.retell_call_id``).
    """
    keep = traces["session_started_at"].notna() & (traces["session_started_at"] >= lo - PAD) & (traces["session_started_at"] < hi)
    wanted = [c for c in traces.loc[keep, "call_id"].astype(str).unique() if c not in named]
    frames = []
    deleted = " AND deleted_at IS NULL" if "deleted_at" in schema["calls"].columns else ""
    for chunk in _chunks(wanted, engine):
        params: dict = {}
        sql = (f"SELECT retell_call_id AS call_id, id AS local_call_id FROM calls "
               f"WHERE retell_call_id IN ({loaders.bind_list(chunk, params, 'cid')}){deleted}")
        frames.append(loaders.query(engine, sql, params))
    if not frames:
        return _empty("calls")
    calls = pd.concat(frames, ignore_index=True)
    calls = calls[calls["call_id"].astype(str).isin(wanted)]  # the server compares case-insensitively
    calls = pd.DataFrame({"call_id": calls["call_id"].astype("string"),
                          "local_call_id": pd.to_numeric(calls["local_call_id"]).astype("Int64")})
    return calls.drop_duplicates("call_id").reset_index(drop=True)


def calls_missing(schema) -> list[str]:
    """The ``calls`` columns that outcomes can use but the live table lacks (reported, never fatal)."""
    _, missing = loaders.present_columns(schema, "calls", loaders.CALL_COLUMNS)
    if "calls" not in schema:
        return list(loaders.CALL_COLUMNS)
    return missing if "retell_call_id" in schema["calls"].columns else missing + ["retell_call_id"]


_EMPTY = {  # the frames of a window without attempts to look up
    "errors": {"error_id": "Int64", "function_trace_id": "Int64", "call_id": "string", "occurred_at": "datetime64[ns, UTC]",
               "error_message": "string", "error_code": "string", "frame": "string", "family": "object"},
    "appointments": {"id": "Int64", "call_id": "Int64", "calcom_v2_booking_id": "string", "source": "object",
                     "retell_call_id": "string"},
    "webhooks": {"event_id": "string", "event_type_norm": "string", "created_at": "datetime64[ns, UTC]",
                 "company_id": "Int64", "payload": "object"},
    "calls": {"call_id": "string", "local_call_id": "Int64"},
}


def _empty(kind: str) -> pd.DataFrame:
    return pd.DataFrame({col: pd.Series(dtype=dtype) for col, dtype in _EMPTY[kind].items()})
