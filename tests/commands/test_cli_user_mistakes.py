"""User mistakes at the CLI boundary, one row per class: one stderr line naming the input and the fix, exit 2.

Never a traceback and never "internal error" (exit 3) for a mistake of the user's: database URLs
(every port form), files that are not SQLite databases, instants and durations out of range,
deployment lists without deployments, ``--out`` on a file, notebooks and parameter files that are
not what they claim, parameters out of range (refused on the host: no run folder), bad RCA_*
variables and config files, and the numeric options of every command. The Hypothesis suite
(``test_cli_fuzz.py``) searches the same surface; this table pins the cases the issue names.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import nbformat
import pymysql
import pytest
import sqlalchemy as sa

from rca_toolkit import cli

CALL = "call_ab45deadd7db66c4956d5243861"
AT = "2025-10-18T13:20:08+02:00"
PASSWORD = "s3cret-XYZ"
RCA_VARIABLES = ["RCA_CONFIG", "RCA_DATABASE_URL", "RCA_SOURCE_TZ", "RCA_DB_TIME_ZONE", "RCA_STATEMENT_TIMEOUT_S",
                 "RCA_CONNECT_TIMEOUT_S", "RCA_REDIS_URL", "RCA_REPORTS_DIR", "RCA_CACHE_MAX_ROWS_PER_S",
                 "RCA_CACHE_CHECK_EVERY_S"]


@pytest.fixture
def place(demo_sqlite, tmp_path, monkeypatch):
    """A working folder with odd files; the demo world is the configured database; no RCA_* from outside."""
    url, _ = demo_sqlite
    for name in RCA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RCA_PROGRESS", "0")
    monkeypatch.setenv("RCA_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text("hello, not a database\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(1, 120)))
    (tmp_path / "empty.sqlite").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    (tmp_path / "binary.bin").write_bytes(bytes(range(1, 256)) * 3)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("deployed_at,commit,description,source\n")
    (tmp_path / "scalar.yaml").write_text("deployments: 5\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "intkey.yaml").write_text("{1: 2}\n")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "\n")
    (tmp_path / "binary.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(1, 120)))
    (tmp_path / "shape.ipynb").write_text('{"cells": 5}')
    return tmp_path


def rca(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert ": error: " in err and "internal error" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# --------------------------------------------------------------------------- one table: argv (+ env) -> the line
CASES = [
    # database URLs: every port form, and a password that reads as a port
    ("port-not-a-number", ["indexes", "--db", "mysql+pymysql://root@127.0.0.1:abc/db"], {}, "port 'abc' is not a number"),
    ("port-too-large", ["indexes", "--db", "mysql+pymysql://root@127.0.0.1:99999/db"], {}, "port 99999 is outside 1-65535"),
    ("port-zero", ["indexes", "--db", "mysql+pymysql://root@127.0.0.1:0/db"], {}, "port 0 is outside 1-65535"),
    ("port-negative", ["timeline", CALL, "--db", "mysql+pymysql://root@127.0.0.1:-1/db"], {}, "port -1 is outside"),
    ("port-empty", ["compare", "--at", AT, "--db", "mysql+pymysql://root@127.0.0.1:/db"], {}, "port '' is not a number"),
    ("password-without-host", ["indexes", "--db", f"mysql+pymysql://root:{PASSWORD}/db"], {}, "no port number after 'root'"),
    ("password-as-port", ["indexes", "--db", "mysql+pymysql://root:123456/db"], {}, "has a port outside 1-65535"),
    ("unknown-profile", ["indexes", "--db", "prod"], {}, "not a valid SQLAlchemy URL nor a database profile"),
    # --db pointing at something that is not a SQLite database
    ("db-text-file", ["indexes", "--db", "sqlite:///text.txt"], {}, "text.txt is not a SQLite database"),
    ("db-png", ["timeline", CALL, "--db", "sqlite:///image.png"], {}, "image.png is not a SQLite database"),
    ("db-empty-file", ["quality", "--db", "sqlite:///empty.sqlite"], {}, "is an empty file, not a database"),
    ("db-directory", ["compare", "--at", AT, "--db", "sqlite:///folder"], {}, "is a directory, not a database file"),
    ("db-missing", ["indexes", "--db", "sqlite:///missing.sqlite"], {}, "missing.sqlite does not exist"),
    ("scratch-text-file", ["import", "retell", "text.txt", "--db", "sqlite:///text.txt"], {}, "is not a SQLite database"),
    ("demo-into-text-file", ["demo-data", "--db", "sqlite:///text.txt"], {}, "is not a SQLite database"),
    # instants and durations
    ("at-date-without-zone", ["compare", "--at", "9999-12-31"], {}, "--at='9999-12-31' has no time zone"),
    ("at-far-future", ["compare", "--at", "9999-12-31T00:00:00Z"], {}, "outside the years 1970-2199"),
    ("at-far-past", ["compare", "--at", "0001-01-01T00:00:00+00:00"], {}, "outside the years 1970-2199"),
    ("at-garbage", ["compare", "--at", "yesterday-ish garbage"], {}, "is not an ISO-8601 timestamp"),
    ("before-too-long", ["compare", "--at", AT, "--before", "99999999d"], {}, "longer than a duration can be"),
    ("history-nan", ["compare", "--at", AT, "--history", "nan"], {}, "--history='nan' is not a duration"),
    ("as-of-far-future", ["quality", "--as-of", "9999-12-31T00:00:00Z"], {}, "--as-of='9999-12-31T00:00:00Z' is outside"),
    ("today-garbage", ["migrations", "--today=/1"], {}, "--today='/1' is not a date"),
    ("report-date-far", ["report", "health", "--date", "9999-12-31"], {}, "--date='9999-12-31' is outside the years"),
    ("report-date-past", ["report", "health", "--from", "0001-01-01", "--to", "2025-01-01"], {}, "--from='0001-01-01'"),
    ("command-for-far", ["schedule", "health", "--command-for", "9999-12-31"], {}, "--command-for='9999-12-31'"),
    # deployment lists
    ("deployments-empty", ["compare", "--at", AT, "--deployments", "empty.csv"], {}, "deployment list empty.csv is empty"),
    ("deployments-header-only", ["compare", "--at", AT, "--deployments", "header.csv"], {}, "holds no deployments"),
    ("deployments-binary", ["compare", "--at", AT, "--deployments", "binary.bin"], {}, "cannot parse deployment list"),
    ("deployments-directory", ["compare", "--at", AT, "--deployments", "folder"], {}, "deployment list folder is a directory"),
    ("deployments-yaml-scalar", ["compare", "--at", AT, "--deployments", "scalar.yaml"], {}, "is not a list of deployments"),
    # output folders that are files
    ("out-is-a-file", ["run", "overview", "--out", "text.txt"], {}, "--out text.txt is a file"),
    ("demo-reports-out-file", ["demo-reports", "--out", "text.txt"], {}, "--out text.txt is a file"),
    ("reports-dir-is-a-file", ["report", "health", "--date", "2025-10-14", "--reports-dir", "text.txt"], {},
     "--reports-dir text.txt is a file"),
    ("prune-reports-dir-file", ["report", "prune", "--reports-dir", "text.txt"], {}, "--reports-dir text.txt is a file"),
    # notebooks and parameter files that are not what they claim
    ("binary-notebook", ["run", "./binary.ipynb"], {}, "binary.ipynb is not a readable notebook"),
    ("notebook-of-another-shape", ["run", "./shape.ipynb"], {}, "shape.ipynb is not a readable notebook"),
    ("params-binary", ["run", "overview", "-f", "binary.bin"], {}, "cannot read parameters file binary.bin"),
    ("params-list", ["run", "overview", "-f", "list.yaml"], {}, "parameters file list.yaml is not a mapping"),
    ("params-int-key", ["run", "overview", "-f", "intkey.yaml"], {}, "has the key 1, not a parameter name"),
    ("params-deeply-nested", ["run", "overview", "-f", "deep.yaml"], {}, "cannot read parameters file deep.yaml"),
    ("params-missing", ["run", "overview", "-f", "missing.yaml"], {}, "cannot read parameters file missing.yaml"),
    # notebook parameters out of range, refused on the host
    ("param-seconds-nan", ["run", "call_timeline", "-p", "dead_air_s", "nan"], {}, "dead_air_s=nan is outside (0, 86400]"),
    ("param-seconds-inf", ["run", "call_timeline", "-p", "slow_tool_s", "inf"], {}, "slow_tool_s=inf is outside"),
    ("param-seconds-zero", ["run", "call_timeline", "-p", "dead_air_s", "0"], {}, "dead_air_s=0.0 is outside"),
    ("param-min-negative", ["runbook", "RB020", "-p", "min_attempts", "-1"], {}, "min_attempts=-1 is outside [1, 2^63-1]"),
    ("param-min-zero", ["runbook", "RB020", "-p", "min_attempts", "0"], {}, "min_attempts=0 is outside"),
    ("param-id-huge", ["run", "overview", "-p", "company_id", "9" * 30], {}, "company_id=" + "9" * 30 + " is outside"),
    ("param-id-negative", ["run", "overview", "-p", "company_id", "-5"], {}, "company_id=-5 is outside [0, 2^63-1]"),
    ("param-day-far", ["run", "health_report", "-p", "period_start", "9999-12-31"], {}, "period_start='9999-12-31'"),
    ("param-day-garbage", ["run", "health_report", "-p", "period_start", "soon"], {}, "period_start='soon' is not a date"),
    ("param-day-empty", ["run", "health_report", "-p", "period_start", ""], {}, "period_start may not be empty"),
    ("param-duration-long", ["run", "before_after_report", "-p", "before", "99999999d"], {}, "longer than a duration"),
    ("param-instant-far", ["run", "overview", "-p", "start", "9999-12-31T00:00:00Z"], {}, "start='9999-12-31T00:00:00Z'"),
    ("param-db-bad-port", ["run", "overview", "--db", "mysql+pymysql://root@127.0.0.1:abc/db"], {}, "port 'abc'"),
    ("param-db-text-file", ["runbook", "RB020", "--db", "sqlite:///text.txt"], {}, "is not a SQLite database"),
    ("param-db-unreachable", ["run", "overview", "--db", "mysql+pymysql://root@127.0.0.1:1/db"], {}, "cannot connect"),
    # RCA_* variables
    ("source-tz-unknown", ["timeline", CALL], {"RCA_SOURCE_TZ": "Not/AZone"}, "RCA_SOURCE_TZ)='Not/AZone' is not a time zone"),
    ("source-tz-empty", ["compare", "--at", AT], {"RCA_SOURCE_TZ": ""}, "RCA_SOURCE_TZ)='' is not a non-empty text"),
    ("timeout-text", ["indexes"], {"RCA_STATEMENT_TIMEOUT_S": "abc"}, "RCA_STATEMENT_TIMEOUT_S)='abc' is not a number"),
    ("timeout-negative", ["indexes"], {"RCA_STATEMENT_TIMEOUT_S": "-1"}, "(0, 86400]"),
    ("timeout-nan", ["timeline", CALL], {"RCA_STATEMENT_TIMEOUT_S": "nan"}, "RCA_STATEMENT_TIMEOUT_S)='nan'"),
    ("timeout-inf", ["quality"], {"RCA_STATEMENT_TIMEOUT_S": "inf"}, "RCA_STATEMENT_TIMEOUT_S)='inf'"),
    ("timeout-zero", ["indexes"], {"RCA_STATEMENT_TIMEOUT_S": "0"}, "0 (0, a negative value or inf would mean no limit)"),
    ("rows-per-second-text", ["cache", "status"], {"RCA_CACHE_MAX_ROWS_PER_S": "fast"},
     "RCA_CACHE_MAX_ROWS_PER_S)='fast' is not a number of rows a second in [1, 1e+12]"),
    ("check-every-too-long", ["cache", "status"], {"RCA_CACHE_CHECK_EVERY_S": "1e9"},
     "RCA_CACHE_CHECK_EVERY_S)='1e9' is not a number of seconds in (0, 2678400]"),
    ("connect-timeout-huge", ["indexes"], {"RCA_CONNECT_TIMEOUT_S": "1e400"}, "RCA_CONNECT_TIMEOUT_S)='1e400'"),
    ("db-time-zone-sql", ["indexes"], {"RCA_DB_TIME_ZONE": "+00:00'; DROP TABLE calls; --"}, "is not a time zone"),
    ("config-missing", ["indexes"], {"RCA_CONFIG": "nope.yaml"}, "RCA_CONFIG=nope.yaml does not exist"),
    ("config-binary", ["indexes"], {"RCA_CONFIG": "binary.bin"}, "cannot read config file binary.bin"),
    ("config-a-list", ["indexes"], {"RCA_CONFIG": "list.yaml"}, "config file list.yaml is not a mapping"),
    ("config-int-key", ["indexes"], {"RCA_CONFIG": "intkey.yaml"}, "has unknown keys: 1"),
    # numeric options of the commands
    ("dead-air-nan", ["timeline", CALL, "--dead-air", "nan"], {}, "argument --dead-air: 'nan' is not a number of seconds"),
    ("dead-air-inf", ["timeline", CALL, "--dead-air=inf"], {}, "argument --dead-air"),
    ("dead-air-negative", ["timeline", CALL, "--dead-air=-1"], {}, "argument --dead-air"),
    ("slow-tool-huge", ["timeline", CALL, "--slow-tool", "1e400"], {}, "argument --slow-tool"),
    ("company-negative", ["report", "health", "--date", "2025-10-14", "--company=-1"], {}, "argument --company"),
    ("company-huge", ["report", "health", "--date", "2025-10-14", "--company", "9" * 25], {}, "is outside 0-"),
    ("jobs-zero", ["report", "health", "--from", "2025-10-14", "--to", "2025-10-15", "--jobs", "0"], {}, "argument --jobs"),
    ("jobs-huge", ["report", "health", "--from", "2025-10-14", "--to", "2025-10-15", "--jobs", "99999999"], {}, "is outside 1-32"),
    ("demo-reports-jobs-zero", ["demo-reports", "--jobs", "0"], {}, "argument --jobs: '0' is outside 1-32"),
    ("schedule-company-huge", ["schedule", "health", "--company", "9" * 25], {}, "argument --company"),
    ("seed-huge", ["demo-data", "--db", "sqlite:///scratch.sqlite", "--seed", "9" * 25], {}, "argument --seed"),
    ("import-company-negative", ["import", "retell", "text.txt", "--company-id=-1"], {}, "argument --company-id"),
    ("keep-nan", ["report", "prune", "--keep", "nan"], {}, "--keep='nan' is not a duration"),
    # argparse's own mistakes and the bare group commands
    ("missing-positional", ["timeline"], {}, "the following arguments are required: CALL_ID"),
    ("value-after-dash", ["compare", "--at", AT, "--before", "-3d"], {},  # argparse reads -3d as an option
     "rca compare: error: --before has no value: '-3d' was read as an option (write --before=-3d if that is its value)"),
    ("value-missing", ["compare", "--at"], {}, "rca compare: error: argument --at: expected one argument"),
    ("param-as-key-value", ["runbook", "RB020-booking-health", "-p", "since=2025-10-14T00:00:00+02:00"], {},
     "rca runbook: error: -p takes a name and a value as two words, not 'since=2025-10-14T00:00:00+02:00' "
     "(write -p since 2025-10-14T00:00:00+02:00)"),
    ("unknown-command", ["nope"], {}, "invalid choice: 'nope'"),
    ("bad-choice", ["list", "--format", "xml"], {}, "invalid choice: 'xml'"),
    ("unknown-option", ["quality", "--since=2025-10-14"], {},  # the command's own help, which lists its options
     "rca quality: error: unrecognized arguments: --since=2025-10-14 (see `rca quality --help`)"),
    ("unknown-option-top", ["--since"], {}, "rca: error: unrecognized arguments: --since (see `rca --help`)"),
    ("time-pasted-without-quotes", ["compare", "--at", "2025-10-18", "13:20:08+02:00"], {},  # the shell split it
     "unrecognized arguments: 13:20:08+02:00 (quote a date and time that holds a space, '2025-10-18 13:20:08+02:00', "
     "or write it 2025-10-18T13:20:08+02:00)"),
    ("db-jdbc-url", ["compare", "--at", AT, "--db", f"jdbc:mysql://root:{PASSWORD}@127.0.0.1:3306/askproai?useSSL=false"], {},
     "(write it for SQLAlchemy: mysql+pymysql://root:***@127.0.0.1:3306/askproai)"),  # as a Java config has it
    ("db-sqlite-path", ["compare", "--at", AT, "--db", "empty.sqlite"], {},
     "--db 'empty.sqlite' is not a valid SQLAlchemy URL nor a database profile (a SQLite file is given as a URL: "
     "sqlite:///empty.sqlite)"),
    ("time-from-a-report-pasted-without-quotes", ["compare", "--at", "2025-10-18", "13:20:08", "CEST"], {},
     "unrecognized arguments: 13:20:08 CEST (quote a date and time that holds a space: '2025-10-18 13:20:08 CEST')"),
    ("report-without-report", ["report"], {}, "rca report needs a report: health or prune"),
    ("schedule-without-report", ["schedule"], {}, "rca schedule needs a report: health"),
    ("schedule-rca-with-password", ["schedule", "health", "--rca", f"https://u:{PASSWORD}@h/rca"], {},
     "--rca carries credentials"),
]


@pytest.mark.parametrize("argv, env, fragment", [pytest.param(a, e, f, id=i) for i, a, e, f in CASES])
def test_a_user_mistake_is_one_line_and_exit_2(place, capsys, monkeypatch, argv, env, fragment):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = {p for p in place.rglob("*")}
    code, _, err = rca(capsys, *argv)
    one_line_error(code, err, fragment)
    assert PASSWORD not in err
    made = {p for p in place.rglob("*")} - before
    assert not [p for p in made if p.name == "run.json" or p.name.endswith(".partial")], made  # no run folder


CONFIGS = [
    ("profiles-a-list", "profiles: [a, b]\n", "profiles is not a mapping of profile names (it is a list)"),
    ("profile-a-number", "profiles:\n  prod: 5\n", "profiles.prod is not a mapping with url and password_env (it is a int)"),
    ("profile-without-url", "profiles:\n  prod: {}\n", "profiles.prod.url is missing or not a text"),
    ("profile-url-a-number", "profiles:\n  prod: {url: 5}\n", "profiles.prod.url is missing or not a text"),
    ("profile-unknown-key", "profiles:\n  prod: {url: 'sqlite:///x', pasword_env: X}\n", "unknown keys: pasword_env"),
    ("profile-password-env-list", "profiles:\n  prod: {url: 'sqlite:///x', password_env: [1]}\n",
     "password_env=[1] is not an environment variable name"),
    ("profile-name-a-number", "profiles:\n  5: {url: 'sqlite:///x'}\n", "has the name 5, not a text"),
    ("timeout-a-list", "statement_timeout_s: [1]\n", "statement_timeout_s=[1] is not a number of seconds"),
    ("timeout-negative", "connect_timeout_s: -3\n", "connect_timeout_s=-3 is not a number of seconds in (0, 86400]"),
    ("reports-dir-a-list", "reports_dir: [1]\n", "reports_dir=[1] is not a non-empty text"),
    ("source-tz-a-number", "source_tz: 5\n", "source_tz=5 is not a non-empty text"),
    ("source-tz-unknown", "source_tz: Not/AZone\n", "source_tz='Not/AZone' is not a time zone"),
    ("database-url-a-number", "database_url: 5\n", "database_url=5 is not a non-empty text"),
    ("progress-a-list", "progress: [1]\n", "progress=[1] is not true or false"),
    ("not-yaml", "a: [\n", "cannot read config file"),
    ("unknown-key", "databse_url: x\n", "unknown keys: databse_url"),
]


@pytest.mark.parametrize("text, fragment", [pytest.param(t, f, id=i) for i, t, f in CONFIGS])
def test_a_config_file_mistake_is_one_line_naming_the_key(place, capsys, monkeypatch, text, fragment):
    (place / "rca.yaml").write_text(text)  # found in the working directory, as rca.yaml
    code, _, err = rca(capsys, "timeline", CALL, "--db", "prod")
    one_line_error(code, err, "config file rca.yaml", fragment)


# --------------------------------------------------------------------------- what the line shows, and hides
def test_a_url_given_to_the_wrong_option_never_shows_its_password(place, capsys):
    url = f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:3306/db"
    for argv in (["list", "--format", url], ["quality", url], ["compare", "--at", url],
                 ["indexes", "--db", f"mysql+pymysql://root@127.0.0.1:1/db?password={PASSWORD}"]):
        code, out, err = rca(capsys, *argv)
        one_line_error(code, err)
        assert PASSWORD not in out + err, err


def test_arguments_that_are_not_text_are_refused_by_position(place, capsys):
    code, _, err = rca(capsys, "timeline", "call_\udcff")  # a byte that is not UTF-8, as the shell passes it
    one_line_error(code, err, "argument 2 is not UTF-8 text")
    code, _, err = rca(capsys, "timeline", "call_\x00x")
    one_line_error(code, err, "argument 2 holds a NUL character")


def test_control_characters_in_an_echoed_value_stay_on_the_line(place, capsys):
    code, _, err = rca(capsys, "timeline", CALL, "--retell-json", "a\x1eb\x1b[31m\u2028c")
    one_line_error(code, err, "a\\x1eb\\x1b[31m\\u2028c")
    assert len(err.splitlines()) == 1


def test_report_without_a_report_prints_its_help_on_stdout(place, capsys):
    code, out, err = rca(capsys, "report")
    one_line_error(code, err)
    assert out.startswith("usage: rca report")


def test_a_valid_option_still_runs(place, capsys):
    """The ranges refuse nothing a user means: the boundary values and ordinary ones pass."""
    assert rca(capsys, "timeline", CALL, "--dead-air", "86400", "--slow-tool", "0.001")[0] == 0
    assert rca(capsys, "schedule", "health", "--company", str(2**63 - 1), "--command-for", "2199-12-31")[0] == 0
    code, _, err = rca(capsys, "migrations", "--today", "2025-10-14")
    assert code == 0, err


# --------------------------------------------------------------------------- database failures that reach the CLI
def _lost_connection(*args, **kwargs):
    driver = pymysql.err.OperationalError(2013, "Lost connection to server during query")
    raise sa.exc.OperationalError("SELECT 1", {}, driver)


def _toolkit_bug(*args, **kwargs):
    driver = pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax")
    raise sa.exc.ProgrammingError("SELEC 1", {}, driver)


def test_an_untranslated_lost_connection_is_one_line_exit_2_and_a_syntax_error_stays_3(place, capsys, monkeypatch):
    from rca_toolkit.sources import indexes

    monkeypatch.setattr(indexes, "check", _lost_connection)  # a read no layer translated, as the driver raises it
    code, _, err = rca(capsys, "indexes")
    one_line_error(code, err, "Lost connection to server during query", "raise RCA_STATEMENT_TIMEOUT_S")
    monkeypatch.setattr(indexes, "check", _toolkit_bug)
    code, _, err = rca(capsys, "indexes")
    assert code == 3 and err.count("\n") == 1 and "internal error: ProgrammingError" in err


def test_a_file_that_is_not_a_database_surfacing_in_sqlite_is_bad_input(place):
    from rca_toolkit.errors import ConnectionFailed
    from rca_toolkit.sources.db_errors import untranslated

    with pytest.raises(sqlite3.DatabaseError) as caught:
        sqlite3.connect(place / "text.txt").execute("SELECT name FROM sqlite_master")
    assert isinstance(untranslated(caught.value), ConnectionFailed)
    with pytest.raises(sqlite3.ProgrammingError) as caught:
        sqlite3.connect(":memory:").execute("SELECT ?", (1, 2))
    assert untranslated(caught.value) is None  # the toolkit's own mistake: internal
    for bad in ("SELEC 1", "SELECT nope FROM sqlite_master", "SELECT no_such_function(1)"):
        with pytest.raises(sqlite3.OperationalError) as caught:  # SQLite's class for a bad statement too
            sqlite3.connect(":memory:").execute(bad)
        assert untranslated(caught.value) is None, bad
    with pytest.raises(sqlite3.OperationalError) as caught:  # the environment: exit 2
        sqlite3.connect(f"file:{place / 'missing.sqlite'}?mode=ro", uri=True).execute("SELECT 1")
    assert isinstance(untranslated(caught.value), ConnectionFailed)


def test_a_url_argument_with_a_byte_that_is_not_utf8_is_one_line(capsys):
    """The password search ran before the argument check: a surrogate in a URL was a traceback (exit 1)."""
    bad = b"mysql+pymysql://u:p\xffw@127.0.0.1/db".decode("utf-8", "surrogateescape")
    assert cli.main(["timeline", "call_x", "--db", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_pandas_reads_sql_only_in_the_loaders_query_that_maps_its_errors():
    """``pd.read_sql`` wraps driver errors in ``pandas.errors.DatabaseError`` (a statement timeout, a lost
    connection); ``sources.loaders.query`` maps them through ``db.database_error``, and so does the store's
    reader (``sources.store.extract``, which reads the source in chunks). A third caller would not."""
    root = Path(cli.__file__).resolve().parent
    call = re.compile(r"\bread_sql\w*\(")
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if call.search(p.read_text()))
    assert callers == ["sources/loaders.py", "sources/store/extract.py"]


# --------------------------------------------------------------------------- a health report of a day without data
@pytest.mark.slow
def test_health_report_of_a_day_or_company_without_data(place, capsys, demo_sqlite):
    """Nothing in the period nor its baseline: the company, the day or the database is wrong, so a scheduled
    report fails loudly (EmptyResult, exit 2, one stderr line) instead of filing a green report. Only the
    period empty: WATCH, "not enough data" (exit 0), never OK; no KeyError either way."""
    url, _ = demo_sqlite
    code, out, err = rca(capsys, "report", "health", "--date", "2020-01-01", "--db", url, "--reports-dir", "reports")
    one_line_error(code, err, "health 2020-01-01 1d failed: EmptyResult: no calls and no booking attempts of any company")
    code, out, err = rca(capsys, "report", "health", "--date", "2025-10-14", "--company", "999", "--db", url,
                         "--reports-dir", "reports")
    one_line_error(code, err, "EmptyResult: no calls and no booking attempts of company 999")
    code, out, err = rca(capsys, "report", "health", "--date", "2025-12-02", "--db", url, "--reports-dir", "reports")
    assert code == 0 and err == "", err
    assert re.search(r"^2025-12-02 1d WATCH: not enough data: no calls in this period \(\d+ in the previous 7 days\)", out)


def test_the_health_computation_of_an_empty_day_says_so(demo_sqlite):
    from rca_toolkit.analyses.health import report
    from rca_toolkit.errors import EmptyResult

    url, _ = demo_sqlite
    with pytest.raises(EmptyResult, match="of company 999 in the 1d period from 2025-10-14 nor in the previous 7 days"):
        report.health(url, "2025-10-14", "1d", 999)
    empty_day = report.health(url, "2025-12-02", "1d", 0)
    assert empty_day.verdict == "WATCH" and empty_day.key_numbers()["calls"] == 0  # no KeyError: 'metric'
    assert "**WATCH: not enough data: no calls in this period" in empty_day.to_markdown()


def test_a_run_folder_is_never_made_for_a_parameter_the_host_refuses(place, capsys):
    shutil.rmtree(place / "reports", ignore_errors=True)
    code, _, err = rca(capsys, "runbook", "RB020", "-p", "min_attempts", "-1", "--out", "reports")
    one_line_error(code, err, "min_attempts=-1")
    assert not (place / "reports").exists()


def test_a_notebook_file_with_a_bad_default_is_refused_before_any_run(place, capsys):
    cell = nbformat.v4.new_code_cell('ratio: float = 2.0  # a share between 0 and 1', metadata={"tags": ["parameters"]})
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), place / "bad_default.ipynb")
    code, _, err = rca(capsys, "run", "./bad_default.ipynb", "--out", "reports")
    one_line_error(code, err, "bad_default.ipynb: default of ratio=2.0 is outside [0, 1]")


@pytest.mark.parametrize("env, yaml_text, expected", [
    ({"RCA_PROGRESS": ""}, None, False), ({"RCA_PROGRESS": "0"}, None, False), ({"RCA_PROGRESS": "yes"}, None, True),
    ({}, "progress: false\n", False), ({}, None, True)])
def test_the_progress_setting_is_one_rule(env, yaml_text, expected, tmp_path, monkeypatch):
    """progress_enabled read RCA_PROGRESS with its own words and ignored rca.yaml's progress."""
    from rca_toolkit.config import load_settings, progress_enabled

    monkeypatch.delenv("RCA_PROGRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RCA_CONFIG", raising=False)
    if yaml_text:
        (tmp_path / "rca.yaml").write_text(yaml_text)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert progress_enabled() is expected is load_settings().progress


def test_a_password_quoted_from_a_config_value_is_masked_in_the_error_line(tmp_path, monkeypatch, capsys):
    """The error line quoted the refused value as is: statement_timeout_s={'password': 'hunter2'}."""
    config = tmp_path / "rca.yaml"
    config.write_text("statement_timeout_s: {password: hunter2-XYZ}\n")
    monkeypatch.setenv("RCA_CONFIG", str(config))
    assert cli.main(["quality", "--db", "sqlite:///x.sqlite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "statement_timeout_s" in err and "hunter2-XYZ" not in err
