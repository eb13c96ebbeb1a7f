"""Property tests over the rule layer's parsers: durations, instants, naive wall times and JSON.

Contract: every input parses to a typed, bounded result or raises an RcaError (ConfigError,
InputFormatError) whose text is one line - nothing else. Bounded: at most 60 examples each.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
from hypothesis import given, settings as hyp_settings, strategies as st

from rca_toolkit.errors import ConfigError, InputFormatError, RcaError
from rca_toolkit.rules.jsonutil import MAX_NESTING, decode_json, load_document, nesting
from rca_toolkit.rules.timeutil import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    MAX_DURATION,
    localize_naive,
    parse_duration,
    parse_instant,
    to_utc,
)

FUZZ = hyp_settings(max_examples=60, deadline=None)


def outcome(parse, *args, **kwargs):
    """``parse`` returns, or raises an RcaError whose text is one non-empty line (anything else fails)."""
    try:
        return parse(*args, **kwargs)
    except RcaError as exc:
        assert str(exc) and len(str(exc).splitlines()) == 1, str(exc)
        return exc


NUMBERS = st.one_of(st.integers(-10**30, 10**30).map(str), st.floats(allow_nan=True).map(repr),
                    st.decimals(allow_nan=False, allow_infinity=False).map(str))
UNITS = st.sampled_from(["s", "m", "h", "d", "w", "y", "ms", "", " d", "D", "٣"])


# --------------------------------------------------------------------------- durations
@FUZZ
@given(st.one_of(st.text(max_size=30), st.builds(lambda n, u, pad: f"{pad}{n}{u}{pad}", NUMBERS, UNITS, st.sampled_from(["", " ", "\t"])),
                 st.timedeltas(), st.integers(), st.floats(), st.none()))
def test_durations_are_bounded_or_one_line_errors(value):
    result = outcome(parse_duration, value, name="before")
    if isinstance(result, RcaError):
        assert isinstance(result, ConfigError) and result.message.startswith("before=")
    else:
        assert isinstance(result, pd.Timedelta) and pd.Timedelta(0) <= result <= MAX_DURATION


@FUZZ
@given(amount=st.integers(0, 3653), unit=st.sampled_from(["s", "m", "h", "d"]))
def test_whole_durations_in_range_parse_exactly(amount, unit):
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{amount}{unit}").total_seconds() == seconds


# --------------------------------------------------------------------------- instants
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
AWARE = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS)


@FUZZ
@given(st.one_of(st.text(max_size=40), AWARE.map(lambda d: d.isoformat()), AWARE, st.datetimes(),
                 AWARE.map(lambda d: d.isoformat().replace("+00:00", "Z")),
                 st.sampled_from(["9999-12-31", "9999-12-31T00:00Z", "0001-01-01T00:00+05:00", "now", "today", "NaT",
                                  "1e20", "2025-10-18T13:20:08+25:00", "2262-04-11T23:47:16Z"]),
                 st.integers(), st.floats(), st.none()))
def test_instants_are_utc_in_range_or_one_line_errors(value):
    result = outcome(parse_instant, value, name="--at")
    if isinstance(result, RcaError):
        assert isinstance(result, ConfigError) and result.message.startswith("--at=")
    else:
        assert str(result.tz) == "UTC" and EARLIEST_INSTANT <= result < LATEST_INSTANT


@FUZZ
@given(AWARE)
def test_an_aware_instant_in_range_is_the_same_instant(moment):
    utc = moment.astimezone(timezone.utc) if datetime(1, 1, 3) < moment.replace(tzinfo=None) < datetime(9999, 12, 29) else None
    result = outcome(parse_instant, moment.isoformat())
    if utc is not None and EARLIEST_INSTANT <= pd.Timestamp(utc) < LATEST_INSTANT:
        assert result == pd.Timestamp(utc)
    else:
        assert isinstance(result, ConfigError)


# --------------------------------------------------------------------------- naive wall times
@FUZZ
@given(st.lists(st.one_of(st.text(max_size=30), st.none(),
                          st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(str),
                          AWARE.map(lambda d: d.isoformat())), max_size=6))
def test_naive_wall_times_never_raise(values):
    out = localize_naive(pd.Series(values, dtype=object))
    assert list(out.columns) == ["ts", "ts_ambiguous", "ts_nonexistent"] and len(out) == len(values)
    assert str(out["ts"].dtype).startswith("datetime64") and out["ts_ambiguous"].dtype == bool
    assert len(to_utc(pd.Series(values, dtype=object))) == len(values)


# --------------------------------------------------------------------------- JSON
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=10)


@FUZZ
@given(st.one_of(st.text(max_size=60), JSON_VALUES.map(json.dumps), JSON_VALUES.map(lambda v: json.dumps(json.dumps(v))),
                 st.integers(1, 3000).map(lambda n: "[" * n + "]" * n), st.integers(1, 3000).map(lambda n: "[" * n)))
def test_documents_decode_or_are_one_line_errors(text):
    result = outcome(load_document, text, "calls.json", "Retell call object")
    if isinstance(result, RcaError):
        assert isinstance(result, InputFormatError) and result.message.startswith("calls.json ")
    else:
        assert nesting(result) <= MAX_NESTING
    obj, _double, invalid = decode_json(text)  # the tolerant reader of JSON columns never raises
    assert invalid or nesting(obj) <= MAX_NESTING
