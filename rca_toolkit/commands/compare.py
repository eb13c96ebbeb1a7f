"""``rca compare``: booking success, durations and latencies before vs after a change.

Parses the arguments, calls :func:`rca_toolkit.analyses.compare.before_after.before_after`
(the same path the report notebook uses, so both show the same numbers) and prints.
"""

from __future__ import annotations

import argparse

from rca_toolkit.analyses.compare.before_after import HISTORY_FACTOR, before_after
from rca_toolkit.cli import add_db_option, add_format_option, emit
from rca_toolkit.outcome import Outcome


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="before/after statistics around a change (booking success, durations, latencies)",
        description="Compare booking success (per booking path), call durations and function latencies "
                    "before and after a change, with intervals, exact tests and verdicts that state n.",
    )
    parser.add_argument("--at", required=True, metavar="ISO8601",
                        help="the change instant with an explicit zone, e.g. 2025-10-18T13:20:08+02:00")
    parser.add_argument("--before", default="5d", help="window before the change (default: %(default)s)")
    parser.add_argument("--after", default="5d", help="window after the change (default: %(default)s)")
    parser.add_argument("--exclude", default="30m", help="guard band left out on each side (default: %(default)s)")
    parser.add_argument("--by", default="path",
                        help="split booking success by this attempt column, as the report notebook does; 'none' "
                             "for all attempts only (default: %(default)s)")
    parser.add_argument("--deployments", default=None, metavar="PATH",
                        help="CSV/YAML of deployments for candidate causes (default: the packaged askproai list)")
    parser.add_argument("--no-changepoints", action="store_true", help="skip the change-point search")
    parser.add_argument("--history", default=None, metavar="DURATION|all",
                        help=f"attempt history searched for change points, each side of --at "
                             f"(default: {HISTORY_FACTOR}x --before / --after; 'all' for everything)")
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    by = None if args.by.strip().lower() in ("", "none") else args.by  # the notebook's empty `by`: all attempts only
    result = before_after(args.db, at=args.at, before=args.before, after=args.after, exclude=args.exclude, by=by,
                          deployments_path=args.deployments, with_changepoints=not args.no_changepoints,
                          history=args.history)
    emit(result.to_dict() if args.format == "json" else result.to_text(), args.format)
    return Outcome.CLEAR
