"""``rca demo-data``: build the SYNTHETIC demo world and its ground truth.

Writes only into an empty SQLite file / MariaDB database, or rebuilds an existing demo world
with ``--replace``. Exit codes: 0 built, 2 bad input, unreachable server or refused target.
"""

from __future__ import annotations

import argparse

from rca_toolkit.cli import HelpFormatter, add_db_option, help_text, int_in
from rca_toolkit.sources.db import redact_url, resolve_url
from rca_toolkit.outcome import Outcome


_seed = int_in(0, what="an integer seed")  # stored in the demo marker row: a BIGINT
_scale = int_in(1, 5000)


def register(sub) -> None:
    parser = sub.add_parser("demo-data", help="build the synthetic demo database and its ground truth",
                            description=help_text(__doc__), formatter_class=HelpFormatter)
    add_db_option(parser)
    parser.add_argument("--seed", type=_seed, default=7, help="random seed (default: %(default)s)")
    parser.add_argument("--scale", type=_scale, default=1,
                        help="multiply the background traffic (1 = about 1,400 calls; default: %(default)s)")
    parser.add_argument("--truth", metavar="PATH", default=None,
                        help="where to write the ground-truth JSON (default: beside the SQLite file, "
                             "or data/demo-<dbname>.truth.json for MariaDB)")
    parser.add_argument("--replace", action="store_true", help="drop and rebuild an existing demo world")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    from rca_toolkit import demo

    url = resolve_url(args.db)
    truth = demo.build(url.render_as_string(hide_password=False), seed=args.seed, scale=args.scale,
                       truth_path=args.truth, replace=args.replace)
    counts = truth["row_counts"]
    width = max(len(name) for name in counts)
    lines = [f"SYNTHETIC demo world built in {redact_url(url)} (seed {args.seed}, scale {args.scale}) "
             f"in {truth['build_seconds']:.1f} s", ""]
    lines += [f"  {name:<{width}}  {count:>10,}" for name, count in counts.items()]
    lines += ["", f"ground truth: {truth['truth_path']}",
              "Every row is generated; nothing in this database is production data."]
    print("\n".join(lines))
    return Outcome.CLEAR
