"""``demo-data --replace`` drops tables only after proving the target is a demo world (marker row, table
set, demo-shaped rows); everything else is refused in one line, exit 2, with nothing dropped."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa

from rca_toolkit import demo
from rca_toolkit.cli import main
from rca_toolkit.demo import load

from conftest import fresh_mariadb_database

REAL_CALL = "call_0123456789abcdef0123456789a"


def _plant_real_calls_beside_an_empty_marker(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE rca_demo_world (id INTEGER PRIMARY KEY, seed INTEGER, scale INTEGER, "
                             "generator VARCHAR(100), note VARCHAR(255), built_at_utc VARCHAR(40))"))
        conn.execute(sa.text("CREATE TABLE calls (id INTEGER PRIMARY KEY, retell_call_id VARCHAR(255), "
                             "created_at DATETIME)"))
        conn.execute(sa.text("INSERT INTO calls VALUES (1, :cid, '2024-05-02 10:00:00')"), {"cid": REAL_CALL})
    engine.dispose()


def _tables_and_calls(url: str) -> tuple[list[str], list[tuple]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return (sorted(sa.inspect(conn).get_table_names()),
                    [tuple(r) for r in conn.execute(sa.text("SELECT id, retell_call_id FROM calls"))])
    finally:
        engine.dispose()


def _refused_in_one_line(argv: list[str], capsys, why: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rca demo-data: error:") and why in err[0], err
    assert "dropped nothing" in err[0]


def test_empty_marker_beside_real_calls_is_refused_on_sqlite(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    _plant_real_calls_beside_an_empty_marker(url)
    _refused_in_one_line(["demo-data", "--db", url, "--replace", "--truth", str(tmp_path / "t.json")], capsys,
                         "its rca_demo_world table is empty")
    assert _tables_and_calls(url) == (["calls", "rca_demo_world"], [(1, REAL_CALL)])
    assert not (tmp_path / "t.json").exists()


def test_empty_marker_beside_real_calls_is_refused_on_mariadb(tmp_path, capsys):
    with fresh_mariadb_database("rca_q2_own") as url:
        _plant_real_calls_beside_an_empty_marker(url)
        _refused_in_one_line(["demo-data", "--db", url, "--replace", "--truth", str(tmp_path / "t.json")], capsys,
                             "its rca_demo_world table is empty")
        assert _tables_and_calls(url) == (["calls", "rca_demo_world"], [(1, REAL_CALL)])


@pytest.fixture
def demo_copy(demo_sqlite, tmp_path):
    url, _truth = demo_sqlite
    copy = tmp_path / "copy.sqlite"
    shutil.copy(sa.make_url(url).database, copy)
    return f"sqlite:///{copy}"


def _execute(url: str, sql: str, **params) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)
    engine.dispose()


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()  # noqa: S608 (our table names)
    engine.dispose()
    return n


@pytest.mark.parametrize("tamper, why", [
    ("UPDATE rca_demo_world SET note = 'hand-made'", "does not hold the one marker row"),
    ("INSERT INTO rca_demo_world (id, seed, scale, generator, note, built_at_utc) "
     "SELECT 2, seed, scale, generator, note, built_at_utc FROM rca_demo_world", "does not hold the one marker row"),
    ("INSERT INTO retell_call_sessions (id, call_id, company_id, started_at, call_status, created_at, updated_at) "
     "VALUES ('9b2f0c1e-5d3a-4c7b-8e21-0f6a7d9c3b11', 'call_0123456789abcdef0123456789a', 1, "
     "'2025-10-14 10:00:00', 'ended', '2025-10-14 10:00:00', '2025-10-14 10:00:00')",
     "1 retell_call_sessions row(s) do not have the demo's shape"),
    ("UPDATE calls SET created_at = '2024-05-02 10:00:00' WHERE id = 1",
     "1 calls row(s) do not have the demo's shape"),
    ("CREATE TABLE users (id INTEGER PRIMARY KEY)", "1 table(s) the demo does not create (users)"),
])
def test_a_demo_world_with_foreign_rows_or_tables_is_refused_and_kept(demo_copy, tamper, why, capsys, tmp_path):
    _execute(demo_copy, tamper)
    counts = {t: _count(demo_copy, t) for t in ("calls", "retell_call_sessions", "rca_demo_world")}
    _refused_in_one_line(["demo-data", "--db", demo_copy, "--replace", "--truth", str(tmp_path / "t.json")], capsys, why)
    assert {t: _count(demo_copy, t) for t in counts} == counts


def test_a_real_demo_world_is_proven_on_both_backends(demo_copy, demo_mariadb):
    for url in (demo_copy, demo_mariadb[0]):
        engine = sa.create_engine(url)
        try:
            load.check_target(engine, replace=True)  # proven: no refusal (nothing is built or dropped here)
            with pytest.raises(demo.world.DemoRefused, match="add --replace"):
                load.check_target(engine, replace=False)
        finally:
            engine.dispose()
