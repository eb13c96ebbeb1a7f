"""The store as a read-only SQLAlchemy engine the loaders read like any database, and when to use it.

Why an engine: the analyses read through :mod:`rca_toolkit.sources.loaders`, one implementation for every
source; the store is one more read-only engine (DuckDB, opened ``read_only``, so it cannot be written
through), whose schema is the columns it holds and whose timestamps are in the zone the source used.
Connections are not pooled: a refresh in another process needs the file free between reads.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from rca_toolkit.errors import NotFound
from rca_toolkit.sources import requirements
from rca_toolkit.sources.db import TableInfo
from rca_toolkit.sources.store import catalog, extract, files
from rca_toolkit.sources.store.tables import BY_NAME

log = logging.getLogger(__name__)
_ZONES: "weakref.WeakKeyDictionary[sa.Engine, str]" = weakref.WeakKeyDictionary()
_OPEN: dict[Path, sa.Engine] = {}
FRESH_FOR_S = 300.0  # the default of the cache_max_age_s setting
CHECK_EVERY_S = 7 * 86400.0  # the default of the cache_check_every_s setting


def is_store(engine: sa.Engine) -> bool:
    return engine in _ZONES


def storage_zone(engine: sa.Engine) -> str | None:
    """The zone the store's naive timestamps are in (its source's), or None for an engine that is no store."""
    return _ZONES.get(engine)


def open_store(folder: Path) -> sa.Engine:
    """A read-only engine on the store in ``folder`` (one per folder and process)."""
    path = Path(folder) / files.STORE_FILE
    if not path.exists():
        raise NotFound(f"there is no store in {folder}", hint="run `rca cache refresh --db URL` first")
    if folder in _OPEN:
        return _OPEN[folder]
    con = files.connect(path, read_only=True)
    try:
        info, states = catalog.info(con), catalog.tables(con)
    finally:
        con.close()
    if info.get(catalog.UNFINISHED):  # half of a refresh's writes answer as if the store were whole
        started = _utc(info[catalog.UNFINISHED]).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise NotFound(f"the store in {folder} is unfinished: its last refresh (started {started}) stopped before it completed",
                       hint="run `rca cache refresh --db URL`: it mends the store")
    engine = sa.create_engine("duckdb:///:memory:", poolclass=NullPool)

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect, conn_rec, cargs, cparams):
        from duckdb_engine import ConnectionWrapper

        return ConnectionWrapper(files.connect(path, read_only=True))

    requirements.pin_schema(engine, {name: _table_info(name, state.columns) for name, state in states.items()})
    _ZONES[engine] = info.get("storage_zone") or "UTC"
    engine.rca_label = f"{info.get('source', 'an unknown database')} (local store {folder.name}{_as_of(info)})"
    engine.rca_store = str(folder)
    _OPEN[folder] = engine
    return engine


def _as_of(info: dict) -> str:
    """``, as of <when the last refresh started> UTC``: a report read from the store says how old its data is, and
    when the older rows were last checked for changes and deletions if that was before (a store written before
    the catalog kept that time was checked at every refresh)."""
    when, checked = refreshed_at(info), checked_at(info)
    if when is None:
        return ""
    older = "" if checked is None or checked >= when else f"; older rows checked {checked:%Y-%m-%d %H:%M} UTC"
    return f", as of {when:%Y-%m-%d %H:%M:%S} UTC{older}"


def read_note(engine: sa.Engine) -> str | None:
    """``read from <the store's label>`` for a result read from a store, else None. Why in the result: a report's
    header names the database, while the store is a copy as old as its last refresh, and for rows older than its
    trailing window as old as its last check (``cache_check_every_s``)."""
    return f"read from {engine.rca_label}" if is_store(engine) else None


def refreshed_at(info: dict) -> pd.Timestamp | None:
    """When the store's last complete refresh started (UTC), from its catalog; None before the first."""
    return _utc(info.get("refreshed_at_utc"))


def checked_at(info: dict) -> pd.Timestamp | None:
    """When the last refresh that checked the rows older than its trailing window started (UTC; a store built whole
    counts), from its catalog; None when none did."""
    return _utc(info.get("checked_at_utc"))


def _utc(value) -> pd.Timestamp | None:
    return None if not value else pd.Timestamp(value).tz_convert("UTC")


def _table_info(name: str, columns: dict) -> TableInfo:
    spec = BY_NAME.get(name)
    return TableInfo(name=name, columns=dict(columns), primary_key=[spec.key] if spec else [])


def close(folder: Path) -> None:
    """Forget this process's engine on ``folder`` (before it is written or dropped)."""
    engine = _OPEN.pop(Path(folder), None)
    if engine is not None:
        with _ONE_QUERY:
            _release(engine)
        engine.dispose()


_NATIVE: "weakref.WeakKeyDictionary[sa.Engine, duckdb.DuckDBPyConnection]" = weakref.WeakKeyDictionary()
_IDLE: "weakref.WeakKeyDictionary[sa.Engine, threading.Timer]" = weakref.WeakKeyDictionary()
# The store file is closed this long after its last statement. Why: DuckDB lets no refresh write a file that any
# process reads, and a notebook's kernel keeps its engine until it is shut down (a scheduled report's refresh then
# waited for it and failed); opened for every statement instead, a compare took 5-10 % longer
IDLE_S = 2.0
# One statement on the store at a time per process: statements running side by side (``rca compare`` reads its
# histograms on other threads) share DuckDB's memory limit, and their joins then failed with "Out of Memory"
# now and then at 1M calls; one at a time each has the whole limit (the Python work still overlaps).
_ONE_QUERY = threading.Lock()
# What the analyses' statements start with: DuckDB keeps the blocks it read cached up to its limit, beside the
# frames in pandas (a two-month compare at 1M calls: 1.1 GiB at 256 MiB, 0.97 GiB at 128 MiB); a statement that
# needs more is run again with more (_with_memory)
READ_MIB = 128
# NULL sorts before every value, as SQLite and MariaDB sort it (DuckDB's own default puts it last): a statement's
# ORDER BY gives the store's rows in the order the database read directly gives them
NULL_ORDER = "nulls_first_on_asc_last_on_desc"


def query_frame(engine: sa.Engine, sql: str, params: dict) -> pd.DataFrame:
    """One statement on the store, its rows as a frame straight from DuckDB (columnar: a million rows in a
    second, where fetching them row by row through SQLAlchemy took ten). Same SQL and parameters as
    ``pd.read_sql`` of ``sa.text(sql)``; bound values stay parameters (those the statement does not name are
    left out, as SQLAlchemy leaves them)."""
    compiled = sa.text(sql).compile(dialect=engine.dialect)
    values = [params[name] for name in compiled.positiontup or []]
    with _ONE_QUERY:
        native = _NATIVE.get(engine)
        if native is None:
            native = _NATIVE[engine] = files.connect(Path(engine.rca_store) / files.STORE_FILE, read_only=True)
            native.execute(f"SET memory_limit = '{READ_MIB}MiB'")
            native.execute(f"SET default_null_order = '{NULL_ORDER}'")
        try:
            frame = _with_memory(native, compiled.string, values)
        finally:  # closed when no statement follows within IDLE_S
            if timer := _IDLE.pop(engine, None):
                timer.cancel()
            timer = _IDLE[engine] = threading.Timer(IDLE_S, _release_when_idle, [engine])
            timer.daemon = True
            timer.start()
    for column, dtype in frame.dtypes.items():  # the widths pd.read_sql hands back (int32 refuses int64 values)
        if dtype.kind in "iu" and dtype not in ("int64", "Int64"):
            frame[column] = frame[column].astype("Int64" if isinstance(dtype, pd.api.extensions.ExtensionDtype) else "int64")
        elif dtype.kind == "f" and dtype != "float64":
            frame[column] = frame[column].astype("float64")
    return frame


def _release_when_idle(engine: sa.Engine) -> None:
    with _ONE_QUERY:
        if _IDLE.get(engine) is threading.current_thread():  # else a later statement set a timer of its own
            _release(engine)


def _release(engine: sa.Engine) -> None:
    """Close this process's connection to the store of ``engine`` (under ``_ONE_QUERY``)."""
    if timer := _IDLE.pop(engine, None):
        timer.cancel()
    if native := _NATIVE.pop(engine, None):
        native.close()


def _with_memory(native, sql: str, values: list) -> pd.DataFrame:
    """Run one statement at ``READ_MIB``; one that needs more (a join of a year of sessions to every call) is
    run again at twice the limit, up to a quarter of the machine's memory, and the limit set back after."""
    limit = READ_MIB
    try:
        while True:
            try:
                return _frame(native, sql, values)
            except duckdb.OutOfMemoryException:
                if limit * 2 > memory_ceiling_mib():
                    raise
                limit *= 2
                log.info("a statement on the store needed more than %d MiB: run again with %d MiB", limit // 2, limit)
                native.execute(f"SET memory_limit = '{limit}MiB'")
    finally:
        if limit != READ_MIB:
            native.execute(f"SET memory_limit = '{READ_MIB}MiB'")


BATCH_ROWS = 100_000  # rows per Arrow batch streamed out of DuckDB
ARROW_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # the str dtype DuckDB's own frames have, its texts kept in Arrow


def _frame(native, sql: str, values: list) -> pd.DataFrame:
    """The statement's rows streamed out as Arrow; texts stay in Arrow (``ARROW_TEXT``), every other column is
    converted by DuckDB as its own ``.df()`` converts it. Why: a Python object per text per row cost time and memory
    Python kept after the texts became categories (``loaders.calls`` of a million sessions: the frame read 863 -> 385
    MiB, 4.0-4.7 -> 3.4-3.7 s; held after 1,460 -> 940-1,170 MiB), with the same str semantics (a missing text is NaN).
    Only ``sources`` sees them so: ``loaders.typed`` makes them categories in Arrow, or the toolkit's Python-backed
    text (``rca_toolkit.frames``: ``isin`` over Arrow text with 100k values to look up takes ten times as long)."""
    relation = native.cursor().sql(sql, params=values or None)
    table = relation.to_arrow_reader(BATCH_ROWS).read_all()
    texts = [i for i, f in enumerate(table.schema) if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    others = [i for i in range(table.num_columns) if i not in texts]
    frame = native.from_arrow(table.select(others)).df() if others else pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for i in texts:  # by position: a statement may name two columns alike
        frame.insert(i, table.column_names[i], pd.Series(table.column(i).to_pandas(types_mapper=lambda _: ARROW_TEXT)),
                     allow_duplicates=True)
    frame.columns = table.column_names  # as the statement names them, twice if it does (as pd.read_sql gives them)
    del table
    pa.default_memory_pool().release_unused()  # what the batches held beside the texts (mimalloc keeps it: +90 MiB)
    return frame


def memory_ceiling_mib() -> int:
    """A quarter of the machine's memory, in MiB: the most one statement on the store may take."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4 // 2 ** 20


def fresh_store(source: sa.Engine, folder: Path, storage_zone: str, *, max_age_s: float = FRESH_FOR_S,
                max_rows_per_s: float | None = None, check_every_s: float = CHECK_EVERY_S) -> sa.Engine:
    """The store of ``source`` in ``folder``, opened read-only after :func:`refresh_if_old`.

    Why: an analyst's second command a minute after the first need not read the server again (a refresh
    finding nothing new still costs the server its window and count reads); the reports name the store's
    time (its label), ``rca cache refresh`` or ``--no-cache`` read now."""
    refresh_if_old(source, folder, storage_zone, max_age_s=max_age_s, max_rows_per_s=max_rows_per_s,
                   check_every_s=check_every_s)
    return open_store(Path(folder))


def refresh_if_old(source: sa.Engine, folder: Path, storage_zone: str, *, max_age_s: float = FRESH_FOR_S,
                   max_rows_per_s: float | None = None, check_every_s: float = CHECK_EVERY_S):
    """Refresh the store in ``folder`` (at most ``max_rows_per_s`` rows a second) unless a refresh (by any process)
    started less than ``max_age_s`` seconds ago from the same kind of source in the same zone; what the refresh
    did, or None when there was none. It checks the rows older than its trailing window only when the last check
    started more than ``check_every_s`` ago: that check reads every table whole on the server."""
    folder = Path(folder)
    info = _info(folder)  # read once for both ages
    if _seconds_since(info, refreshed_at, source, storage_zone) <= max_age_s:
        return None
    close(folder)
    check_old = _seconds_since(info, checked_at, source, storage_zone) > check_every_s
    return extract.refresh(source, folder, storage_zone=storage_zone, max_rows_per_s=max_rows_per_s, check_old=check_old)


def check_due(folder: Path, source: sa.Engine, storage_zone: str, check_every_s: float) -> bool:
    """Whether the store's older rows are due to be checked: the last check started more than ``check_every_s`` ago
    (or there was none, or the store will be built whole)."""
    return _seconds_since(_info(Path(folder)), checked_at, source, storage_zone) > check_every_s


def age_s(folder: Path, source: sa.Engine, storage_zone: str) -> float:
    """Seconds since the store's last refresh started (infinite when there is none, or when it was read from
    another kind of database, in another zone or written in an older format: the next refresh builds it whole,
    however recent it is, before a statement asks for a column it lacks)."""
    return _seconds_since(_info(Path(folder)), refreshed_at, source, storage_zone)


def _info(folder: Path) -> dict | None:
    """The store's catalog info (None when there is no store); a connection of its own (DuckDB shares one open
    database between a process's connections: cheap while this process's statements keep it open)."""
    path = folder / files.STORE_FILE
    if not path.exists():
        return None
    con = files.connect(path, read_only=True)
    try:
        return catalog.info(con)
    finally:
        con.close()


def _seconds_since(info: dict | None, time_of, source: sa.Engine, storage_zone: str) -> float:
    """Seconds since the time ``time_of(info)`` names (:func:`refreshed_at`, :func:`checked_at`), infinite as
    :func:`age_s` says."""
    when = None if info is None else time_of(info)
    if (when is None or info.get("storage_zone") != storage_zone or info.get("dialect") != source.dialect.name
            or info.get("format") != catalog.FORMAT):
        return float("inf")
    return max(0.0, (pd.Timestamp.now("UTC") - when).total_seconds())


def status(folder: Path) -> dict | None:
    """What the store in ``folder`` holds (None when there is none): its source, size and, per table, the rows,
    the high-water key, the first and last row time, when it was built whole and last refreshed."""
    folder = Path(folder)
    path = folder / files.STORE_FILE
    if not path.exists():
        return None
    close(folder)
    con = files.connect(path, read_only=True)
    try:
        info, states = catalog.info(con), catalog.tables(con)
    finally:
        con.close()
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    zone = info.get("storage_zone") or "UTC"

    def instant(value):  # the source's wall time as an instant (an ambiguous hour read as its first pass)
        if value is None:
            return None
        return pd.Timestamp(value).tz_localize(zone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")

    return {"folder": str(folder), "bytes": size, "source": info.get("source"), "storage_zone": info.get("storage_zone"),
            "refreshed_at_utc": refreshed_at(info), "checked_at_utc": checked_at(info),
            "unfinished_refresh_started_utc": _utc(info.get(catalog.UNFINISHED)), "others_can_read": files.open_to_others(folder),
            "tables": [{"table": s.name, "rows": s.rows, "high_key": s.high_key, "first": instant(s.first_time), "last": instant(s.last_time),
                        "built_at_utc": s.built_at, "refreshed_at_utc": s.refreshed_at, "rows_read": s.rows_read}
                       for s in states.values()]}
