"""What a store holds and from when, kept inside the store file itself.

Why in the file: a store copied or restored from a backup still says what it is. ``_rca_store_info`` holds
the source (its redacted URL, dialect and the zone its timestamps are in) and ``_rca_store_tables`` one row
per table: the columns and source types it was built with, its rows, its high-water key, when it was
built whole and when it was last refreshed, and how many rows that refresh read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pandas as pd

FORMAT = "4"  # 2: derived columns (tables.StoredTable.derived); 3: the error messages with their call ids folded;
# 4: traces and errors keep their session's columns (tables.SESSION_COLUMNS)
UNFINISHED = "unfinished_refresh_started_utc"  # info key: set while a refresh writes, left set by one that stopped
UNFINISHED_FULL = "unfinished_refresh_full"  # info key: "1" while that refresh builds the store whole
_INFO = "_rca_store_info"
_TABLES = "_rca_store_tables"


@dataclass
class TableState:
    name: str
    columns: dict  # column -> source SQL type text
    rows: int
    high_key: str | None
    built_at: pd.Timestamp | None
    refreshed_at: pd.Timestamp | None
    rows_read: int
    first_time: pd.Timestamp | None = None  # earliest and latest row time it holds (wall time of the source)
    last_time: pd.Timestamp | None = None


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {_INFO} (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {_TABLES} (name VARCHAR PRIMARY KEY, columns VARCHAR, rows BIGINT, "
                "high_key VARCHAR, built_at TIMESTAMP, refreshed_at TIMESTAMP, rows_read BIGINT, "
                "first_time TIMESTAMP, last_time TIMESTAMP)")


def write_info(con, **values) -> None:
    for key, value in values.items():
        con.execute(f"INSERT OR REPLACE INTO {_INFO} VALUES (?, ?)", [key, None if value is None else str(value)])


def info(con) -> dict[str, str]:
    if not _has(con, _INFO):
        return {}
    return dict(con.execute(f"SELECT key, value FROM {_INFO}").fetchall())


_MARK = "check_since."
EMPTY_MARK = pd.Timestamp("1970-01-01")  # a table empty at the last check: every row counts as changed since


def write_check_mark(con, table: str, newest) -> None:
    """The newest ``updated_at`` of ``table`` when its old rows were last checked or it was built: the next check
    asks for the rows changed since (``extract`` steps 3-4), however many refreshes skipped the check."""
    value = EMPTY_MARK if newest is None or pd.isna(newest) else pd.Timestamp(newest)
    write_info(con, **{_MARK + table: value.isoformat()})


def check_marks(info_values: dict) -> dict[str, pd.Timestamp]:
    """Per table, the mark :func:`write_check_mark` kept (tables without one are absent)."""
    return {k[len(_MARK):]: pd.Timestamp(v) for k, v in info_values.items() if k.startswith(_MARK) and v}


def write_table(con, state: TableState) -> None:
    con.execute(f"INSERT OR REPLACE INTO {_TABLES} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [state.name, json.dumps(state.columns), state.rows, state.high_key, _py(state.built_at),
                 _py(state.refreshed_at), state.rows_read, _py(state.first_time), _py(state.last_time)])


def forget_table(con, name: str) -> None:
    if _has(con, _TABLES):
        con.execute(f"DELETE FROM {_TABLES} WHERE name = ?", [name])


def tables(con) -> dict[str, TableState]:
    if not _has(con, _TABLES):
        return {}
    rows = con.execute(f"SELECT name, columns, rows, high_key, built_at, refreshed_at, rows_read, first_time, last_time "
                       f"FROM {_TABLES} ORDER BY name").fetchall()
    return {r[0]: TableState(r[0], json.loads(r[1]), int(r[2]), r[3], _ts(r[4]), _ts(r[5]), int(r[6] or 0), _ts(r[7]), _ts(r[8]))
            for r in rows}


def _has(con, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchall()[0][0])


def _py(value):
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _ts(value):
    return None if value is None else pd.Timestamp(value)
