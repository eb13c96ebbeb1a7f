"""A MariaDB user that HAS write grants (ALL on its database) runs the toolkit's read paths on a demo
world and a set of hostile statements through ``make_engine``: everything reads, every write or
lift is refused, and afterwards every table has the same row count and CHECKSUM TABLE.

test_db_gate.py shows each guard on a one-table probe; this runs the real loaders, a runbook and the
CLI (``rca quality``, ``rca compare``, ``rca timeline``) on a whole world, and tries the writes that
would matter there, including through a stored function and a sequence the data already holds.
"""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import DEMO_SEED, fresh_mariadb_database
from rca_toolkit import cli, demo
from rca_toolkit.errors import ConfigError, RcaError, WriteRefused
from rca_toolkit.runbooks import checks, framework
from rca_toolkit.sources import loaders
from rca_toolkit.sources.db import make_engine

pytestmark = pytest.mark.mariadb

AT = "2025-10-18T13:20:08+02:00"
SINCE, UNTIL = "2025-10-13T00:00:00+02:00", "2025-10-20T00:00:00+02:00"
# Statements a hostile parameter, notebook cell or bug could send; each would change the world if run.
HOSTILE = [
    "SET SESSION TRANSACTION READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "SET @@session.transaction_read_only = 0",
    "SET @@session.tx_read_only = OFF",
    "SET SESSION transaction_read_only = 0, @x = 1",
    "INSERT INTO migrations (migration, batch) VALUES ('rca_intruder', 999)",
    "REPLACE INTO migrations (id, migration, batch) SELECT id, migration, batch + 1 FROM migrations",
    "UPDATE appointments SET status = 'cancelled'",
    "DELETE FROM calls",
    "  -- a comment first\n  delete from webhook_events",
    "CREATE TABLE rca_intruder (x int)",
    "CREATE TEMPORARY TABLE rca_intruder (x int)",
    "CREATE VIEW rca_intruder AS SELECT 1 AS x",
    "DROP TABLE retell_call_events",
    "TRUNCATE TABLE retell_call_sessions",
    "ALTER TABLE calls DROP COLUMN raw",
    "RENAME TABLE calls TO calls_old",
    "SELECT 1; DELETE FROM calls",
    "SELECT 1;DELETE FROM calls;",
    "(SELECT 1); UPDATE calls SET duration_ms = 0",
    "/*!50000 DELETE FROM calls */",
    "/*M!100000 DELETE FROM calls */",
    "PREPARE s FROM 'DELETE FROM calls'",
    "EXECUTE s",
    "DO (SELECT COUNT(*) FROM calls)",
    "SELECT * FROM calls INTO OUTFILE '/tmp/rca_grants_calls.txt'",
    "LOCK TABLES calls WRITE",
    "HANDLER calls OPEN",
    "GRANT SELECT ON calls TO CURRENT_USER",
    "SELECT rca_evil()",  # a stored function the database holds: it INSERTs
    "SELECT NEXTVAL(rca_seq)",  # a sequence the database holds: NEXTVAL writes it
    "SELECT NEXT VALUE FOR rca_seq",
    "SELECT * FROM appointments WHERE id = rca_evil()",
]


def _fingerprint(admin: sa.Engine, database: str) -> dict:
    """Every table's row count and CHECKSUM TABLE, the view/routine/trigger lists and the sequence state."""
    with admin.connect() as conn:
        tables = sorted(r[0] for r in conn.execute(sa.text(f"SHOW FULL TABLES FROM `{database}`")))
        state = {"tables": tables}
        for table in tables:
            count = conn.execute(sa.text(f"SELECT COUNT(*) FROM `{database}`.`{table}`")).scalar()
            checksum = conn.execute(sa.text(f"CHECKSUM TABLE `{database}`.`{table}`")).fetchone()[1]
            state[table] = (count, checksum)
        for kind, sql in [("routines", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = :db"),
                          ("triggers", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = :db"),
                          ("views", "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = :db")]:
            state[kind] = sorted(r[0] for r in conn.execute(sa.text(sql), {"db": database}))
        state["sequence"] = conn.execute(sa.text(f"SELECT next_not_cached_value FROM `{database}`.rca_seq")).scalar()
    return state


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(admin engine, database, writer URL with its password, password, fingerprint before anything ran)."""
    with fresh_mariadb_database("rca_grants") as admin_url:
        demo.build(admin_url, seed=DEMO_SEED, truth_path=tmp_path_factory.mktemp("grants") / "truth.json", progress=False)
        admin = sa.create_engine(admin_url)
        url = sa.engine.make_url(admin_url)
        user = f"rca_writer_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        password = f"Wr@/{uuid.uuid4().hex[:6]}:%?#!"
        with admin.begin() as conn:
            conn.execute(sa.text("CREATE SEQUENCE rca_seq"))
            conn.execute(sa.text("CREATE FUNCTION rca_evil() RETURNS INT MODIFIES SQL DATA "
                                 "BEGIN INSERT INTO migrations (migration, batch) VALUES ('rca_evil', 998); RETURN 1; END"))
            conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
            conn.execute(sa.text(f"GRANT ALL ON `{url.database}`.* TO '{user}'@'%'"))
        writer = url.set(username=user, password=password).render_as_string(hide_password=False)
        try:
            yield admin, url.database, writer, password, _fingerprint(admin, url.database)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
            admin.dispose()


def test_the_user_really_can_write(world):
    """Without the gate (a plain SQLAlchemy engine) this user writes: the refusals below are the toolkit's."""
    admin, database, writer, _password, before = world
    plain = sa.create_engine(writer)
    with plain.connect() as conn:
        trans = conn.begin()
        conn.execute(sa.text("DELETE FROM calls"))
        assert conn.execute(sa.text("SELECT COUNT(*) FROM calls")).scalar() == 0
        trans.rollback()
    plain.dispose()
    assert _fingerprint(admin, database) == before


def test_loaders_and_a_runbook_read_through_the_writer(world):
    admin, database, writer, password, before = world
    engine = make_engine(writer)
    calls = loaders.calls(engine, start=SINCE, end=UNTIL)
    assert len(calls) > 100 and str(calls["started_at"].dtype).startswith("datetime64")
    assert len(loaders.appointments(engine, start=SINCE, end=UNTIL)) > 10
    assert len(loaders.webhook_events(engine, start=SINCE, end=UNTIL)) > 10
    assert len(loaders.function_traces(engine, start=SINCE, end=UNTIL)) > 10
    trace = loaders.call_trace(engine, calls["call_id"].iloc[0])
    assert trace.session is not None
    start, end = framework.window_after(SINCE, "", UNTIL)
    rb = framework.Runbook("RB040", "Data consistency", db=engine, parameters={"since": SINCE, "until": UNTIL})
    rb.run("Orphans between Cal.com and appointments", checks.booking_orphans, engine, start, end)
    rb.run("Duplicate Cal.com booking ids", checks.duplicate_booking_ids, engine)
    rb.run("Outcome vs appointment agreement", checks.outcome_disagreements, engine, start, end)
    rb.run("Stuck sessions", checks.stuck_sessions, engine, end, lookback="7d")
    rb.run("Booking success", checks.booking_success, engine, start, end)
    assert not [r for r in rb.results if getattr(r, "internal", False)], rb.to_markdown()
    assert all(password not in json.dumps(r.to_dict(), default=str) for r in rb.results)
    engine.dispose()
    assert _fingerprint(admin, database) == before


@pytest.mark.parametrize("argv", [
    ["quality", "--format", "json"],
    ["compare", "--at", AT, "--no-changepoints", "--format", "json"],
    ["timeline", "CALL_ID", "--format", "json"],
])
def test_cli_reads_through_the_writer(world, argv, capsys):
    admin, database, writer, password, before = world
    with admin.connect() as conn:  # a real call of the world, with its Retell object in calls.raw
        call_id = conn.execute(sa.text(f"SELECT retell_call_id FROM `{database}`.calls WHERE raw IS NOT NULL "
                                       "ORDER BY retell_call_id LIMIT 1")).scalar()
    code = cli.main([call_id if arg == "CALL_ID" else arg for arg in argv] + ["--db", writer])
    out, err = capsys.readouterr()
    assert code in (0, 1) and json.loads(out), err
    assert password not in out + err and quote(password, safe="") not in out + err
    assert "Traceback" not in err
    assert _fingerprint(admin, database) == before


def test_hostile_statements_are_refused_and_nothing_changes(world):
    admin, database, writer, password, before = world
    engine = make_engine(writer)
    for sql in HOSTILE:
        with pytest.raises((WriteRefused, sa.exc.DBAPIError)) as caught:  # the guard, or the READ ONLY session
            with engine.begin() as conn:
                conn.execute(sa.text(sql))
        if isinstance(caught.value, sa.exc.DBAPIError):
            assert caught.value.orig.args[0] in (1290, 1792), (sql, caught.value)
        with pytest.raises(RcaError) as through_toolkit:  # the toolkit's own read path says it in one line
            loaders.query(engine, sql, {})
        text = str(through_toolkit.value)
        assert isinstance(through_toolkit.value, WriteRefused), (sql, text)
        assert "\n" not in text and password not in text, text
        with engine.connect() as conn:  # the next checkout is read-only again, whatever was tried
            assert conn.execute(sa.text("SELECT @@session.tx_read_only")).scalar() == 1, sql
    with pytest.raises(WriteRefused):  # pandas writing through the engine
        pd.DataFrame({"x": [1]}).to_sql("rca_intruder", engine, index=False)
    raw = engine.raw_connection()  # even the bare driver connection of a checkout is a READ ONLY session
    try:
        with raw.cursor() as cur:
            with pytest.raises(Exception, match="READ ONLY"):
                cur.execute("DELETE FROM calls")
    finally:
        raw.close()
    engine.dispose()
    assert _fingerprint(admin, database) == before


@pytest.mark.parametrize("option", ["init_command=DELETE%20FROM%20calls", "INIT_COMMAND=DELETE%20FROM%20calls",
                                    "init_command=SET%20SESSION%20TRANSACTION%20READ%20WRITE",
                                    "charset=utf8mb4&init_command=DROP%20TABLE%20calls",
                                    "read_default_file=/etc/mysql/my.cnf", "autocommit=1", "client_flag=65536"])
def test_url_options_that_run_sql_are_refused(world, option):
    admin, database, writer, password, before = world
    with pytest.raises(ConfigError, match="is refused") as caught:
        make_engine(f"{writer}?{option}")
    assert "\n" not in str(caught.value) and password not in str(caught.value)
    code = cli.main(["quality", "--db", f"{writer}?{option}"])
    assert code == 2
    assert _fingerprint(admin, database) == before
