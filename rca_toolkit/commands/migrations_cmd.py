"""``rca migrations``: the migrations table against the migration files and their git history.

Reports ran, pending (file without row), ran-but-file-missing, duplicate, out-of-order,
future-dated and malformed names, id gaps and the batch timeline. Exit 0 (a report),
2 on bad input (unreachable database, no migrations table, missing folder).

:func:`load_history` and the ``check_*`` functions serve the CLI and the RB010 runbook.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rca_toolkit.sources import loaders
from rca_toolkit.analyses.code import migrations
from rca_toolkit.cli import add_db_option, add_format_option, emit


def register(sub) -> None:
    parser = sub.add_parser("migrations", help="migration history: pending, missing, suspicious names, batches",
                            description=__doc__.split("\n:func:")[0].strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    parser.add_argument("--files", metavar="DIR", default=None, help="the app's database/migrations folder")
    parser.add_argument("--git", metavar="DIR", default=None,
                        help="the app's git checkout: first commit date per file, inferred deploy time per batch")
    parser.add_argument("--today", metavar="DATE", default=None,
                        help="reference date for future-dated names (default: latest git commit, else today)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def load_history(db=None, files=None, git=None, today=None, *, code_path=None) -> migrations.MigrationHistory:
    """Load the migrations table and analyse it; ``code_path`` supplies ``database/migrations`` when
    ``files`` is empty and that folder exists. Empty strings mean "not given"."""
    if not files and code_path and (Path(code_path) / "database" / "migrations").is_dir():
        files = Path(code_path) / "database" / "migrations"
    frame = loaders.migrations(db or None)
    return migrations.migration_history(frame, files_dir=files or None, git_dir=git or None, today=today or None)


def check_pending(db=None, files=None, git=None, today=None, *, code_path=None):
    """RB010 check 3: see :func:`rca_toolkit.analyses.code.migrations.pending_check`."""
    return migrations.pending_check(load_history(db, files, git, today, code_path=code_path))


def check_names(db=None, files=None, git=None, today=None, *, code_path=None):
    """RB010 check 4: see :func:`rca_toolkit.analyses.code.migrations.names_check`."""
    return migrations.names_check(load_history(db, files, git, today, code_path=code_path))


def run(args: argparse.Namespace) -> int:
    history = load_history(args.db, args.files, args.git, args.today)
    emit(history.to_dict() if args.format == "json" else history.to_text(), args.format)
    return 0
