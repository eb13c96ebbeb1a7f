"""Error signatures: one failure, one key, whatever shape the text arrived in (P10, §5)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from rca_toolkit.rules.signatures import UNKNOWN_COLUMN, normalise, signature_of, signatures

SERVER_1054 = (
    "SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in 'field list' "
    "(Connection: mysql, SQL: insert into `appointments` (`company_id`, `created_by`, `starts_at`) "
    "values (1, retell_call_handler, 2025-10-14 10:00:00))"
)
DOCS_1054 = "SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in field list"
LOG_HEADER = re.compile(r"^Last error: \[(?P<ts>[^\]]+)\] (?P<env>[\w-]+)\.(?P<level>[A-Z]+): (?P<rest>.*)$")


def test_1054_variants_group_as_one_signature_with_the_column():
    server, docs = normalise(SERVER_1054), normalise(DOCS_1054)
    assert server.signature == docs.signature == "[1054] Unknown column 'created_by' in 'field list'"
    assert (server.sqlstate, server.errno, server.column, server.location) == ("42S22", 1054, "created_by", "field list")
    # Another phantom column is another signature: the column is what tells them apart.
    other = normalise(SERVER_1054.replace("created_by", "booking_source"))
    assert other.column == "booking_source" and other.signature != server.signature


def test_the_lenient_p10_regex_accepts_both_quotings():
    assert UNKNOWN_COLUMN.search("Unknown column 'price' in 'field list'").groups() == ("price", "field list")
    assert UNKNOWN_COLUMN.search("Unknown column 'price' in field list").groups() == ("price", "field list")
    assert UNKNOWN_COLUMN.search("Unknown column 'price' in 'where clause' (Connection: mysql").group(2) == "where clause"


def test_ids_and_values_are_masked_but_key_names_stay():
    a = "SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry 'call_ab45deadd7db66c4956d5243861' for key 'webhook_events_event_id_unique'"
    b = a.replace("call_ab45deadd7db66c4956d5243861", "call_4539054ee4892c6abce031bdf95")
    assert signature_of(a) == signature_of(b) == "[1062] Duplicate entry '?' for key 'webhook_events_event_id_unique'"
    assert signature_of("Booking 123 failed for 7f9c2a9e-1b2c-4d5e-8f90-123456789abc") == "Booking <n> failed for <uuid>"
    # HTTP status codes identify the failure and are kept.
    assert signature_of("Cal.com HTTP 409 for booking 88121") == "Cal.com HTTP 409 for booking <n>"


def test_json_context_is_dropped_and_none_stays_none():
    assert signature_of('Unknown function called {"function":"","params":[],"call_id":null}') == "Unknown function called"
    assert normalise(None) is None and normalise("   ") is None
    frame = signatures(pd.Series([DOCS_1054, None, SERVER_1054]))
    assert frame["signature"].isna().tolist() == [False, True, False]
    assert frame["errno"].tolist()[0] == 1054


def test_signatures_keep_the_index_and_match_normalise_row_by_row():
    messages = pd.Series([SERVER_1054, pd.NA, "Booking 12 failed", SERVER_1054, None, "   "], index=[7, 3, 9, 1, 4, 2],
                         dtype="string")
    frame = signatures(messages)
    assert frame.index.tolist() == [7, 3, 9, 1, 4, 2]
    for idx, message in messages.items():
        parsed = normalise(message) if isinstance(message, str) else None
        if parsed is None:
            assert pd.isna(frame.at[idx, "signature"]) and pd.isna(frame.at[idx, "errno"])
            assert not frame.at[idx, "truncated_context"]
        else:
            assert frame.at[idx, "signature"] == parsed.signature
            assert (pd.isna(frame.at[idx, "column"]) and parsed.column is None) or frame.at[idx, "column"] == parsed.column
    assert frame["errno"].dtype == "Int64" and frame["errno"].tolist()[:2] == [1054, pd.NA]
    assert signatures(pd.Series([], dtype="string")).empty


@pytest.mark.shared
def test_real_error_monitor_lines_group_connection_refused(shared_data):
    lines = (shared_data / "error-monitor.log").read_text(encoding="utf-8").splitlines()
    messages = [LOG_HEADER.match(line).group("rest") for line in lines if line.startswith("Last error: ")]
    assert len(messages) == 76
    frame = signatures(pd.Series(messages))
    counts = frame["signature"].value_counts()
    # Both shapes (JSON exception context cut at 200 chars, and the Laravel SQL tail) are one failure.
    assert counts["[2002] Connection refused"] == 48
    raw_shapes = {m.split(" {")[0].split(" (Connection")[0] for m in messages if "[2002]" in m}
    assert raw_shapes == {"SQLSTATE[HY000] [2002] Connection refused"}
    assert counts['There are no commands defined in the "horizon" namespace.'] == 17
    assert counts["[1045] Access denied for user '?'@'?' (using password: YES)"] == 1
    assert len(counts) == 11
    # The monitor truncates the JSON context; the parser says so instead of pretending it is whole.
    assert frame["truncated_context"].sum() == 71


# --------------------------------------------------------------------------- signature_keys: one parse per text shape
ID_A, ID_B = "call_" + "a1" * 13 + "f", "call_" + "0b" * 13 + "9"  # two real ids (27 hex), distinct
SHORT, LONG = "call_" + "c" * 20, "call_" + "d" * 40  # the mask's shortest and longest
TOO_LONG, UPPER = "call_" + "e" * 41, "call_" + "AB" * 14  # never masked: they stay as written
IDS = [ID_A, ID_B, SHORT, LONG, TOO_LONG, UPPER]
PIECES = [
    "Unknown column '{x}' in 'field list'", "Unknown column '{x}' in {y}", "Duplicate entry '{x}' for key '{y}'",
    "SQLSTATE[23000]: Integrity constraint violation: 1062 ", "[1054] ", "Table '{x}' doesn't exist",
    "Key column '{x}' doesn't exist", " (Connection: mysql, SQL: insert into t values ({x}))", ' {{"exception":"{x}',
    " at /var/www/{x}.php:12)", "HTTP 500 for {x}", "{x}@example.com", "demo_{x}", "test_{x}", "x{x}", "{x}x", "{x}-{y}",
    "'{x}' '{y}'", "in '{x}'", "column '{x}'", "{x}.{y}", " code: 42 ", "booking {x} failed after 3 tries", "{x}",
]


def _texts():
    from hypothesis import strategies as st

    piece = st.builds(lambda template, x, y: template.format(x=x, y=y), st.sampled_from(PIECES), st.sampled_from(IDS),
                      st.sampled_from(IDS + ["uniq", "field list", "appointments"]))
    return st.lists(piece, min_size=1, max_size=5).map("".join)


def test_texts_that_differ_only_in_their_call_ids_share_one_parse_and_keep_their_own_signature(monkeypatch):
    """At 1M calls each duplicate-entry error names its own call: ``signature_keys`` parses the shape once."""
    from rca_toolkit.rules import signatures as module

    texts = pd.Series([f"Duplicate entry 'call_{i:027x}' for key 'uniq'" for i in range(500)] + [None, ""], dtype="object")
    parsed = []
    real = module.signature_of
    monkeypatch.setattr(module, "signature_of", lambda text: parsed.append(text) or real(text))
    keys = module.signature_keys(texts)
    assert len(parsed) == 2  # the renumbered shape and the empty text
    assert keys.tolist()[:2] == ["Duplicate entry '?' for key 'uniq'"] * 2 and keys.isna().tolist()[-2:] == [True, True]
    assert str(keys.dtype) == "string"


def test_signature_keys_are_the_signatures_of_the_texts_themselves():
    """Hypothesis: whatever the call ids' places (quoted, an unknown column's name, a key, a tail, beside a word,
    repeated, too long to mask), the signature of the renumbered text is the text's own."""
    from hypothesis import given, settings

    from rca_toolkit.rules.signatures import call_ids_renumbered, signature_keys

    @settings(max_examples=400, deadline=None)
    @given(_texts())
    def check(text):
        assert signature_of(call_ids_renumbered(text)) == signature_of(text)
        both = pd.Series([text, text.replace(ID_A, ID_B), None], index=[5, 1, 2], dtype="object")
        assert signature_keys(both).tolist() == signatures(both)["signature"].tolist()

    check()


def test_renumbering_in_arrow_is_the_rule_text_by_text():
    """Hypothesis: :func:`renumbered` (RE2 in Arrow for ASCII texts naming one call id) gives what
    :func:`call_ids_renumbered` gives each text, whatever stands beside the ids: letters outside ASCII (where RE2's
    word boundary is not Python's), several ids, ids of every length the mask takes and the ones it does not."""
    from hypothesis import given, settings, strategies as st

    from rca_toolkit.rules.signatures import call_ids_renumbered, renumbered

    beside = st.sampled_from(["", "é", "ß", "日", "_", "-", " ", "x", "9", "'"])
    ids = st.sampled_from(IDS + ["call_" + "f" * 19, "call_" + "7" * 27 + "g", "call_" + "ab" * 15, "call_" + "0" * 27,
                                 "call_" + "0" * 30])  # the stand-ins themselves
    near_id = st.builds(lambda a, x, b: a + x + b, beside, ids, beside)
    text = st.one_of(_texts(), st.lists(st.one_of(near_id, st.sampled_from(PIECES[:3])), max_size=4).map(" ".join))

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.one_of(text, st.none()), max_size=6))
    def check(texts):
        want = [call_ids_renumbered(t) if isinstance(t, str) else None for t in texts]
        assert renumbered(texts).to_pylist() == want

    check()


def test_signatures_parsed_per_shape_are_each_texts_own():
    """Hypothesis: :func:`signatures` (one parse per text shape, its call ids renumbered) gives every field
    :func:`normalise` gives each text itself, wherever the ids stand: an unknown column, table or key named like a
    call (parsed text by text), quoted, in a tail, several of them; missing texts and numbers too."""
    from hypothesis import given, settings, strategies as st

    from rca_toolkit.rules.signatures import normalise

    cols = ["signature", "sqlstate", "errno", "column", "table", "location", "truncated_context"]

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.one_of(_texts(), st.none(), st.integers(0, 9)), min_size=1, max_size=6))
    def check(texts):
        got = signatures(pd.Series(texts, index=range(10, 10 + len(texts)), dtype="object"))
        assert got.index.tolist() == list(range(10, 10 + len(texts)))
        for (_, row), text in zip(got.iterrows(), texts):
            want = normalise(text) if isinstance(text, str) else None
            values = [None if pd.isna(row[c]) else row[c] for c in cols]
            assert values == ([getattr(want, c) for c in cols[:-1]] + [want.truncated_context] if want else [None] * 6 + [False])

    check()
