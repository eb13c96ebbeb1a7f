"""The shared table formatter: one mark for no value, units in headers, tooltips, text within 100 columns."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from rca_toolkit.analyses import tables
from rca_toolkit.analyses.tables import Table, col


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA, pd.NaT, "", "  "])
def test_every_kind_of_no_value_is_one_mark(value):
    assert tables.text(value) == tables.MISSING
    assert tables.seconds(value) == tables.MISSING and tables.p_value(value) == tables.MISSING
    assert Table(pd.DataFrame({"a": [value], "b": [1]})).cells == [[tables.MISSING, "1"]]


def test_formatters():
    assert tables.seconds(0.55) == "0.6" and tables.seconds(1.05, 2) == "1.05" and tables.seconds(1234.5) == "1,234"
    assert tables.ms_as_seconds(66713) == "66.7"
    assert tables.share_of(213, 395) == "53.9 % (213/395)" and tables.share_of(0, 0) == "- (0/0)"
    assert tables.share_of(32, 61, unit="") == "52.5 (32/61)"
    assert tables.percent_interval(0.49, 0.588) == "49.0-58.8 %"
    assert tables.signed_interval(-0.11, 0.117, lambda v: f"{100 * v:+.1f}") == "-11.0 to +11.7"
    assert tables.p_value(1.1e-13) == "< 0.001" and tables.p_value(0.0123) == "0.012" and tables.p_value(1.0) == "1"
    assert tables.when("2025-10-18T10:09:26.412000+00:00", "Europe/Berlin") == "2025-10-18 12:09:26 CEST"
    assert tables.when(pd.Timestamp("2025-11-13 15:06:00"), "Europe/Berlin") == "2025-11-13 16:06:00 CET"  # naive = UTC
    assert tables.between("2025-10-13T09:11:00Z", "2025-10-13T09:22:00Z", "Europe/Berlin") == "2025-10-13 11:11 -> 11:22 CEST"
    assert tables.text(["a", None, 2.5]) == "a, -, 2.50" and tables.text(True) == "yes"


@pytest.mark.parametrize("p", ["p < 0.001", "p = 0.055"])
def test_a_p_value_is_never_parted_from_its_p(p):
    for lead in range(60, 100):  # the p-value at every place near the end of a 100-column line
        wrapped = tables.wrap_lines([f"{'x' * lead} {p}; more words after it"]).splitlines()
        assert any(p in line for line in wrapped), wrapped


def test_a_share_that_is_not_0_or_1_never_reads_as_0_or_100_percent():
    """A Wilson bound of 0/4,264 attempts is 0.09 %: "95 % CI 0 %-0 %" read as a certainty it is not."""
    assert tables.percent(0, 0) == "0 %" and tables.percent(1, 0) == "100 %" and tables.percent(0.5, 0) == "50 %"
    assert tables.percent(0.0009, 0) == "0.1 %" and tables.percent(0.9996, 0) == "99.96 %"
    assert tables.percent_interval(0, 0.0009, 0, "") == "0-0.1"
    assert tables.share_of(1, 4264, 0) == "0.02 % (1/4,264)"
    assert tables.signed_points(0.487) == "+48.7" and tables.signed_points(0) == "+0.0"
    assert tables.signed_interval(-0.00015, 0.0002, tables.signed_points) == "-0.01 to +0.02"  # 0/25,818 -> 0/19,760
    assert tables.percent(1e-9) == "<0.0001 %" and tables.percent(1 - 1e-9, 0) == ">99.999 %"


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=1), st.integers(min_value=0, max_value=2))
def test_a_percentage_reads_as_its_share_to_its_last_digit_and_as_0_or_100_only_when_it_is(share, decimals):
    text = tables.percent(share, decimals, unit="")
    if text[0] in "<>":  # beyond three more decimals: a bound, on the right side
        bound = float(text[1:])
        assert (100 * share < bound) if text[0] == "<" else (100 * share > bound)
        return
    shown = float(text)
    places = len(text.split(".")[1]) if "." in text else 0
    assert places >= decimals and abs(shown - 100 * share) <= 0.5 * 10 ** -places + 1e-9
    assert (shown == 0) is (share == 0) and (shown == 100) is (share == 1)


def test_html_has_no_row_index_aligns_numbers_and_cuts_long_text_with_a_tooltip():
    long = "x " * 100
    page = Table([{"name": "a<b", "n": 3, "note": long}],
                 [col("name"), col("n", "count (s)", numeric=True), col("note", max_chars=20)]).to_html()
    assert "<th></th>" not in page and '<th scope="col">name</th>' in page and "count (s)" in page
    assert "a&lt;b" in page and 'style="text-align:right;white-space:nowrap">3<' in page
    assert f'title="{long.strip()}"' in page and "…</span>" in page


def test_markdown_keeps_whole_texts_and_escapes_pipes():
    md = Table([{"a": "x|y", "b": None}]).to_markdown()
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | - |"]
    assert Table(pd.DataFrame(columns=["a"]), empty="nothing here").to_markdown() == "_nothing here_"


words = st.text(alphabet="abcdefghij_-./:0123456789", min_size=1, max_size=14)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.lists(words, min_size=0, max_size=12).map(" ".join), min_size=4, max_size=4),
                min_size=1, max_size=6),
       st.lists(st.lists(words, min_size=1, max_size=2).map(" ".join), min_size=4, max_size=4),
       st.integers(min_value=60, max_value=140))
def test_text_tables_fit_the_width_and_keep_every_word(rows, headers, width):
    frame = pd.DataFrame(rows, columns=[f"c{i}" for i in range(4)])
    columns = [col(f"c{i}", h) for i, h in enumerate(headers)]
    text = Table(frame, columns).to_text(width)
    assert max(len(line) for line in text.splitlines()) <= width
    shown = headers + [cell if cell.strip() else tables.MISSING for row in rows for cell in row]
    assert sorted("".join(text.split())) == sorted("".join("".join(shown).split()))  # wrapped, nothing dropped


def test_numbers_are_never_cut_inside():
    frame = pd.DataFrame({"metric": ["function_latency check_availability"] * 2, "before": ["0.85 (n=123)"] * 2,
                          "ci": ["0.77-0.93"] * 2})
    text = Table(frame, [col("metric"), col("before", "median before (s)", numeric=True),
                         col("ci", "95 % CI", numeric=True)]).to_text(30)
    assert "0.77-0.93" in text and "(n=123)" in text and "0.85" in text


def test_columns_that_fit_only_one_space_apart_are_set_one_space_apart():
    """Numbers never break inside, so nine numeric columns at their narrowest can need the gaps: the compare's
    booking table was 101 columns wide in a 100-column terminal."""
    cells = {"group": "all", "before": "70.1 (157,482/224,588)", "ci": "69.9-70.3", "after": "53.6 (126,074/235,170)",
             "ci2": "53.4-53.8", "diff": "-16.5", "ci3": "-16.8 to -16.2", "p": "< 0.001", "verdict": "regressed"}
    columns = [col(k, k, numeric=k not in ("group", "verdict")) for k in cells]
    narrowest = sum(max([len(k)] + [len(t) for t in v.split()]) for k, v in cells.items())  # each at its longest word
    for width in (narrowest + 8, narrowest + 16):  # room for one space between the nine columns, and for two
        text = Table(pd.DataFrame([cells]), columns).to_text(width)
        assert max(len(line) for line in text.splitlines()) <= width, text
        assert "(157,482/224,588)" in text and "(126,074/235,170)" in text
    assert "  " not in Table(pd.DataFrame([cells]), columns).to_text(narrowest + 8).splitlines()[-1].strip()


def test_a_long_name_stays_whole_when_single_spaces_make_room_for_it():
    """``call_duration_session`` broke inside (``call_duration_sessio`` / ``n``) in rca compare at 100 columns,
    where one space between the columns left room for it."""
    cells = {"metric": "call_duration_session", "before": "65.0 (n=407,888)", "ci": "64.9-65.0",
             "after": "65.1 (n=340,798)", "ci2": "65.0-65.2", "shift": "+0.2", "p": "< 0.001", "verdict": "regressed"}
    columns = [col(k, k, numeric=k not in ("metric", "verdict")) for k in cells]
    width = sum(max([len(k)] + [len(t) for t in v.split()]) for k, v in cells.items()) + len(cells) - 1
    text = Table(pd.DataFrame([cells]), columns).to_text(width)
    assert "call_duration_session" in text and max(len(line) for line in text.splitlines()) <= width, text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["12.5 %", "95 % CI", "0.0 %-11.7 %", "success", "of", "29", "attempts", "(0/68)",
                                 "(cache_max_age_s 300 s)", "604800 s),", "3.8 MiB", "12 ms", "2 h", "s", "sessions", "h"]),
                min_size=5, max_size=40), st.integers(min_value=20, max_value=100))
def test_wrapped_lines_keep_a_number_with_its_unit(words, width):
    """The compare's headline broke as "... 95" / "% CI 0.0 %-11.7 %" at 100 columns, ``rca cache status`` as
    "... cache_check_every_s 604800" / "s), ..."."""
    text = tables.wrap_lines([" ".join(words)], width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    units = ("%", "CI", "s", "s)", "s),", "MiB", "ms", "h")
    breaks = [(before.split()[-1], after.split()[0]) for before, after in zip(lines, lines[1:])]
    assert not any(first in units and last[-1].isdigit() for last, first in breaks), text
    assert " ".join(" ".join(lines).split()) == " ".join(words)  # nothing dropped or added


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["12.5 %", "95 % CI", "0 %-32 %", "98 %", "success", "of", "2 s", "sessions", "4.9 s",
                                 "1.5 MiB", "s", "h", "min", "7 d", "% of", "90", "%", "12 ms", "3 min"]), max_size=30),
       st.sampled_from([" ", "  ", "\n"]))
def test_in_html_a_number_is_joined_to_its_unit_and_nothing_else_changes(words, sep):
    """What the HTML report shows (``units_unbroken``): the same text with a no-break space exactly where a number
    meets its unit, so a browser never wraps "98 %" apart; every other space stays a space."""
    text = sep.join(words)
    kept = tables.units_unbroken(text)
    assert kept.replace("\u00a0", " ") == text  # only spaces became no-break spaces
    joined = [i for i, ch in enumerate(kept) if ch == "\u00a0"]
    assert all(kept[i - 1].isdigit() or kept[i - 1] == "%" for i in joined)  # after a number (or "%" before CI)
    for i, ch in enumerate(text):
        if ch == " " and i and text[i - 1].isdigit() and re.match(r"(%|ms|s|min|h|KiB|MiB|GiB)(?!\w)", text[i + 1:]):
            assert kept[i] == "\u00a0", (text, i)


@pytest.mark.parametrize("width", range(8, 40, 3))
def test_a_table_cell_keeps_a_number_with_its_percent_sign(width):
    """The rule of wrap_lines holds inside a table's cells too: "69.1 %" never parts, at any width."""
    frame = pd.DataFrame({"rate": ["69.1 % (78,494/113,672)", "95 % CI 0.0 %-11.7 %"]})
    text = Table(frame, [col("rate", "success rate", numeric=True)]).to_text(width)
    assert not any(line.strip().startswith(("%", "CI")) for line in text.splitlines()), text
    assert "69.1 %" in text and "95 % CI" in text


def test_notes_show_as_a_list_not_a_python_literal():
    notes = tables.Notes(["one", "two <b>"])
    assert notes._repr_html_() == "<ul><li>one</li><li>two &lt;b&gt;</li></ul>" and repr(notes) == "- one\n- two <b>"
    assert notes == ["one", "two <b>"] and not math.isnan(len(notes))
