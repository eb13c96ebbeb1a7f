"""Fill and refresh a store: sequential reads in key order, only what changed since the last refresh.

Why: the analyses used to ask the production server for every window again; on a server at its default
settings those reads are random I/O (uuid joins, index lookups) and a daily report re-aggregated five weeks
to add one day. Here each table is read once in primary-key order, in chunks (keyset pagination: every chunk
is one index range), and then only:

1. rows past the high-water key (new rows);
2. the trailing window, ``trailing`` back from the newest row time the store holds, read again whole: rows
   that change after insert (sessions that end, traces that complete, webhooks that get processed) and rows
   deleted there come out right (only the rows that differ from the stored ones are rewritten);
3. rows whose ``updated_at`` is at or after the newest one stored (minus a minute), however old they are;
4. when the table's row count (and, for integer keys, the sum of its keys; both of the rows up to the
   high-water key the store had, or before the trailing window for uuid keys, so rows written while the
   refresh runs never count as a difference) still differs from the store's, the keys: rows deleted (or
   inserted below the high-water key) anywhere are found and mended.

5. every trace and error row keeps its session's columns (``tables.SESSION_COLUMNS``), set again for the rows
   written and for the rows of the sessions written or deleted by this refresh.

Steps 3 and 4 (the check of the rows older than the window) run when ``check_old`` is true: ``rca cache
refresh`` always, the refresh an analysis makes first when the last check is older than ``cache_check_every_s``
(:func:`rca_toolkit.sources.store.engine.refresh_if_old`). Why not every time: with no index on ``updated_at``
they read every row of every table, 2.5 times the rows a naive report reads (``benchmarks/FINDINGS.md``), where a
day's refresh otherwise reads a few percent. The catalog keeps when the last check started (``checked_at_utc``,
which the reports' source names) and, per table, the newest ``updated_at`` it had then (``check_since.<table>``):
the next check asks for every row changed since, however many refreshes skipped it.

Steps 3 and 4 ask the source one question per table (count, key sum and changed rows in one scan: with no
index on ``updated_at`` it reads the table anyway), on two other connections. What steps 1-3 cover is decided
from the store first, so every table's question is asked before the first read and the server's scans run
beside all the reads. Those scans read every row of every table: with a rate limit they are asked a range of
keys at a time, and the rows they scan count against the limit as the rows read do (``Refresh.rows_checked``).

A store whose timestamps were read in another zone (``storage_zone``) or from another kind of database is
built whole again: naive wall times of two zones must never sit in one table.

Text that can hold personal data (``tables.StoredTable.masked``) is masked by the one rule
(:mod:`rca_toolkit.sources.formats.masking`) before it is written. Nothing is written to the source: its
engine comes from the read-only gate.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql.util import ClauseAdapter

from rca_toolkit.rules import call_ids, personal_data
from rca_toolkit.errors import ConnectionFailed, RcaError
from rca_toolkit.sources import db_errors
from rca_toolkit.sources.db import (TableInfo, bulk_source, database_error, introspect, naive_param, redact_url,
                                     secrets_of)
from rca_toolkit.sources.formats import masking
from rca_toolkit.sources.store import catalog, files
from rca_toolkit.sources.store.tables import SESSION_COLUMNS, SESSION_REAL, SESSIONS, TABLES, StoredTable

log = logging.getLogger(__name__)
# Rows per read and per insert: DuckDB's row group size, so a table built whole is made of full row groups. Why: built
# from chunks of 100,000, the first checkpoint after rows were added merged them into full ones (1 s of the day-2
# refresh at 1M calls).
CHUNK = 122_880
# Rows without updated_at change after insert only while their call runs (traces complete, errors are
# written); the cleanup jobs close calls stuck for more than 2 h (data contract P5, P20). 12 h is six times
# that: a day's refresh then reads the new day and half a day again, not three days.
TRAILING = pd.Timedelta(hours=12)
UPDATED_SLACK = pd.Timedelta(minutes=1)
TOUCHED = "_rca_touched_sessions"  # sessions written or deleted by this refresh: their traces' and errors' columns are set again
BATCH = 200_000  # touched sessions per statement of step 5
MAX_PREFIX_VALUES = 1000  # values of a window prefix asked as ranges (StoredTable.window_prefix)
WINDOW, UNCHANGED = "_rca_window", "_rca_unchanged"  # step 2: the source's rows of the trailing window, those stored already


@dataclass
class Refresh:
    """What one refresh did, per table: rows read from the source (``keys_read``: keys alone, read to find
    deleted rows; ``rows_checked``: rows the server scanned to find changed and deleted ones, none sent), and
    whether the table was built whole."""

    path: Path
    rows_read: dict = field(default_factory=dict)
    keys_read: dict = field(default_factory=dict)
    rows_checked: dict = field(default_factory=dict)
    built: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    seconds: float = 0.0
    checked_old: bool = False  # the rows older than the trailing window were checked (steps 3-4), or all built whole

    @property
    def total_read(self) -> int:
        return sum(self.rows_read.values())


def duck_type(source_type: str) -> str:
    """The store's type for a source column type (its SQL text as the live schema reports it)."""
    text = source_type.upper()
    if "INT" in text or "BOOL" in text:
        return "BIGINT"
    if any(k in text for k in ("DECIMAL", "NUMERIC", "FLOAT", "DOUBLE", "REAL")):
        return "DOUBLE"
    if "TIME" in text or text == "DATE":
        return "TIMESTAMP"
    return "VARCHAR"


def redact_phone(values: pd.Series) -> pd.Series:
    """A phone-number column (``calls.from_number``) as the mask: every text that is not blank becomes
    ``[PHONE]``, so the store never holds a caller's number (finding each distinct number costs 0.5 ms)."""
    text = values.astype("object")
    filled = text.map(lambda v: isinstance(v, str) and bool(v.strip())).astype(bool)
    return text.where(~filled, personal_data.PHONE_MASK)


class _Reader:
    """Chunked reads from the source, counting rows (and keys read alone, and rows the checks scanned) and keeping
    to ``max_rows_per_s``: all three count as rows there, from every thread."""

    def __init__(self, engine: sa.Engine, max_rows_per_s: float | None):
        self.engine, self.rate, self.started = engine, max_rows_per_s, time.monotonic()
        self.read = self.keys = self.checked = 0
        self._lock = threading.Lock()

    def count(self, rows: int, kind: str = "read") -> None:
        """Count ``rows`` as ``kind`` (``read``, ``keys`` or ``checked``), then wait while ahead of the rate."""
        with self._lock:
            setattr(self, kind, getattr(self, kind) + rows)
            done = self.read + self.keys + self.checked
        ahead = done / self.rate - (time.monotonic() - self.started) if self.rate else 0
        if ahead > 0:
            time.sleep(ahead)

    def frame(self, statement, *, keys: bool = False):
        """The rows of ``statement``: an Arrow table read by connectorx where the gate offers a bulk source
        (MariaDB: eight times faster than pymysql, same session settings), else a pandas frame."""
        bulk = bulk_source(self.engine)
        if bulk is not None:
            frame = self._bulk(statement, bulk)
            if keys:
                frame = frame.to_pandas()
        else:
            try:
                with self.engine.connect() as conn:
                    frame = pd.read_sql(statement, conn)
            except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:
                raise database_error(self.engine, exc, doing="filling the local store") from None
        self.count(len(frame), "keys" if keys else "read")
        return frame

    def _bulk(self, statement, bulk):
        import connectorx

        sql = str(statement.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        try:
            return connectorx.read_sql(bulk.uri, sql, return_type="arrow", pre_execution_query=bulk.session)
        except Exception as exc:  # noqa: BLE001 - connectorx raises RuntimeError/ValueError with the server's text
            text = db_errors.first_line(exc, secrets_of(self.engine))
            raise ConnectionFailed(f"reading {redact_url(self.engine.url)} into the local store failed: {text}",
                                   hint="check that the server is up and the user may read the table") from None

    def values(self, statement) -> list:
        """The first column of ``statement``'s rows (a few; counted as rows read)."""
        found = self._fetch(statement, lambda result: result.scalars().all())
        self.count(len(found))
        return found

    def row(self, statement) -> tuple:
        return self._fetch(statement, lambda result: tuple(result.one()))

    def _fetch(self, statement, take):
        """``take(result)`` of ``statement`` on a connection of its own (small answers: no rate limit)."""
        try:
            with self.engine.connect() as conn:
                return take(conn.execute(statement))
        except sa.exc.DBAPIError as exc:
            raise database_error(self.engine, exc, doing="filling the local store") from None


def refresh(source: sa.Engine, path: Path, *, storage_zone: str, full: bool = False, trailing=TRAILING,
            max_rows_per_s: float | None = None, chunk: int = CHUNK, check_old: bool = True) -> Refresh:
    """Bring the store in ``path`` up to date with ``source`` (built whole when ``full``, new, or when a
    table's columns changed). ``storage_zone`` is the zone the source's naive timestamps are in; ``check_old``
    runs steps 3-4 (rows changed or deleted before the trailing window)."""
    started = time.perf_counter()
    files.make_private(path)
    live = introspect(source, [t.name for t in TABLES])
    result = Refresh(path)
    reader = _Reader(source, max_rows_per_s)
    try:
        with files.writer_lock(path):
            _refresh_store(source, path, live, reader, result, storage_zone=storage_zone, full=full, trailing=trailing,
                           chunk=chunk, check_old=check_old)
    except duckdb.Error as exc:  # the store's disk or file, not this code: the user can act on it
        text = str(exc)
        if "Could not write" in text or "No space left" in text:  # a commit's write, too
            hint = ("free space there or set cache_dir (RCA_CACHE_DIR) to another disk; the store is left unfinished "
                    "and the next refresh mends it")
        elif isinstance(exc, duckdb.IOException) or "Corrupt database file" in text:
            hint = "the file is damaged: `rca cache refresh --full --db URL` builds it again, `rca cache drop --db URL` deletes it"
        else:
            raise
        raise RcaError(f"the refresh of the store {path} stopped: {text.splitlines()[0]}", hint=hint) from None
    finally:  # DuckDB makes its files by the umask: owner-only again, even after a failed refresh
        files.make_private(path)
    # the chunks' Arrow buffers back to the system: the analysis that follows in this process has that memory
    # (a cold two-month compare at 1M calls peaked 40 MiB lower)
    pa.default_memory_pool().release_unused()
    result.seconds = time.perf_counter() - started
    log.info("store %s: %d rows and %d keys read in %.1f s (%s built whole)", path, result.total_read,
             sum(result.keys_read.values()), result.seconds, ", ".join(result.built) or "none")
    return result


def _refresh_store(source: sa.Engine, path: Path, live: dict, reader: _Reader, result: Refresh, *, storage_zone: str,
                   full: bool, trailing, chunk: int, check_old: bool) -> None:
    started = pd.Timestamp.now("UTC")
    con = files.connect(path / files.STORE_FILE, read_only=False)  # a reader's lock waited for; a damaged file said
    try:
        catalog.ensure(con)
        before = catalog.info(con)
        stopped = before.get(catalog.UNFINISHED)
        if stopped and before.get(catalog.UNFINISHED_FULL):
            log.info("store %s: its last refresh (started %s), a whole build, stopped before it completed: built whole "
                     "again", path, stopped)
            full = True
        elif any(before.get(k) not in (None, now) for k, now in (("storage_zone", storage_zone), ("dialect", source.dialect.name))):
            log.info("store %s: its rows were read in %s from %s, now %s from %s: built whole again", path,
                     before.get("storage_zone"), before.get("dialect"), storage_zone, source.dialect.name)
            full = True
        elif before.get("format") not in (None, catalog.FORMAT):
            log.info("store %s: written in format %s, now %s: built whole again", path, before.get("format"), catalog.FORMAT)
            full = True
        recover = bool(stopped) and not full
        if recover:
            log.info("store %s: its last refresh (started %s) stopped before it completed: its older rows are checked "
                     "and every trace's and error's session columns set again", path, stopped)
            check_old = True
        # marked before the first write, unmarked by the last: a refresh stopped anywhere (Ctrl-C, a cron's timeout,
        # memory) leaves a store that no analysis reads as it is and that the next refresh mends: it checks the rows
        # older than its window (rows a stopped step left missing or stale) and sets every session column again, or
        # builds whole after a stopped whole build (a new zone's rows beside an old one's). Why: the steps depend on
        # each other (step 5 sets the session columns of rows whose session an earlier step wrote), and a store left
        # half-way looked whole to the next refresh. One transaction would hold a build's rows in memory (at 1M
        # calls 4 GiB, against 0.9)
        catalog.write_info(con, format=catalog.FORMAT, source=redact_url(source.url), dialect=source.dialect.name,
                           storage_zone=storage_zone, refreshed_at_utc=None,
                           **{catalog.UNFINISHED: started.isoformat(), catalog.UNFINISHED_FULL: "1" if full else None})
        states, marks = catalog.tables(con), {} if full else catalog.check_marks(before)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {TOUCHED} (id VARCHAR)")
        if recover:
            _touch_every_session(con)
        with ThreadPoolExecutor(max_workers=2) as checks:  # the tables' checks scan the source beside the reads
            planned = []
            for spec in TABLES:
                if spec.name not in live:
                    con.execute(f'DROP TABLE IF EXISTS "{spec.name}"')
                    catalog.forget_table(con, spec.name)
                    result.missing.append(spec.name)
                    continue
                planned.append(_plan_table(con, reader, spec, live[spec.name], states.get(spec.name), full=full,
                                           trailing=pd.Timedelta(trailing), checks=checks if check_old else None,
                                           since=marks.get(spec.name), chunk=chunk))
            for table in planned:
                _read_table(con, reader, table, chunk)
            for table in planned:
                _finish_table(con, reader, table, chunk, result)
        _keep_session_columns(con, planned)
        result.checked_old = check_old or all(read.rebuilt for read in planned)
        for read in planned:  # what the next check asks from: the newest change of the rows checked or built now
            if read.spec.updated in read.columns and (result.checked_old or read.rebuilt):
                newest = _one(con, f'SELECT max("{read.spec.updated}") FROM "{read.spec.name}"')
                catalog.write_check_mark(con, read.spec.name, newest)
        if result.checked_old:
            catalog.write_info(con, checked_at_utc=started.isoformat())
        # complete: what fresh_store's age counts from
        catalog.write_info(con, refreshed_at_utc=started.isoformat(), **{catalog.UNFINISHED: None, catalog.UNFINISHED_FULL: None})
        con.execute("CHECKPOINT")
    finally:
        con.close()


@dataclass
class _Window:
    """What an incremental read covers, decided from the store before the source is asked (steps 1-2)."""

    high: int | None  # the high-water key (integer keys), None when the store holds none
    lo: int | None  # the trailing window's first key (integer keys), None when there is no window
    bound: pd.Timestamp | None  # the trailing window's first time, None when there is no window
    changed: object  # the rows changed since the last refresh outside the window (step 3), None when not looked for


@dataclass
class _Read:
    """A table to read whole (``window`` None) or from its window; its check (``_check``) runs on another
    connection, started before the reads when the window is known."""

    spec: StoredTable
    table: sa.TableClause
    columns: dict
    window: _Window | None
    built_at: object
    refreshed_at: object
    check: Future | None = None
    counted: tuple | None = None  # what the check compares (_counted), None for all rows
    rows_read: int = 0
    keys_read: int = 0
    touched_mark: int = 0  # sessions touched before this table was built whole are in its rows already (step 5)

    @property
    def rebuilt(self) -> bool:
        return self.window is None


def _plan_table(con, reader: _Reader, spec: StoredTable, info: TableInfo, state, *, full: bool, trailing,
                checks: ThreadPoolExecutor | None, since, chunk: int) -> _Read:
    """Whether ``spec`` is built whole or read from its window; an incremental table's check (none when ``checks``
    is None) is started at once, so the checks' table scans on the server overlap every table's reads. ``since``:
    the newest ``updated_at`` the store held at the last check (None: the newest it holds now)."""
    columns = {c: info.columns[c] for c in (spec.columns or info.columns) if c in info.columns}
    if spec.key not in columns:
        columns = {spec.key: info.columns.get(spec.key, "VARCHAR"), **columns} if spec.key in info.columns else columns
    now = pd.Timestamp.now("UTC").tz_localize(None)
    table = sa.table(spec.name, *[sa.column(c) for c in columns])
    if full or spec.whole or state is None or state.columns != columns or spec.key not in columns:
        return _Read(spec, table, columns, None, now, now)
    window = _window(con, reader, spec, table, columns, trailing, since)
    if checks is None:
        return _Read(spec, table, columns, window, state.built_at, now)
    counted = _counted(reader, spec, table, window)
    indexed = any(list(ix.get("column_names") or [])[:1] == [spec.updated] for ix in info.indexes)
    check = checks.submit(_ask_check, reader, spec, table, window.changed, counted and counted[0], chunk, indexed)
    return _Read(spec, table, columns, window, state.built_at, now, check, counted)


def _read_table(con, reader: _Reader, read: _Read, chunk: int) -> None:
    """A table built whole, or its window read (steps 1-2). A table built whole is not checked: rows deleted or
    changed while it was read are what the next refresh's checks find, as for rows changed after any refresh. Why:
    the check scanned every table a second time right after the build (at 1M calls 9M rows more for the server to
    read), and a row written after the last chunk sent a busy table to be mended by keys (every key read)."""
    spec, table, columns = read.spec, read.table, read.columns
    before, keys_before = reader.read, reader.keys
    if read.rebuilt:
        read.touched_mark = _one(con, f"SELECT count(*) FROM {TOUCHED}")
        con.execute(f'DROP TABLE IF EXISTS "{spec.name}"')
        ddl = ", ".join(f'"{c}" {duck_type(t)}' for c, t in {**columns, **_derived(spec, columns)}.items())
        ddl += "".join(f', "{c}" {t}' for c, t in _session_ddl(spec, columns).items())
        con.execute(f'CREATE TABLE "{spec.name}" ({ddl})')
        if spec.key in columns:
            _read_keyset(con, reader, spec, table, columns, None, chunk)
        else:
            _insert(con, spec, columns, reader.frame(sa.select(table)))
    else:
        _read_window(con, reader, spec, table, columns, read.window, chunk)
    read.rows_read, read.keys_read = reader.read - before, reader.keys - keys_before


def _check(spec: StoredTable, table, changed, counted):
    """Steps 3 and 4 asked in one scan: how many rows are ``changed`` since the last refresh (the ``updated_at``
    test reads the whole table anyway: no index has it), the source's row count and key sum of the rows
    ``counted`` names (:func:`_counted`; all rows when None), and the rows scanned. Counted by ``CASE`` in the
    same scan: a ``WHERE`` on the key makes MariaDB read the clustered index instead of a small secondary one."""
    key = table.c[spec.key]
    asked = [sa.null() if changed is None else sa.func.sum(sa.case((changed, 1), else_=0))]
    if counted is None:
        asked += [sa.func.count(), sa.func.sum(key) if spec.integer_key else sa.null()]
    else:
        asked += [sa.func.sum(sa.case((counted, 1), else_=0)),
                  sa.func.sum(sa.case((counted, key), else_=0)) if spec.integer_key else sa.null()]
    return sa.select(*asked, sa.func.count()).select_from(table)


def _ask_check(reader: _Reader, spec: StoredTable, table, changed, counted, chunk: int, indexed: bool = False) -> tuple:
    """:func:`_check`'s answer ``(changed, rows, key sum, rows scanned)``. Without a rate limit one statement, a scan
    at the server's pace. With one, a range of keys at a time (about a second of the rate, at most ``chunk``), each
    range's rows counted against the limit: the scan reads every row of the table, more than any read sends.

    Where an index of the source leads with ``updated_at`` (``indexed``), the changed rows are counted apart, a range
    of it, and the count and key sum read the smallest index instead of every row: at 1M calls the four tables'
    checks read 76 MB from disk instead of 1.37 GB (``benchmarks/FINDINGS.md``)."""
    if indexed and changed is not None:
        found = reader.row(sa.select(sa.func.count()).select_from(table).where(changed))[0]
        return (found, *_ask_check(reader, spec, table, None, counted, chunk)[1:])
    if not reader.rate:
        answer = reader.row(_check(spec, table, changed, counted))
        reader.count(int(answer[3]), "checked")
        return answer
    key, size = table.c[spec.key], max(1, min(chunk, int(reader.rate)))
    used = [table.c[c] for c in dict.fromkeys((spec.key, spec.time, spec.updated)) if c is not None and c in table.c]
    totals, last = [0, 0, 0, 0], None
    while True:
        keys = sa.select(*used).order_by(key).limit(size)
        part = (keys if last is None else keys.where(key > last)).subquery("checked")
        adapt = ClauseAdapter(part).traverse  # the conditions on the table's columns, asked of the range's
        asked = _check(spec, part, None if changed is None else adapt(changed), None if counted is None else adapt(counted))
        *answer, last = reader.row(asked.add_columns(sa.func.max(part.c[spec.key])))
        totals = [total + int(value or 0) for total, value in zip(totals, answer)]
        reader.count(int(answer[3]), "checked")
        if int(answer[3]) < size:
            return tuple(totals)


def _counted(reader: _Reader, spec: StoredTable, table, window: _Window | None):
    """The rows steps 3-4 compare, as a source condition and the store's SQL twin, or None for
    all: those up to the high-water key the store had (integer keys), or those before the trailing window (uuid
    keys). Rows written while the refresh runs lie past them (step 1's or the window's, or the next refresh's),
    so they never count as a difference that sends a busy table to be mended by keys."""
    if window is None:
        return None
    if spec.integer_key and window.high is not None:
        return table.c[spec.key] <= window.high, f'"{spec.key}" <= {window.high}'
    if not spec.integer_key and window.bound is not None:
        when = table.c[spec.time]
        return (sa.or_(when < naive_param(window.bound, reader.engine), when.is_(None)),
                f'("{spec.time}" < TIMESTAMP \'{window.bound:%Y-%m-%d %H:%M:%S}\' OR "{spec.time}" IS NULL)')
    return None


def _finish_table(con, reader: _Reader, read: _Read, chunk: int, result: Refresh) -> None:
    """The changed rows replaced, the keys mended when the source's count or key sum still differs, the catalog."""
    spec, before, keys_before = read.spec, reader.read, reader.keys
    if read.check is not None:
        changed, source_rows, source_sum, result.rows_checked[spec.name] = read.check.result()
        if int(changed or 0):
            _replace_keys(con, spec, read.columns, reader.frame(sa.select(read.table).where(read.window.changed)))
        _mend_by_keys(con, reader, spec, read.table, read.columns, chunk, int(source_rows or 0), source_sum,
                      read.counted and read.counted[1])
    rows, high, first, last = _summary(con, spec, read.columns)
    result.rows_read[spec.name] = read.rows_read + reader.read - before
    result.keys_read[spec.name] = read.keys_read + reader.keys - keys_before
    if read.rebuilt:
        result.built.append(spec.name)
    catalog.write_table(con, catalog.TableState(spec.name, read.columns, rows, high, read.built_at, read.refreshed_at,
                                                result.rows_read[spec.name], first, last))


def _read_keyset(con, reader: _Reader, spec: StoredTable, table, columns: dict, start, chunk: int) -> None:
    """Rows with key past ``start``, in key order, ``chunk`` at a time; the next chunk is read while this one is
    masked and written (the server's work and ours overlap)."""
    key = table.c[spec.key]

    def after(last):
        query = sa.select(table).order_by(key).limit(chunk)
        return query if last is None else query.where(key > last)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(reader.frame, after(start))
        while True:
            frame = pending.result()
            if len(frame) == 0:
                return
            if len(frame) >= chunk:
                pending = pool.submit(reader.frame, after(_last_key(frame, spec.key)))
            _insert(con, spec, columns, frame)
            if len(frame) < chunk:
                return


def _window(con, reader: _Reader, spec: StoredTable, table, columns: dict, trailing, since=None) -> _Window:
    """The window of steps 1-2 from what the store holds, and the condition of step 3 (rows updated since,
    outside the window). The trailing window starts ``trailing`` before the newest row time stored; its key
    range comes from the store (short where keys grow with time), its time bound from the rows, so the server
    returns only the window even where keys and time disagree (imports, the benchmark world's copies)."""
    name, key, when = spec.name, spec.key, spec.time
    # the newest change the store holds, taken before the window is read again: rows read there carry the
    # source's newer updated_at, and an old row changed before them would otherwise fall below the bound
    if spec.updated not in columns:
        since = None
    elif since is None:
        since = _one(con, f'SELECT max("{spec.updated}") FROM "{name}"')
    high = lo = bound = older = None
    if spec.integer_key:
        high = _one(con, f'SELECT max("{key}") FROM "{name}"')
        high = None if high is None else int(high)
        newest = None if high is None or when not in columns else _one(con, f'SELECT max("{when}") FROM "{name}"')
        if newest is not None:
            bound = (pd.Timestamp(newest) - trailing).floor("s")
            lo = int(_one(con, f'SELECT min("{key}") FROM "{name}" WHERE "{when}" >= ?', [bound.to_pydatetime()]))
            older = sa.and_(table.c[key] <= high, sa.or_(table.c[key] < lo,
                                                         table.c[when] < naive_param(bound, reader.engine),
                                                         table.c[when].is_(None)))
    else:  # uuid keys: the window is a time range
        newest = _one(con, f'SELECT max("{when}") FROM "{name}"')
        if newest is not None:
            bound = (pd.Timestamp(newest) - trailing).floor("s")
            older = table.c[when] < naive_param(bound, reader.engine)
    if since is None:
        return _Window(high, lo, bound, None)
    updated = table.c[spec.updated] >= naive_param((pd.Timestamp(since) - UPDATED_SLACK).floor("s"), reader.engine)
    return _Window(high, lo, bound, updated if older is None else sa.and_(updated, older))


def _read_window(con, reader: _Reader, spec: StoredTable, table, columns: dict, window: _Window, chunk: int) -> None:
    """1. Rows past the high-water key; 2. the trailing window read again, replacing what the store holds there
    (rows that changed or went)."""
    key, when = spec.key, spec.time
    if spec.integer_key:
        _read_keyset(con, reader, spec, table, columns, window.high, chunk)
        if window.lo is not None:
            rows = sa.and_(table.c[key] >= window.lo, table.c[key] <= window.high,
                           table.c[when] >= naive_param(window.bound, reader.engine))
            _replace_window(con, spec, columns, reader.frame(sa.select(table).where(rows).order_by(table.c[key])),
                            f'"{key}" >= ? AND "{key}" <= ? AND "{when}" >= ?',
                            [window.lo, window.high, window.bound.to_pydatetime()])
    elif window.bound is None:
        _delete(con, spec, "TRUE")
        _read_keyset(con, reader, spec, table, columns, None, chunk)
    else:
        rows = _by_prefix(reader, spec, table, table.c[when] >= naive_param(window.bound, reader.engine))
        _replace_window(con, spec, columns, reader.frame(sa.select(table).where(rows)), f'"{when}" >= ?',
                        [window.bound.to_pydatetime()])


def _by_prefix(reader: _Reader, spec: StoredTable, table, rows):
    """``rows`` (a time range) asked as one range per value of ``spec.window_prefix``, the source's own values
    (a loose index scan) and NULL: an index on (prefix, time) then reads the window alone. Why: MariaDB has no skip
    scan; the sessions of half a day at 1M calls took 1.2 s beside the checks' scans, a full scan of the table."""
    prefix = spec.window_prefix
    if prefix is None or prefix not in table.c:
        return rows
    values = [v for v in reader.values(sa.select(table.c[prefix]).distinct()) if v is not None]
    if len(values) > MAX_PREFIX_VALUES:  # a range per value no longer pays
        return rows
    return sa.and_(sa.or_(table.c[prefix].in_(values), table.c[prefix].is_(None)), rows)


def _replace_window(con, spec: StoredTable, columns: dict, frame, where: str, params: list) -> None:
    """Step 2: the stored rows ``where`` (store SQL) become ``frame``, the source's rows there; only the rows that
    differ are deleted and written. Why: every refresh reads half a day again that has mostly not changed; deleting
    and writing it whole again made DuckDB's checkpoint rewrite it (a refresh that finds nothing new at 1M calls:
    2.7-3.8 s, now 2.3-3.0 s). The rows are compared on what the source gives (and the values derived from it); their
    session's columns are joined only to the rows written (step 5 sets them again where their session changed)."""
    written = {**columns, **_derived(spec, columns)}
    names = ", ".join(f'"{c}"' for c in written)
    con.execute(f'CREATE OR REPLACE TEMP TABLE {WINDOW} AS SELECT {names} FROM "{spec.name}" LIMIT 0')
    _insert(con, spec, columns, frame, into=WINDOW)
    key = spec.key
    same = " AND ".join(f's."{c}" IS NOT DISTINCT FROM w."{c}"' for c in written)
    con.execute(f'CREATE OR REPLACE TEMP TABLE {UNCHANGED} AS SELECT s."{key}" FROM (SELECT * FROM "{spec.name}" '
                f'WHERE {where}) s JOIN {WINDOW} w ON s."{key}" = w."{key}" AND {same}', params)
    _delete(con, spec, f'{where} AND "{key}" NOT IN (SELECT "{key}" FROM {UNCHANGED})', params)
    _write(con, spec, columns, f'(SELECT * FROM {WINDOW} WHERE "{key}" NOT IN (SELECT "{key}" FROM {UNCHANGED}))')
    con.execute(f"DROP TABLE {WINDOW}")
    con.execute(f"DROP TABLE {UNCHANGED}")


def _delete(con, spec: StoredTable, where: str, params=None) -> None:
    """Delete stored rows; deleted sessions are kept as touched (step 5)."""
    _touch(con, spec, f'FROM "{spec.name}" WHERE {where}', params)
    con.execute(f'DELETE FROM "{spec.name}" WHERE {where}', params or [])


def _touch(con, spec: StoredTable, rows: str, params=None) -> None:
    """Keep the sessions ``rows`` (``FROM ...``) names as touched (step 5), when ``spec`` is the sessions table."""
    if spec.name == SESSIONS:
        con.execute(f'INSERT INTO {TOUCHED} SELECT CAST("{spec.key}" AS VARCHAR) {rows}', params or [])


def _touch_every_session(con) -> None:
    """After a stopped refresh: every session a stored trace or error names counts as touched, so that step 5 sets
    all their session columns again (at 1M calls about 3 s, against a whole build's 40 s and 9M rows read)."""
    named = [f'SELECT CAST(call_session_id AS VARCHAR) AS id FROM "{table}" WHERE call_session_id IS NOT NULL'
             for (table,) in con.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'main' "
                                         "AND column_name = 'call_session_id'").fetchall()]
    if named:
        con.execute(f"INSERT INTO {TOUCHED} SELECT DISTINCT id FROM ({' UNION ALL '.join(named)})")


def _one(con, sql: str, params=None):
    """The first value of a one-row statement, its result fetched whole (DuckDB refuses a registration
    while a result is unfinished)."""
    return con.execute(sql, params or []).fetchall()[0][0]


def _mend_by_keys(con, reader: _Reader, spec: StoredTable, table, columns: dict, chunk: int, source_rows: int,
                  source_sum, counted: str | None) -> None:
    """Step 4: when the row counts (and the sums of integer keys: one old row deleted and another put back
    below the high-water key leave the count alone; both of the rows ``counted`` names, store SQL) differ,
    drop the keys the source no longer has and read the ones it gained."""
    key = table.c[spec.key]
    key_sum = f'sum("{spec.key}")' if spec.integer_key else "NULL"
    where = "" if counted is None else f" WHERE {counted}"
    stored, stored_sum = con.execute(f'SELECT count(*), {key_sum} FROM "{spec.name}"{where}').fetchall()[0]
    if source_rows == int(stored) and (not spec.integer_key or int(source_sum or 0) == int(stored_sum or 0)):
        return
    keys, last = [], None
    while True:  # keys only, in key order
        query = sa.select(key).order_by(key).limit(chunk * 5)
        frame = reader.frame(query if last is None else query.where(key > last), keys=True)
        keys.append(frame)
        if len(frame) < chunk * 5:
            break
        last = frame[spec.key].iloc[-1]
        last = int(last) if spec.integer_key else str(last)
    source_keys = pd.concat(keys, ignore_index=True)[[spec.key]]
    source_keys[spec.key] = source_keys[spec.key].astype("int64" if spec.integer_key else "string")
    con.register("source_keys", source_keys)
    try:
        _delete(con, spec, f'"{spec.key}" NOT IN (SELECT "{spec.key}" FROM source_keys)')
        gained = [v for (v,) in con.execute(f'SELECT "{spec.key}" FROM source_keys EXCEPT SELECT "{spec.key}" FROM "{spec.name}"').fetchall()]
    finally:
        con.unregister("source_keys")
    for i in range(0, len(gained), 1000):
        _insert(con, spec, columns, reader.frame(sa.select(table).where(key.in_(gained[i:i + 1000]))))
    log.info("store %s: %d rows in the source, %d stored; mended by keys (%d gained)", spec.name, source_rows, stored, len(gained))


def _last_key(rows, key: str):
    """The last key of a chunk (a pandas frame or an Arrow table), as the next chunk's bound."""
    last = rows.column(key)[-1].as_py() if isinstance(rows, pa.Table) else rows[key].iloc[-1]
    return last if isinstance(last, str) else int(last)


def _replace_keys(con, spec: StoredTable, columns: dict, frame) -> None:
    if len(frame) == 0:
        return
    values = frame.column(spec.key).to_pandas() if isinstance(frame, pa.Table) else frame[spec.key]
    keys = pd.DataFrame({spec.key: values.astype("int64" if spec.integer_key else "string")})
    con.register("changed_keys", keys)
    try:
        _delete(con, spec, f'"{spec.key}" IN (SELECT "{spec.key}" FROM changed_keys)')
    finally:
        con.unregister("changed_keys")
    _insert(con, spec, columns, frame)


def _insert(con, spec: StoredTable, columns: dict, frame, into: str | None = None) -> None:
    """Write source rows (into the table ``into`` of the same columns when given): each column as its store type
    (values that do not fit become NULL), personal data masked. An Arrow table (connectorx) is typed already: only
    its masked columns are touched."""
    if len(frame) == 0:
        return
    if isinstance(frame, pa.Table):
        for col in (*spec.masked, *spec.redacted):
            if col not in frame.column_names:
                continue
            if col in spec.masked:
                masked = masking.mask_arrow(frame.column(col))
            else:
                masked = _arrow_text(redact_phone(frame.column(col).to_pandas()))
            frame = frame.set_column(frame.column_names.index(col), col, masked)
        for name, col, rule in spec.derived:
            if col in frame.column_names:
                frame = frame.append_column(name, _arrow_text(rule(frame.column(col).to_pandas())))
        _write(con, spec, columns, frame, into)
        return
    out = pd.DataFrame(index=frame.index)
    for col, source_type in columns.items():
        values = frame[col] if col in frame else pd.Series(None, index=frame.index, dtype="object")
        kind = duck_type(source_type)
        if col in spec.masked:
            values = masking.mask_column(values)
        elif col in spec.redacted:
            values = redact_phone(values)
        if kind == "BIGINT":
            values = pd.to_numeric(values, errors="coerce").astype("Float64").round().astype("Int64") \
                if values.dtype == "object" else pd.to_numeric(values, errors="coerce")
        elif kind == "DOUBLE":
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        elif kind == "TIMESTAMP":
            values = pd.to_datetime(values, errors="coerce", format="mixed")
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_localize(None)
        else:
            values = values.astype("string")
        out[col] = values
    for name, col, rule in spec.derived:
        if col in out:
            out[name] = rule(out[col])
    _write(con, spec, columns, out, into)


def _arrow_text(values: pd.Series):
    """A column of texts as an Arrow string array; a missing value stays NULL."""
    return pa.array(values.astype("object").where(values.notna(), None).tolist(), type=pa.string())


def _derived(spec: StoredTable, columns: dict) -> dict:
    """The derived columns ``spec`` stores beside ``columns`` (those whose source column is read), as text."""
    return {name: "TEXT" for name, col, _ in spec.derived if col in columns}


def _session_ddl(spec: StoredTable, columns: dict) -> dict:
    """The session columns ``spec`` keeps (step 5), as store types: only beside a ``call_session_id``."""
    if not spec.of_session or "call_session_id" not in columns:
        return {}
    return {**{name: kind for name, (_, kind) in SESSION_COLUMNS.items()}, SESSION_REAL: "BOOLEAN"}


def _session_values(con, session: str) -> list[str] | None:
    """The session columns (``SESSION_COLUMNS``, then ``SESSION_REAL``) as SQL on the stored session ``session``,
    NULL where it has no such column or no row; None when no session table is stored."""
    held = {c for (c,) in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                      [SESSIONS]).fetchall()}
    if not held:
        return None
    values = [f'{session}."{source}"' if source in held else "NULL" for source, _ in SESSION_COLUMNS.values()]
    real = f"coalesce({call_ids.real_call_id_sql(f'{session}.call_id', 'duckdb')}, false)" if "call_id" in held else "false"
    return values + [f'CASE WHEN {session}."id" IS NOT NULL THEN {real} END']


def _keep_session_columns(con, planned: list) -> None:
    """Step 5: a trace or error row is written with its stored session's columns (``_write``); here the rows
    written before their session was written or deleted are set again: those of the sessions touched since the
    table was built, or ever for a table refreshed in place. Only rows whose values differ are written."""
    values, end = _session_values(con, "s"), _one(con, f"SELECT count(*) FROM {TOUCHED}")  # the same for every table
    for read in planned:
        kept = list(_session_ddl(read.spec, read.columns))
        if not kept or values is None and read.rebuilt:
            continue
        if values is None:  # no session table any more
            con.execute(f'UPDATE "{read.spec.name}" SET {", ".join(f"{c} = NULL" for c in kept)} WHERE "{SESSION_REAL}" IS NOT NULL')
            continue
        now = ", ".join(f"{v} AS {c}" for c, v in zip(kept, values))
        differs = " OR ".join(f"c.{c} IS DISTINCT FROM x.{c}" for c in kept)
        for lo in range(read.touched_mark if read.rebuilt else 0, end, BATCH):  # batches: all sessions rebuilt fit in memory
            touched = f"(SELECT DISTINCT id FROM {TOUCHED} WHERE rowid >= {lo} AND rowid < {lo + BATCH})"
            con.execute(f'UPDATE "{read.spec.name}" c SET {", ".join(f"{k} = x.{k}" for k in kept)} FROM (SELECT d.id, {now} '
                        f'FROM {touched} d LEFT JOIN "{SESSIONS}" s ON s."id" = d.id) x WHERE c.call_session_id = x.id AND ({differs})')


def _write(con, spec: StoredTable, columns: dict, out, into: str | None = None) -> None:
    """Insert ``out`` (a frame, an Arrow table, or store SQL giving rows of the written columns: source and
    derived) into ``into`` (a table of those columns) or, by default, into ``spec``'s table with each row's session
    columns as stored now (step 5)."""
    registered = not isinstance(out, str)
    rows = "chunk_rows" if registered else out
    if registered:
        con.register(rows, out)
    try:
        written = {**columns, **_derived(spec, columns)}
        casts = [f'TRY_CAST(c."{col}" AS {duck_type(t)})' for col, t in written.items()]
        kept = list(_session_ddl(spec, columns)) if into is None else []
        values = _session_values(con, "s") if kept else None
        joined = f"{rows} c"
        if values is not None:  # step 5: the row's session as stored now
            casts, written = casts + values, {**written, **dict.fromkeys(kept)}
            joined += f' LEFT JOIN "{SESSIONS}" s ON s."id" = TRY_CAST(c.call_session_id AS VARCHAR)'
        names = ", ".join(f'"{c}"' for c in written)
        con.execute(f'INSERT INTO "{into or spec.name}" ({names}) SELECT {", ".join(casts)} FROM {joined}')
        if into is None:
            _touch(con, spec, f"FROM {rows}")
    finally:
        if registered:
            con.unregister(rows)


def _summary(con, spec: StoredTable, columns: dict):
    name = spec.name
    rows = int(_one(con, f'SELECT count(*) FROM "{name}"'))
    high = _one(con, f'SELECT max("{spec.key}") FROM "{name}"') if spec.key in columns else None
    first = last = None
    if spec.time in columns:
        first, last = con.execute(f'SELECT min("{spec.time}"), max("{spec.time}") FROM "{name}"').fetchall()[0]
    return rows, None if high is None else str(high), first, last
