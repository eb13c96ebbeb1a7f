"""``rca timeline CALL_ID``: where every second of one call went, its findings and a what-if.

Source: the database trace (``--db``, default the configured database) or a Retell call
object file (``--retell-json``: get-call JSON, ``{event, call}`` webhook or ``calls.raw``).
Exit codes (README "Exit codes"): 0 on success, 2 on bad input (unknown call id, unreadable file, bad threshold).
"""

from __future__ import annotations

import argparse

from rca_toolkit.analyses.calls import timeline
from rca_toolkit.cli import add_db_option, add_format_option, emit
from rca_toolkit.errors import ConfigError
from rca_toolkit.outcome import Outcome


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0 seconds")
    return value


def register(sub) -> None:
    parser = sub.add_parser("timeline", help="reproduce one call: attribution, loops, dead air, what-if",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("call_id", metavar="CALL_ID", help="Retell call id (call_ + 27 hex characters)")
    source = parser.add_mutually_exclusive_group()
    add_db_option(source)
    source.add_argument("--retell-json", metavar="FILE", default=None,
                        help="read the call from a Retell call object file instead of the database")
    add_format_option(parser)
    parser.add_argument("--dead-air", type=_positive, default=3.0, metavar="S",
                        help="silence longer than this is dead air (default: %(default)s)")
    parser.add_argument("--slow-tool", type=_positive, default=2.0, metavar="S",
                        help="tool calls slower than this are findings (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    if not args.call_id.strip():
        raise ConfigError("CALL_ID is empty", hint="give a Retell call id such as call_ab45deadd7db66c4956d5243861")
    result = timeline.load_timeline(args.call_id.strip(), source=args.retell_json or "db", db=args.db,
                                    dead_air_s=args.dead_air, slow_tool_s=args.slow_tool)
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        emit(result.to_text(), "text")
    return Outcome.CLEAR
