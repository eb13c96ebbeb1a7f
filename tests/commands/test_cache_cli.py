"""``rca cache status|refresh|drop`` and ``--no-cache`` (issue 20), as a user runs them (``cli.main`` in process).

Why: the store is a copy of production rows on the analyst's disk; the user must be able to see what it holds
and from when, bring it up to date cheaply, delete it, and bypass it for a one-off look. Every store these
tests make lives in their own ``RCA_CACHE_DIR``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from rca_toolkit import cli
from rca_toolkit.analyses.bookings.counts import attempt_counts
from rca_toolkit.sources import store
from rca_toolkit.sources.store import files

STORED = ["appointments", "calls", "migrations", "rca_demo_world", "retell_call_sessions", "retell_error_log",
          "retell_function_traces", "webhook_events"]
AT = "2025-10-18T13:20:08+02:00"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A cache folder of this test's own. RCA_CACHE is set so that it is restored afterwards: ``--no-cache``
    sets RCA_CACHE=off in the process, and an in-process main() would otherwise leave it off for later tests."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("RCA_CACHE_DIR", str(folder))
    monkeypatch.setenv("RCA_CACHE", "auto")
    monkeypatch.setenv("RCA_PROGRESS", "0")
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.fixture
def world(demo_sqlite, tmp_path):
    """A copy of the demo SQLite world that a test may change: (url, path)."""
    path = tmp_path / "world.sqlite"
    shutil.copy(demo_sqlite[0].removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}", path


def rca(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def source_counts(path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in STORED}


def assert_fits(text: str) -> None:
    long = [line for line in text.splitlines() if len(line) > 100]
    assert not long, long


def said(text: str) -> str:
    """Text as one line: long paths wrap the messages at 100 columns."""
    return " ".join(text.split())


def rows_read(out: str) -> int:
    return int(re.search(r"([\d,]+) rows read", said(out)).group(1).replace(",", ""))


def test_status_before_a_store_exists_says_so_and_makes_nothing(cache_dir, world, capsys):
    url, _ = world
    code, out, err = rca(capsys, "cache", "status", "--db", url)
    assert (code, err) == (0, "")
    folder = store.folder(cache_dir, sa.make_url(url))
    assert said(out) == f"no store of {url} yet ({folder}) `rca cache refresh --db ...` makes one"
    assert out.splitlines()[-1] == "`rca cache refresh --db ...` makes one"
    assert_fits(out)
    code, out, _ = rca(capsys, "cache", "status", "--db", url, "--format", "json")
    assert code == 0 and json.loads(out) == {"folder": str(folder), "exists": False}
    assert not cache_dir.exists()


def test_refresh_reads_everything_once_then_only_what_changed(cache_dir, world, capsys):
    url, path = world
    counts = source_counts(path)
    code, out, err = rca(capsys, "cache", "refresh", "--db", url)
    assert (code, err) == (0, "")
    assert_fits(out)
    assert said(out).startswith(f"refreshed the store of {url} in ") and rows_read(out) == sum(counts.values())
    assert "read whole" in out.split("\n\n")[0]  # a new store: every table read whole
    table = out.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["table", "rows", "first", "row", "last", "row", "read", "by", "the", "last", "refresh"]
    shown = {line.split()[0]: line.split() for line in table[1:]}
    assert sorted(shown) == STORED
    for name, n in counts.items():  # rows held, and all of them read by this refresh
        assert shown[name][1] == shown[name][-1] == f"{n:,}", name
    folder = store.folder(cache_dir, sa.make_url(url))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE((folder / "store.duckdb").stat().st_mode) == 0o600

    code, out, err = rca(capsys, "cache", "refresh", "--db", url)
    assert (code, err) == (0, "")
    assert_fits(out)
    assert 0 < rows_read(out) < sum(counts.values()) / 20  # the trailing two days, and the one-row demo marker
    assert "(rca_demo_world read whole)" in said(out)
    scanned = int(re.search(r", ([\d,]+) scanned in the source to find changed and deleted rows", said(out)).group(1).replace(",", ""))
    assert scanned == sum(counts.values()) - 1  # the checks read every row of every table but the marker read whole


@pytest.mark.parametrize("option, waits", [([], True), (["--max-rows-per-second", "1000000000"], False)])
def test_refresh_keeps_to_the_rows_per_second_setting_unless_the_option_says_otherwise(cache_dir, world, capsys,
                                                                                      monkeypatch, option, waits,
                                                                                      store_waits):
    """RCA_CACHE_MAX_ROWS_PER_S limits ``rca cache refresh`` as the option does; the option wins. The limiter's
    waits are recorded, not slept: at 50 rows a second the demo's rows ask for minutes of waiting."""
    url, _ = world
    asked = store_waits
    monkeypatch.setenv("RCA_CACHE_MAX_ROWS_PER_S", "50")
    code, out, err = rca(capsys, "cache", "refresh", "--db", url, *option)
    assert (code, err) == (0, "") and rows_read(out) > 1000
    assert (max(asked, default=0) > 10) is waits


def test_json_rows_equal_the_source_after_rows_came_and_went(cache_dir, world, capsys):
    """New rows past the high-water key and rows deleted long ago both reach the store on a plain refresh."""
    url, path = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM appointments WHERE id <= 7")  # weeks before the trailing window
        conn.execute("INSERT INTO retell_error_log (call_session_id, function_trace_id, error_code, error_type, occurred_at, "
                     "error_message, affected_function) SELECT call_session_id, function_trace_id, 'NEW', error_type, "
                     "occurred_at, error_message, affected_function FROM retell_error_log WHERE id <= 5")
    counts = source_counts(path)
    code, out, err = rca(capsys, "cache", "refresh", "--db", url, "--format", "json")
    assert (code, err) == (0, "")
    done = json.loads(out)
    assert done["built_whole"] == ["rca_demo_world"] and done["tables_missing"] == []
    assert {t["table"]: t["rows"] for t in done["status"]["tables"]} == counts
    assert done["rows_checked"] == {t: n for t, n in counts.items() if t != "rca_demo_world"}  # the marker: read whole
    assert done["rows_read"]["retell_error_log"] >= 5 and sum(done["rows_read"].values()) < sum(counts.values()) / 5
    code, out, _ = rca(capsys, "cache", "status", "--db", url, "--format", "json")
    described = json.loads(out)
    assert code == 0 and {t["table"]: t["rows"] for t in described["tables"]} == counts
    assert described["source"] == url and described["storage_zone"] == "Europe/Berlin"


@pytest.mark.parametrize("cache, reads, line", [
    ("auto", False, "the analyses do not read it: they read a SQLite file directly (the cache setting is auto); "
                    "RCA_CACHE=on reads it through this store"),
    ("off", False, "the analyses do not read it: the cache setting is off, they read the database directly"),
    ("on", True, "analyses read it as it is until "),
])
def test_status_says_whether_the_analyses_read_the_store(cache_dir, world, capsys, monkeypatch, cache, reads, line):
    """A SQLite file is read directly unless the cache setting is on: a store of one made by `rca cache refresh`
    is not what the analyses read, and status must not say it is."""
    url, _ = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    monkeypatch.setenv("RCA_CACHE", cache)
    code, out, _ = rca(capsys, "cache", "status", "--db", url)
    assert code == 0 and line in said(out)
    assert ("analyses read it as it is" in said(out)) is reads and ("do not read it" in out) is not reads
    assert_fits(out)
    code, out, _ = rca(capsys, "cache", "status", "--db", url, "--format", "json")
    assert json.loads(out)["read_by_analyses"] is reads


def test_drop_removes_the_store(cache_dir, world, capsys):
    url, _ = world
    folder = store.folder(cache_dir, sa.make_url(url))
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0 and (folder / "store.duckdb").exists()
    code, out, err = rca(capsys, "cache", "drop", "--db", url)
    assert (code, err) == (0, "") and said(out) == f"dropped the store {folder} of {url}"
    assert_fits(out)
    assert not folder.exists()
    code, out, _ = rca(capsys, "cache", "drop", "--db", url, "--format", "json")
    assert code == 0 and json.loads(out) == {"folder": str(folder), "dropped": False}
    assert said(rca(capsys, "cache", "status", "--db", url)[1]).startswith(f"no store of {url} yet")


@pytest.mark.parametrize("argv, names", [
    (["--trailing", "banana"], "--trailing='banana' is not a duration"),
    (["--max-rows-per-second", "0"], "--max-rows-per-second"),
    (["--db", "sqlite:///nonexistent.sqlite"], "nonexistent.sqlite does not exist"),
    (["--db", "sqlite:///nonexistent.sqlite", "--trailing", "1y"], "--trailing='1y'"),  # the option, before connecting
])


def test_bad_input_is_one_line_naming_it_and_exit_2(cache_dir, world, capsys, argv, names):
    url, _ = world
    code, out, err = rca(capsys, "cache", "refresh", *(["--db", url] if "--db" not in argv else []), *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("rca cache: error: ") and names in err, err
    assert not cache_dir.exists() or not any(cache_dir.rglob("store.duckdb"))


def test_status_of_a_missing_sqlite_file_or_an_unsupported_database_says_so_instead_of_advising_a_refresh(cache_dir, capsys, tmp_path):
    """Before, status said "no store yet, `rca cache refresh` makes one" (exit 0) for a mistyped path, and the refresh
    it advised then failed."""
    code, out, err = rca(capsys, "cache", "status", "--db", f"sqlite:///{tmp_path}/typo.sqlite")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and f"SQLite database {tmp_path}/typo.sqlite does not exist" in err, err
    assert not cache_dir.exists()
    # a database the toolkit does not read (PostgreSQL runs on the same host): one line, as refresh says it
    for action in ("status", "refresh"):
        code, out, err = rca(capsys, "cache", action, "--db", "postgresql://root@127.0.0.1:5432/test")
        assert (code, out) == (2, "") and err.count("\n") == 1, (action, err)
        assert "unsupported database 'postgresql://root@127.0.0.1:5432/test' (use SQLite or MariaDB/MySQL" in err
    assert not cache_dir.exists()


@pytest.mark.parametrize("damage", ["head overwritten", "cut short"])
def test_a_damaged_store_file_is_one_line_naming_the_fix_for_every_command_and_drop_then_mends_it(cache_dir, world,
                                                                                                      capsys, monkeypatch,
                                                                                                      damage):
    """A store file whose head was overwritten or that was cut short (a disk filled, a backup half restored) is no
    store any more: every command that opens it says so in one line and names `rca cache drop`, which deletes it;
    the next refresh builds it again. Before, the refresh failed as an internal error and the others told the user to
    wait for another process."""
    url, _ = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    path = next(cache_dir.rglob("store.duckdb"))
    with open(path, "r+b") as file:
        if damage == "cut short":
            file.truncate(1000)
        else:
            file.write(b"\x00" * 4096)
    monkeypatch.setenv("RCA_CACHE", "on")  # the analysis reads this SQLite world through its store
    for argv in (["cache", "status", "--db", url], ["cache", "refresh", "--db", url], ["cache", "refresh", "--full", "--db", url],
                 ["compare", "--db", url, "--at", AT, "--no-changepoints"]):
        code, out, err = rca(capsys, *argv)
        assert (code, out) == (2, ""), (argv, code, out, err)
        assert err.count("\n") == 1 and "cannot open the store" in err and "rca cache drop --db URL" in err, (argv, err)
    assert rca(capsys, "cache", "drop", "--db", url)[0] == 0
    code, out, _ = rca(capsys, "cache", "refresh", "--db", url)
    assert code == 0 and rows_read(out) == sum(source_counts(world[1]).values())


def test_a_store_whose_blocks_no_longer_match_their_checksums_is_one_line_and_a_full_refresh_mends_it(cache_dir, world,
                                                                                                         capsys):
    """Bytes of the store file changed behind DuckDB's back (a disk, a copy): the refresh meets blocks whose checksums
    no longer match. It says so in one line naming the fix (exit 2, before: an internal error, exit 3), and
    `rca cache refresh --full` builds the store again from the source."""
    url, _ = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    path = next(cache_dir.rglob("store.duckdb"))
    size = path.stat().st_size
    with open(path, "r+b") as file:  # the middle third: blocks of the stored tables, past the file's headers
        file.seek(size // 3)
        file.write(bytes(range(256)) * (size // 3 // 256))
    code, out, err = rca(capsys, "cache", "refresh", "--db", url)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and "Corrupt database file" in err and "rca cache refresh --full --db URL" in err, err
    code, out, _ = rca(capsys, "cache", "refresh", "--full", "--db", url)
    assert code == 0 and rows_read(out) == sum(source_counts(world[1]).values())


HOLDER = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'read'); "
          "print('open', flush=True); sys.stdin.readline()")  # holds the store file until told on stdin


@pytest.mark.parametrize("held_for, argv, says", [
    ("read", ["cache", "refresh"], "has it open for reading"),  # an analysis's statement still running
    ("write", ["cache", "status"], "is refreshing it"),
])


def test_a_store_another_process_holds_is_waited_for_then_named_with_that_process(cache_dir, world, capsys, monkeypatch,
                                                                                  held_for, argv, says):
    """DuckDB lets one process write a file, or any number read it. A refresh while another process reads the store,
    or a look while one writes it, waits a while, then names the process holding it (exit 2), and the store is left
    as it was. Before, the refresh called the file damaged and told the user to delete it."""
    url, _ = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    path = next(cache_dir.rglob("store.duckdb"))
    monkeypatch.setattr(files, "LOCK_RETRY_S", 0.5)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), held_for], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        code, out, err = rca(capsys, *argv, "--db", url)
    finally:
        holder.communicate("done\n", timeout=60)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and f"process {holder.pid} {says}" in err and "damaged" not in err, err
    code, out, _ = rca(capsys, "cache", "status", "--db", url)
    assert code == 0 and "unfinished" not in out


def test_an_analysis_that_ended_holds_no_lock_so_a_refresh_from_another_process_does_not_wait(cache_dir, world, capsys):
    """A notebook's kernel keeps its objects (the store's engine too) until it is shut down; a scheduled report's
    refresh, in another process, must not wait for it. The store file is closed moments after the last statement
    (``IDLE_S``): the refresh waits that long at most."""
    url, _ = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    engine = store.open_store(next(cache_dir.iterdir()))
    counts = attempt_counts(engine, start="2025-10-01T00:00:00+02:00", end="2025-10-20T00:00:00+02:00")
    assert counts["attempts"].sum() > 0  # an analysis ran on the store in this process, and its engine is kept
    refresh = ("import sys; from rca_toolkit import cli; from rca_toolkit.sources.store import files; "
               "files.LOCK_RETRY_S = 30; sys.exit(cli.main(['cache', 'refresh', '--db', sys.argv[1]]))")
    done = subprocess.run([sys.executable, "-c", refresh, url], env=dict(os.environ, COLUMNS="100"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "refreshed the store" in done.stdout, done.stderr
    assert attempt_counts(engine, start="2025-10-01T00:00:00+02:00", end="2025-10-20T00:00:00+02:00").equals(counts)


def test_status_says_who_can_read_the_store_from_its_modes_not_from_what_a_refresh_made(cache_dir, world, capsys):
    """The store is masked but still the business's rows. A folder copied or chmod-ed by hand is readable by others:
    status names what is open instead of repeating the promise, and the next refresh closes it again."""
    url, _ = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    folder = next(cache_dir.iterdir())
    folder.chmod(0o755)
    (folder / "store.duckdb").chmod(0o644)
    (folder / "store.duckdb.tmp").mkdir(mode=0o755)  # as DuckDB makes it when a statement spills, by the umask
    (folder / "store.duckdb.tmp").chmod(0o755)
    code, out, _ = rca(capsys, "cache", "status", "--db", url)
    assert code == 0 and f"OPEN TO OTHERS: {folder.name}, store.duckdb, store.duckdb.tmp" in said(out)
    assert "owner only" not in out
    assert_fits(out)
    code, out, _ = rca(capsys, "cache", "status", "--db", url, "--format", "json")
    assert json.loads(out)["others_can_read"] == [folder.name, "store.duckdb", "store.duckdb.tmp"]
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    code, out, _ = rca(capsys, "cache", "status", "--db", url)
    assert "readable by its owner only" in said(out) and "OPEN TO OTHERS" not in out


def test_a_cache_dir_where_no_folder_can_be_made_is_one_line_naming_the_setting(cache_dir, world, capsys, monkeypatch, tmp_path):
    """RCA_CACHE_DIR pointing below a file (a typo, a path from another machine): the refresh and an analysis that
    refreshes first name the folder, the reason and the setting, exit 2, and nothing is written. Before: an internal
    error (NotADirectoryError)."""
    url, _ = world
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RCA_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("RCA_CACHE", "on")
    for argv in (["cache", "refresh", "--db", url], ["compare", "--db", url, "--at", AT, "--no-changepoints"]):
        code, out, err = rca(capsys, *argv)
        assert (code, out) == (2, ""), (argv, err)
        assert err.count("\n") == 1 and f"cannot make the store folder {blocker / 'cache'}" in err and "RCA_CACHE_DIR" in err, err
    assert blocker.read_text() == "not a folder"


def test_a_refresh_the_disk_refuses_to_write_is_one_line_and_the_next_refresh_completes_the_store(cache_dir, world):
    """A store's disk full, or a file-size limit (here the limit, set on the command's own process): the refresh
    says where it stopped, why and what to change, exits 2, and leaves the store unfinished for the next refresh to
    complete. Before: an internal error (DuckDB's TransactionException), exit 3."""
    url, _ = world

    def small_files():  # in the child, before rca starts: writes past 300 kB fail (EFBIG) instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    env = dict(os.environ, COLUMNS="100")
    done = subprocess.run([sys.executable, "-m", "rca_toolkit.cli", "cache", "refresh", "--db", url], env=env,
                          preexec_fn=small_files, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.count("\n") == 1 and "the refresh of the store" in done.stderr and "File too large" in done.stderr
    assert "RCA_CACHE_DIR" in done.stderr and "unfinished" in done.stderr
    folder = next(cache_dir.iterdir())
    assert store.status(folder)["unfinished_refresh_started_utc"] is not None
    done = subprocess.run([sys.executable, "-m", "rca_toolkit.cli", "cache", "refresh", "--db", url], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and rows_read(done.stdout) == sum(source_counts(world[1]).values()), done.stderr
    assert store.status(folder)["unfinished_refresh_started_utc"] is None


@pytest.mark.mariadb
def test_no_cache_reads_mariadb_directly_and_auto_reads_through_a_store(demo_mariadb, cache_dir, tmp_path, capsys, monkeypatch):
    """``--no-cache`` makes no store; without it (RCA_CACHE=auto) a MariaDB server is read through one, and the
    comparison printed is the same."""
    url, _ = demo_mariadb
    argv = ["compare", "--at", AT, "--before", "2d", "--after", "2d", "--no-changepoints", "--format", "json", "--db", url]
    code, direct, err = rca(capsys, *argv, "--no-cache")
    assert (code, err) == (0, "")
    assert not cache_dir.exists() or not any(cache_dir.iterdir())

    monkeypatch.setenv("RCA_CACHE", "auto")  # main() set it to off for the --no-cache run (and its notebooks)
    code, through_store, err = rca(capsys, *argv)
    assert (code, err) == (0, "")
    folder = store.folder(cache_dir, sa.make_url(url))
    assert [p.parent for p in cache_dir.rglob("store.duckdb")] == [folder]
    through_store, direct = json.loads(through_store), json.loads(direct)
    note = through_store["notes"].pop()  # the one difference: the store says it was read, and as of when
    assert re.fullmatch(rf"read from {re.escape(url)} \(local store {folder.name}, as of [\d-]+ [\d:]+ UTC\)", note), note
    assert through_store == direct
    assert direct["metrics"][0]["before"]["n"] >= 10

    code, out, err = rca(capsys, "cache", "status", "--db", url)
    assert (code, err) == (0, "")
    assert_fits(out)
    server = sa.create_engine(url)
    with server.connect() as conn:
        sessions = conn.execute(sa.text("SELECT count(*) FROM retell_call_sessions")).scalar()
    server.dispose()
    assert re.search(rf"^retell_call_sessions +{sessions:,} ", out, re.M) and "(timestamps in UTC)" in out
    said_until = re.search(r"analyses read it as it is until (.+?) \(cache_max_age_s 300 s\)", " ".join(out.split()))
    assert said_until, out  # the age rule the analyses follow is on the screen, with the time it ends


def test_status_says_when_the_older_rows_were_last_checked_and_when_the_analyses_check_them_again(cache_dir, world, capsys,
                                                                                                  monkeypatch):
    """The refreshes the analyses make first check the rows older than the trailing window once every
    ``cache_check_every_s``: the status names the last check and the next one, in the reader's time."""
    from rca_toolkit.analyses import tables

    url, _ = world
    monkeypatch.setenv("RCA_CACHE_CHECK_EVERY_S", "3600")
    monkeypatch.setenv("RCA_CACHE", "on")  # a SQLite file is read through its store only when told
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0
    code, out, err = rca(capsys, "cache", "status", "--db", url)
    assert (code, err) == (0, "")
    assert_fits(out)
    checked = store.status(store.folder(cache_dir, sa.make_url(url)))["checked_at_utc"]
    assert checked is not None
    assert (f"rows older than the trailing window last checked for changes and deletions {tables.when(checked)}; the "
            f"analyses' refreshes check them again after {tables.when(checked + pd.Timedelta(hours=1))} (cache_check_every_s "
            "3600 s), `rca cache refresh` every time") in said(out)
    code, out, _ = rca(capsys, "cache", "status", "--db", url, "--format", "json")
    assert pd.Timestamp(json.loads(out)["checked_at_utc"]) == checked
    monkeypatch.setenv("RCA_CACHE", "auto")  # the analyses neither read nor refresh it: only the command checks
    assert (f"last checked for changes and deletions {tables.when(checked)}; `rca cache refresh` checks them every time"
            in said(rca(capsys, "cache", "status", "--db", url)[1]))


def test_refresh_when_due_leaves_the_older_rows_to_the_check_interval(cache_dir, world, capsys, monkeypatch):
    """``--check-older when-due`` (a frequent cron) checks the older rows only once every ``cache_check_every_s``,
    as the analyses' refreshes do, and says when it did not; the default checks every time."""
    url, path = world
    assert rca(capsys, "cache", "refresh", "--db", url)[0] == 0  # built: counts as checked
    monkeypatch.setenv("RCA_CACHE_CHECK_EVERY_S", "3600")
    code, out, err = rca(capsys, "cache", "refresh", "--db", url, "--check-older", "when-due")
    assert (code, err) == (0, "")
    assert_fits(out)
    assert ", the older rows not checked (not due)" in said(out) and "scanned in the source" not in said(out)
    code, out, _ = rca(capsys, "cache", "refresh", "--db", url, "--check-older", "when-due", "--format", "json")
    assert code == 0 and json.loads(out)["checked_older"] is False and json.loads(out)["rows_checked"] == {}
    monkeypatch.setenv("RCA_CACHE_CHECK_EVERY_S", "1e-6")  # due now
    code, out, _ = rca(capsys, "cache", "refresh", "--db", url, "--check-older", "when-due", "--format", "json")
    done = json.loads(out)
    assert code == 0 and done["checked_older"] is True
    assert sum(done["rows_checked"].values()) == sum(source_counts(path).values()) - 1  # all but the marker read whole
    code, out, err = rca(capsys, "cache", "refresh", "--db", url, "--check-older", "sometimes")
    assert code == 2 and "--check-older" in err and "when-due" in err and len(err.strip().splitlines()) == 1
