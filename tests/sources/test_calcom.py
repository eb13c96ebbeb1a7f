"""Cal.com webhook deliveries (hand-written fixture in the documented shapes, P19)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.sources.formats.calcom import (
    latest_bookings,
    normalise_event,
    parse_calcom_webhook,
    read_calcom_webhooks,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "formats" / "calcom_webhooks.json"


@pytest.fixture(scope="module")
def masked():
    return read_calcom_webhooks(FIXTURE)


def test_event_names_are_normalised(masked):
    assert masked["event_type"].tolist() == [
        "BOOKING_CREATED", "BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED", "BOOKING_CREATED", "PING"]
    assert masked["trigger_event_raw"].tolist()[:2] == ["BOOKING_CREATED", "BOOKING.CREATED"]
    assert normalise_event("booking.cancelled") == "BOOKING_CANCELLED" and normalise_event(None) is None
    assert masked.attrs["n_other_events"] == 1


def test_fields_and_times(masked):
    first = masked.iloc[0]
    assert (first["uid"], first["booking_id"], first["event_type_id"]) == ("bk_7f3a9c", 4101, 2563193)
    assert first["start"] == pd.Timestamp("2025-10-20 14:00", tz="UTC")
    assert first["end"] - first["start"] == pd.Timedelta(minutes=30)
    assert first["retell_call_id"] == "call_ab45deadd7db66c4956d5243861"
    # milliseconds (the app's validator format, P19) and lower-case status
    assert masked.iloc[1]["start"] == pd.Timestamp("2025-10-21 08:00", tz="UTC")
    assert masked.iloc[1]["status"] == "ACCEPTED" and masked.iloc[1]["attendee_count"] == 2
    assert masked.iloc[2]["rescheduled_from_uid"] == "bk_7f3a9c"
    assert masked.iloc[3]["cancellation_reason"] == "krank"


def test_event_and_whole_body_fallbacks(masked):
    assert masked.iloc[2]["trigger_event_raw"] == "BOOKING_RESCHEDULED"  # from "event"
    bare = masked.iloc[4]
    assert bare["payload_fallback"] and bare["uid"] == "bk_bare01"
    assert bare["time_assumed_utc"] and bare["start"] == pd.Timestamp("2025-10-23 10:00", tz="UTC")
    assert masked.attrs["n_payload_fallback"] == 1 and masked.attrs["n_missing_uid"] == 1


def test_personal_data_masked_unless_asked(masked):
    text = masked.to_json(date_format="iso")
    for secret in ("Max Muster", "max@example.invalid", "+490000000001", "Erika", "salon@example.invalid", "Hülle"):
        assert secret not in text
    # the organizer ("Salon") is a person the payload names, like the attendee (issue 22, item 4)
    assert masked.iloc[0]["title"] == "Herrenhaarschnitt zwischen [NAME] und [NAME] [NAME]"  # each word of a name
    assert masked.iloc[0]["attendee_phones"] == ["[PHONE]"]
    clear = read_calcom_webhooks(FIXTURE, mask_pii=False)
    assert clear.iloc[0]["attendee_names"] == ["Max Muster"]
    assert clear.iloc[0]["attendee_phones"] == ["+490000000001"]
    assert clear.iloc[4]["attendee_emails"] == ["bare@example.invalid"]


def test_latest_state_per_uid(masked):
    latest = latest_bookings(masked).set_index("uid")
    assert latest.loc["bk_c0ffee", "status"] == "CANCELLED"
    assert len(latest) == 4


def test_json_lines_dicts_and_errors(tmp_path):
    bodies = json.loads(FIXTURE.read_text())
    lines = tmp_path / "hooks.jsonl"
    lines.write_text("\n".join(json.dumps(b) for b in bodies[:3]) + "\n")
    assert read_calcom_webhooks(lines)["uid"].tolist() == ["bk_7f3a9c", "bk_c0ffee", "bk_7f3a9d"]
    assert parse_calcom_webhook(bodies[0])["uid"] == "bk_7f3a9c"
    assert read_calcom_webhooks(bodies[0])["uid"].tolist() == ["bk_7f3a9c"]
    with pytest.raises(NotFound):
        read_calcom_webhooks(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json\n")
    with pytest.raises(InputFormatError):
        read_calcom_webhooks(tmp_path / "bad.json")
    (tmp_path / "badtime.json").write_text(json.dumps({"triggerEvent": "BOOKING_CREATED", "payload": {"uid": "u", "startTime": "soon"}}))
    with pytest.raises(InputFormatError, match="body 1"):
        read_calcom_webhooks(tmp_path / "badtime.json")


def test_masked_bodies_keep_the_cal_com_shape():
    from rca_toolkit.sources.formats.calcom import mask_calcom_body

    bodies = json.loads(FIXTURE.read_text())
    for body in bodies:
        masked = mask_calcom_body(body)
        text = json.dumps(masked, ensure_ascii=False)
        for secret in ("Max Muster", "example.invalid", "+490000000001", "Erika", "Hülle"):
            assert secret not in text
        assert parse_calcom_webhook(masked) == parse_calcom_webhook(body)
    first = mask_calcom_body(bodies[0])["payload"]
    assert first["attendees"][0] == {"name": "[NAME]", "email": "[EMAIL]", "timeZone": "Europe/Berlin"}
    assert first["responses"]["phone"] == {"value": "[PHONE]"}
    assert bodies[0]["payload"]["attendees"][0]["name"] == "Max Muster"  # the input is not modified
