"""A first look at a database: calls per day, booking outcomes by path, data-quality flags.

It is the overview an on-call engineer opens first: how much traffic there was, whether
bookings succeeded on each path (with denominators and Wilson intervals), and which data
problems (test ids, stuck sessions, ambiguous DST times, missing columns) limit what the
numbers can say. Frames in, result object out; no I/O. Booking outcomes come as counts per local day
(``counts.attempt_counts`` over ``timeutil.day_edges``), not as attempt rows: at 1M calls the rows of ten weeks took
12 s and 1.9 GiB, their counts 6 s and 0.9 GiB.
"""

from __future__ import annotations

import html
import json
import numbers
from dataclasses import dataclass, field

import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from rca_toolkit.analyses import tables
from rca_toolkit.analyses.markdown import md_text
from rca_toolkit.analyses.quality import QualityReport
from rca_toolkit.rules.timeutil import source_tz


@dataclass
class WorldOverview:
    """Traffic, outcomes and data-quality flags of one window."""

    window: tuple[str | None, str | None]
    synthetic: bool
    calls_per_day: pd.DataFrame
    outcomes_by_path: pd.DataFrame
    daily_success: pd.DataFrame
    flags: dict
    quality: QualityReport | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "window": list(self.window),
            "synthetic": self.synthetic,
            "calls_total": int(self.calls_per_day["calls"].sum()),
            "days": len(self.calls_per_day),
            "key_numbers": {"calls": int(self.calls_per_day["calls"].sum()), "days": len(self.calls_per_day),
                            **{path: tables.share_of(row["success"], row["attempts"])
                               for path, row in self.outcomes_by_path.iterrows()}},
            "outcomes_by_path": self.outcomes_by_path.reset_index().to_dict(orient="records"),
            "flags": self.flags,
            "notes": self.notes,
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, **kwargs)

    def _headline(self) -> list[str]:
        lines = []
        if self.synthetic:
            lines.append("SYNTHETIC DEMO DATA: every row was generated; nothing here is production data.")
        start = tables.when(self.window[0]) if self.window[0] else "start"
        end = tables.when(self.window[1]) if self.window[1] else "end"
        lines.append(f"Window {start} to {end}: "
                     f"{int(self.calls_per_day['calls'].sum()):,} calls on {len(self.calls_per_day)} "
                     f"day{'' if len(self.calls_per_day) == 1 else 's'}.")
        return lines + self.notes

    def summary_lines(self) -> list[str]:
        """The key numbers a report's summary block shows (metrics ``headline``): the window line, booking
        success per path as the outcomes table gives it (``tables.share_of``), the data-quality counts, the notes."""
        window, *notes = [line for line in self._headline() if not line.startswith("SYNTHETIC")]
        lines = [window]
        if len(self.outcomes_by_path):
            lines.append("Booking success: " + "; ".join(f"{path} {tables.share_of(row['success'], row['attempts'])}"
                                                         for path, row in self.outcomes_by_path.iterrows()) + ".")
        shown = [f"{v:,} {k}" for k, v in self.flags.items() if isinstance(v, numbers.Integral) and v]
        if shown:
            lines.append("Data quality: " + "; ".join(shown) + ".")
        return lines + notes

    def outcomes(self) -> tables.Table:
        """Booking outcomes per path: counts, success as a percentage with its count and Wilson interval."""
        frame = self.outcomes_by_path.reset_index() if len(self.outcomes_by_path) else pd.DataFrame()
        if len(frame):
            frame["rate"] = [tables.share_of(k, n, unit="") for k, n in zip(frame["success"], frame["attempts"])]
            frame["ci"] = [tables.percent_interval(lo, hi, unit="") for lo, hi in zip(frame["ci_low"], frame["ci_high"])]
        return tables.Table(frame, [tables.col("path"), *[tables.col(c, fmt=tables.count, numeric=True)
                                                          for c in ("attempts", "success", "failed", "orphaned")],
                                    tables.col("rate", "success rate (%)", numeric=True),
                                    tables.col("ci", "95 % CI (Wilson)", numeric=True)], empty="no booking attempts")

    def flag_table(self) -> tables.Table:
        return tables.Table([{"flag": k, "value": v} for k, v in self.flags.items()],
                            [tables.col("flag"), tables.col("value", "count", numeric=True)])

    def _markdown_body(self, heading: str) -> list[str]:
        return [f"{heading} Booking outcomes by path", "", self.outcomes().to_markdown(), "",
                f"{heading} Data-quality flags", "", self.flag_table().to_markdown()]

    def to_markdown(self) -> str:
        """A document of its own: the headline quoted, ``##`` sections."""
        return "\n".join([f"> {line}" for line in self._headline()] + [""] + self._markdown_body("##"))

    def _repr_markdown_(self) -> str:  # a section of the Markdown report (runs.render): the headline is its block's
        headline = tables.verdict_repeat_md(f"**{md_text(line)}**" for line in self._headline())
        return "\n".join([headline, ""] + self._markdown_body("####"))

    def _repr_html_(self) -> str:
        head = "".join(f"<p><b>{html.escape(line)}</b></p>" for line in self._headline())
        return (f'<div class="{tables.VERDICT_REPEAT}">{head}</div><h4>Booking outcomes by path</h4>{self.outcomes().to_html()}'
                f"<h4>Data-quality flags</h4>{self.flag_table().to_html()}")


def _local_day(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert(source_tz()).dt.date


def calls_per_day(calls: pd.DataFrame) -> pd.DataFrame:
    """Calls per local (Berlin) day with the stuck and cleanup-closed counts beside them."""
    if calls.empty:
        return pd.DataFrame(columns=["calls", "stuck", "closed_by_cleanup"])
    day = _local_day(calls["started_at"]).rename("day")
    return (calls.assign(day=day)
            .groupby("day")
            .agg(calls=("call_id", "size"), stuck=("stuck", "sum"), closed_by_cleanup=("closed_by_cleanup", "sum"))
            .astype(int))


def outcomes_by_path(counts: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Attempts per path and outcome (summed over ``counts``: ``attempt_counts`` rows), success rate and its Wilson
    interval."""
    table = (counts.groupby(["path", "outcome"], observed=True)["attempts"].sum().unstack(fill_value=0)
             .reindex(columns=["success", "failed", "orphaned"], fill_value=0))
    table["attempts"] = table.sum(axis=1)
    low, high = proportion_confint(table["success"], table["attempts"], alpha=alpha, method="wilson")
    table["success_rate"] = table["success"] / table["attempts"]
    table["ci_low"], table["ci_high"] = low.round(12), high.round(12)  # 34/34 gives 0.9999999999999999
    return table


def daily_success(counts: pd.DataFrame) -> pd.DataFrame:
    """Success rate per local day (``period``, the left edge of ``timeutil.day_edges``' bins) and path (columns = paths),
    NaN where a path had no attempt that day."""
    if counts.empty:
        return pd.DataFrame()
    frame = counts.assign(day=_local_day(counts["period"]), ok=counts["attempts"].where(counts["outcome"].eq("success"), 0))
    per_day = frame.groupby(["day", "path"], observed=True)[["ok", "attempts"]].sum()
    return (per_day["ok"] / per_day["attempts"]).unstack("path")


def summarize(calls: pd.DataFrame, counts: pd.DataFrame, quality: QualityReport | None = None) -> WorldOverview:
    """Build the overview from a ``loaders.calls`` frame and the window's attempt counts per day
    (``counts.attempt_counts(db, start=..., end=..., bins=timeutil.day_edges(start, end))``, or ``outcomes.count_attempts``
    of attempt rows with the same bins)."""
    attrs = calls.attrs
    flags = {
        "excluded test/demo/temp/malformed ids": attrs.get("excluded_test_ids", 0),
        "stuck sessions (in_progress, never ended)": int(calls["stuck"].sum()) if "stuck" in calls else 0,
        "closed by cleanup (system_timeout)": int(calls["closed_by_cleanup"].sum()) if "closed_by_cleanup" in calls else 0,
        "DST-ambiguous start times": int(calls["started_at_ambiguous"].sum()) if "started_at_ambiguous" in calls else 0,
        "missing optional columns": attrs.get("missing_columns") or "none",
    }
    notes = []
    if flags["DST-ambiguous start times"]:
        notes.append(f"{flags['DST-ambiguous start times']} start times fall in the repeated hour of a DST change; "
                     "they were read as summer time and are flagged.")
    if counts.empty:
        notes.append("No booking attempts in this window: no outcome rates can be given.")
    return WorldOverview(
        window=tuple(attrs.get("window") or (None, None)),
        synthetic=bool(attrs.get("synthetic")),
        calls_per_day=calls_per_day(calls),
        outcomes_by_path=outcomes_by_path(counts) if not counts.empty else pd.DataFrame(),
        daily_success=daily_success(counts),
        flags=flags,
        quality=quality,
        notes=notes,
    )
