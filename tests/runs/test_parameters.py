"""The parameter contract's ranges, the date kind, the empty rule and unreadable notebooks (runs/parameters).

Every numeric parameter is finite and inside a range decided like the kinds: the help's
``between A and B``, ``*_s`` seconds in (0, 86400], ``min_*`` at least 1, anything else >= 0, an int at
most 2**63 - 1. What is refused here is refused before a kernel starts.
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from rca_toolkit.errors import ConfigError, InputFormatError
from rca_toolkit.runs import parameters

CELL = (
    'dead_air_s: float = 3.0  # silence longer than this many seconds\n'
    'min_attempts: int = 10  # attempts needed for a verdict\n'
    'company_id: int = 0  # company id, 0 means all\n'
    'ratio: float = 0.5  # a share between 0 and 1\n'
    'period_start: str = "2025-10-14"  # first day of the period\n'
    'reference_date: str = ""  # YYYY-MM-DD after which a name is future-dated; empty means today\n'
    'call_id: str = "call_x"  # the call to show\n'
    'by: str = "path"  # split by this column (empty: overall only)\n'
)
DECLARED = parameters.parse_parameters(CELL)


def refused(given: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parameters.validate(DECLARED, given)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_ranges_come_from_the_help_or_the_name():
    by_name = {p.name: p for p in DECLARED}
    ranges = {n: str(parameters.numeric_range(n, p.type, p.help)) for n, p in by_name.items() if p.type != "str"}
    assert ranges == {"dead_air_s": "(0, 86400]", "min_attempts": "[1, 2^63-1]", "company_id": "[0, 2^63-1]",
                      "ratio": "[0, 1]"}
    assert by_name["period_start"].kind == "date" and by_name["reference_date"].kind == "date"


@pytest.mark.parametrize("given, fragment", [
    ({"dead_air_s": "nan"}, "dead_air_s=nan is outside (0, 86400]"),
    ({"dead_air_s": "inf"}, "dead_air_s=inf is outside"),
    ({"dead_air_s": "-inf"}, "dead_air_s=-inf is outside"),
    ({"dead_air_s": 0}, "dead_air_s=0.0 is outside"),
    ({"dead_air_s": "86400.5"}, "is outside (0, 86400]"),
    ({"dead_air_s": "1e400"}, "dead_air_s=inf is outside"),
    ({"min_attempts": "-1"}, "min_attempts=-1 is outside [1, 2^63-1]"),
    ({"min_attempts": 0}, "min_attempts=0 is outside"),
    ({"company_id": str(2**63)}, "company_id=9223372036854775808 is outside [0, 2^63-1]"),
    ({"company_id": "-5"}, "company_id=-5 is outside"),
    ({"ratio": "1.5"}, "ratio=1.5 is outside [0, 1]"),
    ({"ratio": yaml.safe_load(".nan")}, "ratio=nan is outside"),
    ({"period_start": "9999-12-31"}, "period_start='9999-12-31' is outside the years 1970-2199"),
    ({"period_start": "2025-02-30"}, "period_start='2025-02-30' is not a date"),
    ({"period_start": ""}, "period_start may not be empty"),
    ({"call_id": ""}, "call_id may not be empty"),
    ({"call_id": "call_\x00"}, "call_id holds a NUL character"),
])
def test_a_value_outside_its_range_or_kind_is_one_line(given, fragment):
    assert fragment in refused(given)


def test_values_inside_their_ranges_pass_and_yaml_dates_become_text():
    got = parameters.validate(DECLARED, {"dead_air_s": "86400", "min_attempts": "1", "company_id": str(2**63 - 1),
                                         "ratio": 1, "period_start": dt.date(2025, 10, 14), "reference_date": "",
                                         "by": ""})
    assert got == {"dead_air_s": 86400.0, "min_attempts": 1, "company_id": 2**63 - 1, "ratio": 1.0,
                   "period_start": "2025-10-14", "reference_date": "", "by": ""}


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.text(max_size=12)))
def test_any_number_is_inside_its_range_or_refused_in_one_line(value):
    for name in ("dead_air_s", "min_attempts", "company_id", "ratio"):
        try:
            got = parameters.validate(DECLARED, {name: value})[name]
        except ConfigError as exc:
            assert "\n" not in str(exc)
            continue
        param = next(p for p in DECLARED if p.name == name)
        assert got in parameters.numeric_range(name, param.type, param.help)


def test_a_default_outside_its_range_is_refused_where_it_is_declared():
    with pytest.raises(ConfigError, match=r"nb.ipynb: default of ratio=2.0 is outside \[0, 1\]"):
        parameters.parse_parameters("ratio: float = 2.0  # a share between 0 and 1", where="nb.ipynb")
    with pytest.raises(ConfigError, match="default of min_n=0 is outside"):
        parameters.parse_parameters("min_n: int = 0  # attempts needed")


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x01", b"", b'{"cells": 5}', b"[1, 2]",
                                     b'{"cells": [5], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'])
def test_a_file_that_is_not_a_notebook_is_input_format_error(tmp_path, content):
    path = tmp_path / "odd.ipynb"
    path.write_bytes(content)
    with pytest.raises(InputFormatError, match="odd.ipynb is not a readable notebook") as caught:
        parameters.read_parameters(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text, fragment", [
    ("{1: 2}\n", "has the key 1, not a parameter name"),
    ("? [a]\n: 1\n", "cannot read parameters file"),
    ("- a\n", "is not a mapping"),
    ("a: " + "[" * 3000 + "\n", "cannot read parameters file"),
])
def test_a_params_file_must_be_a_mapping_of_names(tmp_path, text, fragment):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
        parameters.load_params_file(path)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="cannot read parameters file"):
        parameters.load_params_file(path)
