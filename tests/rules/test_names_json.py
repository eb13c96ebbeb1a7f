import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import jsonutil
from rca_toolkit.rules.jsonutil import decode_json
from rca_toolkit.rules.call_ids import id_kind, is_real_call_id, real_call_ids
from rca_toolkit.rules.functions import family_series, function_family


@pytest.mark.parametrize(
    "name,family",
    [("check_availability_v17", "check_availability"), ("book_appointment_v17", "book_appointment"),
     ("start_booking", "book_appointment"), ("get_current_context", "initialize_call"),
     ("initialize_call", "initialize_call"), ("collect_appointment_data", "collect_appointment"),
     ("check_availability_v2", "check_availability"), (None, None)],
)
def test_function_family(name, family):
    assert function_family(name) == family


def test_family_series_matches_scalar():
    names = pd.Series(["book_appointment_v17", "start_booking", "check_customer"])
    assert list(family_series(names)) == ["book_appointment", "book_appointment", "check_customer"]
    # folded once per distinct name: the index is kept, missing names stay missing, empty stays empty
    mixed = pd.Series([" start_booking ", None, "book_appointment_v17", "start_booking"], index=[7, 3, 5, 1])
    folded = family_series(mixed)
    assert folded.index.tolist() == [7, 3, 5, 1]
    assert [function_family(n) for n in mixed] == [None if pd.isna(v) else v for v in folded]
    assert family_series(pd.Series([], dtype="string")).tolist() == []


def test_real_call_ids_match_the_scalar_rule():
    ids = pd.Series(["call_ab45deadd7db66c4956d5243861", "test_1", pd.NA, "call_ab45deadd7db66c4956d5243861", ""],
                    index=[4, 3, 2, 1, 0], dtype="string")
    assert real_call_ids(ids).tolist() == [True, False, False, True, False]
    assert real_call_ids(ids).index.tolist() == [4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    "call_id,kind",
    [("call_ab45deadd7db66c4956d5243861", "retell"), ("test_fix_verification_001", "test"),
     ("demo_call_1761249581", "demo"), ("temp_1761122080_9e0002da", "temp"),
     ("call_de1656496a133e2cbcd886664988", "malformed"), ("", "malformed"), ("1", "malformed")],
)
def test_id_kind(call_id, kind):
    assert id_kind(call_id) == kind
    assert is_real_call_id(call_id) == (kind == "retell")


def test_decode_json_variants():
    assert decode_json(None) == (None, False, False)
    assert decode_json('{"a": 1}') == ({"a": 1}, False, False)
    assert decode_json('"{\\"retell_call_id\\": \\"call_x\\"}"') == ({"retell_call_id": "call_x"}, True, False)
    assert decode_json("not json") == ("not json", False, True)
    assert decode_json({"already": "dict"}) == ({"already": "dict"}, False, False)


def test_json_default_renders_numpy_pandas_and_sets():
    import json

    import numpy as np

    from rca_toolkit.rules.jsonutil import json_default

    text = json.dumps([np.int64(3), np.float32("nan"), pd.Timestamp("2025-10-18T10:00Z"), {2, 1}, np.array([1, 2]),
                       np.bool_(True), pd.NA, pd.NaT], default=json_default)
    assert text == '[3, null, "2025-10-18T10:00:00+00:00", [1, 2], [1, 2], true, null, null]'


def test_per_distinct_calls_once_per_value_and_keeps_row_order():
    from rca_toolkit.distinct import per_distinct

    calls = []
    values = pd.Series(['{"a": 1}', None, '{"a": 1}', "[1, 2]"], index=[9, 8, 7, 6])
    out = per_distinct(values, lambda v: calls.append(v) or decode_json(v)[0], missing="none")
    assert calls == ['{"a": 1}', "[1, 2]"]
    assert list(out) == [{"a": 1}, "none", {"a": 1}, [1, 2]]
    assert out[0] is out[2]  # equal values share one result


@given(st.lists(st.sampled_from(["book_appointment_v17", "start_booking", " Book_Appointment ", "", None]), max_size=30),
       st.sampled_from(["object", "string", "category", "arrow str"]))
def test_per_distinct_gives_the_same_rows_whatever_the_column_dtype(names, dtype):
    """A categorical column is mapped through its codes (unused categories too), texts (in Arrow: the store's reads)
    factorized as they are: the rows must not notice."""
    from rca_toolkit.distinct import per_distinct

    arrow_str = pd.StringDtype("pyarrow", na_value=np.nan)
    column = pd.Series(names, dtype=object).astype(arrow_str if dtype == "arrow str" else dtype)
    if dtype == "category":
        column = column.cat.add_categories(["never_used"])
    want = [None if n is None else function_family(n) for n in names]
    assert list(per_distinct(column, function_family)) == want


def test_per_object_calls_once_per_object_by_identity():
    from rca_toolkit.distinct import per_object

    shared, twin = {"frame": "A::b"}, {"frame": "A::b"}  # equal, but two objects: two calls
    calls = []
    values = pd.Series([shared, None, shared, twin, [1, 2], None], index=[5, 4, 3, 2, 1, 0])
    out = per_object(values, lambda v: calls.append(v) or (v.get("frame") if isinstance(v, dict) else v))
    assert list(out) == ["A::b", None, "A::b", "A::b", [1, 2], None]
    assert len(calls) == 4  # shared, None, twin and the list: one call each


def test_blob_uids_pairs_output_and_details_row_by_row():
    from rca_toolkit.analyses.bookings.outcomes import blob_uids

    booked, empty, failed = {"booking": {"uid": "u1"}}, {}, {"calcom_uid": "u2"}
    outputs = pd.Series([booked, empty, empty, None, booked])
    details = pd.Series([failed, failed, None, None, None])
    assert list(blob_uids(outputs, details)) == ["u1", "u2", None, None, "u1"]  # the output's uid comes first
    assert list(blob_uids(outputs.iloc[:0], details.iloc[:0])) == []


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.text()
    | st.integers(min_value=-(2 ** 70), max_value=2 ** 70) | st.integers(min_value=-(2 ** 63), max_value=2 ** 64),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)


def _as_text(value, ascii_only: bool, pad: str) -> str:
    return pad + json.dumps(value, ensure_ascii=ascii_only) + pad


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.builds(_as_text, _JSON_VALUES, st.booleans(), st.sampled_from(["", " ", "\n\t", "\ufeff", "\x00"])),
                 st.text(alphabet='{}[]",:0123456789.eE+-tfnaNIruls \\ud8\u00e9', max_size=30), st.text(max_size=30)))
@example('{"a": 1, "a": 2}')
@example("123456789012345678901234567890")
@example('"\\ud800"')
@example("[1e400, NaN, -Infinity]")
def test_fast_json_decodes_what_json_does(text):
    """The orjson fast path is json.loads: the same object (types and all) or the same refusal."""
    def outcome(loads):
        try:
            return "ok", repr(loads(text))
        except (ValueError, RecursionError):
            return "refused", None

    assert outcome(jsonutil.loads) == outcome(json.loads)


def _double_encoded(value) -> str:
    return json.dumps(json.dumps(value))


_COLUMN_VALUES = st.one_of(
    st.builds(_as_text, _JSON_VALUES, st.booleans(), st.sampled_from(["", " ", "\ufeff"])),
    st.builds(_double_encoded, _JSON_VALUES),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(0, 120)),  # around MAX_NESTING brackets
    st.builds(lambda n: '{"a":' * n + "1" + "}" * n, st.integers(95, 105)),
    st.text(alphabet='{}[]",:0123456789.eE+-tfnaNIruls \\ud8\u00e9', max_size=40),
    st.none(), st.just(float("nan")), st.binary(max_size=20), st.integers())


@settings(max_examples=300, deadline=None)
@given(st.lists(_COLUMN_VALUES, max_size=8))
@example(['{"retell_call_id": "call_x", "n": 1234567890123456789012}', '"{\\"a\\": 1}"', None])
@example(["[" * 101 + "]" * 101, "[" * 100 + "]" * 100, b'{"a": 1}', "\ud800"])
def test_map_decoded_is_decode_json_per_value(values):
    """The column decoder's fast path gives, value for value, what decode_json gives (objects and all)."""
    column = pd.Series(values, dtype="object")
    expected = [repr(decode_json(v)[0]) for v in values]
    assert list(jsonutil.map_decoded(column, repr)) == expected
    assert list(jsonutil.map_decoded(column, repr, batch=3)) == expected  # checked in batches, as a long column is
