"""An optional column the live schema lacks is written on the analysis result, never silently read as empty:
the comparison's notes, the call timeline's data gaps, the quality report's notes (demo world on SQLite)."""

from __future__ import annotations

import pytest

from conftest import altered_copy
from rca_toolkit.analyses.calls import timeline
from rca_toolkit.analyses.compare.before_after import before_after
from rca_toolkit.analyses.quality import quality_report
from rca_toolkit.sources import loaders

AT = "2025-10-18T13:20:08+02:00"
CALL = "call_ab45deadd7db66c4956d5243861"


def _world(demo_sqlite, tmp_path, *statements: str):
    return loaders.engine_for(altered_copy(demo_sqlite[0], tmp_path, *statements))


def test_compare_notes_every_absent_optional_column(demo_sqlite, tmp_path):
    engine = _world(demo_sqlite, tmp_path, "ALTER TABLE appointments DROP COLUMN deleted_at",
                    "DROP INDEX calls_status_index", "ALTER TABLE calls DROP COLUMN status")
    result = before_after(engine, at=AT, with_changepoints=False)
    notes = result.comparison.notes
    assert "appointments.deleted_at absent: no appointment counts as soft-deleted" in notes
    assert "calls.status absent: sessions in_progress while the call row says completed (P5) not left out as stuck" in notes
    assert "appointments.deleted_at absent" in result.to_text()


def test_the_timeline_lists_absent_columns_among_its_data_gaps(demo_sqlite, tmp_path):
    engine = _world(demo_sqlite, tmp_path, "ALTER TABLE calls DROP COLUMN raw",
                    "ALTER TABLE retell_transcript_segments DROP COLUMN duration_ms")
    result = timeline.load_timeline(CALL, db=engine)
    assert result.source == "database trace"
    assert "retell_transcript_segments.duration_ms (column absent)" in result.data_gaps
    assert "calls.raw (column absent)" in result.data_gaps


def test_the_quality_report_notes_what_the_loader_could_not_read(demo_sqlite, tmp_path):
    engine = _world(demo_sqlite, tmp_path, "DROP INDEX calls_status_index", "ALTER TABLE calls DROP COLUMN status")
    report = quality_report(loaders.calls(engine, include_test=True))
    assert any(n.startswith("columns absent in calls: status (read as empty") for n in report.notes)


def test_reconciling_sessions_with_calls_refuses_columns_the_loader_read_as_empty(demo_sqlite, tmp_path):
    from rca_toolkit.analyses.bookings.reconcile import reconcile_sessions_with_calls
    from rca_toolkit.errors import SchemaError

    engine = _world(demo_sqlite, tmp_path, "ALTER TABLE calls DROP COLUMN duration_ms")
    with pytest.raises(SchemaError, match=r"^table 'calls' lacks duration_ms \(needed by the sessions-vs-calls reconciliation\)"):
        reconcile_sessions_with_calls(loaders.calls(engine))
