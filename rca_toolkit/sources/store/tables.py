"""What the local store holds: the tables the analyses count over, lean columns only, and how each changes.

Why a list of its own: the store is read by every analysis instead of the server, so a column it lacks
would be a silently missing column. ``tests/sources/store/test_tables.py`` checks that every column any
``REQUIRES`` declares on a stored table is stored. One call's trace (events, transcript segments,
``calls.raw``) is a point lookup the server answers in milliseconds by its indexes: it is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from rca_toolkit.rules import bookings, call_ids

METADATA_CALL_ID = "metadata_retell_call_id"  # appointments: the call its metadata names (bookings.metadata_call_ids)
ERROR_MESSAGE_FOLDED = "error_message_folded"  # error log: the message, its call ids folded (call_ids.fold_call_ids)
SESSIONS = "retell_call_sessions"
# A trace or error row keeps its session's call id, company and start (``session_<column>``) and whether that call
# id is a real one: the analyses filter traces and errors by their call, which was a join of millions of rows on
# uuid texts (and the call-id rule run again) at every statement. Kept equal to the stored session by every refresh.
SESSION_COLUMNS = {"session_call_id": ("call_id", "VARCHAR"), "session_company_id": ("company_id", "BIGINT"),
                   "session_started_at": ("started_at", "TIMESTAMP")}
SESSION_REAL = "session_real_call"  # TRUE / FALSE: the session's call id is real (call_ids); NULL: no session stored


@dataclass(frozen=True)
class StoredTable:
    """One stored table: its key, the column that says when a row happened (``time``: the trailing window
    is re-read by it), ``updated`` (re-read whatever changed since the last refresh) and the text columns
    that can hold personal data (masked before they are stored)."""

    name: str
    key: str
    time: str | None
    updated: str | None
    columns: tuple[str, ...]
    masked: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()  # columns that hold a phone number and nothing else: stored as the mask itself
    whole: bool = False  # small tables read whole on every refresh
    # (stored column, source column, rule): a text the analyses read of a JSON column, decoded once when the row
    # is stored (from the masked text, as a read of the stored column would decode it) instead of at every read
    derived: tuple = ()
    of_session: bool = False  # keeps its session's columns (SESSION_COLUMNS) beside its call_session_id
    # a column ahead of ``time`` in a source index (few values): the trailing window is asked as one range of that
    # index per value, where ``time`` alone, leading no index, would make the server scan the whole table
    window_prefix: str | None = None

    @property
    def integer_key(self) -> bool:
        return self.name != SESSIONS


TABLES = (
    StoredTable(SESSIONS, "id", "started_at", "updated_at",
                ("id", "call_id", "company_id", "customer_id", "agent_id", "agent_version", "started_at", "ended_at",
                 "call_status", "disconnection_reason", "duration_ms", "function_call_count", "error_count",
                 "total_events", "updated_at"), window_prefix="company_id"),
    StoredTable("retell_function_traces", "id", "started_at", None,
                ("id", "call_session_id", "function_name", "execution_sequence", "started_at", "completed_at",
                 "duration_ms", "status", "input_params", "output_result", "error_details"),
                masked=("input_params", "output_result", "error_details"), of_session=True),
    StoredTable("retell_error_log", "id", "occurred_at", None,
                ("id", "call_session_id", "function_trace_id", "error_code", "error_type", "severity", "occurred_at",
                 "call_offset_ms", "error_message", "error_context", "booking_failed", "call_terminated",
                 "affected_function", "resolved"),
                masked=("error_message", "error_context"),
                derived=((ERROR_MESSAGE_FOLDED, "error_message", call_ids.fold_call_ids),), of_session=True),
    StoredTable("calls", "id", "created_at", "updated_at",
                ("id", "retell_call_id", "company_id", "status", "call_status", "start_timestamp", "end_timestamp",
                 "duration_ms", "disconnection_reason", "session_outcome", "appointment_made", "appointment_id",
                 "end_to_end_latency", "cost_cents", "from_number", "created_at", "updated_at", "deleted_at"),
                redacted=("from_number",)),
    StoredTable("appointments", "id", "created_at", "updated_at",
                ("id", "company_id", "customer_id", "call_id", "service_id", "starts_at", "ends_at", "status", "source",
                 "calcom_v2_booking_id", "metadata", "calcom_sync_status", "sync_origin", "requires_manual_review",
                 "idempotency_key", "created_by", "booking_source", "booked_by_user_id", "created_at", "updated_at",
                 "deleted_at"),
                masked=("metadata",), derived=((METADATA_CALL_ID, "metadata", bookings.metadata_call_ids),)),
    StoredTable("webhook_events", "id", "created_at", "updated_at",
                ("id", "provider", "source", "event_type", "event_id", "status", "payload", "error_message",
                 "received_at", "processed_at", "retry_count", "company_id", "created_at", "updated_at"),
                masked=("payload", "error_message")),
    StoredTable("migrations", "id", None, None, ("id", "migration", "batch")),  # appended: new ids, reconciled by count
    StoredTable("rca_demo_world", "id", None, None, (), whole=True),  # the demo marker: every column, one row
)
BY_NAME = {t.name: t for t in TABLES}
