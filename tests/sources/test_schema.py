"""The production tables of the data contract, created on SQLite and on the real MariaDB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import fresh_mariadb_database
from rca_toolkit.sources import schema

# Column lists copied from ../shared/docs/data-contract.md §3.1-3.5 (the contract is the spec).
CONTRACT_COLUMNS = {
    "retell_call_sessions": {
        "id", "call_id", "company_id", "customer_id", "branch_id", "phone_number", "branch_name", "agent_version",
        "started_at", "ended_at", "call_status", "disconnection_reason", "duration_ms", "agent_id",
        "conversation_flow_id", "current_flow_node", "flow_state", "metadata", "total_events", "function_call_count",
        "transcript_segment_count", "error_count", "avg_response_time_ms", "max_response_time_ms",
        "min_response_time_ms", "created_at", "updated_at"},
    "retell_call_events": {
        "id", "call_session_id", "correlation_id", "event_type", "occurred_at", "call_offset_ms", "response_time_ms",
        "function_name", "function_arguments", "function_response", "error_context", "metadata", "function_status",
        "transcript_text", "transcript_role", "from_node", "to_node", "transition_trigger", "error_code",
        "error_message"},
    "retell_function_traces": {
        "id", "call_session_id", "correlation_id", "event_id", "function_name", "execution_sequence", "started_at",
        "completed_at", "duration_ms", "input_params", "output_result", "error_details", "metadata", "status",
        "db_query_count", "db_query_time_ms", "external_api_calls", "external_api_time_ms"},
    "retell_transcript_segments": {
        "id", "call_session_id", "event_id", "occurred_at", "call_offset_ms", "duration_ms", "segment_sequence",
        "role", "text", "word_count", "related_function_trace_id", "sentiment", "metadata"},
    "retell_error_log": {
        "id", "call_session_id", "event_id", "function_trace_id", "error_code", "error_type", "severity",
        "occurred_at", "call_offset_ms", "error_message", "stack_trace", "resolution_notes", "error_context",
        "metadata", "call_terminated", "booking_failed", "resolved", "affected_function", "resolved_at"},
}
CONTRACT_INDEXES = {
    "retell_call_sessions": {"retell_call_sessions_call_id_unique", "idx_retell_sessions_branch",
                             "idx_retell_sessions_customer_date", "idx_retell_sessions_company_status",
                             "idx_retell_sessions_company_branch_date"},
    "retell_call_events": {"idx_events_session_time", "idx_events_type_time"},
    "retell_function_traces": {"idx_traces_session_seq", "idx_traces_function_time", "idx_traces_status"},
    "retell_transcript_segments": {"idx_transcript_session_seq", "idx_transcript_role", "idx_transcript_text_search",
                                   "idx_transcript_segments_session_seq", "idx_transcript_segments_session_time"},
    "retell_error_log": {"idx_errors_code_time", "idx_errors_type_severity", "idx_errors_unresolved",
                         "idx_errors_critical"},
    "webhook_events": {"webhook_events_event_id_unique", "webhook_events_idempotency_key_unique",
                       "idx_webhook_dedup", "idx_webhook_retry"},
}
LEGACY_APPOINTMENT_COLUMNS = (
    "id, parent_appointment_id, company_id, branch_id, customer_id, external_id, series_id, group_booking_id, "
    "starts_at, ends_at, payload, status, source, booking_type, created_at, updated_at, call_id, staff_id, "
    "service_id, calcom_v2_booking_id, calcom_event_type_id, notes, price, calcom_booking_id, version, "
    "lock_expires_at, lock_token, reminder_24h_sent_at, booking_metadata, travel_time_minutes, metadata, "
    "recurrence_rule, package_sessions_total, package_sessions_used, package_expires_at").split(", ")


@pytest.fixture(scope="module")
def mariadb_schema_url():
    """A database of its own, so the session's demo fixtures stay untouched."""
    with fresh_mariadb_database("rca_schema") as url:
        yield sa.make_url(url)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def created(request, tmp_path_factory):
    """(engine, inspector) after ``create_all`` on each backend."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('schema') / 'schema.sqlite'}")
    else:
        engine = sa.create_engine(request.getfixturevalue("mariadb_schema_url"))
    with engine.begin() as conn:
        if engine.dialect.name != "sqlite":
            conn.execute(sa.text("SET SESSION explicit_defaults_for_timestamp = 1"))
        schema.metadata.create_all(conn)
    yield engine, sa.inspect(engine)
    engine.dispose()


def test_all_tables_created(created):
    _, inspector = created
    assert set(inspector.get_table_names()) == set(schema.DEMO_TABLES)
    assert set(schema.TABLES_REQUIRED) <= set(schema.DEMO_TABLES)


@pytest.mark.parametrize("table", sorted(CONTRACT_COLUMNS))
def test_retell_columns_match_contract(created, table):
    _, inspector = created
    assert {c["name"] for c in inspector.get_columns(table)} == CONTRACT_COLUMNS[table]


def test_retell_nullability_and_defaults(created):
    _, inspector = created
    cols = {c["name"]: c for c in inspector.get_columns("retell_call_sessions")}
    assert cols["started_at"]["nullable"] is False and cols["ended_at"]["nullable"] is True
    assert "in_progress" in str(cols["call_status"]["default"])
    assert cols["error_count"]["nullable"] is False and "0" in str(cols["error_count"]["default"])
    traces = {c["name"]: c for c in inspector.get_columns("retell_function_traces")}
    assert traces["status"]["nullable"] is False and "pending" in str(traces["status"]["default"])
    assert traces["completed_at"]["nullable"] is True and traces["execution_sequence"]["nullable"] is False
    errors = {c["name"]: c for c in inspector.get_columns("retell_error_log")}
    assert "medium" in str(errors["severity"]["default"]) and errors["error_message"]["nullable"] is False


def test_appointments_have_the_pre_2025_10_18_column_set(created):
    _, inspector = created
    names = [c["name"] for c in inspector.get_columns("appointments")]
    assert len(names) == 69
    assert set(LEGACY_APPOINTMENT_COLUMNS) <= set(names)
    assert not set(schema.PHANTOM_APPOINTMENT_COLUMNS) & set(names)
    assert not {"idempotency_key", "webhook_id"} & set(names)  # these arrive on 2025-10-18


def test_foreign_keys_inside_the_retell_set(created):
    _, inspector = created
    fks = {(fk["constrained_columns"][0], fk["referred_table"], (fk.get("options") or {}).get("ondelete"))
           for fk in inspector.get_foreign_keys("retell_error_log")}
    assert ("call_session_id", "retell_call_sessions", "CASCADE") in fks
    assert ("function_trace_id", "retell_function_traces", "SET NULL") in fks


@pytest.mark.mariadb
def test_mariadb_indexes_and_types(created):
    engine, inspector = created
    if engine.dialect.name == "sqlite":
        pytest.skip("MariaDB-specific DDL")
    for table, wanted in CONTRACT_INDEXES.items():
        present = {i["name"] for i in inspector.get_indexes(table)}
        present |= {u["name"] for u in inspector.get_unique_constraints(table)}
        assert wanted <= present, (table, wanted - present)
    with engine.connect() as conn:
        types = dict(conn.execute(sa.text(
            "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE()")).all())
        fulltext = conn.execute(sa.text(
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND INDEX_NAME = 'idx_transcript_text_search' AND INDEX_TYPE = 'FULLTEXT'")).scalar_one()
        ddl = " ".join(conn.execute(sa.text(f"SHOW CREATE TABLE `{t}`")).one()[1] for t in schema.DEMO_TABLES)
    assert types["retell_call_sessions.started_at"] == "timestamp(6)"
    assert types["calls.raw"] == "longtext" and types["appointments.metadata"] == "longtext"
    assert types["retell_call_sessions.company_id"] == "bigint(20) unsigned"
    assert fulltext == 1
    assert "on update" not in ddl.lower()  # no implicit ON UPDATE CURRENT_TIMESTAMP anywhere
