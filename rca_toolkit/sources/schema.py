"""SQLAlchemy Core tables of the askproai production data contract (docs: data-contract §3).

The five ``retell_*`` tables follow the contract column for column (types, nullability,
defaults, foreign keys inside the set, listed indexes). ``calls`` carries the
analysis-relevant columns, ``appointments`` the 69-column pre-2025-10-18 (E1) state, which
has **no** ``created_by``/``booking_source``/``booked_by_user_id``; ``webhook_events`` the
legacy production shape with UNIQUE ``event_id`` (P11). Foreign keys to tables outside this
set (companies, customers, branches) are omitted because those tables are not modelled.

Only the demo builder creates these tables; analyses introspect the live schema instead.
Timestamps are ``TIMESTAMP(6)`` on MariaDB (created with explicit defaults, so no column
silently gets ``ON UPDATE CURRENT_TIMESTAMP``) and naive datetimes on SQLite. JSON columns
are ``LONGTEXT`` on MariaDB, as production reports them, and TEXT on SQLite: the writer
stores JSON text itself, so double-encoded values (P15) survive unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

TS = sa.DateTime().with_variant(mysql.TIMESTAMP(fsp=6), "mysql", "mariadb")
TS0 = sa.DateTime().with_variant(mysql.TIMESTAMP(), "mysql", "mariadb")  # Laravel timestamps()
JSON_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
UBIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb")
# SQLite only auto-increments an INTEGER PRIMARY KEY, so bigint keys use this variant.
PK_BIGINT = sa.BigInteger().with_variant(mysql.BIGINT(unsigned=True), "mysql", "mariadb").with_variant(
    sa.Integer(), "sqlite"
)
UINT = sa.Integer().with_variant(mysql.INTEGER(unsigned=True), "mysql", "mariadb")
TINYINT1 = sa.SmallInteger().with_variant(mysql.TINYINT(1), "mysql", "mariadb")
UUID = sa.CHAR(36)

TABLES_REQUIRED = (
    "retell_call_sessions",
    "retell_call_events",
    "retell_function_traces",
    "retell_transcript_segments",
    "retell_error_log",
)
PHANTOM_APPOINTMENT_COLUMNS = ("created_by", "booking_source", "booked_by_user_id")

_MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _zero():
    return sa.text("0")


# --------------------------------------------------------------------------- retell_* (§3.1-3.5)
retell_call_sessions = sa.Table(
    "retell_call_sessions",
    metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("call_id", sa.String(255), nullable=False),
    sa.Column("company_id", UBIGINT),
    sa.Column("customer_id", UBIGINT),
    sa.Column("branch_id", UBIGINT),
    sa.Column("phone_number", sa.String(255)),
    sa.Column("branch_name", sa.String(255)),
    sa.Column("agent_id", sa.String(255)),
    sa.Column("agent_version", sa.Integer),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("ended_at", TS),
    sa.Column("call_status", sa.String(50), nullable=False, server_default="in_progress"),
    sa.Column("disconnection_reason", sa.String(100)),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("conversation_flow_id", sa.String(255)),
    sa.Column("current_flow_node", sa.String(255)),
    sa.Column("flow_state", JSON_TEXT),
    sa.Column("total_events", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("function_call_count", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("transcript_segment_count", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("error_count", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("avg_response_time_ms", sa.Integer),
    sa.Column("max_response_time_ms", sa.Integer),
    sa.Column("min_response_time_ms", sa.Integer),
    sa.Column("metadata", JSON_TEXT),
    sa.Column("created_at", TS0),
    sa.Column("updated_at", TS0),
    sa.UniqueConstraint("call_id", name="retell_call_sessions_call_id_unique"),
    sa.Index("retell_call_sessions_call_id_index", "call_id"),
    sa.Index("retell_call_sessions_company_id_index", "company_id"),
    sa.Index("retell_call_sessions_customer_id_index", "customer_id"),
    sa.Index("retell_call_sessions_call_status_index", "call_status"),
    sa.Index("idx_retell_sessions_branch", "branch_id"),
    sa.Index("idx_retell_sessions_customer_date", "customer_id", "started_at"),
    sa.Index("idx_retell_sessions_company_status", "company_id", "started_at", "call_status"),
    sa.Index("idx_retell_sessions_company_branch_date", "company_id", "branch_id", "started_at"),
    **_MYSQL,
)

def _session_fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey("retell_call_sessions.id", ondelete="CASCADE", name=f"{table}_call_session_id_foreign")

retell_call_events = sa.Table(
    "retell_call_events",
    metadata,
    sa.Column("id", PK_BIGINT, primary_key=True, autoincrement=True),
    sa.Column("call_session_id", UUID, _session_fk("retell_call_events"), nullable=False),
    sa.Column("correlation_id", UUID),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("call_offset_ms", sa.Integer),
    sa.Column("function_name", sa.String(255)),
    sa.Column("function_arguments", JSON_TEXT),
    sa.Column("function_response", JSON_TEXT),
    sa.Column("response_time_ms", sa.Integer),
    sa.Column("function_status", sa.String(50)),
    sa.Column("transcript_text", sa.Text),
    sa.Column("transcript_role", sa.String(50)),
    sa.Column("from_node", sa.String(255)),
    sa.Column("to_node", sa.String(255)),
    sa.Column("transition_trigger", sa.String(255)),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("error_context", JSON_TEXT),
    sa.Column("metadata", JSON_TEXT),
    sa.Index("retell_call_events_call_session_id_index", "call_session_id"),
    sa.Index("retell_call_events_correlation_id_index", "correlation_id"),
    sa.Index("retell_call_events_event_type_index", "event_type"),
    sa.Index("retell_call_events_occurred_at_index", "occurred_at"),
    sa.Index("retell_call_events_function_name_index", "function_name"),
    sa.Index("retell_call_events_error_code_index", "error_code"),
    sa.Index("idx_events_session_time", "call_session_id", "occurred_at"),
    sa.Index("idx_events_type_time", "event_type", "occurred_at"),
    **_MYSQL,
)

def _event_fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey("retell_call_events.id", ondelete="SET NULL", name=f"{table}_event_id_foreign")

retell_function_traces = sa.Table(
    "retell_function_traces",
    metadata,
    sa.Column("id", PK_BIGINT, primary_key=True, autoincrement=True),
    sa.Column("call_session_id", UUID, _session_fk("retell_function_traces"), nullable=False),
    sa.Column("correlation_id", UUID),
    sa.Column("event_id", UBIGINT, _event_fk("retell_function_traces")),
    sa.Column("function_name", sa.String(255), nullable=False),
    sa.Column("execution_sequence", sa.Integer, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("completed_at", TS),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("input_params", JSON_TEXT),
    sa.Column("output_result", JSON_TEXT),
    sa.Column("error_details", JSON_TEXT),
    sa.Column("status", sa.String(50), nullable=False, server_default="pending"),
    sa.Column("db_query_count", sa.Integer),
    sa.Column("db_query_time_ms", sa.Integer),
    sa.Column("external_api_calls", sa.Integer),
    sa.Column("external_api_time_ms", sa.Integer),
    sa.Column("metadata", JSON_TEXT),
    sa.Index("idx_traces_session_seq", "call_session_id", "execution_sequence"),
    sa.Index("idx_traces_function_time", "function_name", "started_at"),
    sa.Index("idx_traces_status", "status", "started_at"),
    **_MYSQL,
)

retell_transcript_segments = sa.Table(
    "retell_transcript_segments",
    metadata,
    sa.Column("id", PK_BIGINT, primary_key=True, autoincrement=True),
    sa.Column("call_session_id", UUID, _session_fk("retell_transcript_segments"), nullable=False),
    sa.Column("event_id", UBIGINT, _event_fk("retell_transcript_segments")),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("call_offset_ms", sa.Integer),
    sa.Column("segment_sequence", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("role", sa.String(50), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("word_count", sa.Integer),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("related_function_trace_id", UUID),
    sa.Column("sentiment", sa.String(50)),
    sa.Column("metadata", JSON_TEXT),
    sa.Index("idx_transcript_session_seq", "call_session_id", "segment_sequence"),
    sa.Index("idx_transcript_role", "role", "occurred_at"),
    sa.Index("idx_transcript_segments_session_seq", "call_session_id", "segment_sequence"),
    sa.Index("idx_transcript_segments_session_time", "call_session_id", "occurred_at"),
    sa.Index("idx_transcript_text_search", "text", mysql_prefix="FULLTEXT", mariadb_prefix="FULLTEXT"),
    **_MYSQL,
)

retell_error_log = sa.Table(
    "retell_error_log",
    metadata,
    sa.Column("id", PK_BIGINT, primary_key=True, autoincrement=True),
    sa.Column("call_session_id", UUID, _session_fk("retell_error_log"), nullable=False),
    sa.Column("event_id", UBIGINT, _event_fk("retell_error_log")),
    sa.Column("function_trace_id", UBIGINT, sa.ForeignKey("retell_function_traces.id", ondelete="SET NULL", name="retell_error_log_function_trace_id_foreign")),
    sa.Column("error_code", sa.String(100), nullable=False),
    sa.Column("error_type", sa.String(100), nullable=False),
    sa.Column("severity", sa.String(50), nullable=False, server_default="medium"),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("call_offset_ms", sa.Integer),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("stack_trace", sa.Text),
    sa.Column("error_context", JSON_TEXT),
    sa.Column("affected_function", sa.String(255)),
    sa.Column("call_terminated", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("booking_failed", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("resolved", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("resolved_at", TS0),
    sa.Column("resolution_notes", sa.Text),
    sa.Column("metadata", JSON_TEXT),
    sa.Index("idx_errors_code_time", "error_code", "occurred_at"),
    sa.Index("idx_errors_type_severity", "error_type", "severity", "occurred_at"),
    sa.Index("idx_errors_unresolved", "resolved", "occurred_at"),
    sa.Index("idx_errors_critical", "severity", "occurred_at"),
    **_MYSQL,
)

# --------------------------------------------------------------------------- calls (§3.6)
calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", PK_BIGINT, primary_key=True, autoincrement=True),
    sa.Column("retell_call_id", sa.String(255), nullable=False),
    sa.Column("call_id", sa.String(255)),
    sa.Column("external_id", sa.String(255)),
    sa.Column("company_id", UBIGINT, nullable=False),
    sa.Column("customer_id", UBIGINT),
    sa.Column("appointment_id", UBIGINT),
    sa.Column("from_number", sa.String(255)),
    sa.Column("to_number", sa.String(255)),
    sa.Column("direction", sa.String(255)),
    sa.Column("status", sa.String(20), nullable=False, server_default="completed"),
    sa.Column("call_status", sa.String(255)),
    sa.Column("start_timestamp", TS0),
    sa.Column("end_timestamp", TS0),
    sa.Column("call_time", TS0),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("duration_sec", UINT),
    sa.Column("disconnection_reason", sa.String(255)),
    sa.Column("retell_agent_id", sa.String(255)),
    sa.Column("agent_id", sa.String(255)),
    sa.Column("agent_version", sa.String(50)),
    sa.Column("latency_metrics", LONG_TEXT),
    sa.Column("end_to_end_latency", sa.Integer),
    sa.Column("cost_cents", sa.Integer),
    sa.Column("cost", sa.Numeric(10, 2)),
    sa.Column("cost_breakdown", JSON_TEXT),
    sa.Column("transcript", sa.Text),
    sa.Column("transcript_object", JSON_TEXT),
    sa.Column("transcript_with_tools", JSON_TEXT),
    sa.Column("raw", JSON_TEXT),
    sa.Column("analysis", JSON_TEXT),
    sa.Column("summary", sa.Text),
    sa.Column("sentiment", sa.String(255)),
    sa.Column("call_successful", TINYINT1),
    sa.Column("appointment_made", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("session_outcome", sa.String(50)),
    sa.Column("llm_token_usage", JSON_TEXT),
    sa.Column("metadata", JSON_TEXT),
    sa.Column("custom_analysis_data", JSON_TEXT),
    sa.Column("retell_dynamic_variables", JSON_TEXT),
    sa.Column("custom_sip_headers", JSON_TEXT),
    sa.Column("agent_talk_time_ms", sa.Integer),
    sa.Column("customer_talk_time_ms", sa.Integer),
    sa.Column("silence_time_ms", sa.Integer),
    sa.Column("created_at", TS0),
    sa.Column("updated_at", TS0),
    sa.Column("deleted_at", TS0),
    sa.UniqueConstraint("retell_call_id", name="calls_retell_call_id_unique"),
    sa.Index("calls_company_id_index", "company_id"),
    sa.Index("calls_start_timestamp_index", "start_timestamp"),
    sa.Index("calls_status_index", "status"),
    sa.Index("calls_appointment_id_index", "appointment_id"),
    **_MYSQL,
)

# --------------------------------------------------------------------------- appointments (§3.7, PRE/E1: 69 columns)
_SYNC_STATUS = ("synced", "pending", "failed", "orphaned_local", "orphaned_calcom", "verification_pending")
_SYNC_ORIGIN = ("calcom", "retell", "admin", "api", "system")

appointments = sa.Table(
    "appointments",
    metadata,
    # legacy 35 columns [dump]
    sa.Column("id", PK_BIGINT, primary_key=True, autoincrement=True),
    sa.Column("parent_appointment_id", UBIGINT),
    sa.Column("company_id", UBIGINT, nullable=False),
    sa.Column("branch_id", UUID),
    sa.Column("customer_id", UBIGINT, nullable=False),
    sa.Column("external_id", sa.String(255)),
    sa.Column("series_id", sa.String(255)),
    sa.Column("group_booking_id", sa.String(255)),
    sa.Column("starts_at", TS0),
    sa.Column("ends_at", TS0),
    sa.Column("payload", JSON_TEXT),
    sa.Column("status", sa.String(255), nullable=False, server_default="pending"),
    sa.Column("source", sa.String(255), nullable=False, server_default="phone"),
    sa.Column("booking_type", sa.String(255), server_default="single"),
    sa.Column("created_at", TS0),
    sa.Column("updated_at", TS0),
    sa.Column("call_id", UBIGINT, sa.ForeignKey("calls.id", ondelete="SET NULL", name="appointments_call_id_foreign")),
    sa.Column("staff_id", UUID),
    sa.Column("service_id", UBIGINT),
    sa.Column("calcom_v2_booking_id", sa.String(255)),
    sa.Column("calcom_event_type_id", UBIGINT),
    sa.Column("notes", sa.Text),
    sa.Column("price", sa.Integer),
    sa.Column("calcom_booking_id", UBIGINT),
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("lock_expires_at", TS0),
    sa.Column("lock_token", sa.String(255)),
    sa.Column("reminder_24h_sent_at", TS0),
    sa.Column("booking_metadata", JSON_TEXT),
    sa.Column("travel_time_minutes", sa.Integer),
    sa.Column("metadata", JSON_TEXT),
    sa.Column("recurrence_rule", JSON_TEXT),
    sa.Column("package_sessions_total", sa.Integer),
    sa.Column("package_sessions_used", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("package_expires_at", TS0),
    # 34 columns from migrations dated 2025-09-24 ... 2025-10-13
    sa.Column("is_composite", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("composite_group_uid", sa.String(255)),
    sa.Column("segments", JSON_TEXT),
    sa.Column("google_event_id", sa.String(255)),
    sa.Column("outlook_event_id", sa.String(255)),
    sa.Column("is_recurring", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("recurring_pattern", JSON_TEXT),
    sa.Column("external_calendar_source", sa.String(255)),
    sa.Column("external_calendar_id", sa.String(255)),
    sa.Column("is_nested", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("parent_booking_id", UBIGINT),
    sa.Column("has_nested_slots", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("phases", JSON_TEXT),
    sa.Column("notification_status", sa.String(50)),
    sa.Column("reminder_count", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("last_reminder_at", TS0),
    sa.Column("deleted_at", TS0),
    sa.Column("booking_timezone", sa.String(50), server_default="Europe/Berlin"),
    sa.Column("assignment_model_used", sa.String(50)),
    sa.Column("was_fallback", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("assignment_metadata", JSON_TEXT),
    sa.Column("calcom_host_id", sa.Integer),
    sa.Column("calcom_sync_status", sa.Enum(*_SYNC_STATUS, name="calcom_sync_status"), server_default="pending"),
    sa.Column("last_sync_attempt_at", TS0),
    sa.Column("sync_attempt_count", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("sync_error_message", sa.Text),
    sa.Column("sync_error_code", sa.String(50)),
    sa.Column("sync_verified_at", TS0),
    sa.Column("requires_manual_review", TINYINT1, nullable=False, server_default=_zero()),
    sa.Column("manual_review_flagged_at", TS0),
    sa.Column("sync_origin", sa.Enum(*_SYNC_ORIGIN, name="sync_origin")),
    sa.Column("sync_initiated_at", TS0),
    sa.Column("sync_initiated_by_user_id", UBIGINT),
    sa.Column("sync_job_id", sa.String(255)),
    sa.UniqueConstraint("calcom_v2_booking_id", name="appointments_calcom_v2_booking_id_unique"),
    sa.Index("appointments_company_id_index", "company_id"),
    sa.Index("appointments_call_id_index", "call_id"),
    sa.Index("appointments_starts_at_index", "starts_at"),
    sa.Index("appointments_created_at_index", "created_at"),
    **_MYSQL,
)

# --------------------------------------------------------------------------- webhook_events (§3.8, legacy shape)
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", PK_BIGINT, primary_key=True, autoincrement=True),
    sa.Column("company_id", UBIGINT),
    sa.Column("provider", sa.String(255), nullable=False),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("payload", JSON_TEXT, nullable=False),
    sa.Column("headers", JSON_TEXT),
    sa.Column("status", sa.String(255), nullable=False, server_default="pending"),
    sa.Column("processed_at", TS0),
    sa.Column("error_message", sa.Text),
    sa.Column("retry_count", sa.Integer, nullable=False, server_default=_zero()),
    sa.Column("received_at", TS0),
    sa.Column("notes", sa.Text),
    sa.Column("correlation_id", sa.String(255)),
    sa.Column("created_at", TS0),
    sa.Column("updated_at", TS0),
    sa.UniqueConstraint("event_id", name="webhook_events_event_id_unique"),
    sa.UniqueConstraint("idempotency_key", name="webhook_events_idempotency_key_unique"),
    sa.Index("idx_webhook_dedup", "provider", "event_id", "status"),
    sa.Index("idx_webhook_retry", "status", "retry_count", "created_at"),
    sa.Index("webhook_events_provider_index", "provider"),
    sa.Index("webhook_events_event_type_index", "event_type"),
    sa.Index("webhook_events_status_index", "status"),
    sa.Index("webhook_events_company_id_index", "company_id"),
    sa.Index("webhook_events_created_at_index", "created_at"),
    sa.Index("webhook_events_received_at_index", "received_at"),
    sa.Index("webhook_events_processed_at_index", "processed_at"),
    sa.Index("webhook_events_correlation_id_index", "correlation_id"),
    sa.Index("webhook_events_provider_event_type_index", "provider", "event_type"),
    **_MYSQL,
)

# --------------------------------------------------------------------------- migrations (§3.9)
migrations = sa.Table(
    "migrations",
    metadata,
    sa.Column("id", UINT.with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("migration", sa.String(255), nullable=False),
    sa.Column("batch", sa.Integer, nullable=False),
    **_MYSQL,
)

# --------------------------------------------------------------------------- demo marker
rca_demo_world = sa.Table(
    "rca_demo_world",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("scale", sa.Integer, nullable=False),
    sa.Column("generator", sa.String(100), nullable=False),
    sa.Column("note", sa.String(255), nullable=False),
    sa.Column("built_at_utc", sa.String(40), nullable=False),
    **_MYSQL,
)

DEMO_TABLES = tuple(metadata.tables)
