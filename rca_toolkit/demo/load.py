"""Safety checks and bulk loading for the demo builder.

Private helper of :mod:`rca_toolkit.demo`. The builder only ever writes into an empty
database or into one that already holds a demo world (marker table ``rca_demo_world``)
when ``replace`` is asked for; anything else is refused before a single statement runs.

Times: SQLite receives naive Europe/Berlin wall-time strings (what the production
application writes); MariaDB receives the true UTC instant, the session being pinned to
``time_zone='+00:00'`` by :func:`rca_toolkit.sources.db.make_engine`. Columns that are
``TIMESTAMP`` (no fraction) in production are floored to whole seconds on both backends.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, ProgrammingError

from rca_toolkit.demo import ownership as demo_ownership
from rca_toolkit.demo import spec as S
from rca_toolkit.sources import schema
from rca_toolkit.sources.db import redact_url
from rca_toolkit.errors import RcaError

CHUNK_ROWS = 20_000


class DemoRefused(RcaError):
    """The target database is not empty and not a demo world (or --replace is missing)."""


def check_target(engine: sa.Engine, replace: bool) -> None:
    """Refuse to touch anything that is not empty or a proven demo world (:mod:`rca_toolkit.demo.ownership`)."""
    present = set(sa.inspect(engine).get_table_names())
    if not present:
        return
    where = redact_url(engine.url)
    reason = demo_ownership.not_a_demo_world(engine, present)
    if reason:
        raise DemoRefused(
            f"{where} already has {len(present)} table(s) and is not a demo world: {reason}; "
            "the demo builder never writes into other databases and dropped nothing",
            hint="point --db at an empty database or a new SQLite file",
        )
    if not replace:
        raise DemoRefused(f"{where} already holds a demo world", hint="add --replace to rebuild it")


def create_schema(engine: sa.Engine, replace: bool, *, bare: bool = False) -> None:
    """(Re)create the demo tables; ``bare`` = primary keys only (keys added after the bulk load)."""
    from rca_toolkit.demo import fastload as F

    with engine.begin() as conn:
        if engine.dialect.name != "sqlite":
            conn.execute(sa.text("SET SESSION explicit_defaults_for_timestamp = 1"))
            conn.execute(sa.text("SET SESSION foreign_key_checks = 0"))
        if replace:
            schema.metadata.drop_all(conn)
        if bare:
            for table in schema.metadata.sorted_tables:
                conn.execute(sa.schema.CreateTable(F.bare_table(table)))
        else:
            schema.metadata.create_all(conn)
        if engine.dialect.name != "sqlite":
            conn.execute(sa.text("SET SESSION foreign_key_checks = 1"))


def add_deferred_keys(engine: sa.Engine) -> None:
    """After a bare load: secondary indexes, unique keys, then foreign keys (not re-validated)."""
    from rca_toolkit.demo import fastload as F

    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        conn.execute(sa.text("SET SESSION foreign_key_checks = 0"))
        for table in schema.metadata.sorted_tables:
            for stmt in F.index_statements(table, quote):
                conn.execute(sa.text(stmt))
        for table in schema.metadata.sorted_tables:
            for stmt in F.foreign_key_statements(table, quote):
                conn.execute(sa.text(stmt))
        conn.execute(sa.text("SET SESSION foreign_key_checks = 1"))


def _precision(column: sa.Column) -> int | None:
    """6 for TIMESTAMP(6) columns, 0 for plain TIMESTAMP, None for non-time columns."""
    if not isinstance(column.type, sa.DateTime):
        return None
    variant = getattr(column.type, "_variant_mapping", {}).get("mysql")
    return 6 if getattr(variant, "fsp", None) == 6 else 0


def render_times(values, *, wall: bool, precision: int) -> np.ndarray:
    """UTC microseconds (NaN = NULL) -> strings: Berlin wall time (SQLite) or UTC (MariaDB)."""
    arr = np.asarray(values, dtype="float64")
    null = np.isnan(arr)
    us = np.where(null, 0, arr).astype(np.int64)
    if wall:
        us = us + np.where(us < S.DST_END, 2, 1) * S.HOUR_US
    unit = "us" if precision == 6 else "s"
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit=unit)  # the integers are microseconds
    text = np.char.replace(text, "T", " ").astype(object)
    text[null] = None
    return text


def prepare_frame(table: sa.Table, frame: pd.DataFrame, *, wall: bool) -> pd.DataFrame:
    """Keep the table's columns, render times, turn missing values into None."""
    cols = [c for c in table.columns if c.name in frame.columns]
    out = {}
    for col in cols:
        values = frame[col.name]
        precision = _precision(col)
        if precision is not None:
            out[col.name] = render_times(values.to_numpy(dtype="float64", na_value=np.nan), wall=wall, precision=precision)
        elif isinstance(col.type, sa.Integer) and values.dtype.kind == "f":
            ints = pd.array(np.round(values.to_numpy()), dtype="Int64")
            out[col.name] = pd.Series(ints).astype(object).where(pd.notna(ints), None).to_numpy()
        else:
            out[col.name] = values.astype(object).where(values.notna(), None).to_numpy()
    return pd.DataFrame(out)


def _insert_sql(engine: sa.Engine, table: sa.Table, columns: list[str]) -> str:
    quote = engine.dialect.identifier_preparer.quote
    marks = ", ".join(["?" if engine.dialect.name == "sqlite" else "%s"] * len(columns))
    return f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES ({marks})"


def load_table(engine: sa.Engine, dbapi_conn, table: sa.Table, frame: pd.DataFrame, bar=None) -> int:
    """Bulk insert ``frame`` (already prepared) in chunks; returns the row count."""
    if frame.empty:
        return 0
    columns = list(frame.columns)
    sql = _insert_sql(engine, table, columns)
    cur = dbapi_conn.cursor()
    rows = frame.to_numpy(dtype=object)
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start:start + CHUNK_ROWS].tolist()
        cur.executemany(sql, chunk)
        if bar is not None:
            bar.update(len(chunk))
    cur.close()
    return len(rows)


def count_rows(engine: sa.Engine) -> dict[str, int]:
    """Rows per demo table, counted by SQL."""
    with engine.connect() as conn:
        return {name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for name, table in schema.metadata.tables.items()}


def translate(exc: Exception, engine: sa.Engine) -> RcaError:
    """Driver errors during the build -> one clear line."""
    from rca_toolkit.errors import ConnectionFailed

    orig = getattr(exc, "orig", exc)
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if isinstance(exc, (OperationalError, ProgrammingError)):
        return ConnectionFailed(f"cannot build the demo in {redact_url(engine.url)}: {text}",
                                hint="check the URL, that the server runs and that the database exists")
    return RcaError(f"demo build failed: {text}")
