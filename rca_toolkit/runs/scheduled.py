"""Scheduled health reports: stable folders, atomic replacement, locking, backfill, retention.

Why: a report that a scheduler runs every morning must be safe to re-run and easy to find.
Each (period, date) has one stable folder ``<reports>/health/<period>/<date>/``. A run is
executed by the notebook runner into a hidden staging folder next to it, then swapped into
place: on Linux with ``renameat2(RENAME_EXCHANGE)`` (one atomic step, a reader sees the old
or the new report, never a mix or nothing), elsewhere with two renames. Runs of the same
(period, date) are serialised by an ``flock`` on ``.<date>.lock``, so two schedulers firing at
once never interleave; different dates run in parallel. After every run the index
(:mod:`rca_toolkit.runs.index`) is regenerated.

Outcome for schedulers (``rca report health`` exits with it, README "Exit codes"): OK or WATCH
nothing to act on, ACT found something; a failed run is bad input when the notebook failed on an
``RcaError``, else an internal error (as for ``rca run``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shlex
import shutil
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from rca_toolkit.analyses.health import periods
from rca_toolkit.runs import index as run_index
from rca_toolkit.runs import ownership, shell_quoting
from rca_toolkit.runs.locks import LOCK_TIMEOUT_S, file_lock
from rca_toolkit.config import load_settings, progress_enabled
from rca_toolkit.errors import ConfigError
from rca_toolkit.outcome import Outcome
from rca_toolkit.rules.timeutil import parse_date, source_tz

PERIODS = periods.PERIODS
HEALTH_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "health_report.ipynb"
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_ZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


@dataclass
class HealthRun:
    """One scheduled run: where it landed, how it ended and what it concluded."""

    day: date
    period: str
    path: Path
    status: str  # ok / failed / error (from the notebook runner)
    verdict: str | None  # OK / WATCH / ACT, None when the run failed
    verdict_line: str | None
    error: str | None
    run_outcome: Outcome = Outcome.CLEAR  # the notebook run's own (RunResult.outcome)
    kept_previous: Path | None = None  # the good report this failed re-run did not replace

    @property
    def outcome(self) -> Outcome:
        """ACT found something, OK/WATCH nothing to act on; a failed run as the runner judged it, and a
        run that recorded no verdict an internal error (the packaged notebook always records one)."""
        if self.run_outcome != Outcome.CLEAR:
            return self.run_outcome
        if self.verdict not in ("OK", "WATCH", "ACT"):
            return Outcome.INTERNAL_ERROR
        return Outcome.FOUND if self.verdict == "ACT" else Outcome.CLEAR

    def to_dict(self) -> dict:
        return {"date": self.day.isoformat(), "period": self.period, "path": str(self.path), "status": self.status,
                "verdict": self.verdict, "verdict_line": self.verdict_line, "error": self.error,
                "outcome": self.outcome.value, "kept_previous": str(self.kept_previous) if self.kept_previous else None}


# --------------------------------------------------------------------------- inputs
def parse_day(text: str, *, name: str = "--date") -> date:
    """``YYYY-MM-DD`` -> date in the years the data can hold, or one clear line naming the input (the one
    day rule, ``rules.timeutil.parse_date``)."""
    return parse_date(text, name=name)


def check_period(period: str) -> str:
    if period not in PERIODS:
        raise ConfigError(f"--period={period!r} is not supported", hint=f"use one of {', '.join(PERIODS)}")
    return period


MAX_BACKFILL = 1000  # periods per backfill: 83,000 kernel runs for 1970..2199 is a typo, not a plan


def backfill_days(start: date, end: date, period: str) -> list[date]:
    """Period starts from ``start`` to ``end`` inclusive, one period apart."""
    check_period(period)
    if end < start:
        raise ConfigError(f"--to {end} is before --from {start}", hint="swap the two dates")
    step = timedelta(days=PERIODS[period])
    count = (end - start) // step + 1
    if count > MAX_BACKFILL:
        raise ConfigError(f"--from {start} --to {end} is {count} {period} reports (one notebook run each, several "
                          f"seconds apiece)", hint=f"backfill at most {MAX_BACKFILL} at a time: split the range")
    days, day = [], start
    while day <= end:
        days.append(day)
        day += step
    return days


def reports_root(root: str | Path | None = None) -> Path:
    return Path(root if root is not None else load_settings().reports_dir)


def health_dir(root: str | Path, period: str, day: date) -> Path:
    """The stable folder of one report: ``<root>/health/<period>/<YYYY-MM-DD>``."""
    return Path(root) / "health" / check_period(period) / day.isoformat()


# --------------------------------------------------------------------------- locking and swapping
def _lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}.lock"


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``RENAME_EXCHANGE``); False when unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if func(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_dir(new: Path, final: Path) -> None:
    """Put the complete folder ``new`` at ``final``, replacing any previous one (caller holds the lock)."""
    if not final.exists():
        os.rename(new, final)
        return
    if _renameat2_exchange(new, final):
        shutil.rmtree(new)  # ``new`` now holds the previous report
        return
    aside = final.parent / f".{final.name}.old-{secrets.token_hex(3)}"
    os.rename(final, aside)
    os.rename(new, final)
    shutil.rmtree(aside)


def _clear_stale(final: Path) -> None:
    """Leftovers of a killed run of this date: only the names this module makes (``.staging-`` and ``.old-``
    with their six hex digits), and only while the lock is held. Any other hidden folder is someone else's."""
    own = re.compile(rf"\.{re.escape(final.name)}\.(staging|old)-[0-9a-f]{{6}}")
    for leftover in final.parent.glob(f".{final.name}.*"):
        if leftover.is_dir() and not leftover.is_symlink() and own.fullmatch(leftover.name):
            shutil.rmtree(leftover, ignore_errors=True)


# --------------------------------------------------------------------------- runs
def run_health(day: date | str, period: str = "1d", *, company_id: int = 0, db: str | None = None,
               root: str | Path | None = None, notebook: str | Path | None = None,
               lock_timeout: float = LOCK_TIMEOUT_S, update_index: bool = True,
               show_personal_data: bool = False) -> HealthRun:
    """Execute the health notebook for one period into its stable folder and refresh the index
    (personal data masked in every file unless ``show_personal_data``, as for ``rca run``)."""
    from rca_toolkit.runs.runner import run_notebook

    day = parse_day(day) if isinstance(day, str) else day
    check_period(period)
    if int(company_id) < 0:
        raise ConfigError(f"--company={company_id} is negative", hint="give a company id, or 0 for all companies")
    root = reports_root(root)
    ownership.check_output_folder(root, option="--reports-dir")
    final = health_dir(root, period, day)
    params = {"period_start": day.isoformat(), "period": period, "company_id": int(company_id)}
    _preflight(db)
    with file_lock(_lock_path(final), timeout=lock_timeout, what=f"health {period} {day}"):
        _clear_stale(final)
        _check_replaceable(final)
        staging = final.parent / f".{final.name}.staging-{secrets.token_hex(3)}"
        try:
            result = run_notebook(notebook or HEALTH_NOTEBOOK, params, db=db, out_dir=staging,
                                  show_personal_data=show_personal_data)
            landed, kept = _settle(result, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    metrics = result.metrics or {}
    run = HealthRun(day, period, landed, result.status, metrics.get("verdict"), metrics.get("verdict_line"),
                    result.error, result.outcome, kept)
    if update_index:
        run_index.write_index(root)
    return run


def _check_replaceable(final: Path) -> None:
    """A folder at the report's place that rca did not write is never replaced (refused before the run)."""
    if final.exists() or final.is_symlink():
        reason = ownership.foreign_reason(final)
        if reason:
            raise ConfigError(f"{final} was not written by rca ({reason}); a re-run would replace it",
                              hint="move it elsewhere, then run the report again")


def _settle(result, final: Path) -> tuple[Path, Path | None]:
    """Put a finished run in place: (where it landed, the previous good report it left alone or None).

    Why: a failed re-run must not destroy the good report of the same date. It goes beside it as
    ``<date>.failed-<run id>`` (listed in the index, pruned like any run); otherwise it replaces it.
    """
    previous = ownership.read_signed_run(final) if final.is_dir() else None
    if result.status != "ok" and previous is not None and previous.get("status") == "ok":
        beside = final.parent / f"{final.name}.failed-{result.run_dir.name}"
        os.rename(result.run_dir, beside)
        return beside, final
    replace_dir(result.run_dir, final)
    return final, None


def _preflight(db: str | None) -> None:
    """An unreachable or missing database is one clear line (exit 2) before any kernel starts."""
    from rca_toolkit.sources.db import check_reachable

    check_reachable(db)


def backfill(start: date | str, end: date | str, period: str = "1d", *, company_id: int = 0, db: str | None = None,
             root: str | Path | None = None, progress: bool | None = None, notebook: str | Path | None = None,
             jobs: int = 1, show_personal_data: bool = False) -> list[HealthRun]:
    """One run per period start in ``[start, end]`` with a tqdm progress bar; ``jobs`` runs at once.

    Parallel runs use separate processes (each executes its own kernel); they never share a
    report folder, and the index is rebuilt under its own lock after each run.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from rca_toolkit.config import progress_bar as tqdm  # a terminal bar, or plain lines in a log

    start = parse_day(start, name="--from") if isinstance(start, str) else start
    end = parse_day(end, name="--to") if isinstance(end, str) else end
    if int(jobs) < 1:
        raise ConfigError(f"--jobs={jobs} is not a positive number", hint="use 1 (one report at a time) or more")
    days = backfill_days(start, end, period)
    root = reports_root(root)
    show = progress_enabled() if progress is None else progress
    kwargs = {"company_id": company_id, "db": db, "root": root, "notebook": notebook,
              "show_personal_data": show_personal_data}
    runs: list[HealthRun] = []
    with tqdm(total=len(days), desc=f"health {period}", unit="report", disable=not show) as bar:
        if jobs == 1:
            for day in days:
                bar.set_postfix_str(day.isoformat())
                runs.append(run_health(day, period, **kwargs))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(int(jobs), len(days)), mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(run_health, day, period, **kwargs) for day in days]
                for future in as_completed(futures):
                    run = future.result()
                    bar.set_postfix_str(run.day.isoformat())
                    runs.append(run)
                    bar.update()
    return sorted(runs, key=lambda r: r.day)


def combined_outcome(runs: list[HealthRun]) -> Outcome:
    """The worst outcome of the runs (a failure beats ACT beats OK/WATCH); none at all is an internal error."""
    return Outcome.worst((r.outcome for r in runs), default=Outcome.INTERNAL_ERROR)


# --------------------------------------------------------------------------- retention
@dataclass
class Pruned:
    """What a prune removed, and the old folders it left alone because rca did not write them (with why)."""

    removed: list[Path]
    skipped: list[tuple[Path, str]]


def prune(root: str | Path | None = None, keep: str = "90d", *, now: datetime | None = None,
          dry_run: bool = False) -> Pruned:
    """Remove run folders that ended more than ``keep`` ago, then regenerate the index.

    Only folders rca wrote are removed (:func:`rca_toolkit.runs.ownership.foreign_reason`: a signed
    ``run.json`` and nothing a run does not write); any other folder holding a ``run.json`` is skipped.
    """
    from rca_toolkit.rules.timeutil import parse_duration

    age = parse_duration(keep, name="--keep").to_pytimedelta()
    root = reports_root(root)
    now = now or datetime.now(timezone.utc)
    removed: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for entry in run_index.collect(root):
        ended = entry["ended_dt"]
        if ended is None or now - ended <= age:
            continue
        folder = root / entry["path"]
        reason = ownership.foreign_reason(folder)
        if reason is None and not dry_run:
            with file_lock(_lock_path(folder), what=str(folder)):  # never delete under a running report
                reason = ownership.foreign_reason(folder)  # again, under the lock
                if reason is None:
                    shutil.rmtree(folder, ignore_errors=False)
        if reason is None:
            removed.append(folder)
        else:
            skipped.append((folder, reason))
    if not dry_run:
        run_index.write_index(root)
    return Pruned(removed, skipped)


# --------------------------------------------------------------------------- schedules
def health_argv(rca_bin: str, day: str, period: str = "1d", company_id: int | str = 0,
                db: str | None = None) -> list[str]:
    """The arguments of the one ``rca report health`` run every scheduler starts (cron, systemd, Airflow).

    A ``--db`` with a password is refused (it would be stored in the schedule), and so is a value with a
    control character (it would end the crontab line or the unit directive early)."""
    shell_quoting.refuse_credentials(db)
    parts = [rca_bin, "report", "health", "--date", day, "--period", period]
    if company_id:
        parts += ["--company", str(company_id)]
    if db:
        parts += ["--db", db]
    for name, value in zip(("--rca", "", "", "", "--date", "", "--period", "", "--company", "", "--db"), parts):
        shell_quoting.one_line(value, name=name or "argument")
    return parts


def health_command(rca_bin: str, day: str, period: str = "1d", company_id: int | str = 0, db: str | None = None) -> str:
    """:func:`health_argv` as one shell line, every value quoted (``shlex.split`` gives the argv back)."""
    return shlex.join(health_argv(rca_bin, day, period, company_id, db))


def default_rca_bin() -> str:
    """Absolute path of this installation's ``rca`` (cron and systemd have a minimal PATH)."""
    beside = Path(sys.executable).parent / "rca"
    return str(beside) if beside.exists() else shutil.which("rca") or "rca"


def _date_expression(period: str, tz: str) -> str:
    """Shell expression for the day the run reports on: yesterday, or the start of last week (in ``tz``)."""
    ago = "yesterday" if period == "1d" else "-7days"
    return f'"$(TZ={shlex.quote(tz)} date -d {ago} +%F)"'


def _scheduled_line(rca_bin: str, period: str, company_id: int | str, db: str | None, tz: str) -> str:
    """The shell line of :func:`health_command` whose date is computed when it runs."""
    argv = health_argv(rca_bin, "DAY", period, company_id, db)
    quoted = [shlex.quote(arg) for arg in argv]
    quoted[4] = _date_expression(period, tz)
    return " ".join(quoted)


def schedule_text(at: str = "06:30", period: str = "1d", *, company_id: int | str = 0, db: str | None = None,
                  rca_bin: str | None = None, workdir: str | Path | None = None, timezone_name: str | None = None,
                  env_file: str = shell_quoting.ENV_FILE) -> str:
    """A crontab line and a systemd service/timer pair that run :func:`health_command`; times are in
    ``timezone_name`` (default the source zone, :func:`rca_toolkit.rules.timeutil.source_tz`: Europe/Berlin).

    Every value is shell-quoted, then escaped for cron (``%``) and systemd (quotes, ``$``, ``%``); the
    service reads secrets (``RCA_DATABASE_URL``, a profile's ``password_env``) from ``env_file``."""
    timezone_name = timezone_name or source_tz()
    match = _TIME.match(at.strip())
    if not match:
        raise ConfigError(f"--at={at!r} is not a time of day", hint="write HH:MM, e.g. 06:30")
    check_period(period)
    if not _ZONE.fullmatch(timezone_name):
        raise ConfigError(f"time zone {timezone_name!r} is not an IANA zone name", hint="e.g. Europe/Berlin")
    env_file = shell_quoting.check_env_file(env_file)
    hour, minute = int(match.group(1)), int(match.group(2))
    rca_bin = rca_bin or default_rca_bin()
    workdir = Path(workdir or Path.cwd()).resolve()
    shell_quoting.one_line(str(workdir), name="--workdir")
    dow = "*" if period == "1d" else "1"
    line = _scheduled_line(rca_bin, period, company_id, db, timezone_name)
    cron_cmd = shell_quoting.cron_escape(f"cd {shlex.quote(str(workdir))} && RCA_PROGRESS=0 {line}")
    exec_start = "/bin/sh -c " + shell_quoting.systemd_word(f"exec {line}")
    name = f"rca-health-{period}"
    calendar = f"*-*-* {hour:02d}:{minute:02d}:00 {timezone_name}" if period == "1d" else \
        f"Mon *-*-* {hour:02d}:{minute:02d}:00 {timezone_name}"
    unit_workdir = str(workdir).replace("%", "%%")
    return f"""# --- crontab (crontab -e); times in the server's zone, set CRON_TZ where cron supports it
CRON_TZ={timezone_name}
# cron reads no EnvironmentFile: give a profile name (password_env) or export the secrets
# in the crontab's environment
{minute} {hour} * * {dow} {cron_cmd} >> reports/health-cron.log 2>&1

# --- /etc/systemd/system/{name}.service
[Unit]
Description=rca health report ({period}) for the previous period
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={unit_workdir}
Environment=RCA_PROGRESS=0
# secrets, never in this file: {env_file} (root-owned, mode 0600) holds lines such as
#   RCA_DATABASE_URL=mysql+pymysql://readonly:...@db.internal:3306/askproai
# or the profile's password_env variable
EnvironmentFile=-{env_file}
# exit 1 = verdict ACT, 2 = bad input, 3 = internal error: all mark the unit failed
# (hook OnFailure= for alerts)
ExecStart={exec_start}

# --- /etc/systemd/system/{name}.timer
[Unit]
Description=Run {name}.service at {hour:02d}:{minute:02d} {timezone_name}

[Timer]
OnCalendar={calendar}
Persistent=true

[Install]
WantedBy=timers.target

# enable: systemctl daemon-reload && systemctl enable --now {name}.timer
"""
