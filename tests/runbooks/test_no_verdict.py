"""No verdict is never PASS: "0 of 0" is WARN "not enough data", and an absent optional column is written on the
result (a check it could hide a finding from is WARN, not fully checked). Real demo worlds on SQLite."""

from __future__ import annotations

import pytest

from conftest import altered_copy
from rca_toolkit.runbooks import checks, code_checks
from rca_toolkit.runbooks.framework import Status, run_check
from rca_toolkit.sources import loaders

EMPTY = ("2031-01-01T00:00:00+01:00", "2031-01-08T00:00:00+01:00")  # after every row of the demo world
S, E = "2025-10-13T00:00:00+02:00", "2025-10-20T00:00:00+02:00"


def _copy(demo_sqlite, tmp_path, *statements: str):
    return loaders.engine_for(altered_copy(demo_sqlite[0], tmp_path, *statements))


def _no_verdict(result):
    assert result.status == Status.WARN, result.summary
    assert result.summary.startswith("not enough data: ") and result.evidence["verdict"] == "not enough data"


@pytest.mark.parametrize("check", [checks.outcome_disagreements, checks.failed_webhooks])
def test_zero_of_zero_in_an_empty_window_is_not_enough_data(demo_sqlite, check):
    _no_verdict(check(demo_sqlite[0], *EMPTY))


def test_stuck_sessions_without_sessions_is_not_enough_data(demo_sqlite):
    _no_verdict(checks.stuck_sessions(demo_sqlite[0], EMPTY[1], lookback="1d"))


def test_orphans_without_anything_to_compare_are_no_verdict_in_both_directions(demo_sqlite):
    result = checks.booking_orphans(demo_sqlite[0], *EMPTY)
    assert result.status == Status.WARN
    assert "0 of 0 Cal.com bookings" in result.summary and "not enough data: no Cal.com booking in the window" in result.summary


def test_booking_success_with_no_attempt_is_no_verdict_even_with_min_attempts_0(demo_sqlite):
    result = checks.booking_success(demo_sqlite[0], *EMPTY, min_attempts=0)
    assert result.status == Status.WARN
    assert {row["status"] for row in result.evidence["paths"]} == {"WARN"}
    assert all(row["why"].startswith("not enough data") for row in result.evidence["paths"])


def test_duplicate_ids_among_no_booking_id_is_not_enough_data(demo_sqlite, tmp_path):
    engine = _copy(demo_sqlite, tmp_path, "UPDATE appointments SET calcom_v2_booking_id = NULL")
    _no_verdict(checks.duplicate_booking_ids(engine))


def test_empty_migration_history_is_not_enough_data(demo_sqlite, tmp_path):
    engine = _copy(demo_sqlite, tmp_path, "DELETE FROM migrations")
    _no_verdict(code_checks.check_names(engine))
    empty_folder = tmp_path / "migrations"
    empty_folder.mkdir()
    _no_verdict(code_checks.check_pending(engine, files=str(empty_folder)))


def test_a_code_tree_without_any_column_write_verifies_nothing(demo_sqlite, tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Readme.php").write_text("<?php\n// no model, no write\n")
    _no_verdict(checks.phantom_columns(demo_sqlite[0], str(tmp_path)))


def test_a_log_without_entries_in_the_window_is_not_enough_data(tmp_path):
    log = tmp_path / "laravel.log"
    log.write_text("[2025-10-14 10:00:00] production.ERROR: SQLSTATE[42S22]: Column not found\n"
                   "[2025-10-14 10:00:01] production.INFO: request done\n")
    _no_verdict(checks.log_errors(str(log), *EMPTY))  # 0 errors of 0 entries in the window
    assert checks.log_errors(str(log), S, E).evidence["errors"] == 1  # the same log judges its own days


def test_an_absent_column_that_can_hide_stuck_sessions_makes_the_check_warn(demo_sqlite, tmp_path):
    engine = _copy(demo_sqlite, tmp_path, "DROP INDEX calls_status_index", "ALTER TABLE calls DROP COLUMN status")
    result = checks.stuck_sessions(engine, E)
    assert result.status == Status.WARN  # PASS on the full world (0 of 5 stuck)
    assert "calls.status absent: sessions in_progress while their call row says completed are not recognised" in result.summary
    assert result.summary.endswith("not fully checked") and result.evidence["missing_columns"] == {"calls": ["status"]}


def test_an_absent_soft_delete_marker_is_written_on_the_result(demo_sqlite, tmp_path):
    engine = _copy(demo_sqlite, tmp_path, "ALTER TABLE appointments DROP COLUMN deleted_at")
    result = checks.outcome_disagreements(engine, S, E)
    assert result.status == Status.PASS  # it cannot hide a disagreement: noted, still judged
    assert "appointments.deleted_at absent: soft-deleted appointments count as existing" in result.summary
    assert result.evidence["missing_columns"] == {"appointments": ["deleted_at"]}


def test_a_missing_required_column_is_an_error_naming_it_through_run_check(demo_sqlite, tmp_path):
    engine = _copy(demo_sqlite, tmp_path, "ALTER TABLE calls DROP COLUMN session_outcome")
    result = run_check("Outcome vs appointment agreement", checks.outcome_disagreements, engine, S, E)
    assert result.status == Status.ERROR and not result.internal
    assert "SchemaError: table 'calls' lacks session_outcome (needed by RB040's outcome-vs-appointment check" in result.summary
