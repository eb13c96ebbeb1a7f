"""The store's masking shortcuts must never let personal data through.

``personal_data.may_hold`` says "nothing to mask" without masking; ``MAY_HOLD_RE2`` (the vectorised
prefilter over a whole column) must match every text ``may_hold`` accepts; the phone patterns were
rewritten with their look-behinds after the first character, and must match exactly where the
originals did; ``masking.mask_stored_text`` must equal the whole rule on every text.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import personal_data
from rca_toolkit.sources.formats import masking

ORIGINAL_PHONE_START = re.compile(r"(?<![\w+(])(?<!\d[.,:-])(?:\+\d|\(\+?\d|0\d)")
ORIGINAL_E164 = re.compile(r"(?<![\w+])\+\d{8,15}(?!\d)")

# pieces that real stored texts are made of: phone numbers in their forms, addresses, said and saluted
# names, person keys, timestamps, ids, SQL errors, separators and the characters the patterns look at
PIECES = ["+49 30 1234567", "030 1234567", "(030) 123 45 67", "0151-23456789", "+4915123456789", "00:02:07.52",
          "2025-10-07T06:00:00.000Z", "max.mustermann@example.com", "a@b.de", "Mein Name ist Hans Müller",
          "my name is Anna Schmidt", "Herr Müller", "Frau Özdemir", "Mr. Smith", '"customer_name": "Max Muster"',
          '"name": "check_customer"', '"kunde": "Erika"', "call_dd5af78c639d59d99e055c894ad",
          "SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry", "\\u00df", "\\u0040", " ", ",", ":",
          "-", ".", "(", "+", "0", "7", "Name", "KUNDE", "ß", "\n", "\x00"]
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(alphabet="0123456789+()-.,:; @aAnN_xéß\n", max_size=8)),
                 max_size=8).map("".join)


def _json_texts():
    leaf = st.one_of(texts, st.integers(-10**12, 10**12), st.none(), st.booleans())
    keys = st.sampled_from(["name", "customer_name", "email", "phone", "uid", "call_id", "startTime", "title", "note",
                            "attendees", "vorname", "kunde", "payload", "metadata"])
    tree = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(keys, inner, max_size=4)), max_leaves=8)
    return st.dictionaries(keys, tree, min_size=1, max_size=4).map(lambda v: json.dumps(v, ensure_ascii=False))


def _whole_rule(text: str) -> str:
    """What masking a stored text means without any shortcut: every finding and every name it names."""
    try:
        names = masking.names_of(json.loads(text))
    except ValueError:
        names = masking.names_of(text)
    return masking.mask_text(text, names)


@settings(max_examples=400, deadline=None)
@given(text=texts)
def test_the_rewritten_phone_patterns_match_where_the_originals_did(text):
    assert [m.span() for m in personal_data.PHONE_START.finditer(text)] == \
        [m.span() for m in ORIGINAL_PHONE_START.finditer(text)]
    assert [m.span() for m in personal_data.E164.finditer(text)] == [m.span() for m in ORIGINAL_E164.finditer(text)]


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(texts, _json_texts()))
def test_a_text_may_hold_clears_is_what_the_whole_rule_leaves_unchanged(text):
    if not personal_data.may_hold(text):
        assert _whole_rule(text) == text
        assert personal_data.find(text) == set()


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(texts, _json_texts()))
def test_the_column_prefilter_matches_every_text_may_hold_accepts(text):
    matched = pc.match_substring_regex(pa.array([text]), personal_data.MAY_HOLD_RE2)[0].as_py()
    assert matched or not personal_data.may_hold(text)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(texts, _json_texts()))
def test_the_stored_text_is_masked_exactly_as_the_whole_rule_masks_it(text):
    assert masking.mask_stored_text(text) == _whole_rule(text)


def test_known_texts_are_masked_and_ids_times_and_sql_errors_pass_untouched():
    payload = json.dumps({"triggerEvent": "BOOKING_CREATED", "createdAt": "2025-09-22T06:10:49.270Z",
                          "payload": {"uid": "wuMFuOmDXSFj4VUaJdrbu8", "startTime": "2025-09-27T06:00:00.000Z",
                                      "attendees": [{"name": "Max Mustermann", "email": "max@example.com",
                                                     "phoneNumber": "+49 151 23456789"}],
                                      "title": "Termin mit Max Mustermann"}})
    masked = masking.mask_stored_text(payload)
    assert "Mustermann" not in masked and "max@example.com" not in masked and "23456789" not in masked
    assert "wuMFuOmDXSFj4VUaJdrbu8" in masked and "2025-09-27T06:00:00.000Z" in masked
    for untouched in ("SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry "
                      "'call_dd5af78c639d59d99e055c894ad' for key 'webhook_events_event_id_unique'",
                      '{"event":"call_started","call":{"call_id":"call_f4f3c94eff7c00e85a2a183f18d",'
                      '"start_timestamp":1758520929758}}'):
        assert not personal_data.may_hold(untouched)
        assert masking.mask_stored_text(untouched) == untouched


@settings(max_examples=200, deadline=None)
@given(column=st.lists(st.one_of(st.none(), texts, _json_texts()), max_size=12))
def test_an_arrow_column_is_masked_as_the_pandas_column_is(column):
    """The store masks what connectorx reads (Arrow) with ``mask_arrow``, SQLite's rows (pandas) with
    ``mask_column``: the same texts, NULLs and order come out of both, each text as the whole rule masks it."""
    import pandas as pd

    arrow = masking.mask_arrow(pa.chunked_array([pa.array(column[:3], type=pa.string()), pa.array(column[3:], type=pa.string())]))
    frame = masking.mask_column(pd.Series(column, dtype="object"))
    assert arrow.to_pylist() == [None if v is None else v for v in frame.tolist()]
    assert arrow.to_pylist() == [None if v is None else _whole_rule(v) for v in column]
