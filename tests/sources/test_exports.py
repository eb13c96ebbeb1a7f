"""Call-history exports: the real JSON and CSV of ../shared load to the same 167 sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.sources.formats.exports import export_functions, read_call_history

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"
STEM = "call_history_2025-10-24_184034"


@pytest.fixture(scope="module")
def from_json(shared_data):
    return read_call_history(shared_data / f"{STEM}.json")


@pytest.fixture(scope="module")
def from_csv(shared_data):
    return read_call_history(shared_data / f"{STEM}.csv")


def test_json_and_csv_are_the_same_167_sessions(from_json, from_csv):
    assert len(from_json) == len(from_csv) == 167 == from_json.attrs["declared_total"]
    assert from_json["call_id"].tolist() == from_csv["call_id"].tolist()
    assert from_json["call_id"].is_unique
    # +02:00 in the JSON, naive Berlin wall time in the CSV: the same UTC instants
    assert from_json["started_at"].tolist() == from_csv["started_at"].tolist()
    assert from_json["started_at"].min() == pd.Timestamp("2025-10-18 10:09:27", tz="UTC")
    for col in ("call_status", "disconnection_reason", "agent_version", "function_call_count", "error_count"):
        left = from_json[col].astype(object).where(from_json[col].notna(), None).tolist()
        right = from_csv[col].astype(object).where(from_csv[col].notna(), None).tolist()
        assert left == right, col
    assert from_json.attrs["generated_at"] == from_csv.attrs["generated_at"] == "2025-10-24 16:40:34+00:00"


def test_value_distributions_match_the_readme(from_json):
    assert from_json["call_status"].value_counts().to_dict() == {"ended": 118, "in_progress": 40, "completed": 8, "inbound": 1}
    assert int(from_json["duration_ms"].notna().sum()) == 125
    assert (int(from_json["duration_ms"].min()), int(from_json["duration_ms"].max())) == (3219, 628738)
    assert int(from_json["agent_version"].isna().sum()) == 7
    assert from_json["agent_version"].dtype == "Int64" and from_json["duration_ms"].dtype == "Int64"
    assert int(from_json["is_test"].sum()) == 9
    assert from_json["id_kind"].value_counts().to_dict() == {"retell": 158, "test": 6, "demo": 1, "temp": 1, "malformed": 1}


def test_csv_durations_are_approximate_and_say_so(from_json, from_csv):
    assert from_csv.attrs["duration_precision_ms"] == 100 and from_json.attrs["duration_precision_ms"] == 1
    ref = from_csv.set_index("call_id").loc["call_ab45deadd7db66c4956d5243861"]
    assert ref["duration_ms"] == 144500
    assert from_json.set_index("call_id").loc["call_ab45deadd7db66c4956d5243861", "duration_ms"] == 144481
    gap = (from_json["duration_ms"] - from_csv["duration_ms"]).abs()
    assert int(gap.max()) <= 50 and int(gap.max()) > 0
    assert from_csv["functions"].isna().all()  # unknown in the CSV, not empty


def test_functions_of_the_json_export(from_json):
    functions = export_functions(from_json)
    assert len(functions) == 9
    assert functions["family"].value_counts().to_dict() == {
        "initialize_call": 6, "check_customer": 1, "check_availability": 1, "book_appointment": 1}
    assert sorted(functions["duration_ms"].tolist()) == [800, 1000, 1000, 1000, 1000, 1000, 1011, 1500, 2100]


def test_csv_wall_times_in_dst_edges_are_flagged():
    frame = read_call_history(FIXTURES / "call_history_small.csv")
    rows = frame.set_index("call_id")
    assert rows.loc["call_4539054ee4892c6abce031bdf95", "started_at_ambiguous"]
    assert rows.loc["test_123", "started_at_ambiguous"]
    assert rows.loc["call_331523b6c42f67e17669297bc5c", "started_at_nonexistent"]
    assert rows.loc["call_4539054ee4892c6abce031bdf95", "started_at"] == pd.Timestamp("2025-10-26 00:15", tz="UTC")
    assert pd.isna(rows.loc["test_123", "duration_ms"]) and rows.loc["call_331523b6c42f67e17669297bc5c", "duration_ms"] == 60500
    assert frame.attrs["generated_at"] is None


def test_bad_inputs_are_one_clear_error(tmp_path):
    with pytest.raises(NotFound):
        read_call_history(tmp_path / "absent.json")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(InputFormatError, match="neither"):
        read_call_history(tmp_path / "x.txt")
    (tmp_path / "bad.json").write_text('{"calls": [{"id": 1}]}')
    with pytest.raises(InputFormatError, match="call_id"):
        read_call_history(tmp_path / "bad.json")
    (tmp_path / "bad.csv").write_text('"Call ID",Status\nx,ended\n')
    with pytest.raises(InputFormatError, match="lacks columns"):
        read_call_history(tmp_path / "bad.csv")


def test_json_times_without_offset_are_wall_time_and_flagged(tmp_path):
    rows = [{"call_id": "call_" + "a" * 27, "started_at": "2025-10-26 02:30:00", "call_status": "ended"},
            {"call_id": "call_" + "b" * 27, "started_at": "2025-10-26T02:30:00+01:00", "call_status": "ended"}]
    (tmp_path / "naive.json").write_text(json.dumps({"calls": rows}))
    frame = read_call_history(tmp_path / "naive.json")
    assert frame["started_at"].tolist() == [pd.Timestamp("2025-10-26 00:30", tz="UTC"), pd.Timestamp("2025-10-26 01:30", tz="UTC")]
    assert frame["started_at_ambiguous"].tolist() == [True, False]
    assert frame.attrs["n_naive_times"] == 1
    assert frame["functions"].tolist() == [[], []] and frame["duration_ms"].isna().all()


def test_import_stores_exports_without_personal_data(shared_data, tmp_path, monkeypatch):
    """The real export (no personal data: stored unchanged) and a variant whose traced functions carry
    what callers said (issue 22, item 4: ``rca import call-history`` masks like the Retell and Cal.com imports)."""
    import sqlite3

    from rca_toolkit.sources import importer
    from rca_toolkit.sources.formats.exports import mask_personal_data

    real = read_call_history(shared_data / f"{STEM}.json")
    masked = mask_personal_data(real)
    pd.testing.assert_frame_equal(masked.drop(columns=["functions"]), real.drop(columns=["functions"]))
    assert masked["functions"].tolist() == real["functions"].tolist()

    document = json.loads((shared_data / f"{STEM}.json").read_text(encoding="utf-8"))
    document["calls"][0]["functions"] = [{"name": "check_customer", "status": "success", "duration_ms": 800,
                                          "arguments": {"customer_name": "Hans Müller", "phone": "0151 12345678",
                                                        "email": "hans@example.org"},
                                          "result": "Kunde Hans Müller unter +49 151 1234 5678 gefunden"}]
    variant = tmp_path / f"{STEM}.json"
    variant.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("RCA_DATABASE_URL", f"sqlite:///{tmp_path / 'analysed.sqlite'}")
    engine = importer.open_scratch(f"sqlite:///{tmp_path / 'scratch.sqlite'}")
    try:
        assert importer.import_file(engine, "call-history", str(variant))["rows"] == 167
    finally:
        engine.dispose()
    with sqlite3.connect(tmp_path / "scratch.sqlite") as conn:
        stored = json.dumps(conn.execute("SELECT * FROM retell_call_sessions").fetchall(), ensure_ascii=False)
        meta = json.loads(conn.execute("SELECT metadata FROM retell_call_sessions WHERE call_id = ?",
                                       (document["calls"][0]["call_id"],)).fetchone()[0])
    for secret in ("Hans", "Müller", "0151 12345678", "+49 151 1234 5678", "hans@example.org"):
        assert secret not in stored, secret
    function = meta["export_functions"][0]
    assert (function["name"], function["duration_ms"]) == ("check_customer", 800)
    assert function["result"] == "Kunde [NAME] [NAME] unter [PHONE] gefunden"
