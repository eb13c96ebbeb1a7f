"""``rca timeline CALL_ID``: where every second of one call went, its findings and a what-if.

Source: the database trace (``--db``, default the configured database) or a Retell call
object file (``--retell-json``: get-call JSON, ``{event, call}`` webhook or ``calls.raw``).
Exit codes (README "Exit codes"): 0 on success, 2 on bad input (unknown call id, unreadable file, bad threshold).
Phone numbers, e-mail addresses and the caller's name are masked unless ``--show-personal-data``.
"""

from __future__ import annotations

import argparse

from rca_toolkit.analyses.calls import timeline
from rca_toolkit.cli import HelpFormatter, add_db_option, add_format_option, add_personal_data_option, help_text, seconds_option
from rca_toolkit.errors import ConfigError
from rca_toolkit.outcome import Outcome
from rca_toolkit.runs import output




def register(sub) -> None:
    parser = sub.add_parser("timeline", help="reproduce one call: attribution, loops, dead air, what-if",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    parser.add_argument("call_id", metavar="CALL_ID", help="Retell call id (call_ + 27 hex characters)")
    source = parser.add_mutually_exclusive_group()
    add_db_option(source)
    source.add_argument("--retell-json", metavar="FILE", default=None,
                        help="read the call from a Retell call object file instead of the database")
    add_format_option(parser)
    parser.add_argument("--dead-air", type=seconds_option, default=3.0, metavar="S",
                        help="silence longer than this is dead air (default: %(default)s)")
    parser.add_argument("--slow-tool", type=seconds_option, default=2.0, metavar="S",
                        help="tool calls slower than this are findings (default: %(default)s)")
    add_personal_data_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    if not args.call_id.strip():
        raise ConfigError("CALL_ID is empty", hint="give a Retell call id such as call_ab45deadd7db66c4956d5243861")
    result = timeline.load_timeline(args.call_id.strip(), source=args.retell_json or "db", db=args.db,
                                    dead_air_s=args.dead_air, slow_tool_s=args.slow_tool)
    # printed through the one writer: the --db secret out, caller names, numbers and addresses masked
    policy = output.policy(args.show_personal_data, secrets_of=[args.db], data=[result])
    if args.format == "json":
        output.echo_json(result.to_dict(), policy)
    else:
        output.echo(result.to_text(), policy)
    return Outcome.CLEAR
