"""The one database gate (sources/db.make_engine): secrets, refused options, read-only on every
checkout, SQLite's authorizer, timeouts against a silent server, one-line errors.

The MariaDB user here HAS write grants on its database: everything it cannot do is the gate's work.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import assume, given, settings as hyp_settings, strategies as st

from conftest import fresh_mariadb_database
from rca_toolkit.config import Settings
from rca_toolkit.errors import ConfigError, ConnectionFailed, InputFormatError, SchemaError, WriteRefused
from rca_toolkit.sources import loaders
from rca_toolkit.sources.db import check_connection, make_engine, redact_text, redact_url

LIFTS_AND_WRITES = [
    "INSERT INTO probe VALUES (99)",
    "UPDATE probe SET x = 98",
    "DELETE FROM probe",
    "REPLACE INTO probe VALUES (97)",
    "CREATE TABLE other (x int)",
    "DROP TABLE probe",
    "ALTER TABLE probe ADD COLUMN y int",
    "TRUNCATE TABLE probe",
    "GRANT SELECT ON probe TO CURRENT_USER",
    "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE probe",
    "CALL nothing()",
    "HANDLER probe OPEN",
    "LOCK TABLES probe WRITE",
    "SELECT x FROM probe INTO OUTFILE '/tmp/rca_gate_probe.txt'",
    "SELECT x FROM probe INTO DUMPFILE '/tmp/rca_gate_probe.bin'",
    "SET GLOBAL max_connections = 1000",
    "SET SESSION TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET SESSION tx_read_only = 0",
    "SET SESSION transaction_read_only = 0",
    "SET @@session.transaction_read_only = OFF",
    "/*!50000 INSERT INTO probe VALUES (96) */",
    "SELECT 1; INSERT INTO probe VALUES (95)",
]


@pytest.fixture(scope="module")
def writer():
    """(admin engine, URL of a user WITH write grants on its own database, its password)."""
    with fresh_mariadb_database("rca_gate") as admin_url:
        admin = sa.create_engine(admin_url)
        url = sa.engine.make_url(admin_url)
        user, password = f"rca_w_{uuid.uuid4().hex[:8]}", f"Pw@/{uuid.uuid4().hex[:6]}:%?#x"
        with admin.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (x int)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (1), (2)"))
            conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
            conn.execute(sa.text(f"GRANT ALL ON `{url.database}`.* TO '{user}'@'%'"))
        try:
            yield admin, url.set(username=user, password=None), password
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
            admin.dispose()


def _rows(admin: sa.Engine) -> list[int]:
    with admin.connect() as conn:
        return [r.x for r in conn.execute(sa.text("SELECT x FROM probe ORDER BY x"))]


def _plain(url: sa.engine.URL) -> str:
    return url.render_as_string(hide_password=False)


@pytest.mark.mariadb
def test_a_user_with_write_grants_cannot_write_or_lift_read_only(writer):
    admin, url, password = writer
    full = _plain(url.set(password=password))
    with make_engine(full, writable=True).begin() as conn:  # the grants are real: a scratch engine writes
        conn.execute(sa.text("INSERT INTO probe VALUES (3)"))
        conn.execute(sa.text("DELETE FROM probe WHERE x = 3"))
    engine = make_engine(full)
    for sql in LIFTS_AND_WRITES:
        with pytest.raises(WriteRefused) as caught:
            with engine.begin() as conn:
                conn.execute(sa.text(sql))
        assert "\n" not in str(caught.value) and "refused on the read-only database" in str(caught.value), sql
        with engine.begin() as conn:  # every later checkout is still read-only
            assert conn.execute(sa.text("SELECT @@session.tx_read_only")).scalar() == 1, sql
    assert _rows(admin) == [1, 2]
    with admin.connect() as conn:
        assert conn.execute(sa.text("SHOW TABLES")).scalars().all() == ["probe"]


@pytest.mark.mariadb
def test_read_only_is_reasserted_on_every_checkout(writer):
    """A session made writable behind the gate's back (the raw driver) is read-only on the next checkout."""
    admin, url, password = writer
    engine = make_engine(_plain(url.set(password=password)))
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION READ WRITE")
            cur.execute("SELECT @@session.tx_read_only")
            assert cur.fetchone()[0] == 0
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is raw  # the same pooled session
        assert conn.execute(sa.text("SELECT @@session.tx_read_only")).scalar() == 1
    with pytest.raises(WriteRefused):
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO probe VALUES (9)"))
    assert _rows(admin) == [1, 2]


@pytest.mark.mariadb
@pytest.mark.parametrize("key", ["password", "passwd", "PASSWORD"])
def test_password_in_the_query_connects_and_is_never_printed(writer, key):
    admin, url, password = writer
    raw = f"{_plain(url)}?{key}={quote(password, safe='')}"
    engine = make_engine(raw)
    assert loaders.query(engine, "SELECT COUNT(*) AS n FROM probe", {})["n"].iloc[0] == 2
    shown = [redact_url(raw), redact_text(raw), str(engine.url), repr(engine.url),
             engine.url.render_as_string(hide_password=False)]
    with pytest.raises(SchemaError) as caught:  # an error line names the database, not its password
        loaders.query(engine, "SELECT nope FROM probe", {})
    shown.append(str(caught.value))
    for text in shown:
        assert password not in text and quote(password, safe="") not in text, text
    assert str(caught.value).startswith(f"query on mysql+pymysql://{url.username}:***@")
    assert "\n" not in str(caught.value) and "nope" in str(caught.value)
    assert _rows(admin) == [1, 2]


@pytest.mark.mariadb
def test_unknown_table_and_lost_connection_are_one_line_errors(writer):
    admin, url, password = writer
    engine = make_engine(_plain(url.set(password=password)), settings=Settings(statement_timeout_s=1))
    with pytest.raises(SchemaError, match="doesn't exist"):
        loaders.query(engine, "SELECT * FROM missing_table", {})
    with pytest.raises(ConnectionFailed, match="max_statement_time") as caught:  # pd.errors.DatabaseError inside
        loaders.query(engine, "SELECT SLEEP(3) AS s FROM probe", {})
    assert password not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.mariadb
@pytest.mark.parametrize("option", ["init_command=INSERT%20INTO%20probe%20VALUES%20(7)", "autocommit=1",
                                    "local_infile=1", "sql_mode=ANSI", "client_flag=65536",
                                    "read_default_file=/etc/mysql/my.cnf", "unknown_thing=1"])
def test_session_changing_url_options_are_refused(writer, option):
    admin, url, password = writer
    name = option.split("=", 1)[0]
    with pytest.raises(ConfigError, match=f"database URL option '{name}' is refused") as caught:
        make_engine(f"{_plain(url.set(password=password))}?charset=utf8mb4&{option}")
    assert password not in str(caught.value) and "\n" not in str(caught.value)
    assert _rows(admin) == [1, 2]


def test_kept_url_options_pass_the_gate():
    engine = make_engine("mysql+pymysql://ro@127.0.0.1:1/db?charset=utf8mb4&connect_timeout=2&ssl_ca=/etc/ssl/ca.pem")
    assert engine.url.query == {"charset": "utf8mb4", "ssl_ca": "/etc/ssl/ca.pem"}


@pytest.mark.parametrize("value", [-1, 0, float("nan"), float("inf"), "abc"])
def test_statement_timeout_must_be_finite_and_positive(value, monkeypatch):
    monkeypatch.setenv("RCA_STATEMENT_TIMEOUT_S", str(value))
    with pytest.raises(ConfigError, match=r"statement_timeout_s"):
        make_engine("mysql+pymysql://ro@127.0.0.1:1/db")


@pytest.fixture
def sqlite_file(tmp_path):
    path = tmp_path / "gate.sqlite"
    with make_engine(f"sqlite:///{path}", writable=True).begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (x int)"))
        conn.execute(sa.text("INSERT INTO probe VALUES (1), (2)"))
    return path


def _sqlite_rows(path) -> list[int]:
    with make_engine(f"sqlite:///{path}").connect() as conn:
        return [r.x for r in conn.execute(sa.text("SELECT x FROM probe ORDER BY x"))]


def test_sqlite_attach_and_writes_are_refused_even_behind_the_statement_guard(sqlite_file):
    engine = make_engine(f"sqlite:///{sqlite_file}")
    attach = f"ATTACH DATABASE 'file:{sqlite_file}?mode=rw' AS rw"
    for sql in [attach, "INSERT INTO probe VALUES (3)", "PRAGMA query_only = 0", "DELETE FROM probe",
                "CREATE TEMP TABLE t AS SELECT 1"]:
        with pytest.raises(WriteRefused):
            with engine.begin() as conn:
                conn.execute(sa.text(sql))
    with engine.connect() as conn:  # SQLite's own veto, without the statement guard (the raw driver)
        raw = conn.connection.dbapi_connection
        for sql in [attach, "INSERT INTO probe VALUES (4)", "PRAGMA query_only = 0", "DROP TABLE probe"]:
            with pytest.raises(Exception, match="not authorized|readonly"):
                raw.execute(sql)
        assert raw.execute("PRAGMA query_only").fetchone()[0] == 1
    assert _sqlite_rows(sqlite_file) == [1, 2]
    frame = loaders.query(engine, "SELECT COUNT(*) AS n FROM probe", {})
    assert frame["n"].iloc[0] == 2


def test_sqlite_errors_are_one_line_rca_errors(sqlite_file, tmp_path):
    engine = make_engine(f"sqlite:///{sqlite_file}")
    with pytest.raises(SchemaError, match="no such column: nope"):
        loaders.query(engine, "SELECT nope FROM probe", {})
    not_a_db = tmp_path / "notes.sqlite"
    not_a_db.write_text("just text, not a database\n" * 50)
    with pytest.raises(InputFormatError, match="is not a SQLite database") as caught:  # refused by the gate, before a read
        make_engine(f"sqlite:///{not_a_db}")
    assert "\n" not in str(caught.value) and str(caught.value).startswith(f"{not_a_db} is not a SQLite database")


def test_a_silent_server_fails_within_the_timeouts():
    """A listener that accepts TCP and never answers: ConnectionFailed after ~connect + statement timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stay_silent():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        engine = make_engine(f"mysql+pymysql://ro:pw-silent-1@127.0.0.1:{port}/db",
                             settings=Settings(statement_timeout_s=1, connect_timeout_s=1))
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="cannot connect to mysql\\+pymysql://ro:\\*\\*\\*@127.0.0.1") as caught:
            check_connection(engine)
        assert time.monotonic() - started < 6
        assert accepted and "pw-silent-1" not in str(caught.value) and "\n" not in str(caught.value)
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


SPECIALS = "@/:%?#"


@hyp_settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcXYZ019-_." + SPECIALS), min_size=4, max_size=24)
       .filter(lambda pw: any(c in pw for c in SPECIALS)))
def test_redact_text_never_leaves_the_password(password):
    assume(password not in "failed: cannot connect to mysql+pymysql://reader:***@db.internal:3306/askproai"
                           "?charset=utf8mb4&passwd=ssl_key_password=%2A%2A%2A (retry later)")
    forms = [
        f"mysql+pymysql://reader:{password}@db.internal:3306/askproai",
        f"mysql+pymysql://reader:{quote(password, safe='')}@db.internal/askproai?charset=utf8mb4",
        f"mysql+pymysql://reader@db.internal/askproai?passwd={quote(password, safe='')}",
        f"mysql+pymysql://reader@db.internal/askproai?charset=utf8mb4&ssl_key_password={quote(password, safe='')}",
    ]
    for url in forms:
        text = f"failed: cannot connect to {url} (retry later)"
        shown = redact_text(text)
        assert password not in shown and quote(password, safe="") not in shown, shown
        assert shown.startswith("failed: cannot connect to mysql+pymysql://reader")
        assert password not in redact_url(url), url


@pytest.mark.parametrize("url", ["sqlite:///x.sqlite?password=s3cret-XYZ", "sqlite:///x.sqlite?passwd=s3cret-XYZ",
                                 "sqlite://u:s3cret-XYZ@/x.sqlite", "sqlite:///x.sqlite?ssl_password=s3cret-XYZ"])
def test_a_sqlite_url_with_a_password_is_one_line_without_the_password(url, capsys):
    """SQLite takes no password: handing one to the driver was an internal error (exit 3) before."""
    from rca_toolkit.cli import main

    assert main(["timeline", "call_x", "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SQLite does not take" in err and "s3cret" not in err
