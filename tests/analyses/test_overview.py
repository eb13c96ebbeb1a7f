"""The overview of a window: traffic, outcomes by path with Wilson intervals, quality flags."""

import pandas as pd
import pytest
from IPython.core.formatters import DisplayFormatter

from rca_toolkit.sources import loaders
from rca_toolkit.analyses.bookings import counts, outcomes
from rca_toolkit.analyses import overview
from rca_toolkit.rules import timeutil
from rca_toolkit.runs import plots
from rca_toolkit.analyses.quality import quality_report


START, END = "2025-09-22T00:00:00+02:00", "2025-12-01T00:00:00+01:00"  # the notebook's default: the whole demo world


def _window(truth, name):
    info = truth["booking_attempts"]["collect_appointment"][name]
    return info["start"], info["end"]


def _per_day(url, start=START, end=END):
    """The window's attempt counts per local day, as the overview notebook reads them."""
    return counts.attempt_counts(url, start=start, end=end, bins=timeutil.day_edges(start, end))


@pytest.mark.parametrize("window", ["phantom_collect", "after_partial_fix_5d"])
def test_outcomes_by_path_match_ground_truth(demo_db, window):
    url, truth = demo_db
    start, end = _window(truth, window)
    calls = loaders.calls(url, start=start, end=end)
    world = overview.summarize(calls, _per_day(url, start, end))
    table = world.outcomes_by_path
    for path in ("collect_appointment", "book_appointment"):
        expected = truth["booking_attempts"][path][window]
        assert table.loc[path, "attempts"] == expected["attempts"]
        assert table.loc[path, "success"] == expected["success"]
        assert table.loc[path, "orphaned"] == expected["orphaned"]
        assert table.loc[path, "ci_low"] <= table.loc[path, "success_rate"] <= table.loc[path, "ci_high"]
    assert world.synthetic is True


def test_wilson_interval_of_zero_successes_is_not_degenerate():
    attempts = pd.DataFrame({"path": ["p"], "outcome": ["failed"], "attempts": [40]})
    row = overview.outcomes_by_path(attempts).loc["p"]
    assert row["success_rate"] == 0.0 and row["ci_low"] == 0.0
    assert row["ci_high"] == pytest.approx(0.0876, abs=1e-3)  # Wilson upper bound for 0/40


def test_calls_per_day_and_flags(demo_db):
    url, truth = demo_db
    calls = loaders.calls(url)
    world = overview.summarize(calls, _per_day(url), quality_report(calls))
    assert world.calls_per_day["calls"].sum() == truth["calls_real"]
    assert world.flags["stuck sessions (in_progress, never ended)"] == len(
        [c for c in truth["stuck_session_call_ids"] if c not in truth["excluded_ids"]])
    assert world.flags["excluded test/demo/temp/malformed ids"] == len(truth["excluded_ids"])
    day = pd.Timestamp("2025-10-24").date()
    assert world.calls_per_day.loc[day, "stuck"] == world.calls_per_day.loc[day, "calls"]  # every session that day
    assert world.to_dict()["key_numbers"] == {"calls": truth["calls_real"], "days": len(world.calls_per_day), **{
        path: f"{100 * row['success'] / row['attempts']:.1f} % ({row['success']:.0f}/{row['attempts']:.0f})"
        for path, row in world.outcomes_by_path.iterrows()}}
    text = world.to_markdown()
    assert "SYNTHETIC DEMO DATA" in text and "collect_appointment" in text
    section = DisplayFormatter().format(world)[0]["text/markdown"]  # what report.md shows: Markdown, headline marked
    assert "#### Booking outcomes by path" in section and "| stuck sessions (in_progress, never ended) | " in section
    assert section.startswith("<!-- rca-verdict-repeat -->\n**SYNTHETIC DEMO DATA") and "<table" not in section
    expected_ambiguous = 2 if url.startswith("sqlite") else 0
    assert world.flags["DST-ambiguous start times"] == expected_ambiguous


def test_overview_plots_show_every_day(demo_sqlite):
    url, truth = demo_sqlite
    calls = loaders.calls(url, start="2025-10-20T00:00:00+02:00", end="2025-10-27T00:00:00+01:00")
    world = overview.summarize(calls, _per_day(url, "2025-10-20T00:00:00+02:00", "2025-10-27T00:00:00+01:00"))
    fig = plots.plot_calls_per_day(world)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * len(world.calls_per_day)  # calls + stuck bars per day
    assert ax.get_ylim()[1] > world.calls_per_day["calls"].max()  # the busiest day's bar below the frame
    assert "SYNTHETIC" in ax.get_title()
    lines = plots.plot_daily_success(world).axes[0].get_lines()
    assert {line.get_label() for line in lines} == {"collect_appointment", "book_appointment"}


def test_the_overview_legends_sit_beside_the_data_never_over_it(demo_sqlite):
    """Seen in Chromium at 1M calls: the calls chart's legend hid its first five days' bars."""
    url, _ = demo_sqlite
    world = overview.summarize(loaders.calls(url), _per_day(url))
    for fig in (plots.plot_calls_per_day(world), plots.plot_daily_success(world)):
        fig.canvas.draw()
        ax = fig.axes[0]
        legend, area = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= area.x1, ax.get_title()  # right of the plotting area (reports save the figure's tight box)


def test_the_summary_reads_production_counts_with_thousands_separators(demo_db):
    """At 1M calls the overview said '107068 stuck sessions; 3692 closed by cleanup' beside '1,031,316 calls'."""
    from dataclasses import replace

    url, _ = demo_db
    calls = loaders.calls(url)
    world = overview.summarize(calls, _per_day(url), quality_report(calls))
    big = replace(world, flags={**world.flags, "stuck sessions (in_progress, never ended)": 107068,
                                "closed by cleanup (system_timeout)": 3692})
    line = next(x for x in big.summary_lines() if x.startswith("Data quality: "))
    assert "107,068 stuck sessions (in_progress, never ended); 3,692 closed by cleanup (system_timeout)" in line


def test_daily_counts_give_the_outcomes_and_daily_rates_of_the_attempt_rows(demo_db):
    """The overview reads counts per local day instead of attempt rows (at 1M calls: half the time, half the
    memory); every number is the rows' own, days across the autumn DST change included."""
    url, _ = demo_db
    rows = outcomes.booking_attempts(url, start=START, end=END)
    world = overview.summarize(loaders.calls(url, start=START, end=END), _per_day(url))
    by_rows = rows.groupby(["path", "outcome"], observed=True).size().unstack(fill_value=0)
    for path, row in world.outcomes_by_path.iterrows():
        assert row["attempts"] == by_rows.loc[path].sum() > 0
        assert [row[o] for o in ("success", "failed", "orphaned")] == [by_rows.loc[path].get(o, 0)
                                                                        for o in ("success", "failed", "orphaned")]
    day = rows["at"].dt.tz_convert("Europe/Berlin").dt.date
    expected = rows.assign(day=day, ok=rows["outcome"].eq("success")).pivot_table(
        index="day", columns="path", values="ok", aggfunc="mean", observed=True)
    expected.columns = expected.columns.astype(str)  # the paths, as texts
    pd.testing.assert_frame_equal(world.daily_success, expected, check_names=False, check_dtype=False,
                                  check_column_type=False)
    assert pd.Timestamp("2025-10-26").date() in world.daily_success.index


def test_a_one_day_window_is_drawn_on_a_day_axis(demo_sqlite):
    """A day's overview drew one bar with hour ticks around it (16:00 ... 08:00, half on the day before): the axis
    shows the day and one either side, the bar within its day."""
    import matplotlib.dates as mdates

    url, _ = demo_sqlite
    start, end = "2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00"
    world = overview.summarize(loaders.calls(url, start=start, end=end), _per_day(url, start, end))
    for fig in (plots.plot_calls_per_day(world), plots.plot_daily_success(world)):
        lo, hi = fig.axes[0].get_xlim()
        assert (mdates.num2date(lo).date().isoformat(), hi - lo) == ("2025-10-25", 3.0)
    bars = plots.plot_calls_per_day(world).axes[0].patches
    assert [mdates.num2date(b.get_x()).date().isoformat() for b in bars] == ["2025-10-26"] * 2  # on its own day
    assert "17 calls on 1 day." in world.summary_lines()[0]
