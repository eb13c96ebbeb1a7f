"""Cal.com webhook deliveries -> a bookings frame (one row per delivery).

The app reads ``triggerEvent`` (falling back to ``event``) and ``payload`` (falling back to the
whole body) and upserts ``appointments`` on ``calcom_v2_booking_id = payload.uid`` (data-contract
§6.4). Cal.com sends ``BOOKING_CREATED`` while the app validator expected ``BOOKING.CREATED``
(P19), so event names are normalised (``.`` -> ``_``, upper case). Times are UTC ISO strings,
with or without milliseconds; a time without a zone is read as UTC and flagged.

Booking chains, as Cal.com's webhook documentation shows them (calcom/cal.com
``docs/developing/guides/automation/webhooks.mdx``): ``BOOKING_RESCHEDULED`` carries the *new*
booking's ``uid`` and the old one's ``rescheduleUid`` (``rescheduleId``, ``rescheduleStartTime``);
a booking row sent flat (``MEETING_STARTED``/``MEETING_ENDED``) names its predecessor in
``fromReschedule``; ``BOOKING_NO_SHOW_UPDATED`` has no ``uid`` but ``bookingUid``.
:func:`latest_bookings` folds the deliveries into one state per booking: a rescheduled booking is
superseded (Cal.com cancels it), a cancellation or rejection ends one, a no-show attaches to it.

Attendee and organizer names, e-mails (``cancelledBy``, ``rescheduledBy`` too) and phone numbers
are personal data: masked unless ``mask_pii=False``, by the one rule :mod:`rca_toolkit.rules.personal_data`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules import personal_data
from rca_toolkit.rules.call_ids import RETELL_CALL_ID
from rca_toolkit.rules.jsonutil import load_document
from rca_toolkit.sources.formats import masking, sniff

COLUMNS = [
    "uid", "booking_id", "event_type", "trigger_event_raw", "event_type_id", "title", "start", "end",
    "time_assumed_utc", "status", "attendee_count", "attendee_names", "attendee_emails", "attendee_phones",
    "organizer_email", "rescheduled_from_uid", "cancellation_reason", "created_at", "payload_fallback",
    "retell_call_id", "no_show", "rescheduled_from_start",
]
# What a delivery says about its booking's state. Lifecycle events set it; no-show updates, meeting
# and recording events attach to the booking without changing it.
STATE_OF_EVENT = {"BOOKING_CREATED": "booked", "BOOKING_RESCHEDULED": "booked", "BOOKING_PAID": "booked",
                  "BOOKING_REQUESTED": "pending", "BOOKING_PAYMENT_INITIATED": "pending",
                  "BOOKING_CANCELLED": "cancelled", "BOOKING_REJECTED": "rejected"}
STATE_OF_STATUS = {"ACCEPTED": "booked", "PENDING": "pending", "AWAITING_HOST": "pending", "CANCELLED": "cancelled",
                   "REJECTED": "rejected"}
# Only the manual update says who was a no-show; the Cal Video AFTER_*_NO_SHOW events attach by bookingUid
# but their attendees' noShow flags are not the verdict (the documented example says false).
NO_SHOW_EVENTS = {"BOOKING_NO_SHOW_UPDATED"}
ENDED_STATES = {"cancelled", "rejected", "rescheduled"}  # not (or no longer) a booking anyone should keep
NAME_MASK, EMAIL_MASK, PHONE_MASK = personal_data.NAME_MASK, personal_data.EMAIL_MASK, personal_data.PHONE_MASK
_ZONED = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_WHAT = "Cal.com webhook"
_HINT = "give Cal.com webhook deliveries ({triggerEvent, createdAt, payload})"
# Booking times outside these years are a unit mix-up or garbage, never a booking.
EARLIEST, LATEST = pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC")


def normalise_event(name: str | None) -> str | None:
    """``BOOKING.CREATED`` / ``booking_created`` / ``BOOKING_CREATED`` -> ``BOOKING_CREATED``."""
    if not name:
        return None
    return re.sub(r"[.\s-]+", "_", str(name).strip()).upper()


def _utc(value, key: str = "time") -> tuple[pd.Timestamp | None, bool]:
    if value is None or value == "":
        return None, False
    hint = "expected an ISO 8601 time such as 2025-10-20T14:00:00Z (or milliseconds since 1970)"
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # ms epoch, as some integrations send
        ts = pd.Timestamp(int(value), unit="ms", tz="UTC") if abs(value) < 1e15 else None
        if ts is None or not EARLIEST <= ts < LATEST:
            raise InputFormatError(f"Cal.com {key} {value!r} is not milliseconds since 1970 in the years 2000-2099",
                                   hint=hint)
        return ts, False
    if not isinstance(value, str):
        raise InputFormatError(f"Cal.com {key} is {sniff.describe_json(value)}, not a time", hint=hint)
    text = value.strip()
    try:
        ts = pd.Timestamp(text)
        naive = ts.tzinfo is None
        ts = ts.tz_localize("UTC") if naive else ts.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        raise InputFormatError(f"Cal.com {key} {text[:60]!r} is not ISO 8601", hint=hint) from None
    if ts is pd.NaT or not EARLIEST <= ts < LATEST:
        raise InputFormatError(f"Cal.com {key} {text[:60]!r} is outside the years 2000-2099", hint=hint)
    return ts, naive


def _response_value(responses: dict, *keys: str):
    for key in keys:
        value = responses.get(key)
        if isinstance(value, dict):
            value = value.get("value")
        if value not in (None, "", [], {}):
            return value
    return None


def check_body(body) -> None:
    """Refuse a body that is not a Cal.com delivery (another format, or fields of the wrong type).

    A delivery has an event name (``triggerEvent``, or ``event`` in the app's variant) or, sent
    bare, the booking's ``uid`` and ``startTime``; a Retell object or an export is said as such.
    """
    if not isinstance(body, dict):
        raise InputFormatError(f"a Cal.com webhook body must be a JSON object, not {sniff.describe_json(body)}",
                               hint="give one delivery per object")
    looks = sniff.describe_json(body)
    event = body.get("triggerEvent", body.get("event"))
    bare = "uid" in body and ("startTime" in body or "attendees" in body)
    if looks.startswith("a Retell") or looks == "a call-history export" or "call_id" in body or not (
            isinstance(event, str) or bare):
        raise InputFormatError(f"not a {_WHAT} (no triggerEvent, and no booking uid and startTime): it looks like {looks}",
                               hint=_HINT)
    for key in ("triggerEvent", "event", "type"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InputFormatError(f"{key} is {sniff.describe_json(body[key])}, expected an event name", hint=_HINT)
    payload = body.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise InputFormatError(f"payload is {sniff.describe_json(payload)}, expected an object", hint=_HINT)
    payload = payload if isinstance(payload, dict) else body
    for key in ("uid", "bookingUid", "bookingId", "id", "eventTypeId", "rescheduleUid", "rescheduledFromUid",
                "fromReschedule", "rescheduleId"):
        value = payload.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
            raise InputFormatError(f"payload.{key} is {sniff.describe_json(value)}, expected a string or integer",
                                   hint=_HINT)
    for key in ("status", "title"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise InputFormatError(f"payload.{key} is {sniff.describe_json(payload[key])}, expected a string", hint=_HINT)
    if payload.get("attendees") is not None and not isinstance(payload["attendees"], list):
        raise InputFormatError(f"payload.attendees is {sniff.describe_json(payload['attendees'])}, expected a list",
                               hint=_HINT)
    for i, person in enumerate(payload.get("attendees") or []):
        for key in ("name", "email", "phoneNumber"):
            value = person.get(key) if isinstance(person, dict) else None
            if value is not None and not isinstance(value, str):
                raise InputFormatError(f"payload.attendees[{i}].{key} is {sniff.describe_json(value)}, expected a string",
                                       hint=_HINT)


def parse_calcom_webhook(body: dict, *, mask_pii: bool = True) -> dict:
    """One delivery (envelope or bare payload) -> one bookings row."""
    check_body(body)
    raw_event = body.get("triggerEvent") or body.get("event") or body.get("type")
    payload = body.get("payload")
    fallback = not isinstance(payload, dict)
    if fallback:
        payload = body
    attendees = [a for a in payload.get("attendees") or [] if isinstance(a, dict)]
    responses = payload.get("responses") if isinstance(payload.get("responses"), dict) else {}
    names = [a.get("name") for a in attendees if a.get("name")] or [v for v in [_response_value(responses, "name")] if v]
    event = normalise_event(raw_event)
    emails = [a.get("email") for a in attendees if a.get("email")] or [v for v in [_response_value(responses, "email")] if v]
    phones = [p for p in [a.get("phoneNumber") for a in attendees] if p]
    phone = _response_value(responses, "phone", "attendeePhoneNumber", "phoneNumber")
    phones = phones or ([str(phone)] if phone else [])
    start, start_naive = _utc(payload.get("startTime"), "startTime")
    end, end_naive = _utc(payload.get("endTime"), "endTime")
    created, _ = _utc(body.get("createdAt"), "createdAt")
    organizer = payload.get("organizer") if isinstance(payload.get("organizer"), dict) else {}
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    call_id = metadata.get("retell_call_id") or metadata.get("call_id")
    if not call_id:
        found = RETELL_CALL_ID.search(json.dumps(responses, ensure_ascii=False) + str(payload.get("description") or ""))
        call_id = found.group(0) if found else None
    booking_id = payload.get("bookingId", payload.get("id"))
    uid = payload.get("uid") if payload.get("uid") not in (None, "") else payload.get("bookingUid")  # no-show: bookingUid
    before = next((payload[k] for k in ("rescheduleUid", "rescheduledFromUid", "fromReschedule")
                   if payload.get(k) not in (None, "")), None)
    moved_from, _ = _utc(payload.get("rescheduleStartTime"), "rescheduleStartTime") if before is not None else (None, False)
    flags = [a.get("noShow") for a in attendees if isinstance(a.get("noShow"), bool)]
    no_show = any(flags) if event in NO_SHOW_EVENTS and flags else None
    people = names + _person_names(payload)  # attendees, organizer, host: masked in free text too
    return {
        "uid": None if uid is None else str(uid),
        "booking_id": booking_id,
        "event_type": event,
        "trigger_event_raw": raw_event,
        "event_type_id": payload.get("eventTypeId"),
        "title": payload.get("title") if not mask_pii else _mask_names_in(payload.get("title"), people),
        "start": start,
        "end": end,
        "time_assumed_utc": start_naive or end_naive,
        "status": str(payload["status"]).upper() if payload.get("status") else None,
        "attendee_count": len(attendees) if attendees else len(names),
        "attendee_names": [NAME_MASK] * len(names) if mask_pii else names,
        "attendee_emails": [EMAIL_MASK] * len(emails) if mask_pii else emails,
        "attendee_phones": [PHONE_MASK] * len(phones) if mask_pii else phones,
        "organizer_email": (EMAIL_MASK if mask_pii else organizer.get("email")) if organizer.get("email") else None,
        "rescheduled_from_uid": None if before is None else str(before),
        "cancellation_reason": (payload.get("cancellationReason") if not mask_pii
                                else _mask_names_in(payload.get("cancellationReason"), people)),
        "created_at": created,
        "payload_fallback": fallback,
        "retell_call_id": call_id,
        "no_show": no_show,
        "rescheduled_from_start": moved_from,
    }


def _person_names(payload: dict) -> list[str]:
    """Names of the people a payload names: attendees (and their first/last names), organizer, the
    flat booking's ``user``, the answered name, and any person-name key :func:`personal_data.names_in` knows."""
    found = [p.get(k) for p in [*(payload.get("attendees") or []), payload.get("organizer"), payload.get("user")]
             if isinstance(p, dict) for k in ("name", "firstName", "lastName")]
    responses = payload.get("responses") if isinstance(payload.get("responses"), dict) else {}
    found.append(_response_value(responses, "name"))
    return sorted({n for n in found if isinstance(n, str) and n.strip()} | personal_data.names_in(payload))


def _mask_names_in(text, names: list[str]):
    """Booking titles read "Herrenhaarschnitt zwischen Salon und Max Muster": mask each word of the
    names as a whole word (and, by the one rule, phone numbers and e-mail addresses)."""
    return masking.mask_text(text, names)


def read_bodies(path: Path) -> list[dict]:
    """The JSON bodies of a Cal.com webhook file: one object, a list, or one object per line."""
    text = sniff.read_text(path, _WHAT)
    try:
        document = load_document(text, str(path), _WHAT)
    except InputFormatError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(lines) < 2 or "deeper than" in whole.message:
            raise
        try:  # one delivery per line (a webhook log)
            return [load_document(line, f"{path} line {n}", _WHAT) for n, line in lines]
        except InputFormatError as exc:
            raise InputFormatError(f"{path} is neither JSON nor JSON lines: {exc.message}",
                                   hint="give a webhook body, a list of bodies, or one body per line") from None
    if isinstance(document, list) and not document:
        raise InputFormatError(f"{path} holds an empty list", hint="give at least one Cal.com webhook body")
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
    frame = _typed(pd.DataFrame.from_records(rows, columns=COLUMNS))
    unknown = ~frame["event_type"].isin([*STATE_OF_EVENT, *NO_SHOW_EVENTS])
    frame.attrs.update(mask_pii=mask_pii, n_deliveries=len(frame), n_missing_uid=int(frame["uid"].isna().sum()),
                       n_other_events=int(unknown.sum()), n_payload_fallback=int(frame["payload_fallback"].sum()),
                       n_time_assumed_utc=int(frame["time_assumed_utc"].sum()),
                       n_no_show_updates=int(frame["event_type"].isin(NO_SHOW_EVENTS).sum()))
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for col in ("start", "end", "created_at", "rescheduled_from_start"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    for col in ("booking_id", "event_type_id", "attendee_count"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in ("uid", "rescheduled_from_uid"):
        frame[col] = frame[col].astype("string")
    frame["no_show"] = frame["no_show"].astype("boolean")
    return frame


def delivery_state(event: str | None, status: str | None) -> str | None:
    """``booked`` / ``pending`` / ``cancelled`` / ``rejected`` from one lifecycle delivery (None otherwise).
    A cancellation or rejection event ends the booking whatever its status says; otherwise the
    booking's own status (``PENDING`` for a booking that awaits confirmation) wins over the event."""
    if event not in STATE_OF_EVENT:
        return None
    if STATE_OF_EVENT[event] in ENDED_STATES:
        return STATE_OF_EVENT[event]
    return STATE_OF_STATUS.get(str(status).upper() if status else "", STATE_OF_EVENT[event])


def latest_bookings(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per booking uid: its state after every delivery, in ``created_at`` order.

    The row is the booking's last lifecycle delivery (created, requested, rescheduled, paid, cancelled,
    rejected), else its last delivery of any kind, plus:

    - ``state``: ``booked``, ``pending``, ``cancelled``, ``rejected``, or ``rescheduled`` when a later
      booking names it in ``rescheduleUid``/``fromReschedule`` (and is not pending or rejected itself).
      A superseded booking gets ``status`` CANCELLED (Cal.com cancels it) and ``superseded_by``, the
      uid that replaced it, in whatever order the deliveries came; one known only from that link is a
      row of its own (``n_deliveries`` 0, ``start`` from ``rescheduleStartTime``).
    - ``no_show``: the last ``BOOKING_NO_SHOW_UPDATED`` for the uid (``bookingUid``), else NA.
    - ``retell_call_id`` is shared along a chain when only one side names the call.
    """
    columns = list(frame.columns) + [c for c in ("no_show", "rescheduled_from_uid", "rescheduled_from_start")
                                     if c not in frame.columns]
    ordered = frame.dropna(subset=["uid"]).sort_values("created_at", kind="stable", na_position="first")
    records = ordered.reindex(columns=columns).astype(object).where(ordered.reindex(columns=columns).notna(), None)
    out: dict[str, dict] = {}
    lifecycle: set[str] = set()
    links: list[dict] = []
    for row in records.to_dict(orient="records"):
        uid = str(row["uid"])
        state = delivery_state(row.get("event_type"), row.get("status"))
        seen = out.get(uid)
        count = (seen["n_deliveries"] if seen else 0) + 1
        no_show = seen["no_show"] if seen else None
        if row.get("event_type") in NO_SHOW_EVENTS and row.get("no_show") is not None:
            no_show = bool(row["no_show"])
        if seen is None or state is not None or uid not in lifecycle:
            out[uid] = {**row, "state": state, "superseded_by": None}
            if state is not None:
                lifecycle.add(uid)
        elif seen["rescheduled_from_uid"] is None and row.get("rescheduled_from_uid"):
            seen["rescheduled_from_uid"] = row["rescheduled_from_uid"]
        out[uid].update(n_deliveries=count, no_show=no_show)
        before = row.get("rescheduled_from_uid")
        if before and str(before) != uid and state not in ("pending", "rejected"):
            links.append(row)
    for row in links:
        old, new = str(row["rescheduled_from_uid"]), str(row["uid"])
        if old not in out:
            out[old] = {**{c: None for c in columns}, "uid": old, "title": row.get("title"),
                        "event_type_id": row.get("event_type_id"), "start": row.get("rescheduled_from_start"),
                        "retell_call_id": row.get("retell_call_id"), "payload_fallback": False,
                        "time_assumed_utc": False, "n_deliveries": 0, "no_show": None}
        out[old].update(state="rescheduled", status="CANCELLED", superseded_by=new)
        if out[new].get("rescheduled_from_uid") is None:
            out[new]["rescheduled_from_uid"] = old
        for a, b in ((old, new), (new, old)):
            if not out[a].get("retell_call_id") and out[b].get("retell_call_id"):
                out[a]["retell_call_id"] = out[b]["retell_call_id"]
    result = pd.DataFrame.from_records(list(out.values()),
                                       columns=columns + ["state", "superseded_by", "n_deliveries"])
    if len(result) and set(COLUMNS) <= set(result.columns):
        result = _typed(result)
    result["n_deliveries"] = result["n_deliveries"].astype("int64")
    return result


_PII_KEY = re.compile(r"name|email|phone|address|city|zip", re.IGNORECASE)


def mask_calcom_body(body: dict) -> dict:
    """A copy of a delivery in its Cal.com shape with personal data masked in every field.

    Person fields keep their keys (attendees, organizer, the flat booking's ``user``, form answers:
    ``[NAME]``, ``[EMAIL]``, ``[PHONE]``); then every other string anywhere in the body
    (``cancelledBy``, ``rescheduledBy``, ``message``, titles, notes, reasons) is masked by
    :func:`rca_toolkit.rules.personal_data.mask` with the names the payload itself names, each word
    of a name as a whole word. The values of id and time keys (``uid``, ``bookingUid``,
    ``rescheduleUid``, ``id``, ``eventTypeId``, ``startTime``, ``endTime``, ``createdAt``) are never
    masked (:func:`masking.mask_value`), so the masked body parses to the same uid, chain and times.
    """
    import copy

    out = copy.deepcopy(body)
    payload = out.get("payload") if isinstance(out.get("payload"), dict) else out
    names = _person_names(payload)
    responses = payload.get("responses") if isinstance(payload.get("responses"), dict) else {}
    for person in [*(payload.get("attendees") or []), payload.get("organizer"), payload.get("user")]:
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
    return masking.mask_value(out, names)  # every other string: cancelledBy, rescheduledBy, notes, titles ...
