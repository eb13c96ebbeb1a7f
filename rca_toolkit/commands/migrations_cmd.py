"""``rca migrations``: the migrations table against the migration files and their git history.

Reports ran, pending (file without row), ran-but-file-missing, duplicate, out-of-order,
future-dated and malformed names, id gaps and the batch timeline. Exit 0 (a report),
2 on bad input (unreachable database, no migrations table, missing folder).
"""

from __future__ import annotations

import argparse

from .. import loaders, migrations
from ..cli import add_db_option, add_format_option, emit


def register(sub) -> None:
    parser = sub.add_parser("migrations", help="migration history: pending, missing, suspicious names, batches",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    parser.add_argument("--files", metavar="DIR", default=None, help="the app's database/migrations folder")
    parser.add_argument("--git", metavar="DIR", default=None,
                        help="the app's git checkout: first commit date per file, inferred deploy time per batch")
    parser.add_argument("--today", metavar="DATE", default=None,
                        help="reference date for future-dated names (default: latest git commit, else today)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    frame = loaders.migrations(args.db)
    history = migrations.migration_history(frame, files_dir=args.files, git_dir=args.git, today=args.today)
    emit(history.to_dict() if args.format == "json" else history.to_text(), args.format)
    return 0
