"""``rca migrations``: the migrations table against the migration files and their git history.

Reports ran, pending (file without row), ran-but-file-missing, duplicate, out-of-order,
future-dated and malformed names, id gaps and the batch timeline. Exit 0 (a report),
2 on bad input (unreachable database, no migrations table, missing folder).

:func:`rca_toolkit.analyses.code.migrations.load_history` is the same path the RB010 runbook's checks take.
"""

from __future__ import annotations

import argparse

from rca_toolkit.analyses.code import migrations
from rca_toolkit.cli import HelpFormatter, add_db_option, add_format_option, emit, help_text
from rca_toolkit.outcome import Outcome
from rca_toolkit.rules.timeutil import parse_date


def register(sub) -> None:
    parser = sub.add_parser("migrations", help="migration history: pending, missing, suspicious names, batches",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    add_db_option(parser)
    parser.add_argument("--files", metavar="DIR", default=None, help="the app's database/migrations folder")
    parser.add_argument("--git", metavar="DIR", default=None,
                        help="the app's git checkout: first commit date per file, inferred deploy time per batch")
    parser.add_argument("--today", metavar="DATE", default=None, type=lambda text: parse_date(text, name="--today"),
                        help="reference date for future-dated names (default: latest git commit, else today)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    history = migrations.load_history(args.db, args.files, args.git, args.today)
    emit(history.to_dict() if args.format == "json" else history.to_text(), args.format)
    return Outcome.CLEAR
