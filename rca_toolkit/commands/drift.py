"""``rca drift``: columns the Laravel code writes that the live schema lacks (phantom columns).

Exit codes: 1 when a finding fails at runtime (1054 phantom column, 1146 missing table,
NOT NULL column never set), 0 otherwise (silently dropped writes are reported, exit 0),
2 on bad input (missing path, unreachable database, unknown --table).
"""

from __future__ import annotations

import argparse

from .. import db as dbmod
from .. import drift
from ..cli import add_db_option, add_format_option, emit


def register(sub) -> None:
    parser = sub.add_parser("drift", help="find phantom columns: code writes vs the live schema",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", required=True, metavar="PATH", help="root of the Laravel application (or one PHP file)")
    add_db_option(parser)
    parser.add_argument("--table", action="append", metavar="T", default=None,
                        help="only check this table (repeatable; each must exist in the schema)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    writes = drift.scan_code(args.code)
    engine = dbmod.make_engine(args.db)
    try:
        schema = dbmod.introspect(engine)
    finally:
        engine.dispose()
    report = drift.find_drift(writes, schema, tables=args.table)
    if args.format == "json":
        out = report.to_dict()
        out["code_path"] = args.code
        out["database"] = dbmod.redact_url(engine.url)
        emit(out, "json")
    else:
        emit(report.to_text(), "text")
    return 1 if report.raises_at_runtime else 0
