"""Scheduled health reports: stable folders, atomic replacement, locks, backfill, prune, schedules.

The slow tests execute the real health notebook with papermill against the demo world and
check the issue's "done when" list through the real ``rca`` command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rca_toolkit.runs import locks, ownership, scheduled
from rca_toolkit.errors import ConfigError

RCA = [sys.executable, "-m", "rca_toolkit.cli"]


def rca(*args: str, progress: bool = False, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "RCA_PROGRESS": "1" if progress else "0"}
    return subprocess.run([*RCA, *args], capture_output=True, text=True, env=env, timeout=timeout)


# --------------------------------------------------------------------------- inputs
def test_dates_and_periods_are_validated_with_a_hint():
    with pytest.raises(ConfigError, match=r"--date='2025-13-01' is not a date \(write it as YYYY-MM-DD"):
        scheduled.parse_day("2025-13-01")
    with pytest.raises(ConfigError, match=r"--date='0001-01-01' is outside the years 1970-2199"):
        scheduled.parse_day("0001-01-01")  # run_health and backfill take strings too: the same range as --date
    with pytest.raises(ConfigError, match="use one of 1d, 7d"):
        scheduled.check_period("2d")
    with pytest.raises(ConfigError, match="is before --from"):
        scheduled.backfill_days(date(2025, 10, 30), date(2025, 10, 1), "1d")
    with pytest.raises(ConfigError, match="is 83,?\\d* 1d reports|split the range"):
        scheduled.backfill_days(date(1970, 1, 1), date(2199, 12, 31), "1d")
    assert len(scheduled.backfill_days(date(2023, 1, 1), date(2025, 9, 26), "1d")) == scheduled.MAX_BACKFILL


def test_backfill_days_step_by_the_period():
    days = scheduled.backfill_days(date(2025, 10, 1), date(2025, 10, 30), "1d")
    assert len(days) == 30 and days[0] == date(2025, 10, 1) and days[-1] == date(2025, 10, 30)
    weeks = scheduled.backfill_days(date(2025, 10, 6), date(2025, 11, 3), "7d")
    assert weeks == [date(2025, 10, 6), date(2025, 10, 13), date(2025, 10, 20), date(2025, 10, 27), date(2025, 11, 3)]


def test_stable_path():
    assert scheduled.health_dir("reports", "7d", date(2025, 10, 13)) == Path("reports/health/7d/2025-10-13")


# --------------------------------------------------------------------------- swap and lock
def test_replace_dir_swaps_complete_folders_and_leaves_nothing_behind(tmp_path):
    final = tmp_path / "health" / "1d" / "2025-10-14"
    first = tmp_path / "health" / "1d" / ".2025-10-14.staging-a"
    first.mkdir(parents=True)
    (first / "report.html").write_text("first")
    scheduled.replace_dir(first, final)
    assert (final / "report.html").read_text() == "first" and not first.exists()

    second = tmp_path / "health" / "1d" / ".2025-10-14.staging-b"
    second.mkdir()
    (second / "report.html").write_text("second")
    (second / "run.json").write_text("{}")
    scheduled.replace_dir(second, final)
    assert sorted(p.name for p in final.iterdir()) == ["report.html", "run.json"]
    assert (final / "report.html").read_text() == "second"
    assert sorted(p.name for p in final.parent.iterdir()) == ["2025-10-14"]


def test_a_held_lock_makes_a_second_run_wait_then_give_up(tmp_path):
    lock = tmp_path / ".2025-10-14.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(locks.Busy, match="another run has held the lock"):
            with locks.file_lock(lock, timeout=0.5):
                pass
    finally:
        holder.kill()
        holder.wait()
    with locks.file_lock(lock, timeout=5):  # released when the holder died
        pass


# --------------------------------------------------------------------------- retention
def _fake_run(root: Path, rel: str, ended: datetime) -> Path:
    folder = root / rel
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"generator": ownership.generator(), "run_id": "20251015T063000Z-abc123",
                                                 "notebook": "notebooks/health_report.ipynb", "status": "ok",
                                                 "outcome": "clear", "started_at": ended.isoformat(),
                                                 "ended_at": ended.isoformat(),
                                                 "parameters": {"period_start": rel.rsplit("/", 1)[-1]}}))
    (folder / "metrics.json").write_text(json.dumps({"verdict": "OK"}))
    return folder


def test_prune_removes_only_runs_older_than_keep_and_updates_the_index(tmp_path):
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    old = _fake_run(tmp_path, "health/1d/2025-10-14", now - timedelta(days=91))
    young = _fake_run(tmp_path, "health/1d/2025-12-14", now - timedelta(days=89))
    other = tmp_path / "notes.txt"
    other.write_text("not a run")

    assert scheduled.prune(tmp_path, "90d", now=now, dry_run=True).removed == [old]
    assert old.exists()
    assert scheduled.prune(tmp_path, "90d", now=now).removed == [old]
    assert not old.exists() and young.exists() and other.exists()
    index = json.loads((tmp_path / "index.json").read_text())
    assert [r["path"] for r in index["runs"]] == ["health/1d/2025-12-14"]


def test_prune_rejects_a_bad_age(tmp_path):
    with pytest.raises(ConfigError, match="--keep='ninety' is not a duration"):
        scheduled.prune(tmp_path, "ninety")


# --------------------------------------------------------------------------- schedules
def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^# --- (.+)$", text, flags=re.M)
    return {head.strip(): body for head, body in zip(parts[1::2], parts[2::2])}


def test_health_command_is_the_one_line_every_scheduler_runs():
    assert scheduled.health_command("/opt/rca/bin/rca", "2025-10-14") == \
        "/opt/rca/bin/rca report health --date 2025-10-14 --period 1d"
    assert scheduled.health_command("rca", "2025-10-13", "7d", 2, "prod") == \
        "rca report health --date 2025-10-13 --period 7d --company 2 --db prod"


def test_printed_cron_and_systemd_lines_run_the_command_for_yesterday_in_berlin(tmp_path):
    text = scheduled.schedule_text("06:30", rca_bin="echo", workdir=tmp_path)
    yesterday = (datetime.now(ZoneInfo("Europe/Berlin")) - timedelta(days=1)).date().isoformat()
    expected = f"report health --date {yesterday} --period 1d"

    cron = next(line for line in text.splitlines() if line.startswith("30 6 * * * "))
    command = cron[len("30 6 * * * "):].replace("\\%", "%").split(" >> ")[0]  # what cron hands to sh
    assert subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout.strip() == expected

    service = _sections(text)["/etc/systemd/system/rca-health-1d.service"]
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    argv = exec_start[len("ExecStart="):]
    assert argv.startswith('/bin/sh -c "') and argv.endswith('"')
    script = re.sub(r'\\(.)|\$\$|%%', lambda m: m.group(1) or m.group(0)[0], argv[len('/bin/sh -c "'):-1])  # systemd unquoting
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.strip() == expected


def test_printed_comments_fit_a_100_column_terminal(tmp_path):
    """Config lines are what cron and systemd read whole; the comments around them are for people."""
    text = scheduled.schedule_text("06:30", rca_bin="/opt/rca/bin/rca", workdir=tmp_path)
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert len(comments) >= 8 and all(len(line) <= 100 for line in comments), [c for c in comments if len(c) > 100]
    assert "# (hook OnFailure= for alerts)" in comments


def test_printed_systemd_units_pass_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = scheduled.schedule_text("06:30", period="7d", rca_bin=sys.executable, workdir=tmp_path)
    sections = _sections(text)
    for name in ("rca-health-7d.service", "rca-health-7d.timer"):
        (tmp_path / name).write_text(sections[f"/etc/systemd/system/{name}"].split("\n# enable")[0])
    assert "OnCalendar=Mon *-*-* 06:30:00 Europe/Berlin" in sections["/etc/systemd/system/rca-health-7d.timer"]
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "rca-health-7d.service"),
                           str(tmp_path / "rca-health-7d.timer")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_schedule_refuses_a_url_with_a_password():
    with pytest.raises(ConfigError, match="carries credentials"):
        scheduled.schedule_text("06:30", db="mysql+pymysql://ro:secret@db/app")
    with pytest.raises(ConfigError, match="--at='6h' is not a time of day"):
        scheduled.schedule_text("6h")


def test_cli_schedule_and_bad_input_exit_codes():
    done = rca("schedule", "health", "--command-for", "2025-10-14", "--rca", "rca")
    assert done.returncode == 0 and done.stdout.strip() == "rca report health --date 2025-10-14 --period 1d"
    bad = rca("report", "health", "--date", "14.10.2025")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "rca report: error: --date='14.10.2025' is not a date (write it as YYYY-MM-DD, e.g. 2025-10-14)"
    half = rca("report", "health", "--from", "2025-10-01")
    assert half.returncode == 2 and "needs both --from and --to" in half.stderr


# --------------------------------------------------------------------------- real runs (papermill)
def _health_runs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "health" / "1d").iterdir() if not p.name.startswith("."))


BACKFILL_FROM, BACKFILL_DAYS = 10, 6  # 2025-10-10 .. 2025-10-15: quiet days, then the phantom-column ACT days


@pytest.fixture(scope="module")
def backfilled(demo_sqlite, tmp_path_factory):
    """A real backfill through the CLI (two reports at a time), shared by the tests below.

    Six days keep the suite fast (each report is a kernel run); the issue's 30-day backfill is
    the same code path and is demonstrated with `rca report health --from 2025-10-01 --to 2025-10-30`.
    """
    url, _truth = demo_sqlite
    root = tmp_path_factory.mktemp("backfill") / "reports"
    last = BACKFILL_FROM + BACKFILL_DAYS - 1
    started = time.monotonic()
    done = rca("report", "health", "--from", f"2025-10-{BACKFILL_FROM}", "--to", f"2025-10-{last}", "--jobs", "2",
               "--db", url, "--reports-dir", str(root), progress=True, timeout=1800)
    elapsed = time.monotonic() - started
    print(f"{BACKFILL_DAYS}-day backfill took {elapsed:.0f} s wall ({elapsed / BACKFILL_DAYS:.1f} s per report with --jobs 2)")
    return url, root, done


@pytest.mark.slow
def test_backfill_with_progress_bar_and_index(backfilled):
    _url, root, done = backfilled
    days = [f"2025-10-{d:02d}" for d in range(BACKFILL_FROM, BACKFILL_FROM + BACKFILL_DAYS)]
    assert done.returncode == 1, done.stderr  # the phantom-column days are ACT
    assert f"{BACKFILL_DAYS}/{BACKFILL_DAYS}" in done.stderr  # the tqdm bar reached the end
    runs = _health_runs(root)
    assert [p.name for p in runs] == days
    index = json.loads((root / "index.json").read_text())
    assert index["count"] == BACKFILL_DAYS
    assert sorted(r["date"] for r in index["runs"]) == days
    assert all(r["status"] == "ok" and r["notebook"] == "health_report" for r in index["runs"])
    verdicts = {r["date"]: r["verdict"] for r in index["runs"]}
    assert verdicts["2025-10-14"] == "ACT" and verdicts["2025-10-10"] in ("OK", "WATCH")
    assert (root / "index.html").read_text().count('<span class="v v-') == BACKFILL_DAYS
    assert not [p for p in (root / "health/1d").iterdir() if ".staging" in p.name or ".old-" in p.name]


@pytest.mark.slow
def test_act_day_names_the_failures_and_a_rerun_replaces_its_folder(backfilled):
    url, root, _done = backfilled
    folder = root / "health/1d/2025-10-14"
    metrics = json.loads((folder / "metrics.json").read_text())
    line = metrics["verdict_line"]
    assert metrics["verdict"] == "ACT"
    assert line.startswith("ACT: booking success on path book_appointment 0 % (0/")
    assert "since 2025-10-13" in line and "Unknown column 'created_by'" in line
    first_id = json.loads((folder / "run.json").read_text())["run_id"]
    stale = folder.parent / ".2025-10-14.staging-0a1b2c"  # a killed run's leftover: cleared
    foreign = folder.parent / ".2025-10-14.notes"  # a hidden folder of somebody else's: kept
    for kept in (stale, foreign):
        kept.mkdir()
        (kept / "keep.txt").write_text("x")

    again = rca("report", "health", "--date", "2025-10-14", "--db", url, "--reports-dir", str(root))
    assert again.returncode == 1, again.stderr
    assert not stale.exists() and (foreign / "keep.txt").read_text() == "x"
    shutil.rmtree(foreign)
    assert " ".join(line.split()) in " ".join(again.stdout.split())  # the whole verdict, wrapped for a terminal:
    assert again.stdout.startswith("2025-10-14 1d ACT: booking success on path")  # day and word lead the first line
    assert max(map(len, again.stdout.splitlines()[:-2])) <= 100  # (the last two lines: paths of any length)
    run = json.loads((folder / "run.json").read_text())
    assert run["run_id"] != first_id and run["status"] == "ok"
    assert len(_health_runs(root)) == BACKFILL_DAYS  # the same date twice gives one folder
    assert {"report.html", "report.md", "metrics.json", "params.yaml", "run.json", "health_report.ipynb"} <= \
        {p.name for p in folder.iterdir()}
    index = json.loads((root / "index.json").read_text())
    assert index["count"] == BACKFILL_DAYS and index["runs"][0]["date"] == "2025-10-14"  # the newest run first
    assert 'href="health/1d/2025-10-14/report.html"' in (root / "index.html").read_text()


@pytest.mark.slow
def test_quiet_day_exits_0_and_two_runs_at_once_leave_one_complete_folder(demo_sqlite, tmp_path):
    url, _truth = demo_sqlite
    root = tmp_path / "reports"
    env = {**os.environ, "RCA_PROGRESS": "0"}
    args = [*RCA, "report", "health", "--date", "2025-11-20", "--db", url, "--reports-dir", str(root)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert [p.name for p in _health_runs(root)] == ["2025-11-20"]
    metrics = json.loads((root / "health/1d/2025-11-20/metrics.json").read_text())
    assert metrics["verdict"] in ("OK", "WATCH")
    run = json.loads((root / "health/1d/2025-11-20/run.json").read_text())
    assert run["status"] == "ok" and (root / "health/1d/2025-11-20/report.html").stat().st_size > 0
    assert json.loads((root / "index.json").read_text())["count"] == 1


def test_a_missing_database_is_one_line_and_leaves_no_report(tmp_path):
    root = tmp_path / "reports"
    done = rca("report", "health", "--date", "2025-10-14", "--db", f"sqlite:///{tmp_path}/missing.sqlite",
               "--reports-dir", str(root))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"rca report: error: SQLite database {tmp_path}/missing.sqlite does not exist "
                                   "(build the demo with `make demo` or `rca demo-data --db sqlite:///data/demo.sqlite`)")
    assert not root.exists()
