"""The ``rca`` command: one subcommand module per job under ``rca_toolkit.commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func``; the function returns the process exit code. User mistakes arrive here as
``RcaError`` and are printed as one line on stderr with exit code 2 (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from typing import Callable

from rca_toolkit.errors import RcaError

# command -> (module under rca_toolkit.commands, one-line help). Only the module of the command
# being run is imported, so `rca --help` and every command start without loading the others'
# heavy dependencies (nbformat, scipy, ruptures). Add a row when you add a command.
COMMANDS = {
    "demo-data": ("demo_data", "build the synthetic demo database and its ground truth"),
    "timeline": ("timeline", "reproduce one call: attribution, loops, dead air, what-if"),
    "compare": ("compare", "before/after statistics around a change (booking success, durations, latencies)"),
    "drift": ("drift", "find phantom columns: code writes vs the live schema"),
    "migrations": ("migrations_cmd", "migration history: pending, missing, suspicious names, batches"),
    "indexes": ("indexes", "check the indexes the toolkit's queries rely on"),
    "run": ("run", "run a notebook with validated parameters into reports/<notebook>/<run-id>/"),
    "runbook": ("run", "run a runbook; exit 0 PASS/WARN, 1 FAIL, 2 ERROR"),
    "list": ("run", "list notebooks and runbooks with their parameters"),
    "demo-reports": ("run", "run every notebook and runbook with its defaults and print the reports"),
    "import": ("import_cmd", "import Retell objects, Laravel logs, exports or Cal.com webhooks into a scratch db"),
    "quality": ("quality", "data-quality report of an export file or a database's sessions"),
    "report": ("report", "scheduled reports: daily/weekly health, retention"),
    "schedule": ("report", "print crontab/systemd entries that run a scheduled report"),
}
COMMAND_MODULES = sorted({module for module, _ in COMMANDS.values()})


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL or profile name (default: $RCA_DATABASE_URL or the demo SQLite database)",
    )


def add_format_option(parser: argparse.ArgumentParser, choices=("text", "json")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0], help="output format (default: %(default)s)")


def emit(text_or_obj, fmt: str) -> None:
    """Print a result: JSON objects pretty-printed, text as is."""
    if fmt == "json" and not isinstance(text_or_obj, str):
        print(json.dumps(text_or_obj, indent=2, default=str, ensure_ascii=False))
    else:
        print(text_or_obj)


def _requested_command(argv: list[str]) -> str | None:
    """The first argument that names a command (options before it are global)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``rca`` parser.

    With ``argv`` (what :func:`main` does) only the requested command's module is imported and
    the others get one-line stubs; without it every command is registered in full.
    """
    parser = argparse.ArgumentParser(
        prog="rca",
        description="Incident analysis and runbooks for the Retell -> Laravel -> Cal.com booking platform.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if argv is None:
        modules = COMMAND_MODULES
    else:
        wanted = _requested_command(argv)
        modules = [COMMANDS[wanted][0]] if wanted else []
    for module in modules:
        importlib.import_module(f"rca_toolkit.commands.{module}").register(sub)
    registered = set(sub.choices)
    for name, (_, summary) in COMMANDS.items():
        if name not in registered:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except RcaError as exc:
        print(f"rca {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rca: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
