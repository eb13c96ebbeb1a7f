"""``rca drift``: columns the Laravel code writes that the live schema lacks (phantom columns).

Exit codes: 1 when a finding fails at runtime (1054 phantom column, 1146 missing table,
NOT NULL column never set), 0 otherwise (silently dropped writes are reported, exit 0),
2 on bad input (missing path, unreachable database, unknown --table).

:func:`rca_toolkit.analyses.code.drift.load_report` is the same path the RB010 runbook's checks take.
"""

from __future__ import annotations

import argparse

from rca_toolkit.sources import db as dbmod
from rca_toolkit.analyses.code import drift
from rca_toolkit.cli import HelpFormatter, add_db_option, add_format_option, emit, help_text
from rca_toolkit.outcome import Outcome


def register(sub) -> None:
    parser = sub.add_parser("drift", help="find phantom columns: code writes vs the live schema",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    parser.add_argument("--code", required=True, metavar="PATH", help="root of the Laravel application (or one PHP file)")
    add_db_option(parser)
    parser.add_argument("--table", action="append", metavar="T", default=None,
                        help="only check this table (repeatable; each must exist in the schema)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    report = drift.load_report(args.code, args.db, args.table)
    if args.format == "json":
        out = report.to_dict()
        out["code_path"] = args.code
        out["database"] = dbmod.redact_url(dbmod.resolve_url(args.db))
        emit(out, "json")
    else:
        emit(report.to_text(), "text")
    return Outcome.FOUND if report.raises_at_runtime else Outcome.CLEAR
