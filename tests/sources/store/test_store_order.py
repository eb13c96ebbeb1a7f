"""The store sorts NULL where SQLite and MariaDB sort it: a statement's rows come in one order from every database.

Why: DuckDB puts NULL last by default, SQLite and MariaDB before every value; the same ORDER BY gave a hostile copy's
rows without a time in another place on the store than read directly.
"""

from __future__ import annotations

import pytest

from rca_toolkit.sources import loaders

VALUES = "(SELECT 2 AS x, 'b' AS y UNION ALL SELECT NULL, 'n' UNION ALL SELECT 1, 'a' UNION ALL SELECT NULL, 'm')"


@pytest.mark.parametrize("direction, expected", [("ASC", ["m", "n", "a", "b"]), ("DESC", ["b", "a", "m", "n"])])
def test_null_sorts_as_sqlite_and_mariadb_sort_it(demo_sqlite, mariadb_url, demo_store, direction, expected):
    sql = f"SELECT y FROM {VALUES} t ORDER BY x {direction}, y"
    for engine in (loaders.engine_for(demo_sqlite[0]), loaders.engine_for(mariadb_url), demo_store):
        assert loaders.query(engine, sql, {})["y"].tolist() == expected, engine.url
