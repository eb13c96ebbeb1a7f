"""``rca import`` into scratch databases (SQLite and a real MariaDB) and ``rca quality``."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from rca_toolkit import cli
from rca_toolkit.sources import importer, loaders
from rca_toolkit.errors import ConfigError
from rca_toolkit.sources.formats.exports import read_call_history
from rca_toolkit.sources.formats.retell import load_call_object
from rca_toolkit.analyses.bookings.reconcile import reconcile_retell, reconcile_sessions_with_calls

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"
HISTORY = "call_history_2025-10-24_184034.json"
RETELL = "retell_call_a3d98bb4522f6f1e0bfac5964b1.json"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("RCA_DATABASE_URL", f"sqlite:///{tmp_path / 'analysed.sqlite'}")
    monkeypatch.setenv("RCA_PROGRESS", "0")
    return f"sqlite:///{tmp_path / 'scratch.sqlite'}"


def _rca(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_import_every_kind_and_read_back(scratch, shared_data, capsys):
    code, out, _ = _rca(["import", "call-history", str(shared_data / HISTORY), "--db", scratch], capsys)
    assert code == 0 and "imported 167 rows into retell_call_sessions" in out
    assert _rca(["import", "retell", str(shared_data / RETELL), "--db", scratch], capsys)[0] == 0
    code, out, _ = _rca(["import", "laravel-log", str(shared_data / "error-monitor.log"),
                         str(FIXTURES / "laravel_sample.log"), "--db", scratch, "--format", "json"], capsys)
    imports = json.loads(out)["imports"]
    assert [(i["kind"], i["rows"], i["truncated"]) for i in imports] == [("error-monitor", 76, 73), ("laravel", 8, 1)]
    assert _rca(["import", "calcom", str(FIXTURES / "calcom_webhooks.json"), "--db", scratch], capsys)[0] == 0
    # importing twice replaces instead of duplicating
    assert _rca(["import", "call-history", str(shared_data / HISTORY), "--db", scratch], capsys)[0] == 0
    assert _rca(["import", "calcom", str(FIXTURES / "calcom_webhooks.json"), "--db", scratch], capsys)[0] == 0

    path = scratch.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("retell_call_sessions", "calls", "webhook_events", "laravel_log", "rca_scratch")}
        payloads = "".join(r[0] for r in conn.execute("SELECT payload FROM webhook_events"))
        notes = dict(conn.execute("SELECT event_id, notes FROM webhook_events WHERE notes IS NOT NULL").fetchall())
        raw = conn.execute("SELECT raw FROM calls").fetchone()[0]
        cut = conn.execute("SELECT COUNT(*) FROM laravel_log WHERE truncated AND source_kind = 'error-monitor'").fetchone()[0]
        states = conn.execute("SELECT COUNT(*) FROM laravel_log WHERE sqlstate = 'HY000'").fetchone()[0]
    assert counts == {"retell_call_sessions": 167, "calls": 1, "webhook_events": 6, "laravel_log": 84, "rca_scratch": 1}
    assert (cut, states) == (73, 49)
    assert "Max Muster" not in payloads and "example.invalid" not in payloads  # masked by default
    assert notes["bk_bare01"] == "body has no createdAt: created_at is the import time"
    second = [k for k in notes if k.startswith("bk_c0ffee:BOOKING_CANCELLED:")]
    assert len(second) == 1 and "P11" in notes[second[0]]  # UNIQUE event_id: the cancellation gets its own key
    assert json.loads(raw)["call_id"] == "call_a3d98bb4522f6f1e0bfac5964b1"

    sessions = loaders.calls(scratch, include_test=True)
    exported = read_call_history(shared_data / HISTORY)
    assert len(sessions) == 167
    assert sorted(sessions["call_id"]) == sorted(exported["call_id"])
    merged = sessions.merge(exported, on="call_id", suffixes=("_db", "_file"))
    assert (merged["started_at_db"] == merged["started_at_file"]).all()
    row = sessions.set_index("call_id").loc["call_a3d98bb4522f6f1e0bfac5964b1"]
    assert (row["retell_duration_ms"], row["retell_call_status"], row["stuck"]) == (35303, "ended", True)
    # the stored raw object reloads and reconciles against the stored session, as from the files
    rows = reconcile_retell(sessions, [load_call_object(raw)]).for_call("call_a3d98bb4522f6f1e0bfac5964b1")
    assert rows["check"].tolist() == ["status", "duration_ms", "start_offset_s", "tool_call_count"]
    inside = reconcile_sessions_with_calls(sessions)
    assert inside.n_matched == 1
    assert inside.disagreements["check"].tolist() == ["status", "duration_ms", "start_offset_s"]
    assert inside.disagreements["delta"].iloc[2] == pytest.approx(33.702)

    code, out, _ = _rca(["quality", "--db", scratch, "--format", "json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["findings"]["stuck"]["count"] == 40 and report["findings"]["test_ids"]["count"] == 9
    assert report["near_duplicates"][0]["call_id"] == "call_de1656496a133e2cbcd886664988"


def test_quality_of_a_file(shared_data, capsys):
    code, out, _ = _rca(["quality", str(shared_data / HISTORY.replace(".json", ".csv"))], capsys)
    assert code == 0
    assert "stuck in_progress sessions              40" in out
    assert "call_ab45deadd7db66c4956d5243861 144.500 s" in out
    code, out, _ = _rca(["quality", str(shared_data / HISTORY), "--format", "markdown"], capsys)
    assert "| test/demo/temp/malformed ids | 9 |" in out


def test_refusals_are_one_line_exit_2(scratch, shared_data, tmp_path, capsys):
    history = str(shared_data / HISTORY)
    code, _, err = _rca(["import", "call-history", history, "--db", "mysql+pymysql://root@127.0.0.1:3306/app"], capsys)
    assert code == 2 and "only SQLite scratch files" in err and len(err.strip().splitlines()) == 1
    code, _, err = _rca(["import", "call-history", history, "--writable-scratch",
                         "--db", "mysql+pymysql://root@127.0.0.1:3306/askproai"], capsys)
    assert code == 2 and "not a scratch database name" in err
    analysed = os.environ["RCA_DATABASE_URL"]
    code, _, err = _rca(["import", "call-history", history, "--db", analysed], capsys)
    assert code == 2 and "configured analysed database" in err
    occupied = tmp_path / "occupied.sqlite"
    with sqlite3.connect(occupied) as conn:
        conn.execute("CREATE TABLE appointments (id INTEGER)")
    code, _, err = _rca(["import", "call-history", history, "--db", f"sqlite:///{occupied}"], capsys)
    assert code == 2 and "not an rca scratch database" in err
    code, _, err = _rca(["import", "call-history", str(tmp_path / "none.json"), "--db", scratch], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = _rca(["quality", history, "--db", scratch], capsys)
    assert code == 2 and "either FILE or --db" in err


@pytest.mark.mariadb
def test_mariadb_scratch_needs_the_mark_and_reads_back(mariadb_url, shared_data, capsys, monkeypatch):
    admin_url = mariadb_url.rsplit("/", 1)[0]
    name = f"rca_scratch_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    target = f"{admin_url}/{name}"
    monkeypatch.setenv("RCA_DATABASE_URL", mariadb_url)  # the "analysed" one: never written
    admin = sa.create_engine(admin_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        code, _, err = _rca(["import", "call-history", str(shared_data / HISTORY), "--db", target], capsys)
        assert code == 2 and "--writable-scratch" in err
        code, _, err = _rca(["import", "call-history", str(shared_data / HISTORY), "--db", mariadb_url,
                             "--writable-scratch"], capsys)
        assert code == 2 and "not a scratch database name" in err
        for kind, path in (("call-history", shared_data / HISTORY), ("retell", shared_data / RETELL),
                           ("laravel-log", shared_data / "error-monitor.log"), ("calcom", FIXTURES / "calcom_webhooks.json")):
            code, _, err = _rca(["import", kind, str(path), "--db", target, "--writable-scratch"], capsys)
            assert code == 0, err
        sessions = loaders.calls(target, include_test=True)
        exported = read_call_history(shared_data / HISTORY)
        assert len(sessions) == 167 and sessions.attrs["storage_zone"] == "UTC"
        merged = sessions.merge(exported, on="call_id", suffixes=("_db", "_file"))
        assert len(merged) == 167 and (merged["started_at_db"] == merged["started_at_file"]).all()
        with sa.create_engine(target).connect() as conn:
            conn.execute(sa.text("SET time_zone = '+00:00'"))
            assert conn.execute(sa.text("SELECT COUNT(*) FROM laravel_log WHERE truncated = 1")).scalar() == 73
            assert conn.execute(sa.text("SELECT COUNT(*) FROM webhook_events WHERE provider = 'calcom'")).scalar() == 6
            start = conn.execute(sa.text("SELECT start_timestamp FROM calls")).scalar()
        assert pd.Timestamp(start) == pd.Timestamp("2025-10-24 09:21:10")  # UTC; TIMESTAMP(0) drops the .702
        code, out, _ = _rca(["quality", "--db", target, "--format", "json"], capsys)
        assert json.loads(out)["findings"]["stuck"]["count"] == 40
        with pytest.raises(ConfigError, match="not an rca scratch database"):
            with sa.create_engine(target).begin() as conn:
                conn.execute(sa.text("DROP TABLE rca_scratch"))
            importer.open_scratch(target, writable_scratch=True)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def test_retell_list_files_and_masking(scratch, shared_data, tmp_path, capsys):
    call = json.loads((shared_data / RETELL).read_text())
    other = dict(call, call_id="call_" + "b" * 27)
    dump = tmp_path / "webhooks.json"
    dump.write_text(json.dumps([call, {"event": "call_ended", "call": other}]))
    code, out, _ = _rca(["import", "retell", str(dump), "--db", scratch], capsys)
    assert code == 0 and "(2 calls, 4 tool calls)" in out
    with sqlite3.connect(scratch.removeprefix("sqlite:///")) as conn:
        raws = [json.loads(r[0]) for r in conn.execute("SELECT raw FROM calls ORDER BY retell_call_id")]
        cents = [r[0] for r in conn.execute("SELECT cost_cents FROM calls")]
    assert [r["call_id"] for r in raws] == ["call_a3d98bb4522f6f1e0bfac5964b1", "call_" + "b" * 27]
    assert cents == [5, 5]  # 4.56 cents rounded, as syncCallToDatabase does
    stored = json.dumps(raws)
    assert "recordings.invalid" not in stored and "Max Muster" not in stored  # masked by default
    assert _rca(["import", "retell", str(dump), "--db", scratch, "--keep-pii"], capsys)[0] == 0
    with sqlite3.connect(scratch.removeprefix("sqlite:///")) as conn:
        kept = conn.execute("SELECT raw FROM calls LIMIT 1").fetchone()[0]
    assert "recordings.invalid" in kept
