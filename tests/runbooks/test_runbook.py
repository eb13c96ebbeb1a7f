"""Runbook framework: statuses, error conversion, verdict, sign-off rendering, recording."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rca_toolkit.sources import db, loaders, schema
from rca_toolkit.errors import ConnectionFailed, SchemaError
from rca_toolkit.outcome import Outcome
from rca_toolkit.runbooks.framework import (
    CheckResult,
    NotApplicable,
    Runbook,
    Skipped,
    Status,
    run_check,
    window_after,
)


def _ok():
    return CheckResult("ping", Status.PASS, "1 of 1 answered", {"answered": 1, "window": ["a", "b"]})


def _fail():
    return CheckResult("bookings", Status.FAIL, "book_appointment: 0/23 succeeded",
                       {"paths": [{"path": "book_appointment", "attempts": 23, "success": 0}], "threshold": "> 98%"},
                       "Roll back the deploy.")


def test_status_order_and_outcomes():
    assert Status.PASS < Status.WARN < Status.FAIL < Status.ERROR
    assert [s.outcome for s in Status] == [Outcome.CLEAR, Outcome.CLEAR, Outcome.FOUND, Outcome.BAD_INPUT]


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
    assert rb.verdict == Status.FAIL and rb.outcome == Outcome.FOUND
    assert rb.counts() == {"PASS": 1, "WARN": 0, "FAIL": 1, "ERROR": 0, "SKIPPED": 1}
    rb.run("schema", lambda: (_ for _ in ()).throw(SchemaError("table 'x' is missing")))
    assert rb.verdict == Status.ERROR and rb.outcome == Outcome.BAD_INPUT  # the input (a missing table)
    rb.run("bug", lambda: {}["no such key"])
    assert rb.results[-1].internal and not rb.results[-2].internal
    assert rb.verdict == Status.ERROR and rb.outcome == Outcome.INTERNAL_ERROR  # a check crashed


def test_evidence_reads_as_words_and_rates_as_percentages_while_json_keeps_the_values():
    """The sign-off and the report showed "success_rate 0.9556" and "sessions_reached" (the JSON's keys and values)."""
    rb = Runbook("RB020", "Booking health", parameters={}, database="sqlite:///demo.sqlite")
    rb.run("paths", lambda: CheckResult("paths", Status.WARN, "collect_appointment: 43/45", {
        "paths": [{"path": "collect_appointment", "success_rate": 0.95556, "sessions_reached": 45}],
        "rate": 1.0, "excluded_test_ids": 0, "error_rate_limit": 2.5}))
    md, page = rb.to_markdown(), rb.results[0].to_html()  # the sign-off; the check as its notebook cell shows it
    assert "| path | success rate | sessions reached |" in md and "| collect_appointment | 95.6 % | 45 |" in md
    assert "- rate: 100.0 %" in md and "- excluded test ids: 0" in md
    assert "- error rate limit: 2.5" in md  # not a share (above 1): shown as it is
    assert "<th>success rate</th>" in page and "<td>95.6 %</td>" in page and "<li>rate: 100.0 %</li>" in page
    evidence = json.loads(rb.to_json())["checks"][0]["evidence"]
    assert evidence["paths"][0] == {"path": "collect_appointment", "success_rate": 0.95556, "sessions_reached": 45}
    # the Markdown report: each check as its to_markdown (not raw HTML), the sign-off a section without the checklist
    assert rb.results[0]._repr_markdown_() == rb.results[0].to_markdown()
    section = rb._repr_markdown_()
    assert section.startswith("## RB020 Booking health: sign-off") and "### What to do on failure" in section
    assert "Checklist" not in section and "95.6 %" not in section and "## Checklist" in rb.to_markdown()


def test_evidence_times_read_in_the_reports_zone_while_json_keeps_them_in_utc():
    """A check's title and the report say local time; its evidence said "2025-10-23T09:56:02+00:00". An instant and a
    window (two instants) now read as the other times of the report; a value that only looks like one stays."""
    rb = Runbook("RB001", "Post-deployment", parameters={}, database="sqlite:///demo.sqlite")
    window = ["2025-10-23T10:20:08+00:00", "2025-10-23T11:20:08+00:00"]
    rb.run("hooks", lambda: CheckResult("hooks", Status.PASS, "seen", {
        "window": window, "as_of": "2025-10-26T01:30:00+00:00", "day": "2025-10-23", "version": "2025-10-23T10:20",
        "last": [{"provider": "<calcom>", "last_at": "2025-10-23T09:56:02.5+00:00"}]}))
    md, page = rb.to_markdown(), rb.results[0].to_html()
    assert "- window: 2025-10-23 12:20 -> 13:20 CEST" in md and "<li>window: 2025-10-23 12:20 -&gt; 13:20 CEST</li>" in page
    assert "- as of: 2025-10-26 02:30:00 CET" in md  # the second 02:30 of the repeated hour: its zone tells which
    assert "- day: 2025-10-23" in md and "- version: 2025-10-23T10:20" in md  # no offset: not an instant
    assert "| &lt;calcom> | 2025-10-23 11:56:02 CEST |" in md and "<calcom>" not in md
    evidence = json.loads(rb.to_json())["checks"][0]["evidence"]
    assert evidence["window"] == window and evidence["last"][0]["last_at"] == "2025-10-23T09:56:02.5+00:00"


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
    assert data["verdict"] == "FAIL" and data["outcome"] == "found"
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
    assert metrics["verdict"] == "FAIL" and metrics["outcome"] == "found" and metrics["checks"] == {"Booking success": "FAIL"}
    assert metrics["key_numbers"] == {"checks FAIL": 1}  # what the run index shows: the checks by status
    assert "**Verdict: FAIL**" in (tmp_path / "signoff.md").read_text()
    assert json.loads((tmp_path / "signoff.json").read_text())["checks"][0]["name"] == "Booking success"


def test_runbook_on_a_database_without_required_tables_is_error(tmp_path):
    from rca_toolkit.runbooks import checks

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


# --------------------------------------------------------------------------- runbooks on the demo world (papermill)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _run_runbook(name: str, db_url: str, out, *params: str):
    from rca_toolkit import cli

    argv = ["runbook", name, "--out", str(out)] + (["--db", db_url] if db_url else [])
    for pair in params:
        argv += ["-p", *pair.split("=", 1)]
    code = cli.main(argv)
    (stem,) = [p.stem for p in (ROOT / "runbooks").glob(f"{name}-*.ipynb")]
    (run,) = (out / stem).iterdir()
    return code, run, json.loads((run / "signoff.json").read_text()) if (run / "signoff.json").exists() else None


def _check(signoff: dict, name: str) -> dict:
    return next(c for c in signoff["checks"] if c["name"] == name)


@pytest.mark.slow
def test_rb001_phase1_fails_on_the_book_appointment_path(demo_sqlite, tmp_path, capsys):
    url, truth = demo_sqlite
    code, run, signoff = _run_runbook("RB001", url, tmp_path, "deployed_at=2025-10-18T13:20:08+02:00")
    # the terminal says the verdict and why first (a CI log), within 100 columns, then where to read more
    printed = capsys.readouterr().out.splitlines()
    verdict = printed[:next(i for i, line in enumerate(printed) if line.startswith("checks: "))]
    assert verdict[0].startswith("FAIL: Booking success since the deploy: collect_appointment: ") and max(map(len, verdict)) <= 100
    assert "book_appointment: 0/" in " ".join(verdict) and f"report: {run / 'report.html'}" in printed
    booking = _check(signoff, "Booking success since the deploy")
    assert booking["status"] == "FAIL" and code == 1 and signoff["verdict"] == "FAIL"
    paths = {p["path"]: p for p in booking["evidence"]["paths"]}
    expected = truth["booking_attempts"]["book_appointment"]["after_partial_fix_5d"]
    assert paths["book_appointment"]["status"] == "FAIL" and paths["book_appointment"]["success"] == 0
    assert paths["book_appointment"]["attempts"] == expected["attempts"]
    assert "1054" in paths["book_appointment"]["top_failure"] or "created_by" in paths["book_appointment"]["top_failure"]
    collect = truth["booking_attempts"]["collect_appointment"]["after_partial_fix_5d"]
    assert paths["collect_appointment"]["attempts"] == collect["attempts"]
    assert paths["collect_appointment"]["success"] == collect["success"]
    assert paths["collect_appointment"]["status"] != "FAIL"
    md = (run / "signoff.md").read_text()
    assert f"book_appointment: 0/{expected['attempts']} succeeded (0.0 %) FAIL" in md
    assert "SYNTHETIC" in md and "What to do on failure" in md
    assert _check(signoff, "Required tables and columns")["status"] == "PASS"
    assert {s["name"] for s in signoff["skipped"]} == {"Redis reachable", "No phantom columns", "Recent log errors"}
    assert json.loads((run / "metrics.json").read_text())["verdict"] == "FAIL"
    html = (run / "report.html").read_text()
    assert "book_appointment" in html and "rb.run(" not in html


@pytest.mark.slow
def test_rb001_after_the_full_fix_passes_the_booking_checks(demo_sqlite, tmp_path):
    url, truth = demo_sqlite
    code, run, signoff = _run_runbook("RB001", url, tmp_path, "deployed_at=2025-11-14T12:00:00+01:00", "phase=Phase 2",
                                      "min_attempts=10")
    booking = _check(signoff, "Booking success since the deploy")
    assert booking["status"] in ("PASS", "WARN"), booking["summary"]
    assert all(p["status"] != "FAIL" and p["success_rate"] >= 0.9 for p in booking["evidence"]["paths"])
    assert signoff["phase"] == "Phase 2" and signoff["parameters"]["min_attempts"] == 10
    assert code == (1 if signoff["verdict"] == "FAIL" else 0 if signoff["verdict"] in ("PASS", "WARN") else 2)


@pytest.mark.slow
def test_runbook_on_a_database_lacking_a_required_table_is_error(tmp_path):
    path = tmp_path / "partial.sqlite"
    engine = db.make_engine(f"sqlite:///{path}", writable=True)
    schema.metadata.create_all(engine, tables=[t for n, t in schema.metadata.tables.items() if n != "retell_function_traces"])
    engine.dispose()
    code, run, signoff = _run_runbook("RB001", f"sqlite:///{path}", tmp_path / "out")
    assert code == 2 and signoff["verdict"] == "ERROR"
    required = _check(signoff, "Required tables and columns")
    assert required["status"] == "ERROR" and "retell_function_traces" in required["summary"]
    assert _check(signoff, "Booking success since the deploy")["status"] == "ERROR"
    assert not any(c["status"] == "PASS" for c in signoff["checks"] if c["name"].startswith("Booking"))


@pytest.mark.slow
def test_rb020_rb040_with_non_default_parameters(demo_sqlite, tmp_path):
    url, truth = demo_sqlite
    code, _, rb020 = _run_runbook("RB020", url, tmp_path, "since=2025-10-13T11:16:08+02:00", "until=2025-10-18T13:20:08+02:00")
    booking = {p["path"]: p for p in _check(rb020, "Booking success by path")["evidence"]["paths"]}
    phantom = truth["booking_attempts"]["collect_appointment"]["phantom_collect"]
    assert booking["collect_appointment"]["attempts"] == phantom["attempts"] and booking["collect_appointment"]["success"] == 0
    assert rb020["verdict"] == "FAIL" and code == 1
    reach = {f["family"]: f for f in _check(rb020, "Function reach rates")["evidence"]["families"]}
    assert reach["initialize_call"]["sessions"] > 0 and reach["initialize_call"]["status"] == "PASS"
    code, _, rb040 = _run_runbook("RB040", url, tmp_path, "since=2025-10-13T11:16:08+02:00", "until=2025-10-18T13:20:08+02:00")
    orphans = _check(rb040, "Orphans between Cal.com and appointments")
    assert orphans["evidence"]["calcom_without_local"] == (phantom["orphaned"]
                                                            + truth["booking_attempts"]["book_appointment"]["phantom_collect"]["orphaned"])
    assert orphans["status"] == "FAIL" and _check(rb040, "Duplicate Cal.com booking ids")["status"] == "PASS"
