"""Data-quality report on the real call-history export and on small hand-made frames."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from IPython.core.formatters import DisplayFormatter

from rca_toolkit.errors import SchemaError
from rca_toolkit.sources.formats.exports import read_call_history
from rca_toolkit.analyses.quality import edit_distance, near_duplicate_ids, quality_report

EXCLUDED = {
    "test_123", "test_456", "test_999", "test_direct_999", "test_fix_verification_001", "test_opcache_cleared",
    "demo_call_1761249581", "temp_1761122080_9e0002da", "call_de1656496a133e2cbcd886664988",
}


@pytest.fixture(scope="module", params=["json", "csv"])
def report(request, shared_data):
    return quality_report(read_call_history(shared_data / f"call_history_2025-10-24_184034.{request.param}"))


def test_excluded_ids(report):
    assert {e["call_id"] for e in report.excluded_ids} == EXCLUDED
    assert report["test_ids"].count == 9
    assert report["test_ids"].detail["by_kind"] == {"test": 6, "demo": 1, "temp": 1, "malformed": 1}


def test_stuck_sessions_all_on_2025_10_24(report):
    stuck = report["stuck"]
    assert stuck.count == 40
    assert stuck.detail["by_day"] == {"2025-10-24": 40}
    assert stuck.detail["without_end"] == 40
    # judged at the export time 18:40:34 CEST: the last ones were minutes old, not yet 2 h
    assert report.as_of == "2025-10-24 16:40:34+00:00"
    assert 0 < stuck.detail["older_than_2h"] < 40


def test_near_duplicate_typo_id(report):
    assert report.near_duplicates == [{
        "call_id": "call_de1656496a133e2cbcd886664988", "similar_to": "call_de1656496a133e2cbcd88664988",
        "edit_distance": 1, "seconds_apart": 8.0, "malformed": True,
    }]


def test_durations_and_longest_calls(report):
    assert report["negative_duration"].count == 0 and report["zero_duration"].count == 0
    assert report["missing_duration"].count == 42
    assert set(report["missing_duration_closed"].examples) == {"call_de1656496a133e2cbcd886664988", "temp_1761122080_9e0002da"}
    reference = [c for c in report.longest_calls if c["call_id"] == "call_ab45deadd7db66c4956d5243861"]
    assert len(reference) == 1 and [c["call_id"] for c in report.longest_calls].index(reference[0]["call_id"]) == 4
    assert report.longest_calls[0]["call_id"] == "call_cf4ade5430757f897cd20e4cec3"


def test_json_specifics(shared_data):
    report = quality_report(read_call_history(shared_data / "call_history_2025-10-24_184034.json"))
    reference = next(c for c in report.longest_calls if c["call_id"] == "call_ab45deadd7db66c4956d5243861")
    assert reference["duration_s"] == pytest.approx(144.481)
    assert report["counter_mismatch"].examples == ["call_06b1e1314e8cfaebdf9577e6da7"]
    rounded = report["round_durations"]
    assert rounded.examples == ["demo_call_1761249581"]
    assert (rounded.detail["trace_round"], rounded.detail["trace_n"]) == (5, 9)
    assert rounded.detail["p_value_if_random"] < 0.2
    text = report.to_text()
    assert "call_de1656496a133e2cbcd886664988 ~ call_de1656496a133e2cbcd88664988" in text
    assert json.loads(report.to_json())["findings"]["stuck"]["count"] == 40
    assert "| stuck in_progress sessions | 40 |" in report.to_markdown()
    shown = DisplayFormatter().format(report)[0]  # a notebook's output: HTML for JupyterLab, Markdown for report.md
    assert "<table" in shown["text/html"] and "| stuck in_progress sessions | 40 |" in shown["text/markdown"]
    assert shown["text/markdown"].startswith("#### Data quality: ") and "<" not in shown["text/markdown"]


def test_csv_round_values_are_judged_against_their_precision(shared_data):
    report = quality_report(read_call_history(shared_data / "call_history_2025-10-24_184034.csv"))
    rounded = report["round_durations"]
    assert rounded.detail["chance_baseline"] == pytest.approx(0.1)
    assert rounded.detail["p_value_if_random"] > 0.5  # 10 of 125 at 0.1 s precision is chance
    assert "counter_mismatch" not in report.findings
    assert any("0.1 s" in note for note in report.notes)


def test_synthetic_frame_with_every_problem():
    ts = pd.to_datetime(["2025-10-26 00:15", "2025-10-26 00:16", "2025-11-01 10:00", "2025-11-01 10:00",
                         "2025-11-01 12:00"], utc=True)
    frame = pd.DataFrame({
        "call_id": ["call_" + "a" * 27, "call_" + "a" * 25 + "bb", "call_" + "c" * 27, "call_" + "c" * 27, "call_" + "d" * 27],
        "started_at": ts,
        "started_at_ambiguous": [True, False, False, False, False],
        "ended_at": pd.to_datetime([None, "2025-10-26 00:20", "2025-11-01 10:01", "2025-11-01 10:01", None], utc=True),
        "call_status": ["ended", "ended", "ended", "ended", "in_progress"],
        "duration_ms": pd.array([-714, 0, 5000, 5000, None], dtype="Int64"),
    })
    report = quality_report(frame, as_of="2025-11-01T13:00:00+00:00")
    assert report["negative_duration"].examples == ["call_" + "a" * 27]
    assert report["zero_duration"].count == 1
    assert report["duplicate_ids"].count == 2
    assert report["dst_ambiguous"].count == 1
    # the set records end times, so a 1-hour-old in_progress call is live, not stuck ...
    assert report["stuck"].count == 0 and report["stuck"].detail["set_records_end_times"]
    # ... unless the calls row already says completed (P5), or it passes 2 hours
    marked = quality_report(frame.assign(call_row_status=[None, None, None, None, "completed"]),
                            as_of="2025-11-01T13:00:00+00:00")["stuck"]
    assert (marked.count, marked.detail["ended_per_calls_row"], marked.detail["older_than_2h"]) == (1, 1, 0)
    later = quality_report(frame, as_of="2025-11-01T14:30:00+00:00")["stuck"]
    assert (later.count, later.detail["older_than_2h"]) == (1, 1)
    assert report.near_duplicates[0]["edit_distance"] == 2
    assert report["round_durations"].count == 2
    assert any("counter-vs-traces" in n for n in report.notes)


def test_edit_distance_and_window():
    assert edit_distance("call_de1656496a133e2cbcd886664988", "call_de1656496a133e2cbcd88664988") == 1
    assert edit_distance("abc", "xyz") == 3 and edit_distance("abcdef", "a", limit=2) == 3
    far = pd.DataFrame({"call_id": ["call_" + "a" * 27, "call_" + "a" * 26 + "b"],
                        "started_at": pd.to_datetime(["2025-10-18 10:00", "2025-10-18 11:00"], utc=True)})
    assert near_duplicate_ids(far) == []


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["call_" + "a" * 27, "call_" + "a" * 26 + "b", "call_" + "a" * 25 + "bb",
                                           "call_" + "a" * 26, "cal_" + "a" * 27, "call_" + "b" * 27, "x"]),
                          st.integers(min_value=0, max_value=900)), max_size=150),
       st.integers(min_value=1, max_value=400))
def test_near_duplicates_are_every_pair_a_pairwise_search_finds_in_the_same_order(rows, window_s):
    """The blocks (BLOCK ids at a time against every id their windows reach) against the plain pairwise search."""
    frame = pd.DataFrame({"call_id": [r[0] for r in rows],
                          "started_at": pd.to_datetime([1_760_000_000 + r[1] for r in rows], unit="s", utc=True)})
    window = pd.Timedelta(seconds=window_s)
    ordered = frame.sort_values("started_at").reset_index(drop=True)
    ids, times = ordered["call_id"].tolist(), ordered["started_at"].tolist()
    expected = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if times[j] - times[i] <= window and ids[i] != ids[j] and _levenshtein(ids[i], ids[j]) <= 2:
                expected.append((ids[i], ids[j], _levenshtein(ids[i], ids[j]), (times[j] - times[i]).total_seconds()))
    found = near_duplicate_ids(frame, window=window)
    assert [{d["call_id"], d["similar_to"]} for d in found] == [{e[0], e[1]} for e in expected]
    assert [(d["edit_distance"], d["seconds_apart"]) for d in found] == [(e[2], e[3]) for e in expected]


def test_a_set_with_more_near_duplicates_than_a_report_can_list_keeps_a_thousand_lists_ten_and_counts_all():
    """The benchmark world (ids of copies one hex digit apart) gave 12,891,467 pairs and 25.8M lines of text."""
    from rca_toolkit.analyses.quality import MAX_EXAMPLES, MAX_NEAR_PAIRS

    ids = ["call_" + "a" * 26 + c for c in "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"]  # any two: 1 edit
    frame = pd.DataFrame({"call_id": ids, "call_status": "ended", "duration_ms": 60_000,
                          "started_at": pd.date_range("2025-10-18T10:00:00Z", periods=len(ids), freq="2s")})
    report = quality_report(frame, as_of="2025-10-19T00:00:00+00:00")
    pairs = len(ids) * (len(ids) - 1) // 2
    assert report["near_duplicates"].count == pairs == 1225 and len(report.near_duplicates) == MAX_NEAR_PAIRS
    assert report.near_duplicates == near_duplicate_ids(frame)[:MAX_NEAR_PAIRS]  # the first ones, in start order
    assert f"1,225 near-duplicate id pairs: the first {MAX_NEAR_PAIRS:,} are kept in this report, 10 listed" in report.notes
    text = report.to_text()
    assert text.count("near-duplicate: ") == MAX_EXAMPLES and "near-duplicate ids" in text and "1,225" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    section = report.to_markdown().split("## Near-duplicate ids")[1].split("\n## ")[0]
    assert section.count("\n| call_") == MAX_EXAMPLES


def test_pairs_past_the_kept_ones_are_still_counted_in_every_later_block():
    """``keep`` bounds the pairs listed, never the count: ids over several cdist blocks, the first block alone
    holding more pairs than are kept (any two ids here are at most two edits apart)."""
    from rca_toolkit.analyses.quality import BLOCK, near_duplicates

    chars = "0123456789abcdef"
    ids = ["call_" + "a" * 25 + x + y for x in chars for y in chars][:3 * BLOCK + 5]
    frame = pd.DataFrame({"call_id": ids, "started_at": pd.date_range("2025-10-18T10:00:00Z", periods=len(ids), freq="1s")})
    every, total = near_duplicates(frame)
    kept, counted = near_duplicates(frame, keep=3)
    assert total == counted == len(every) == len(ids) * (len(ids) - 1) // 2
    assert kept == every[:3]


def test_frame_without_required_columns_is_an_error():
    with pytest.raises(SchemaError, match="started_at"):
        quality_report(pd.DataFrame({"call_id": ["x"], "call_status": ["ended"], "duration_ms": [1]}))


def test_demo_world_on_each_backend_matches_its_ground_truth(demo_db):
    from rca_toolkit.sources import loaders

    url, truth = demo_db
    as_of = "2025-12-01T00:00:00+01:00"  # the end of the demo window
    report = quality_report(loaders.calls(url, include_test=True, as_of=as_of), as_of=as_of)
    assert {e["call_id"] for e in report.excluded_ids} == set(truth["excluded_ids"])
    assert report["stuck"].count == truth["stuck_sessions"]
    assert set(report["stuck"].examples) <= set(truth["stuck_session_call_ids"])
    assert report["stuck"].detail["by_day"]["2025-10-24"] == truth["stuck_on_2025_10_24"]
    assert [d["call_id"] for d in report.near_duplicates] == ["call_de1656496a133e2cbcd886664988"]
    ambiguous = set(truth["dst"]["ambiguous_call_ids"])
    if url.startswith("sqlite"):  # naive Berlin wall time: the repeated hour is flagged, never guessed
        assert set(report["dst_ambiguous"].examples) == ambiguous
    else:  # MariaDB sessions pinned to +00:00 hand back unambiguous UTC
        assert report["dst_ambiguous"].count == 0


def test_the_text_report_fits_a_terminal(report):
    """`rca quality` prints within 100 columns: long example lists wrap under their column."""
    text = report.to_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    flat = " ".join(text.split())
    for finding in report.findings.values():  # every example shown is whole: wrapped, never cut
        assert all(str(e) in flat for e in report.shown(finding)[2][:3])


def test_ids_pasted_with_markup_read_as_written_in_the_markdown():
    """An export's ids are data: one holding a pipe or an HTML tag broke the Markdown table or vanished in it."""
    started = pd.Timestamp("2025-10-24 10:00", tz="UTC")
    frame = pd.DataFrame({"call_id": ["test_<b>1</b>|x", "test_<b>1</b>|y"], "started_at": [started, started + pd.Timedelta("5s")],
                          "call_status": ["ended", "ended"], "duration_ms": [60_000, 1_000]})
    md = quality_report(frame, as_of=started + pd.Timedelta("1h")).to_markdown()
    assert "| test/demo/temp/malformed ids | 2 | test_&lt;b>1&lt;/b>\\|x, test_&lt;b>1&lt;/b>\\|y |" in md
    assert "| test_&lt;b>1&lt;/b>\\|x | test_&lt;b>1&lt;/b>\\|y | 1 | 5 |" in md  # the near duplicates, one row
    assert "| test_&lt;b>1&lt;/b>\\|x | 2025-10-24 12:00:00 CEST | 60.000 | ended |" in md and "<b>" not in md
    assert "2 rows; stuck judged as of 2025-10-24 13:00:00 CEST." in md  # local, as the text and every report
