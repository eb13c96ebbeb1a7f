"""Write imported frames into a *scratch* database so loaders and ``rca quality --db`` read them back.

Targets: call-history exports -> ``retell_call_sessions``; Retell call objects -> ``calls``
(the whole object in ``raw``, as production's ``syncCallToDatabase`` does; every delivery is kept in
``retell_deliveries`` (ours) and the row is the merge of all deliveries of the call, see
:func:`_merge_retell`); Cal.com deliveries
-> ``webhook_events`` (provider ``calcom``); Laravel log entries -> ``laravel_log`` (ours).
The production-shaped tables come from :mod:`rca_toolkit.sources.schema`.

Never the analysed database. A target is accepted only when all of these hold:

1. SQLite, or any other backend with ``writable_scratch=True`` (``--writable-scratch``) **and** a
   database name starting with ``scratch`` or ``rca_scratch``;
2. it is not the configured analysed database (``RCA_DATABASE_URL`` / config ``database_url``);
3. it is empty or already carries the ``rca_scratch`` marker table this module creates.

Times are stored the way the loaders read them (:func:`rca_toolkit.sources.loaders.storage_zone`):
naive Europe/Berlin wall time on SQLite (like production), UTC on MariaDB sessions pinned to
``+00:00``. Re-importing a record replaces it (keyed by call id, uid or source line); re-importing a
Retell delivery replaces that delivery and merges the call again, so the rows come out the same.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL

from rca_toolkit.sources import schema
from rca_toolkit.config import Settings, load_settings
from rca_toolkit.sources.db import make_engine, redact_url, resolve_url
from rca_toolkit.errors import ConfigError, ConnectionFailed

DEFAULT_SCRATCH_URL = "sqlite:///data/scratch.sqlite"
SCRATCH_NAME = re.compile(r"^(rca_)?scratch", re.IGNORECASE)
_UUID_NAMESPACE = uuid.UUID("5b0c3f6e-7d1a-4f0e-9a57-2f1d2b8c9e41")

scratch_metadata = sa.MetaData()
rca_scratch = sa.Table(
    "rca_scratch", scratch_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at_utc", sa.String(40), nullable=False),
    sa.Column("note", sa.String(255), nullable=False),
)
laravel_log = sa.Table(
    "laravel_log", scratch_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("source_kind", sa.String(20), nullable=False),  # laravel | error-monitor
    sa.Column("line_no", sa.Integer, nullable=False),
    sa.Column("ts_utc", sa.DateTime),  # naive UTC (never wall time): the flags say how it was derived
    sa.Column("ts_raw", sa.String(64)),
    sa.Column("ts_placeholder", sa.Boolean, nullable=False),
    sa.Column("ts_ambiguous", sa.Boolean, nullable=False),
    sa.Column("ts_nonexistent", sa.Boolean, nullable=False),
    sa.Column("env", sa.String(64)),
    sa.Column("level", sa.String(16)),
    sa.Column("message", sa.Text),
    sa.Column("context", schema.JSON_TEXT),
    sa.Column("context_parsed", sa.Boolean, nullable=False),
    sa.Column("exception_class", sa.String(255)),
    sa.Column("sqlstate", sa.String(5)),
    sa.Column("errno", sa.Integer),
    sa.Column("unknown_column", sa.String(255)),
    sa.Column("truncated", sa.Boolean, nullable=False),
    sa.Column("n_lines", sa.Integer, nullable=False),
    sa.Column("continuation", schema.LONG_TEXT),
    sa.UniqueConstraint("source", "line_no", name="laravel_log_source_line_unique"),
    sa.Index("laravel_log_ts_index", "ts_utc"),
    sa.Index("laravel_log_level_index", "level", "ts_utc"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci",
)
retell_deliveries = sa.Table(  # every Retell delivery as it came in: a call's row is their merge
    "retell_deliveries", scratch_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_key", sa.String(64), nullable=False),  # sha256 of the event and the object as sent
    sa.Column("call_id", sa.String(255), nullable=False),
    sa.Column("event", sa.String(64)),  # call_started / call_ended / call_analyzed; NULL: a bare call object
    sa.Column("richness", sa.Integer, nullable=False),  # formats.retell.delivery_rank
    sa.Column("source", sa.String(1024)),
    sa.Column("body", schema.LONG_TEXT, nullable=False),  # the call object as stored (masked unless --keep-pii)
    sa.UniqueConstraint("delivery_key", name="retell_deliveries_key_unique"),
    sa.Index("retell_deliveries_call_index", "call_id"),
    mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci",
)
TARGET_TABLES = [schema.retell_call_sessions, schema.calls, schema.webhook_events]
# Retell's call_status -> the calls table's status (data-contract §3.6: inbound -> ongoing -> completed ->
# analyzed, plus in_progress and failed). registered is what the app's call_inbound placeholder says
# (inbound); a call that never connected or broke is failed; an ended call whose call_analyzed was
# delivered is analyzed, as production's webhook handler writes it.
CALL_ROW_STATUS = {"registered": "inbound", "ongoing": "ongoing", "ended": "completed", "not_connected": "failed",
                   "error": "failed"}
EVENT_ROW_STATUS = {"call_started": "ongoing", "call_ended": "completed", "call_analyzed": "analyzed"}
ROW_STATUSES = ("inbound", "ongoing", "completed", "analyzed", "in_progress", "failed")


def _same_database(a: URL, b: URL) -> bool:
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        from pathlib import Path

        return bool(a.database and b.database) and Path(a.database).resolve() == Path(b.database).resolve()
    return (a.host, a.port or 3306, a.database) == (b.host, b.port or 3306, b.database)


def check_scratch_url(db: str | None, *, writable_scratch: bool = False, settings: Settings | None = None) -> URL:
    """Apply rules 1-2 of the module docstring; returns the resolved URL."""
    settings = settings or load_settings()
    url = resolve_url(db or DEFAULT_SCRATCH_URL, settings)
    backend = url.get_backend_name()
    if backend != "sqlite":
        if not writable_scratch:
            raise ConfigError(
                f"refusing to import into {redact_url(url)}: only SQLite scratch files are written by default",
                hint="for a server database pass --writable-scratch and name the database scratch*/rca_scratch*",
            )
        if not url.database or not SCRATCH_NAME.match(url.database):
            raise ConfigError(
                f"refusing to import into database {url.database!r} on {url.host}: not a scratch database name",
                hint="create and use a database whose name starts with scratch or rca_scratch",
            )
    elif not url.database or url.database == ":memory:":
        raise ConfigError("an in-memory SQLite scratch database would vanish after the import", hint="give a file path")
    analysed = resolve_url(settings.database_url, settings)
    if _same_database(url, analysed):
        raise ConfigError(
            f"refusing to import into {redact_url(url)}: it is the configured analysed database",
            hint="import into a separate scratch database (default sqlite:///data/scratch.sqlite)",
        )
    return url


def open_scratch(db: str | None = None, *, writable_scratch: bool = False, settings: Settings | None = None) -> sa.Engine:
    """A writable engine on a checked scratch database, with its tables created (rule 3 checked)."""
    settings = settings or load_settings()
    url = check_scratch_url(db, writable_scratch=writable_scratch, settings=settings)
    engine = make_engine(url, writable=True, settings=settings)
    try:
        existing = set(sa.inspect(engine).get_table_names())
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise ConnectionFailed(f"cannot open scratch database {redact_url(url)}: {str(exc.orig).splitlines()[0]}",
                               hint="create the database first (and check host, user and port)") from None
    if existing and "rca_scratch" not in existing:
        engine.dispose()
        raise ConfigError(
            f"refusing to import into {redact_url(url)}: it already holds {len(existing)} tables and is not an rca scratch database",
            hint="use an empty database or one created by `rca import`",
        )
    schema.metadata.create_all(engine, tables=TARGET_TABLES)
    scratch_metadata.create_all(engine)
    if "rca_scratch" not in existing:
        with engine.begin() as conn:
            conn.execute(rca_scratch.insert().values(
                id=1, created_at_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                note="scratch database written by rca import; not production data"))
    return engine


def _zone(engine: sa.Engine) -> str:
    from rca_toolkit.sources.loaders import storage_zone

    return storage_zone(engine)


def _stored(ts, zone: str):
    """UTC instant -> the naive value the loaders will read back in ``zone``."""
    if ts is None or pd.isna(ts):
        return None
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return ts.tz_convert(zone).tz_localize(None).to_pydatetime()


def _none(value):
    if value is None or value is pd.NA or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _replace(engine: sa.Engine, table: sa.Table, key: str, rows: list[dict]) -> int:
    """Delete rows with the same key, then insert: re-imports replace, never duplicate."""
    if not rows:
        return 0
    with engine.begin() as conn:
        _replace_in(conn, table, key, rows)
    return len(rows)


def _replace_in(conn, table: sa.Table, key: str, rows: list[dict]) -> None:
    keys = [r[key] for r in rows]
    for start in range(0, len(keys), 500):
        conn.execute(table.delete().where(table.c[key].in_(keys[start:start + 500])))
    for columns in dict.fromkeys(tuple(r) for r in rows):  # rows that keep their id are inserted apart
        conn.execute(table.insert(), [r for r in rows if tuple(r) == columns])


def import_sessions(engine: sa.Engine, frame: pd.DataFrame) -> int:
    """A call-history frame (``formats.exports``) -> ``retell_call_sessions``."""
    zone = _zone(engine)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = []
    for r in frame.itertuples(index=False):
        functions = getattr(r, "functions", None)
        meta = {"imported_from": frame.attrs.get("format", "call_history"),
                "duration_precision_ms": frame.attrs.get("duration_precision_ms")}
        if isinstance(functions, list):
            meta["export_functions"] = functions
        rows.append({
            "id": str(uuid.uuid5(_UUID_NAMESPACE, str(r.call_id))), "call_id": str(r.call_id),
            "agent_version": _none(r.agent_version), "started_at": _stored(r.started_at, zone),
            "ended_at": _stored(_none(getattr(r, "ended_at", None)), zone),
            "call_status": _none(r.call_status) or "in_progress", "disconnection_reason": _none(r.disconnection_reason),
            "duration_ms": _none(r.duration_ms), "function_call_count": _none(r.function_call_count) or 0,
            "error_count": _none(r.error_count) or 0, "total_events": 0, "metadata": _json(meta),
            "created_at": now, "updated_at": now,
        })
    return _replace(engine, schema.retell_call_sessions, "call_id", rows)


def calls_status(call_status, event: str | None, *, ended: bool) -> str:
    """The ``calls.status`` of a merged Retell call (:data:`CALL_ROW_STATUS`); without a Retell status,
    the richest event says it, else whether an end is known."""
    status = CALL_ROW_STATUS.get(call_status)
    if status == "completed" and event == "call_analyzed":
        return "analyzed"
    if status:
        return status
    if call_status in ROW_STATUSES:  # an app-side export already speaks the table's vocabulary
        return call_status
    return EVENT_ROW_STATUS.get(event) or ("completed" if ended else "ongoing")


def _merge_retell(engine: sa.Engine, calls, *, company_id: int, source: str | None) -> list:
    """Retell deliveries (parsed call objects and webhooks) -> one ``calls`` row per call; returns the
    merged calls (what :func:`import_file` imports for ``retell``).

    Every delivery is stored in ``retell_deliveries`` (keyed by its content, so a re-import replaces
    it); each call's row is then rebuilt from *all* its stored deliveries, merged by event order and
    richness (``formats.retell.merge_deliveries``): ``call_analyzed`` > ``call_ended`` >
    ``call_started``, and a richer delivery's field is never replaced by a poorer one's null. So a
    list holding several events of one call, files imported in any order, and a second import of the
    same files all give the same rows.
    """
    from rca_toolkit.errors import InputFormatError
    from rca_toolkit.sources.formats.retell import load_call_object, merge_deliveries

    batch: dict[str, dict] = {}
    for call in calls:
        body = _json(call.raw)
        key = call.digest or hashlib.sha256(json.dumps([call.event, call.raw], sort_keys=True, default=str).encode()).hexdigest()
        batch[key] = {"delivery_key": key, "call_id": call.call_id, "event": call.event[:64] if call.event else None,
                      "richness": call.rank, "source": None if source is None else str(source)[-1024:], "body": body}
    ids = sorted({row["call_id"] for row in batch.values()})
    table, zone = retell_deliveries, _zone(engine)
    merged = []
    with engine.begin() as conn:
        _replace_in(conn, table, "delivery_key", list(batch.values()))
        stored: dict[str, list] = {}
        for start in range(0, len(ids), 500):
            query = sa.select(table.c.call_id, table.c.event, table.c.body).where(table.c.call_id.in_(ids[start:start + 500]))
            for call_id, event, body in conn.execute(query.order_by(table.c.delivery_key)):
                stored.setdefault(call_id, []).append((event, json.loads(body)))
        for call_id in ids:
            obj, event = merge_deliveries(stored[call_id])
            try:
                call = load_call_object(obj)  # each delivery was checked (and masked) when it came in
            except InputFormatError as exc:
                raise InputFormatError(f"the {len(stored[call_id])} deliveries of {call_id} disagree: {exc.message}",
                                       hint="import the deliveries of one call together, or check which one is wrong") from None
            call.event = event
            merged.append(call)
        rows = [_call_row(call, zone, company_id) for call in merged]
        calls = schema.calls
        for start in range(0, len(ids), 500):  # a call keeps its local id: a re-import gives the same rows
            kept = dict(conn.execute(sa.select(calls.c.retell_call_id, calls.c.id)
                                     .where(calls.c.retell_call_id.in_(ids[start:start + 500]))).all())
            for row in rows[start:start + 500]:
                if row["retell_call_id"] in kept:
                    row["id"] = kept[row["retell_call_id"]]
        _replace_in(conn, calls, "retell_call_id", rows)
    return merged


def _call_row(call, zone: str, company_id: int) -> dict:
    """One ``calls`` row as ``syncCallToDatabase`` writes it (``raw`` = the merged object)."""
    raw = call.raw
    latency = raw.get("latency")
    e2e = (latency or {}).get("e2e") or {}
    analysis = call.analysis or {}
    return {
        "retell_call_id": call.call_id, "call_id": call.call_id, "external_id": call.call_id,
        "company_id": company_id, "from_number": raw.get("from_number"), "to_number": raw.get("to_number"),
        "direction": call.direction,
        "status": calls_status(call.call_status, call.event, ended=call.end is not None or call.duration_ms is not None),
        "call_status": call.call_status, "start_timestamp": _stored(call.start, zone),
        "end_timestamp": _stored(call.end, zone), "call_time": _stored(call.start, zone),
        "duration_ms": call.duration_ms,
        "duration_sec": None if call.duration_ms is None else round(call.duration_ms / 1000),
        "disconnection_reason": call.disconnection_reason, "retell_agent_id": call.agent_id,
        "agent_version": None if call.agent_version is None else str(call.agent_version),
        "latency_metrics": _json(latency), "end_to_end_latency": None if e2e.get("p50") is None else round(e2e["p50"]),
        "cost_cents": None if call.cost_cents is None else round(call.cost_cents),
        "cost": None if call.cost_cents is None else round(call.cost_cents / 100, 2),
        "cost_breakdown": _json(call.cost_breakdown), "transcript": raw.get("transcript"),
        "transcript_object": _json(raw.get("transcript_object")),
        "transcript_with_tools": _json(raw.get("transcript_with_tool_calls")), "raw": _json(raw),
        "analysis": _json(call.analysis), "summary": analysis.get("call_summary"),
        "sentiment": analysis.get("user_sentiment"),
        "call_successful": None if analysis.get("call_successful") is None else int(bool(analysis["call_successful"])),
        "llm_token_usage": _json(raw.get("llm_token_usage")),
        "created_at": _stored(call.start, zone), "updated_at": _stored(call.end, zone),
    }


def import_calcom(engine: sa.Engine, bookings: pd.DataFrame, bodies: list[dict]) -> int:
    """Cal.com deliveries -> ``webhook_events`` (provider ``calcom``, ``event_id`` = uid).

    ``event_id`` is UNIQUE (P11), so a second delivery for the same uid (a cancellation after
    the creation) gets ``<uid>:<EVENT>`` and a note saying production would have rejected it.
    Re-importing the same body (same ``idempotency_key``) replaces it.
    """
    zone = _zone(engine)
    table = schema.webhook_events
    now = datetime.now(timezone.utc)
    texts = [json.dumps(body, ensure_ascii=False, sort_keys=True) for body in bodies]
    keys = [hashlib.sha256(t.encode()).hexdigest()[:40] for t in texts]
    with engine.begin() as conn:
        if keys:
            conn.execute(table.delete().where(table.c.idempotency_key.in_(keys)))
        used = {row[0] for row in conn.execute(sa.select(table.c.event_id))}
        rows = []
        for booking, text, key in zip(bookings.to_dict(orient="records"), texts, keys):
            if key in {r["idempotency_key"] for r in rows}:
                continue  # the same body twice in one batch
            uid = _none(booking["uid"]) or f"no-uid:{key[:12]}"
            event_id, note = uid, None
            if event_id in used:
                event_id = f"{uid}:{booking['event_type']}:{key[:8]}"
                note = "another delivery for this uid exists: production's UNIQUE event_id (P11) would have rejected this one"
            used.add(event_id)
            received = _none(booking["created_at"])
            if received is None:
                note = "; ".join(filter(None, [note, "body has no createdAt: created_at is the import time"]))
            rows.append({"provider": "calcom", "event_type": booking["event_type"] or "UNKNOWN", "event_id": event_id,
                         "idempotency_key": key, "payload": text, "status": "pending", "retry_count": 0,
                         "received_at": _stored(received, zone), "created_at": _stored(received or now, zone),
                         "updated_at": _stored(received or now, zone), "notes": note})
        if rows:
            conn.execute(table.insert(), rows)
    return len(rows)


def import_log_frame(engine: sa.Engine, frame: pd.DataFrame, *, source: str, source_kind: str = "laravel") -> int:
    """A frame of :mod:`formats.laravel_log` records -> ``laravel_log`` (UTC, flags kept); replaces ``source``."""
    rows = _log_rows(frame, source=source, source_kind=source_kind)
    with engine.begin() as conn:
        conn.execute(laravel_log.delete().where(laravel_log.c.source == source))
    return _write_log_rows(engine, rows)


def _log_rows(frame: pd.DataFrame, *, source: str, source_kind: str) -> list[dict]:
    ts_col = "ts" if "ts" in frame else "error_ts"
    raw_col = "ts_raw" if "ts_raw" in frame else "error_ts_raw"
    rows = []
    for r in frame.to_dict(orient="records"):
        context = r.get("context")
        rows.append({
            "source": source, "source_kind": source_kind, "line_no": int(r["line_no"]),
            "ts_utc": None if pd.isna(r[ts_col]) else pd.Timestamp(r[ts_col]).tz_convert("UTC").tz_localize(None).to_pydatetime(),
            "ts_raw": _none(r.get(raw_col)), "ts_placeholder": bool(r.get("ts_placeholder")),
            "ts_ambiguous": bool(r.get("ts_ambiguous")), "ts_nonexistent": bool(r.get("ts_nonexistent")),
            "env": _none(r.get("env")), "level": _none(r.get("level")), "message": _none(r.get("message")),
            "context": context if isinstance(context, str) else _json(context),
            "context_parsed": bool(r.get("context_parsed")), "exception_class": _none(r.get("exception_class")),
            "sqlstate": _none(r.get("sqlstate")), "errno": _none(r.get("errno")),
            "unknown_column": _none(r.get("unknown_column")), "truncated": bool(r.get("truncated")),
            "n_lines": int(r.get("n_lines") or 1), "continuation": _none(r.get("continuation")),
        })
    return rows


def _insert_log_rows(engine: sa.Engine, frame: pd.DataFrame, *, source: str, source_kind: str) -> int:
    return _write_log_rows(engine, _log_rows(frame, source=source, source_kind=source_kind))


def _write_log_rows(engine: sa.Engine, rows: list[dict]) -> int:
    if rows:
        with engine.begin() as conn:
            conn.execute(laravel_log.insert(), rows)
    return len(rows)


def import_log_file(engine: sa.Engine, path, *, source_tz: str | None = None, chunk: int = 5000,
                    progress: bool | None = None, mask_pii: bool = True) -> dict:
    """Stream a Laravel log (or an ``error-monitor.log``) into ``laravel_log`` in chunks, personal data
    masked unless ``mask_pii=False``. A pasted excerpt's separators, headings and fragments of other
    entries are not stored: ``skipped`` counts them."""
    from pathlib import Path

    from rca_toolkit.sources.formats import laravel_log as fmt

    source_tz = source_tz or load_settings().source_tz
    source = str(Path(path).resolve())
    if fmt.is_error_monitor(path):
        frame = fmt.read_error_monitor(path, source_tz=source_tz)
        frame = fmt.mask_log_frame(frame) if mask_pii else frame
        n = import_log_frame(engine, frame, source=source, source_kind="error-monitor")
        return {"kind": "error-monitor", "rows": n, "truncated": int(frame["truncated"].sum())}
    with engine.begin() as conn:
        conn.execute(laravel_log.delete().where(laravel_log.c.source == source))
    total = truncated = 0
    batch: list[dict] = []

    def flush() -> None:
        nonlocal total, truncated
        frame = fmt.records_to_frame(batch, source_tz=source_tz)
        frame = fmt.mask_log_frame(frame) if mask_pii else frame
        total += _insert_log_rows(engine, frame, source=source, source_kind="laravel")
        truncated += int(frame["truncated"].sum())
        batch.clear()

    stats: dict = {}
    for record in fmt.iter_laravel_log(path, progress=progress, stats=stats):
        batch.append(record)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return {"kind": "laravel", "rows": total, "truncated": truncated,
            "invalid_utf8_lines": stats.get("invalid_utf8_lines", 0),
            "skipped": {key: stats.get(key, 0) for key in fmt.SKIPPED_KEYS}}


KINDS = ("retell", "laravel-log", "call-history", "calcom")


def import_file(engine: sa.Engine, kind: str, path: str, *, mask_pii: bool = True, company_id: int = 0) -> dict:
    """Read one file of ``kind`` (one of :data:`KINDS`) and write it into the scratch ``engine``;
    returns what was written (file, table, rows and what the format tells about it)."""
    if kind == "call-history":
        from rca_toolkit.sources.formats.exports import mask_personal_data, read_call_history

        frame = read_call_history(path)
        n = import_sessions(engine, mask_personal_data(frame) if mask_pii else frame)
        return {"file": path, "table": "retell_call_sessions", "rows": n, "test_ids": int(frame["is_test"].sum())}
    if kind == "retell":
        objects = retell_objects(path)
        deliveries = [_retell_call(obj, path, i, len(objects), mask_pii) for i, obj in enumerate(objects)]
        calls = _merge_retell(engine, deliveries, company_id=company_id, source=str(path))
        ids = calls[0].call_id if len(calls) == 1 else f"{len(calls)} calls"
        return {"file": path, "table": "calls", "rows": len(calls), "call_id": ids, "deliveries": len(deliveries),
                "tool_calls": sum(len(c.tool_calls) for c in calls)}
    if kind == "calcom":
        from pathlib import Path

        from rca_toolkit.sources.formats.calcom import read_bodies, mask_calcom_body, read_calcom_webhooks

        bodies = read_bodies(Path(path)) if Path(path).is_file() else None
        bookings = read_calcom_webhooks(path, mask_pii=mask_pii)
        if mask_pii:
            bodies = [mask_calcom_body(b) for b in bodies]
        n = import_calcom(engine, bookings, bodies)
        return {"file": path, "table": "webhook_events", "rows": n}
    result = import_log_file(engine, path, mask_pii=mask_pii)
    return {"file": path, "table": "laravel_log", **result}


def _retell_call(obj, path: str, index: int, count: int, mask_pii: bool):
    """One object of a Retell file; a refusal names the file and, in a list, the object's position."""
    from rca_toolkit.errors import InputFormatError
    from rca_toolkit.sources.formats.retell import load_call_object

    try:
        return load_call_object(obj, mask_pii=mask_pii)
    except InputFormatError as exc:
        if obj == path:  # the reader named the file itself
            raise
        where = f"{path} object {index + 1} of {count}" if count > 1 else path
        raise InputFormatError(f"{where}: {exc.message}", hint=exc.hint) from None


def retell_objects(path: str) -> list:
    """One call object per file, or a JSON list of them (a dump of webhooks or calls.raw)."""
    from pathlib import Path

    from rca_toolkit.errors import InputFormatError, NotFound
    from rca_toolkit.rules.jsonutil import load_document
    from rca_toolkit.sources.formats import sniff

    file = Path(path)
    if not file.is_file():
        raise NotFound(f"Retell file {file} does not exist", hint="check the path")
    document = load_document(sniff.read_text(file, "Retell call object"), str(file), "Retell call object")
    if isinstance(document, list):
        if not document:
            raise InputFormatError(f"{file} holds an empty list", hint="give at least one Retell call object")
        return document
    return [path]
