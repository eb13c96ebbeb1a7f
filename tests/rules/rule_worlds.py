"""Small hand-made worlds for the rule twin tests: the production schema, a few edited rows.

Why not the demo world alone: it never hits the edges (every stuck session has a completed call
row, every id is either clean or obviously a test id). These worlds put rows exactly on them,
on SQLite and on the real MariaDB, so a SQL twin is compared with its pandas rule where they
could differ.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import fresh_mariadb_database
from rca_toolkit.sources import db, loaders, schema

BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]


@contextmanager
def empty_world(backend: str, folder: Path):
    """URL of an empty database with the production schema, on ``backend``."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'rules.sqlite'}"
        _create(url)
        yield url
        return
    with fresh_mariadb_database("rca_rules") as url:
        _create(url)
        yield url


def _create(url: str) -> None:
    engine = db.make_engine(url, writable=True)
    schema.metadata.create_all(engine, tables=[schema.metadata.tables[t] for t in ("retell_call_sessions", "calls",
                                                                                 "retell_call_events", "retell_function_traces")])
    engine.dispose()


def stored(url: str, ts) -> object:
    """A UTC instant as the database stores it (naive wall time in its storage zone)."""
    engine = loaders.engine_for(url)
    zone = loaders.storage_zone(engine)
    engine.dispose()
    return None if ts is None else pd.Timestamp(ts).tz_convert(zone).tz_localize(None).to_pydatetime()


def insert(url: str, table: str, rows: list[dict]) -> None:
    """Rows into a table of the world (writable engine; the analysis reads through read-only ones)."""
    engine = db.make_engine(url, writable=True)
    with engine.begin() as conn:
        conn.execute(schema.metadata.tables[table].insert(), rows)
    engine.dispose()


def query(url: str, sql: str, **params) -> pd.DataFrame:
    """One read-only statement; datetime parameters are bound as the dialect stores datetimes."""
    engine = loaders.engine_for(url)
    statement = sa.text(sql).bindparams(*(sa.bindparam(k, type_=sa.DateTime) for k, v in params.items()
                                          if hasattr(v, "tzinfo")))
    with engine.connect() as conn:
        frame = pd.read_sql(statement, conn, params=params)
    engine.dispose()
    return frame


def one_column_table(column: str, url: str = "sqlite://") -> sa.Engine:
    """An in-memory table ``t(id, <column>)`` (SQLite, or DuckDB as the local store) for Hypothesis examples
    (refilled by :func:`refill`)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {column} VARCHAR)"))
    return engine


def refill(conn: sa.Connection, values: list) -> None:
    """Replace the rows of ``t`` by ``values``, one per id in order."""
    conn.execute(sa.text("DELETE FROM t"))
    conn.execute(sa.text("INSERT INTO t VALUES (:i, :v)"), [{"i": i, "v": v} for i, v in enumerate(values)])
