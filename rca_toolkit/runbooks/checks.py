"""Every runbook check in one namespace: ``from rca_toolkit.runbooks import checks; checks.db_reachable(...)``.

The checks live by topic (``database_checks``, ``booking_checks``, ``activity_checks``,
``consistency_checks``, ``code_checks``, ``cache_checks``); this module only re-exports them, so
a runbook needs one import. What all of them promise:

Each computes its status from data and returns a CheckResult. Bands come from incidents.md §E
(``rules.bookings`` for booking success and reach) and are module constants so a sign-off can
quote them. Every check shows its denominator and window; a sample below ``min_attempts``, and any
"0 of 0", is WARN ("not enough data", ``check_helpers.not_enough_data``), never PASS. Each topic module
declares the tables and columns its checks read (``REQUIRES``) and checks them first
(:mod:`rca_toolkit.sources.requirements`), so a missing one raises ``SchemaError`` naming the table, the
column and the check, and :func:`rca_toolkit.runbooks.framework.run_check` makes it ERROR; an absent
optional column is written on the result (WARN when it could hide a finding). Checks that do not
apply (no Redis, no log file, no code tree) raise ``NotApplicable``.
Times are ISO-8601 strings with a zone (or Timestamps); ``as_of`` defaults to now, so a
historical run judges freshness relative to its own ``as_of``.
"""

from __future__ import annotations

from rca_toolkit.runbooks.activity_checks import failed_webhooks, log_errors, stuck_sessions, webhook_freshness
from rca_toolkit.runbooks.booking_checks import booking_before_after, booking_success, reach_rates
from rca_toolkit.runbooks.cache_checks import cache_invalidation, redis_key_watch, redis_reachable
from rca_toolkit.runbooks.code_checks import phantom_columns
from rca_toolkit.runbooks.consistency_checks import booking_orphans, duplicate_booking_ids, outcome_disagreements
from rca_toolkit.runbooks.database_checks import db_reachable, index_count, required_columns

__all__ = [
    "booking_before_after", "booking_orphans", "booking_success", "cache_invalidation", "db_reachable",
    "duplicate_booking_ids", "failed_webhooks", "index_count", "log_errors", "outcome_disagreements",
    "phantom_columns", "reach_rates", "redis_key_watch", "redis_reachable", "required_columns",
    "stuck_sessions", "webhook_freshness",
]
