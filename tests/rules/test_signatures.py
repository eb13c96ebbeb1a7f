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
