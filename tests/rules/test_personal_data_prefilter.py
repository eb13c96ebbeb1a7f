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
# (with digits that are not ASCII: Python's \d takes them, RE2's does not)
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(alphabet="0123456789+()-.,:; @aAnN_xéß\n٣０", max_size=8)),
                 max_size=8).map("".join)


# values a JSON text's strings take: scrubbed ("[PII]") and real names, padded, empty, and JSON inside a string
# (names_in decodes it)
VALUES = ["[PII]", "Max Muster", "Mein Name ist Jürgen Weiß", "Jürgen", "  Erika Musterfrau ", "", " ", "check_customer",
          "Hans", '{"name": "Hans Müller"}', ' [{"customer_name": "Anna"}]', "[1, 2]", "{not json", "[PII",
          "Herr Schmidt ruft an"]


def _json_texts():
    leaf = st.one_of(texts, st.sampled_from(VALUES), st.integers(-10**12, 10**12), st.none(), st.booleans())
    keys = st.sampled_from(["name", "customer_name", "email", "phone", "uid", "call_id", "startTime", "title", "note",
                            "attendees", "vorname", "kunde", "payload", "metadata", "max@example.com", "0151-23456789"])
    tree = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(keys, inner, max_size=4)), max_leaves=8)
    # escaped (\\u00fc) as PHP's json_encode writes, or not: a name said in an escaped text is found only decoded
    return st.builds(lambda v, ascii_only: json.dumps(v, ensure_ascii=ascii_only),
                     st.dictionaries(keys, tree, min_size=1, max_size=4), st.booleans())


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
def test_the_column_prefilters_match_every_text_the_rule_accepts(text):
    matched = pc.match_substring_regex(pa.array([text]), personal_data.MAY_HOLD_RE2)[0].as_py()
    assert matched or not personal_data.may_hold(text)
    findable = pc.match_substring_regex(pa.array([text]), personal_data.FINDABLE_RE2)[0].as_py()
    assert findable or not personal_data.findable(text)


def test_a_phone_number_in_other_digits_is_picked_and_masked():
    """Python's \\d is any decimal digit, RE2's only ASCII: the column prefilter missed these and stored them."""
    for text in ("Tel +٤٩ ٣٠ ١٢٣٤٥٦٧", "Tel (٠٣٠) ١٢٣٤٥٦٧", "Tel 0٣٠ ١٢٣٤٥٦٧"):
        assert masking.mask_arrow(pa.array([text])).to_pylist() == ["Tel [PHONE]"]


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


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(texts, _json_texts()))
def test_a_column_text_is_masked_exactly_as_the_whole_rule_masks_it(text):
    """The column path leaves some picked texts in Arrow without the rule (``_NEEDS_RULE_RE2``): never one the
    rule would change."""
    assert masking.mask_arrow(pa.array([text])).to_pylist() == [_whole_rule(text)]


def test_person_keys_are_masked_in_a_column_and_scrubbed_ones_left():
    named = json.dumps({"payload": {"attendees": [{"name": "Max Mustermann", "timeZone": "Europe/Berlin"}]}})
    listed = json.dumps({"customer_name": ["Erika Musterfrau"], "title": "Termin mit Erika"})
    scrubbed = json.dumps({"payload": {"attendees": [{"name": "[PII]", "timeZone": "Europe/Berlin"}]}})
    out = masking.mask_arrow(pa.array([named, listed, scrubbed])).to_pylist()
    assert "Mustermann" not in out[0] and "Erika" not in out[1] and out[2] == scrubbed


def test_a_name_said_in_a_json_string_is_masked_wherever_the_text_names_it():
    """Said after an escaped line break, the name is found only in the decoded string; its other mention, in
    another field, must be masked too."""
    text = json.dumps({"note": "Mein Name ist\nHans Weber", "title": "Termin Weber"})
    assert "Weber" not in masking.mask_stored_text(text).split('"title"')[1]
    assert masking.mask_stored_text(text) == _whole_rule(text)


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
