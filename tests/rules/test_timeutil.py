import re
from datetime import datetime

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.timeutil import localize_naive, parse_duration, parse_instant


def test_naive_berlin_summer_and_winter_offsets():
    out = localize_naive(pd.Series(["2025-10-18 12:09:27", "2025-11-13 16:18:37"]))
    assert list(out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")) == ["2025-10-18T10:09:27Z", "2025-11-13T15:18:37Z"]
    assert not out["ts_ambiguous"].any() and not out["ts_nonexistent"].any()


def test_repeated_hour_is_flagged_and_resolved_to_first_occurrence():
    out = localize_naive(pd.Series(["2025-10-26 02:15:00", "2025-10-26 03:15:00", "2025-10-26 01:59:59"]))
    assert list(out["ts_ambiguous"]) == [True, False, False]
    assert out["ts"].iloc[0] == pd.Timestamp("2025-10-26T00:15:00Z")  # CEST reading
    assert out["ts"].iloc[1] == pd.Timestamp("2025-10-26T02:15:00Z")  # CET


def test_missing_hour_is_flagged_and_shifted_forward():
    out = localize_naive(pd.Series(["2026-03-29 02:30:00", "2026-03-29 03:30:00"]))
    assert list(out["ts_nonexistent"]) == [True, False]
    assert out["ts"].iloc[0] == pd.Timestamp("2026-03-29T01:00:00Z")
    assert out["ts"].iloc[1] == pd.Timestamp("2026-03-29T01:30:00Z")


def test_offset_strings_are_not_flagged_and_match_naive_reading():
    naive = localize_naive(pd.Series(["2025-10-18 12:09:27"]))["ts"].iloc[0]
    zoned = localize_naive(pd.Series(["2025-10-18T12:09:27+02:00"]))["ts"].iloc[0]
    assert naive == zoned


def test_parse_instant_requires_zone():
    assert parse_instant("2025-10-18T13:20:08+02:00") == pd.Timestamp("2025-10-18T11:20:08Z")
    with pytest.raises(ConfigError, match="has no time zone"):
        parse_instant("2025-10-18T13:20:08", name="at")
    with pytest.raises(ConfigError, match="not an ISO-8601"):
        parse_instant("yesterday", name="at")


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("5d", 432000), ("2h", 7200), ("90s", 90), ("1w", 604800), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["5", "five days", "-3d", "3y"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration(bad, name="before")



@pytest.mark.parametrize("too_long", ["99999999d", "200000d", "3654d", "522w"])
def test_parse_duration_refuses_more_than_ten_years(too_long):
    with pytest.raises(ConfigError, match="longer than a duration can be"):
        parse_duration(too_long, name="before")
    assert parse_duration("3653d").days == 3653

def test_mixed_offset_and_naive_strings():
    out = localize_naive(pd.Series(["2025-10-18T12:09:27+02:00", "2025-10-26 02:15:00", None, "2025-10-18 12:09:27.500000"]))
    assert out["ts"].iloc[0] == pd.Timestamp("2025-10-18T10:09:27Z")
    assert list(out["ts_ambiguous"]) == [False, True, False, False]
    assert pd.isna(out["ts"].iloc[2])
    assert out["ts"].iloc[3] == pd.Timestamp("2025-10-18T10:09:27.5Z")


@pytest.mark.parametrize("printed, utc", [
    ("2025-10-18 13:20:08 CEST", "2025-10-18T11:20:08Z"),  # as the reports print a time (tables.when)
    ("2025-10-18 13:20 CEST", "2025-10-18T11:20:00Z"),  # as the index and tables.between print one
    ("2025-10-26 02:30:00 CEST", "2025-10-26T00:30:00Z"),  # the repeated hour: its first pass ...
    ("2025-10-26 02:30:00 CET", "2025-10-26T01:30:00Z"),  # ... and its second, told apart by the zone's name
    ("2025-10-18 11:20:08 UTC", "2025-10-18T11:20:08Z"),  # rca compare's header gives UTC beside it
    ("2025-10-18 13:20:08 cest", "2025-10-18T11:20:08Z"),  # typed, not copied
])
def test_a_time_copied_from_a_report_is_read_exactly(printed, utc):
    assert parse_instant(printed, name="--at") == pd.Timestamp(utc)


@pytest.mark.parametrize("printed, fragment", [
    ("2025-10-18 13:20:08 CET", "Europe/Berlin is CEST at that time, not CET (write 2025-10-18 13:20:08 CEST"),
    ("2025-12-18 13:20:08 CEST", "Europe/Berlin is CET at that time, not CEST"),
    ("2025-10-18 13:20:08 PST", "not PST"),  # another zone's name is no guess
    ("2026-03-29 02:30:00 CET", "does not exist in Europe/Berlin (the clocks skip that hour)"),
])
def test_a_printed_time_that_names_the_wrong_zone_is_one_line_naming_the_right_one(printed, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        parse_instant(printed, name="--at")


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30)))
def test_every_time_the_toolkit_prints_it_reads_back_as_the_same_instant(naive_utc):
    from rca_toolkit.analyses import tables

    instant = pd.Timestamp(naive_utc, tz="UTC").floor("s")
    assert parse_instant(tables.when(instant), name="--at") == instant
