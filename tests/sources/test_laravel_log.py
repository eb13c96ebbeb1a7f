"""Laravel log lines and the error-monitor cron output (real file: ../shared error-monitor.log)."""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.sources.formats.laravel_log import (
    iter_laravel_log,
    parse_laravel_line,
    read_error_monitor,
    read_laravel_log,
    redact_log_text,
    split_context,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "formats" / "laravel_sample.log"


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return read_laravel_log(FIXTURE)


@pytest.fixture(scope="module")
def monitor(shared_data) -> pd.DataFrame:
    return read_error_monitor(shared_data / "error-monitor.log")


def test_every_entry_is_one_row_with_its_continuation(sample):
    assert sample["line_no"].tolist() == [1, 2, 11, 12, 13, 14, 15, 16]
    trace = sample.iloc[1]
    assert trace["n_lines"] == 9
    assert "[previous exception]" in trace["context"]["exception"]
    assert trace["continuation"].splitlines()[0] == "[stacktrace]"
    assert trace["exception_class"] == "Illuminate\\Database\\QueryException"
    assert (trace["sqlstate"], trace["errno"], trace["unknown_column"]) == ("42S22", 1054, "created_by")
    assert not trace["truncated"]


def test_envs_levels_and_emoji(sample):
    assert sample["env"].tolist() == [
        "production", "production", "testing", "local", "laravel", "saga-worker", "production", "production",
    ]
    assert sample["level"].iloc[4] == "EMERGENCY"
    assert sample["message"].iloc[0] == "📞 Call session started"
    assert sample["context"].iloc[0] == {"call_id": "call_ab45deadd7db66c4956d5243861"}


def test_times_are_utc_and_placeholders_never_crash(sample):
    assert sample["ts"].iloc[0] == pd.Timestamp("2025-10-18 10:09:30", tz="UTC")
    assert sample["ts_placeholder"].tolist() == [False, False, False, True, True, False, False, False]
    assert sample["ts"].iloc[3] is pd.NaT and sample["ts_raw"].iloc[3] == "timestamp"
    # 2025-10-26 02:30 happens twice in Berlin: resolved to CEST and flagged, never silently
    assert sample["ts_ambiguous"].tolist() == [False] * 5 + [True, False, False]
    assert sample["ts"].iloc[5] == pd.Timestamp("2025-10-26 00:30", tz="UTC")
    assert sample.attrs["n_placeholder_ts"] == 2 and sample.attrs["n_ambiguous_ts"] == 1


def test_invalid_context_stays_raw_and_literal_placeholders_stay_in_message(sample):
    assert sample["message"].iloc[2] == "Retry {attempt} of booking"
    assert sample["context"].iloc[2] == '{"service_id":...}'
    assert not sample["context_parsed"].iloc[2] and not sample["truncated"].iloc[2]
    assert sample["context"].iloc[3] == "{...}"


def test_unquoted_field_list_variant_and_duplicate_key_errno(sample):
    assert sample["unknown_column"].iloc[6] == "price"
    cut = sample.iloc[7]
    assert cut["truncated"] and (cut["sqlstate"], cut["errno"]) == ("23000", 1062)
    assert cut["exception_class"] == "Illuminate\\Database\\QueryException"


def test_gzip_and_file_objects_give_the_same_records(tmp_path, sample):
    packed = tmp_path / "laravel.log.gz"
    with FIXTURE.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    from_gz = read_laravel_log(packed, progress=True)
    pd.testing.assert_frame_equal(from_gz, sample)
    streamed = list(iter_laravel_log(io.BytesIO(FIXTURE.read_bytes())))
    assert [r["line_no"] for r in streamed] == sample["line_no"].tolist()


def test_lines_before_the_first_header_are_kept_as_orphans():
    text = b"#3 {main}\n\"} \n[2025-10-18 12:00:00] production.INFO: ok \n"
    records = list(iter_laravel_log(io.BytesIO(text)))
    assert [r["orphan"] for r in records] == [True, False]
    assert records[0]["n_lines"] == 2 and records[1]["message"] == "ok"


def test_level_filter_and_missing_file(tmp_path):
    only = read_laravel_log(FIXTURE, levels=["error", "critical"])
    assert only["level"].tolist() == ["ERROR", "ERROR", "CRITICAL"]
    with pytest.raises(NotFound):
        read_laravel_log(tmp_path / "absent.log")


def test_split_context_cases():
    assert split_context('msg {"a":1} []') == ("msg", {"a": 1}, True, False)
    assert split_context("SQLSTATE[HY000] [2002] Connection refused") == (
        "SQLSTATE[HY000] [2002] Connection refused", None, False, False)
    assert split_context("x (Connection: mysql, SQL: select * from `t` where")[3] is True
    assert parse_laravel_line("not a log line") is None


# ---- the real error-monitor.log -------------------------------------------------------


def test_error_monitor_blocks_and_truncation(monitor):
    assert len(monitor) == 76
    assert monitor["level"].eq("ERROR").all() and monitor["env"].eq("production").all()
    assert monitor["error_ts"].notna().all()
    assert int(monitor["truncated"].sum()) == 73
    complete = monitor[~monitor["truncated"]]
    assert complete["message"].eq("Health check failed for Web Server").all() and len(complete) == 3
    assert complete["context"].tolist() == [{"details": "Health endpoint returned 404"}] * 3
    # the cut is detected from the structure too, not only from the 200-character length
    structural = [parse_laravel_line(text)["truncated"] for text in monitor["last_error_raw"]]
    assert sum(structural) == 73


def test_error_monitor_sqlstate_and_errno(monitor):
    refused = monitor["message"].str.contains(r"\[2002\] Connection refused", regex=True)
    assert int(refused.sum()) == 48
    assert monitor["errno"].value_counts().to_dict() == {2002: 48, 1045: 1}
    assert monitor["sqlstate"].value_counts().to_dict() == {"HY000": 49}
    assert int((monitor["exception_class"] == "PDOException").sum()) == 40
    assert int((monitor["exception_class"] == "Symfony\\Component\\Console\\Exception\\NamespaceNotFoundException").sum()) == 17


def test_error_monitor_german_zoned_header(monitor):
    assert monitor["checked_at"].iloc[0] == pd.Timestamp("2025-09-23 20:15:31", tz="UTC")  # 22:15:31 CEST
    assert monitor["checked_at"].iloc[-1] == pd.Timestamp("2025-09-24 15:00:01", tz="UTC")
    assert not monitor["weekday_mismatch"].any()
    late = monitor["checked_at"].dt.tz_convert("Europe/Berlin").dt.strftime("%H:%M:%S")
    assert "06:46:07" in late.tolist()


def test_error_monitor_counter_is_cumulative_and_resets(monitor):
    counters = monitor["errors_counter"].tolist()
    assert counters[:9] == [1331, 1333, 1334, 1335, 1335, 1336, 1336, 1336, 11]
    assert counters[-1] == 1782
    assert monitor["error_delta"].iloc[0] is pd.NA
    assert monitor["counter_reset"].tolist().index(True) == 8 and int(monitor["counter_reset"].sum()) == 1
    assert monitor["error_delta"].iloc[8] == 11
    peak = monitor["error_delta"].idxmax()
    assert monitor["error_delta"].iloc[peak] == 271
    window = monitor["checked_at"].iloc[peak - 1:peak + 1].dt.tz_convert("Europe/Berlin").dt.strftime("%m-%d %H:%M")
    assert window.tolist() == ["09-24 09:15", "09-24 09:30"]


def test_redaction_of_session_ids_and_db_user(monitor):
    raw = monitor["last_error_raw"]
    denied = redact_log_text(raw[monitor["errno"] == 1045].iloc[0])
    assert "askproai_user" not in denied and "'[DB_USER]'@'localhost'" in denied
    sessions = raw[raw.str.contains("from `sessions` where", regex=False)]
    assert len(sessions) == 9
    for text in sessions:
        shown = redact_log_text(text)
        assert "`id` = [SESSION_ID]" in shown
        assert "pyyFxw0wB244FwvnNV0p9NxO6Pa6WXNBDGeSwrF9" not in shown


def test_error_monitor_rejects_other_files():
    with pytest.raises(InputFormatError):
        read_error_monitor(FIXTURE)


def test_streaming_reads_only_as_far_as_asked():
    class CountingLines:
        """A file-like line source that records how many lines were pulled."""

        def __init__(self, n):
            self.n, self.pulled = n, 0

        def __iter__(self):
            for i in range(self.n):
                self.pulled += 1
                yield f"[2025-10-18 12:00:{i % 60:02d}] production.INFO: line {i} \n".encode()

    source = CountingLines(100_000)
    records = iter_laravel_log(source)
    first, second = next(records), next(records)
    assert (first["message"], second["message"]) == ("line 0", "line 1")
    assert source.pulled == 3  # the third header closes the second record; nothing more is read


def test_bom_crlf_and_invalid_bytes_do_not_hide_records():
    data = "\ufeff[2025-10-18 12:00:00] production.INFO: hi {\"a\":1}\r\n".encode() + b"[2025-10-18 12:00:01] local.ERROR: x \xff\r\n"
    records = list(iter_laravel_log(io.BytesIO(data)))
    assert [(r["env"], r["message"], r["orphan"]) for r in records] == [("production", "hi", False), ("local", "x \ufffd", False)]
    assert records[0]["context"] == {"a": 1}
    assert read_laravel_log(io.BytesIO(b"")).empty
