"""``rca report health|prune`` and ``rca schedule health``: scheduled reports and their upkeep.

Exit codes of ``rca report health`` are made for schedulers (README "Exit codes"): 0 OK or WATCH,
1 ACT, 2 bad input (or a run that failed on an ``RcaError``), 3 a run that failed otherwise. A
backfill exits with the worst of its runs.
"""

from __future__ import annotations

import argparse
import sys

from rca_toolkit.analyses import tables
from rca_toolkit.runs import ownership, scheduled, shell_quoting
from rca_toolkit.cli import MAX_JOBS, add_db_option, add_format_option, add_personal_data_option, emit, int_in
from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.timeutil import parse_date
from rca_toolkit.sources.credentials import carries_credentials
from rca_toolkit.outcome import Outcome


_company = int_in(0, what="a company id")


def _day(option: str):
    """An argparse ``type``: a calendar day in the range the data can hold (one line naming ``option``)."""
    return lambda text: parse_date(text, name=option)


def register(sub) -> None:
    report = sub.add_parser("report", help="scheduled reports: daily/weekly health, retention",
                            description="Scheduled reports written to stable folders, with an index of runs.")
    report_sub = report.add_subparsers(dest="report_command", metavar="REPORT")

    health = report_sub.add_parser(
        "health", help="health report of one period (or a backfilled range)",
        description="Run notebooks/health_report.ipynb into reports/health/<period>/<date>/ (re-runs replace it "
                    "atomically) and refresh reports/index.html. Exit 0 OK/WATCH, 1 ACT, 2 bad input, 3 internal error.")
    when = health.add_mutually_exclusive_group()
    when.add_argument("--date", type=_day("--date"), metavar="YYYY-MM-DD", help="first day of the period (Europe/Berlin calendar day)")
    when.add_argument("--from", dest="date_from", type=_day("--from"), metavar="YYYY-MM-DD", help="backfill: first period start")
    health.add_argument("--to", dest="date_to", type=_day("--to"), metavar="YYYY-MM-DD", help="backfill: last period start (inclusive)")
    health.add_argument("--period", default="1d", choices=sorted(scheduled.PERIODS), help="1d (daily) or 7d (weekly)")
    health.add_argument("--company", type=_company, default=0, metavar="ID", help="company id (default 0 = all companies)")
    health.add_argument("--jobs", type=int_in(1, MAX_JOBS), default=1, metavar="N",
                        help=f"backfill: reports to run at once, 1-{MAX_JOBS} (default 1)")
    health.add_argument("--reports-dir", default=None, metavar="DIR", help="reports root (default: settings, ./reports)")
    add_db_option(health)
    add_format_option(health)
    add_personal_data_option(health)
    health.set_defaults(func=_health)

    prune = report_sub.add_parser("prune", help="remove run folders older than --keep and update the index")
    prune.add_argument("--keep", default="90d", metavar="AGE", help="keep runs that ended within this age (default 90d)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    prune.add_argument("--reports-dir", default=None, metavar="DIR", help="reports root (default: settings, ./reports)")
    prune.set_defaults(func=_prune)
    report.set_defaults(func=lambda args: _usage(report, "health or prune"))

    schedule = sub.add_parser("schedule", help="print crontab/systemd entries that run a scheduled report")
    schedule_sub = schedule.add_subparsers(dest="schedule_command", metavar="REPORT")
    sh = schedule_sub.add_parser(
        "health", help="crontab line and systemd timer/service for `rca report health`",
        description="Print (never install) a crontab line and a systemd service/timer pair that run the health "
                    "report every day (1d) or every Monday (7d) for the previous period.")
    sh.add_argument("--at", default="06:30", metavar="HH:MM", help="time of day, Europe/Berlin (default 06:30)")
    sh.add_argument("--period", default="1d", choices=sorted(scheduled.PERIODS))
    sh.add_argument("--company", type=_company, default=0, metavar="ID")
    sh.add_argument("--db", default=None, metavar="PROFILE", help="database profile name (no password in unit files)")
    sh.add_argument("--rca", default=None, metavar="PATH", help="rca executable (default: the one on PATH)")
    sh.add_argument("--workdir", default=None, metavar="DIR", help="project directory (default: current)")
    sh.add_argument("--env-file", default=shell_quoting.ENV_FILE, metavar="PATH",
                    help="EnvironmentFile= of the systemd service, holding secrets such as RCA_DATABASE_URL "
                         "(default: %(default)s)")
    sh.add_argument("--command-for", default=None, nargs="+", type=_day("--command-for"), metavar="YYYY-MM-DD",
                    help="print only the command line for each date, one per line (what Airflow and cron run)")
    sh.set_defaults(func=_schedule)
    schedule.set_defaults(func=lambda args: _usage(schedule, "health"))


def _usage(parser: argparse.ArgumentParser, choices: str) -> Outcome:
    """The help on stdout, and the mistake as the one stderr line of every bad input (exit 2)."""
    parser.print_help()
    raise ConfigError(f"{parser.prog} needs a report: {choices}", hint=f"see `{parser.prog} --help`")


def _health(args: argparse.Namespace) -> Outcome:
    if args.date_from or args.date_to:
        if not (args.date_from and args.date_to):
            raise ConfigError("a backfill needs both --from and --to", hint="e.g. --from 2025-10-01 --to 2025-10-30")
        runs = scheduled.backfill(args.date_from, args.date_to, args.period, company_id=args.company, db=args.db,
                                  root=args.reports_dir, jobs=args.jobs, show_personal_data=args.show_personal_data)
    elif args.date:
        runs = [scheduled.run_health(args.date, args.period, company_id=args.company, db=args.db, root=args.reports_dir,
                                     show_personal_data=args.show_personal_data)]
    else:
        raise ConfigError("rca report health needs --date or --from/--to", hint="e.g. --date 2025-10-14")
    outcome = scheduled.combined_outcome(runs)
    if args.format == "json":
        emit({"runs": [r.to_dict() for r in runs], "outcome": outcome.value}, "json")
    else:
        for run in runs:
            head = run.verdict_line or f"{run.status.upper()}: {run.error or 'no verdict recorded'}"
            # the day and its verdict word lead the first line (what a cron log is searched for); the reasons wrap
            emit(tables.wrap_lines([f"{run.day} {run.period} {head}"], hang="    ") + f"\n  -> {run.path / 'report.html'}",
                 "text")
            if run.kept_previous:
                emit(f"  the previous good report is kept: {run.kept_previous / 'report.html'} "
                     f"(this failed run is beside it: {run.path.name})", "text")
        emit(f"index: {scheduled.reports_root(args.reports_dir) / 'index.html'}", "text")  # rebuilt after each run
    for run in runs:  # a failed run is also the one stderr line of its mistake (the error is the writer's, redacted)
        if run.error:
            print(f"rca report: error: health {run.day} {run.period} failed: {run.error}", file=sys.stderr)
    return outcome


def _prune(args: argparse.Namespace) -> Outcome:
    if args.reports_dir is not None:  # a file given as the folder: one line, not the index writer's error
        ownership.check_output_folder(args.reports_dir, option="--reports-dir")
    pruned = scheduled.prune(args.reports_dir, args.keep, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    emit(f"{verb} {len(pruned.removed)} run folder(s) older than {args.keep}", "text")
    for path in pruned.removed:
        emit(f"  {path}", "text")
    if pruned.skipped:
        emit(f"skipped {len(pruned.skipped)} old folder(s) not written by rca (never deleted):", "text")
        for path, reason in pruned.skipped:
            emit(f"  {path}: {reason}", "text")
    return Outcome.CLEAR


def _schedule(args: argparse.Namespace) -> Outcome:
    for option, value in (("--rca", args.rca), ("--workdir", args.workdir), ("--env-file", args.env_file)):
        if carries_credentials(value):  # every printed value, not only --db (scheduled refuses that one)
            raise ConfigError(f"{option} carries credentials and would be stored in a crontab/unit file",
                              hint=f"give {option} without a password")
    rca_bin = args.rca or scheduled.default_rca_bin()
    if args.command_for:
        days = args.command_for
        emit("\n".join(scheduled.health_command(rca_bin, d.isoformat(), args.period, args.company, args.db) for d in days), "text")
        return Outcome.CLEAR
    emit(scheduled.schedule_text(args.at, args.period, company_id=args.company, db=args.db, rca_bin=rca_bin,
                                 workdir=args.workdir, env_file=args.env_file), "text")
    return Outcome.CLEAR
