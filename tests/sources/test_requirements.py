"""Declared requirements (rca_toolkit.sources.requirements): every declaration is enforced by its entry point.

The walk: every module of ``sources``, ``analyses`` and ``runbooks`` with a ``REQUIRES`` mapping declares,
per entry point, the tables and columns it reads. For each required column (and each table) the demo world
is copied without it, and every entry point that declares it must raise ``SchemaError`` naming the table,
the column and what needed it, before any statement runs (the requirement's own message, not a driver
error). A declaration without an entry point below fails the suite, so new code is walked too.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import shutil
import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import fresh_mariadb_database
from rca_toolkit.errors import SchemaError
from rca_toolkit.sources import loaders, requirements, schema as contract
from rca_toolkit.sources.db import TableInfo, make_engine
from rca_toolkit.sources.requirements import Requirement

S, E = "2025-10-13T00:00:00+02:00", "2025-10-20T00:00:00+02:00"
AT = "2025-10-18T13:20:08+02:00"
CALL = "call_ab45deadd7db66c4956d5243861"
PACKAGES = ("rca_toolkit.sources", "rca_toolkit.analyses", "rca_toolkit.runbooks")


def _declarations() -> dict[str, tuple[Requirement, ...]]:
    found = {}
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            module = importlib.import_module(info.name)
            declared = getattr(module, "REQUIRES", None)
            if isinstance(declared, dict):
                found.update({f"{info.name}:{key}": requirements.flatten(reqs) for key, reqs in declared.items()})
    return found


def _windows():
    at = pd.Timestamp(AT).tz_convert("UTC")
    return {"before": (at - pd.Timedelta(days=5), at - pd.Timedelta(minutes=30)),
            "after": (at + pd.Timedelta(minutes=30), at + pd.Timedelta(days=5))}


def _entry_points() -> dict:
    """How each declaring entry point is called on the demo world (``db`` is an Engine)."""
    from rca_toolkit.analyses.bookings import counts, outcomes
    from rca_toolkit.analyses.calls import timeline
    from rca_toolkit.analyses.code import migrations
    from rca_toolkit.analyses.compare import before_after
    from rca_toolkit.analyses.health import data as health_data, report as health_report
    from rca_toolkit.runbooks import checks, code_checks
    from rca_toolkit.sources import aggregates, attempt_inputs

    def incident(detect: bool):
        from rca_toolkit.analyses.incident import build
        return lambda db: build.incident(db, "Unknown column 'created_by'", since=S, until=E, detect=detect)

    return {
        "rca_toolkit.sources.aggregates:plan": lambda db: aggregates.plan(db, windows=_windows(), as_of=_windows()["after"][1]),
        "rca_toolkit.sources.attempt_inputs:load": lambda db: attempt_inputs.load(db, start=S, end=E),
        "rca_toolkit.sources.loaders:calls": lambda db: loaders.calls(db, start=S, end=E),
        "rca_toolkit.sources.loaders:call_trace": lambda db: loaders.call_trace(db, CALL),
        "rca_toolkit.sources.loaders:function_traces": lambda db: loaders.function_traces(db, start=S, end=E),
        "rca_toolkit.sources.loaders:errors": lambda db: loaders.errors(db, start=S, end=E),
        "rca_toolkit.sources.loaders:appointments": lambda db: loaders.appointments(db, start=S, end=E),
        "rca_toolkit.sources.loaders:booking_id_duplicates": loaders.booking_id_duplicates,
        "rca_toolkit.sources.loaders:webhook_events": lambda db: loaders.webhook_events(db, start=S, end=E),
        "rca_toolkit.sources.loaders:migrations": loaders.migrations,
        "rca_toolkit.sources.loaders:laravel_log": loaders.laravel_log,
        "rca_toolkit.analyses.bookings.counts:attempt_counts": lambda db: counts.attempt_counts(db, start=S, end=E),
        "rca_toolkit.analyses.bookings.outcomes:booking_attempts": lambda db: outcomes.booking_attempts(db, start=S, end=E),
        "rca_toolkit.analyses.calls.timeline:load_timeline": lambda db: timeline.load_timeline(CALL, db=db),
        "rca_toolkit.analyses.code.migrations:load_history": migrations.load_history,
        "rca_toolkit.analyses.compare.before_after:before_after": lambda db: before_after.before_after(db, at=AT),
        "rca_toolkit.analyses.health.data:load_counts": lambda db: health_data.load_counts(db, "2025-10-14", "1d"),
        "rca_toolkit.analyses.health.report:health": lambda db: health_report.health(db, "2025-10-14", "1d"),
        "rca_toolkit.analyses.incident.build:incident": incident(detect=False),
        "rca_toolkit.analyses.incident.build:detection": incident(detect=True),
        "rca_toolkit.runbooks.activity_checks:webhook_freshness": lambda db: checks.webhook_freshness(db, E),
        "rca_toolkit.runbooks.activity_checks:failed_webhooks": lambda db: checks.failed_webhooks(db, S, E),
        "rca_toolkit.runbooks.activity_checks:stuck_sessions": lambda db: checks.stuck_sessions(db, E),
        "rca_toolkit.runbooks.booking_checks:booking_success": lambda db: checks.booking_success(db, S, E),
        "rca_toolkit.runbooks.booking_checks:reach_rates": lambda db: checks.reach_rates(db, S, E),
        "rca_toolkit.runbooks.booking_checks:booking_before_after": lambda db: checks.booking_before_after(db, S, E),
        "rca_toolkit.runbooks.code_checks:check_pending": lambda db: code_checks.check_pending(db),
        "rca_toolkit.runbooks.code_checks:check_names": lambda db: code_checks.check_names(db),
        "rca_toolkit.runbooks.consistency_checks:booking_orphans": lambda db: checks.booking_orphans(db, S, E),
        "rca_toolkit.runbooks.consistency_checks:duplicate_booking_ids": checks.duplicate_booking_ids,
        "rca_toolkit.runbooks.consistency_checks:outcome_disagreements": lambda db: checks.outcome_disagreements(db, S, E),
    }


DECLARED = _declarations()
ENTRY_POINTS = _entry_points()
COLUMNS = sorted({(t, c) for reqs in DECLARED.values() for t, c, _ in requirements.required_columns(reqs)})
TABLES = sorted({r.table for reqs in DECLARED.values() for r in reqs if r.table_required})


def _info(table: str, columns) -> TableInfo:
    return TableInfo(table, {c: "TEXT" for c in columns})


# --------------------------------------------------------------------------- the check itself
def test_a_missing_required_column_names_table_column_and_why():
    schema = {"calls": _info("calls", ["id", "retell_call_id"])}
    need = Requirement("calls", ["id", "session_outcome"], "RB040's outcome check")
    with pytest.raises(SchemaError) as caught:
        requirements.check(schema, need)
    assert caught.value.message == "table 'calls' lacks session_outcome (needed by RB040's outcome check)"
    assert "schema" in caught.value.hint


def test_every_missing_table_and_column_is_named_once_grouped_by_table():
    schema = {"calls": _info("calls", ["id"]), "webhook_events": _info("webhook_events", ["id"])}
    reqs = (Requirement("calls", ["id", "status", "raw"], "a"), Requirement("calls", ["status"], "b"),
            Requirement("appointments", ["id"], "c"), Requirement("webhook_events", ["id"], "d", one_of=["provider", "source"]))
    with pytest.raises(SchemaError) as caught:
        requirements.check(schema, reqs)
    assert caught.value.message.split("; ") == [
        "table 'calls' lacks status, raw (needed by a, b)",
        "table 'webhook_events' lacks one of provider/source (needed by d)",
        "tables missing: appointments (needed by c)"]


def test_a_table_lacking_most_columns_is_one_capped_line_naming_it_once():
    """``rca quality`` on a retell_call_sessions with only id and call_id: eight entry points need it."""
    columns = [c.name for c in contract.metadata.tables["retell_call_sessions"].columns]
    schema = {"retell_call_sessions": _info("retell_call_sessions", ["id", "call_id"])}
    whys = [f"the health report (sessions, stuck and cleanup-closed counts), part {n}" for n in range(8)]
    reqs = [Requirement("retell_call_sessions", columns, why) for why in whys]
    reqs += [Requirement("calls", ["id"], whys[0]), Requirement("appointments", ["id"], "c")]
    with pytest.raises(SchemaError) as caught:
        requirements.check(schema, reqs)
    message = caught.value.message
    lacking = [c for c in columns if c not in ("id", "call_id")]
    assert len(message) <= requirements.LIMIT and "\n" not in message
    assert message.count("retell_call_sessions") == 1 and message.count(whys[0]) == 1
    shown = re.fullmatch(r"table 'retell_call_sessions' lacks (.+) \.\.\. and (\d+) more \(needed by (.+)\)", message)
    assert shown, message
    named = shown.group(1).split(", ")
    assert named == lacking[:len(named)] and len(named) >= 5
    assert int(shown.group(2)) == len(lacking) - len(named) + 2  # the columns not named, and the two tables
    assert shown.group(3) == whys[0] + " and 7 more"  # the whys capped too, each named once at most


def test_a_short_list_is_named_whole():
    schema = {"retell_call_sessions": _info("retell_call_sessions", ["id", "call_id"])}
    reqs = [Requirement("retell_call_sessions", ["id", "company_id", "started_at"], why) for why in ("x", "y", "x")]
    with pytest.raises(SchemaError) as caught:
        requirements.check(schema, reqs, Requirement("calls", ["id"], "z"), Requirement("branches", ["id"], "z"))
    assert caught.value.message == ("table 'retell_call_sessions' lacks company_id, started_at (needed by x, y); "
                                    "tables missing: calls, branches (needed by z)")


def test_absent_optional_columns_are_returned_and_described_required_wins():
    schema = {"calls": _info("calls", ["id", "status"])}
    reqs = (Requirement("calls", ["id"], "a", optional=["deleted_at", "status"], if_absent="nothing counts as deleted"),
            Requirement("calls", ["id"], "b", optional=["raw"]), Requirement("appointments", (), "c", optional=["metadata"]))
    absent = requirements.check(schema, reqs)
    assert absent == {"calls": ["deleted_at", "raw"], "appointments": ["metadata"]}
    assert requirements.absent_notes(absent, reqs) == [
        "calls.deleted_at absent: nothing counts as deleted", "calls.raw absent: left out, not assumed",
        "appointments.metadata absent: left out, not assumed"]
    with pytest.raises(SchemaError) as caught:  # required by another declaration: required
        requirements.check(schema, reqs, Requirement("calls", ["raw"], "d"))
    assert caught.value.message == "table 'calls' lacks raw (needed by d)"


def test_every_declaration_has_an_entry_point_here():
    assert DECLARED, "no REQUIRES found"
    assert sorted(set(DECLARED) - set(ENTRY_POINTS)) == [], "add how the new entry point is called to _entry_points()"
    assert sorted(set(ENTRY_POINTS) - set(DECLARED)) == [], "an entry point here no longer declares REQUIRES"


def test_the_declared_columns_exist_in_the_data_contract():
    """A declaration names real columns (a typo would make an entry point fail on every database)."""
    extra = {"laravel_log": set(loaders.LOG_COLUMNS)}  # ours, written by rca import
    unknown = [(t, c) for t, c in COLUMNS
               if c not in ({col.name for col in contract.metadata.tables[t].columns} if t in contract.metadata.tables
                            else extra.get(t, set()))]
    assert unknown == []


# --------------------------------------------------------------------------- the walk over the demo world
@pytest.fixture(scope="module")
def base_world(demo_sqlite, tmp_path_factory) -> str:
    """The demo world plus an (empty) imported-log table, so every declared table exists."""
    from rca_toolkit.sources import importer

    path = tmp_path_factory.mktemp("requirements") / "base.sqlite"
    shutil.copy(demo_sqlite[0].removeprefix("sqlite:///"), path)
    engine = sa.create_engine(f"sqlite:///{path}")
    importer.laravel_log.create(engine)
    engine.dispose()
    return str(path)


def drop_column(path, table: str, column: str) -> None:
    """``ALTER TABLE ... DROP COLUMN`` (its indexes first); a column SQLite cannot drop (UNIQUE, PRIMARY KEY)
    by rebuilding the table without it."""
    with sqlite3.connect(path) as conn:
        for name, in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                                  (table,)).fetchall():
            if column in [row[2] for row in conn.execute(f"PRAGMA index_info('{name}')")]:
                conn.execute(f'DROP INDEX "{name}"')
        try:
            conn.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        except sqlite3.OperationalError:
            keep = ", ".join(f'"{row[1]}"' for row in conn.execute(f"PRAGMA table_info('{table}')") if row[1] != column)
            conn.execute(f'CREATE TABLE "_rebuilt" AS SELECT {keep} FROM "{table}"')
            conn.execute(f'DROP TABLE "{table}"')
            conn.execute(f'ALTER TABLE "_rebuilt" RENAME TO "{table}"')


def _world_without(base_world: str, tmp_path, change) -> sa.Engine:
    path = tmp_path / "world.sqlite"
    shutil.copy(base_world, path)
    change(str(path))
    return loaders.engine_for(f"sqlite:///{path}")


@pytest.mark.parametrize("table, column", COLUMNS, ids=[f"{t}.{c}" for t, c in COLUMNS])
def test_an_entry_point_without_a_required_column_raises_schema_error_naming_it(base_world, tmp_path, table, column):
    engine = _world_without(base_world, tmp_path, lambda path: drop_column(path, table, column))
    entries = [e for e, reqs in DECLARED.items() if (table, column) in {(t, c) for t, c, _ in requirements.required_columns(reqs)}]
    assert entries
    _each_refuses(engine, entries, rf"table {table!r} lacks {column} \(needed by .+\)")


@pytest.mark.parametrize("table", TABLES)
def test_an_entry_point_without_a_required_table_raises_schema_error_naming_it(base_world, tmp_path, table):
    def drop(path):
        with sqlite3.connect(path) as conn:
            conn.execute(f'DROP TABLE "{table}"')

    engine = _world_without(base_world, tmp_path, drop)
    entries = [e for e, reqs in DECLARED.items() if any(r.table == table and r.table_required for r in reqs)]
    _each_refuses(engine, entries, rf"tables missing: {table} \(needed by .+\)")


def _each_refuses(engine, entries, message: str) -> None:
    """Every entry point in ``entries`` raises a SchemaError whose message is ``message`` (a regex) on ``engine``."""
    for entry in entries:
        with pytest.raises(SchemaError) as caught:
            ENTRY_POINTS[entry](engine)
        assert re.fullmatch(message, caught.value.message), (entry, caught.value.message)
    engine.dispose()


# --------------------------------------------------------------------------- MariaDB
@pytest.mark.mariadb
def test_mariadb_empty_contract_is_no_verdict_and_a_dropped_column_is_an_error_before_any_statement():
    from rca_toolkit.runbooks import checks
    from rca_toolkit.runbooks.framework import Status, run_check

    with fresh_mariadb_database("rca_reqs") as url:
        admin = make_engine(url, writable=True)
        contract.metadata.create_all(admin)
        engine = loaders.engine_for(url)
        empty = checks.outcome_disagreements(engine, S, E)  # every column there, no row: 0 of 0
        assert empty.status == Status.WARN and empty.summary.startswith("not enough data")
        with admin.begin() as conn:
            conn.execute(sa.text("ALTER TABLE calls DROP COLUMN session_outcome"))
        admin.dispose()
        engine.dispose()
        engine = loaders.engine_for(url)  # a fresh engine reads the changed schema
        statements = []
        sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        with pytest.raises(SchemaError, match=r"^table 'calls' lacks session_outcome \(needed by RB040"):
            checks.outcome_disagreements(engine, S, E)
        assert not [s for s in statements if "calls" in s and "information_schema" not in s.lower()
                    and not s.lstrip().upper().startswith(("SHOW", "DESCRIBE"))]
        result = run_check("Outcome vs appointment agreement", checks.outcome_disagreements, engine, S, E)
        assert result.status == Status.ERROR and "session_outcome" in result.summary
        engine.dispose()
