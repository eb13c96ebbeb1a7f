"""Reconciliation of the real export against the scrubbed Retell object, and against Cal.com."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rca_toolkit.errors import SchemaError
from rca_toolkit.sources.formats.calcom import read_calcom_webhooks
from rca_toolkit.sources.formats.exports import read_call_history
from rca_toolkit.sources.formats.retell import load_call_object
from rca_toolkit.analyses.bookings.reconcile import reconcile_calcom, reconcile_retell, retell_calls_frame

CALL = "call_a3d98bb4522f6f1e0bfac5964b1"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"


@pytest.fixture(scope="module")
def retell_call(shared_data):
    return load_call_object(shared_data / f"retell_{CALL}.json")


@pytest.mark.parametrize("ext", ["json", "csv"])
def test_export_vs_retell_object(shared_data, retell_call, ext):
    app = read_call_history(shared_data / f"call_history_2025-10-24_184034.{ext}")
    result = reconcile_retell(app, [retell_call])
    assert (result.n_app, result.n_provider, result.n_matched) == (167, 1, 1)
    rows = result.for_call(CALL).set_index("check")
    assert list(rows.index) == ["status", "duration_ms", "start_offset_s", "tool_call_count"]
    assert (rows.loc["status", "app_value"], rows.loc["status", "provider_value"]) == ("in_progress", "ended")
    assert rows.loc["duration_ms", "app_value"] is None and rows.loc["duration_ms", "provider_value"] == 35303
    app_start = pd.Timestamp(rows.loc["start_offset_s", "app_value"]).tz_convert("Europe/Berlin")
    provider_start = pd.Timestamp(rows.loc["start_offset_s", "provider_value"]).tz_convert("Europe/Berlin")
    assert app_start.strftime("%H:%M:%S") == "11:20:37"
    assert provider_start.strftime("%H:%M:%S.%f")[:-3] == "11:21:10.702"
    assert rows.loc["start_offset_s", "delta"] == pytest.approx(33.702)
    assert (rows.loc["tool_call_count", "app_value"], rows.loc["tool_call_count", "provider_value"]) == (0, 2)
    assert rows.loc["tool_call_count", "note"] == "2 of 2 failed"
    assert result.counts() == {"duration_ms": 1, "start_offset_s": 1, "status": 1, "tool_call_count": 1}
    assert "| call_a3d98bb4522f6f1e0bfac5964b1 | status | in_progress | ended |" in result.to_markdown()
    assert json.loads(result.to_json())["disagreements"][1]["provider_value"] == 35303
    assert "<table" in result._repr_html_()


def test_agreeing_call_and_provider_only_call(retell_call):
    provider = retell_calls_frame([retell_call])
    agreeing = pd.DataFrame({
        "call_id": [CALL], "call_status": ["ended"], "duration_ms": [35_303 + 1_500],
        "started_at": [retell_call.start - pd.Timedelta(seconds=2)], "function_call_count": [2],
    })
    assert reconcile_retell(agreeing, provider).disagreements.empty
    other = agreeing.assign(call_id="call_" + "0" * 27)
    result = reconcile_retell(other, provider)
    assert result.disagreements[["call_id", "check"]].values.tolist() == [[CALL, "missing_in_app"]]
    with pytest.raises(SchemaError):
        reconcile_retell(agreeing.drop(columns=["started_at"]), provider)


def test_appointments_vs_calcom_bookings():
    bookings = read_calcom_webhooks(FIXTURES / "calcom_webhooks.json")
    appointments = pd.DataFrame({
        "id": [1, 2, 3],
        "calcom_v2_booking_id": ["bk_7f3a9c", "bk_c0ffee", "bk_local_only"],
        "starts_at": pd.to_datetime(["2025-10-20 14:00", "2025-10-21 08:00", "2025-10-25 09:00"], utc=True),
        "status": ["confirmed", "confirmed", "confirmed"],
        "retell_call_id": ["call_ab45deadd7db66c4956d5243861", None, None],
    })
    result = reconcile_calcom(appointments, bookings)
    found = {(r.check, r.call_id, r.provider_value if isinstance(r.provider_value, str) else None)
             for r in result.disagreements.itertuples()}
    call = "call_ab45deadd7db66c4956d5243861"
    assert found == {
        # bk_7f3a9c was rescheduled to bk_7f3a9d: the app still holds the old one as confirmed ...
        ("status", call, "rescheduled to bk_7f3a9d"),
        # ... and never learned the new one (the call id follows the chain)
        ("orphaned_calcom", call, "bk_7f3a9d"),
        ("orphaned_calcom", "bk_bare01", "bk_bare01"),
        ("status", "bk_c0ffee", "cancelled"),  # cancelled at Cal.com, still confirmed locally
        ("orphaned_local", "bk_local_only", None),
    }
    orphan = result.disagreements.query("check == 'orphaned_calcom' and provider_value == 'bk_7f3a9d'").iloc[0]
    assert orphan["note"].endswith("(rescheduled from bk_7f3a9c, which the app holds)")
    # a superseded booking is never compared by start time; a live one is
    moved = appointments.assign(calcom_v2_booking_id=["bk_7f3a9c", "bk_c0ffee", "bk_bare01"],
                                starts_at=pd.to_datetime(["2025-10-20 14:30", "2025-10-21 08:00", "2025-10-23 10:30"],
                                                         utc=True))
    shifted = reconcile_calcom(moved, bookings, calcom_complete=False).disagreements
    rows = shifted[shifted["check"] == "start_time"]
    assert rows[["call_id", "delta"]].values.tolist() == [["bk_bare01", -1800.0]]
    assert "orphaned_local" not in set(shifted["check"])
    # the app that followed the reschedule (old cancelled, new booked) agrees with Cal.com
    followed = pd.DataFrame({"calcom_v2_booking_id": ["bk_7f3a9c", "bk_7f3a9d", "bk_c0ffee", "bk_bare01"],
                             "starts_at": pd.to_datetime(["2025-10-20 14:00", "2025-10-22 15:00", "2025-10-21 08:00",
                                                          "2025-10-23 10:00"], utc=True),
                             "status": ["cancelled", "confirmed", "cancelled", "confirmed"]})
    assert reconcile_calcom(followed, bookings).disagreements.empty


def test_demo_sessions_against_their_calls_rows(demo_db):
    """Inside the demo database: every stuck session disagrees with its calls row, nothing else does."""
    from rca_toolkit.sources import loaders
    from rca_toolkit.analyses.bookings.reconcile import reconcile_sessions_with_calls

    url, truth = demo_db
    frame = loaders.calls(url, include_test=True, as_of="2025-12-01T00:00:00+01:00")
    result = reconcile_sessions_with_calls(frame)
    stuck = set(truth["stuck_session_call_ids"])
    assert result.counts() == {"duration_ms": len(stuck), "status": len(stuck)}
    status = result.disagreements[result.disagreements["check"] == "status"]
    assert set(status["call_id"]) == stuck
    assert set(zip(status["app_value"], status["provider_value"])) == {("in_progress", "ended")}
    assert result.n_matched == truth["row_counts"]["calls"] < truth["row_counts"]["retell_call_sessions"]
