"""``rca drift``: columns the Laravel code writes that the live schema lacks (phantom columns).

Exit codes: 1 when a finding fails at runtime (1054 phantom column, 1146 missing table,
NOT NULL column never set), 0 otherwise (silently dropped writes are reported, exit 0),
2 on bad input (missing path, unreachable database, unknown --table).

:func:`load_report` and the ``check_*`` functions are the same path for the CLI and the
RB010 runbook (they load, so a bad input becomes an ERROR check there).
"""

from __future__ import annotations

import argparse

import sqlalchemy as sa

from rca_toolkit.sources import db as dbmod
from rca_toolkit.analyses.code import drift
from rca_toolkit.cli import add_db_option, add_format_option, emit


def register(sub) -> None:
    parser = sub.add_parser("drift", help="find phantom columns: code writes vs the live schema",
                            description=__doc__.split("\n:func:")[0].strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", required=True, metavar="PATH", help="root of the Laravel application (or one PHP file)")
    add_db_option(parser)
    parser.add_argument("--table", action="append", metavar="T", default=None,
                        help="only check this table (repeatable; each must exist in the schema)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def _tables(tables) -> list[str] | None:
    if isinstance(tables, str):
        tables = [t.strip() for t in tables.split(",") if t.strip()]
    return list(tables) or None if tables else None


def load_report(code_path, db=None, tables=None) -> drift.DriftReport:
    """Scan ``code_path`` and compare with the schema of ``db`` (URL, profile, engine or None)."""
    writes = drift.scan_code(code_path)
    engine = db if isinstance(db, sa.Engine) else dbmod.make_engine(db or None)
    try:
        schema = dbmod.introspect(engine)
    finally:
        if engine is not db:
            engine.dispose()
    return drift.find_drift(writes, schema, tables=_tables(tables))


def check_code_writes(code_path, db=None, tables=None):
    """RB010 check 1 (seed method 1): see :func:`rca_toolkit.analyses.code.drift.code_writes_check`."""
    return drift.code_writes_check(load_report(code_path, db, tables))


def check_schema_columns(code_path, db=None, tables=None):
    """RB010 check 2 (seed method 2): see :func:`rca_toolkit.analyses.code.drift.schema_columns_check`."""
    return drift.schema_columns_check(load_report(code_path, db, tables))


def run(args: argparse.Namespace) -> int:
    report = load_report(args.code, args.db, args.table)
    if args.format == "json":
        out = report.to_dict()
        out["code_path"] = args.code
        out["database"] = dbmod.redact_url(dbmod.resolve_url(args.db))
        emit(out, "json")
    else:
        emit(report.to_text(), "text")
    return 1 if report.raises_at_runtime else 0
