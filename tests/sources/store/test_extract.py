"""The local store against its source: a full extraction copies it, a refresh after changes equals a fresh
extraction, personal data never reaches the file, and the files are the owner's only.

Why: every windowed analysis reads the store instead of the server, so a row the refresh missed (an old
row updated, a row deleted far back, a key re-inserted below the high-water mark) is a silently wrong count.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings, strategies as st

from conftest import altered_copy, copy_mariadb_world, fresh_mariadb_database
from rca_toolkit.errors import ConfigError, NotFound
from rca_toolkit.rules import call_ids
from rca_toolkit.sources import attempt_inputs, loaders, store
from rca_toolkit.sources.store import catalog, files
from rca_toolkit.sources.store.extract import TRAILING
from rca_toolkit.sources.store.tables import BY_NAME, TABLES

DATA_TABLES = [t.name for t in TABLES if not t.whole]
WHOLE = [t.name for t in TABLES if t.whole]  # read whole on every refresh (migrations, the demo marker)
EMAIL, PHONE = "max.mustermann@example.com", "+49 30 12345678"


# --------------------------------------------------------------------------- helpers
def _refresh(url: str, folder: Path, **options) -> store.Refresh:
    source = loaders.engine_for(url)
    try:
        return store.refresh(source, Path(folder), storage_zone=loaders.storage_zone(source), **options)
    finally:
        source.dispose()


def _stored(folder: Path) -> dict[str, pd.DataFrame]:
    """Every stored table (not the catalog), ordered by its key."""
    con = duckdb.connect(str(Path(folder) / files.STORE_FILE), read_only=True)
    try:
        names = [n for (n,) in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE NOT starts_with(table_name, '_rca_')").fetchall()]
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY "{BY_NAME[n].key}"').df() for n in sorted(names)}
    finally:
        con.close()


def _catalog(folder: Path) -> dict[str, tuple]:
    """The catalog's rows without the refresh's own times and counts."""
    con = duckdb.connect(str(Path(folder) / files.STORE_FILE), read_only=True)
    try:
        return {n: (s.columns, s.rows, s.high_key, s.first_time, s.last_time) for n, s in catalog.tables(con).items()}
    finally:
        con.close()


def _assert_same_store(refreshed: Path, fresh: Path) -> None:
    got, want = _stored(refreshed), _stored(fresh)
    assert list(got) == list(want)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)
    assert _catalog(refreshed) == _catalog(fresh)


def _source(url: str, sql: str) -> pd.DataFrame:
    engine = loaders.engine_for(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(sql), conn)
    finally:
        engine.dispose()


def _write(url: str, *statements, params=None) -> None:
    """Run statements on a copy we own (never the read-only gate)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params or {})
    engine.dispose()


def _small_copy(demo_url: str, folder: Path, *statements: str, every: int = 10) -> str:
    """A SQLite copy of the demo world with every ``every``-th row kept (same time span, a fraction of the reads)."""
    trim = [f"DELETE FROM {t} WHERE id % {every} != 3" for t in DATA_TABLES if BY_NAME[t].integer_key]
    return altered_copy(demo_url, folder, *trim, f"DELETE FROM retell_call_sessions WHERE rowid % {every} != 3", *statements)


# --------------------------------------------------------------------------- changes to a source
class Changes:
    """Changes made to a writable copy between two refreshes, on SQLite and MariaDB alike (reflected
    tables, so timestamps are written in each backend's own format). Foreign keys are not enforced on
    MariaDB while changing: a cascade would alter old rows that have no ``updated_at`` to say so."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url)
        meta = sa.MetaData()
        self.t = {n: sa.Table(n, meta, autoload_with=self.engine) for n in DATA_TABLES}
        self.saved: dict[str, list[dict]] = {}
        self.old_updated: dict[str, object] = {}  # table -> key of the old row update_old changed
        self._last: dict[str, object] = {}  # table -> its newest time before the changes (_recent)
        with self.engine.connect() as conn:  # "now": the latest time any stored row carries
            s = self.t["retell_call_sessions"]
            self.newest = pd.Timestamp(conn.execute(sa.select(sa.func.max(s.c.started_at))).scalar()).to_pydatetime()
            self.now = max(pd.Timestamp(conn.execute(sa.select(sa.func.max(self.t[t.name].c[c]))).scalar())
                           for t in TABLES if not t.whole for c in (t.time, t.updated) if c).to_pydatetime()

    def __enter__(self):
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        if self.engine.dialect.name != "sqlite":
            self.conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
        return self

    def __exit__(self, *exc):
        (self.tx.rollback if exc[0] else self.tx.commit)()
        self.conn.close()
        self.engine.dispose()

    def _row(self, table: str, where) -> dict:
        t = self.t[table]
        return dict(self.conn.execute(sa.select(t).where(where).limit(1)).mappings().one())

    def _max_id(self, table: str) -> int:
        return int(self.conn.execute(sa.select(sa.func.max(self.t[table].c.id))).scalar())

    def _ids(self, table: str, order, n: int) -> list:
        t = self.t[table]
        return [r[0] for r in self.conn.execute(sa.select(t.c.id).order_by(order).limit(n))]

    def _recent(self, table: str) -> list:
        """Keys of the rows in the last half of the trailing window (well inside it), newest first; the window ends
        at the table's newest time before any change (what the store holds), however many rows were deleted since."""
        t = self.t[table]
        col = t.c[BY_NAME[table].time]
        last = self._last.setdefault(table, self.conn.execute(sa.select(sa.func.max(col))).scalar())
        since = pd.Timestamp(last).to_pydatetime() - (TRAILING / 2).to_pytimedelta()
        ids = [r[0] for r in self.conn.execute(sa.select(t.c.id).where(col >= since).order_by(col.desc(), t.c.id.desc()))]
        assert ids, f"{table} has no row in the last {TRAILING / 2} of its rows"
        return ids

    def at(self, **delta):
        return self.now + pd.Timedelta(**delta).to_pytimedelta()

    def insert_new(self) -> None:
        """(a) a new call: session, traces, errors, webhooks, call and appointment, later and with higher ids."""
        t = self.t
        sid = str(uuid.uuid4())
        session = self._row("retell_call_sessions", t["retell_call_sessions"].c.id == self._recent("retell_call_sessions")[0])
        self.conn.execute(t["retell_call_sessions"].insert().values(
            {**session, "id": sid, "call_id": "call_" + uuid.uuid4().hex[:27], "started_at": self.at(hours=1),
             "ended_at": self.at(hours=1, minutes=2), "call_status": "ended", "duration_ms": 120_000,
             "created_at": self.at(hours=1), "updated_at": self.at(hours=1, minutes=2)}))
        trace = self._row("retell_function_traces", t["retell_function_traces"].c.id == self._max_id("retell_function_traces"))
        trace_ids = []
        for k in range(3):
            trace_ids.append(self._max_id("retell_function_traces") + 1)
            self.conn.execute(t["retell_function_traces"].insert().values(
                {**trace, "id": trace_ids[-1], "call_session_id": sid, "execution_sequence": k + 1,
                 "started_at": self.at(hours=1, seconds=10 * k), "completed_at": None if k == 2 else self.at(hours=1, seconds=10 * k + 3),
                 "duration_ms": None if k == 2 else 3000, "status": "pending" if k == 2 else "success"}))
        error = self._row("retell_error_log", t["retell_error_log"].c.id == self._max_id("retell_error_log"))
        for k in range(2):
            self.conn.execute(t["retell_error_log"].insert().values(
                {**error, "id": self._max_id("retell_error_log") + 1, "call_session_id": sid, "function_trace_id": trace_ids[k],
                 "occurred_at": self.at(hours=1, seconds=10 * k + 2), "error_code": "NEW_ERROR"}))
        hook = self._row("webhook_events", t["webhook_events"].c.id == self._max_id("webhook_events"))
        w = t["webhook_events"]  # a second call's events are evt-new-2 and -3 (the ids are unique)
        done = self.conn.execute(sa.select(sa.func.count()).where(w.c.event_id.like("evt-new-%"))).scalar()
        for k in range(done, done + 2):
            self.conn.execute(t["webhook_events"].insert().values(
                {**hook, "id": self._max_id("webhook_events") + 1, "event_id": f"evt-new-{k}", "idempotency_key": f"idem-new-{k}",
                 "status": "pending", "processed_at": None, "created_at": self.at(hours=1, minutes=k - done),
                 "received_at": self.at(hours=1, minutes=k - done), "updated_at": self.at(hours=1, minutes=k - done)}))
        call = self._row("calls", t["calls"].c.id == self._max_id("calls"))
        call_id = self._max_id("calls") + 1
        self.conn.execute(t["calls"].insert().values(
            {**call, "id": call_id, "retell_call_id": "call_" + uuid.uuid4().hex[:27], "created_at": self.at(hours=1),
             "updated_at": self.at(hours=1, minutes=3), "start_timestamp": self.at(hours=1), "cost_cents": 42}))
        appointment = self._row("appointments", t["appointments"].c.id == self._max_id("appointments"))
        self.conn.execute(t["appointments"].insert().values(
            {**appointment, "id": self._max_id("appointments") + 1, "call_id": call_id, "calcom_v2_booking_id": f"uid-new-{done}",
             "created_at": self.at(hours=1, minutes=1), "updated_at": self.at(hours=1, minutes=1), "deleted_at": None}))

    def update_in_window(self) -> None:
        """(b) the newest session ends differently, the newest traces fail (no updated_at says so)."""
        s, tr = self.t["retell_call_sessions"], self.t["retell_function_traces"]
        self.conn.execute(s.update().where(s.c.id == self._recent("retell_call_sessions")[0]).values(
            ended_at=self.newest + pd.Timedelta(minutes=9).to_pytimedelta(), call_status="error", duration_ms=540_000))
        newest_traces = self._recent("retell_function_traces")[:3]
        self.conn.execute(tr.update().where(tr.c.id.in_(newest_traces)).values(status="failed", duration_ms=None))

    def update_old(self) -> None:
        """(c) rows far outside the trailing window, updated_at bumped: before the new rows' times, as when a
        booking is cancelled and a new call comes in afterwards."""
        t = self.t
        when = self.at(minutes=30)
        a, w, c, s = t["appointments"], t["webhook_events"], t["calls"], t["retell_call_sessions"]
        old = self.old_updated
        old["appointments"], old["webhook_events"], old["calls"] = (
            self._ids("appointments", a.c.id, 2)[1], self._ids("webhook_events", w.c.id, 3)[2], self._ids("calls", c.c.id, 4)[3])
        old["retell_call_sessions"] = self._ids("retell_call_sessions", s.c.started_at, 2)[1]
        self.conn.execute(a.update().where(a.c.id == old["appointments"]).values(deleted_at=when, updated_at=when))
        self.conn.execute(w.update().where(w.c.id == old["webhook_events"]).values(status="failed", updated_at=when))
        self.conn.execute(c.update().where(c.c.id == old["calls"]).values(session_outcome="abandoned", updated_at=when))
        self.conn.execute(s.update().where(s.c.id == old["retell_call_sessions"]).values(call_status="error", updated_at=when))
        # an old session with traces and errors moves to another company and a test call id: the store's traces
        # and errors keep their session's columns (tables.SESSION_COLUMNS), so theirs must follow
        e, tr = t["retell_error_log"], t["retell_function_traces"]
        spared = [s.c.id.in_(sa.select(table.c.call_session_id).where(  # clear of the rows delete() takes
            table.c.id.notin_(self._ids(table.name, table.c.id, 9)))) for table in (e, tr)]
        sid = self.conn.execute(sa.select(s.c.id).where(*spared, s.c.id.notin_(self._ids(s.name, s.c.started_at, 3)))
                                .order_by(s.c.started_at).limit(1)).scalar()
        old["moved_session"] = sid
        self.conn.execute(s.update().where(s.c.id == sid).values(company_id=sa.literal(987_654), call_id=f"test_moved_{sid}",
                                                                  updated_at=when))

    def delete(self, *, recent: bool = True, old: bool = True) -> None:
        """(d) recent rows (inside the trailing window) and old ones (only the count reconciliation finds those)."""
        for name in ("retell_function_traces", "retell_error_log", "webhook_events", "appointments", "calls"):
            t = self.t[name]
            ids = (self._recent(name)[1:][-1:] if recent else []) + (self._ids(name, t.c.id, 6)[4:6] if old else [])
            self.conn.execute(t.delete().where(t.c.id.in_(ids)))
        s = self.t["retell_call_sessions"]
        sids = (self._recent("retell_call_sessions")[1:][-1:] if recent else []) + \
            (self._ids("retell_call_sessions", s.c.started_at, 3)[2:] if old else [])
        self.conn.execute(s.delete().where(s.c.id.in_(sids)))

    def sessions_of_unseen_companies(self) -> None:
        """(f) new sessions in the trailing window of a company the store has never held and of none (NULL), and a
        session there moved to another new company: the window is asked per company (``window_prefix``)."""
        s = self.t["retell_call_sessions"]
        recent = self._recent("retell_call_sessions")
        session = self._row("retell_call_sessions", s.c.id == recent[0])
        for k, company in enumerate((424_242, None)):
            when = self.at(hours=2, minutes=k)
            self.conn.execute(s.insert().values({**session, "id": str(uuid.uuid4()), "call_id": "call_" + uuid.uuid4().hex[:27],
                                                 "company_id": company, "started_at": when, "created_at": when,
                                                 "updated_at": when}))
        self.conn.execute(s.update().where(s.c.id == recent[1]).values(company_id=sa.literal(525_252)))

    def take_out(self) -> None:
        """Before the first refresh: old rows removed, to be put back later below the high-water key."""
        for name in ("webhook_events", "retell_function_traces", "calls"):
            t = self.t[name]
            ids = self._ids(name, t.c.id, 9)[7:9]
            self.saved[name] = [dict(r) for r in self.conn.execute(sa.select(t).where(t.c.id.in_(ids))).mappings()]
            self.conn.execute(t.delete().where(t.c.id.in_(ids)))

    def put_back(self) -> None:
        """(e) keys below the high-water mark inserted again, with their old times."""
        for name, rows in self.saved.items():
            self.conn.execute(self.t[name].insert(), rows)


def _taken_out(url: str) -> dict:
    with Changes(url) as changes:
        changes.take_out()
    return changes.saved


def _put_back(url: str, saved: dict) -> None:
    with Changes(url) as changes:
        changes.saved = saved
        changes.put_back()


CASES = {
    "new rows": lambda c: c.insert_new(),
    "updated in the trailing window": lambda c: c.update_in_window(),
    # the new rows' later updated_at must not hide the old rows changed before them
    "old rows updated, then new ones inserted": lambda c: (c.update_old(), c.insert_new()),
    "recent rows deleted": lambda c: c.delete(old=False),
    "old rows deleted, then new ones inserted": lambda c: (c.delete(recent=False), c.insert_new()),
    "sessions of a new company and of none in the trailing window": lambda c: c.sessions_of_unseen_companies(),
}


def _all_changes(c: Changes) -> None:
    c.put_back()
    c.update_old()
    c.delete()
    c.update_in_window()
    c.insert_new()
    c.sessions_of_unseen_companies()


# --------------------------------------------------------------------------- 1. a full extraction is the source
CHECKED = {  # per table: columns compared row by row with the source (ints, timestamps, NULLs)
    "retell_call_sessions": ("customer_id", "duration_ms", "error_count", "started_at", "ended_at", "updated_at"),
    "retell_function_traces": ("call_session_id", "execution_sequence", "duration_ms", "started_at", "completed_at"),
    "retell_error_log": ("function_trace_id", "call_offset_ms", "booking_failed", "occurred_at", "error_code"),
    "calls": ("company_id", "appointment_id", "cost_cents", "appointment_made", "start_timestamp", "deleted_at"),
    "appointments": ("customer_id", "call_id", "service_id", "starts_at", "created_at", "deleted_at"),
    "webhook_events": ("company_id", "retry_count", "processed_at", "created_at", "event_id"),
}


@pytest.fixture(scope="module")
def full_stores(demo_db, tmp_path_factory):
    """One full extraction of each backend's demo world, shared by the read-only checks."""
    url, _ = demo_db
    folder = tmp_path_factory.mktemp("full") / "store"
    return url, folder, _refresh(url, folder)


def test_a_full_extraction_holds_every_source_row_and_key(full_stores):
    url, folder, done = full_stores
    stored = _stored(folder)
    assert set(stored) == {t.name for t in TABLES} and done.missing == []
    assert done.built == [t.name for t in TABLES]
    for name, frame in stored.items():
        spec = BY_NAME[name]
        keys = _source(url, f"SELECT {spec.key} FROM {name}")[spec.key]
        assert len(frame) == len(keys) == done.rows_read[name], name
        assert set(frame[spec.key].astype(str)) == set(keys.astype(str)), name
    assert len(stored["retell_function_traces"]) == 3651 and len(stored["retell_call_sessions"]) == 1431


def test_a_full_extraction_keeps_values_nulls_and_naive_wall_times(full_stores):
    url, folder, _ = full_stores
    stored = _stored(folder)
    nulls = 0
    for name, columns in CHECKED.items():
        key = BY_NAME[name].key
        want = _source(url, f"SELECT {key}, {', '.join(columns)} FROM {name}")
        want[key] = want[key].astype(str)
        want = want.set_index(key).sort_index()
        got = stored[name].assign(**{key: stored[name][key].astype(str)}).set_index(key).sort_index()
        for col in columns:
            src, kept = want[col], got[col]
            if pd.api.types.is_datetime64_any_dtype(kept):
                assert kept.dt.tz is None, f"{name}.{col} is naive wall time"
                src = pd.to_datetime(src, format="mixed")
            elif pd.api.types.is_integer_dtype(kept):
                src = src.astype("Int64")
            assert kept.isna().equals(src.isna()), f"{name}.{col}: NULLs differ"
            assert (kept[src.notna()] == src[src.notna()]).all(), f"{name}.{col}: values differ"
            nulls += int(src.isna().sum())
    assert nulls > 1000  # NULLs were compared, not only values
    # a microsecond wall time as the source has it (not shifted to UTC, not truncated)
    first = stored["retell_call_sessions"]["started_at"].min()
    assert first.microsecond == 523120 and first.tz is None


# --------------------------------------------------------------------------- 2. refresh == fresh extraction
@pytest.mark.parametrize("case", list(CASES))
def test_a_refresh_after_one_kind_of_change_equals_a_fresh_extraction(demo_sqlite, tmp_path, case):
    url = _small_copy(demo_sqlite[0], tmp_path)
    first = _refresh(url, tmp_path / "kept")
    with Changes(url) as changes:
        CASES[case](changes)
    done = _refresh(url, tmp_path / "kept")
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "kept", tmp_path / "fresh")
    assert done.built == WHOLE
    assert done.total_read < first.total_read / 4, done.rows_read


def test_a_key_put_back_below_the_high_water_mark_is_read(demo_sqlite, tmp_path):
    """(e) alone: the count differs, the reconciliation reads the key it gained."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    saved = _taken_out(url)
    _refresh(url, tmp_path / "kept")
    _put_back(url, saved)
    done = _refresh(url, tmp_path / "kept")
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "kept", tmp_path / "fresh")
    assert done.rows_read["webhook_events"] < 20
    assert _stored(tmp_path / "kept")["webhook_events"]["id"].isin([r["id"] for r in saved["webhook_events"]]).sum() == 2


def test_a_deleted_old_row_and_a_key_put_back_in_one_refresh_are_both_seen(demo_sqlite, tmp_path):
    """The row count alone is unchanged by one old row deleted and one put back below the high-water key."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    saved = _taken_out(url)
    _refresh(url, tmp_path / "kept")
    with Changes(url) as changes:
        changes.saved = {"webhook_events": saved["webhook_events"][:1]}
        changes.put_back()
        w = changes.t["webhook_events"]
        changes.conn.execute(w.delete().where(w.c.id == changes._ids("webhook_events", w.c.id, 4)[3]))
    _refresh(url, tmp_path / "kept")
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "kept", tmp_path / "fresh")


def _every_change_then_compare(url: str, folder: Path, saved_before, **options) -> tuple[store.Refresh, store.Refresh]:
    first = _refresh(url, folder / "kept", **options)
    with Changes(url) as changes:
        changes.saved = saved_before
        _all_changes(changes)
    done = _refresh(url, folder / "kept", **options)
    _refresh(url, folder / "fresh")
    _assert_same_store(folder / "kept", folder / "fresh")
    kept = _stored(folder / "kept")  # the changes are there, not merely equally absent from both stores
    old = changes.old_updated
    assert pd.notna(kept["appointments"].set_index("id").loc[old["appointments"], "deleted_at"])
    assert kept["webhook_events"].set_index("id").loc[old["webhook_events"], "status"] == "failed"
    assert kept["calls"].set_index("id").loc[old["calls"], "session_outcome"] == "abandoned"
    assert {"evt-new-0", "evt-new-1"} <= set(kept["webhook_events"]["event_id"])
    assert (kept["retell_error_log"]["error_code"] == "NEW_ERROR").sum() == 2
    companies = kept["retell_call_sessions"]["company_id"]
    assert companies.isin([424_242, 525_252]).sum() == 2 and companies.isna().sum() >= 1
    for name in ("retell_function_traces", "retell_error_log"):  # the moved session's rows say where it went
        moved = kept[name][kept[name]["call_session_id"] == old["moved_session"]]
        assert len(moved) and (moved["session_company_id"] == 987_654).all() and not moved["session_real_call"].any(), name
        assert moved["session_call_id"].eq(f"test_moved_{old['moved_session']}").all(), name
    for name, rows in saved_before.items():
        assert kept[name]["id"].isin([r["id"] for r in rows]).sum() == len(rows) == 2, name
    return first, done


def test_a_refresh_after_every_kind_of_change_equals_a_fresh_extraction_on_sqlite(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    first, done = _every_change_then_compare(url, tmp_path, _taken_out(url))
    assert done.built == WHOLE
    assert done.total_read < first.total_read / 10, done.rows_read  # the trailing window and the changed rows
    assert sum(done.keys_read.values()) > 0  # old deletions were found by the keys


@pytest.mark.mariadb
def test_a_refresh_after_every_kind_of_change_equals_a_fresh_extraction_on_mariadb(demo_mariadb, tmp_path):
    with fresh_mariadb_database("rca_test_store") as url:
        copy_mariadb_world(demo_mariadb[0], url)
        first, done = _every_change_then_compare(url, tmp_path, _taken_out(url))
        assert first.total_read == 12_554 + 421 - 6 and done.built == WHOLE
        assert done.total_read < 400, done.rows_read  # the trailing window and the changed rows
        assert done.rows_checked == _row_counts(url)  # every table scanned once to find the changes


# Refreshes that skip the check of the older rows (an analysis's, between two checks: cache_check_every_s), then one
# that makes it: the check asks for every row changed since the last check, not since the last refresh
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def test_a_check_after_refreshes_that_skipped_it_finds_every_change_made_since_the_last(backend, request, tmp_path):
    if backend == "sqlite":
        url = _small_copy(request.getfixturevalue("demo_sqlite")[0], tmp_path)
        _skipped_then_checked(url, tmp_path)
        return
    with fresh_mariadb_database("rca_test_store_skipped") as url:
        copy_mariadb_world(request.getfixturevalue("demo_mariadb")[0], url)
        _skipped_then_checked(url, tmp_path)


def _skipped_then_checked(url: str, folder: Path) -> None:
    built = _refresh(url, folder / "kept", check_old=False)  # a store built whole counts as checked
    assert built.checked_old
    with Changes(url) as changes:
        changes.update_old()  # old rows changed, then new rows: the store's newest updated_at moves past those changes
        changes.delete(recent=False)
        changes.insert_new()
    skipped = _refresh(url, folder / "kept", check_old=False)
    assert not skipped.checked_old and skipped.rows_checked == {} and sum(skipped.keys_read.values()) == 0
    kept, old = _stored(folder / "kept"), changes.old_updated
    assert {"evt-new-0", "evt-new-1"} <= set(kept["webhook_events"]["event_id"])  # the new rows are read
    assert pd.isna(kept["appointments"].set_index("id").loc[old["appointments"], "deleted_at"])  # the old change is not
    again = _refresh(url, folder / "kept", check_old=False)  # another refresh in between: nothing more to find
    assert again.rows_checked == {}
    checked = _refresh(url, folder / "kept")
    assert checked.checked_old and checked.rows_checked == _row_counts(url)
    _refresh(url, folder / "fresh")
    _assert_same_store(folder / "kept", folder / "fresh")
    kept = _stored(folder / "kept")
    assert pd.notna(kept["appointments"].set_index("id").loc[old["appointments"], "deleted_at"])
    assert kept["calls"].set_index("id").loc[old["calls"], "session_outcome"] == "abandoned"


STEPS = {  # changes between two refreshes (each a new writer on the source)
    "new rows": lambda c: c.insert_new(),
    "updated in the window": lambda c: c.update_in_window(),
    "old rows updated": lambda c: c.update_old(),
    "old rows deleted": lambda c: c.delete(recent=False),
    "recent rows deleted": lambda c: c.delete(old=False),
}


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.lists(st.sampled_from(list(STEPS)), min_size=1, max_size=3, unique=True), st.booleans()),
                      min_size=1, max_size=3))
@example(steps=[(["old rows updated", "new rows"], False), (["new rows"], False)])  # the mark must outlive two skips
def test_any_run_of_refreshes_with_and_without_the_check_ends_equal_to_a_fresh_extraction(demo_sqlite, steps):
    """Changes, each followed by a refresh that checks the older rows or not (``check_old``), in any order: every refresh
    that checks equals a fresh extraction then, and so does a last one that checks, however many skipped it before."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = _small_copy(demo_sqlite[0], folder)
        _refresh(url, folder / "kept")
        for k, (changes, check) in enumerate(steps):
            with Changes(url) as writer:
                for name in changes:
                    STEPS[name](writer)
            done = _refresh(url, folder / "kept", check_old=check)
            assert done.checked_old == check and bool(done.rows_checked) == check
            if check:
                _refresh(url, folder / f"fresh{k}")
                _assert_same_store(folder / "kept", folder / f"fresh{k}")
        _refresh(url, folder / "kept")
        _refresh(url, folder / "fresh")
        _assert_same_store(folder / "kept", folder / "fresh")


def test_an_analysis_refresh_checks_the_older_rows_once_every_check_interval_and_says_when(demo_sqlite, tmp_path):
    """``fresh_store`` checks the rows older than the trailing window only when the last check started more than
    ``check_every_s`` ago; in between, the store's label (every report's source) says when they were last checked."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    folder = tmp_path / "st"
    _refresh(url, folder)
    with Changes(url) as changes:
        changes.update_old()
    source = loaders.engine_for(url)
    try:
        zone = loaders.storage_zone(source)
        checked_then = store.status(folder)["checked_at_utc"]
        store.close(folder)
        skipped = store.fresh_store(source, folder, zone, max_age_s=1e-6, check_every_s=3600)
        label = skipped.rca_label
        assert label.endswith(f"; older rows checked {checked_then:%Y-%m-%d %H:%M} UTC)"), label
        deleted_at = "SELECT deleted_at FROM appointments WHERE id = :id"
        assert loaders.query(skipped, deleted_at, {"id": changes.old_updated["appointments"]})["deleted_at"].isna().all()
        status = store.status(folder)
        assert status["checked_at_utc"] == checked_then < status["refreshed_at_utc"]
        # the last check's age decides, not the last refresh's: a check an hour old is due at a half-hour interval,
        # though the store was refreshed moments ago
        store.close(folder)
        con = duckdb.connect(str(folder / files.STORE_FILE))
        try:
            catalog.write_info(con, checked_at_utc=(checked_then - pd.Timedelta(hours=1)).isoformat())
        finally:
            con.close()
        due = store.fresh_store(source, folder, zone, max_age_s=1e-6, check_every_s=1800)
        assert "older rows" not in due.rca_label and store.status(folder)["checked_at_utc"] > checked_then
        checked = store.fresh_store(source, folder, zone, max_age_s=1e-6, check_every_s=1e-6)
        assert ", as of " in checked.rca_label and "older rows" not in checked.rca_label
        assert loaders.query(checked, deleted_at, {"id": changes.old_updated["appointments"]})["deleted_at"].notna().all()
        assert store.status(folder)["checked_at_utc"] == store.status(folder)["refreshed_at_utc"] > checked_then
    finally:
        store.close(folder)
        source.dispose()


def test_the_check_interval_setting_is_seconds_up_to_a_month(monkeypatch):
    from rca_toolkit.config import load_settings

    monkeypatch.delenv("RCA_CACHE_CHECK_EVERY_S", raising=False)
    assert load_settings().cache_check_every_s == 7 * 86400
    monkeypatch.setenv("RCA_CACHE_CHECK_EVERY_S", "3600")
    assert load_settings().cache_check_every_s == 3600.0
    for bad in ("0", "-5", "weekly", "inf", "nan", str(32 * 86400)):
        monkeypatch.setenv("RCA_CACHE_CHECK_EVERY_S", bad)
        with pytest.raises(ConfigError, match=r"RCA_CACHE_CHECK_EVERY_S.* is not a number of seconds in \(0, 2678400\]"):
            load_settings()


def _row_counts(url: str) -> dict[str, int]:
    """Rows per table the refresh checks: every one but those read whole at every refresh (WHOLE)."""
    return {t.name: int(_source(url, f"SELECT count(*) AS n FROM {t.name}")["n"].iloc[0]) for t in TABLES if not t.whole}


# With a rate limit the checks scan a range of keys at a time (ranges of 50 rows here): the same changes are found
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def test_with_a_rate_limit_the_checks_scan_key_ranges_and_find_every_change(backend, request, tmp_path):
    paced = {"max_rows_per_s": 10**9, "chunk": 50}  # no wait at that rate: ranges of `chunk` rows
    if backend == "sqlite":
        url = _small_copy(request.getfixturevalue("demo_sqlite")[0], tmp_path)
        _, done = _every_change_then_compare(url, tmp_path, _taken_out(url), **paced)
        assert done.rows_checked == _row_counts(url)
        return
    with fresh_mariadb_database("rca_test_store_paced") as url:
        copy_mariadb_world(request.getfixturevalue("demo_mariadb")[0], url)
        _, done = _every_change_then_compare(url, tmp_path, _taken_out(url), **paced)
        assert done.rows_checked == _row_counts(url)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(min_value=10, max_value=400), limited=st.booleans())  # below 10, thousands of statements
@example(rows=10, limited=True)
def test_any_range_size_finds_every_change(demo_sqlite, rows, limited):
    """Reads and checks asked in ranges of any size from 10 rows up (``chunk``; under a rate limit the checks too) find
    every kind of change, and the checks scan each table's rows once (the 50-row ranges are tested on MariaDB too)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = _small_copy(demo_sqlite[0], folder)
        options = {"chunk": rows, **({"max_rows_per_s": 10**9} if limited else {})}
        _, done = _every_change_then_compare(url, folder, _taken_out(url), **options)
        assert done.rows_checked == _row_counts(url)


UPDATED = [t.name for t in TABLES if t.updated]  # the tables whose rows say when they changed


def _statements_sent(record: list):
    """A ``before_cursor_execute`` listener appending each statement sent, on one line, to ``record``."""
    def grab(conn, cursor, statement, *args):
        record.append(" ".join(statement.split()))
    return grab


# A DBA may index updated_at (production has no such index): the changed rows are then asked by it, apart from the
# count and key sum, which need no row; every change is found as before, with and without a rate limit
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
@pytest.mark.parametrize("paced", [False, True])
def test_where_updated_at_is_indexed_the_changed_rows_are_asked_by_that_index(backend, paced, request, tmp_path):
    options = {"max_rows_per_s": 10**9, "chunk": 50} if paced else {}
    indexes = [f"CREATE INDEX rca_test_updated_{i} ON {name} (updated_at)" for i, name in enumerate(UPDATED)]
    sent: list[str] = []
    grab = _statements_sent(sent)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", grab)
    try:
        if backend == "sqlite":
            url = _small_copy(request.getfixturevalue("demo_sqlite")[0], tmp_path, *indexes)
            _, done = _every_change_then_compare(url, tmp_path, _taken_out(url), **options)
            assert done.rows_checked == _row_counts(url)
        else:
            with fresh_mariadb_database("rca_test_store_indexed") as url:
                copy_mariadb_world(request.getfixturevalue("demo_mariadb")[0], url)
                _write(url, *indexes)
                _, done = _every_change_then_compare(url, tmp_path, _taken_out(url), **options)
                assert done.rows_checked == _row_counts(url)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", grab)
    for name in UPDATED:  # asked apart: a count of the changed rows alone, and no scan tests updated_at row by row
        apart = [q for q in sent if q.startswith("SELECT count(*) AS count_1 FROM") and f"WHERE {name}.updated_at >=" in q]
        assert apart, name
        assert not [q for q in sent if "CASE WHEN" in q and f"{name}.updated_at >=" in q], name


def test_the_rows_the_checks_scan_count_against_the_rate_limit(demo_sqlite, tmp_path, store_waits):
    """The last wait the limit asks for covers every row counted: those sent, the keys and the rows the server
    scanned for the checks, which are most of them. The waits are recorded, not slept."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "kept")
    waits = store_waits
    rate, started = 50, time.monotonic()
    done = _refresh(url, tmp_path / "kept", max_rows_per_s=rate)
    elapsed = time.monotonic() - started
    checked = sum(done.rows_checked.values())
    assert checked == sum(_row_counts(url).values()) > 10 * done.total_read
    assert max(waits) >= (done.total_read + sum(done.keys_read.values()) + checked) / rate - elapsed


def _traces_stored_before_their_session(url: str, folder: Path) -> int:
    """A store of ``url`` in ``folder`` as a refresh leaves it that read the sessions before the newest one was
    written, and its traces after: the session absent, its traces' and errors' session columns NULL. One of its
    traces is moved 13 hours back, before the traces' own window, so that only step 5 reaches it: its id."""
    newest = _source(url, "SELECT t.id, t.call_session_id FROM retell_function_traces t JOIN retell_call_sessions s "
                          "ON s.id = t.call_session_id ORDER BY s.started_at DESC, t.id LIMIT 1")
    trace, session = int(newest["id"][0]), str(newest["call_session_id"][0])
    _write(url, f"UPDATE retell_function_traces SET started_at = datetime(started_at, '-13 hours') WHERE id = {trace}")
    _refresh(url, folder)
    con = duckdb.connect(str(folder / files.STORE_FILE))
    try:
        con.execute("DELETE FROM retell_call_sessions WHERE id = ?", [session])
        for table in ("retell_function_traces", "retell_error_log"):
            con.execute(f"UPDATE {table} SET session_call_id = NULL, session_company_id = NULL, session_started_at = NULL, "
                        "session_real_call = NULL WHERE call_session_id = ?", [session])
    finally:
        con.close()
    return trace


@pytest.mark.mariadb
def test_traces_stored_before_their_session_get_its_columns_when_the_window_brings_it(demo_sqlite, tmp_path):
    """A session written after a refresh read the sessions but before it read the traces: its traces are stored
    without it, their session columns NULL. The next refresh writes the session from its trailing window (only the
    rows that differ are written there) and must set the columns of its traces, also of one that lies before the
    traces' own window (so that only step 5 reaches it), as a fresh extraction has them."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    trace = _traces_stored_before_their_session(url, tmp_path / "kept")
    _refresh(url, tmp_path / "kept")
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "kept", tmp_path / "fresh")
    assert _stored(tmp_path / "kept")["retell_function_traces"].set_index("id").loc[trace, "session_call_id"] is not None


@pytest.mark.parametrize("stop", [KeyboardInterrupt, MemoryError])
def test_a_refresh_stopped_half_way_leaves_a_store_nothing_reads_until_the_next_mends_it(demo_sqlite, tmp_path,
                                                                                                 monkeypatch, stop):
    """A refresh can stop anywhere (Ctrl-C, a cron's timeout, the machine's memory). Here one stops after it wrote a
    session whose traces were stored before it, before it set their session columns (step 5). Kept as it was, that
    session equals the source's, the next refresh finds nothing changed and the traces stay without a call and a
    company: every analysis on the store leaves them out without a word. So the store says it is unfinished, no
    analysis opens it as it is, and the next refresh mends it: it checks the older rows and sets every trace's and
    error's session columns again, without reading the source whole."""
    url, kept = _small_copy(demo_sqlite[0], tmp_path), tmp_path / "kept"
    trace = _traces_stored_before_their_session(url, kept)
    session = _source(url, f"SELECT call_session_id FROM retell_function_traces WHERE id = {trace}")["call_session_id"][0]
    with monkeypatch.context() as patched:  # the first table's catalog row comes after every read, before step 5

        def stopped(*_args, **_kwargs):
            raise stop()

        patched.setattr(catalog, "write_table", stopped)
        with pytest.raises(stop):
            _refresh(url, kept)
    assert _stored(kept)["retell_call_sessions"]["id"].eq(session).any()  # written before it stopped
    described = store.status(kept)
    assert described["unfinished_refresh_started_utc"] is not None and described["refreshed_at_utc"] is None
    with pytest.raises(NotFound, match="unfinished"):
        store.open_store(kept)
    source = loaders.engine_for(url)
    try:
        assert store.age_s(kept, source, loaders.storage_zone(source)) == float("inf")  # an analysis refreshes first
    finally:
        source.dispose()
    done = _refresh(url, kept, check_old=False)  # an analysis's refresh between two checks: it checks all the same
    assert set(done.built) <= set(WHOLE) and done.checked_old  # mended in place, not read whole from the source
    assert store.status(kept)["unfinished_refresh_started_utc"] is None
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(kept, tmp_path / "fresh")
    store.open_store(kept)


def test_a_whole_build_stopped_half_way_is_built_whole_again(demo_sqlite, tmp_path, monkeypatch):
    """A whole build (``--full``, a new zone, a new format) that stopped leaves tables of the old build beside
    tables of the new one: only another whole build makes them one store again."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    kept = tmp_path / "kept"
    _refresh(url, kept)
    with monkeypatch.context() as patched:

        def stopped(*_args, **_kwargs):
            raise KeyboardInterrupt()

        patched.setattr(catalog, "write_table", stopped)
        with pytest.raises(KeyboardInterrupt):
            _refresh(url, kept, full=True)
    done = _refresh(url, kept)
    assert sorted(done.built) == sorted(_stored(kept))
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(kept, tmp_path / "fresh")


def test_rows_written_while_a_refresh_runs_are_never_lost_doubled_or_mended_for(demo_mariadb, tmp_path):
    """Each table's check (count, key sum) is asked before its rows are read. A row written right after the check
    counted, before the rows are read, lies past what the check counts: past the high-water key the store had
    (a webhook, integer keys) or inside the trailing window (a session, uuid keys). It is read, and no table is
    sent to be mended by keys (on a live server rows arrive during every refresh; reading every key of a busy
    table each time would cost more than the refresh). Nothing is lost or doubled."""
    with fresh_mariadb_database("rca_test_store") as url:
        copy_mariadb_world(demo_mariadb[0], url)
        _refresh(url, tmp_path / "kept")
        writer, source, arrived = sa.create_engine(url), loaders.engine_for(url), {}
        sessions = sa.Table("retell_call_sessions", sa.MetaData(), autoload_with=writer)
        first = int(_source(url, "SELECT min(id) AS i FROM webhook_events")["i"][0])

        def new_webhook(w) -> int:
            new_id = int(w.execute(sa.text("SELECT max(id) + 1 FROM webhook_events")).scalar())
            w.execute(sa.text("INSERT INTO webhook_events (id, provider, event_type, event_id, idempotency_key, payload, "
                              "status, retry_count, created_at, updated_at) SELECT :i, provider, event_type, 'evt-arrived', "
                              "'idem-arrived', payload, status, 0, created_at, updated_at FROM webhook_events WHERE id = :f"),
                      {"i": new_id, "f": first})
            return new_id

        def new_session(w) -> str:
            row = dict(w.execute(sa.select(sessions).order_by(sessions.c.started_at.desc()).limit(1)).mappings().one())
            row.update(id=str(uuid.uuid4()), call_id="call_" + uuid.uuid4().hex[:27],
                       started_at=row["started_at"] + pd.Timedelta(minutes=1).to_pytimedelta())
            w.execute(sessions.insert().values(row))
            return row["id"]

        def arrive(conn, cursor, statement, *args):  # right after a table's check ran
            for table, write in (("webhook_events", new_webhook), ("retell_call_sessions", new_session)):
                if table not in arrived and f"FROM {table}" in statement and "sum(" in statement.lower():
                    with writer.begin() as w:
                        arrived[table] = write(w)

        sa.event.listen(source, "after_cursor_execute", arrive)
        try:
            done = store.refresh(source, tmp_path / "kept", storage_zone=loaders.storage_zone(source))
        finally:
            source.dispose()
            writer.dispose()
        assert set(arrived) == {"webhook_events", "retell_call_sessions"}, "both checks ran"
        assert sum(done.keys_read.values()) == 0, done.keys_read
        _refresh(url, tmp_path / "kept")
        _refresh(url, tmp_path / "fresh")
        _assert_same_store(tmp_path / "kept", tmp_path / "fresh")
        kept = _stored(tmp_path / "kept")
        for table, key in arrived.items():
            assert (kept[table][BY_NAME[table].key].astype(str) == str(key)).sum() == 1, table


# --------------------------------------------------------------------------- 3. personal data
def test_personal_data_is_masked_before_it_is_stored(demo_sqlite, tmp_path):
    payload = {"triggerEvent": "BOOKING_CREATED", "payload": {
        "uid": "bk4930555uid", "eventTypeId": 1320965, "startTime": "2025-09-30T06:00:00.000Z",
        "attendees": [{"email": EMAIL, "phoneNumber": PHONE, "timeZone": "Europe/Berlin"}]}}
    url = _small_copy(demo_sqlite[0], tmp_path)
    _write(url, "UPDATE webhook_events SET payload = :p WHERE id = 13",
           "UPDATE retell_error_log SET error_message = 'customer ' || :e || ' said call back on ' || :ph WHERE id = 3",
           "UPDATE calls SET from_number = :ph", params={"p": json.dumps(payload), "e": EMAIL, "ph": PHONE})
    _refresh(url, tmp_path / "st")
    # the incremental path masks too: a new webhook past the high-water key
    new_id = int(_source(url, "SELECT max(id) AS m FROM webhook_events")["m"][0]) + 1
    _write(url, "INSERT INTO webhook_events (id, provider, event_type, event_id, idempotency_key, payload, status, retry_count, "
                "created_at, updated_at) SELECT :i, provider, event_type, 'evt-pii', 'idem-pii', :p, status, 0, created_at, "
                "updated_at FROM webhook_events WHERE id = 13", params={"i": new_id, "p": json.dumps(payload)})
    assert _refresh(url, tmp_path / "st").rows_read["webhook_events"] >= 1

    con = duckdb.connect(str(tmp_path / "st" / files.STORE_FILE), read_only=True)
    try:
        texts = con.execute("SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'").fetchall()
        for table, column in texts:
            for secret in (EMAIL, PHONE, "12345678", "mustermann"):
                hits = con.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" LIKE ?', [f"%{secret}%"]).fetchone()[0]
                assert hits == 0, f"{secret} stored in {table}.{column}"
        stored = [json.loads(p) for (p,) in con.execute("SELECT payload FROM webhook_events WHERE id IN (13, ?) ORDER BY id", [new_id]).fetchall()]
        message = con.execute("SELECT error_message FROM retell_error_log WHERE id = 3").fetchone()[0]
        numbers = {n for (n,) in con.execute("SELECT DISTINCT from_number FROM calls").fetchall()}
    finally:
        con.close()
    raw = (tmp_path / "st" / files.STORE_FILE).read_bytes()
    assert EMAIL.encode() not in raw and PHONE.encode() not in raw
    for kept in stored:  # keys, ids and times unchanged; only the personal values replaced
        assert kept["payload"]["uid"] == "bk4930555uid" and kept["payload"]["eventTypeId"] == 1320965
        assert kept["payload"]["startTime"] == payload["payload"]["startTime"]
        attendee = kept["payload"]["attendees"][0]
        assert set(attendee) == {"email", "phoneNumber", "timeZone"} and attendee["timeZone"] == "Europe/Berlin"
        assert attendee["email"] != EMAIL and attendee["phoneNumber"] != PHONE
    assert message.startswith("customer ") and EMAIL not in message
    assert numbers and PHONE not in numbers and None not in numbers


# --------------------------------------------------------------------------- derived columns
METADATA = {  # appointments.metadata as people and apps write it -> the call id the attempts link by (NA: none)
    '{"retell_call_id": "call_0a1b2c3d4e5f60718293a4b5c6d"}': "call_0a1b2c3d4e5f60718293a4b5c6d",
    '"{\\"retell_call_id\\": \\"call_double\\"}"': "call_double",  # double-encoded (P15)
    '{"retell_call_id": 12345678901234567890}': "12345678901234567890",  # 20 digits: exact, not a float
    '{"retell_call_id": null, "note": "retell_call_id"}': None,
    '{"\\u0072etell_call_id": "call_escaped"}': None,  # the key's bytes are not there: never decoded
    '["retell_call_id"]': None,
    '{"retell_call_id": "call_cut"': None,  # cut off: not JSON
    None: None,
}


def _with_texts(url: str, table: str, column: str, texts) -> list[int]:
    """``texts`` written into ``column`` of the first rows of ``table``; their ids."""
    ids = [int(i) for i in _source(url, f"SELECT id FROM {table} ORDER BY id")["id"][:len(texts)]]
    _write(url, *[f"UPDATE {table} SET {column} = :m{i} WHERE id = {key}" for i, key in enumerate(ids)],
           params={f"m{i}": text for i, text in enumerate(texts)})
    return ids


def _with_metadata(url: str) -> list[int]:
    return _with_texts(url, "appointments", "metadata", METADATA)


def _stored_call_ids(folder: Path) -> dict[int, object]:
    con = duckdb.connect(str(Path(folder) / files.STORE_FILE), read_only=True)
    try:
        rows = con.execute(f"SELECT id, {store.METADATA_CALL_ID} FROM appointments").fetchall()
    finally:
        con.close()
    return {int(i): v for i, v in rows}


def _assert_call_ids_stored(url: str, folder: Path, ids: list[int]) -> None:
    stored = _stored_call_ids(folder)
    assert [stored[i] for i in ids] == list(METADATA.values())
    direct, cached = attempt_inputs.load(url), attempt_inputs.load(store.open_store(Path(folder)))
    store.close(folder)  # read-only until the next refresh writes it
    want = direct.appointments.set_index("id")["retell_call_id"].sort_index()
    pd.testing.assert_series_equal(cached.appointments.set_index("id")["retell_call_id"].sort_index(), want)
    assert want.notna().sum() > len([v for v in METADATA.values() if v])  # the demo's own links are there too


def test_the_call_id_an_appointment_names_is_stored_as_a_read_of_the_source_decodes_it(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    ids = _with_metadata(url)
    _refresh(url, tmp_path / "st")
    _assert_call_ids_stored(url, tmp_path / "st", ids)
    # a row changed after it was stored gets its new call id (the incremental path derives it too)
    _write(url, "UPDATE appointments SET metadata = :m, updated_at = (SELECT max(updated_at) FROM appointments) "
                "WHERE id = :i", params={"m": '{"retell_call_id": "call_later"}', "i": ids[-1]})
    _refresh(url, tmp_path / "st")
    assert _stored_call_ids(tmp_path / "st")[ids[-1]] == "call_later"


ERROR_TEXTS = {  # message -> as stored folded (every real call id becomes CALL_ID_FOLDED, nothing else)
    "call_0123456789abcdef0123456789a failed; retry of call_fedcba9876543210fedcba98765 failed":
        f"{call_ids.CALL_ID_FOLDED} failed; retry of {call_ids.CALL_ID_FOLDED} failed",
    "CALL_0123456789ABCDEF0123456789A and call_0123 stay": "CALL_0123456789ABCDEF0123456789A and call_0123 stay",
    "xcall_0123456789abcdef0123456789ab\n": f"x{call_ids.CALL_ID_FOLDED}b\n",
    "": "",
}


def _assert_messages_folded(url: str, folder: Path, ids: list[int]) -> None:
    """The stored fold is the database's: every row equals DuckDB's regexp_replace of its stored message."""
    con = duckdb.connect(str(Path(folder) / files.STORE_FILE), read_only=True)
    try:
        rows = dict(con.execute(f"SELECT id, {store.ERROR_MESSAGE_FOLDED} FROM retell_error_log").fetchall())
        (differ,), = con.execute(f"SELECT count(*) FROM retell_error_log WHERE {store.ERROR_MESSAGE_FOLDED} IS DISTINCT FROM "
                                 f"regexp_replace(error_message, '{call_ids.RETELL_CALL_ID_BODY}', "
                                 f"'{call_ids.CALL_ID_FOLDED}', 'g')").fetchall()
    finally:
        con.close()
    assert [rows[i] for i in ids] == list(ERROR_TEXTS.values()) and differ == 0


def _with_error_texts(url: str) -> list[int]:
    return _with_texts(url, "retell_error_log", "error_message", ERROR_TEXTS)


def test_error_messages_are_stored_with_their_call_ids_folded_as_the_database_folds_them(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    ids = _with_error_texts(url)
    _refresh(url, tmp_path / "st")
    _assert_messages_folded(url, tmp_path / "st", ids)


DERIVED = {"the call id an appointment names": (_with_metadata, _assert_call_ids_stored),
           "error messages folded": (_with_error_texts, _assert_messages_folded)}


@pytest.mark.mariadb
@pytest.mark.parametrize("derived", DERIVED)
def test_derived_columns_are_stored_from_a_mariadb_server_too(demo_mariadb, tmp_path, derived):
    """A server is read by connectorx as Arrow: the other path into the store."""
    write, check = DERIVED[derived]
    with fresh_mariadb_database("rca_test_store") as url:
        copy_mariadb_world(demo_mariadb[0], url)
        ids = write(url)
        _refresh(url, tmp_path / "st")
        check(url, tmp_path / "st", ids)


def test_a_store_of_an_older_format_is_built_whole_again(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "st")
    con = duckdb.connect(str(tmp_path / "st" / files.STORE_FILE))
    try:
        catalog.write_info(con, format="1")
    finally:
        con.close()
    # however recent its last refresh, the next command refreshes it before reading (a column it lacks)
    source = loaders.engine_for(url)
    assert store.age_s(tmp_path / "st", source, loaders.storage_zone(source)) == float("inf")
    source.dispose()
    assert _refresh(url, tmp_path / "st").built == [t.name for t in TABLES]
    con = duckdb.connect(str(tmp_path / "st" / files.STORE_FILE), read_only=True)
    try:
        assert catalog.info(con)["format"] == catalog.FORMAT
    finally:
        con.close()
    assert _refresh(url, tmp_path / "st").built == WHOLE


# --------------------------------------------------------------------------- 4. owner-only files
def test_the_store_is_readable_by_its_owner_only_under_a_permissive_umask(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    folder = tmp_path / "cache" / "store"
    old = os.umask(0o022)
    try:
        _refresh(url, folder)
        _refresh(url, folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes[files.STORE_FILE] == modes[files.LOCK_FILE] == 0o600
    assert set(modes.values()) == {0o600}, modes


# --------------------------------------------------------------------------- 5. schema changes
def test_a_table_missing_in_the_source_is_reported_and_not_stored(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path, "DROP TABLE retell_error_log")
    done = _refresh(url, tmp_path / "st")
    assert done.missing == ["retell_error_log"] and "retell_error_log" not in done.rows_read
    assert "retell_error_log" not in _stored(tmp_path / "st") and "retell_error_log" not in _catalog(tmp_path / "st")


def test_a_table_that_disappears_from_the_source_leaves_the_store(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "st")
    _write(url, "DROP TABLE webhook_events")
    done = _refresh(url, tmp_path / "st")
    assert done.missing == ["webhook_events"]
    assert "webhook_events" not in _stored(tmp_path / "st") and "webhook_events" not in _catalog(tmp_path / "st")
    assert [t["table"] for t in store.status(tmp_path / "st")["tables"]] == sorted(t.name for t in TABLES if t.name != "webhook_events")


def test_a_stored_column_gained_or_lost_by_the_source_rebuilds_that_table(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path, "ALTER TABLE calls DROP COLUMN session_outcome")
    _refresh(url, tmp_path / "st")
    assert "session_outcome" not in _stored(tmp_path / "st")["calls"]

    _write(url, "ALTER TABLE calls ADD COLUMN session_outcome VARCHAR(50)", "UPDATE calls SET session_outcome = 'booked' WHERE id % 20 = 3")
    done = _refresh(url, tmp_path / "st")
    assert done.built == ["calls", *WHOLE]
    calls = _stored(tmp_path / "st")["calls"]
    assert (calls["session_outcome"] == "booked").sum() == len(_source(url, "SELECT id FROM calls WHERE session_outcome = 'booked'")) > 0

    _write(url, "ALTER TABLE appointments DROP COLUMN calcom_sync_status")
    done = _refresh(url, tmp_path / "st")
    assert done.built == ["appointments", *WHOLE]
    assert "calcom_sync_status" not in _stored(tmp_path / "st")["appointments"]
    assert "calcom_sync_status" not in _catalog(tmp_path / "st")["appointments"][0]
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "st", tmp_path / "fresh")


def test_a_source_column_the_store_does_not_keep_changes_nothing(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "st")
    _write(url, "ALTER TABLE calls ADD COLUMN notes_2 TEXT")
    assert _refresh(url, tmp_path / "st").built == WHOLE
    assert "notes_2" not in _stored(tmp_path / "st")["calls"]


def test_another_storage_zone_rebuilds_every_table(demo_sqlite, tmp_path):
    """Naive wall times read in one zone must not be mixed with rows read in another."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    source = loaders.engine_for(url)
    try:
        store.refresh(source, tmp_path / "st", storage_zone="Europe/Berlin")
        assert store.refresh(source, tmp_path / "st", storage_zone="Europe/Berlin").built == WHOLE
        done = store.refresh(source, tmp_path / "st", storage_zone="UTC")
    finally:
        source.dispose()
    assert done.built == [t.name for t in TABLES]
    assert store.status(tmp_path / "st")["storage_zone"] == "UTC"


# --------------------------------------------------------------------------- 6. drop
def test_drop_removes_the_store_folder(demo_sqlite, tmp_path):
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "st")
    assert store.drop(tmp_path / "st") is True
    assert not (tmp_path / "st").exists()
    assert store.drop(tmp_path / "st") is False


def test_drop_refuses_a_folder_that_is_not_a_store(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.txt").write_text("keep me")
    with pytest.raises(ConfigError) as caught:
        store.drop(folder)
    assert str(folder) in caught.value.message and "store" in caught.value.message
    assert (folder / "thesis.txt").read_text() == "keep me" and sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]


def test_drop_refuses_a_store_folder_holding_other_files(demo_sqlite, tmp_path):
    """A store file beside someone's files (a store pointed at a wrong folder) deletes none of them."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "st")
    (tmp_path / "st" / "thesis.txt").write_text("keep me")
    with pytest.raises(ConfigError):
        store.drop(tmp_path / "st")
    assert (tmp_path / "st" / "thesis.txt").exists() and (tmp_path / "st" / files.STORE_FILE).exists()


# --------------------------------------------------------------------------- 7. chunks
def test_many_small_chunks_read_the_same_rows_as_one(demo_sqlite, tmp_path):
    """Keyset pagination: chunk borders lose or repeat no row, on the full build and on a refresh."""
    url = _small_copy(demo_sqlite[0], tmp_path, every=40)
    saved = _taken_out(url)
    counts = {n: len(_source(url, f"SELECT {BY_NAME[n].key} FROM {n}")) for n in BY_NAME}
    small = _refresh(url, tmp_path / "small", chunk=7)
    assert small.rows_read == counts and min(v for v in counts.values() if v > 1) > 7  # two chunks at least
    with Changes(url) as changes:
        changes.saved = saved
        _all_changes(changes)
    _refresh(url, tmp_path / "small", chunk=7)
    _refresh(url, tmp_path / "one", chunk=1_000_000)
    _assert_same_store(tmp_path / "small", tmp_path / "one")


# --------------------------------------------------------------------------- how old a store may be
def test_a_store_refreshed_moments_ago_is_read_as_it_is_and_says_when(demo_sqlite, tmp_path):
    """``fresh_store`` reads the server only when the last refresh (by any process: the catalog says when)
    started more than ``max_age_s`` ago; the store's label names that time, so a report says how old it is."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    folder = tmp_path / "st"
    _refresh(url, folder)
    source = loaders.engine_for(url)
    try:
        zone = loaders.storage_zone(source)
        assert 0 <= store.age_s(folder, source, zone) < 60
        _write(url, "DELETE FROM retell_error_log")  # the source changes after the refresh
        store.close(folder)
        young = store.fresh_store(source, folder, zone, max_age_s=3600)
        held = loaders.query(young, "SELECT count(*) AS n FROM retell_error_log", {})["n"].iloc[0]
        assert held > 0  # not refreshed: the store is as the last refresh left it
        when = pd.Timestamp(young.rca_label.split(", as of ")[1].removesuffix(" UTC)"), tz="UTC")
        assert abs(pd.Timestamp.now("UTC") - when) < pd.Timedelta(minutes=1)
        store.close(folder)
        old = store.fresh_store(source, folder, zone, max_age_s=1e-6, check_every_s=1e-6)  # older: refreshed first
        assert loaders.query(old, "SELECT count(*) AS n FROM retell_error_log", {})["n"].iloc[0] == 0
        assert store.age_s(folder, source, "America/New_York") == float("inf")  # another zone: built whole again
    finally:
        store.close(folder)
        source.dispose()


def test_the_max_age_setting_is_seconds_and_refuses_nonsense(monkeypatch):
    from rca_toolkit.config import load_settings

    monkeypatch.setenv("RCA_CACHE_MAX_AGE_S", "42")
    assert load_settings().cache_max_age_s == 42.0
    for bad in ("0", "-5", "soon", "inf"):
        monkeypatch.setenv("RCA_CACHE_MAX_AGE_S", bad)
        with pytest.raises(ConfigError, match="RCA_CACHE_MAX_AGE_S"):
            load_settings()


def test_the_rows_per_second_setting_is_a_positive_number_or_none(monkeypatch):
    from rca_toolkit.config import load_settings

    monkeypatch.delenv("RCA_CACHE_MAX_ROWS_PER_S", raising=False)
    assert load_settings().cache_max_rows_per_s is None
    for text, read in (("50000", 50000.0), ("1", 1.0), ("", None), ("  ", None)):
        monkeypatch.setenv("RCA_CACHE_MAX_ROWS_PER_S", text)
        assert load_settings().cache_max_rows_per_s == read
    for bad in ("0", "-5", "0.5", "many", "inf", "nan", "1e13"):
        monkeypatch.setenv("RCA_CACHE_MAX_ROWS_PER_S", bad)
        with pytest.raises(ConfigError, match="RCA_CACHE_MAX_ROWS_PER_S.* is not a number of rows a second"):
            load_settings()


@pytest.mark.parametrize("limit", [None, 50])
def test_the_refresh_an_analysis_makes_first_keeps_to_the_rows_per_second_setting(demo_sqlite, tmp_path, monkeypatch, limit,
                                                                                   store_waits):
    """``engine_for(cached=True)`` refreshes a store that is too old before an analysis reads it: that refresh keeps
    to ``cache_max_rows_per_s`` as ``rca cache refresh`` does (waits recorded, not slept); unset, it never waits."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    monkeypatch.setenv("RCA_CACHE", "on")
    monkeypatch.setenv("RCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RCA_CACHE_MAX_ROWS_PER_S", "" if limit is None else str(limit))
    waits = store_waits
    started = time.monotonic()
    engine = loaders.engine_for(url, cached=True)
    elapsed = time.monotonic() - started
    try:
        assert store.is_store(engine)
        rows = int(loaders.query(engine, "SELECT count(*) AS n FROM retell_function_traces", {})["n"].iloc[0])
    finally:
        store.close(store.folder(tmp_path / "cache", sa.make_url(url)))
    assert rows == int(_source(url, "SELECT count(*) AS n FROM retell_function_traces")["n"].iloc[0]) > 0
    if limit is None:
        assert waits == []
    else:  # a new store: every row read once, none checked yet
        assert max(waits) >= sum(_row_counts(url).values()) / limit - elapsed


def test_an_old_row_changed_with_an_updated_at_a_little_before_the_newest_stored_is_read(demo_sqlite, tmp_path):
    """A transaction that commits late stamps its rows before rows another one committed first: an old appointment
    (far outside the trailing window) changed with an ``updated_at`` 30 s before the newest the store holds is still
    read, as the check asks from the newest minus a minute."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "kept")
    newest = pd.Timestamp(_source(url, "SELECT max(updated_at) AS t FROM appointments")["t"].iloc[0])
    oldest = int(_source(url, "SELECT min(id) AS i FROM appointments")["i"].iloc[0])
    _write(url, "UPDATE appointments SET source = 'cal.com', updated_at = :at WHERE id = :id",
           params={"at": (newest - pd.Timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M:%S"), "id": oldest})
    _refresh(url, tmp_path / "kept")
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "kept", tmp_path / "fresh")
    stored = _stored(tmp_path / "kept")["appointments"].set_index("id")
    assert stored.loc[oldest, "source"] == "cal.com"


def test_a_changed_row_without_a_time_is_read_by_the_check(demo_sqlite, tmp_path):
    """A row whose time column is NULL belongs to no trailing window, however new its key: when it changes, the check
    of older rows reads it."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    newest_key = int(_source(url, "SELECT max(id) AS i FROM appointments")["i"].iloc[0])
    _write(url, "UPDATE appointments SET created_at = NULL WHERE id = :id", params={"id": newest_key})
    _refresh(url, tmp_path / "kept")
    later = pd.Timestamp(_source(url, "SELECT max(updated_at) AS t FROM appointments")["t"].iloc[0]) + pd.Timedelta(minutes=5)
    _write(url, "UPDATE appointments SET source = 'cal.com', updated_at = :at WHERE id = :id",
           params={"at": later.strftime("%Y-%m-%d %H:%M:%S"), "id": newest_key})
    _refresh(url, tmp_path / "kept")
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "kept", tmp_path / "fresh")
    assert _stored(tmp_path / "kept")["appointments"].set_index("id").loc[newest_key, "source"] == "cal.com"


def test_an_old_row_moved_into_the_trailing_window_s_time_is_read_by_the_check(demo_sqlite, tmp_path):
    """The oldest appointment (the lowest key) changed and given a time inside the trailing window: its key lies below
    the window's keys and its new time is not before the window's, so neither the window nor a time test reaches it;
    the check asks for the keys below the window's too."""
    url = _small_copy(demo_sqlite[0], tmp_path)
    _refresh(url, tmp_path / "kept")
    latest = _source(url, "SELECT max(created_at) AS c, max(updated_at) AS u FROM appointments").iloc[0]
    oldest = int(_source(url, "SELECT min(id) AS i FROM appointments")["i"].iloc[0])
    later = (pd.Timestamp(latest["u"]) + pd.Timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    _write(url, "UPDATE appointments SET source = 'cal.com', created_at = :c, updated_at = :u WHERE id = :id",
           params={"c": str(latest["c"]), "u": later, "id": oldest})
    _refresh(url, tmp_path / "kept")
    _refresh(url, tmp_path / "fresh")
    _assert_same_store(tmp_path / "kept", tmp_path / "fresh")
    assert _stored(tmp_path / "kept")["appointments"].set_index("id").loc[oldest, "source"] == "cal.com"
