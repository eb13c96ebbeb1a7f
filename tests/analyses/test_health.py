"""Health verdicts: rules on small frames, then the demo world on SQLite and MariaDB."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import altered_copy
from rca_toolkit.analyses.bookings import outcomes
from rca_toolkit.analyses.compare.stats import Histogram
from rca_toolkit.analyses.health import data as health_data, report as health
from rca_toolkit.sources import loaders
from rca_toolkit.rules import timeutil
from rca_toolkit.rules.signatures import signature_of
from rca_toolkit.errors import ConfigError
from rca_toolkit.runs import plots

PHANTOM = ("SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in 'field list' "
           "(Connection: mysql, SQL: insert into `appointments` ...)")
DUPLICATE = ("SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry 'call_0123456789abcdef0123456789a' "
             "for key 'webhook_events_event_id_unique'")


def berlin(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_localize("Europe/Berlin").tz_convert("UTC")


class World:
    """Hand-built calls, traces, attempts and errors, handed to the verdict rules as the counts of them."""

    def __init__(self):
        self.calls, self.traces, self.attempts, self.errors = [], [], [], []
        self.n = 0

    def call(self, at: str, *, families=("initialize_call", "check_availability"), booking=None, outcome="success",
             signature_text=None, duration_ms=60_000, stuck=False):
        self.n += 1
        cid = f"call_{self.n:027x}"
        ts = berlin(at)
        self.calls.append({"call_id": cid, "started_at": ts, "duration_ms": None if stuck else duration_ms,
                           "retell_duration_ms": duration_ms, "stuck": stuck})
        for i, fam in enumerate(list(families) + ([booking] if booking else [])):
            self.traces.append({"call_id": cid, "family": fam, "started_at": ts + pd.Timedelta(seconds=1 + 10 * i),
                                "duration_ms": 1000 + 37 * i})
        if booking:
            self.attempts.append({"call_id": cid, "at": ts + pd.Timedelta(seconds=30), "path": booking,
                                  "outcome": outcome, "signature": signature_of(signature_text)})
            if signature_text:
                self.error(at, signature_text, booking_failed=True)
        return cid

    def error(self, at: str, message: str, *, booking_failed=False):
        self.errors.append({"occurred_at": berlin(at), "error_message": message, "error_code": "x",
                            "booking_failed": booking_failed})

    def inputs(self, day="2025-10-14", period="1d") -> health_data.HealthInputs:
        """The counts the database would hand back for these rows (``health_data.HealthData``), per side."""
        bounds = health.period_bounds(day, period)
        calls = pd.DataFrame(self.calls, columns=["call_id", "started_at", "duration_ms", "retell_duration_ms", "stuck"])
        traces = pd.DataFrame(self.traces, columns=["call_id", "family", "started_at", "duration_ms"])
        attempts = pd.DataFrame(self.attempts, columns=["call_id", "at", "path", "outcome", "signature"])
        errors = pd.DataFrame(self.errors, columns=["occurred_at", "error_message", "error_code", "booking_failed"])

        def side(ts: pd.Series) -> pd.Series:
            return pd.Series(np.select([ts < bounds["baseline_start"], ts < bounds["start"], ts < bounds["end"]],
                                       [None, "base", "cur"], None), index=ts.index)

        calls["side"], traces["side"], errors["side"] = side(calls["started_at"]), side(traces["started_at"]), side(errors["occurred_at"])
        traced = set(traces.loc[traces["side"] == "cur", "call_id"])
        on = {s: calls[calls["side"] == s] for s in health_data.SIDES}
        sessions = {s: {"n": len(c), "stuck": int(c["stuck"].sum()), "cleanup": 0, "ambiguous": 0,
                        "untraced": int((~c["call_id"].isin(traced)).sum())} for s, c in on.items()}
        durations = {name: {s: Histogram.of(c.loc[~c["stuck"], col].dropna().astype(float)) for s, c in on.items()}
                     for name, col in (("call_duration_session", "duration_ms"), ("call_duration_retell", "retell_duration_ms"))}
        families = sorted(set(traces["family"]))
        latencies = {f: {s: Histogram.of(traces.loc[(traces["family"] == f) & (traces["side"] == s), "duration_ms"].astype(float))
                         for s in health_data.SIDES} for f in families}
        cur = traces.loc[traces["side"] == "cur", "duration_ms"]
        quality = {"n": len(cur), "negative": 0, "zero": 0, "whole_seconds": int((cur % 1000 == 0).sum())}
        reached = {}
        for s, c in on.items():
            for f in families + [health_data.BOOKING_REACH]:
                wanted = [f] if f in families else ["book_appointment", "collect_appointment"]
                reached[(s, f)] = int(c["call_id"].isin(traces.loc[traces["family"].isin(wanted), "call_id"]).sum())
        grouped = (errors.dropna(subset=["side"]).groupby(["error_message", "side"], sort=False)
                   .agg(n=("occurred_at", "size"), first_at=("occurred_at", "min"), booking_failed=("booking_failed", "sum"))
                   .reset_index().rename(columns={"error_message": "key_text"}))
        counts = outcomes.count_attempts(attempts.assign(rescued_by_webhook=False), first_at=True,
                                         bins=timeutil.day_edges(bounds["baseline_start"], bounds["end"]))
        data = health_data.HealthData(sessions, durations, latencies, quality, families, reached, grouped, counts)
        return health_data.HealthInputs(bounds["day"], period, 0, bounds, data)


def healthy_baseline(world: World, per_path: int = 3, first_day: int = 7, last_day: int = 13):
    for day in range(first_day, last_day + 1):
        for i in range(per_path):
            world.call(f"2025-10-{day:02d} {9 + i:02d}:00", booking="book_appointment")
            world.call(f"2025-10-{day:02d} {9 + i:02d}:30", booking="collect_appointment")
        world.call(f"2025-10-{day:02d} 18:00")


def test_a_failing_path_is_act_and_the_line_names_numbers_signature_and_start():
    world = World()
    healthy_baseline(world, last_day=12)
    world.call("2025-10-13 10:00", booking="book_appointment")
    for hour in (11, 12, 13):
        world.call(f"2025-10-13 {hour}:16", booking="book_appointment", outcome="failed", signature_text=PHANTOM)
    for hour in range(8, 18):  # 10 attempts: rules.bookings.MIN_ATTEMPTS, the fewest any booking verdict judges
        world.call(f"2025-10-14 {hour:02d}:10", booking="book_appointment", outcome="failed", signature_text=PHANTOM)
        world.call(f"2025-10-14 {hour:02d}:40", booking="collect_appointment")

    report = health.compute(world.inputs())

    assert report.verdict == "ACT"
    sig = signature_of(PHANTOM)
    assert "Unknown column 'created_by'" in sig
    assert report.verdict_line.startswith(
        "ACT: booking success on path book_appointment 0 % (0/10, 95 % CI 0 %-28 %) vs 86 % (19/22) in the previous 7 days; "
        f"failing with {sig} since 2025-10-13 11:16")
    row = report.booking.set_index("path").loc["book_appointment"]
    assert (row["attempts"], row["success"], row["baseline_attempts"]) == (10, 0, 22)
    assert row["ci_high"] == pytest.approx(3.8415 / (10 + 3.8415), abs=1e-3)  # Wilson upper bound of 0/10
    assert report.booking.set_index("path").loc["collect_appointment", "level"] == "OK"
    growing = report.signatures.set_index("signature").loc[sig]
    assert (growing["count"], growing["baseline_count"], growing["status"]) == (10, 3, "growing")
    assert growing["first_seen"] == "2025-10-13 11:16"
    metrics = report.metrics()
    assert metrics["verdict"] == "ACT" and metrics["key_numbers"]["booking attempts"] == 20
    assert metrics["key_numbers"]["booking success (%)"] == 50.0


def test_a_day_of_production_volume_reads_with_thousands_separators_and_an_interval_that_is_not_0_0():
    """At 1M calls a day holds thousands of failures: '(0/1200, 95 % CI 0 %-0 %)' read like a certainty and beside
    '7,696.0/day' in the same line. The Wilson bound of 0/1,200 is 0.32 %."""
    world = World()
    healthy_baseline(world, last_day=13)
    for minute in range(1200):
        world.call(f"2025-10-14 {8 + minute // 120:02d}:{minute % 120 // 2:02d}", booking="book_appointment",
                   outcome="failed", signature_text=PHANTOM)

    line = health.compute(world.inputs()).verdict_line

    assert "booking success on path book_appointment 0 % (0/1,200, 95 % CI 0 %-0.3 %) vs 100 % (21/21)" in line
    assert "1,200.0/day now vs 0.0/day in the previous 7 days: 1,200 errors now, 0 then" in line


def test_a_longer_call_duration_is_watch_in_seconds_as_every_table_shows_durations():
    world = World()
    for day in range(7, 14):
        for hour in range(8, 12):
            world.call(f"2025-10-{day:02d} {hour:02d}:00", booking="book_appointment", duration_ms=60_000 + 100 * hour)
    for minute in range(0, 50, 2):
        world.call(f"2025-10-14 09:{minute:02d}", booking="book_appointment", duration_ms=147_900 + minute)

    report = health.compute(world.inputs())

    assert report.verdict == "WATCH"
    reason = next(r.text for r in report.reasons if r.level == "WATCH" and r.text.startswith("call duration"))
    assert reason.startswith("call duration regressed: median 147.9 s (n=25) vs 61.0 s (n=28) in the previous 7 days, "
                             "p < 0.001"), reason


def test_two_failures_in_thirteen_is_watch_and_few_attempts_are_not_judged():
    world = World()
    healthy_baseline(world)
    for i in range(13):
        world.call(f"2025-10-14 {8 + i // 2:02d}:{(i % 2) * 30:02d}", booking="book_appointment",
                   outcome="failed" if i < 2 else "success", signature_text=PHANTOM if i < 2 else None)
    world.call("2025-10-14 17:00", booking="collect_appointment", outcome="failed", signature_text=DUPLICATE)
    world.call("2025-10-14 17:30", booking="collect_appointment", outcome="failed", signature_text=DUPLICATE)

    report = health.compute(world.inputs())
    rows = report.booking.set_index("path")
    assert rows.loc["book_appointment", "level"] == "WATCH"  # 11/13: upper bound 95.7 % < 98 % target
    assert rows.loc["book_appointment", "ci_high"] == pytest.approx(0.957, abs=1e-3)
    assert rows.loc["collect_appointment", "level"] == "OK"  # 0/2: too few to judge
    assert rows.loc["collect_appointment", "judgement"] == "fewer than 10 attempts: no judgement"
    assert report.verdict == "WATCH"


def test_an_outage_that_goes_on_stays_act_on_a_day_with_few_attempts():
    world = World()
    for day in range(7, 14):
        for i in range(3):
            world.call(f"2025-10-{day:02d} {9 + i:02d}:00", booking="book_appointment", outcome="failed", signature_text=PHANTOM)
            world.call(f"2025-10-{day:02d} {9 + i:02d}:30", booking="collect_appointment")
    world.call("2025-10-14 09:00", booking="book_appointment", outcome="failed", signature_text=PHANTOM)
    world.call("2025-10-14 10:00", booking="book_appointment", outcome="failed", signature_text=PHANTOM)
    report = health.compute(world.inputs())
    row = report.booking.set_index("path").loc["book_appointment"]
    assert (row["attempts"], row["level"]) == (2, "ACT")
    assert row["judgement"] == "still failing: no success today, baseline below the critical 90 %"
    assert ">still failing: no success today, baseline below the critical 90 %<" in report.table("booking").to_html()  # not cut
    assert report.verdict_line.startswith("ACT: booking success on path book_appointment 0 % (0/2, 95 % CI 0 %-66 %) "
                                          "vs 0 % (0/21) in the previous 7 days")


def test_the_baseline_count_and_the_rates_per_day_are_stored_once_and_shown_alike():
    """The table and the reason line read the same stored numbers: the baseline's success count (not one
    rebuilt from its rate) and errors per day of the period and of the baseline."""
    world = World()
    healthy_baseline(world)  # 21 book_appointment attempts in the 7 baseline days, all successful
    world.call("2025-10-13 20:00", booking="book_appointment", outcome="failed", signature_text=PHANTOM)
    for day in (8, 11):
        world.error(f"2025-10-{day:02d} 12:00", DUPLICATE)
    for i in range(3):
        world.call(f"2025-10-14 {9 + i:02d}:00", booking="book_appointment")
    for i in range(12):
        world.error(f"2025-10-14 {8 + i:02d}:10", DUPLICATE)
    report = health.compute(world.inputs())

    row = report.booking.set_index("path").loc["book_appointment"]
    assert (row["baseline_success"], row["baseline_attempts"]) == (21, 22)
    paths = report.table("booking").column("path")
    assert report.table("booking").column("baseline (%)")[paths.index("book_appointment")] == "95 (21/22)"

    sigs = report.signatures.set_index("status")
    growing = sigs.loc["growing"]
    assert (growing["count"], growing["baseline_count"]) == (12, 2)
    assert (growing["per_day"], growing["baseline_per_day"]) == (12.0, pytest.approx(2 / 7))
    table = report.table("signatures")
    at = table.column("status").index("growing")
    assert (table.column("per day")[at], table.column("baseline per day")[at]) == ("12.0", "0.3")
    (reason,) = [r.text for r in report.reasons if r.text.startswith("growing signature")]
    assert "(12.0/day now vs 0.3/day in the previous 7 days: 12 errors now, 2 then)" in reason


def test_the_notebook_text_states_the_still_failing_exception_to_the_minimum_sample():
    """A path with fewer than MIN_ATTEMPTS attempts can be ACT (0/2 after an outage): the report's text says so."""
    import nbformat
    from pathlib import Path

    from rca_toolkit.rules.bookings import MIN_ATTEMPTS

    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "health_report.ipynb"
    (text,) = [c.source for c in nbformat.read(notebook, as_version=4).cells
               if c.cell_type == "markdown" and "are not judged" in c.source]
    assert f"fewer than {MIN_ATTEMPTS} attempts" in text
    assert "still failing" in text and "no success in the period" in text and "is ACT" in text


def test_reach_rate_in_the_failing_band_is_act_only_when_the_whole_interval_is():
    world = World()
    healthy_baseline(world)
    for i in range(20):
        fams = ("initialize_call", "check_availability") if i < 5 else ("check_availability",)
        world.call(f"2025-10-14 {8 + i // 2:02d}:{(i % 2) * 30:02d}", families=fams)
    report = health.compute(world.inputs())
    row = report.reach.set_index("family").loc["initialize_call"]
    assert (row["reached"], row["calls"], row["band"], row["level"]) == (5, 20, "fail", "ACT")
    assert any(r.text.startswith("reach rate of initialize_call 25 % (5/20 calls") for r in report.reasons)

    small = World()
    healthy_baseline(small)
    small.call("2025-10-14 09:00", families=("check_availability",))
    small.call("2025-10-14 10:00")
    rows = health.compute(small.inputs()).reach.set_index("family")
    assert rows.loc["initialize_call", "band"] == "fail" and rows.loc["initialize_call", "level"] == "OK"  # 1/2


def test_new_signature_is_watch_and_a_steady_one_is_not():
    world = World()
    healthy_baseline(world)
    for day in range(7, 15):
        world.error(f"2025-10-{day:02d} 12:00", DUPLICATE)
    for hour in (9, 10, 11):
        world.error(f"2025-10-14 {hour}:00", "Call context not found")
    report = health.compute(world.inputs())
    table = report.signatures.set_index("signature")
    assert table.loc[signature_of(DUPLICATE), "status"] == "steady"
    assert table.loc["Call context not found", "status"] == "new"
    assert report.verdict == "WATCH"
    assert report.verdict_line == ("WATCH: new signature Call context not found since 2025-10-14 09:00 "
                                   "(3.0/day now vs 0.0/day in the previous 7 days: 3 errors now, 0 then)")


def test_quiet_healthy_day_is_ok_and_says_what_it_compared():
    world = World()
    healthy_baseline(world)
    for i in range(3):
        world.call(f"2025-10-14 {9 + i:02d}:00", booking="book_appointment")
    report = health.compute(world.inputs())
    assert report.verdict == "OK"
    assert report.verdict_line == "OK: no threshold crossed (3 calls, 3 booking attempts, compared with the previous 7 days)"


def test_stuck_sessions_are_watch_and_left_out_of_durations():
    world = World()
    healthy_baseline(world)
    for i in range(4):
        world.call(f"2025-10-14 {9 + i:02d}:00", stuck=i == 0, booking="book_appointment")
    report = health.compute(world.inputs())
    assert report.verdict_line == "WATCH: 1 of 4 sessions stuck in_progress (P5)"
    dur = report.durations.set_index(["metric", "group"]).loc[("call_duration_session", "all")]
    assert dur["n"] == 3


def test_periods_are_berlin_calendar_days_across_dst():
    b = health.period_bounds("2025-10-26", "1d")
    assert b["end"] - b["start"] == pd.Timedelta(hours=25)
    assert b["start"] == pd.Timestamp("2025-10-25 22:00", tz="UTC")
    w = health.period_bounds("2025-10-13", "7d")
    assert w["baseline_start"] == pd.Timestamp("2025-09-14 22:00", tz="UTC")  # 4 weeks before
    with pytest.raises(ConfigError, match="use 1d or 7d"):
        health.period_bounds("2025-10-13", "2d")


def test_plot_shows_one_series_per_path_and_the_reported_day():
    world = World()
    healthy_baseline(world)
    world.call("2025-10-14 09:00", booking="book_appointment", outcome="failed", signature_text=PHANTOM)
    report = health.compute(world.inputs())
    fig = plots.plot_health_booking(report)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["book_appointment", "collect_appointment", "critical 90 %", "reported period"]
    book = ax.containers[0].lines[0]
    assert np.allclose(book.get_ydata()[-1], 0.0) and len(book.get_ydata()) == 8  # 7 baseline days + the day


# --------------------------------------------------------------------------- the demo world
def truth_counts(truth: dict, day: str, path: str) -> tuple[int, int]:
    """(successes, attempts) of real-id booking attempts on one Berlin day, from the ground truth."""
    frame = pd.DataFrame(truth["attempts"])
    frame = frame[frame["is_real"] & (frame["path"] == path)]
    local_day = pd.to_datetime(frame["at_utc"], utc=True).dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d")
    chosen = frame[local_day == day]
    return int((chosen["outcome"] == "success").sum()), len(chosen)


def test_demo_phantom_column_day_is_act_with_the_true_counts(demo_db):
    url, truth = demo_db
    report = health.health(url, "2025-10-14")
    assert report.verdict == "ACT" and report.synthetic is True
    rows = report.booking.set_index("path")
    for path in ("book_appointment", "collect_appointment"):
        k, n = truth_counts(truth, "2025-10-14", path)
        assert (rows.loc[path, "success"], rows.loc[path, "attempts"]) == (k, n)
        assert k == 0 and n >= 3 and rows.loc[path, "level"] == "ACT"
    first = pd.Timestamp(truth["incidents"]["A_phantom_columns"]["frames"][
        "App\\Services\\Retell\\AppointmentCreationService::createLocalRecord"]["first"])
    since = first.tz_convert("Europe/Berlin").strftime("%Y-%m-%d %H:%M")
    assert since.startswith("2025-10-13 ")
    acts = [r.text for r in report.reasons if r.level == "ACT"]
    assert len(acts) == 2
    assert all("Unknown column 'created_by'" in t and f"since {since}" in t for t in acts)
    assert report.verdict_line.startswith("ACT: booking success on path book_appointment 0 % (0/")


def test_demo_quiet_day_is_not_act_and_counts_stuck_sessions(demo_db):
    url, truth = demo_db
    report = health.health(url, "2025-11-20")
    assert report.verdict in ("OK", "WATCH")
    rows = report.booking.set_index("path")
    for path in ("book_appointment", "collect_appointment"):
        assert (rows.loc[path, "success"], rows.loc[path, "attempts"]) == truth_counts(truth, "2025-11-20", path)
        assert rows.loc[path, "level"] == "OK"
    stuck_ids = set(truth["stuck_session_call_ids"])
    day_calls = loaders.calls(url, start=report.bounds["start"], end=report.bounds["end"])
    expected_stuck = int(day_calls["call_id"].astype(str).isin(stuck_ids).sum())
    assert report.key_numbers()["stuck sessions"] == expected_stuck


@pytest.mark.mariadb
@pytest.mark.parametrize("day, period, company", [("2025-10-14", "1d", 0), ("2025-10-20", "7d", 1), ("2025-10-26", "1d", 0),
                                                  ("2025-10-26", "1d", 2)])
def test_a_database_in_wall_time_gives_the_report_of_one_in_utc(demo_sqlite, demo_mariadb, day, period, company):
    """The demo world in SQLite (Berlin wall time) and in MariaDB (UTC): the same statements, each comparing the
    bounds in its own time, give one report, across the autumn DST change (the demo spans September to November;
    the spring one is the next test's). Only the wall-time database can tell
    which start times were ambiguous (P1): those in the hour the clocks went back, 2025-10-26 00:00-02:00 UTC."""
    wall, utc = (json.loads(health.health(url, day, period, company).to_json()) for url, _ in (demo_sqlite, demo_mariadb))
    assert utc["key_numbers"]["booking attempts"] > 0 and len(utc["signatures"]) > 0
    bounds = health.period_bounds(day, period)
    calls = loaders.calls(demo_mariadb[0], start=bounds["start"], end=bounds["end"], company_id=company or None)
    in_fold = calls["started_at"].between(pd.Timestamp("2025-10-26 00:00Z"), pd.Timestamp("2025-10-26 02:00Z"), inclusive="left")
    quality = {name: [row for row in report["quality"] if row["flag"].startswith("DST-ambiguous")] for name, report
               in (("wall", wall), ("utc", utc))}
    assert [row["count"] for row in quality["wall"]] == [int(in_fold.sum())]
    assert [row["count"] for row in quality["utc"]] == [0]
    assert in_fold.any() == (day in ("2025-10-20", "2025-10-26"))  # the periods over the fold see sessions in it
    assert utc["notes"].pop() == f"read from {utc['source']}" and "(local store " in utc["source"]  # MariaDB: auto
    for report in (wall, utc):
        report["quality"] = [row for row in report["quality"] if not row["flag"].startswith("DST-ambiguous")]
        report.pop("source")
    assert wall == utc


def test_a_start_time_the_spring_change_skips_is_counted_as_unclear(demo_sqlite, tmp_path):
    """2025-03-30 02:00-02:59 does not exist in Berlin: a session stored at 02:30 that day is flagged (P1), one at
    03:30 is not, and both are counted on that day."""
    copy = "CREATE TEMP TABLE one AS SELECT * FROM retell_call_sessions WHERE call_id LIKE 'call_%' LIMIT 1"
    url = altered_copy(demo_sqlite[0], tmp_path, copy, *[statement for n in (2, 3) for statement in (
        f"UPDATE one SET id = 'spring-{n}', call_id = 'call_{n:027x}', started_at = '2025-03-30 0{n}:30:00', "
        f"ended_at = '2025-03-30 0{n}:32:00'", "INSERT INTO retell_call_sessions SELECT * FROM one")])
    report = health.health(url, "2025-03-30", "1d")
    flags = report.quality.set_index("flag")["count"]
    assert report.counts["sessions"] == 2 and flags["DST-ambiguous start times (P1)"] == 1


def test_test_ids_are_counted_inside_the_window_only_and_as_loaders_calls_counts_them(demo_sqlite, tmp_path):
    """A test id 30 minutes after the period's end is not the period's (the count used to take the 2 h its wall-time
    bounds are padded by); a test id and an upper-case look-alike inside it are. ``loaders.calls`` agrees."""
    before = health_data.load_counts(demo_sqlite[0], "2025-10-14", "1d").data.excluded_test_ids
    copy = "CREATE TEMP TABLE one AS SELECT * FROM retell_call_sessions WHERE call_id LIKE 'call_%' LIMIT 1"
    rows = [("inside", "test_inside_the_day", "2025-10-14 12:00:00"), ("alike", "CALL_" + "A" * 27, "2025-10-14 13:00:00"),
            ("after", "test_after_the_end", "2025-10-15 00:30:00")]
    url = altered_copy(demo_sqlite[0], tmp_path, copy, *[statement for sid, cid, at in rows for statement in (
        f"UPDATE one SET id = '{sid}', call_id = '{cid}', started_at = '{at}', ended_at = '{at}'",
        "INSERT INTO retell_call_sessions SELECT * FROM one")])
    after = health_data.load_counts(url, "2025-10-14", "1d").data.excluded_test_ids
    bounds = health.period_bounds("2025-10-14", "1d")
    calls = loaders.calls(url, start=bounds["baseline_start"], end=bounds["end"])
    assert after == before + 2 == calls.attrs["excluded_test_ids"] <= 20  # few enough that every one is an example
    assert {"test_inside_the_day", "CALL_" + "A" * 27} <= set(calls.attrs["excluded_examples"])
    assert "test_after_the_end" not in calls.attrs["excluded_examples"]


def test_a_midnight_that_repeats_is_compared_where_the_row_loaders_place_the_rows(demo_sqlite, tmp_path, monkeypatch):
    """Havana puts its clocks back from 01:00 to 00:00: the midnight that begins 2025-11-02 happens twice. The report
    begins at its first reading (as ``periods.midnight`` does) and reads stored wall times as ``loaders`` reads them
    (P1): a session at 00:30 that day is the period's, flagged, one at 23:59:59 the day before the baseline's."""
    monkeypatch.setenv("RCA_SOURCE_TZ", "America/Havana")
    copy = "CREATE TEMP TABLE one AS SELECT * FROM retell_call_sessions WHERE call_id LIKE 'call_%' LIMIT 1"
    url = altered_copy(demo_sqlite[0], tmp_path, copy, *[statement for n, at in ((1, "2025-11-02 00:30:00"),
                                                                                   (2, "2025-11-01 23:59:59")) for statement in (
        f"UPDATE one SET id = 'fold-{n}', call_id = 'call_{n:027x}', started_at = '{at}', ended_at = '{at}'",
        "INSERT INTO retell_call_sessions SELECT * FROM one")])
    bounds = health.period_bounds("2025-11-02", "1d")
    data = health_data.load_counts(url, "2025-11-02", "1d").data
    sides = {"base": (bounds["baseline_start"], bounds["start"]), "cur": (bounds["start"], bounds["end"])}
    placed = {side: loaders.calls(url, start=lo, end=hi)["call_id"].astype(str).tolist() for side, (lo, hi) in sides.items()}
    assert f"call_{1:027x}" in placed["cur"] and f"call_{2:027x}" in placed["base"]
    assert {side: data.sessions[side]["n"] for side in sides} == {side: len(ids) for side, ids in placed.items()}
    assert data.sessions["cur"]["ambiguous"] >= 1


def test_health_statements_are_aggregates_on_mariadb(demo_mariadb):
    url, _ = demo_mariadb
    stmts = health_data.statements(url, health.period_bounds("2025-10-14", "1d"), 1)
    assert [name for name, _, _ in stmts] == ["sessions", "excluded_test_ids", "latencies", "reach", "errors"]
    assert all("GROUP BY" in sql or "SUM(" in sql for _, sql, _ in stmts)  # counts come back, never rows


def _same(histogram, sample) -> bool:
    expected = Histogram.of(pd.Series(sample, dtype="float64").to_numpy())
    return np.array_equal(histogram.values, expected.values) and np.array_equal(histogram.counts, expected.counts)


def test_the_report_s_counts_are_what_the_row_loaders_read(demo_db):
    """Each count of the report's statements (``health_data.from_sql``), computed again from the rows the loaders
    read: sessions per side with their stuck, cleanup-closed and untraced ones; the duration histograms without stuck
    and cleanup-closed sessions; latencies without negative durations; the period's trace quality; errors and their
    booking failures per side."""
    _counts_are_what_the_rows_say(demo_db[0])


def test_the_report_s_counts_are_what_the_row_loaders_read_where_the_demo_leaves_its_rules_idle(demo_sqlite, tmp_path):
    """The same on a copy where each rule changes a number: stuck and cleanup-closed sessions with a duration, a
    booking failure stored as 2, a session started at the period's first instant, and one whose traces all start
    after the period's end."""
    url = altered_copy(
        demo_sqlite[0], tmp_path,
        "UPDATE retell_call_sessions SET duration_ms = 7777777 WHERE call_status = 'in_progress' "
        "OR disconnection_reason = 'system_timeout'",
        "UPDATE retell_error_log SET booking_failed = 2 WHERE booking_failed <> 0 AND id % 2 = 0",
        "UPDATE retell_call_sessions SET started_at = '2025-11-24 00:00:00' WHERE id = (SELECT id FROM "
        "retell_call_sessions WHERE started_at >= '2025-11-24 00:00:00' ORDER BY started_at LIMIT 1)",
        "UPDATE retell_function_traces SET started_at = '2025-12-01 10:00:00' WHERE call_session_id = (SELECT id FROM "
        "retell_call_sessions WHERE started_at < '2025-12-01 00:00:00' ORDER BY started_at DESC LIMIT 1)")
    data = _counts_are_what_the_rows_say(url)
    assert data.sessions["cur"]["untraced"] > 0


def _counts_are_what_the_rows_say(url: str) -> health_data.HealthData:
    inputs = health_data.load_counts(url, "2025-11-24", "7d", 0)  # stuck, cleanup-closed and zero-second rows in it
    data, b = inputs.data, inputs.bounds
    calls = loaders.calls(url, start=b["baseline_start"], end=b["end"], as_of=b["end"])
    calls["side"] = np.where(calls["started_at"] < b["start"], "base", "cur")
    traces = loaders.function_traces(url, start=b["baseline_start"], end=b["end"], blobs=False)
    traces["side"] = np.where(traces["started_at"] < b["start"], "base", "cur")
    traced = set(traces.loc[traces["side"].eq("cur"), "session_id"])
    for side in ("base", "cur"):
        own = calls[calls["side"].eq(side)]
        untraced = int((~own["session_id"].isin(traced)).sum()) if side == "cur" else 0
        assert {k: data.sessions[side][k] for k in ("n", "stuck", "cleanup", "untraced")} == {
            "n": len(own), "stuck": int(own["stuck"].sum()), "cleanup": int(own["closed_by_cleanup"].sum()),
            "untraced": untraced}
        kept = own[~own["stuck"] & ~own["closed_by_cleanup"]]
        assert _same(data.durations["call_duration_session"][side], kept["duration_ms"].dropna())
        for family, part in traces[traces["side"].eq(side)].groupby(traces["family"].astype(str)):
            values = part["duration_ms"].dropna()
            assert _same(data.latencies[family][side], values[values >= 0]), family
    cur = traces.loc[traces["side"].eq("cur"), "duration_ms"]
    assert data.trace_quality == {"n": len(cur), "negative": int((cur < 0).sum()), "zero": int((cur == 0).sum()),
                                  "whole_seconds": int(((cur % 1000 == 0) & (cur != 0)).sum())}
    # the rules are exercised: stuck and cleanup-closed sessions, negative and zero durations
    assert calls["stuck"].any() and calls["closed_by_cleanup"].any() and (traces["duration_ms"] < 0).any()
    assert (cur == 0).any() and ((cur % 1000 == 0) & (cur != 0)).any()
    errors = loaders.errors(url, start=b["baseline_start"], end=b["end"])
    errors = errors[errors["severity"].notna()]
    errors_side = np.where(errors["occurred_at"] < b["start"], "base", "cur")
    for side in ("base", "cur"):
        mine = data.errors[data.errors["side"].eq(side)]
        theirs = errors[errors_side == side]
        assert (int(mine["n"].sum()), int(mine["booking_failed"].sum())) == \
            (len(theirs), int(theirs["booking_failed"].fillna(False).astype(bool).sum()))
    return data
