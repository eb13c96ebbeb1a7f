"""Personal data (rules/personal_data): phone numbers in German and international forms, e-mail addresses
and the names the data names are masked; ids, timestamps, measurements and URL users are not.

Real values: numbers the ``phonenumbers`` library itself calls valid, formatted the three ways it
formats them, inside generated text (Hypothesis); the demo world's own caller ("Hans Müller") and the
real scrubbed Retell sample's caller ("Max Muster").
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import personal_data as pd_rule
from rca_toolkit.rules.personal_data import EMAIL_MASK, NAME_MASK, PHONE_MASK, mask


@pytest.mark.parametrize("text, masked", [
    ("Meine Nummer ist 0151 23456789.", f"Meine Nummer ist {PHONE_MASK}."),
    ("Büro 030 1234567, mobil 0049 151 23456789", f"Büro {PHONE_MASK}, mobil {PHONE_MASK}"),
    ("+49 30 1234567 oder (030) 1234567 oder +49 (0)30 1234567", f"{PHONE_MASK} oder {PHONE_MASK} oder {PHONE_MASK}"),
    ("US: +14155550123; platzhalter +490000000000", f"US: {PHONE_MASK}; platzhalter {PHONE_MASK}"),
    ("am 12. 030 1234567 anrufen", f"am 12. {PHONE_MASK} anrufen"),  # digits before the number
    ("Tel.0301234567", f"Tel.{PHONE_MASK}"),
    ("hans.mueller@example.de schrieb", f"{EMAIL_MASK} schrieb"),
    ("Mein Name ist Hans Müller.", f"Mein Name ist {NAME_MASK} {NAME_MASK}."),
    ("Vielen Dank, Herr Müller.", f"Vielen Dank, Herr {NAME_MASK}."),
])
def test_personal_values_are_masked(text, masked):
    assert mask(text) == masked


@pytest.mark.parametrize("text", [
    "session duration_ms 144481 (server clock, P2) vs Retell 144481: delta +0 ms",
    "started_at 2025-10-18T10:09:26.412000+00:00, naive 2025-10-18 12:09:27, 00:00:12",
    "call_ab45deadd7db66c4956d5243861 and uuid 3f2c0301-2345-6789-abcd-0151234567ab",
    "p=0.0301234567, share 0.012345678, start_timestamp 1761297670702, epoch 1760782166",
    "mysql+pymysql://readonly@db.internal:3306/askproai", "RB001 check_customer x7 (Connection: mysql, SQL: 1054)",
])
def test_ids_times_measurements_and_url_users_are_kept(text):
    assert mask(text) == text


def test_a_value_cut_short_is_masked_too():
    """A table cell cut to 60 characters, or pandas' '...', must not keep the head of a number or address."""
    known = {"0151 23456789", "hans.mueller@example.de", "Hans Müller"}
    assert mask("meine Nummer ist 0151 2345...", known) == f"meine Nummer ist {PHONE_MASK}..."
    assert mask("E-Mail hans.mueller@exa", known) == f"E-Mail {EMAIL_MASK}"
    assert mask("<td>Mein Name ist Hans Mül</td>", known) == f"<td>Mein Name ist {NAME_MASK} {NAME_MASK}</td>"


def test_names_the_data_names():
    """Name keys count wherever they sit; a bare ``name`` only with a person-shaped value (not a function)."""
    tool_calls = pd.DataFrame({"name": ["check_customer", "book_appointment"],
                               "arguments": [{"name": "Müller"}, '{"datum": "20.10.2025", "name": "Hans Müller"}']})
    record = {"customer_name": "erika beispiel", "agent_name": "Demo Terminannahme", "metadata": {"vorname": "Max"}}
    found = pd_rule.names_in(tool_calls, record, "Ich heiße Lena Schmidt")
    assert found == {"Müller", "Hans Müller", "erika beispiel", "Max", "Lena Schmidt"}
    assert mask("Müller, Hans Müller. Ein check_customer.", found) == f"{NAME_MASK}, {NAME_MASK} {NAME_MASK}. Ein check_customer."


def test_the_demo_worlds_caller_is_named_by_its_tool_arguments():
    from rca_toolkit.demo import injected

    names = pd_rule.names_in([{"name": n} for n in injected.NAME_ARGS])
    for answer in injected.NAME_ANSWERS:
        assert "Müller" not in mask(answer, names) and "Mueller" not in mask(answer, names)


def test_the_real_retell_samples_caller_is_found_in_what_they_said(shared_data):
    call = json.loads((shared_data / "retell_call_a3d98bb4522f6f1e0bfac5964b1.json").read_text())
    said = pd_rule.names_in(call["transcript"])
    assert said == {"Max Muster"}
    assert "Muster" not in mask(call["call_analysis"]["call_summary"], said)


# --------------------------------------------------------------------------- generated
_T = phonenumbers.PhoneNumberType
# every DE type with an example, but pagers: phonenumbers formats their NATIONAL form without the trunk 0
# ("16412345"), which the rule does not take for a phone number (a bare digit run is an id or a count)
_TYPES = [_T.FIXED_LINE, _T.MOBILE, _T.TOLL_FREE, _T.PERSONAL_NUMBER, _T.UAN, _T.PREMIUM_RATE, _T.SHARED_COST,
          _T.VOICEMAIL]
_FORMATS = [phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.E164]
_SEPARATORS = [" ", ", ", ": ", "\n", " (", "; ", " - ", "\t"]


@st.composite
def german_numbers(draw):
    """A number ``phonenumbers`` calls valid for DE: an example number of a type with its tail redrawn."""
    example = phonenumbers.example_number_for_type("DE", draw(st.sampled_from(_TYPES)))
    digits = str(example.national_number)
    keep = draw(st.integers(min_value=3, max_value=len(digits) - 2))
    tail = draw(st.text(alphabet="0123456789", min_size=len(digits) - keep, max_size=len(digits) - keep + 1))
    number = phonenumbers.parse("0" + digits[:keep] + tail, "DE")
    assume(phonenumbers.is_valid_number(number))
    return number


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(number=german_numbers(), form=st.sampled_from(_FORMATS),
       before=st.text(max_size=25), after=st.text(max_size=25),
       separators=st.tuples(st.sampled_from(_SEPARATORS), st.sampled_from(_SEPARATORS)))
def test_any_valid_german_number_in_any_text_is_masked(number, form, before, after, separators):
    formatted = phonenumbers.format_number(number, form)
    text = f"{before}{separators[0]}{formatted}{separators[1]}{after}"
    masked = mask(text)
    assert formatted not in masked and PHONE_MASK in masked, (text, masked)


@settings(max_examples=60, deadline=None)
@given(when=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31)),
       sep=st.sampled_from(["T", " "]), spec=st.sampled_from(["auto", "seconds", "microseconds", "milliseconds"]))
def test_timestamps_are_never_phone_numbers(when, sep, spec):
    """run.json's started_at, cell ids and log times: 00:02:07.520386 once came back as 00:02:[PHONE]."""
    text = f"started {when.isoformat(sep=sep, timespec=spec)}+00:00 on {when.date().isoformat()}"
    assert pd_rule.phone_numbers(text) == []
    assert mask(text) == text


@pytest.mark.parametrize("line", [
    "all    0.0 (0/68)  0.0-5.3  52.5 (32/61)  40.2-64.5      +52.5  +39.0 to +64.5     < 0.001  improved",
    "booking success 53.9 % (213/395), 95 % CI 49.0-58.7",
    "book_appointment 0 % (0/8, 95 % CI 0 %-32 %) vs 77 % (37/48)",
])
def test_a_table_of_numbers_is_not_personal_data(line):
    """`rca compare` printed `0.0 [PHONE] (32/61)`: a rate, a fraction and an interval once read as a number."""
    assert mask(line) == line


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.tuples(st.floats(0, 1000, allow_nan=False), st.integers(0, 9999), st.integers(1, 9999)),
                       min_size=1, max_size=6))
def test_rates_fractions_and_intervals_are_never_masked(values):
    line = "  ".join(f"{v:.1f} ({k}/{n})  {v:.1f}-{v + 1:.1f}  +{v:.1f}" for v, k, n in values)
    assert mask(line) == line


@settings(max_examples=60, deadline=None)
@given(commit=st.text("0123456789abcdef", min_size=7, max_size=40).filter(lambda c: any(ch.isalpha() for ch in c)))
def test_commit_ids_and_uids_are_never_phone_numbers(commit):
    """`rca incident` prints commits like 0301234abc12: a number that runs on into letters is an id."""
    line = f"cause {commit} (19 min before); recovered by {commit}: fix"
    assert mask(line) == line
