"""Large MariaDB results fetched as CSV text that the server builds and pandas parses in C.

Why: pymysql decodes every value in Python (about 0.3 µs each, holding the GIL, plus the row
objects ``pd.read_sql`` builds): the attempt counts of a 60-day window at 1M calls fetch about
6M values, 5 s of Python on a 2-core machine where the server needs the other core. The server
formats every value as text for the protocol anyway; ``GROUP_CONCAT`` packs a chunk of rows
(by an integer key) into one value and ``pandas.read_csv`` parses the lot in C.

Chunks travel as UTF-8 bytes whatever the connection's character set, and are parsed as they
stream in. Strings travel quoted (RFC 4180: ``"`` doubled); the parser reads NULL (an empty field)
and the empty string (``""``) alike, so each row carries a bit mask of its NULL strings that tells
them apart (a mask costs the C parser one integer; a marker on every string cost a Python pass over
each value, 0.8 s per ``rca compare`` at 1M calls). Every row ends with a marker column: a
chunk cut short by ``group_concat_max_len`` is caught by that marker or by the server's row
count, and the statement then runs plainly (same frame). MariaDB only; callers keep the plain path.
"""

from __future__ import annotations

import io
import logging
import time

import numpy as np
import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import loaders
from rca_toolkit.sources.db import database_error

log = logging.getLogger(__name__)
INT, STR, CAT = "int", "str", "cat"  # CAT: a string column of few distinct values, read as a categorical
ROWS_PER_CHUNK = 4096  # key span per GROUP_CONCAT value: a few MB for rows of a few hundred bytes
_END = "."
CHUNK_LIMIT_SQL = "@@max_allowed_packet DIV 2"  # bytes one packed chunk may hold (the tests shrink it)
_NEWLINE = "\n"  # sent as a raw newline: the literal does not depend on NO_BACKSLASH_ESCAPES
_NULLS = "_nulls"


_DTYPES = {INT: "Int64", STR: "object", CAT: "category"}


def _field(name: str, kind: str) -> str:
    if kind == INT:
        return f"IFNULL(x.{name}, '')"
    return f"IFNULL(CONCAT('\"', REPLACE(x.{name}, '\"', '\"\"'), '\"'), '')"


def _strings_of(columns: dict[str, str]) -> list[str]:
    return [n for n, k in columns.items() if k != INT]


def _null_mask(columns: dict[str, str]) -> list[str]:
    """Bit i set when the i-th string column is NULL (``_NULLS``); none without string columns."""
    strings = _strings_of(columns)
    if len(strings) > 62:
        raise ValueError("packed.read takes at most 62 string columns")
    return [" + ".join(f"((x.{n} IS NULL) << {i})" for i, n in enumerate(strings))] if strings else []


def read(engine: sa.Engine, sql: str, params: dict, columns: dict[str, str], *, key: str,
         order: list[str] | None = None, conn: sa.Connection | None = None, statements: list | None = None) -> pd.DataFrame:
    """The rows of ``sql`` (no ORDER BY; ``order`` sorts them here) with ``columns`` typed:
    ``INT`` as nullable ``Int64``, ``STR`` as objects (None for NULL), ``CAT`` as a categorical of those
    strings (one object per distinct value: less memory and parsing). ``key`` is an integer column
    of ``sql`` that chunks the rows."""
    try:
        if conn is None:
            with engine.connect() as own:
                return _read(engine, sql, params, columns, key, order, own, statements)
        return _read(engine, sql, params, columns, key, order, conn, statements)
    except (sa.exc.DBAPIError, pd.errors.DatabaseError) as exc:
        raise database_error(engine, exc) from None


def _read(engine, sql: str, params: dict, columns: dict[str, str], key: str, order, conn, statements) -> pd.DataFrame:
    # a packed chunk is one value: let it grow to half a packet (the session keeps this larger limit)
    conn.execute(sa.text(f"SET SESSION group_concat_max_len = {CHUNK_LIMIT_SQL}"))
    row = ", ".join([_field(n, k) for n, k in columns.items()] + _null_mask(columns) + [f"'{_END}'"])
    packed_sql = (f"SELECT COUNT(*) AS n, CAST(CONVERT(GROUP_CONCAT(CONCAT_WS(',', {row}) SEPARATOR '{_NEWLINE}') USING utf8mb4) AS BINARY) AS body "
                  f"FROM ({sql}) x GROUP BY x.{key} DIV {ROWS_PER_CHUNK}")
    if statements is not None:
        statements.append((packed_sql, params))
    # streamed: each chunk is parsed as it arrives and dropped, never all of them at once (peak memory)
    started = time.perf_counter()
    result = conn.execution_options(stream_results=True).execute(sa.text(packed_sql), params)
    stream = _ChunkStream(result)
    try:
        frame = _parse(io.BufferedReader(stream, buffer_size=1 << 20), columns)
    except (pd.errors.ParserError, UnicodeDecodeError):  # a cut chunk can end inside a quote or a character
        frame = None
    finally:
        result.close()
    label = loaders.statement_label(sql)
    if frame is None or len(frame) != stream.rows or not frame["_end"].eq(_END).all():
        why = ("a chunk did not parse" if frame is None else f"{len(frame)} of {stream.rows} rows parsed"
               if len(frame) != stream.rows else "a row lost its end marker")
        log.info("packed fetch cut short by group_concat_max_len (%s), fetched plainly: %s", why, label)
        frame = plain_read(engine, sql, params, columns, conn)  # a chunk was cut: the rows as they are
    else:
        log.debug("%s: %d rows packed in %.3f s", label, len(frame), time.perf_counter() - started)
    frame = frame.drop(columns="_end", errors="ignore")
    return _sorted(frame, order) if order and len(frame) else frame


def _sorted(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """``frame.sort_values(order, kind="stable")``; for integer keys without NULLs, one ``np.lexsort``
    and one ``take`` (sort_values on nullable integers factorizes each key first: 0.4 s per compare at 1M calls)."""
    keys = [frame[name] for name in order]
    if not all(pd.api.types.is_integer_dtype(k.dtype) and not k.hasnans for k in keys):
        return frame.sort_values(order, kind="stable").reset_index(drop=True)
    rows = np.lexsort([k.to_numpy(dtype="int64") for k in reversed(keys)])  # stable; the last key sorts first
    return frame.take(rows).reset_index(drop=True)


class _ChunkStream(io.RawIOBase):
    """The packed chunks of a streamed result as one UTF-8 byte stream (chunks joined by newlines);
    ``rows`` counts the rows the server packed, for the check after parsing."""

    def __init__(self, result):
        self._chunks = iter(result)
        self._view, self._at, self._started = memoryview(b""), 0, False
        self.rows = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at >= len(self._view):
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            n, body = chunk
            self.rows += int(n)
            if body:
                self._view, self._at = memoryview(b"\n" + body if self._started else body), 0
                self._started = True
        size = min(len(buffer), len(self._view) - self._at)
        buffer[:size] = self._view[self._at:self._at + size]
        self._at += size
        return size


def _parse(stream, columns: dict[str, str]) -> pd.DataFrame:
    """UTF-8 CSV bytes (bytes, not str: a str buffer would take 4 bytes per character) -> typed frame."""
    strings = _strings_of(columns)
    names = list(columns) + ([_NULLS] if strings else []) + ["_end"]
    kinds = {**columns, _NULLS: INT}
    try:
        frame = pd.read_csv(stream, encoding="utf-8", header=None, names=names, engine="c",
                            dtype={n: _DTYPES[kinds.get(n, STR)] for n in names},
                            keep_default_na=False, na_values={n: [""] for n in names}, quotechar='"', doublequote=True)
    except pd.errors.EmptyDataError:  # no rows
        return pd.DataFrame({n: pd.Series(dtype=_DTYPES[k]) for n, k in columns.items()} | {"_end": pd.Series(dtype="object")})
    nulls = frame.pop(_NULLS).fillna(0).to_numpy("int64") if strings else None
    for bit, name in enumerate(strings):
        missing = frame[name].isna().to_numpy()
        empty = missing & ((nulls >> bit) & 1 == 0)  # read as missing, but not NULL: the empty string
        if columns[name] == STR:
            values = frame[name].to_numpy(dtype=object, copy=True)
            values[missing] = None  # None for NULL, as pd.read_sql gives it (not NaN)
            values[empty] = ""
            frame[name] = pd.Series(values, index=frame.index, dtype=object)
        elif empty.any():
            cat = frame[name]
            cat = cat if "" in cat.cat.categories else cat.cat.add_categories([""])
            frame[name] = cat.where(~empty, "")
    return frame


def _strings(values: pd.Series) -> pd.Series:
    """Objects with None for NULL, as ``pd.read_sql`` gives them (not NaN)."""
    out = values.to_numpy(dtype=object, na_value=None)
    return pd.Series(out, index=values.index, dtype=object)


def plain_read(engine, sql: str, params: dict, columns: dict[str, str], conn) -> pd.DataFrame:
    """The rows fetched as they are and typed like the packed read: the fallback when a chunk was cut."""
    frame = loaders.query(engine, sql, params, conn)[list(columns)]
    for name, kind in columns.items():
        if kind == INT:
            frame[name] = pd.to_numeric(frame[name]).astype("Int64")
        elif kind == CAT:
            frame[name] = frame[name].astype("category")
        else:
            frame[name] = _strings(frame[name])
    return frame
