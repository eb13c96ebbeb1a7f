"""The exit-code contract (README "Exit codes"), enforced by ``cli.main`` alone, and ``rca -v`` logging.

0 ran with nothing to act on, 1 ran and found something, 2 the user's input is wrong (one line),
3 an internal error (one line, the traceback only under ``-v``). Each code comes from a real
command on the demo world; the internal error from a function the command calls, made to raise.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import shutil
import sqlite3

import nbformat
import pytest
import sqlalchemy as sa

import rca_toolkit
from rca_toolkit import cli
from rca_toolkit.outcome import Outcome
from rca_toolkit.runs import scheduled
from rca_toolkit.sources import loaders, store

AT = "2025-10-18T13:20:08+02:00"
CALL_144S = "call_ab45deadd7db66c4956d5243861"
DECISION = re.compile(r"^INFO rca_toolkit\.\S+: ", re.M)
COUNTED = re.compile(r"^INFO rca_toolkit\.analyses\.bookings\.counts: booking counts \S+ to \S+: "
                     r"[1-9]\d* attempts classified row by row$", re.M)
STATEMENT = re.compile(r"^DEBUG rca_toolkit\.sources\.loaders: (SELECT .*): (\d+) rows in \d+\.\d{3} s$", re.M)


def rca(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def demo_copy(demo_sqlite, tmp_path):
    """A private copy of the demo world (a test may change it)."""
    url, _ = demo_sqlite
    copy = tmp_path / "demo.sqlite"
    shutil.copy(url.removeprefix("sqlite:///"), copy)
    return copy


# --------------------------------------------------------------------------- 0, 1, 2 from real commands
def test_0_a_call_timeline_with_nothing_to_act_on(demo_sqlite, capsys):
    url, _ = demo_sqlite
    code, out, err = rca(capsys, "timeline", CALL_144S, "--db", url)
    assert code == 0, err
    assert CALL_144S in out and err == ""


def test_1_a_missing_index_is_found(demo_copy, capsys):
    code, out, _ = rca(capsys, "indexes", "--db", f"sqlite:///{demo_copy}")
    assert code == 1  # the demo world lacks the implicit FK index on retell_error_log(call_session_id)
    assert "MISSING       retell_error_log(call_session_id)" in out


def test_0_when_every_index_is_present(demo_copy, capsys):
    with sqlite3.connect(demo_copy) as conn:
        conn.execute("CREATE INDEX retell_error_log_call_session_id_foreign ON retell_error_log (call_session_id)")
    code, out, _ = rca(capsys, "indexes", "--db", f"sqlite:///{demo_copy}")
    assert code == 0 and "10 of 10 indexes" in out


def test_2_an_unknown_call_id_is_one_line_naming_it(demo_sqlite, capsys):
    url, _ = demo_sqlite
    code, out, err = rca(capsys, "timeline", "call_" + "0" * 27, "--db", url)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rca timeline: error: ") and "call_" + "0" * 27 in err


def test_2_a_missing_database_file(tmp_path, capsys):
    code, _, err = rca(capsys, "indexes", "--db", f"sqlite:///{tmp_path}/nope.sqlite")
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err


# --------------------------------------------------------------------------- 3: internal errors
def _boom(*args, **kwargs):
    raise RuntimeError("lost the plot talking to mysql+pymysql://reader:hunter2@db.internal/askproai")


def test_3_an_unexpected_exception_is_one_line_without_traceback(demo_sqlite, capsys, monkeypatch):
    url, _ = demo_sqlite
    monkeypatch.setattr(loaders, "query", _boom)
    code, out, err = rca(capsys, "timeline", CALL_144S, "--db", url)
    assert code == 3 and out == ""
    assert err == ("rca timeline: internal error: RuntimeError: lost the plot talking to "
                   "mysql+pymysql://reader:***@db.internal/askproai (run with -v for details)\n")


def test_3_with_v_shows_the_traceback_and_still_no_password(demo_sqlite, capsys, monkeypatch):
    url, _ = demo_sqlite
    monkeypatch.setattr(loaders, "query", _boom)
    code, _, err = rca(capsys, "-v", "timeline", CALL_144S, "--db", url)
    assert code == 3
    assert "Traceback (most recent call last):" in err and "in _boom" in err
    assert err.splitlines()[-1] == ("rca timeline: internal error: RuntimeError: lost the plot talking to "
                                    "mysql+pymysql://reader:***@db.internal/askproai")
    assert "hunter2" not in err


def test_3_when_a_command_returns_something_else_than_an_outcome(capsys, monkeypatch):
    from rca_toolkit.commands import timeline

    monkeypatch.setattr(timeline, "run", lambda args: 0)  # the old contract: a bare exit code
    code, _, err = rca(capsys, "timeline", CALL_144S, "--retell-json", "unused.json")
    assert code == 3 and "returned 0, not an Outcome" in err and err.count("\n") == 1


def test_usage_errors_are_one_line_and_exit_2(capsys):
    code, out, err = rca(capsys, "timeline")  # argparse's own mistakes: one line too, not the usage block
    assert code == 2 and out == ""
    assert err == "rca timeline: error: the following arguments are required: CALL_ID (see `rca timeline --help`)\n"


# --------------------------------------------------------------------------- notebooks and runbooks
PROBE = [
    ("params", 'mode: str = "pass"  # pass, input (a check lacks a table), crash (a check has a bug) or raise'),
    ("code", "from rca_toolkit.errors import SchemaError\n"
             "from rca_toolkit.runbooks.framework import CheckResult, Runbook, Status\n\n"
             "def missing_table():\n    raise SchemaError(\"table 'appointments' is missing\")\n\n"
             "def buggy():\n    return {}['no such key']\n\n"
             "rb = Runbook('RB999', 'exit-code probe')\n"
             "rb.run('answers', lambda: CheckResult('answers', Status.PASS, '1 of 1 answered'))\n"
             "if mode == 'input':\n    rb.run('needs a table', missing_table)\n"
             "if mode == 'crash':\n    rb.run('has a bug', buggy)\n"
             "rb.record()\n"
             "if mode == 'raise':\n    raise SchemaError(\"table 'calls' is missing\", hint='point --db at production')"),
]


@pytest.fixture
def probe(tmp_path):
    cells = [nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]} if kind == "params" else {})
             for kind, src in PROBE]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                        "language": "python"}})
    path = tmp_path / "exit_probe.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("mode, code, first_line", [
    ("pass", 0, "PASS: "),
    ("input", 2, "ERROR: "),  # a missing table: the user's database, not the toolkit
    ("crash", 3, "ERROR: "),  # a check crashed on a bug
])
def test_runbook_error_is_2_from_the_input_and_3_from_a_crash(probe, tmp_path, capsys, mode, code, first_line):
    got, out, _ = rca(capsys, "runbook", str(probe), "-p", "mode", mode, "--out", str(tmp_path / "out"))
    assert got == code and out.startswith(first_line)


@pytest.mark.slow
def test_rca_run_says_what_the_report_says_under_its_status_line(probe, tmp_path, capsys):
    """`rca run` printed only paths: the verdict (or what a notebook that judges nothing found) was in the report only."""
    got, out, _ = rca(capsys, "run", str(probe), "-p", "mode", "pass", "--out", str(tmp_path / "out"))
    lines = out.splitlines()
    assert got == 0 and lines[0].startswith("ok: ") and lines[1] == "PASS: all 1 checks passed"
    assert lines[2].startswith("report: ") and lines[2].endswith("report.html")


@pytest.mark.slow
def test_run_whose_cell_failed_on_an_rca_error_is_2(probe, tmp_path, capsys):
    code, out, err = rca(capsys, "run", str(probe), "-p", "mode", "raise", "--out", str(tmp_path / "out"))
    assert code == 2 and out.startswith("failed: ")
    assert "SchemaError: table 'calls' is missing" in err


def test_health_runs_combine_to_the_worst_outcome(tmp_path):
    def run(verdict, run_outcome=Outcome.CLEAR):
        return scheduled.HealthRun(None, "1d", tmp_path, "ok" if run_outcome == Outcome.CLEAR else "failed",
                                   verdict, None, None, run_outcome)

    assert [run(v).outcome for v in ("OK", "WATCH", "ACT", None)] == \
        [Outcome.CLEAR, Outcome.CLEAR, Outcome.FOUND, Outcome.INTERNAL_ERROR]
    assert run(None, Outcome.BAD_INPUT).outcome == Outcome.BAD_INPUT  # the notebook failed on an RcaError
    assert scheduled.combined_outcome([run("OK"), run("ACT")]) == Outcome.FOUND
    assert scheduled.combined_outcome([run("ACT"), run(None, Outcome.BAD_INPUT)]) == Outcome.BAD_INPUT
    assert scheduled.combined_outcome([]) == Outcome.INTERNAL_ERROR
    assert {o: cli.EXIT_CODES[o] for o in Outcome} == {Outcome.CLEAR: 0, Outcome.FOUND: 1, Outcome.BAD_INPUT: 2,
                                                       Outcome.INTERNAL_ERROR: 3}


# --------------------------------------------------------------------------- logging of decisions
def test_v_logs_the_decisions_of_compare_and_without_v_nothing(demo_sqlite, capsys):
    url, _ = demo_sqlite
    args = ["compare", "--db", url, "--at", AT, "--no-changepoints"]
    code, quiet_out, quiet_err = rca(capsys, *args)
    assert code == 0 and quiet_err == ""
    code, out, err = rca(capsys, "-v", *args)
    assert code == 0 and out == quiet_out  # logging changes stderr only
    decisions = DECISION.findall(err)
    assert len(decisions) == len(err.splitlines())  # nothing but decision lines
    assert COUNTED.search(err)
    assert "rca_toolkit.sources.store" not in err  # SQLite is read directly: no local store
    assert "INFO rca_toolkit.sources.aggregates: histograms: computed by the database, window bounds compared exactly in Europe/Berlin" in err
    assert "DEBUG" not in err


def test_vv_logs_every_statement_with_rows_and_seconds_but_no_bound_values(demo_sqlite, capsys):
    url, _ = demo_sqlite
    code, _, err = rca(capsys, "-vv", "timeline", CALL_144S, "--db", url)
    assert code == 0
    statements = STATEMENT.findall(err)
    assert ("SELECT * FROM retell_call_sessions WHERE call_id = :cid", "1") in statements
    assert CALL_144S not in "".join(sql for sql, _ in statements)  # the bound call id is never logged


@pytest.mark.mariadb
def test_v_on_mariadb_says_the_local_store_was_read_and_no_cache_reads_the_server(demo_mariadb, capsys, tmp_path, monkeypatch):
    """On MariaDB the counts and histograms read the local store, refreshed first, and -v says what the refresh
    read; ``--no-cache`` reads the server with the same SQL and makes no store."""
    url, _ = demo_mariadb
    cache = tmp_path / "cache"
    monkeypatch.setenv("RCA_CACHE_DIR", str(cache))  # a folder of this test's own: not yet refreshed by this process
    monkeypatch.setenv("RCA_CACHE", "auto")
    args = ["-v", "compare", "--db", url, "--at", AT, "--no-changepoints"]
    code, _, err = rca(capsys, *args, "--no-cache")
    assert code == 0, err
    assert "rca_toolkit.sources.store" not in err and not any(cache.rglob("store.duckdb"))
    assert COUNTED.search(err)
    assert "histograms: computed by the database, window bounds compared exactly" in err

    monkeypatch.setenv("RCA_CACHE", "auto")  # main() set it off for the --no-cache run
    code, _, err = rca(capsys, *args)
    assert code == 0, err
    folder = store.folder(cache, sa.make_url(url))
    refreshed = re.search(rf"^INFO rca_toolkit\.sources\.store\.extract: store {re.escape(str(folder))}: "
                          r"(\d+) rows and \d+ keys read in \d+\.\d s \((.+) built whole\)$", err, re.M)
    assert refreshed and int(refreshed[1]) > 1000 and "retell_function_traces" in refreshed[2], err
    assert COUNTED.search(err)
    assert "histograms: computed by the database, window bounds compared exactly" in err  # the store keeps UTC
    assert "mysql+pymysql://" not in err  # no URL is logged at all


def test_health_counts_and_runbook_checks_log_their_path(demo_sqlite, caplog):
    from rca_toolkit.analyses.health import report
    from rca_toolkit.errors import SchemaError
    from rca_toolkit.runbooks.framework import Runbook

    url, _ = demo_sqlite
    caplog.set_level(logging.INFO, logger="rca_toolkit")
    report.load_counts(url, "2025-10-14", "1d")
    assert "health counts: counts and histograms computed by the database, bounds compared in Europe/Berlin wall time" \
        in [r.getMessage() for r in caplog.records if r.name.startswith("rca_toolkit.analyses.health.")]
    caplog.clear()
    rb = Runbook("RB999", "probe")
    rb.run("schema", lambda: (_ for _ in ()).throw(SchemaError("table 'x' is missing")))
    rb.run("bug", lambda: {}["no such key"])
    assert [r.getMessage() for r in caplog.records] == [
        "RB999 check 'schema': ERROR: SchemaError: table 'x' is missing",
        "RB999 check 'bug': ERROR (internal): unexpected builtins.KeyError: 'no such key' (a bug in the check)"]


def test_the_library_configures_no_handler():
    for module in pkgutil.walk_packages(rca_toolkit.__path__, "rca_toolkit."):
        importlib.import_module(module.name)
    assert logging.getLogger("rca_toolkit").handlers == []
    assert not [h for h in logging.getLogger().handlers if type(h).__module__ != "_pytest.logging"]
