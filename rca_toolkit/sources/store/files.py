"""Where a database's store lives, who may read it, and one writer at a time.

Why: the store holds a copy of production rows (masked, but still the business's data), so its folder
is the owner's alone (0700, files 0600), and its name is a fingerprint of the database it copies, never
the URL itself (which can carry a user name and host). DuckDB lets one process write a file; a lock
file makes a second refresh wait instead of failing half-way.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
from sqlalchemy.engine import URL

from rca_toolkit import flock
from rca_toolkit.errors import ConfigError, RcaError

STORE_FILE = "store.duckdb"
LOCK_FILE = "refresh.lock"
OWN_FILES = {STORE_FILE, f"{STORE_FILE}.wal", f"{STORE_FILE}.tmp", LOCK_FILE}  # what DuckDB and a refresh make
LOCK_WAIT_S = 600.0
LOCK_RETRY_S = 60.0  # how long opening the store file waits for another process's DuckDB lock
# DuckDB would take 80 % of the machine's memory for its buffers (it spills beyond the limit); the
# analyses' frames live in pandas, beside it (their read-only connections start lower: engine.READ_MIB). A refresh
# mostly appends, which needs no cache of what it wrote: at 1M calls a cold build peaked at 800 MiB with 192 MB
# against 905 MiB with 256 MB, in the same 36 s; step 5 over every trace and error row and a key mend of every
# table ran within it too.
DUCKDB_CONFIG = {"memory_limit": "192MB", "threads": 2}


def fingerprint(url: URL) -> str:
    """16 hex digits naming the database ``url`` points at: backend, host, port and database (a SQLite
    file by its absolute path); user, password and query options do not change which data it is."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        where = str(Path((url.database or "").removeprefix("file:").split("?", 1)[0]).resolve())
    else:
        where = f"{(url.host or 'localhost').lower()}:{url.port or 3306}/{url.database or ''}"
    return hashlib.sha256(f"{backend}|{where}".encode()).hexdigest()[:16]


def folder(root: str | Path, url: URL) -> Path:
    return Path(root) / fingerprint(url)


def connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` to the store file ``path``, waiting up to ``LOCK_RETRY_S`` while another process holds
    it: a refresh writing it keeps readers out, and a reader keeps a refresh out until it closes the file
    (``engine.IDLE_S`` after its last statement)."""
    deadline = time.monotonic() + LOCK_RETRY_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=DUCKDB_CONFIG)
        except duckdb.IOException as exc:
            text = str(exc)
            if "Could not set lock" not in text:  # a file cut short or overwritten ("... in block ..."): no store
                raise RcaError(f"cannot open the store {path}: {text.splitlines()[0]}",
                               hint="the file is damaged: `rca cache drop --db URL` deletes it, and the next refresh "
                                    "builds it again") from None
            if time.monotonic() >= deadline:
                holder = re.search(r"\(PID (\d+)\)", text)
                who = f"process {holder.group(1)}" if holder else "another process"
                if read_only:
                    raise RcaError(f"cannot open the store {path}: {who} is refreshing it",
                                   hint="wait for that rca process to finish, or run with --no-cache") from None
                raise RcaError(f"cannot refresh the store {path}: {who} has it open for reading",
                               hint="wait for that analysis to end, then refresh again") from None
            time.sleep(0.1)


def make_private(path: Path) -> Path:
    """``path`` (a folder, made if absent) readable by its owner only, and everything in it: its files, and the
    folder DuckDB makes for what it spills (``store.duckdb.tmp``, made by the umask)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:  # the cache_dir setting names a place no folder can be made in
        raise ConfigError(f"cannot make the store folder {path}: {exc.strerror}",
                          hint="set cache_dir (RCA_CACHE_DIR) to a folder you can write, or run with --no-cache") from None
    os.chmod(path, 0o700)
    for child in path.iterdir():
        os.chmod(child, 0o700 if child.is_dir() else 0o600)
    return path


def open_to_others(path: Path) -> list[str]:
    """The names of ``path`` (a store folder) and of the entries in it whose modes let anyone but the owner in:
    what :func:`make_private` closes, looked at rather than assumed (a folder copied or chmod-ed by hand)."""
    return [p.name for p in (path, *sorted(path.iterdir())) if p.stat().st_mode & 0o077]


@contextmanager
def writer_lock(path: Path, wait_s: float = LOCK_WAIT_S):
    """Hold the folder's refresh lock (waiting up to ``wait_s`` for another refresh to finish)."""
    make_private(path)

    def busy():
        return RcaError(f"the store {path} is being refreshed by another process for over {wait_s:.0f} s",
                        hint="wait for it, or stop the other `rca` process")

    with flock.held(path / LOCK_FILE, timeout=wait_s, busy=busy, mode=0o600, poll_s=0.2):
        yield


def drop(path: Path) -> bool:
    """Delete one store folder; False when there was none. Refuses a folder holding anything but a store's
    own files (a store file beside someone's files is no reason to delete them)."""
    if not path.exists():
        return False
    others = sorted(p.name for p in path.iterdir() if p.name not in OWN_FILES)
    if others:
        held = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ConfigError(f"{path} is not a store folder (it holds {held})", hint="give the cache folder of rca cache status")
    with writer_lock(path):
        shutil.rmtree(path)
    return True
