"""Runbook framework: statuses, error conversion, verdict, sign-off rendering, recording."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rca_toolkit import db, loaders, schema
from rca_toolkit.errors import ConnectionFailed, SchemaError
from rca_toolkit.runbook import CheckResult, NotApplicable, Runbook, Skipped, Status, run_check, window_after


def _ok():
    return CheckResult("ping", Status.PASS, "1 of 1 answered", {"answered": 1, "window": ["a", "b"]})


def _fail():
    return CheckResult("bookings", Status.FAIL, "book_appointment: 0/23 succeeded",
                       {"paths": [{"path": "book_appointment", "attempts": 23, "success": 0}], "threshold": "> 98%"},
                       "Roll back the deploy.")


def test_status_order_and_exit_codes():
    assert Status.PASS < Status.WARN < Status.FAIL < Status.ERROR
    assert [s.exit_code for s in Status] == [0, 0, 1, 2]


@pytest.mark.parametrize("exc, fragment", [
    (SchemaError("table 'retell_error_log' is missing", hint="point --db at production"), "SchemaError: table 'retell_error_log'"),
    (ConnectionFailed("cannot connect to mysql+pymysql://u:***@h/db"), "ConnectionFailed: cannot connect"),
    (ValueError("boom"), "unexpected builtins.ValueError: boom (a bug in the check)"),
    (KeyError("paths"), "unexpected builtins.KeyError: 'paths'"),
])
def test_run_check_turns_every_exception_into_error(exc, fragment):
    def broken():
        raise exc

    result = run_check("broken", broken)
    assert result.status == Status.ERROR and fragment in result.summary
    assert result.remedy  # says what to do


def test_run_check_database_error_is_error_with_redacted_text():
    import sqlalchemy as sa

    def query():
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("denied for mysql://u:pw123@h/db"))

    result = run_check("q", query)
    assert result.status == Status.ERROR and result.summary.startswith("database error sqlalchemy.exc.OperationalError")
    assert "pw123" not in result.summary and "pw123" not in result.evidence["traceback_tail"]


def test_run_check_names_skips_and_rejects_bad_returns():
    assert run_check("renamed", _ok, remedy="do x").name == "renamed"
    assert run_check("renamed", _ok, remedy="do x").remedy == "do x"

    def not_applicable():
        raise NotApplicable("no Redis configured")

    skipped = run_check("redis", not_applicable)
    assert isinstance(skipped, Skipped) and skipped.reason == "no Redis configured"
    bad = run_check("bad", lambda: "PASS")
    assert bad.status == Status.ERROR and "returned str" in bad.summary


def test_verdict_is_worst_and_empty_is_error():
    rb = Runbook("RB999", "Test")
    assert rb.verdict == Status.ERROR  # nothing ran: never PASS
    rb.run(None, _ok)
    assert rb.verdict == Status.PASS
    rb.run("Booking success", _fail)
    rb.run("redis", lambda: (_ for _ in ()).throw(NotApplicable("no Redis configured")))
    assert rb.verdict == Status.FAIL and rb.exit_code == 1
    assert rb.counts() == {"PASS": 1, "WARN": 0, "FAIL": 1, "ERROR": 0, "SKIPPED": 1}
    rb.run("schema", lambda: (_ for _ in ()).throw(SchemaError("table 'x' is missing")))
    assert rb.verdict == Status.ERROR and rb.exit_code == 2


def test_signoff_markdown_html_json():
    rb = Runbook("RB001", "Post-deployment check", phase="Phase 1", parameters={"deployed_at": "2025-10-18T13:20:08+02:00"},
                 database="sqlite:///demo.sqlite", synthetic=True, on_failure="Roll back first.")
    rb.run("Database reachable", _ok)
    rb.run("Booking success since the deploy", _fail)
    rb.add_metric("booking success, book_appointment", "0/20 (0.0%)", "0/23 (0.0%)", unit="success/attempts")
    md = rb.to_markdown()
    assert md.startswith("# RB001 Post-deployment check: sign-off")
    assert "**Verdict: FAIL** (worst of 2 checks: PASS 1, WARN 0, FAIL 1, ERROR 0, SKIPPED 0)" in md
    assert "- [ ] **FAIL** Booking success since the deploy: book_appointment: 0/23 succeeded" in md
    assert "| book_appointment | 23 | 0 |" in md  # evidence table
    assert "| booking success, book_appointment | 0/20 (0.0%) | 0/23 (0.0%) |" in md  # before/after
    assert "1. **Booking success since the deploy** (FAIL): Roll back the deploy." in md
    assert "SYNTHETIC" in md and "Signed off by" in md
    html = rb._repr_html_()
    assert 'class="rca-status-FAIL"' in html and "<table>" in html and "Roll back the deploy." in html
    data = json.loads(rb.to_json())
    assert data["verdict"] == "FAIL" and data["exit_code"] == 1
    assert [c["status"] for c in data["checks"]] == ["PASS", "FAIL"]
    assert data["metrics"][0]["after"] == "0/23 (0.0%)"


def test_collect_metrics_shows_failures_instead_of_hiding_them():
    rb = Runbook("RB001", "x")
    rb.collect_metrics(lambda: [{"metric": "m", "before": 1, "after": 2, "unit": "", "note": ""}])

    def broken():
        raise SchemaError("table 'appointments' is missing")

    rb.collect_metrics(broken)
    assert rb.metrics[0]["after"] == 2
    assert rb.metrics[1]["note"] == "could not compute: SchemaError: table 'appointments' is missing"


def test_record_writes_verdict_and_signoff_into_the_run(monkeypatch, tmp_path):
    monkeypatch.setenv("RCA_RUN_DIR", str(tmp_path))
    rb = Runbook("RB001", "x")
    rb.run("Booking success", _fail)
    rb.record()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["verdict"] == "FAIL" and metrics["exit_code"] == 1 and metrics["checks"] == {"Booking success": "FAIL"}
    assert "**Verdict: FAIL**" in (tmp_path / "signoff.md").read_text()
    assert json.loads((tmp_path / "signoff.json").read_text())["checks"][0]["name"] == "Booking success"


def test_runbook_on_a_database_without_required_tables_is_error(tmp_path):
    from rca_toolkit import checks

    path = tmp_path / "partial.sqlite"
    engine = db.make_engine(f"sqlite:///{path}", writable=True)
    schema.metadata.create_all(engine, tables=[schema.metadata.tables["calls"]])
    engine.dispose()
    ro = loaders.engine_for(f"sqlite:///{path}")
    rb = Runbook("RB001", "x", db=ro)
    rb.run("Database reachable", checks.db_reachable, ro)
    rb.run("Required tables and columns", checks.required_columns, ro)
    rb.run("Stuck sessions", checks.stuck_sessions, ro, "2025-10-18T16:00:00+02:00")
    assert [r.status for r in rb.results] == [Status.PASS, Status.ERROR, Status.ERROR]
    assert rb.verdict == Status.ERROR and rb.synthetic is False and rb.database.startswith("sqlite://")
    assert "retell_call_sessions" in rb.results[1].summary


def test_window_after():
    start, end = window_after("2025-10-18T13:20:08+02:00", "5d")
    assert start == pd.Timestamp("2025-10-18T11:20:08Z") and end == pd.Timestamp("2025-10-23T11:20:08Z")
    _, explicit = window_after("2025-10-18T13:20:08+02:00", "5d", "2025-10-19T00:00:00+02:00")
    assert explicit == pd.Timestamp("2025-10-18T22:00:00Z")
    with pytest.raises(Exception, match="is not after its start"):  # a start in the future has no window yet
        window_after("2099-01-01T00:00:00Z", "5d")
    with pytest.raises(Exception, match="is not after its start"):
        window_after("2025-10-18T13:20:08+02:00", "", "2025-10-18T13:00:00+02:00")
