"""``rca import KIND FILE... [--db URL]``: load real files into a scratch database.

KIND is ``retell`` (call objects / webhooks / calls.raw), ``laravel-log`` (laravel.log, .gz, or
error-monitor.log), ``call-history`` (the JSON or CSV export) or ``calcom`` (webhook bodies).
The target defaults to sqlite:///data/scratch.sqlite. A server database is written only with
--writable-scratch AND a database name starting with scratch/rca_scratch; the configured
analysed database and any non-empty database without the rca_scratch marker are refused.
Personal data in every imported file is masked unless --keep-pii. Exit 0 on success,
2 on bad input or a refused target.
"""

from __future__ import annotations

import argparse

from rca_toolkit.sources import importer
from rca_toolkit.cli import HelpFormatter, add_format_option, emit, help_text, int_in
from rca_toolkit.sources.db import redact_url
from rca_toolkit.outcome import Outcome

KINDS = importer.KINDS


def register(sub) -> None:
    parser = sub.add_parser("import", help="import Retell objects, Laravel logs, exports or Cal.com webhooks into a scratch db",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    parser.add_argument("kind", choices=KINDS, help="what the files are")
    parser.add_argument("files", nargs="+", metavar="FILE", help="one or more input files")
    parser.add_argument("--db", metavar="URL", default=None,
                        help=f"scratch database (default: {importer.DEFAULT_SCRATCH_URL})")
    parser.add_argument("--writable-scratch", action="store_true",
                        help="allow a non-SQLite scratch database (its name must start with scratch or rca_scratch)")
    parser.add_argument("--keep-pii", action="store_true", help="store caller names, numbers and e-mails unmasked")
    parser.add_argument("--company-id", type=int_in(0, what="a company id"), default=0,
                        help="calls.company_id for Retell objects (NOT NULL in production; 0 = unknown)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    engine = importer.open_scratch(args.db, writable_scratch=args.writable_scratch)
    try:
        results = [importer.import_file(engine, args.kind, path, mask_pii=not args.keep_pii, company_id=args.company_id)
                   for path in args.files]
    finally:
        engine.dispose()
    target = redact_url(engine.url)
    if args.format == "json":
        emit({"database": target, "imports": results}, "json")
    else:
        emit("\n".join(f"imported {r['rows']} rows into {r['table']} from {r['file']}{_extra(r)}" for r in results)
             + f"\n(database: {target})", "text")
    return Outcome.CLEAR


def _extra(result: dict) -> str:
    parts = [f"{result['test_ids']} test/demo/temp/malformed ids"] if result.get("test_ids") else []
    if result.get("kind"):
        parts.append(f"{result['kind']} format, {result['truncated']} truncated")
    if "tool_calls" in result:
        parts.append(f"{result['call_id']}, {result['tool_calls']} tool calls")
    skipped = {key.replace("_", " "): n for key, n in (result.get("skipped") or {}).items() if n}
    if skipped:  # pasted excerpts: grep separators, headings, fragments of other entries
        parts.append("skipped " + ", ".join(f"{n} {key}" for key, n in skipped.items()))
    return f" ({'; '.join(parts)})" if parts else ""
