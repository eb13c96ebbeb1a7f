"""Before/after statistics on small frames built here, then the demo world end to end."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pandas as pd
import pytest

from rca_toolkit.analyses import tables
from rca_toolkit.analyses.compare import stats as cmp
from rca_toolkit.errors import ConfigError, SchemaError
from rca_toolkit.rules.bookings import MIN_ATTEMPTS

AT = "2025-10-18T13:20:08+02:00"
AT_UTC = pd.Timestamp("2025-10-18T11:20:08Z")


def _attempts(spec: dict[str, tuple[int, int, int, int]]) -> pd.DataFrame:
    """spec: path -> (successes before, n before, successes after, n after), spread over 4 days."""
    rows = []
    for path, (sb, nb, sa, na) in spec.items():
        for side, succ, n in (("before", sb, nb), ("after", sa, na)):
            for i in range(n):
                offset = pd.Timedelta(hours=2 + i * 90 / max(n, 1))
                at = AT_UTC - offset if side == "before" else AT_UTC + offset
                ok = i < succ
                rows.append({"at": at, "path": path, "outcome": "success" if ok else "failed",
                             "signature": None if ok else "[1054] Unknown column 'created_by' in 'field list'"})
    return pd.DataFrame(rows)


def test_wilson_newcombe_and_fisher_on_a_recovered_path():
    m = cmp.rate_metric("booking_success_rate", "collect", (0, 25), (25, 25))
    z2 = 1.959963984540054 ** 2
    assert m.before.value == 0.0 and m.before.n == 25
    assert m.before.ci[0] == 0.0 and m.before.ci[1] == pytest.approx(z2 / (25 + z2))  # Wilson upper bound at 0/n
    assert m.after.ci[0] == pytest.approx(25 / (25 + z2))
    assert m.p_value == pytest.approx(2 / comb(50, 25))  # Fisher: only the two extreme tables
    assert m.difference == 1.0 and m.difference_ci[0] > 0.8 and m.difference_ci[1] == pytest.approx(1.0)
    assert m.verdict == "improved" and "0.0 % of 25 -> 100.0 % of 25" in m.reason


def test_small_samples_never_get_a_confident_verdict():
    m = cmp.rate_metric("booking_success_rate", "x", (0, 9), (9, 9))
    assert m.p_value < 0.05  # the test alone would call it significant ...
    assert m.verdict == "not enough data" and "at least 10 per side" in m.reason  # ... the rule refuses
    assert cmp.rate_metric("r", "x", (0, 0), (5, 5)).verdict == "not enough data"
    d = cmp.distribution_metric("lat", "x", np.arange(19.0), np.arange(19.0) + 100)
    assert d.verdict == "not enough data" and d.before.n == 19


def test_same_rate_is_unchanged_with_p_one():
    m = cmp.rate_metric("r", "book", (0, 30), (0, 27))
    assert (m.verdict, m.p_value, m.difference) == ("unchanged", 1.0, 0.0)
    assert m.reason == "0.0 % of 30 -> 0.0 % of 27; no significant change (p = 1)"


def test_a_test_that_sees_a_difference_the_estimate_does_not_is_said_so():
    """At 1M calls Mann-Whitney finds p = 1e-12 between integer durations whose shift is 0 ms: the verdict stays
    "unchanged", and its reason no longer reads "no significant change (p=1.46e-12)"."""
    before = np.array([1000.0] * 50_000 + [999.0] * 5_000)
    after = np.array([1000.0] * 50_000 + [1001.0] * 5_000)
    m = cmp.distribution_metric("function_latency", "initialize_call", before, after)
    assert m.p_value < 1e-12 and m.difference == 0 and m.verdict == "unchanged"
    assert m.reason == "median 1.00 s (n=55,000) -> 1.00 s (n=55,000); p < 0.001, but the estimated change is 0"
    big = cmp.rate_metric("booking_success_rate", "all", (0, 49_608), (19_255, 39_561))
    assert big.reason == "0.0 % of 49,608 -> 48.7 % of 39,561; p < 0.001"


def test_distribution_shift_percentiles_and_bootstrap_are_reproducible():
    before = np.arange(1000.0, 1100.0)
    after = before - 300
    m = cmp.distribution_metric("call_duration_session", "all", before, after)
    assert m.difference == -300.0  # Hodges-Lehmann shift of an exact shift
    assert m.verdict == "improved" and m.p_value < 1e-10
    assert m.before.detail["p95"]["value"] == pytest.approx(np.percentile(before, 95))
    lo, hi = m.before.detail["p99"]["ci"]
    assert lo <= m.before.detail["p99"]["value"] <= hi
    again = cmp.distribution_metric("call_duration_session", "all", before, after)
    assert again.before.detail == m.before.detail  # fixed bootstrap seed
    worse = cmp.distribution_metric("lat", "x", before, before + 50)
    assert worse.verdict == "regressed" and worse.difference == 50.0


def test_chi_square_only_when_cochran_holds():
    assert cmp.chi_square_mix(np.array([[30, 5], [10, 40]]))["valid"] is True
    small = cmp.chi_square_mix(np.array([[3, 0], [1, 2]]))
    assert small["valid"] is False and small["p_value"] is None and "too small" in small["reason"]
    assert cmp.chi_square_mix(np.array([[12, 0]]))["valid"] is False


def test_partial_fix_is_said_plainly():
    attempts = _attempts({"collect_appointment": (0, 25, 24, 25), "book_appointment": (0, 24, 0, 26)})
    result = cmp.compare(attempts, at=AT, by="path")
    collect = result.metric("booking_success_rate", "collect_appointment")
    book = result.metric("booking_success_rate", "book_appointment")
    assert (collect.verdict, book.verdict) == ("improved", "unchanged")
    assert result.partial["is_partial"] and result.partial["still_failing"] == ["book_appointment"]
    text = result.to_text()
    assert "The fix was partial: book_appointment still fails (0.0 % success of 26 attempts" in text
    payload = json.loads(result.to_json())
    names = {(m["name"], m["group"]) for m in payload["metrics"]}
    assert ("booking_success_rate", "book_appointment") in names
    first = payload["metrics"][0]
    assert set(first) >= {"name", "group", "before", "after", "p_value", "verdict"}
    assert set(first["before"]) >= {"value", "n", "ci"}
    assert payload["signature_mix"]["table"][0] == {
        "signature": "[1054] Unknown column 'created_by' in 'field list'", "before": 49, "after": 27}
    assert "<table" in result._repr_html_() and "The fix was partial" in result._repr_html_()
    assert "**The fix was partial: book_appointment still fails" in result.to_markdown()


def test_each_distribution_row_is_shown_in_its_own_unit():
    """Milliseconds read as seconds; a distribution in another unit is never labelled (s) or (ms)."""
    from dataclasses import replace

    attempts = _attempts({"collect_appointment": (0, 25, 24, 25)})
    base = cmp.compare(attempts, at=AT, by="path")
    latency = cmp.distribution_metric("function_latency", "all", np.arange(1000.0, 1400.0, 20), np.arange(2000.0, 2400.0, 20))
    transfers = cmp.distribution_metric("transfers_per_call", "all", [1, 2, 2, 3] * 5, [2, 3, 3, 4] * 5, unit="transfers")

    (_, seconds), = [t for t in replace(base, metrics=[latency])._tables() if t[0] != "Booking success"]
    assert "median before (s)" in seconds.headers and seconds.column("median before (s)") == ["1.19 (n=20)"]

    (_, mixed), = [t for t in replace(base, metrics=[latency, transfers])._tables() if t[0] != "Booking success"]
    assert "median before" in mixed.headers and "shift (Hodges-Lehmann)" in mixed.headers
    assert mixed.column("median before") == ["1.19 s (n=20)", "2 transfers (n=20)"]
    assert mixed.column("shift (Hodges-Lehmann)") == ["+1.00 s", "+1 transfers"]
    assert not hasattr(base, "table")  # the one table of every rendering is _tables()


def test_windows_exclude_the_guard_band():
    attempts = pd.DataFrame({"at": [AT_UTC - pd.Timedelta(minutes=10), AT_UTC + pd.Timedelta(minutes=10),
                                    AT_UTC + pd.Timedelta(minutes=40)], "outcome": ["failed", "failed", "success"]})
    result = cmp.compare(attempts, at=AT, exclude="30m")
    m = result.metric("booking_success_rate")
    assert (m.before.n, m.after.n, m.after.value) == (0, 1, 1.0)
    assert m.verdict == "not enough data"


def test_bad_inputs_are_one_clear_error():
    attempts = _attempts({"a": (1, 2, 1, 2)})
    with pytest.raises(ConfigError, match="no time zone"):
        cmp.compare(attempts, at="2025-10-18T13:20:08")
    with pytest.raises(ConfigError, match="exclude"):
        cmp.compare(attempts, at=AT, before="1h", exclude="2h")
    with pytest.raises(ConfigError, match="--by 'nope'"):
        cmp.compare(attempts, at=AT, by="nope")
    with pytest.raises(SchemaError, match="outcome"):
        cmp.compare(attempts.drop(columns="outcome"), at=AT)


def test_latency_figure_shows_before_and_after_per_family():
    from rca_toolkit.runs.plots import plot_latency

    traces = pd.DataFrame({
        "started_at": [AT_UTC - pd.Timedelta(hours=h) for h in range(1, 31)] + [AT_UTC + pd.Timedelta(hours=h) for h in range(1, 31)],
        "family": ["check_availability"] * 60,
        "duration_ms": list(np.linspace(1000, 3000, 30)) + list(np.linspace(500, 1500, 29)) + [-714],
    })
    result = cmp.compare(_attempts({"a": (1, 2, 1, 2)}), traces=traces, at=AT, before="2d", after="2d")
    m = result.metric("function_latency", "check_availability")
    assert (m.before.n, m.after.n, m.verdict) == (30, 29, "improved")
    assert "negative durations left out (P6): 0 before / 1 after" in m.notes[0]
    fig = plot_latency(result)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["check_availability\nbefore n=30", "check_availability\nafter n=29"]
    assert fig.axes[0].get_yscale() == "log"


# --------------------------------------------------------------------------- the demo world
PHANTOM_START = pd.Timestamp("2025-10-13T11:16:08+02:00")
FULL_FIX = pd.Timestamp("2025-11-13T16:18:37+01:00")
PATHS = ("collect_appointment", "book_appointment")


def _rca(args, capsys):
    from rca_toolkit import cli

    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_windows_without_data_say_so_first_and_where_the_data_is(demo_db, capsys):
    """A mistyped year read as "not enough data" in every row; the summary now says the windows are empty and
    where the database's sessions are (on SQLite and on the MariaDB store alike)."""
    from rca_toolkit.sources import loaders

    url, truth = demo_db
    calls = loaders.calls(url, include_test=True)  # every session: where the data is, as the loaders read it
    first, last = (tables.when(calls["started_at"].min()), tables.when(calls["started_at"].max()))
    code, out, err = _rca(["compare", "--at", "2030-01-01T00:00:00Z", "--no-changepoints", "--db", url], capsys)
    assert code == 0, err
    said = " ".join(out.split())  # wrapped at 100 columns
    assert (f"SYNTHETIC DEMO DATA: these numbers come from the generated demo world, not production. Neither window holds "
            f"a booking attempt or a call duration: the database's sessions run from {first} to {last} (check --at and "
            "the windows).") in said
    code, out, _ = _rca(["compare", "--at", "2025-11-30T12:00:00+01:00", "--no-changepoints", "--db", url], capsys)
    assert code == 0 and "window holds" not in out  # an after window with a few sessions is no empty one
    code, out, _ = _rca(["compare", "--at", "2025-12-04T12:00:00+01:00", "--no-changepoints", "--db", url], capsys)
    assert (f"The after window holds no booking attempt and no call duration: the database's sessions run from {first} "
            f"to {last}") in " ".join(out.split())  # the before window (Nov 29 - Dec 4) holds the last days


def test_demo_cli_json_shows_the_partial_fix_and_the_change_points(demo_db, capsys):
    url, truth = demo_db
    code, out, err = _rca(["compare", "--at", AT, "--by", "path", "--format", "json", "--db", url], capsys)
    assert code == 0, err
    payload = json.loads(out)
    rates = {m["group"]: m for m in payload["metrics"] if m["name"] == "booking_success_rate"}
    collect, book = rates["collect_appointment"], rates["book_appointment"]
    assert collect["before"]["value"] == 0.0 and collect["before"]["n"] >= 20
    assert collect["after"]["value"] >= 0.95 and collect["verdict"] == "improved"
    assert book["after"]["value"] == 0.0 and book["after"]["n"] >= 20 and book["verdict"] == "unchanged"
    assert payload["partial"]["is_partial"] and payload["partial"]["still_failing"] == ["book_appointment"]
    assert payload["synthetic"] is True
    changes = payload["change_points"]["changes"]

    def near(series, direction, when, resolution="hour"):
        found = [c for c in changes if c["series"] == series and c["direction"] == direction and c["resolution"] == resolution]
        return min((abs(pd.Timestamp(c["at"]) - when) for c in found), default=pd.Timedelta.max)

    for path in PATHS:
        assert near(path, "broke", PHANTOM_START) <= pd.Timedelta(hours=2), path
    assert near("book_appointment", "recovered", FULL_FIX) <= pd.Timedelta(hours=2)
    assert near("collect_appointment", "recovered", AT_UTC) <= pd.Timedelta(hours=2)
    assert near("book_appointment", "recovered", AT_UTC) > pd.Timedelta(days=20)  # the book path did not recover on 10-18


def test_demo_text_report_says_the_fix_was_partial(demo_db, capsys):
    url, _ = demo_db
    code, out, _ = _rca(["compare", "--at", AT, "--by", "path", "--db", url, "--no-changepoints"], capsys)
    assert code == 0
    assert "The fix was partial: book_appointment still fails (0.0 % success of" in out
    assert "SYNTHETIC DEMO DATA" in out


def test_the_cli_shows_each_path_its_headline_names_unless_told_none(demo_db, capsys):
    """The headline says book_appointment still fails; without --by the table showed only "all: improved". The CLI
    now splits by path as the report notebook does; `--by none` shows all attempts only."""
    url, _ = demo_db

    def rates(*by):
        code, out, _ = _rca(["compare", "--at", AT, *by, "--db", url, "--no-changepoints", "--format", "json"], capsys)
        assert code == 0
        return {m["group"]: m["verdict"] for m in json.loads(out)["metrics"] if m["name"] == "booking_success_rate"}

    assert rates() == {"all": "improved", "book_appointment": "unchanged", "collect_appointment": "improved"}
    assert rates() == rates("--by", "path")
    assert rates("--by", "none") == rates("--by", "") == {"all": "improved"}


def test_demo_numbers_equal_the_ground_truth(demo_db):
    from rca_toolkit.analyses.compare.before_after import before_after

    url, truth = demo_db
    phantom = truth["booking_attempts"]
    # before = the whole phantom window of the collect path, after = the 5 days after the fix, no guard band
    span = pd.Timestamp(AT) - PHANTOM_START
    bundle = before_after(url, at=AT, before=f"{int(span.total_seconds())}s", after="5d", exclude="0s", by="path",
                          with_changepoints=False)
    result = bundle.comparison
    table = bundle.outcome_table().set_index(["window", "path"])
    for window, key in (("before", "phantom_collect"), ("after", "after_partial_fix_5d")):
        for path in PATHS:
            row, expected = table.loc[(window, path)], phantom[path][key]
            assert (row["orphaned"], row["rescued_by_webhook"]) == (expected["orphaned"], expected["rescued"]), (window, path)
    for path in PATHS:
        m = result.metric("booking_success_rate", path)
        before, after = phantom[path]["phantom_collect"], phantom[path]["after_partial_fix_5d"]
        assert (m.before.n, m.before.detail["successes"]) == (before["attempts"], before["success"]), path
        assert (m.after.n, m.after.detail["successes"]) == (after["attempts"], after["success"]), path
    durations = result.metric("call_duration_session")
    assert durations.before.n > 50 and "stuck P5" in durations.notes[0]
    assert result.metric("function_latency", "check_availability").after.n > 50


def test_demo_tiny_window_is_not_enough_data(demo_db, capsys):
    url, _ = demo_db
    code, out, _ = _rca(["compare", "--at", AT, "--before", "1h", "--after", "1h", "--exclude", "5m", "--by", "path",
                         "--format", "json", "--db", url, "--no-changepoints"], capsys)
    assert code == 0
    payload = json.loads(out)
    rates = [m for m in payload["metrics"] if m["name"] == "booking_success_rate"]
    assert rates and all(m["verdict"] == "not enough data" for m in rates)
    assert all(min(m["before"]["n"], m["after"]["n"]) < MIN_ATTEMPTS for m in rates)
    assert not payload["partial"]["is_partial"]


def test_cli_rejects_a_naive_time_with_one_line(capsys):
    code, out, err = _rca(["compare", "--at", "2025-10-18T13:20:08"], capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "has no time zone" in err and "2025-10-18T13:20:08+02:00" in err


@pytest.mark.slow
def test_report_notebook_runs_with_non_default_parameters(demo_sqlite, tmp_path):
    from rca_toolkit.runs.runner import run_notebook

    url, _ = demo_sqlite
    # the change instant as a report prints it, copied from one: the host's check and every cell read it alike
    run = run_notebook("notebooks/before_after_report.ipynb", {"before": "4d", "exclude": "15m",
                                                               "change_at": "2025-10-18 13:20:08 CEST"}, db=url, out_dir=tmp_path)
    assert run.status == "ok", run.error
    rates = {m["group"]: m for m in run.metrics["metrics"] if m["name"] == "booking_success_rate"}
    assert rates["collect_appointment"]["verdict"] == "improved" and rates["book_appointment"]["after"]["value"] == 0.0
    assert run.metrics["windows"]["before"][0] == "2025-10-14T11:20:08+00:00"  # 4 days, the parameter took effect
    figures = sorted(p.name for p in (run.run_dir / "figures").iterdir())
    assert figures == ["booking_success_rates.png", "call_duration.png", "function_latency.png"]
    page = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3 and "http://" not in page and "https://" not in page
    assert "the compared change at 2025-10-18T13:20:08+02:00 dashed" in page  # the key figure's alt text
    assert "The fix was partial: book_appointment still fails" in page and "SYNTHETIC DEMO DATA" in page
    assert "before_after(" not in page and ".partial" not in page  # no code cells, no run paths
    md = (run.run_dir / "report.md").read_text(encoding="utf-8")  # the change points as Markdown, not raw HTML
    assert "| series | found at |" in md and '<th scope="col">series</th>' not in md
    # the comparison too (its tables, signature mix and notes), its bold summary said once: in the verdict block
    assert "| path | before (%) | 95 % CI | after (%) |" in md and "| signature | before | after |" in md
    assert "<table" not in md and "<p>" not in md and "rca-verdict-repeat" not in md
    assert md.count("The fix was partial: book_appointment still fails") == 1 and md.index("> **SUMMARY**") < md.index(
        "#### Booking success")


def test_installed_rca_script_runs_compare(demo_sqlite, tmp_path):
    """The console script (not just cli.main): catches packaging problems such as the deployment resource."""
    import subprocess
    import sys
    from pathlib import Path

    url, _ = demo_sqlite
    script = Path(sys.executable).parent / "rca"
    proc = subprocess.run([str(script), "compare", "--at", AT, "--by", "path", "--db", url], capture_output=True,
                          text=True, cwd=tmp_path, env={"RCA_PROGRESS": "0", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "The fix was partial: book_appointment still fails" in proc.stdout
    assert "50749ce422 (-0.2 h)" in proc.stdout  # candidate causes from the packaged deployment list (text wraps after)


# --------------------------------------------------------------------------- histograms (the aggregated path)
def test_histogram_statistics_equal_those_of_the_raw_values(monkeypatch):
    from scipy import stats

    rng = np.random.default_rng(3)
    before = rng.integers(0, 60, 400).astype(float)  # heavy ties, as stored integer durations have
    after = rng.integers(5, 70, 300).astype(float)
    hb, ha = cmp.Histogram.of(before), cmp.Histogram.of(after)
    assert hb.n == 400 and hb.counts.sum() == 400 and np.all(np.diff(hb.values) > 0)
    for q in (0, 1, 50, 95, 99, 100):
        assert hb.percentiles([q])[0] == pytest.approx(np.percentile(before, q), rel=1e-12)
    assert cmp.mann_whitney_p(ha, hb) == pytest.approx(stats.mannwhitneyu(after, before, method="auto").pvalue, rel=1e-9)
    small_b, small_a = np.array([3.0, 9, 1, 4]), np.array([10.0, 12, 11])  # no ties, n <= 8: scipy's exact branch
    assert cmp.mann_whitney_p(small_a, small_b) == stats.mannwhitneyu(small_a, small_b, method="auto").pvalue
    exact = float(np.median(np.subtract.outer(after, before)))
    monkeypatch.setattr(cmp, "MAX_PAIRS", 1000)  # force the bisection over histograms
    assert cmp.hodges_lehmann(ha, hb) == exact
    assert cmp.hodges_lehmann(after[:-1], before) == float(np.median(np.subtract.outer(after[:-1], before)))


def test_bootstrap_percentile_has_the_resampling_distribution():
    """Median of 3 values resampled with replacement: P(1) = P(3) = 7/27, P(2) = 13/27."""
    draws = cmp.bootstrap_percentile(cmp.Histogram.of([1.0, 2.0, 3.0]), 50, 200_000, np.random.default_rng(1))
    shares = [np.mean(draws == v) for v in (1.0, 2.0, 3.0)]
    assert shares == pytest.approx([7 / 27, 13 / 27, 7 / 27], abs=0.005)
    even = cmp.bootstrap_percentile(cmp.Histogram.of([1.0, 3.0]), 50, 100_000, np.random.default_rng(2))
    assert [np.mean(even == v) for v in (1.0, 2.0, 3.0)] == pytest.approx([0.25, 0.5, 0.25], abs=0.005)


@pytest.mark.parametrize("at, before, after, exclude", [
    (AT, "30d", "30d", "30m"),
    ("2025-10-26T02:30:00+01:00", "10d", "3d", "0s"),  # a bound in the repeated autumn hour (SQLite stores wall time)
])
def test_aggregated_path_equals_the_row_path_on_the_demo_world(demo_db, at, before, after, exclude):
    _aggregated_equals_rows(demo_db[0], at, before, after, exclude)


def test_aggregated_path_equals_the_row_path_for_rows_at_and_near_a_bound(demo_sqlite, tmp_path):
    """SQLite stores wall time, compared with each bound's first wall time (``loaders.first_wall_time``): a session
    started at the after window's first instant is the after window's, and a cleanup-closed one with a duration just
    after it is left out there too (the demo has neither)."""
    from conftest import altered_copy

    _, windows, _ = cmp.comparison_windows(AT, "30d", "30d", "30m")
    lo = windows["after"][0].tz_convert("Europe/Berlin").tz_localize(None)
    wall = [(lo + pd.Timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S") for m in (0, 30)]
    first = ("(SELECT id FROM retell_call_sessions WHERE started_at >= '{}' AND call_id LIKE 'call_%' "
             "ORDER BY started_at LIMIT 1 OFFSET {})")
    url = altered_copy(demo_sqlite[0], tmp_path,
                       f"UPDATE retell_call_sessions SET started_at = '{wall[1]}', disconnection_reason = 'system_timeout', "
                       f"call_status = 'completed', duration_ms = 7777777 WHERE id = {first.format(wall[0], 1)}",
                       f"UPDATE retell_call_sessions SET started_at = '{wall[0]}' WHERE id = {first.format(wall[0], 0)}")
    _aggregated_equals_rows(url, AT, "30d", "30d", "30m")


def _aggregated_equals_rows(url, at, before, after, exclude):
    from rca_toolkit.sources import aggregates, loaders
    from rca_toolkit.analyses.bookings import outcomes

    at_ts, windows, _ = cmp.comparison_windows(at, before, after, exclude)
    start, end = windows["before"][0], windows["after"][1]
    attempts = outcomes.booking_attempts(url, start=start, end=end)
    rows = cmp.compare(attempts, loaders.calls(url, start=start, end=end, as_of=end),
                       loaders.function_traces(url, start=start, end=end, blobs=False),
                       at=at, before=before, after=after, exclude=exclude, by="path")
    counts = {k: cmp.attempt_counts_of(cmp.in_window(attempts, "at", w), "path") for k, w in windows.items()}
    agg = cmp.compare(counts=counts, histograms=aggregates.fetch(url, windows=windows, as_of=end),
                      at=at, before=before, after=after, exclude=exclude, by="path")
    assert [(m.name, m.group) for m in agg.metrics] == [(m.name, m.group) for m in rows.metrics]
    assert len(rows.metrics) >= 8 and rows.metric("call_duration_session").before.n > 100
    for r, a in zip(rows.metrics, agg.metrics):
        assert (a.before.n, a.after.n, a.verdict, a.notes) == (r.before.n, r.after.n, r.verdict, r.notes), r.name
        assert (a.p_value is None) == (r.p_value is None) and (a.difference is None) == (r.difference is None), r.name
        if r.p_value is not None:
            assert a.p_value == pytest.approx(r.p_value, rel=1e-9) and a.difference == pytest.approx(r.difference)
        for side in ("before", "after") if r.unit == "ms" else ():
            for q in cmp.PERCENTILES:
                got, want = getattr(a, side).detail[f"p{q}"]["value"], getattr(r, side).detail[f"p{q}"]["value"]
                assert got == (None if want is None else pytest.approx(want, rel=1e-12)), (r.name, r.group, side, q)
    assert agg.signature_mix.equals(rows.signature_mix)


def test_plan_lists_the_statements_a_benchmark_can_run_alone(demo_db):
    import sqlalchemy as sa

    from rca_toolkit.sources import aggregates, loaders

    url, _ = demo_db
    _, windows, _ = cmp.comparison_windows(AT, "5d", "5d", "30m")
    plan = aggregates.plan(url, windows=windows, as_of=windows["after"][1])
    assert [s.metric for s in plan.statements] == ["call_duration_session", "call_duration_retell", "function_latency"]
    engine = loaders.engine_for(url)
    with engine.connect() as conn:  # executable alone, as the benchmark floor runs them
        rows = conn.execute(sa.text(plan.statements[2].sql), plan.statements[2].params).fetchall()
    counted = sum(r[-1] for r in rows if r[-2] is not None)  # (…, value, n); rows near a bound are placed in Python
    histogram_total = sum(h.sum() for fam in aggregates.fetch(engine, plan).latencies.values() for h in fam.values())
    assert counted >= histogram_total > 100
    if loaders.storage_zone(engine) == "UTC":
        assert counted == histogram_total


def test_demo_by_family_and_a_bounded_history(demo_db, capsys):
    import inspect

    from rca_toolkit.analyses.bookings import counts as booking_counts

    url, _ = demo_db
    code, out, err = _rca(["compare", "--at", AT, "--by", "family", "--format", "json", "--db", url, "--history", "10d"], capsys)
    assert code == 0, err
    payload = json.loads(out)
    rates = {m["group"]: m for m in payload["metrics"] if m["name"] == "booking_success_rate"}
    assert set(rates) == {"all", *PATHS} and rates["book_appointment"]["after"]["value"] == 0.0
    assert rates["all"]["before"]["n"] == sum(rates[p]["before"]["n"] for p in PATHS)
    assert payload["key_numbers"] == {group: f"{100 * rates[group]['before']['value']:.1f} % -> "
                                             f"{100 * rates[group]['after']['value']:.1f} %" for group in rates}
    fell_back = any(n.startswith("--by family: booking attempts of the compared windows were loaded as rows") for n in payload["notes"])
    assert fell_back == ("by" not in inspect.signature(booking_counts.attempt_counts).parameters)
    notes = payload["change_points"]["notes"]
    assert "change points searched over attempts of 2025-10-08 13:20 CEST -> 2025-10-28 12:20 CET (--history 10d" in notes[-1]
    code, _, err = _rca(["compare", "--at", AT, "--db", url, "--history", "forever"], capsys)
    assert code == 2 and "--history" in err


def test_histograms_of_plan_subsets_merge_into_the_whole(demo_db):
    """``before_after`` fetches the call durations beside the attempts' reads and the rest beside their
    classification: the two halves of the plan, merged, are the histograms of the whole plan."""
    from rca_toolkit.sources import aggregates, loaders

    url, _ = demo_db
    engine = loaders.engine_for(url)
    _, windows, _ = cmp.comparison_windows(AT, "5d", "5d", "30m")
    plan = aggregates.plan(engine, windows=windows, as_of=windows["after"][1])
    late = ("call_duration_session", "function_latency")
    early = [s.metric for s in plan.statements if s.metric not in late]
    assert early == ["call_duration_retell"] and [s.metric for s in plan.only(late).statements] == list(late)
    merged = aggregates.fetch(engine, plan.only(early)).merge(aggregates.fetch(engine, plan.only(late)))
    whole = aggregates.fetch(engine, plan)
    assert merged.dropped == whole.dropped and merged.notes == whole.notes
    for got, want in ((merged.durations, whole.durations), (merged.latencies, whole.latencies)):
        assert sorted(got) == sorted(want) and len(want) >= 2
        for key in want:
            for side in ("before", "after"):
                pd.testing.assert_series_equal(got[key][side], want[key][side])


@pytest.mark.mariadb
def test_latencies_of_names_the_collation_holds_equal_keep_their_family(demo_mariadb):
    """MariaDB's collation holds ``name`` and ``name `` equal: a group comes back under either spelling, not always
    the one the name look-up listed. A third of the demo's traces stored with a trailing space (one family, P3)
    leave every latency histogram as it was."""
    from conftest import copy_mariadb_world, fresh_mariadb_database

    from rca_toolkit.sources import aggregates

    url, _ = demo_mariadb
    _, windows, _ = cmp.comparison_windows(AT, "30d", "30d", "30m")
    want = aggregates.fetch(url, windows=windows, as_of=windows["after"][1]).latencies
    with fresh_mariadb_database("rca_padded") as padded:
        copy_mariadb_world(url, padded, [("names padded", "UPDATE retell_function_traces "
                                                          "SET function_name = CONCAT(function_name, ' ') WHERE id % 3 = 0")])
        got = aggregates.fetch(padded, windows=windows, as_of=windows["after"][1]).latencies
    assert sorted(got) == sorted(want) and len(want) >= 2
    for family in want:
        for side in ("before", "after"):
            pd.testing.assert_series_equal(got[family][side], want[family][side])


def test_change_point_attempts_apply_the_two_step_rule(demo_sqlite):
    """The demo's two-step calls: the lean change-point series counts their attempts as the ground truth
    and outcomes.booking_attempts do (a validated start followed by a confirm is one attempt, not two)."""
    from rca_toolkit.analyses.bookings import outcomes
    from rca_toolkit.analyses.compare.before_after import changepoint_attempts
    from rca_toolkit.sources import loaders

    url, truth = demo_sqlite
    two_step = truth["two_step_bookings"]
    window = {"start": two_step["window"]["start"], "end": two_step["window"]["end"]}
    engine = loaders.engine_for(url)
    lean = changepoint_attempts(engine, **window)
    full = outcomes.booking_attempts(engine, **window)
    assert lean["outcome"].astype(str).value_counts().to_dict() == full["outcome"].astype(str).value_counts().to_dict() \
        == {"success": two_step["success"], "failed": two_step["failed"]}


@pytest.mark.parametrize("window", [{}, {"start": "2025-10-10T00:00:00+02:00", "end": "2025-10-20T00:00:00+02:00"}])
def test_change_point_attempts_are_the_booking_attempts_row_for_row(demo_db, window):
    """The change points' series read from the attempts' traces alone is ``booking_attempts``' rows for every ``by`` it
    serves: the same attempts (test calls left out, validated starts of two-step bookings too), times, groups and
    success, on SQLite and MariaDB, over the whole world and a window."""
    from rca_toolkit.analyses.bookings import outcomes
    from rca_toolkit.analyses.compare.before_after import changepoint_attempts
    from rca_toolkit.sources import loaders

    engine = loaders.engine_for(demo_db[0])
    full = outcomes.booking_attempts(engine, **window)
    lean = changepoint_attempts(engine, start=window.get("start"), end=window.get("end"))
    assert len(full) > 100 and full["outcome"].eq("success").any() and not full["outcome"].eq("success").all()
    assert lean["at"].tolist() == full["at"].tolist()
    assert lean["outcome"].eq("success").tolist() == full["outcome"].eq("success").tolist()
    for by in ("path", "family", "function_name", "company_id"):
        assert lean[by].astype(str).tolist() == full[by].astype(str).tolist(), by


@pytest.mark.mariadb
def test_aggregated_path_equals_the_row_path_for_rows_at_a_bound_on_mariadb(demo_mariadb):
    """MariaDB stores UTC, so the statements place every row themselves: a session started at the instant the two
    windows meet (no guard between them) is the after window's, a cleanup-closed one with a duration is left out, and
    a soft-deleted call row gives its session no Retell duration, as the row path has them (the demo has none)."""
    import sqlalchemy as sa

    from conftest import copy_mariadb_world, fresh_mariadb_database
    from rca_toolkit.rules.call_ids import is_real_call_id

    _, windows, _ = cmp.comparison_windows(AT, "30d", "30d", "0s")
    meet = windows["after"][0].tz_convert("UTC").tz_localize(None).to_pydatetime()
    assert windows["before"][1] == windows["after"][0]
    with fresh_mariadb_database("rca_test_bounds") as url:
        copy_mariadb_world(demo_mariadb[0], url)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT id, call_id FROM retell_call_sessions WHERE started_at >= :t "
                                        "ORDER BY started_at LIMIT 20"), {"t": meet}).fetchall()
            at_meet, closed, deleted = [(i, c) for i, c in rows if is_real_call_id(c)][:3]
            conn.execute(sa.text("UPDATE retell_call_sessions SET started_at = :t WHERE id = :i"), {"t": meet, "i": at_meet[0]})
            conn.execute(sa.text("UPDATE retell_call_sessions SET disconnection_reason = 'system_timeout', "
                                 "call_status = 'completed', duration_ms = 7777777 WHERE id = :i"), {"i": closed[0]})
            changed = conn.execute(sa.text("UPDATE calls SET deleted_at = created_at WHERE retell_call_id = :c "
                                           "AND duration_ms IS NOT NULL"), {"c": deleted[1]}).rowcount
        engine.dispose()
        assert changed == 1
        _aggregated_equals_rows(url, AT, "30d", "30d", "0s")
