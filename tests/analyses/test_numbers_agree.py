"""Numbers shown twice on a report agree, or the report says in one line why they differ (demo world).

Every expected value here is computed from the result objects (attribution, findings, what-if, metrics,
loader attributes), never typed in: the tests hold for any demo seed, and they fail when a renderer
shows a number that the object does not back.
"""

from __future__ import annotations

import re

import pytest

from rca_toolkit import cli
from rca_toolkit.analyses import overview, quality, tables
from rca_toolkit.analyses.bookings import outcomes
from rca_toolkit.analyses.calls import detectors, timeline
from rca_toolkit.analyses.compare.before_after import before_after
from rca_toolkit.analyses.health import report as health
from rca_toolkit.rules import timeutil
from rca_toolkit.sources import loaders

CALL = "call_ab45deadd7db66c4956d5243861"  # the 144-second call (incidents.md B)
AT = "2025-10-18T13:20:08+02:00"


@pytest.fixture(scope="module")
def call(demo_sqlite):
    url, _ = demo_sqlite
    return timeline.load_timeline(CALL, db=url)


def _renderings(result) -> list[str]:
    return [result.to_text(), result.to_markdown(), result._repr_html_()]


# --------------------------------------------------------------------------- the 144-second call
def test_dead_air_in_the_attribution_the_finding_and_the_what_if_is_one_gap_explained_once(call):
    (finding,) = [f for f in call.findings if f.kind == "dead_air"]
    gaps = call.attribution.gaps
    gap = gaps[(gaps["category"] == "dead_air") & ((gaps["start_s"] - finding.start_s).abs() < 0.0005)].iloc[0]
    # the three numbers: the whole silence (finding), its non-tool part (attribution), beyond the threshold (what-if)
    assert finding.seconds == pytest.approx(gap["seconds"])
    assert call.attribution.seconds["dead_air"] == pytest.approx(gap["seconds"] - gap["tool_s"])  # the only dead-air gap
    assert finding.removable_s == pytest.approx(finding.seconds - call.thresholds["dead_air_s"], abs=0.001)
    (line,) = [line for line in call.reconciliation() if line.startswith("Dead air")]
    for shown in (finding.seconds, gap["tool_s"], gap["seconds"] - gap["tool_s"], finding.removable_s):
        assert f"{shown:.1f} s" in line
    assert "tool_wait_silent" in line and "book_appointment" in line
    for page in _renderings(call):
        assert "How the numbers relate" in page and f"{finding.seconds - gap['tool_s']:.1f} s dead_air" in page


def test_the_what_if_says_its_items_overlap_by_the_difference(call):
    chosen = [f for f in call.findings if f.kind in call.what_if.kinds and f.removable_s > 0]
    listed = sum(f.removable_s for f in chosen)
    removed = detectors.union_length([iv for f in chosen for iv in f.removable])
    assert call.what_if.removed_s == pytest.approx(removed, abs=0.001)
    assert listed - removed > 0.05  # the demo call's failed tool lies inside its dead air
    (line,) = [line for line in call.reconciliation() if line.startswith("The what-if items")]
    assert f"add up to {listed:.1f} s but {removed:.1f} s is removed: {listed - removed:.1f} s" in line
    assert "dead_air and failed_tool share" in line
    listed_text = call.to_text().split("What-if removed:")[1]
    assert sum(float(x) for x in re.findall(r"\(-(\d+\.\d) s\)", listed_text)) == pytest.approx(listed, abs=0.05)


def test_the_call_renders_without_row_numbers_nan_or_microseconds(call):
    for page in _renderings(call):
        assert "NaN" not in page and "None" not in page and ".412000" not in page
    assert "2025-10-18 12:09:26 CEST" in call.to_text()  # started_at in the report's zone
    events = call.events()
    assert len(events) == len(call.spans) and events.headers == ["at (s)", "until (s)", "who", "what", "during finding"]
    (loop,) = [f for f in call.findings if f.kind == "loop"]
    in_loop = [at for at, found in zip(events.column("at (s)"), events.column("during finding")) if "loop" in found]
    assert len(in_loop) == ((call.spans["start_s"] >= loop.start_s - 0.0005) & (call.spans["start_s"] < loop.end_s)).sum()
    assert "<th></th>" not in events.to_html() and 'title="' not in events.to_html().split("</thead>")[0]


def test_text_output_of_timeline_and_compare_fits_100_columns(demo_sqlite, capsys):
    url, _ = demo_sqlite
    for args in (["timeline", CALL, "--db", url], ["compare", "--db", url, "--at", AT, "--by", "path"]):
        assert cli.main(args) in (0, 1)
        out = capsys.readouterr().out
        assert out.strip() and max(len(line) for line in out.splitlines()) <= tables.TEXT_WIDTH, args[0]


# --------------------------------------------------------------------------- compare
@pytest.fixture(scope="module")
def compared(demo_sqlite):
    url, _ = demo_sqlite
    return before_after(url, at=AT, by="path")


def test_compare_labels_the_shift_as_hodges_lehmann_and_rates_as_after_minus_before(compared):
    comparison = compared.comparison
    (rates_title, rates), (dist_title, dists) = comparison._tables()
    assert "change (pp)" in rates.headers
    assert "shift (Hodges-Lehmann, s)" in dists.headers and not any(h == "difference" for h in dists.headers)
    for m, shown in zip([m for m in comparison.metrics if m.unit == "share"], rates.column("change (pp)")):
        assert float(shown) == pytest.approx(100 * (m.after.value - m.before.value), abs=0.051)  # really after - before
    shifts = [m for m in comparison.metrics if m.unit == "ms" and m.difference is not None]
    for m in shifts:
        label = m.name if m.group == "all" else f"{m.name} {m.group}"
        shown = dists.column("shift (Hodges-Lehmann, s)")[dists.column("metric").index(label)]
        assert float(shown) == pytest.approx(m.difference / 1000, abs=0.051)
    # the shift is not the difference of the medians shown, and the report says so
    assert any(abs(m.difference - (m.after.value - m.before.value)) > 50 for m in shifts)
    for page in _renderings(comparison):
        assert "Hodges-Lehmann" in page and "not the difference of the two medians shown" in page


def test_change_points_fold_each_change_to_one_row_with_the_other_resolutions_on_demand(compared):
    changes = compared.changes
    folded, every = changes.table(), changes.table(all_resolutions=True)
    assert len(every) == len(changes.changes) > len(folded)
    keys = list(zip(folded["series"], folded["direction"], folded["between"]))
    assert len(keys) == len(set(keys))
    found = [r.split(", ") for r in folded["found at"]]
    assert sum(len(f) for f in found) == len(changes.changes)  # every change is in exactly one row
    assert "p=" not in changes._repr_html_() and "table(all_resolutions=True)" in changes._repr_html_()


# --------------------------------------------------------------------------- health
def test_a_growing_signature_is_shown_as_a_rate_per_day(demo_sqlite):
    url, _ = demo_sqlite
    report = health.health(url, "2025-10-14", "1d")
    growing = report.signatures[report.signatures["status"] == "growing"]
    assert len(growing)
    row = growing.iloc[0]
    per_day, base_per_day = row["per_day"], row["baseline_per_day"]  # computed once, from the report's bounds
    assert (per_day, base_per_day) == (row["count"] / 1, pytest.approx(row["baseline_count"] / 7))
    assert per_day > base_per_day  # 'growing' reads as growing once both are per day
    (reason,) = [r.text for r in report.reasons if r.text.startswith(f"growing signature {row['signature']}")]
    assert f"{per_day:.1f}/day now vs {base_per_day:.1f}/day in the previous 7 days" in reason
    table = report.table("signatures")
    assert f"{base_per_day:.1f}" == table.column("baseline per day")[growing.index[0]]
    assert "['" not in report._repr_html_() and report.notes._repr_html_().startswith("<ul>")


# --------------------------------------------------------------------------- overview
def test_the_overview_counts_the_excluded_test_ids_once_in_both_tables(demo_sqlite):
    url, truth = demo_sqlite
    calls = loaders.calls(url)
    start, end = "2025-09-22T00:00:00+02:00", "2025-12-01T00:00:00+01:00"  # the whole demo world
    per_day = outcomes.count_attempts(outcomes.booking_attempts(url), bins=timeutil.day_edges(start, end))
    world = overview.summarize(calls, per_day, quality.quality_report(calls))
    excluded = calls.attrs["excluded_test_ids"]
    assert excluded == len(truth["excluded_ids"]) > 0
    assert world.flags["excluded test/demo/temp/malformed ids"] == excluded
    title, shown, examples = world.quality.shown(world.quality["test_ids"])
    assert shown == excluded + world.quality["test_ids"].count and f"{excluded} excluded by the loader" in title
    assert f">{shown}<" in world.quality._repr_html_() and f"| {shown} |" in world.quality.to_markdown()
    page = world._repr_html_()
    assert "<th></th>" not in page and "0.539" not in page  # no row index, rates as percentages
