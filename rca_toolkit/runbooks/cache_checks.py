"""Runbook checks on the availability cache (RB030, RB001): Redis answers, handlers clear, keys disappear.

Incident C: a Cal.com webhook handler that changes a booking but leaves the cached availability
in place offers slots that are gone. The code is read by ``analyses.code.cache_handlers`` and
Redis by ``sources.redis_keys``; these functions only judge what they found.
"""

from __future__ import annotations

from pathlib import Path

from rca_toolkit.errors import ConnectionFailed, NotFound
from rca_toolkit.rules.timeutil import parse_duration
from rca_toolkit.sources import redis_keys
from rca_toolkit.sources.db import redact_url
from rca_toolkit.analyses.code.cache_handlers import cache_handlers
from rca_toolkit.runbooks.framework import CheckResult, NotApplicable, Status


def redis_reachable(redis_url: str = "") -> CheckResult:
    """PING Redis; NotApplicable when no Redis is configured."""
    if not redis_url:
        raise NotApplicable("no Redis configured (redis_url empty)")
    label = redact_url(redis_url)
    try:
        ping = redis_keys.ping(redis_url)
    except ConnectionFailed as exc:
        return CheckResult("redis reachable", Status.FAIL, str(exc), {"redis": label},
                           "Start Redis or fix the URL; cache invalidation and queues depend on it.")
    return CheckResult("redis reachable", Status.PASS, f"PING {label} answered in {ping.ms:.1f} ms (Redis {ping.version})",
                       {"redis": label, "ping_ms": round(ping.ms, 1), "version": ping.version})


def cache_invalidation(code_path: str = "", **patterns) -> CheckResult:
    """Every Cal.com ``handleBooking*`` handler must clear the availability cache; a miss is FAIL."""
    if not code_path:
        raise NotApplicable("no code path given")
    if not Path(code_path).is_dir():
        raise NotFound(f"code path {code_path} is not a folder", hint="give the Laravel project root")
    handlers = cache_handlers(code_path, **patterns)
    if handlers.empty:
        raise NotFound(f"no Cal.com webhook handler (handleBooking*) found under {code_path}",
                       hint="check the path or the class/method patterns; nothing was verified")
    misses = handlers[~handlers["clears_cache"]]
    status = Status.FAIL if len(misses) else Status.PASS
    text = (f"{len(misses)} of {len(handlers)} handlers do not clear the availability cache: "
            + ", ".join(f"{r['class']}::{r['method']} ({r['file']}:{r['line']})" for r in misses.to_dict("records"))
            if len(misses) else f"all {len(handlers)} handlers clear the availability cache")
    return CheckResult("webhook handlers invalidate availability cache", status, text,
                       {"code_path": str(code_path), "handlers": handlers.to_dict("records"),
                        "rule": "calls a clear/invalidate...availability function or a cache verb on an availability key"},
                       "Call the availability-cache invalidation in every handler that changes a booking, "
                       "or stale slots are offered (the race in incident C).")


def redis_key_watch(redis_url: str = "", pattern: str = "*availability*", duration: str = "30s",
                    interval: str = "1s") -> CheckResult:
    """Watch keys matching ``pattern`` for ``duration``: PASS when an invalidation (key removed) is seen."""
    if not redis_url:
        raise NotApplicable("no Redis configured (redis_url empty)")
    total, step = parse_duration(duration, name="duration"), parse_duration(interval, name="interval")
    watch = redis_keys.watch_keys(redis_url, pattern, total.total_seconds(), step.total_seconds())
    first, removed, added = watch.at_start, watch.removed, watch.added
    status = Status.PASS if removed else Status.WARN
    text = (f"{len(removed)} of {len(first | added)} keys matching {pattern!r} were removed during {duration}"
            if removed else f"no key matching {pattern!r} was removed during {duration} "
            f"({len(first)} present at start): no invalidation observed")
    return CheckResult("availability cache keys invalidated", status, text,
                       {"redis": redact_url(redis_url), "pattern": pattern, "window": duration, "samples": watch.samples,
                        "keys_at_start": len(first), "removed": sorted(removed)[:10], "added": sorted(added)[:10]},
                       "Make a test booking during the watch; if no key disappears, the handler does not invalidate.")
