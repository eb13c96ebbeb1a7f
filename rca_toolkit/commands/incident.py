"""``rca incident``: the life of one incident, computed (onset, cause, recovery per group, bookings
lost, detection, claims checked).

Parses the arguments, calls :func:`rca_toolkit.analyses.incident.build.incident` (the function the
report notebook calls, so both show the same numbers) and prints. FOUND (exit 1) when the signature
occurs in the window or a claim is contradicted, CLEAR (exit 0) otherwise.
"""

from __future__ import annotations

import argparse

from rca_toolkit.analyses.incident.build import incident
from rca_toolkit.cli import add_db_option, add_format_option, emit
from rca_toolkit.outcome import Outcome


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "incident",
        help="the life of an incident: onset, cause, recovery per path, bookings lost, detection, claims checked",
        description="Everything an on-call team writes after an incident, computed from the data with its provenance: "
                    "per group the errors carrying the signature, first/last error, failed attempts, lost (orphaned) and "
                    "rescued bookings, the change behind the onset and each recovery; the first day the daily health "
                    "report would have said ACT; each claim verified, contradicted or not measurable; one timeline.",
    )
    parser.add_argument("--signature", required=True, metavar="TEXT",
                        help="error text or normalised signature, e.g. \"Unknown column 'created_by'\" (substring match)")
    parser.add_argument("--since", default=None, metavar="ISO8601",
                        help="window start with an explicit zone (default: the first day of the data)")
    parser.add_argument("--until", default=None, metavar="ISO8601",
                        help="window end with an explicit zone (default: the day after the last data)")
    parser.add_argument("--by", default="path", help="group by this attempt column (default: %(default)s)")
    claims = parser.add_mutually_exclusive_group()
    claims.add_argument("--claims", default=None, metavar="FILE",
                        help="YAML list of claims to judge (default: the packaged Phase 1 sign-off claims)")
    claims.add_argument("--no-claims", action="store_true", help="judge no claims")
    parser.add_argument("--deployments", default=None, metavar="PATH",
                        help="CSV/YAML of deployments as candidate causes (default: the packaged askproai list)")
    parser.add_argument("--no-detection", action="store_true", help="skip the daily health reports (first ACT day)")
    add_db_option(parser)
    add_format_option(parser, choices=("text", "json", "markdown"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.rules.timeutil import parse_instant

    for option, value in (("--since", args.since), ("--until", args.until)):
        if value is not None:
            parse_instant(value, name=option)  # the error names the option typed, not the function's keyword
    result = incident(args.db, args.signature, since=args.since, until=args.until, by=args.by, claims=args.claims,
                      with_claims=not args.no_claims, deployments_path=args.deployments, detect=not args.no_detection)
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        emit(result.to_markdown() if args.format == "markdown" else result.to_text(), args.format)
    return Outcome.FOUND if result.found else Outcome.CLEAR
