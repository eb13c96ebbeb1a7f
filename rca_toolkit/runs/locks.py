"""Exclusive file locks for run folders and the report index.

Why: a scheduler may start a report while yesterday's is still running, or while a user rebuilds the
index; each writer takes an ``flock`` and waits a bounded time, then says who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from rca_toolkit.errors import RcaError

LOCK_TIMEOUT_S = 900.0


class Busy(RcaError):
    """Another run holds the lock of the same report for too long."""


@contextmanager
def file_lock(path: Path, *, timeout: float = LOCK_TIMEOUT_S, what: str = "report"):
    """Exclusive ``flock`` on ``path`` (created if needed); waits up to ``timeout`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(f"another run has held the lock of {what} ({path}) for {timeout:.0f} s",
                               hint="wait for it to finish, or remove the lock file if no rca process is running") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
