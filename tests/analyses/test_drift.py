"""Phantom-column drift on the Laravel fixture, before and after the fix, on SQLite and MariaDB.

The expected findings are read off the fixture files (see tests/fixtures/laravel_*/README.md):
every (table, column, file, line, shape, effect) tuple is asserted, not just counts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import fresh_mariadb_database
from rca_toolkit import cli
from rca_toolkit.sources import db
from rca_toolkit.analyses.code import drift
from rca_toolkit.errors import SchemaError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
BEFORE, AFTER = FIXTURES / "laravel_before", FIXTURES / "laravel_after"
SPEC = json.loads((FIXTURES / "laravel_schema.json").read_text())
PHANTOMS = ["created_by", "booking_source", "booked_by_user_id", "cancelled_by", "cancellation_source",
            "rescheduled_by", "reschedule_source", "previous_starts_at"]

R, D = drift.RAISES, drift.DROPPED
SVC = "app/Services/Retell/AppointmentCreationService.php"
RFH = "app/Http/Controllers/RetellFunctionCallHandler.php"
CAL = "app/Http/Controllers/CalcomWebhookController.php"
API = "app/Http/Controllers/RetellApiController.php"
BACKFILL = "database/scripts/backfill_missing_appointments.php"
A = "appointments"

AFTER_FINDINGS = {
    (A, "created_by", RFH, 46, "forceFill", R),
    (A, "booking_source", RFH, 46, "forceFill", R),
    (A, "booked_by_user_id", RFH, 47, "forceFill", R),
}
BEFORE_FINDINGS = AFTER_FINDINGS | {
    (A, "created_by", SVC, 36, "forceFill", R),
    (A, "booking_source", SVC, 37, "forceFill", R),
    (A, "booked_by_user_id", SVC, 38, "forceFill", R),
    (A, "created_by", CAL, 46, "updateOrCreate", D),
    (A, "booking_source", CAL, 47, "updateOrCreate", D),
    (A, "cancelled_by", CAL, 59, "update", D),
    (A, "cancellation_source", CAL, 60, "update", D),
    (A, "previous_starts_at", CAL, 72, "update", D),
    (A, "rescheduled_by", CAL, 73, "update", D),
    (A, "reschedule_source", CAL, 74, "update", D),
    (A, "cancelled_by", API, 20, "update", D),
    (A, "cancellation_source", API, 21, "update", D),
    (A, "previous_starts_at", API, 32, "update", D),
    (A, "rescheduled_by", API, 33, "update", D),
    (A, "created_by", BACKFILL, 29, "forceFill", R),
    (A, "booking_source", BACKFILL, 30, "forceFill", R),
    (A, "booked_by_user_id", BACKFILL, 33, "db_table_update", R),
    (A, "booking_source", BACKFILL, 39, "db_table_insert", R),
    (A, "booking_source", BACKFILL, 40, "db_table_insert", R),
}
CHECKED = ["appointments", "calls", "customers", "retell_call_sessions", "webhook_events"]
_TYPES = {"bigint": sa.BigInteger, "int": sa.Integer, "varchar": lambda: sa.String(255), "text": sa.Text,
          "timestamp": sa.DateTime, "json": sa.JSON, "bool": sa.Boolean, "uuid": lambda: sa.String(36)}


def build_fixture_schema(url: str, *, with_phantoms: bool = False) -> None:
    """Create the fixture app's tables (tests/fixtures/laravel_schema.json) in a scratch database."""
    metadata = sa.MetaData()
    for table, columns in SPEC.items():
        if table.startswith("_"):
            continue
        cols = []
        for c in columns:
            if c["type"] == "pk":
                cols.append(sa.Column(c["name"], sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True))
            else:
                cols.append(sa.Column(c["name"], _TYPES[c["type"]](), nullable=c.get("nullable", True),
                                      server_default=c.get("default")))
        if table == "appointments" and with_phantoms:
            cols += [sa.Column(name, sa.String(255), nullable=True) for name in PHANTOMS]
        sa.Table(table, metadata, *cols)
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def laravel_sqlite(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("laravel") / "app.sqlite"
    build_fixture_schema(f"sqlite:///{path}")
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def laravel_mariadb():
    """The fixture schema in a MariaDB database of this test session's own, dropped afterwards."""
    with fresh_mariadb_database("rca_drift") as url:
        build_fixture_schema(url)
        yield url


@pytest.fixture(scope="session", params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def laravel_db(request) -> str:
    return request.getfixturevalue(f"laravel_{request.param}")


def report_for(code: Path, url: str, tables=None) -> drift.DriftReport:
    engine = db.make_engine(url)
    try:
        return drift.find_drift(drift.scan_code(code), db.introspect(engine), tables=tables)
    finally:
        engine.dispose()


def test_before_reports_every_phantom_write_with_its_effect(laravel_db):
    report = report_for(BEFORE, laravel_db)
    assert report.findings() == BEFORE_FINDINGS
    assert len(report.phantom_columns) == 22
    assert report.checked_tables == CHECKED
    assert set(report.missing_required[["table", "column", "file", "line", "shape"]].itertuples(index=False, name=None)) \
        == {(A, "customer_id", BACKFILL, 38, "db_table_insert")}
    assert report.missing_tables.empty
    assert report.raises_at_runtime
    by_column = report.by_column().set_index("column")
    assert by_column.loc["booking_source", ["sites", "raises", "dropped"]].tolist() == [6, 5, 1]


def test_after_reports_only_the_site_left_unfixed(laravel_db):
    report = report_for(AFTER, laravel_db)
    assert report.findings() == AFTER_FINDINGS
    assert set(report.phantom_columns["site"]) == {"RetellFunctionCallHandler::bookAppointment"}
    assert report.missing_required.empty
    assert report.raises_at_runtime


def test_no_findings_when_the_columns_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 'with_phantoms.sqlite'}"
    build_fixture_schema(url, with_phantoms=True)
    report = report_for(AFTER, url)
    assert report.phantom_columns.empty and report.missing_required.empty
    assert not report.raises_at_runtime
    assert report.writes_checked == 63


def test_table_filter_and_unknown_table(laravel_sqlite):
    report = report_for(BEFORE, laravel_sqlite, tables=["calls", "customers"])
    assert report.checked_tables == ["calls", "customers"]
    assert report.phantom_columns.empty and not report.raises_at_runtime
    with pytest.raises(SchemaError, match="not_a_table"):
        report_for(BEFORE, laravel_sqlite, tables=["not_a_table"])


def test_table_missing_from_schema_is_a_finding(tmp_path):
    url = f"sqlite:///{tmp_path / 'partial.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE appointments (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    report = report_for(AFTER, url)
    assert "retell_call_sessions" in set(report.missing_tables["table"])
    assert report.raises_at_runtime


def test_fixture_appointments_is_the_e1_schema():
    schema = pytest.importorskip("rca_toolkit.sources.schema")
    assert {c["name"] for c in SPEC["appointments"]} == set(schema.appointments.columns.keys())
    assert not set(schema.PHANTOM_APPOINTMENT_COLUMNS) & {c["name"] for c in SPEC["appointments"]}


def test_report_renderings(laravel_sqlite):
    report = report_for(AFTER, laravel_sqlite)
    data = report.to_dict()
    assert {(p["table"], p["column"], p["file"], p["line"], p["shape"], p["effect"]) for p in data["phantom_columns"]} \
        == AFTER_FINDINGS
    assert json.loads(report.to_json())["checked_tables"] == CHECKED
    assert "| appointments | booked_by_user_id | app/Http/Controllers/RetellFunctionCallHandler.php |" \
        in report.to_markdown()
    assert "<h4>Phantom columns</h4>" in report._repr_html_()


# ---- CLI -----------------------------------------------------------------------------------

def run_cli(capsys, *argv):
    code = cli.main(["drift", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_before_and_after(laravel_db, capsys):
    code, out, _ = run_cli(capsys, "--code", str(BEFORE), "--db", laravel_db, "--format", "json")
    data = json.loads(out)
    assert code == 1
    assert {(p["table"], p["column"], p["file"], p["line"], p["shape"], p["effect"])
            for p in data["phantom_columns"]} == BEFORE_FINDINGS
    assert data["checked_tables"] == CHECKED
    assert [(m["column"], m["file"], m["line"]) for m in data["missing_required"]] == [("customer_id", BACKFILL, 38)]
    assert "://" in data["database"] and data["notes"]

    code, out, _ = run_cli(capsys, "--code", str(AFTER), "--db", laravel_db, "--format", "json")
    assert code == 1
    assert {(p["column"], p["line"]) for p in json.loads(out)["phantom_columns"]} == {
        ("created_by", 46), ("booking_source", 46), ("booked_by_user_id", 47)}


def test_cli_text_and_exit_codes(laravel_sqlite, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "--code", str(AFTER), "--db", laravel_sqlite)
    assert code == 1
    assert ("  appointments.booked_by_user_id  app/Http/Controllers/RetellFunctionCallHandler.php:47  forceFill  "
            "RetellFunctionCallHandler::bookAppointment  -> raises 1054 at runtime") in out.splitlines()
    assert "phantom columns: 3 writes of 3 columns" in out

    code, out, _ = run_cli(capsys, "--code", str(BEFORE), "--db", laravel_sqlite, "--table", "calls")
    assert code == 0 and "phantom columns: none" in out

    code, _, err = run_cli(capsys, "--code", str(tmp_path / "missing"), "--db", laravel_sqlite)
    assert code == 2 and "code path" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "--code", str(AFTER), "--db", laravel_sqlite, "--table", "nope")
    assert code == 2 and "nope" in err
    code, _, err = run_cli(capsys, "--code", str(AFTER), "--db", "mysql+pymysql://root@127.0.0.1:1/x")
    assert code == 2 and "cannot connect" in err
    code, _, err = run_cli(capsys, "--code", str(AFTER), "--db", f"sqlite:///{tmp_path / 'absent.sqlite'}")
    assert code == 2 and "does not exist" in err


# ---- runbook checks and RB010 --------------------------------------------------------------

def test_runbook_checks_compute_status_from_findings(laravel_sqlite, tmp_path):
    from rca_toolkit.runbooks import code_checks
    from rca_toolkit.runbooks.framework import Status

    before = code_checks.check_code_writes(str(BEFORE), laravel_sqlite, "appointments")
    assert (before.status, before.evidence["phantom_writes"], before.evidence["raising_writes"]) == (Status.FAIL, 22, 11)
    assert before.summary == "22 writes of columns missing from the schema at 10 sites, 11 raise 1054"
    columns = code_checks.check_schema_columns(str(BEFORE), laravel_sqlite, "appointments")
    assert columns.status == Status.FAIL
    assert {c["column"] for c in columns.evidence["missing_columns"]} == set(PHANTOMS)
    assert [(r["column"], r["line"]) for r in columns.evidence["required_never_set"]] == [("customer_id", 38)]

    # Only silently dropped writes: WARN, not PASS and not FAIL.
    app = tmp_path / "app"
    shutil.copytree(BEFORE / "app" / "Models", app / "app" / "Models")
    shutil.copy(BEFORE / "app/Http/Controllers/RetellApiController.php", app / "RetellApiController.php")
    dropped = code_checks.check_code_writes(str(app), laravel_sqlite)
    assert (dropped.status, dropped.evidence["phantom_writes"], dropped.evidence["raising_writes"]) == (Status.WARN, 4, 0)

    with_columns = f"sqlite:///{tmp_path / 'with_phantoms.sqlite'}"
    build_fixture_schema(with_columns, with_phantoms=True)
    assert code_checks.check_code_writes(str(AFTER), with_columns).status == Status.PASS
    assert code_checks.check_schema_columns(str(AFTER), with_columns).status == Status.PASS


@pytest.mark.slow
def test_rb010_runbook_runs_with_parameters(tmp_path):
    """papermill run of RB010 on the after state: the unfixed site fails, the migrations pass."""
    from rca_toolkit.runs.runner import run_notebook

    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    build_fixture_schema(url)
    files = sorted(p.stem for p in (AFTER / "database" / "migrations").glob("*.php"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO migrations (id, migration, batch) VALUES (:id, :m, :b)"),
                     [{"id": i + 1, "m": name, "b": 1 + i // 3} for i, name in enumerate(files)])
    engine.dispose()
    run = run_notebook(ROOT / "runbooks" / "RB010-phantom-columns.ipynb",
                                 {"code_path": str(AFTER), "reference_date": "2025-10-20"}, db=url, out_dir=tmp_path / "runs")
    assert run.status == "ok", run.error
    assert run.metrics["verdict"] == "FAIL" and run.metrics["outcome"] == "found"
    assert run.metrics["checks"] == {
        "No code writes a column the schema lacks (seed method 1)": "FAIL",
        "Every written column exists in the schema (seed method 2)": "FAIL",
        "No pending migrations, no ran migration without its file": "PASS",
        "Migration names are clean (format, future dates, duplicates, order)": "PASS",
    }
    signoff = (run.run_dir / "signoff.md").read_text()
    assert "3 writes of columns missing from the schema at 1 site, 3 raise 1054" in signoff
    assert "| appointments | booked_by_user_id | app/Http/Controllers/RetellFunctionCallHandler.php | 47 |" in signoff


def test_code_without_writes_verifies_nothing(laravel_sqlite, tmp_path, capsys):
    from rca_toolkit.runbooks import code_checks
    from rca_toolkit.runbooks.framework import Status

    (tmp_path / "index.php").write_text("<?php\n// $a->forceFill(['created_by' => 1]);\necho 'hello';\n")
    report = report_for(tmp_path, laravel_sqlite)
    assert report.phantom_columns.empty and report.checked_tables == [] and report.writes_checked == 0
    assert code_checks.check_code_writes(str(tmp_path), laravel_sqlite).status == Status.WARN
    assert code_checks.check_schema_columns(str(tmp_path), laravel_sqlite).status == Status.WARN
    code, out, _ = run_cli(capsys, "--code", str(tmp_path), "--db", laravel_sqlite, "--format", "json")
    assert code == 0 and json.loads(out)["phantom_columns"] == []
