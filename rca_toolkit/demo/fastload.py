"""MariaDB bulk path of the demo builder: numpy-rendered LOAD DATA files, deferred indexes.

Private helper of :mod:`rca_toolkit.demo`. Rendering millions of rows cell by cell in Python
(csv, ``to_csv``, executemany) costs microseconds per cell; here every column becomes a
ragged byte array with numpy (integers as digits, strings joined and encoded once) and rows
are assembled with vectorised scatter copies. Fields are separated by ``\\x1f`` and rows
by ``\\x1e`` with no escaping (generated text never contains those bytes; checked), NULL is
an empty field turned into NULL by ``NULLIF``, and times travel as UTC microseconds converted
by ``FROM_UNIXTIME`` in the ``+00:00`` session. Tables are created with the primary key only,
loaded in key order, and get their secondary indexes, unique keys and foreign keys afterwards
(one sorted index build per table instead of millions of random index inserts).
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import sqlalchemy as sa

FIELD, ROW = 0x1F, 0x1E
CHUNK = 250_000


class _Ragged:
    """Bytes of one column: flat ``data`` and per-row ``lengths`` (0 = NULL or empty)."""

    def __init__(self, data: np.ndarray, lengths: np.ndarray):
        self.data, self.lengths = data, lengths


def _int_column(values: np.ndarray, null: np.ndarray) -> _Ragged:
    v = np.where(null, 0, values).astype(np.int64)
    mag = np.abs(v)
    width = max(1, len(str(int(mag.max())))) if len(v) else 1
    neg = v < 0
    digits = (mag[:, None] // (10 ** np.arange(width - 1, -1, -1, dtype=np.int64))) % 10 + 48
    if neg.any():
        sign = np.where(neg, ord("-"), ord("0"))[:, None]
        digits = np.concatenate([sign, digits], axis=1)
    digits = digits.astype(np.uint8)
    lengths = np.where(null, 0, digits.shape[1]).astype(np.int64)
    return _Ragged(digits[~null].ravel(), lengths)


def _str_column(values: np.ndarray, null: np.ndarray) -> _Ragged:
    texts = np.where(null, "", values)
    codes, uniques = pd.factorize(texts)
    if len(uniques) < len(texts) // 4:  # pooled strings: encode each distinct value once
        encoded = [str(u).encode("utf-8") for u in uniques]
        ulen = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        udata = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        ustart = np.concatenate([[0], np.cumsum(ulen)[:-1]])
        lengths = ulen[codes]
        data = udata[_ragged_index(ustart[codes], lengths)]
    else:
        blob = np.frombuffer("\x00".join(map(str, texts)).encode("utf-8") + b"\x00", dtype=np.uint8)
        ends = np.flatnonzero(blob == 0)
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = (ends - starts).astype(np.int64)
        data = blob[blob != 0]
    if ((data == FIELD) | (data == ROW)).any():
        raise ValueError("generated text contains a LOAD DATA separator byte")
    if ((lengths == 0) & ~null).any():
        raise ValueError("generated text contains an empty string (would load as NULL)")
    return _Ragged(data, lengths.astype(np.int64))


def _ragged_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat indices of the ranges [start, start+length) for every row (vectorised)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def encode(values: pd.Series, kind: str) -> _Ragged:
    """One column -> ragged bytes. ``kind``: int, time, str or float."""
    null = values.isna().to_numpy()
    if kind in ("int", "time"):
        if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iub":
            raw = values.to_numpy().astype(np.int64)
        else:
            raw = np.round(np.nan_to_num(values.to_numpy(dtype="float64", na_value=np.nan))).astype(np.int64)
        return _int_column(raw, null)
    if kind == "float":
        texts = np.array([repr(float(v)) if not n else "" for v, n in zip(values.to_numpy(), null)], dtype=object)
        return _str_column(texts, null)
    return _str_column(values.to_numpy(dtype=object), null)


def assemble(columns: list[_Ragged]) -> bytes:
    """Rows of ``\\x1f``-separated fields ending in ``\\x1e``."""
    lengths = np.stack([c.lengths for c in columns], axis=1)
    k = lengths.shape[1]
    row_len = lengths.sum(axis=1) + k
    row_start = np.cumsum(row_len) - row_len
    out = np.empty(int(row_len.sum()), dtype=np.uint8)
    field_start = row_start.copy()
    for j, col in enumerate(columns):
        out[_ragged_index(field_start, col.lengths)] = col.data
        out[field_start + col.lengths] = FIELD if j < k - 1 else ROW
        field_start = field_start + col.lengths + 1
    return out.tobytes()


def column_kind(column: sa.Column, values: pd.Series) -> str:
    if isinstance(column.type, sa.DateTime):
        return "time"
    if isinstance(column.type, (sa.Integer, sa.Boolean)):
        return "int"
    if isinstance(column.type, sa.Numeric) and values.dtype.kind == "f":
        return "float"
    return "str"


def _fsp(column: sa.Column) -> int:
    variant = getattr(column.type, "_variant_mapping", {}).get("mysql")
    return 6 if getattr(variant, "fsp", None) == 6 else 0


def load(cursor, quote, table: sa.Table, frame: pd.DataFrame, bar=None) -> int:
    """LOAD DATA LOCAL INFILE ``frame`` (times as UTC microseconds) into ``table``."""
    cols = [c for c in table.columns if c.name in frame.columns]
    kinds = [column_kind(c, frame[c.name]) for c in cols]
    targets, sets = [], []
    for i, (col, kind) in enumerate(zip(cols, kinds)):
        var = f"@v{i}"
        targets.append(var)
        value = f"NULLIF({var}, '')" if col.nullable else var
        if kind == "time":
            whole = f"FROM_UNIXTIME({value} DIV 1000000)"
            value = f"{whole} + INTERVAL ({value} MOD 1000000) MICROSECOND" if _fsp(col) == 6 else whole
        sets.append(f"{quote(col.name)} = {value}")
    statement = (f"LOAD DATA LOCAL INFILE %s INTO TABLE {quote(table.name)} CHARACTER SET utf8mb4 "
                 "FIELDS TERMINATED BY X'1F' ESCAPED BY '' LINES TERMINATED BY X'1E' "
                 f"({', '.join(targets)}) SET {', '.join(sets)}")
    def payload(start: int) -> bytes:
        part = frame.iloc[start:start + CHUNK]
        return assemble([encode(part[c.name], k) for c, k in zip(cols, kinds)])

    starts = list(range(0, len(frame), CHUNK))
    total = 0
    # Render the next chunk while the server loads the current one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(payload, starts[0]) if starts else None
        for i, start in enumerate(starts):
            data = pending.result()
            pending = pool.submit(payload, starts[i + 1]) if i + 1 < len(starts) else None
            rows = min(CHUNK, len(frame) - start)
            fd, path = tempfile.mkstemp(suffix=".rows")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                loaded = cursor.execute(statement, (path,))
            finally:
                os.unlink(path)
            if loaded != rows:
                raise RuntimeError(f"LOAD DATA into {table.name} stored {loaded} of {rows} rows")
            total += rows
            if bar is not None:
                bar.update(rows)
    return total


# --------------------------------------------------------------------------- deferred DDL
def bare_table(table: sa.Table) -> sa.Table:
    """A copy of ``table`` with only columns and primary key (no indexes, unique keys, FKs)."""
    cols = []
    for c in table.columns:
        default = sa.DefaultClause(c.server_default.arg) if c.server_default is not None else None
        cols.append(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable,
                              autoincrement=c.autoincrement, server_default=default))
    return sa.Table(table.name, sa.MetaData(), *cols, **table.kwargs)


def index_statements(table: sa.Table, quote) -> list[str]:
    """ALTER TABLE statements adding the secondary indexes and unique keys (FULLTEXT separately)."""
    plain, fulltext = [], []
    for uc in (c for c in table.constraints if isinstance(c, sa.UniqueConstraint)):
        plain.append(f"ADD UNIQUE INDEX {quote(uc.name)} ({', '.join(quote(c.name) for c in uc.columns)})")
    for ix in table.indexes:
        cols = ", ".join(quote(c.name) for c in ix.columns)
        if ix.dialect_options["mysql"].get("prefix") == "FULLTEXT":
            fulltext.append(f"ADD FULLTEXT INDEX {quote(ix.name)} ({cols})")
        else:
            plain.append(f"ADD {'UNIQUE ' if ix.unique else ''}INDEX {quote(ix.name)} ({cols})")
    stmts = [f"ALTER TABLE {quote(table.name)} " + ", ".join(plain)] if plain else []
    return stmts + [f"ALTER TABLE {quote(table.name)} {ft}" for ft in fulltext]


def foreign_key_statements(table: sa.Table, quote) -> list[str]:
    """ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY, written out by hand: compiling
    ``AddConstraint`` would mark the shared constraint objects as "created separately" and
    silently drop them from every later ``create_all``."""
    out = []
    for fk in table.foreign_key_constraints:
        cols = ", ".join(quote(c.name) for c in fk.columns)
        ref = fk.elements[0].column.table.name
        ref_cols = ", ".join(quote(e.column.name) for e in fk.elements)
        on_delete = f" ON DELETE {fk.ondelete}" if fk.ondelete else ""
        out.append(f"ALTER TABLE {quote(table.name)} ADD CONSTRAINT {quote(fk.name)} FOREIGN KEY ({cols}) "
                   f"REFERENCES {quote(ref)} ({ref_cols}){on_delete}")
    return out
