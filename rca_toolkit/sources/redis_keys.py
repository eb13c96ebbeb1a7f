"""Redis, read only: a timed PING and a watch of the keys matching a pattern.

Why a module of its own: Redis is the one source that is not the database, and the runbooks
that use it (RB001 reachability, RB030 cache invalidation) should only judge what it
answered. Errors come back as ``ConnectionFailed`` with the URL redacted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rca_toolkit.errors import ConnectionFailed
from rca_toolkit.sources.db import redact_text, redact_url

TIMEOUT_S = 3  # connect and socket timeout: a runbook waits at most this long for an absent server


@dataclass
class Ping:
    """How long one PING took and the server's version."""

    ms: float
    version: str | None


@dataclass
class KeyWatch:
    """Keys matching a pattern at the start, removed and added while watched, and how often sampled."""

    at_start: set[str]
    removed: set[str]
    added: set[str]
    samples: int


def ping(redis_url: str) -> Ping:
    """PING ``redis_url``; ``ConnectionFailed`` (message = redacted URL and the error) when it fails."""
    import redis  # lazily: only the Redis checks need the client

    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S)
        started = time.perf_counter()
        client.ping()
        ms = (time.perf_counter() - started) * 1000
        version = client.info("server").get("redis_version")
    except (redis.RedisError, ValueError) as exc:
        raise ConnectionFailed(f"{redact_url(redis_url)}: {redact_text(str(exc))}") from None
    return Ping(ms, version)


def watch_keys(redis_url: str, pattern: str, seconds: float, interval_s: float) -> KeyWatch:
    """Sample the keys matching ``pattern`` every ``interval_s`` (at least 0.05 s) for ``seconds``."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S, decode_responses=True)
    try:
        seen = set(client.scan_iter(match=pattern, count=500))
        first, removed, added, samples = set(seen), set(), set(), 1
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(max(interval_s, 0.05))
            now = set(client.scan_iter(match=pattern, count=500))
            removed |= seen - now
            added |= now - seen
            seen, samples = now, samples + 1
    except redis.RedisError as exc:
        raise ConnectionFailed(f"Redis {redact_url(redis_url)}: {redact_text(str(exc))}", hint="check redis_url") from None
    return KeyWatch(first, removed, added, samples)
