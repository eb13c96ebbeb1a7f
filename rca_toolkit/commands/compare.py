"""``rca compare``: booking success, durations and latencies before vs after a change.

The same loading path serves the CLI and the report notebook (:func:`before_after`), so both
show the same numbers. Change points are searched over the whole booking history (the break
and the recovery usually lie outside the compared windows).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pandas as pd

from .. import changepoints, compare as compare_mod, loaders, outcomes
from ..cli import add_db_option, add_format_option, emit
from ..deployments import load_deployments
from ..errors import ConfigError
from ..timeutil import parse_duration, parse_instant


@dataclass
class BeforeAfter:
    """What the CLI prints and the notebook shows: the comparison, the change points, the attempts."""

    comparison: compare_mod.Comparison
    changes: changepoints.ChangePoints | None
    attempts: pd.DataFrame

    def outcome_table(self) -> pd.DataFrame:
        """Attempts, successes, failures, orphans and webhook rescues per path in each compared window."""
        parts = []
        for window, (lo, hi) in self.comparison.windows.items():
            part = self.attempts[(self.attempts["at"] >= lo) & (self.attempts["at"] < hi)]
            summary = outcomes.outcome_summary(part, by="path")
            summary.insert(0, "window", window)
            parts.append(summary)
        return pd.concat(parts, ignore_index=True)

    def to_dict(self) -> dict:
        out = self.comparison.to_dict()
        out["outcomes"] = self.outcome_table().to_dict(orient="records")
        out["change_points"] = self.changes.to_dict() if self.changes is not None else None
        return out

    def to_text(self) -> str:
        text = self.comparison.to_text()
        text += "\n\nBooking outcomes per window (orphaned = booked in Cal.com, no local row; rescued = row only from the webhook):\n"
        text += self.outcome_table().to_string(index=False)
        if self.changes is not None:
            text += "\n\nChange points of booking success (interval = last attempt of the old regime -> first of the new):\n"
            text += self.changes.table().to_string(index=False) if self.changes.changes else "  none found"
        return text


def before_after(db=None, *, at, before="5d", after="5d", exclude="30m", by: str | None = "path",
                 deployments_path=None, with_changepoints: bool = True) -> BeforeAfter:
    """Load attempts, calls and traces and run the comparison (and change points over all attempts)."""
    at_ts = parse_instant(at, name="--at")
    span_b, span_a = parse_duration(before, name="--before"), parse_duration(after, name="--after")
    parse_duration(exclude, name="--exclude")
    if by is not None and by not in outcomes.COLUMNS:  # fail before any query
        raise ConfigError(f"--by {by!r} is not a column of the booking attempts",
                          hint="use one of: path, code_path, family, function_name, company_id")
    start, end = at_ts - span_b, at_ts + span_a
    engine = loaders.engine_for(db)
    if with_changepoints:
        everything = outcomes.booking_attempts(engine)
        window = everything[(everything["at"] >= start) & (everything["at"] < end)]
        window.attrs = everything.attrs
    else:
        everything = window = outcomes.booking_attempts(engine, start=start, end=end)
    calls = loaders.calls(engine, start=start, end=end, as_of=end)
    traces = loaders.function_traces(engine, start=start, end=end, blobs=False)  # latencies need no JSON
    result = compare_mod.compare(window, calls, traces, at=at_ts, before=before, after=after, exclude=exclude, by=by)
    changes = None
    if with_changepoints:
        deployments = load_deployments(deployments_path)
        changes = changepoints.detect(everything, by=by or "path", deployments=deployments)
    return BeforeAfter(result, changes, everything)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="before/after statistics around a change (booking success, durations, latencies)",
        description="Compare booking success (per path with --by path), call durations and function latencies "
                    "before and after a change, with intervals, exact tests and verdicts that state n.",
    )
    parser.add_argument("--at", required=True, metavar="ISO8601",
                        help="the change instant with an explicit zone, e.g. 2025-10-18T13:20:08+02:00")
    parser.add_argument("--before", default="5d", help="window before the change (default: %(default)s)")
    parser.add_argument("--after", default="5d", help="window after the change (default: %(default)s)")
    parser.add_argument("--exclude", default="30m", help="guard band left out on each side (default: %(default)s)")
    parser.add_argument("--by", default=None, help="split booking success by this attempt column, e.g. path")
    parser.add_argument("--deployments", default=None, metavar="PATH",
                        help="CSV/YAML of deployments for candidate causes (default: the packaged askproai list)")
    parser.add_argument("--no-changepoints", action="store_true", help="skip the change-point search over all attempts")
    add_db_option(parser)
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = before_after(args.db, at=args.at, before=args.before, after=args.after, exclude=args.exclude, by=args.by,
                          deployments_path=args.deployments, with_changepoints=not args.no_changepoints)
    emit(result.to_dict() if args.format == "json" else result.to_text(), args.format)
    return 0
