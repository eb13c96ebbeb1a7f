"""Reconciliation: the application's records vs the providers' (Retell call objects, Cal.com).

Why: the app's session row is written by the app (P2: ``started_at`` is the arrival of the
first webhook, the duration is ``now() - started_at``, sessions may never close, P5); the
provider's object is what actually happened. Every disagreement is one row with both values,
so a report can say "the database says in_progress with no functions; Retell says ended after
35.3 s with two failed tool calls" instead of pooling the two sources.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Iterable

import pandas as pd

from rca_toolkit.analyses.markdown import md_items, md_table
from rca_toolkit.analyses.tables import show as show_table
from rca_toolkit.errors import SchemaError

# App session statuses -> the Retell vocabulary (registered / ongoing / ended / error).
# ``inbound`` is written on the call_inbound webhook, before the call starts: Retell's ``registered``.
APP_TO_RETELL_STATUS = {"ended": "ended", "completed": "ended", "in_progress": "ongoing", "inbound": "registered",
                        "ongoing": "ongoing", "unknown_start": None}
DISAGREEMENT_COLUMNS = ["call_id", "check", "app_value", "provider_value", "delta", "note"]
DEFAULT_DURATION_TOLERANCE_MS = 2_000
DEFAULT_START_TOLERANCE = pd.Timedelta(seconds=5)
DEFAULT_BOOKING_TIME_TOLERANCE = pd.Timedelta(minutes=1)


@dataclass
class Reconciliation:
    """Disagreements (one row each, both values) plus what was compared."""

    kind: str
    disagreements: pd.DataFrame
    n_app: int
    n_provider: int
    n_matched: int
    notes: list[str] = field(default_factory=list)

    def for_call(self, call_id: str) -> pd.DataFrame:
        return self.disagreements[self.disagreements["call_id"] == call_id].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.disagreements["check"].value_counts().sort_index().items()}

    def to_dict(self) -> dict:
        rows = self.disagreements.astype(object).where(self.disagreements.notna(), None).to_dict(orient="records")
        return {"kind": self.kind, "n_app": self.n_app, "n_provider": self.n_provider, "n_matched": self.n_matched,
                "counts": self.counts(), "disagreements": rows, "notes": self.notes}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, ensure_ascii=False, **kwargs)

    def to_markdown(self) -> str:
        lines = [f"# Reconciliation: app vs {self.kind}", "",
                 f"{self.n_matched} matched of {self.n_app} app rows and {self.n_provider} {self.kind} records; "
                 f"{len(self.disagreements)} disagreements.", ""]
        if len(self.disagreements):
            lines.append(md_table(pd.DataFrame(
                [(r.call_id, r.check, _show(r.app_value), _show(r.provider_value), _show(r.delta), r.note or "")
                 for r in self.disagreements.itertuples()], columns=["call", "check", "app", self.kind, "delta", "note"])))
        lines += md_items(self.notes)
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        head = (f"<h4>Reconciliation: app vs {html.escape(self.kind)}</h4><p>{self.n_matched} matched, "
                f"{len(self.disagreements)} disagreements</p>")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return head + show_table(self.disagreements).to_html() + (f"<ul>{notes}</ul>" if notes else "")


def _show(value) -> str:
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return "—"
    return str(value)


def _attr(obj, *names, default=None):
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


def retell_calls_frame(calls: Iterable) -> pd.DataFrame:
    """Retell call objects (``formats.retell.RetellCall`` or dicts of its fields) -> one row per call."""
    rows = []
    for call in calls:
        tools = _attr(call, "tool_calls")
        tools = tools if isinstance(tools, pd.DataFrame) else pd.DataFrame(tools or [])
        if "kind" in tools:  # built-ins (end_call, transfer_call, ...) never reach the app's backend
            tools = tools[tools["kind"].isna() | (tools["kind"] == "function")]
        ok = tools["ok"] if "ok" in tools else pd.Series(dtype="boolean")
        start = _attr(call, "start", "start_ts", "started_at", "start_timestamp")
        end = _attr(call, "end", "end_ts", "ended_at", "end_timestamp")
        rows.append({
            "call_id": _attr(call, "call_id"),
            "provider_status": _attr(call, "call_status"),
            "provider_start": _ts(start),
            "provider_end": _ts(end),
            "provider_duration_ms": _attr(call, "duration_ms"),
            "disconnection_reason": _attr(call, "disconnection_reason"),
            "tool_call_count": len(tools),
            "tool_calls_failed": int((ok == False).sum()),  # noqa: E712  (nullable: unknown is not failed)
            "tool_names": list(tools["name"]) if "name" in tools else [],
        })
    frame = pd.DataFrame.from_records(rows, columns=["call_id", "provider_status", "provider_start", "provider_end",
                                                     "provider_duration_ms", "disconnection_reason", "tool_call_count",
                                                     "tool_calls_failed", "tool_names"])
    frame["provider_duration_ms"] = pd.to_numeric(frame["provider_duration_ms"], errors="coerce").astype("Int64")
    return frame


def _ts(value) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return pd.Timestamp(int(value), unit="ms", tz="UTC")
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _row(call_id, check, app_value, provider_value, delta=None, note=None) -> dict:
    return {"call_id": call_id, "check": check, "app_value": app_value, "provider_value": provider_value,
            "delta": delta, "note": note}


def _missing(value) -> bool:
    return value is None or value is pd.NA or (not isinstance(value, (str, list)) and pd.isna(value))


def reconcile_retell(app: pd.DataFrame, calls, *, duration_tolerance_ms: int = DEFAULT_DURATION_TOLERANCE_MS,
                     start_tolerance=DEFAULT_START_TOLERANCE) -> Reconciliation:
    """App sessions (export or ``loaders.calls``) vs Retell call objects: status, duration,
    start offset (provider minus app) and tool-call count, per call id present in both; and
    provider calls the app never recorded.
    """
    needed = [c for c in ("call_id", "call_status", "started_at", "duration_ms") if c not in app]
    if needed:
        raise SchemaError(f"the app frame lacks columns {', '.join(needed)}", hint="pass an export or loaders.calls frame")
    provider = calls if isinstance(calls, pd.DataFrame) else retell_calls_frame(calls)
    start_tolerance = pd.Timedelta(start_tolerance)
    app_rows = app.drop_duplicates("call_id").set_index(app.drop_duplicates("call_id")["call_id"].astype(str))
    rows: list[dict] = []
    notes: list[str] = []
    matched = 0
    for p in provider.itertuples(index=False):
        if p.call_id not in app_rows.index:
            rows.append(_row(p.call_id, "missing_in_app", None, p.provider_status, note="provider call has no app session"))
            continue
        matched += 1
        a = app_rows.loc[p.call_id]
        rows += _compare_call(p, a, duration_tolerance_ms, start_tolerance)
    if "functions" in app and app["functions"].map(lambda v: v is None).all():
        notes.append("the app set has no function lists: the tool-call check uses function_call_count only")
    notes.append("app started_at is the arrival of the first webhook (P2): a few seconds' positive offset is normal")
    frame = pd.DataFrame.from_records(rows, columns=DISAGREEMENT_COLUMNS)
    return Reconciliation("retell", frame, len(app), len(provider), matched, notes)


def _compare_call(p, a, duration_tolerance_ms: int, start_tolerance: pd.Timedelta) -> list[dict]:
    rows = []
    app_status = None if _missing(a["call_status"]) else str(a["call_status"])
    if APP_TO_RETELL_STATUS.get(app_status, app_status) != p.provider_status:
        note = "session never closed (P5)" if app_status == "in_progress" and p.provider_status == "ended" else None
        rows.append(_row(p.call_id, "status", app_status, p.provider_status, note=note))
    app_ms = None if _missing(a["duration_ms"]) else int(a["duration_ms"])
    prov_ms = None if _missing(p.provider_duration_ms) else int(p.provider_duration_ms)
    if app_ms is None or prov_ms is None:
        if app_ms != prov_ms:
            rows.append(_row(p.call_id, "duration_ms", app_ms, prov_ms, note="missing on one side"))
    elif abs(prov_ms - app_ms) > duration_tolerance_ms:
        rows.append(_row(p.call_id, "duration_ms", app_ms, prov_ms, delta=prov_ms - app_ms))
    if not _missing(a["started_at"]) and p.provider_start is not None and not pd.isna(p.provider_start):
        offset = p.provider_start - a["started_at"]
        if abs(offset) > start_tolerance:
            rows.append(_row(p.call_id, "start_offset_s", str(a["started_at"]), str(p.provider_start),
                             delta=round(offset.total_seconds(), 3), note="provider minus app"))
    app_count = _app_tool_count(a)
    if _missing(p.tool_call_count):
        return rows  # the provider side does not know its tool calls (e.g. calls columns only)
    if app_count != p.tool_call_count:
        failed = f"{p.tool_calls_failed} of {p.tool_call_count} failed" if p.tool_call_count else None
        rows.append(_row(p.call_id, "tool_call_count", app_count, p.tool_call_count,
                         delta=None if app_count is None else p.tool_call_count - app_count, note=failed))
    return rows


def reconcile_sessions_with_calls(frame: pd.DataFrame, **tolerances) -> Reconciliation:
    """Inside one database: session columns vs the ``calls`` columns the loader joined
    (``retell_call_status``, ``retell_start``, ``retell_duration_ms``, written from Retell by
    ``syncCallToDatabase``). Rows without a ``calls`` match are not compared; tool calls are
    not known from these columns (use the ``raw`` objects with :func:`reconcile_retell`).
    """
    needed = ["retell_call_status", "retell_start", "retell_duration_ms"]
    if any(c not in frame for c in needed):
        raise SchemaError(f"the frame lacks {', '.join(c for c in needed if c not in frame)}",
                          hint="pass loaders.calls() on a database with a calls table")
    absent = (frame.attrs.get("missing_columns") or {}).get("calls", [])  # the loader read these as empty
    lost = [c for c in ("retell_call_id", "call_status", "start_timestamp", "duration_ms") if c in absent]
    if lost:
        raise SchemaError(f"table 'calls' lacks {', '.join(lost)} (needed by the sessions-vs-calls reconciliation)",
                          hint="point --db at the production schema or run the migration that adds it")
    joined = frame[frame["retell_call_status"].notna() | frame["retell_duration_ms"].notna()]
    provider = pd.DataFrame({
        "call_id": joined["call_id"].astype(str), "provider_status": joined["retell_call_status"].astype(object),
        "provider_start": joined["retell_start"], "provider_end": joined.get("retell_end"),
        "provider_duration_ms": joined["retell_duration_ms"], "disconnection_reason": None,
        "tool_call_count": None, "tool_calls_failed": None, "tool_names": None,
    })
    result = reconcile_retell(frame, provider, **tolerances)
    result.kind = "calls table"
    result.notes.append(f"{len(frame) - len(joined)} sessions have no calls row with Retell data and were not compared")
    return result


def _app_tool_count(a) -> int | None:
    functions = a.get("functions") if hasattr(a, "get") else None
    if isinstance(functions, list):
        return len(functions)
    count = a.get("function_call_count") if hasattr(a, "get") else None
    return None if _missing(count) else int(count)


def reconcile_calcom(appointments: pd.DataFrame, bookings: pd.DataFrame, *,
                     time_tolerance=DEFAULT_BOOKING_TIME_TOLERANCE, calcom_complete: bool = True) -> Reconciliation:
    """Local appointments (``calcom_v2_booking_id``, ``starts_at``, ``status``) vs Cal.com bookings
    (the latest state per booking uid, :func:`rca_toolkit.sources.formats.calcom.latest_bookings`):
    orphans both ways, start-time, cancellation and reschedule mismatches.

    A booking Cal.com rescheduled is superseded: if the app still holds it as active, that is a
    ``status`` row ("rescheduled to <uid>"), not a start-time one, and the booking that replaced it
    is the one owed a local appointment. Cancelled, rejected and superseded bookings are owed none.
    ``calcom_complete=False`` (a partial webhook dump) skips "local booking unknown to Cal.com".
    """
    if "calcom_v2_booking_id" not in appointments or "uid" not in bookings:
        raise SchemaError("need appointments.calcom_v2_booking_id and bookings.uid",
                          hint="pass loaders.appointments() and formats.calcom.read_calcom_webhooks()")
    from rca_toolkit.sources.formats.calcom import ENDED_STATES, latest_bookings

    latest = latest_bookings(bookings).set_index("uid")
    local = appointments.dropna(subset=["calcom_v2_booking_id"])
    local = local.set_index(local["calcom_v2_booking_id"].astype(str))
    time_tolerance = pd.Timedelta(time_tolerance)
    rows, matched = [], 0
    for uid, b in latest.iterrows():
        ref = b.get("retell_call_id") if isinstance(b.get("retell_call_id"), str) else uid
        state = b.get("state")
        before = b.get("rescheduled_from_uid")
        before = before if isinstance(before, str) else None
        if uid not in local.index:
            if state not in ENDED_STATES:
                note = "Cal.com booking without local appointment"
                if before is not None:
                    note += f" (rescheduled from {before}{', which the app holds' if before in local.index else ''})"
                rows.append(_row(ref, "orphaned_calcom", None, uid, note=note))
            continue
        matched += 1
        a = local.loc[[uid]].iloc[0]
        app_status = None if "status" not in a or _missing(a["status"]) else str(a["status"]).lower()
        if state == "rescheduled":
            if app_status not in _LOCAL_ENDED:
                rows.append(_row(ref, "status", app_status, f"rescheduled to {b['superseded_by']}",
                                 note=f"uid {uid}: Cal.com moved this booking; the app still holds it"))
            continue
        if state in ("cancelled", "rejected"):
            if app_status not in _LOCAL_ENDED:
                rows.append(_row(ref, "status", app_status, state, note=f"uid {uid}"))
            continue
        if "starts_at" in a and not _missing(a["starts_at"]) and not _missing(b["start"]):
            offset = b["start"] - a["starts_at"]
            if abs(offset) > time_tolerance:
                rows.append(_row(ref, "start_time", str(a["starts_at"]), str(b["start"]),
                                 delta=round(offset.total_seconds(), 3), note=f"uid {uid}"))
    notes = []
    if calcom_complete:
        for uid in sorted(set(local.index) - set(latest.index)):
            a = local.loc[[uid]].iloc[0]
            ref = a.get("retell_call_id") if isinstance(a.get("retell_call_id"), str) else uid
            rows.append(_row(ref, "orphaned_local", uid, None, note="local appointment unknown to Cal.com"))
    else:
        notes.append("Cal.com set marked partial: local appointments without a delivery are not listed")
    if "no_show" in latest and latest["no_show"].fillna(False).astype(bool).any():
        shows = latest[latest["no_show"].fillna(False).astype(bool)]
        notes.append(f"{len(shows)} booking(s) marked no-show at Cal.com (BOOKING_NO_SHOW_UPDATED): "
                     + ", ".join(sorted(map(str, shows.index))))
    frame = pd.DataFrame.from_records(rows, columns=DISAGREEMENT_COLUMNS)
    return Reconciliation("calcom", frame, len(local), len(latest), matched, notes)


# Local appointment statuses that mean the booking is no longer kept (the app's words for it).
_LOCAL_ENDED = {"cancelled", "canceled", "rescheduled", "rejected", "declined", "deleted"}
