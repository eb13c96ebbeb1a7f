"""Constants of the synthetic demo world: window, incident times, texts, code paths.

Private helper of :mod:`rca_toolkit.demo`; the human-readable spec is docs/demo-world.md.
All instants are kept as int64 microseconds since the epoch (UTC) so generation stays
vectorised; ``berlin()`` turns a documented Berlin wall time into such an instant.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
US = 1_000_000
MS = 1_000


def berlin(text: str, *, fold: int = 0) -> int:
    """Berlin wall time ``YYYY-MM-DD HH:MM:SS[.ffffff]`` -> UTC microseconds (fold=1: second reading)."""
    dt = datetime.fromisoformat(text).replace(tzinfo=BERLIN, fold=fold)
    return int(dt.replace(microsecond=0).timestamp()) * US + dt.microsecond


def iso_utc(us: int) -> str:
    """UTC microseconds -> ISO-8601 with Z (ground truth)."""
    dt = datetime.fromtimestamp(us / US, tz=ZoneInfo("UTC"))
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_berlin(us: int) -> str:
    """UTC microseconds -> ISO-8601 with the Berlin offset (ground truth)."""
    dt = datetime.fromtimestamp(us / US, tz=BERLIN)
    return dt.isoformat(timespec="milliseconds")


WINDOW_START = berlin("2025-09-22 00:00:00")
WINDOW_END = berlin("2025-11-30 23:59:59")
DST_END = berlin("2025-10-26 02:00:00", fold=1)  # first instant of CET (01:00 UTC)

# Change points (incidents.md)
D2_START = berlin("2025-10-06 09:00:00")
D2_FIX = berlin("2025-10-07 12:31:45")
PHANTOM_START = berlin("2025-10-13 11:16:08")
PARTIAL_FIX = berlin("2025-10-18 13:20:08")
AGENT_SWITCH = berlin("2025-10-22 15:47:00")
D4_FIX = berlin("2025-10-23 21:26:00")
STATUS_COMPLETED_FROM = berlin("2025-10-23 00:00:00")
STUCK_DAY_START = berlin("2025-10-24 06:56:00")
STUCK_DAY_END = berlin("2025-10-24 18:23:00")
FULL_FIX = berlin("2025-11-13 16:18:37")
BUG6_FIX = berlin("2025-11-25 00:00:00")
BUG5_FIX = berlin("2025-11-26 00:00:00")
DAY_US = 86_400 * US
HOUR_US = 3_600 * US

BOOKING_WINDOWS = {
    "before_phantom_5d": (PHANTOM_START - 5 * DAY_US, PHANTOM_START),
    "phantom_collect": (PHANTOM_START, PARTIAL_FIX),
    "after_partial_fix_5d": (PARTIAL_FIX, PARTIAL_FIX + 5 * DAY_US),
    "phantom_book": (PHANTOM_START, FULL_FIX),
    "after_full_fix_5d": (FULL_FIX, FULL_FIX + 5 * DAY_US),
}
# Also guaranteed, reported separately (``booking_attempts_extra``): the exact 5 days before the partial fix.
EXTRA_WINDOWS = {"before_partial_fix_5d": (PARTIAL_FIX - 5 * DAY_US, PARTIAL_FIX)}
# Windows that must hold at least MIN_ATTEMPTS_PER_PATH attempts per path (top-up calls added).
MIN_ATTEMPTS_PER_PATH = 30
# Change points around which every affected path gets attempts in each of the 2 hours
# before and after (so an hourly change-point search can localise them within 2 hours).
GUARANTEED_HOURS = {
    "phantom_start": (PHANTOM_START, ("collect_appointment", "book_appointment")),
    "partial_fix": (PARTIAL_FIX, ("collect_appointment",)),
    "full_fix": (FULL_FIX, ("book_appointment",)),
}
ATTEMPTS_PER_GUARANTEED_HOUR = 3

COLLECT_FRAME = "App\\Services\\Retell\\AppointmentCreationService::createLocalRecord"
BOOK_FRAME = "App\\Http\\Controllers\\RetellFunctionCallHandler::bookAppointment"
PATH_FRAME = {"collect_appointment": COLLECT_FRAME, "book_appointment": BOOK_FRAME}

PHANTOM_ERROR = (
    "SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in 'field list' "
    "(Connection: mysql, SQL: insert into `appointments` (...) values (...))"
)
D2_ERROR = 'Unknown function called {"function":"","params":[],"call_id":null}'
D4_ERROR = "Unknown function: {name}"
DUPLICATE_ERROR = (
    "SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry '{call_id}' for key "
    "'webhook_events_event_id_unique' (Connection: mysql, SQL: insert into `webhook_events` (...) values (...))"
)
CALCOM_409 = "Cal.com API error: HTTP 409 - Booking slot is no longer available"
CALCOM_400 = "Cal.com API error: HTTP 400 - responses - {title}error_required_field"
CALCOM_REJECTED = "Invalid webhook event type: BOOKING_CREATED (expected BOOKING.CREATED)"

TEST_IDS = (
    "test_123", "test_456", "test_999", "test_direct_999", "test_fix_verification_001",
    "test_opcache_cleared", "demo_call_1761249581", "temp_1761122080_9e0002da",
)
TYPO_ID = "call_de1656496a133e2cbcd886664988"

AGENT_ID_OLD = "agent_9a8202a740cd3120d96fcfda1e"
AGENT_ID_NEW = "agent_f1ce85d06a84afb989dfbb16a9"
COMPANY_SHARE = 0.75  # company 1 share of calls; the rest is company 2

DEPLOYMENTS = (
    # deployed_at (ISO with offset), commit, description, source
    ("2025-10-07T12:31:45+02:00", "b53835817bafb084ce3fa3b084a429909f04ad41",
     "D2 fix: read Retell `name` instead of `function_name`", "incidents.md D2"),
    ("2025-10-13T11:16:08+02:00", "fb310a80092110909c4714b705ccbec9e279d927",
     "Phantom appointment columns (created_by, booking_source, booked_by_user_id) reach main (PR #695)",
     "incidents.md A"),
    ("2025-10-13T11:42:29+02:00", "f1678b15da587b6adfa24fd7b65a590aa8792f04",
     "Backfill script force-fills created_by/booking_source", "incidents.md A"),
    ("2025-10-18T13:20:08+02:00", "6110e564122f3f94ab1d3153b7f6dbdc524a2f50",
     "Partial fix: phantom keys removed from createLocalRecord and handleBookingCreated", "incidents.md A"),
    ("2025-10-18T13:20:35+02:00", "b371b4406bc3",
     "Migration 2025_10_18_000001_optimize_appointments_database_schema added", "incidents.md A"),
    ("2025-10-18T13:32:00+02:00", "b65e1423e", "Idempotency columns; unique index removed (64-index limit)",
     "incidents.md A"),
    ("2025-10-21T10:30:16+02:00", "34a011586", "Incident docs and post-deployment-check.sh", "incidents.md A"),
    ("2025-10-22T15:47:00+02:00", "", "Agent switch: versioned function names (_v17), agent versions 4..24",
     "demo-world.md (agent change, no commit)"),
    ("2025-10-23T21:26:00+02:00", "b1c1c80a7d2a2286620857b3969437f4816d7105",
     "D4 fix: strip _vNN from function names before routing", "incidents.md D4 / data-contract P3"),
    ("2025-10-27T06:28:24+01:00", "", "Production migrate:fresh and restore (era E2)", "incidents.md D6"),
    ("2025-10-28T18:38:15+01:00", "e81445d2aa18ba74bd3a85e41cd470030afd1c21",
     "D7 fix: Unknown column 'price' (11 locations)", "incidents.md D7"),
    ("2025-11-13T16:18:37+01:00", "50749ce4221cf59e96de4689ac8624b2217a6e2c",
     "Full fix: last forceFill site RetellFunctionCallHandler::bookAppointment cleaned", "incidents.md A / D8"),
    ("2025-11-26T00:00:00+01:00", "94d58ebac5146aaf03e917e998a8dc3f716a7d0a",
     "Bug 5/6: endCallSession on call_ended, non-negative durations (date only; Bug-6 comment 2025-11-25)",
     "incidents.md D9 / data-contract P5"),
    ("2025-12-17T00:00:00+01:00", "687d72f5581ea00285b17bb21309d3f581f0281c",
     "Bug-5 fix merged to main (date only)", "data-contract P5"),
)
