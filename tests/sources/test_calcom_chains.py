"""Cal.com booking chains and the personal data of stored deliveries (issue 22, items 3 and 4).

The deliveries below are built from the payload shapes in Cal.com's own webhook documentation,
calcom/cal.com ``docs/developing/guides/automation/webhooks.mdx`` (commit bad32a8a125e, version
2021-10-20 of the payload), changed only in their values:

- every delivery is ``{triggerEvent, createdAt, payload}``;
- ``BOOKING_RESCHEDULED``: ``payload.uid`` is the *new* booking ("new-booking-unique-id"), with
  ``rescheduleId``, ``rescheduleUid`` ("previous-booking-unique-id"), ``rescheduleStartTime`` and
  ``rescheduleEndTime`` naming the old one;
- ``BOOKING_CANCELLED``: ``status`` CANCELLED, ``cancellationReason``, ``requestReschedule``;
- ``BOOKING_NO_SHOW_UPDATED``: no ``uid``; ``{message, attendees: [{email, noShow}], bookingUid, bookingId}``;
- ``MEETING_ENDED``: the booking row sent flat (no ``payload``), with ``fromReschedule``,
  ``rescheduled``, ``cancelledBy``, ``rescheduledBy`` and the organizer as ``user``.

``cancelledBy``/``rescheduledBy`` carry the e-mail address of who did it; German phone numbers are
written the ways people type them (``0151 12345678``, ``+49 151 1234 5678``).
"""

from __future__ import annotations

import itertools
import json
import sqlite3

import pandas as pd
import pytest

from rca_toolkit.analyses.bookings.reconcile import reconcile_calcom
from rca_toolkit.sources import importer
from rca_toolkit.sources.formats.calcom import (
    latest_bookings,
    mask_calcom_body,
    parse_calcom_webhook,
    read_calcom_webhooks,
)

OLD, NEW, OTHER = "5vQFqxDFMjdgKGMijqtqRw", "qVyXscm1ryg2QoQ4K8uHLW", "bFJeNb2uX8ANpT3JL5EfXw"
CALL = "call_ab45deadd7db66c4956d5243861"
SECRETS = ("Hans Müller", "Müller", "hans.mueller@example.org", "Petra Schmidt", "Schmidt", "petra@salon.example",
           "0151 12345678", "+49 151 1234 5678", "15112345678", "Jana Weber", "jana@example.net")


def _person(name: str, email: str, **extra) -> dict:
    first, last = name.split(" ", 1)
    return {"email": email, "name": name, "firstName": first, "lastName": last, "timeZone": "Europe/Berlin",
            "language": {"locale": "de"}, "utcOffset": 60, **extra}


ORGANIZER = {"id": 1, "name": "Petra Schmidt", "email": "petra@salon.example", "username": "petra-schmidt",
             "timeZone": "Europe/Berlin", "language": {"locale": "de"}, "timeFormat": "h:mma", "utcOffset": 60}


def created(uid: str = OLD, at: str = "2025-11-03T09:00:00.000Z") -> dict:
    return {"triggerEvent": "BOOKING_CREATED", "createdAt": at, "payload": {
        "bookerUrl": "https://app.example.com", "title": "Herrenhaarschnitt between Petra Schmidt and Hans Müller",
        "startTime": "2025-11-10T10:00:00Z", "endTime": "2025-11-10T10:30:00Z", "type": "herrenhaarschnitt",
        "description": "", "additionalNotes": "Bitte unter 0151 12345678 zurückrufen", "eventTypeId": 123,
        "organizer": ORGANIZER,
        "attendees": [_person("Hans Müller", "hans.mueller@example.org", phoneNumber="+49 151 1234 5678")],
        "responses": {"name": {"label": "your_name", "value": "Hans Müller", "isHidden": False},
                      "email": {"label": "email_address", "value": "hans.mueller@example.org", "isHidden": False},
                      "attendeePhoneNumber": {"label": "phone_number", "value": "+49 151 1234 5678",
                                              "isHidden": False},
                      "notes": {"label": "additional_notes", "value": "Hans Müller, Rückruf 0151 12345678"}},
        "location": "integrations:video-provider", "uid": uid, "bookingId": 200,
        "metadata": {"retell_call_id": CALL}, "status": "ACCEPTED"}}


def rescheduled(at: str = "2025-11-04T12:00:00.000Z", status: str = "ACCEPTED", event: str = "BOOKING_RESCHEDULED") -> dict:
    body = created(NEW, at)
    body["triggerEvent"] = event
    body["payload"].update(startTime="2025-11-12T14:30:00Z", endTime="2025-11-12T15:00:00Z", bookingId=201,
                           rescheduleId=200, rescheduleUid=OLD, rescheduleStartTime="2025-11-10T10:00:00Z",
                           rescheduleEndTime="2025-11-10T10:30:00Z", status=status,
                           rescheduledBy="hans.mueller@example.org", metadata={})
    return body


def no_show(at: str = "2025-11-12T15:10:00.000Z", flag: bool = True) -> dict:
    return {"triggerEvent": "BOOKING_NO_SHOW_UPDATED", "createdAt": at, "payload": {
        "message": f"hans.mueller@example.org {'marked' if flag else 'unmarked'} as no-show",
        "attendees": [{"email": "hans.mueller@example.org", "noShow": flag}], "bookingUid": NEW, "bookingId": 201}}


def cancelled(at: str = "2025-11-05T08:00:00.000Z") -> dict:
    return {"triggerEvent": "BOOKING_CANCELLED", "createdAt": at, "payload": {
        "title": "Damenhaarschnitt: Petra Schmidt & Jana Weber", "startTime": "2025-11-11T08:00:00+00:00",
        "endTime": "2025-11-11T09:00:00+00:00", "organizer": ORGANIZER,
        "attendees": [_person("Jana Weber", "jana@example.net", phoneNumber=None)],
        "responses": {"name": {"label": "name", "value": "Jana Weber"}}, "uid": OTHER, "bookingId": 300,
        "cancellationReason": "Jana Weber ist krank, erreichbar unter 0151 12345678", "status": "CANCELLED",
        "cancelledBy": "jana@example.net", "requestReschedule": False}}


def meeting_ended() -> dict:
    """The new booking's row, sent flat as MEETING_ENDED (no envelope ``payload``)."""
    return {"triggerEvent": "MEETING_ENDED", "id": 201, "uid": NEW, "eventTypeId": 123,
            "title": "Herrenhaarschnitt between Petra Schmidt and Hans Müller", "startTime": "2025-11-12T14:30:00.000Z",
            "endTime": "2025-11-12T15:00:00.000Z", "createdAt": "2025-11-04T12:00:00.000Z", "status": "ACCEPTED",
            "rescheduled": None, "fromReschedule": OLD, "cancelledBy": None, "rescheduledBy": "hans.mueller@example.org",
            "userPrimaryEmail": "petra@salon.example",
            "user": {"email": "petra@salon.example", "name": "Petra Schmidt", "timeZone": "Europe/Berlin",
                     "username": "petra-schmidt"},
            "attendees": [{"id": 101, "email": "hans.mueller@example.org", "name": "Hans Müller",
                           "timeZone": "Europe/Berlin", "phoneNumber": "0151 12345678", "locale": "de",
                           "bookingId": 201, "noShow": False}]}


def _states(bodies) -> dict:
    latest = latest_bookings(read_calcom_webhooks(bodies)).set_index("uid")
    return {uid: (r["state"], r["status"], r["superseded_by"] if isinstance(r["superseded_by"], str) else None,
                  None if pd.isna(r["no_show"]) else bool(r["no_show"])) for uid, r in latest.iterrows()}


EXPECTED = {OLD: ("rescheduled", "CANCELLED", NEW, None), NEW: ("booked", "ACCEPTED", None, True),
            OTHER: ("cancelled", "CANCELLED", None, None)}


def test_the_documented_shapes_parse_into_one_chain():
    frame = read_calcom_webhooks([created(), rescheduled(), no_show(), cancelled(), meeting_ended()])
    assert frame["uid"].tolist() == [OLD, NEW, NEW, OTHER, NEW]  # the no-show attaches by bookingUid
    assert pd.isna(frame.loc[0, "rescheduled_from_uid"]) and frame.loc[1, "rescheduled_from_uid"] == OLD
    assert frame.loc[1, "rescheduled_from_start"] == pd.Timestamp("2025-11-10T10:00:00Z")
    assert frame.loc[4, "rescheduled_from_uid"] == OLD  # fromReschedule of the flat row
    assert frame["no_show"].tolist()[2] is True and frame.attrs["n_no_show_updates"] == 1
    assert frame.attrs["n_missing_uid"] == 0 and frame.attrs["n_other_events"] == 1  # MEETING_ENDED
    assert _states([created(), rescheduled(), no_show(), cancelled(), meeting_ended()]) == EXPECTED


def test_states_do_not_depend_on_delivery_order():
    bodies = [created(), rescheduled(), no_show(), cancelled()]
    for order in itertools.permutations(bodies):
        assert _states(list(order)) == EXPECTED
    # without createdAt (a hand-made dump) the file order decides only what it must: the later no-show wins
    bare = [{k: v for k, v in b.items() if k != "createdAt"} for b in (created(), rescheduled(), no_show(flag=True),
                                                                       no_show(flag=False))]
    assert _states(bare)[NEW][3] is False and _states(bare)[OLD][:3] == ("rescheduled", "CANCELLED", NEW)


def test_a_booking_known_only_from_its_reschedule_and_pending_reschedules():
    latest = latest_bookings(read_calcom_webhooks([rescheduled()])).set_index("uid")
    old = latest.loc[OLD]
    assert (old["state"], old["superseded_by"], old["n_deliveries"]) == ("rescheduled", NEW, 0)
    assert old["start"] == pd.Timestamp("2025-11-10T10:00:00Z")
    chain = latest_bookings(read_calcom_webhooks([created(), rescheduled()])).set_index("uid")
    assert chain.loc[NEW, "retell_call_id"] == CALL  # the new booking keeps the call that made the old one
    # a reschedule that still awaits the organizer's confirmation has not replaced anything yet
    waiting = _states([created(), rescheduled(status="PENDING", event="BOOKING_REQUESTED")])
    assert waiting[OLD][:3] == ("booked", "ACCEPTED", None) and waiting[NEW][0] == "pending"


def test_reconciliation_uses_the_latest_state_per_booking():
    bodies = read_calcom_webhooks([created(), rescheduled(), no_show(), cancelled()])
    app = pd.DataFrame({"calcom_v2_booking_id": [OLD, OTHER],
                        "starts_at": pd.to_datetime(["2025-11-10T10:00:00Z", "2025-11-11T08:00:00Z"], utc=True),
                        "status": ["confirmed", "cancelled"]})
    result = reconcile_calcom(app, bodies)
    rows = {(r.check, r.app_value if isinstance(r.app_value, str) else None, r.provider_value)
            for r in result.disagreements.itertuples()}
    assert rows == {("status", "confirmed", f"rescheduled to {NEW}"), ("orphaned_calcom", None, NEW)}
    assert set(result.disagreements["call_id"]) == {CALL}
    assert any(n.startswith("1 booking(s) marked no-show") and NEW in n for n in result.notes)


def test_masked_body_keeps_no_personal_data_in_any_field():
    for body in (created(), rescheduled(), no_show(), cancelled(), meeting_ended()):
        masked = mask_calcom_body(body)
        text = json.dumps(masked, ensure_ascii=False)
        for secret in SECRETS:
            assert secret not in text, (body.get("triggerEvent"), secret)
        assert parse_calcom_webhook(masked) == parse_calcom_webhook(body)  # ids, events, states and times kept
    rescheduled_by = mask_calcom_body(rescheduled())["payload"]["rescheduledBy"]
    cancelled_by = mask_calcom_body(cancelled())["payload"]["cancelledBy"]
    assert (rescheduled_by, cancelled_by) == ("[EMAIL]", "[EMAIL]")
    notes = mask_calcom_body(created())["payload"]["responses"]["notes"]["value"]
    assert notes == "[NAME] [NAME], Rückruf [PHONE]"
    assert mask_calcom_body(no_show())["payload"]["message"] == "[EMAIL] marked as no-show"
    reason = parse_calcom_webhook(cancelled())["cancellation_reason"]
    assert reason == "[NAME] [NAME] ist krank, erreichbar unter [PHONE]"
    assert parse_calcom_webhook(cancelled(), mask_pii=False)["cancellation_reason"].startswith("Jana Weber")


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("RCA_DATABASE_URL", f"sqlite:///{tmp_path / 'analysed.sqlite'}")
    return f"sqlite:///{tmp_path / 'scratch.sqlite'}"


def test_import_stores_no_show_under_its_booking_and_no_personal_data(scratch, tmp_path):
    path = tmp_path / "hooks.json"
    path.write_text(json.dumps([created(), rescheduled(), no_show(), cancelled(), meeting_ended()]), encoding="utf-8")
    engine = importer.open_scratch(scratch)
    try:
        assert importer.import_file(engine, "calcom", str(path))["rows"] == 5
    finally:
        engine.dispose()
    with sqlite3.connect(scratch.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT event_type, event_id, payload FROM webhook_events ORDER BY id").fetchall()
    ids = [event_id for _, event_id, _ in rows]
    assert not any(i.startswith("no-uid:") for i in ids)
    no_show_id = next(i for e, i, _ in rows if e == "BOOKING_NO_SHOW_UPDATED")
    assert no_show_id.startswith(f"{NEW}:BOOKING_NO_SHOW_UPDATED:")
    stored = "".join(payload for _, _, payload in rows)
    for secret in SECRETS:
        assert secret not in stored, secret
    # what was stored still reads back as the same chain
    assert _states([json.loads(p) for _, _, p in rows]) == EXPECTED
