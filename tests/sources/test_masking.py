"""Masking stored imports: names only as whole words, ids and times never (review of masking.mask_text)."""

from __future__ import annotations

import json

import pandas as pd

from rca_toolkit.sources.formats import masking
from rca_toolkit.sources.formats.calcom import mask_calcom_body, parse_calcom_webhook
from rca_toolkit.sources.formats.exports import mask_personal_data
from rca_toolkit.sources.formats.laravel_log import mask_log_frame, read_laravel_log


def test_a_log_context_name_masks_no_part_of_a_word_so_error_signatures_survive(tmp_path):
    context = '{"first_name":"Max","last_name":"Col","user_id":"Max-Col-7"}'
    path = tmp_path / "laravel.log"
    path.write_text(
        "[2025-10-18 12:11:02] production.ERROR: Maximum execution time of 30 seconds exceeded " + context + " \n"
        "[2025-10-18 12:11:03] production.ERROR: SQLSTATE[42S22]: Column not found: 1054 for Max Col "
        + context + " \n", encoding="utf-8")
    masked = mask_log_frame(read_laravel_log(path))
    assert masked["message"].tolist() == [
        "Maximum execution time of 30 seconds exceeded",
        "SQLSTATE[42S22]: Column not found: 1054 for [NAME] [NAME]"]
    assert masked["context"].iloc[0] == {"first_name": "[NAME]", "last_name": "[NAME]", "user_id": "Max-Col-7"}


def test_a_cal_com_attendee_name_leaves_uids_and_times_whole():
    body = {"triggerEvent": "BOOKING_RESCHEDULED", "createdAt": "2025-10-20T09:00:00.000Z",
            "payload": {"uid": "8FwJoxUMnqWt", "rescheduleUid": "Max-8Fw", "bookingId": 41,
                        "startTime": "2025-10-21T08:00:00Z", "endTime": "2025-10-21T08:30:00Z",
                        "title": "Beratung zwischen Salon und Jo Max", "status": "ACCEPTED",
                        "attendees": [{"name": "Jo Max", "email": "jo@example.org", "timeZone": "Europe/Berlin"}],
                        "metadata": {"bookingUid": "bk-Max", "note": "Rückruf für Jo Max, Maxi-Set"}}}
    masked = mask_calcom_body(body)["payload"]
    assert (masked["uid"], masked["rescheduleUid"], masked["metadata"]["bookingUid"]) == \
        ("8FwJoxUMnqWt", "Max-8Fw", "bk-Max")
    assert (masked["startTime"], masked["endTime"]) == ("2025-10-21T08:00:00Z", "2025-10-21T08:30:00Z")
    assert masked["title"] == "Beratung zwischen Salon und [NAME] [NAME]"
    assert masked["metadata"]["note"] == "Rückruf für [NAME] [NAME], Maxi-Set"
    assert parse_calcom_webhook(mask_calcom_body(body)) == parse_calcom_webhook(body)


def test_mask_value_keeps_the_strings_of_id_and_time_keys_only():
    value = {"id": "Muste", "call_id": "bk-Must", "eventTypeId": "Must", "createdAt": "Muster 1",
             "started_at": "Muster", "note": "bk-Must", "ids": ["x-Muster"], "valid": "Muster"}
    assert masking.mask_value(value, ["Max Muster"]) == {
        "id": "Muste", "call_id": "bk-Must", "eventTypeId": "Must", "createdAt": "Muster 1",
        "started_at": "Muster", "note": "bk-[NAME]", "ids": ["x-[NAME]"], "valid": "[NAME]"}


def test_export_functions_keep_their_ids_and_mask_names_as_words():
    frame = pd.DataFrame({"call_id": ["call_1"], "functions": [[{
        "name": "book", "arguments": {"customer_name": "Col Max", "booking_uid": "ColMax-Col"},
        "result": "Column booked for Col Max"}]]})
    function = mask_personal_data(frame)["functions"].iloc[0][0]
    assert function["arguments"] == {"customer_name": "[NAME] [NAME]", "booking_uid": "ColMax-Col"}
    assert function["result"] == "Column booked for [NAME] [NAME]"
    assert "Col Max" not in json.dumps(function)
