"""One exclusive file lock, waited for a bounded time: run folders, the report index and store refreshes.

Why in the basics: the runs layer (reports) and the sources layer (the local store) both need a writer to
wait for another writer and then say who holds the lock; one implementation serves both.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def held(path: Path, *, timeout: float, busy, mode: int = 0o644, poll_s: float = 0.1):
    """Exclusive ``flock`` on ``path`` (created with ``mode`` if needed); after ``timeout`` seconds of waiting,
    ``busy()`` is raised (an ``RcaError`` naming what is held and what to do)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy() from None
                time.sleep(poll_s)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
