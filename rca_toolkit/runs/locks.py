"""Exclusive file locks for run folders and the report index.

Why: a scheduler may start a report while yesterday's is still running, or while a user rebuilds the
index; each writer takes an ``flock`` and waits a bounded time, then says who holds it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from rca_toolkit import flock
from rca_toolkit.errors import RcaError

LOCK_TIMEOUT_S = 900.0


class Busy(RcaError):
    """Another run holds the lock of the same report for too long."""


@contextmanager
def file_lock(path: Path, *, timeout: float = LOCK_TIMEOUT_S, what: str = "report"):
    """Exclusive ``flock`` on ``path`` (created if needed); waits up to ``timeout`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def busy():
        return Busy(f"another run has held the lock of {what} ({path}) for {timeout:.0f} s",
                    hint="wait for it to finish, or remove the lock file if no rca process is running")

    with flock.held(path, timeout=timeout, busy=busy):
        yield
