"""``rca cache status|refresh|drop``: the local store the analyses read instead of the server.

``status`` shows what the store of ``--db`` holds and from when; ``refresh`` brings it up to date (new rows,
the trailing window, and the older rows checked for changes and deletions, a scan of every table on the server
that the refreshes the analyses make first run only every ``cache_check_every_s``, and this one too with
``--check-older when-due``; ``--full`` reads everything again) and says how many rows it read;
``drop`` deletes it. Exit 0, or 2 on bad input (an unreachable database, a bad option).
"""

from __future__ import annotations

import argparse

import pandas as pd

from rca_toolkit.analyses import tables
from rca_toolkit.cli import HelpFormatter, add_db_option, add_format_option, emit, help_text, int_in
from rca_toolkit.config import load_settings
from rca_toolkit.outcome import Outcome
from rca_toolkit.rules.timeutil import parse_duration
from rca_toolkit.sources import loaders, store
from rca_toolkit.sources.db import check_backend, check_sqlite_source, redact_url, resolve_url


def register(sub) -> None:
    parser = sub.add_parser("cache", help="show, refresh or drop the local store the analyses read",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="what the store of --db holds and from when")
    refresh = actions.add_parser("refresh", help="bring the store of --db up to date (only what changed)")
    refresh.add_argument("--full", action="store_true", help="read every table whole again")
    refresh.add_argument("--trailing", default="12h", metavar="DURATION",
                         help="window re-read behind the newest stored row, for rows that change after insert "
                              "(default: %(default)s)")
    refresh.add_argument("--max-rows-per-second", type=int_in(1, what="a number of rows"), default=None, metavar="N",
                         help="read at most N rows a second, the rows the server scans to find changes included, "
                              "so production never notices (default: the cache_max_rows_per_s setting, "
                              "RCA_CACHE_MAX_ROWS_PER_S; unset: no limit)")
    refresh.add_argument("--check-older", choices=("always", "when-due"), default="always",
                         help="check the rows older than the trailing window for changes and deletions (a scan of "
                              "every table on the server) always, or only when due as the analyses do: once every "
                              "cache_check_every_s, RCA_CACHE_CHECK_EVERY_S (for a frequent cron; default: %(default)s)")
    drop = actions.add_parser("drop", help="delete the store of --db")
    for action in (status, refresh, drop):
        add_db_option(action)
        add_format_option(action)
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    settings = load_settings()
    url = resolve_url(args.db, settings)
    folder = store.folder(settings.cache_dir, url)
    if args.action == "drop":
        store.close(folder)
        dropped = store.drop(folder)
        result = {"folder": str(folder), "dropped": dropped}
        text = f"dropped the store {folder} of {redact_url(url)}" if dropped else f"no store of {redact_url(url)} in {folder}"
        emit(result if args.format == "json" else tables.wrap_lines([text]), args.format)
        return Outcome.CLEAR
    if args.action == "refresh":
        trailing = parse_duration(args.trailing, name="--trailing")  # a bad option fails before any connection
        source = loaders.engine_for(args.db, settings)
        store.close(folder)
        zone = loaders.storage_zone(source)
        check_old = args.check_older == "always" or store.check_due(folder, source, zone, settings.cache_check_every_s)
        done = store.refresh(source, folder, storage_zone=zone, full=args.full, trailing=trailing,
                             max_rows_per_s=args.max_rows_per_second or settings.cache_max_rows_per_s, check_old=check_old)
        summary = {"folder": str(folder), "seconds": round(done.seconds, 2), "rows_read": done.rows_read,
                   "rows_checked": done.rows_checked, "checked_older": done.checked_old, "built_whole": done.built,
                   "tables_missing": done.missing}
        if args.format == "json":
            emit({**summary, "status": store.status(folder)}, args.format)
        else:
            checked = sum(done.rows_checked.values())
            line = (f"refreshed the store of {redact_url(url)} in {done.seconds:.1f} s: {done.total_read:,} rows read"
                    + (f" ({', '.join(done.built)} read whole)" if done.built else "")
                    + (f", {checked:,} scanned in the source to find changed and deleted rows" if checked else "")
                    + ("" if done.checked_old else ", the older rows not checked (not due)")
                    + (f"; the source has no {', '.join(done.missing)}" if done.missing else ""))
            emit(tables.wrap_lines([line]) + "\n\n" + status_text(store.status(folder), settings, source.dialect.name),
                 args.format)
        return Outcome.CLEAR
    described, backend = store.status(folder), check_backend(url)
    if described is None:  # a source refresh would only fail on: said now, not "refresh makes one"
        if backend == "sqlite":
            check_sqlite_source(url)
        text = tables.wrap_lines([f"no store of {redact_url(url)} yet ({folder})", "`rca cache refresh --db ...` makes one"])
        emit({"folder": str(folder), "exists": False} if args.format == "json" else text, args.format)
        return Outcome.CLEAR
    emit({**described, "read_by_analyses": settings.reads_store(backend)} if args.format == "json" else
         status_text(described, settings, backend), args.format)
    return Outcome.CLEAR


def status_text(described: dict, settings, backend: str) -> str:
    """The store's tables as one table, under lines naming its source, when it was refreshed and until when the
    analyses read it as it is (``cache_max_age_s``; or that they do not read it: the ``cache`` setting and the
    database's ``backend``), when its older rows were last checked (and again next: ``cache_check_every_s``), its
    folder and size."""
    max_age_s, check_every_s = settings.cache_max_age_s, settings.cache_check_every_s
    frame = pd.DataFrame(described["tables"])
    shown = tables.show(frame, [
        tables.col("table", "table"),
        tables.col("rows", "rows", tables.count, numeric=True),
        tables.col("first", "first row", lambda v: tables.when(v, with_seconds=False)),
        tables.col("last", "last row", lambda v: tables.when(v, with_seconds=False)),
        tables.col("rows_read", "read by the last refresh", tables.count, numeric=True),
    ], empty="the store holds no table")
    refreshed = described.get("refreshed_at_utc")
    lines = [f"store of {described['source']} (timestamps in {described['storage_zone']}), last refreshed {tables.when(refreshed)}"]
    if described.get("unfinished_refresh_started_utc") is not None:
        lines.append(f"unfinished: the refresh started {tables.when(described['unfinished_refresh_started_utc'])} stopped before "
                     "it completed; the next refresh (an analysis's or `rca cache refresh`) mends it before anything reads it")
    reads = settings.reads_store(backend)
    if not reads:
        lines.append("the analyses do not read it: " + (
            "the cache setting is off, they read the database directly" if settings.cache == "off" else
            "they read a SQLite file directly (the cache setting is auto); RCA_CACHE=on reads it through this store"))
    if refreshed is not None:
        if reads:
            lines.append(f"analyses read it as it is until {tables.when(refreshed + pd.Timedelta(seconds=max_age_s))} "
                         f"(cache_max_age_s {max_age_s:g} s), then refresh it first; --no-cache reads the database now")
        checked = described.get("checked_at_utc")
        again = (f"the analyses' refreshes check them again after {tables.when(checked + pd.Timedelta(seconds=check_every_s))} "
                 f"(cache_check_every_s {check_every_s:g} s), `rca cache refresh` every time" if reads and checked is not None
                 else "`rca cache refresh` checks them every time")
        lines.append("rows older than the trailing window " + (
            "not checked for changes and deletions yet: the next refresh checks them" if checked is None else
            f"last checked for changes and deletions {tables.when(checked)}; {again}"))
    exposed = described.get("others_can_read") or []
    access = ("readable by its owner only" if not exposed else
              f"OPEN TO OTHERS: {', '.join(exposed)} (the next refresh makes it the owner's only again)")
    head = tables.wrap_lines([*lines, f"{described['folder']}: {described['bytes'] / 2**20:.1f} MiB on disk, {access}"])
    return head + "\n\n" + shown.to_text()
