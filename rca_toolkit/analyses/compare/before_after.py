"""Before/after a change: booking success, durations and latencies, and change points around it.

One loading path for the CLI (``rca compare``) and the report notebook, so both show the same
numbers. Booking success and the error mix come from ``counts.attempt_counts`` (both side windows
in one pass of classified attempt rows), durations and latencies from value histograms computed by
the database (:mod:`rca_toolkit.sources.aggregates`), no duration row loaded; on MariaDB both read
the local store (:mod:`rca_toolkit.sources.store`).

Change points need attempt times (each change is the interval between the last attempt of the
old regime and the first of the new one), so they are searched over attempt rows, but only
over a bounded history: ``HISTORY_FACTOR`` times each compared window around ``at``
(``history="90d"`` for 90 days each side, ``history="all"`` for everything).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.timeutil import parse_duration
from rca_toolkit.sources import aggregates, attempt_inputs, loaders, requirements, store
from rca_toolkit.sources.deployments import load_deployments
from rca_toolkit.analyses import tables
from rca_toolkit.analyses.bookings import counts as booking_counts, outcomes
from rca_toolkit.analyses.compare import changepoints, stats as compare_mod

HISTORY_FACTOR = 6  # change-point history: 6x each compared window on its side of --at (5d -> 30 days each side)
# Everything a comparison reads, checked before its first statement (rca_toolkit.sources.requirements)
REQUIRES = {"before_after": (attempt_inputs.REQUIRES["load"], aggregates.REQUIRES["plan"])}


@dataclass
class BeforeAfter:
    """What the CLI prints and the notebook shows: the comparison, the change points, the attempt counts.

    ``counts`` holds attempt counts per side window (``counts.attempt_counts`` shape);
    ``attempts`` the attempt rows of the change-point history (None without change points).
    """

    comparison: compare_mod.Comparison
    changes: changepoints.ChangePoints | None
    counts: dict[str, pd.DataFrame]
    attempts: pd.DataFrame | None = None

    def outcome_table(self) -> pd.DataFrame:
        """Attempts, successes, failures, orphans and webhook rescues per path in each compared window."""
        parts = []
        for window in self.comparison.windows:
            frame = self.counts[window]
            group = "path" if "path" in frame else self.comparison.by
            outcome = frame["outcome"].astype(str)
            table = pd.DataFrame({
                "attempts": frame.groupby(group, observed=True)["attempts"].sum(),
                **{o: frame["attempts"].where(outcome == o, 0).groupby(frame[group], observed=True).sum()
                   for o in outcomes.OUTCOMES},
                "rescued_by_webhook": frame["attempts"].where(frame["rescued_by_webhook"].fillna(False).astype(bool), 0)
                                                       .groupby(frame[group], observed=True).sum(),
            }).astype(int)
            table["success_rate"] = table["success"] / table["attempts"]
            table = table.rename_axis(group).reset_index()
            table.insert(0, "window", window)
            parts.append(table)
        return pd.concat(parts, ignore_index=True)

    def to_dict(self) -> dict:
        out = self.comparison.to_dict()
        out["outcomes"] = self.outcome_table().to_dict(orient="records")
        out["change_points"] = self.changes.to_dict() if self.changes is not None else None
        return out

    def outcomes(self) -> tables.Table:
        """:meth:`outcome_table` as a reader wants it: counts, and success as a percentage with its count."""
        frame = self.outcome_table()
        frame = frame.assign(rate=[tables.share_of(k, n) for k, n in zip(frame["success"], frame["attempts"])])
        group = frame.columns[1]
        return tables.Table(frame, [tables.col("window"), tables.col(group),
                                    *[tables.col(c, c.replace("_", " "), tables.count, numeric=True)
                                      for c in ["attempts", *outcomes.OUTCOMES, "rescued_by_webhook"]],
                                    tables.col("rate", "success rate", numeric=True)])

    def to_text(self, width: int = tables.TEXT_WIDTH) -> str:
        text = self.comparison.to_text(width)
        text += "\n\n" + tables.wrap_lines(["Booking outcomes per window (orphaned = booked in Cal.com, no local row; "
                                            "rescued = row only from the webhook):"], width) + "\n"
        text += self.outcomes().to_text(width)
        if self.changes is not None:
            text += "\n\n" + tables.wrap_lines(["Change points of booking success (interval = last attempt of the old "
                                                "regime -> first of the new):"], width) + "\n"
            text += self.changes.to_text(width) if self.changes.changes else "  none found"
        return text


def side_counts(engine, windows: dict, by: str | None, when_fetched=None) -> tuple[dict[str, pd.DataFrame], str | None]:
    """Attempt counts per side window, and a note when they had to come from attempt rows.

    ``counts.attempt_counts`` counts per path and any of ``outcomes.BY_COLUMNS``; another
    ``--by`` column of the attempts is counted from the windows' attempt rows. ``when_fetched``:
    see ``counts.attempt_counts``.
    """
    if by in (None, "path") or by in outcomes.BY_COLUMNS:
        return _binned_counts(engine, windows, [] if by in (None, "path") else [by], when_fetched), None
    counts = {}
    for key, (lo, hi) in windows.items():
        rows = outcomes.booking_attempts(engine, start=lo, end=hi)
        counts[key] = outcomes.count_attempts(rows, by=[by])
        counts[key].attrs = {k: v for k, v in rows.attrs.items() if k != "excluded_examples"}
    return counts, (f"--by {by}: booking attempts of the compared windows were loaded as rows and counted "
                    f"(attempt_counts counts by {', '.join(outcomes.BY_COLUMNS)}); slower than --by path at scale")


def _binned_counts(engine, windows: dict, by: list[str], when_fetched=None) -> dict[str, pd.DataFrame]:
    """Both sides in one pass: the span from the first window's start to the last one's end, binned
    at the window edges (the excluded band between them is a bin of its own, dropped). One load
    instead of two, and outcome links are classified over the whole span as ``booking_attempts``
    would."""
    (b_lo, b_hi), (a_lo, a_hi) = windows["before"], windows["after"]
    counts = booking_counts.attempt_counts(engine, start=b_lo, end=a_hi, bins=[b_lo, b_hi, a_lo, a_hi], by=by,
                                           when_fetched=when_fetched)
    period = counts["period"].dt.tz_convert("UTC")
    out = {}
    for key, lo in (("before", b_lo), ("after", a_lo)):
        part = counts[period == pd.Timestamp(lo).tz_convert("UTC")].drop(columns="period").reset_index(drop=True)
        # the span's exclusion/inference counts once: the comparison sums them over the sides
        part.attrs = dict(counts.attrs) if key == "before" else {k: v for k, v in counts.attrs.items() if k not in SPAN_COUNTS}
        out[key] = part
    return out


SPAN_COUNTS = ("excluded_test_ids", "excluded_test_attempts", "inferred_calcom_links")


def _empty_windows(engine, sides: list[str]) -> str:
    """A sentence naming the windows without data and where the database's sessions are."""
    span = loaders.query(engine, "SELECT MIN(started_at) AS first, MAX(started_at) AS last FROM retell_call_sessions", {})
    span = loaders.to_utc(span, ["first", "last"], loaders.storage_zone(engine), flags=False)
    which = ("Neither window holds a booking attempt or a call duration" if len(sides) == 2
             else f"The {sides[0]} window holds no booking attempt and no call duration")
    held = ("the database holds no session" if span["first"].isna().all() else
            f"the database's sessions run from {tables.when(span['first'].iloc[0])} to {tables.when(span['last'].iloc[0])}")
    return f"{which}: {held} (check --at and the windows)."


def history_bounds(at_ts: pd.Timestamp, before: str, after: str, history: str | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Change-point history around ``at``: ``HISTORY_FACTOR`` x each window, a duration each side, or ``all``."""
    if history == "all":
        return None, None
    if history:
        span = parse_duration(history, name="--history")
        return at_ts - span, at_ts + span
    return (at_ts - HISTORY_FACTOR * parse_duration(before, name="--before"),
            at_ts + HISTORY_FACTOR * parse_duration(after, name="--after"))


def changepoint_attempts(engine, *, start, end, by: str = "path") -> pd.DataFrame:
    """Booking attempts as change points need them: ``at``, ``outcome`` (success or not), ``by``.

    Success is decided by the attempt's own trace (``attempt_inputs.attempt_succeeded``: its status, and for the
    validation step of a two-step booking the rule's step, ``functions.booking_steps``), so unless ``by`` is
    ``code_path`` (which comes from the error log) the attempts' traces alone give the series
    ``outcomes.booking_attempts`` gives, without its error, appointment and webhook reads and their classification
    (``rca compare`` at 1M calls, a 30-day history: 3.3 s -> 1 s).
    """
    if by not in ("path", "family", "function_name", "company_id"):
        return outcomes.booking_attempts(engine, start=start, end=end)
    traces = attempt_inputs.attempt_traces(engine, loaders.schema_of(engine), start, end, None, lean=True)
    traces = traces[traces.pop("real_call").to_numpy()]  # test calls are no attempts (attempt_inputs.load)
    ok = attempt_inputs.attempt_succeeded(traces)
    frame = pd.DataFrame({"at": traces["started_at"], "path": traces["family"].astype(str).astype("category"),
                          "family": traces["family"], "function_name": traces["function_name"],
                          "company_id": traces["company_id"], "outcome": ok.map({True: "success", False: "failed"})})
    frame.attrs = dict(traces.attrs)
    return frame.reset_index(drop=True)


def before_after(db=None, *, at, before="5d", after="5d", exclude="30m", by: str | None = "path",
                 deployments_path=None, with_changepoints: bool = True, history: str | None = None) -> BeforeAfter:
    """Count attempts, fetch duration/latency histograms, compare; change points over a bounded history."""
    at_ts, windows, _ = compare_mod.comparison_windows(at, before, after, exclude, prefix="--")
    if by is not None and by not in outcomes.COLUMNS:  # fail before any query
        raise ConfigError(f"--by {by!r} is not a column of the booking attempts",
                          hint="use one of: path, code_path, family, function_name, company_id")
    start_h, end_h = history_bounds(at_ts, before, after, history) if with_changepoints else (None, None)
    engine = loaders.engine_for(db, cached=True)
    absent = requirements.check(engine, *REQUIRES["before_after"])
    # The histograms are server work (GROUP BY over the windows) on connections of their own. On a server the
    # call durations run beside the attempts' reads; the session durations and the latencies wait until the
    # attempts are read, then run, each on its own connection, beside their classification (Python, one
    # core): both cores stay busy to the end. The local store runs one statement at a time (store.query_frame),
    # so there all three wait: one started early only held the attempts' reads back (compare, 1M calls: ~0.8 s).
    late_metrics = ("call_duration_session", "function_latency") + (("call_duration_retell",) if store.is_store(engine) else ())
    with ThreadPoolExecutor(max_workers=1 + len(late_metrics)) as pool:
        plan_future = pool.submit(aggregates.plan, engine, windows=windows, as_of=windows["after"][1])

        def fetch_part(wanted):
            plan = plan_future.result()
            return aggregates.fetch(engine, plan.only([s.metric for s in plan.statements if wanted(s.metric)]))

        early = pool.submit(fetch_part, lambda metric: metric not in late_metrics)
        late: list = []

        def start_late():
            if not late:
                late.extend(pool.submit(fetch_part, lambda metric, one=one: metric == one) for one in late_metrics)

        counts, note = side_counts(engine, windows, by, when_fetched=start_late)
        start_late()
        histograms = early.result()
        for part in late:
            histograms = histograms.merge(part.result())
    result = compare_mod.compare(counts=counts, histograms=histograms, at=at_ts, before=before, after=after,
                                 exclude=exclude, by=by)
    empty = result.empty_sides()
    if empty:  # said first: a mistyped --at reads as "not enough data" in every row otherwise
        result.lead.append(_empty_windows(engine, empty))
    if note:
        result.notes.append(note)
    result.notes += [n for n in requirements.absent_notes(absent, *REQUIRES["before_after"]) if n not in result.notes]
    read_from = store.read_note(engine)  # None unless it was read from a store
    if read_from:
        result.notes.append(read_from)
    changes = attempts = None
    if with_changepoints:
        attempts = changepoint_attempts(engine, start=start_h, end=end_h, by=by or "path")
        changes = changepoints.detect(attempts, by=by or "path", deployments=load_deployments(deployments_path))
        span = "the whole history" if start_h is None else (
            f"{tables.between(start_h, end_h)} ({'--history ' + history if history else f'{HISTORY_FACTOR}x each compared window'}"
            " around --at; widen with --history 90d or --history all)")
        changes.notes.append(f"change points searched over attempts of {span}")
    return BeforeAfter(result, changes, counts, attempts)
