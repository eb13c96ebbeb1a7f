"""``rca import KIND FILE... [--db URL]``: load real files into a scratch database.

KIND is ``retell`` (call objects / webhooks / calls.raw), ``laravel-log`` (laravel.log, .gz, or
error-monitor.log), ``call-history`` (the JSON or CSV export) or ``calcom`` (webhook bodies).
The target defaults to sqlite:///data/scratch.sqlite. A server database is written only with
--writable-scratch AND a database name starting with scratch/rca_scratch; the configured
analysed database and any non-empty database without the rca_scratch marker are refused.
Personal data in Retell and Cal.com files is masked unless --keep-pii. Exit 0 on success,
2 on bad input or a refused target.
"""

from __future__ import annotations

import argparse

from rca_toolkit.sources import importer
from rca_toolkit.cli import add_format_option, emit
from rca_toolkit.sources.db import redact_url
from rca_toolkit.outcome import Outcome

KINDS = ("retell", "laravel-log", "call-history", "calcom")


def register(sub) -> None:
    parser = sub.add_parser("import", help="import Retell objects, Laravel logs, exports or Cal.com webhooks into a scratch db",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS, help="what the files are")
    parser.add_argument("files", nargs="+", metavar="FILE", help="one or more input files")
    parser.add_argument("--db", metavar="URL", default=None,
                        help=f"scratch database (default: {importer.DEFAULT_SCRATCH_URL})")
    parser.add_argument("--writable-scratch", action="store_true",
                        help="allow a non-SQLite scratch database (its name must start with scratch or rca_scratch)")
    parser.add_argument("--keep-pii", action="store_true", help="store caller names, numbers and e-mails unmasked")
    parser.add_argument("--company-id", type=int, default=0,
                        help="calls.company_id for Retell objects (NOT NULL in production; 0 = unknown)")
    add_format_option(parser)
    parser.set_defaults(func=run)


def _import_file(engine, kind: str, path: str, args: argparse.Namespace) -> dict:
    if kind == "call-history":
        from rca_toolkit.sources.formats.exports import read_call_history

        frame = read_call_history(path)
        n = importer.import_sessions(engine, frame)
        return {"file": path, "table": "retell_call_sessions", "rows": n, "test_ids": int(frame["is_test"].sum())}
    if kind == "retell":
        from rca_toolkit.sources.formats.retell import load_call_object

        calls = [load_call_object(obj, mask_pii=not args.keep_pii) for obj in _retell_objects(path)]
        n = importer.import_retell_calls(engine, calls, company_id=args.company_id)
        ids = calls[0].call_id if len(calls) == 1 else f"{len(calls)} calls"
        return {"file": path, "table": "calls", "rows": n, "call_id": ids,
                "tool_calls": sum(len(c.tool_calls) for c in calls)}
    if kind == "calcom":
        from pathlib import Path

        from rca_toolkit.sources.formats.calcom import read_bodies, mask_calcom_body, read_calcom_webhooks

        bodies = read_bodies(Path(path)) if Path(path).is_file() else None
        bookings = read_calcom_webhooks(path, mask_pii=not args.keep_pii)
        if not args.keep_pii:
            bodies = [mask_calcom_body(b) for b in bodies]
        n = importer.import_calcom(engine, bookings, bodies)
        return {"file": path, "table": "webhook_events", "rows": n}
    result = importer.import_log_file(engine, path)
    return {"file": path, "table": "laravel_log", **result}


def _retell_objects(path: str) -> list:
    """One call object per file, or a JSON list of them (a dump of webhooks or calls.raw)."""
    import json
    from pathlib import Path

    from rca_toolkit.errors import InputFormatError, NotFound

    file = Path(path)
    if not file.is_file():
        raise NotFound(f"Retell file {file} does not exist", hint="check the path")
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return [path]  # let the Retell reader explain what is wrong
    if isinstance(document, list):
        if not document:
            raise InputFormatError(f"{file} holds an empty list", hint="give at least one Retell call object")
        return document
    return [path]


def run(args: argparse.Namespace) -> Outcome:
    engine = importer.open_scratch(args.db, writable_scratch=args.writable_scratch)
    try:
        results = [_import_file(engine, args.kind, path, args) for path in args.files]
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
    return f" ({'; '.join(parts)})" if parts else ""
