"""Bad files are refused with one InputFormatError line (exit 2 through the CLI), never a traceback and
never a clean result: broken Retell objects, deep JSON, cut .gz logs, binary and non-UTF-8 files, a
file of one format given as another, and non-PHP code given to ``drift --code``.

The inputs are the real samples (../shared/data/askproai) and the format fixtures, changed in the
way a broken sender or a wrong argument changes them.
"""

from __future__ import annotations

import gzip  # parametrized archives use mtime=0: test ids must not change with the clock (xdist compares them)
import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from rca_toolkit import cli
from rca_toolkit.errors import InputFormatError
from rca_toolkit.runbooks.checks import log_errors
from rca_toolkit.runbooks.framework import Status, run_check
from rca_toolkit.sources.formats.laravel_log import read_laravel_log
from rca_toolkit.sources.formats.retell import load_call_object

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"
RETELL = "retell_call_a3d98bb4522f6f1e0bfac5964b1.json"
CALL_ID = "call_a3d98bb4522f6f1e0bfac5964b1"
HISTORY = "call_history_2025-10-24_184034.json"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("RCA_PROGRESS", "0")


def _rca(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)
    _out, err = capsys.readouterr()
    return code, err


def _refused(argv: list[str], capsys, *needles: str) -> str:
    """Exit 2 with exactly one stderr line, an ``error:`` naming every needle, no traceback."""
    code, err = _rca(argv, capsys)
    assert code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _retell(shared_data, **changes) -> dict:
    call = json.loads((shared_data / RETELL).read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is KeyError:
            del call[key]
        else:
            call[key] = value
    return call


BROKEN_CALLS = {
    "transcript_object_as_string": ({"transcript_object": "Agent: Guten Tag"}, "transcript_object is string"),
    "start_yesterday": ({"start_timestamp": "yesterday"}, "start_timestamp is string 'yesterday'"),
    "start_1e20": ({"start_timestamp": 1e20}, "outside the years 2000-2099"),
    "start_minus_1e20": ({"start_timestamp": -1e20}, "outside the years 2000-2099"),
    "start_in_seconds": ({"start_timestamp": 1761297670}, "looks like seconds"),
    "end_in_microseconds": ({"end_timestamp": 1761297706005000}, "looks like microseconds"),
    "end_before_start": ({"end_timestamp": 1761297670000}, "before start_timestamp"),
    "no_call_id": ({"call_id": KeyError}, "no call_id"),
    "call_id_number": ({"call_id": 12345}, "call_id is number 12345"),
    "call_id_null": ({"call_id": None}, "call_id is null"),
    "tool_entries_of_wrong_type": ({"transcript_with_tool_calls": [1, "x", None]}, "transcript_with_tool_calls[0] is number"),
    "tool_calls_as_string": ({"transcript_with_tool_calls": "none"}, "transcript_with_tool_calls is string"),
    "word_time_as_text": ({"transcript_object": [{"role": "agent", "content": "x", "words": [{"word": "x", "start": "0.1"}]}]},
                          "words[0].start is string"),
    "duration_negative": ({"duration_ms": -5}, "duration_ms is number -5"),
    "latency_as_list": ({"latency": [1, 2]}, "latency is a list"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CALLS))
def test_a_broken_retell_object_is_one_line_in_import_and_timeline(case, shared_data, tmp_path, capsys):
    changes, said = BROKEN_CALLS[case]
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(_retell(shared_data, **changes)), encoding="utf-8")
    scratch = f"sqlite:///{tmp_path / 'scratch.sqlite'}"
    _refused(["import", "retell", str(path), "--db", scratch], capsys, str(path), said)
    _refused(["timeline", CALL_ID, "--retell-json", str(path)], capsys, str(path), said)
    with sa.create_engine(scratch).connect() as conn:  # refused, so nothing was imported
        assert conn.execute(sa.text("SELECT COUNT(*) FROM calls")).scalar() == 0
    with pytest.raises(InputFormatError, match="is|no call_id"):  # also for the object itself (calls.raw)
        load_call_object(_retell(shared_data, **changes))


def test_webhook_envelopes_and_lists_name_the_broken_object(shared_data, tmp_path, capsys):
    good, bad = _retell(shared_data), _retell(shared_data, start_timestamp="yesterday")
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([{"event": "call_ended", "call": good}, {"event": "call_analyzed", "call": bad}]))
    _refused(["import", "retell", str(path), "--db", f"sqlite:///{tmp_path / 's.sqlite'}"], capsys,
             f"{path} object 2 of 2", "start_timestamp")


@pytest.mark.parametrize("content", [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000,
                                     b'{"call_id": "call_x", "transcript": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"])
def test_deeply_nested_json_is_refused_by_every_json_reader(content, tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_bytes(content)
    scratch = f"sqlite:///{tmp_path / 's.sqlite'}"
    for kind in ("retell", "calcom", "call-history"):
        _refused(["import", kind, str(path), "--db", scratch], capsys, str(path), "deeper than 100 levels")
    _refused(["timeline", CALL_ID, "--retell-json", str(path)], capsys, "deeper than 100 levels")


@pytest.mark.parametrize(("content", "said"), [
    (b'{"call_id": "call_\xff\xfe"}', "not UTF-8 text (byte 0xff"),
    (bytes(range(256)) * 40, "binary data (NUL bytes)"),
    (gzip.compress(b'{"call_id": "x"}', mtime=0), "gzip-compressed data"),
])
def test_binary_and_non_utf8_json_files_are_refused(content, said, tmp_path, capsys):
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    scratch = f"sqlite:///{tmp_path / 's.sqlite'}"
    for kind in ("retell", "calcom", "call-history"):
        _refused(["import", kind, str(path), "--db", scratch], capsys, str(path), said)


def test_each_importer_refuses_the_other_formats(shared_data, tmp_path, capsys):
    """A file of one format given as another says which format was expected and what the file looks like."""
    scratch = f"sqlite:///{tmp_path / 's.sqlite'}"
    retell, history, calcom = str(shared_data / RETELL), str(shared_data / HISTORY), str(FIXTURES / "calcom_webhooks.json")
    csv, monitor = str(shared_data / "call_history_2025-10-24_184034.csv"), str(shared_data / "error-monitor.log")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world", "n": 1}))
    for kind, path, said in [
        ("calcom", retell, ("not a Cal.com webhook", "it looks like a Retell call object")),
        ("calcom", history, ("not a Cal.com webhook", "it looks like a call-history export")),
        ("retell", calcom, ("not a Retell call object", "it looks like a Cal.com webhook")),
        ("retell", history, ("not a Retell call object", "call-history export")),
        ("call-history", retell, ("no calls[]", "it looks like a Retell call object")),
        ("laravel-log", retell, ("no Laravel log entry", "it looks like a Retell call object")),
        ("laravel-log", csv, ("no Laravel log entry", "it looks like CSV")),
        ("call-history", monitor, ("neither .json nor .csv",)),
        ("calcom", str(other), ("not a Cal.com webhook", "JSON object with the keys 'hello', 'n'")),
        ("retell", str(other), ("not a Retell call object", "'hello'")),
    ]:
        _refused(["import", kind, path, "--db", scratch], capsys, path, *said)
    engine = sa.create_engine(scratch)
    with engine.connect() as conn:
        for table in ("calls", "webhook_events", "retell_call_sessions", "laravel_log"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0, table
    engine.dispose()


def test_a_call_object_with_a_call_id_but_no_retell_fields_is_not_a_call(capsys, tmp_path):
    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"call_id": "call_" + "a" * 27, "name": "x", "uhrzeit": "16:00"}))
    _refused(["timeline", "call_" + "a" * 27, "--retell-json", str(path)], capsys, "none of a Retell call's fields")


# --------------------------------------------------------------------------- Laravel logs
def _log_bytes() -> bytes:
    return (FIXTURES / "laravel_sample.log").read_bytes()


@pytest.mark.parametrize(("name", "content", "said"), [
    ("cut.log.gz", gzip.compress(b"".join(b"[2025-10-20 10:00:%02d] production.ERROR: boom %d\n" % (i % 60, i)
                                          for i in range(3000)), mtime=0)[:2000], "cannot read log"),
    ("plain.log.gz", b"[2025-10-20 10:00:00] production.ERROR: boom\n", "is named .gz but is not gzip-compressed"),
    ("binary.log", bytes(range(256)) * 100, "binary data (NUL bytes)"),
    ("nul_inside.log", b"[2025-10-20 10:00:00] production.ERROR: boom\n\x00\x01\x02\n", "line 2 is binary data"),
    ("latin1.log", "Größe Überlauf\n".encode("latin-1") * 20, "no Laravel log entry"),
    ("export.log", b'{"metadata": {}, "calls": []}', "it looks like a call-history export"),
    ("sqlite.log", b"SQLite format 3\x00" + bytes(200), "an SQLite database"),
])
def test_bad_logs_are_refused_in_import_and_by_the_reader(name, content, said, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(content)
    _refused(["import", "laravel-log", str(path), "--db", f"sqlite:///{tmp_path / 's.sqlite'}"], capsys, name, said)
    with pytest.raises(InputFormatError, match=said.split(" (")[0].replace(".", r"\.")):
        read_laravel_log(path, progress=False)


def test_a_gzipped_log_reads_by_its_magic_bytes_and_counts_stray_bytes(tmp_path):
    rotated = tmp_path / "laravel.log.1"  # logrotate's compressed file without a .gz name
    rotated.write_bytes(gzip.compress(_log_bytes()))
    plain = tmp_path / "laravel.log"
    plain.write_bytes(_log_bytes())
    assert read_laravel_log(rotated, progress=False).equals(read_laravel_log(plain, progress=False))
    stray = tmp_path / "stray.log"
    stray.write_bytes(_log_bytes() + b"[2025-10-18 12:00:01] local.ERROR: x \xff\n")
    frame = read_laravel_log(stray, progress=False)
    assert frame.attrs["n_invalid_utf8_lines"] == 1 and frame["message"].iloc[-1] == "x \ufffd"


@pytest.mark.parametrize(("content", "said"), [
    (bytes(range(256)) * 100, "binary data (NUL bytes)"),
    (b'{"call_id": "call_x"}', "no Laravel log entry"),
    (gzip.compress(b"".join(b"[2025-10-20 10:00:00] production.ERROR: x%d\n" % i for i in range(3000)), mtime=0)[:2000],
     "cannot read log"),
])
def test_rb001_log_check_is_error_on_a_file_that_is_not_a_log(content, said, tmp_path):
    path = tmp_path / ("log.gz" if content[:2] == b"\x1f\x8b" else "laravel.log")
    path.write_bytes(content)
    result = run_check("Recent log errors", log_errors, str(path), "2025-10-01T00:00:00Z", "2025-11-01T00:00:00Z")
    assert result.status == Status.ERROR and said in result.summary and not result.internal, result.summary


# --------------------------------------------------------------------------- drift --code
@pytest.fixture
def empty_db(tmp_path) -> str:
    sqlite3.connect(tmp_path / "schema.sqlite").execute("CREATE TABLE calls (id INTEGER)").connection.commit()
    return f"sqlite:///{tmp_path / 'schema.sqlite'}"


@pytest.mark.parametrize(("name", "content", "said"), [
    ("call.json", b'{"call_id": "call_x", "call_status": "ended"}', "is not PHP source (no <?php tag): it looks like a Retell call object"),
    ("binary.bin", bytes(range(256)) * 10, "is not PHP source: it is binary data (NUL bytes)"),
    ("model.php", b'{"a": 1}', "is not PHP source (no <?php tag)"),
    ("model.php.gz", gzip.compress(b"<?php class A {}", mtime=0), "gzip-compressed data"),
    ("latin1.php", "<?php // Größe\n".encode("latin-1"), "not UTF-8 text"),
])
def test_drift_refuses_a_file_that_is_not_php(name, content, said, tmp_path, empty_db, capsys):
    path = tmp_path / name
    path.write_bytes(content)
    _refused(["drift", "--code", str(path), "--db", empty_db], capsys, str(path), said)


def test_drift_refuses_a_folder_without_php_code_and_scans_real_code(tmp_path, empty_db, capsys):
    views = tmp_path / "views"
    views.mkdir()
    (views / "page.blade.php").write_text("<div>{{ $name }}</div>\n")
    (views / "data.json").write_text("{}")
    _refused(["drift", "--code", str(views), "--db", empty_db], capsys, "no PHP code under", str(views))
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(["drift", "--code", str(empty), "--db", empty_db], capsys, "no PHP files under")
    (views / "Model.php").write_text("<?php\nclass Call extends Model { protected $guarded = []; }\n")
    (views / "junk.php").write_bytes(b"\x00\x01binary")
    code, err = _rca(["drift", "--code", str(views), "--db", empty_db, "--format", "json"], capsys)
    assert code == 0, err
