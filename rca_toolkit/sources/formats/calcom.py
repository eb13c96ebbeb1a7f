"""Cal.com webhook deliveries -> a bookings frame (one row per delivery).

The app reads ``triggerEvent`` (falling back to ``event``) and ``payload`` (falling back to the
whole body) and upserts ``appointments`` on ``calcom_v2_booking_id = payload.uid`` (data-contract
§6.4). Cal.com sends ``BOOKING_CREATED`` while the app validator expected ``BOOKING.CREATED``
(P19), so event names are normalised (``.`` -> ``_``, upper case). Times are UTC ISO strings,
with or without milliseconds; a time without a zone is read as UTC and flagged.

Attendee names, e-mails and phone numbers are personal data: masked unless ``mask_pii=False``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules.call_ids import RETELL_CALL_ID

COLUMNS = [
    "uid", "booking_id", "event_type", "trigger_event_raw", "event_type_id", "title", "start", "end",
    "time_assumed_utc", "status", "attendee_count", "attendee_names", "attendee_emails", "attendee_phones",
    "organizer_email", "rescheduled_from_uid", "cancellation_reason", "created_at", "payload_fallback",
    "retell_call_id",
]
NAME_MASK, EMAIL_MASK, PHONE_MASK = "[NAME]", "[EMAIL]", "[PHONE]"
_ZONED = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def normalise_event(name: str | None) -> str | None:
    """``BOOKING.CREATED`` / ``booking_created`` / ``BOOKING_CREATED`` -> ``BOOKING_CREATED``."""
    if not name:
        return None
    return re.sub(r"[.\s-]+", "_", str(name).strip()).upper()


def _utc(value) -> tuple[pd.Timestamp | None, bool]:
    if value in (None, ""):
        return None, False
    if isinstance(value, (int, float)):  # ms epoch, as some integrations send
        return pd.Timestamp(int(value), unit="ms", tz="UTC"), False
    text = str(value).strip()
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise InputFormatError(f"Cal.com time {text!r} is not ISO 8601", hint="expected e.g. 2025-10-20T14:00:00Z") from None
    if ts.tzinfo is None:
        return ts.tz_localize("UTC"), True
    return ts.tz_convert("UTC"), False


def _response_value(responses: dict, *keys: str):
    for key in keys:
        value = responses.get(key)
        if isinstance(value, dict):
            value = value.get("value")
        if value not in (None, "", [], {}):
            return value
    return None


def parse_calcom_webhook(body: dict, *, mask_pii: bool = True) -> dict:
    """One delivery (envelope or bare payload) -> one bookings row."""
    if not isinstance(body, dict):
        raise InputFormatError("a Cal.com webhook body must be a JSON object", hint="give one delivery per object")
    raw_event = body.get("triggerEvent") or body.get("event") or body.get("type")
    payload = body.get("payload")
    fallback = not isinstance(payload, dict)
    if fallback:
        payload = body
    attendees = [a for a in payload.get("attendees") or [] if isinstance(a, dict)]
    responses = payload.get("responses") if isinstance(payload.get("responses"), dict) else {}
    names = [a.get("name") for a in attendees if a.get("name")] or [v for v in [_response_value(responses, "name")] if v]
    emails = [a.get("email") for a in attendees if a.get("email")] or [v for v in [_response_value(responses, "email")] if v]
    phones = [p for p in [a.get("phoneNumber") for a in attendees] if p]
    phone = _response_value(responses, "phone", "attendeePhoneNumber", "phoneNumber")
    phones = phones or ([str(phone)] if phone else [])
    start, start_naive = _utc(payload.get("startTime"))
    end, end_naive = _utc(payload.get("endTime"))
    created, _ = _utc(body.get("createdAt"))
    organizer = payload.get("organizer") if isinstance(payload.get("organizer"), dict) else {}
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    call_id = metadata.get("retell_call_id") or metadata.get("call_id")
    if not call_id:
        found = RETELL_CALL_ID.search(json.dumps(responses, ensure_ascii=False) + str(payload.get("description") or ""))
        call_id = found.group(0) if found else None
    booking_id = payload.get("bookingId", payload.get("id"))
    return {
        "uid": payload.get("uid"),
        "booking_id": booking_id,
        "event_type": normalise_event(raw_event),
        "trigger_event_raw": raw_event,
        "event_type_id": payload.get("eventTypeId"),
        "title": payload.get("title") if not mask_pii else _mask_names_in(payload.get("title"), names),
        "start": start,
        "end": end,
        "time_assumed_utc": start_naive or end_naive,
        "status": str(payload["status"]).upper() if payload.get("status") else None,
        "attendee_count": len(attendees) if attendees else len(names),
        "attendee_names": [NAME_MASK] * len(names) if mask_pii else names,
        "attendee_emails": [EMAIL_MASK] * len(emails) if mask_pii else emails,
        "attendee_phones": [PHONE_MASK] * len(phones) if mask_pii else phones,
        "organizer_email": (EMAIL_MASK if mask_pii else organizer.get("email")) if organizer.get("email") else None,
        "rescheduled_from_uid": payload.get("rescheduleUid") or payload.get("rescheduledFromUid") or payload.get("fromReschedule"),
        "cancellation_reason": payload.get("cancellationReason"),
        "created_at": created,
        "payload_fallback": fallback,
        "retell_call_id": call_id,
    }


def _mask_names_in(text, names: list[str]):
    """Booking titles read "Herrenhaarschnitt zwischen Salon und Max Muster": mask the names."""
    if not isinstance(text, str):
        return text
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, NAME_MASK)
    return text


def read_bodies(path: Path) -> list[dict]:
    """The JSON bodies of a Cal.com webhook file: one object, a list, or one object per line."""
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        try:  # one delivery per line (a webhook log)
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"{path} is neither JSON nor JSON lines: {exc}",
                                   hint="give a webhook body, a list of bodies, or one body per line") from None
    return document if isinstance(document, list) else [document]


def read_calcom_webhooks(sources, *, mask_pii: bool = True) -> pd.DataFrame:
    """Read webhook bodies from files (one body, a list, or JSON lines) or from dicts."""
    if isinstance(sources, (str, Path, dict)):
        sources = [sources]
    rows = []
    for source in sources:
        if isinstance(source, dict):
            rows.append(parse_calcom_webhook(source, mask_pii=mask_pii))
            continue
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"Cal.com payload file {path} does not exist", hint="check the path")
        for number, body in enumerate(read_bodies(path), start=1):
            try:
                rows.append(parse_calcom_webhook(body, mask_pii=mask_pii))
            except InputFormatError as exc:
                raise InputFormatError(f"{path} body {number}: {exc.message}", hint=exc.hint) from None
    frame = pd.DataFrame.from_records(rows, columns=COLUMNS)
    for col in ("start", "end", "created_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    for col in ("booking_id", "event_type_id", "attendee_count"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    frame["uid"] = frame["uid"].astype("string")
    unknown = ~frame["event_type"].isin(["BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED"])
    frame.attrs.update(mask_pii=mask_pii, n_deliveries=len(frame), n_missing_uid=int(frame["uid"].isna().sum()),
                       n_other_events=int(unknown.sum()), n_payload_fallback=int(frame["payload_fallback"].sum()),
                       n_time_assumed_utc=int(frame["time_assumed_utc"].sum()))
    return frame


def latest_bookings(frame: pd.DataFrame) -> pd.DataFrame:
    """State per uid after all deliveries: the last event wins (cancel after create -> cancelled)."""
    ordered = frame.dropna(subset=["uid"]).sort_values("created_at", kind="stable", na_position="first")
    return ordered.groupby("uid", sort=False).tail(1).reset_index(drop=True)


_EMAIL_TEXT = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PHONE_TEXT = re.compile(r"\+?\d[\d /-]{6,}\d")
_PII_KEY = re.compile(r"name|email|phone|address|city|zip", re.IGNORECASE)


def mask_calcom_body(body: dict) -> dict:
    """A copy of a delivery in its Cal.com shape with attendee/organizer/response PII masked."""
    import copy

    out = copy.deepcopy(body)
    payload = out.get("payload") if isinstance(out.get("payload"), dict) else out
    names = [a.get("name") for a in payload.get("attendees") or [] if isinstance(a, dict) and a.get("name")]
    responses = payload.get("responses") if isinstance(payload.get("responses"), dict) else {}
    said = _response_value(responses, "name")
    names += [said] if isinstance(said, str) else []

    def scrub(text):
        if not isinstance(text, str):
            return text
        text = _PHONE_TEXT.sub(PHONE_MASK, _EMAIL_TEXT.sub(EMAIL_MASK, text))
        return _mask_names_in(text, names)

    for person in [*(payload.get("attendees") or []), payload.get("organizer")]:
        if isinstance(person, dict):
            for key in list(person):
                if _PII_KEY.search(key):
                    person[key] = {"email": EMAIL_MASK, "phoneNumber": PHONE_MASK}.get(key, NAME_MASK) if person[key] else person[key]
    for key, value in list(responses.items()):
        if _PII_KEY.search(key):
            mask = EMAIL_MASK if "email" in key.lower() else PHONE_MASK if "phone" in key.lower() else NAME_MASK
            if isinstance(value, dict) and "value" in value:
                value["value"] = mask if value["value"] else value["value"]
            elif value:
                responses[key] = mask
        elif isinstance(value, dict) and isinstance(value.get("value"), str):
            value["value"] = scrub(value["value"])
        elif isinstance(value, str):
            responses[key] = scrub(value)
    for key in ("title", "description", "additionalNotes", "location"):
        if key in payload:
            payload[key] = scrub(payload[key])
    return out
