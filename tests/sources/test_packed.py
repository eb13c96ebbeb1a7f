"""rca_toolkit.sources.packed on the real MariaDB: values survive the CSV packing exactly, and a cut chunk
falls back to the plain fetch with the same frame."""

from __future__ import annotations

import logging
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from rca_toolkit.sources import loaders, packed

pytestmark = pytest.mark.mariadb

TRICKY = ["plain", "", None, 'say "hi"', "a,b", "line\nbreak", "cr\r\nlf", "=lead", "\\N", "back\\slash", "ünï 📞",
          '""', ",", "\n", "trailing,"]
COLUMNS = {"id": packed.INT, "n": packed.INT, "s": packed.STR}


@pytest.fixture(scope="module")
def table(mariadb_url):
    admin = sa.create_engine(mariadb_url)  # the toolkit's own engine is read-only
    with admin.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS packed_probe"))
        conn.execute(sa.text("CREATE TABLE packed_probe (id BIGINT PRIMARY KEY, n BIGINT NULL, s TEXT NULL) "
                             "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        rows = [{"id": i * 1000 + 7, "n": None if i % 4 == 1 else (-1) ** i * 2 ** 53 + i, "s": TRICKY[i % len(TRICKY)]}
                for i in range(9000)]  # ids span several chunks of ROWS_PER_CHUNK
        conn.execute(sa.text("INSERT INTO packed_probe (id, n, s) VALUES (:id, :n, :s)"), rows)
    yield loaders.engine_for(mariadb_url), rows
    with admin.begin() as conn:
        conn.execute(sa.text("DROP TABLE packed_probe"))
    admin.dispose()


def _expected(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({"id": pd.array([r["id"] for r in rows], dtype="Int64"),
                         "n": pd.array([r["n"] for r in rows], dtype="Int64"),
                         "s": pd.Series([r["s"] for r in rows], dtype="object")})


def _count_plain_fetches(monkeypatch) -> list:
    calls: list = []
    plain = packed.plain_read
    monkeypatch.setattr(packed, "plain_read", lambda *a: calls.append(a[1]) or plain(*a))
    return calls


def test_values_survive_the_packing_exactly(table, monkeypatch):
    engine, rows = table
    plain = _count_plain_fetches(monkeypatch)
    statements: list = []
    got = packed.read(engine, "SELECT id, n, s FROM packed_probe WHERE id >= :lo", {"lo": 0}, COLUMNS, key="id",
                      order=["id"], statements=statements)
    pd.testing.assert_frame_equal(got, _expected(rows))
    assert got["s"].map(type).value_counts().to_dict() == {str: 8400, type(None): 600}  # NULL stays None, "" stays ""
    assert "GROUP_CONCAT" in statements[0][0] and statements[0][1] == {"lo": 0}
    assert plain == []  # parsed from the packed chunks, no fallback


def test_a_cut_chunk_falls_back_to_the_plain_fetch(table, monkeypatch):
    engine, rows = table
    plain = _count_plain_fetches(monkeypatch)
    monkeypatch.setattr(packed, "CHUNK_LIMIT_SQL", "64")  # every chunk is longer: GROUP_CONCAT cuts it
    got = packed.read(engine, "SELECT id, n, s FROM packed_probe", {}, COLUMNS, key="id", order=["id"])
    pd.testing.assert_frame_equal(got, _expected(rows))
    assert plain == ["SELECT id, n, s FROM packed_probe"]


def test_the_packed_fetch_and_its_fallback_are_logged(table, monkeypatch, caplog):
    engine, rows = table
    caplog.set_level(logging.DEBUG, logger="rca_toolkit")
    packed.read(engine, "SELECT id, n, s FROM packed_probe WHERE id >= :lo", {"lo": 5}, COLUMNS, key="id")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "rca_toolkit.sources.packed"]
    assert re.fullmatch(r"SELECT id, n, s FROM packed_probe WHERE id >= :lo: 9000 rows packed in \d+\.\d{3} s", line)
    caplog.clear()
    monkeypatch.setattr(packed, "CHUNK_LIMIT_SQL", "64")
    packed.read(engine, "SELECT id, n, s FROM packed_probe", {}, COLUMNS, key="id")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "rca_toolkit.sources.packed"] == [
        ("INFO", "packed fetch cut short by group_concat_max_len (a chunk did not parse), fetched plainly: "
                 "SELECT id, n, s FROM packed_probe")]
    assert any(r.name == "rca_toolkit.sources.loaders" and r.getMessage().startswith("SELECT id, n, s FROM packed_probe: 9000 rows in ")
               for r in caplog.records)  # the plain fetch, timed by loaders.query


def test_empty_result_keeps_the_types(table):
    engine, _ = table
    got = packed.read(engine, "SELECT id, n, s FROM packed_probe WHERE id < 0", {}, COLUMNS, key="id")
    assert list(got.columns) == ["id", "n", "s"] and len(got) == 0
    assert [str(t) for t in got.dtypes] == ["Int64", "Int64", "object"]


def test_few_distinct_strings_come_as_a_categorical_of_the_same_values(table):
    engine, rows = table
    got = packed.read(engine, "SELECT id, s FROM packed_probe", {}, {"id": packed.INT, "s": packed.CAT}, key="id", order=["id"])
    assert isinstance(got["s"].dtype, pd.CategoricalDtype)
    assert got["s"].astype(object).where(got["s"].notna(), None).tolist() == [r["s"] for r in rows]


def test_null_and_empty_stay_apart_in_each_string_column(table):
    # three string columns whose NULLs and empty strings fall on different rows: each column's bit of
    # the row's NULL mask is its own
    engine, rows = table
    sql = ("SELECT id, CASE WHEN id % 3 = 0 THEN NULL WHEN id % 3 = 1 THEN '' ELSE 'x' END AS a, n, s, "
           "CASE WHEN id % 3 = 1 THEN NULL WHEN id % 3 = 2 THEN '' ELSE 'y' END AS b FROM packed_probe")
    got = packed.read(engine, sql, {}, {"id": packed.INT, "a": packed.STR, "n": packed.INT, "s": packed.CAT, "b": packed.STR},
                      key="id", order=["id"])
    ids = [r["id"] for r in rows]
    assert got["a"].tolist() == [[None, "", "x"][i % 3] for i in ids]
    assert got["b"].tolist() == [["y", None, ""][i % 3] for i in ids]
    assert got["s"].astype(object).where(got["s"].notna(), None).tolist() == [r["s"] for r in rows]
    assert got["n"].tolist() == [pd.NA if r["n"] is None else r["n"] for r in rows]


def test_a_refused_statement_is_a_one_line_error(table):
    from rca_toolkit.errors import ConnectionFailed

    engine, _ = table
    with engine.connect() as conn:
        limit = conn.exec_driver_sql("SELECT @@max_statement_time").scalar()
        conn.exec_driver_sql("SET SESSION max_statement_time = 0.05")
        try:
            with pytest.raises(ConnectionFailed, match="query on .* failed: .*max_statement_time"):
                packed.read(engine, "SELECT id, n, s FROM packed_probe WHERE SLEEP(0.2) = 0", {}, COLUMNS, key="id",
                            conn=conn)
        finally:
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {float(limit)}")
