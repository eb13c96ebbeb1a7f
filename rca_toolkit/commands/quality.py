"""``rca quality [--db URL | FILE]``: data-quality report of a call/session set.

FILE is a call-history export (.json or .csv); --db reads the sessions through the loaders
(read-only), test ids included so they can be listed. Reports test/demo/temp/typo ids, stuck
sessions, negative/missing/zero durations, near-duplicate ids, DST-ambiguous times, round
values and counter mismatches, with counts and examples. Exit 0 (a report), 2 on bad input.
"""

from __future__ import annotations

import argparse

from rca_toolkit.cli import HelpFormatter, add_db_option, add_format_option, emit, help_text
from rca_toolkit.errors import ConfigError
from rca_toolkit.outcome import Outcome


def register(sub) -> None:
    parser = sub.add_parser("quality", help="data-quality report of an export file or a database's sessions",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    parser.add_argument("file", nargs="?", metavar="FILE", help="call-history export (.json or .csv)")
    add_db_option(parser)
    parser.add_argument("--as-of", metavar="TIME", default=None,
                        help="ISO instant for the 2-hour stuck rule (default: export time, else now)")
    add_format_option(parser, choices=("text", "json", "markdown"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.analyses.quality import quality_report
    from rca_toolkit.rules.timeutil import parse_instant

    if args.file and args.db:
        raise ConfigError("give either FILE or --db, not both", hint="rca quality export.json  or  rca quality --db URL")
    as_of = parse_instant(args.as_of, name="--as-of") if args.as_of else None
    if args.file:
        from rca_toolkit.sources.formats.exports import read_call_history

        frame = read_call_history(args.file)
    else:
        from rca_toolkit.sources import loaders

        from rca_toolkit.sources.db import redact_url, resolve_url

        frame = loaders.calls(args.db, include_test=True)
        frame.attrs["source"] = redact_url(resolve_url(args.db))
    report = quality_report(frame, as_of=as_of)
    if args.format == "json":
        emit(report.to_dict(), "json")
    else:
        emit(report.to_markdown() if args.format == "markdown" else report.to_text(), "text")
    return Outcome.CLEAR
