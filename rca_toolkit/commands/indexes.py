"""``rca indexes``: are the indexes the toolkit's queries rely on present in this database?

Exit 0 when all are present, 1 when one is missing (those queries scan whole tables; at a
million rows that is minutes instead of milliseconds), 2 on bad input (unreachable database).
Optional indexes (production has none; a read would use them) are listed apart and never make it 1.
"""

from __future__ import annotations

import argparse

from rca_toolkit.sources import indexes
from rca_toolkit.cli import HelpFormatter, add_db_option, add_format_option, emit, help_text
from rca_toolkit.outcome import Outcome


def register(sub) -> None:
    parser = sub.add_parser("indexes", help="check the indexes the toolkit's queries rely on",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    rows = indexes.check(args.db)
    emit(indexes.to_dict(rows) if args.format == "json" else indexes.to_text(rows), args.format)
    return Outcome.FOUND if indexes.missing(rows) else Outcome.CLEAR
