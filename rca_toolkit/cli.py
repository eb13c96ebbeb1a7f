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

from .errors import RcaError

# Add a module here when you add a command; each lives in rca_toolkit/commands/<name>.py.
COMMAND_MODULES = [
    "demo_data",
    "compare",
    "drift",
    "migrations_cmd",
    "run",
    "timeline",
    "import_cmd",
    "quality",
    "report",
]


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rca",
        description="Incident analysis and runbooks for the Retell -> Laravel -> Cal.com booking platform.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"rca_toolkit.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
