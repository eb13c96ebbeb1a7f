"""A fingerprint of the data an analysis read: row count and largest ``id`` per table.

Why: a report's numbers are only reproducible against the same data. Recording, per table read,
how many rows it held and its largest id lets a later reader tell "same data, same numbers" from
"rows were added (or deleted) since" without storing the data. Counts are of the whole table,
not of the analysed window: cheap (an index scan) and what changes when anything is written.
"""

from __future__ import annotations

import sqlalchemy as sa

from rca_toolkit.sources import loaders
from rca_toolkit.sources.db import database_error


def table_fingerprint(db=None, tables=()) -> dict[str, dict]:
    """``{table: {"rows": n, "max_id": m}}`` for each table (``max_id`` None without an ``id`` column, text for
    uuid keys);
    a table the database lacks is listed as ``{"rows": None, "max_id": None, "missing": True}``.

    The statements are built with SQLAlchemy Core from the live schema's own table names (never
    from text), one connection for all of them.
    """
    engine = loaders.engine_for(db)
    schema = loaders.schema_of(engine)
    out: dict[str, dict] = {}
    wanted = [t for t in dict.fromkeys(tables)]
    try:
        with engine.connect() as conn:
            for name in wanted:
                if name not in schema:
                    out[name] = {"rows": None, "max_id": None, "missing": True}
                    continue
                has_id = "id" in schema[name].columns
                table = sa.table(name, *([sa.column("id")] if has_id else []))
                columns = [sa.func.count()] + ([sa.func.max(table.c.id)] if has_id else [])
                row = conn.execute(sa.select(*columns).select_from(table)).one()
                out[name] = {"rows": int(row[0]), "max_id": None if not has_id else _id(row[1])}
    except sa.exc.DBAPIError as exc:
        raise database_error(engine, exc) from None
    return out


def _id(value):
    """An id as stored: integers as int, uuids and other keys as text, none as None."""
    if value is None:
        return None
    return int(value) if isinstance(value, int) or str(value).isdigit() else str(value)


__all__ = ["table_fingerprint"]
