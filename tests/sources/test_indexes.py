"""``rca indexes``: the indexes the loaders rely on, on SQLite and the real MariaDB."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from rca_toolkit import cli
from rca_toolkit.sources import indexes, schema

from conftest import fresh_mariadb_database


def _by_key(rows):
    return {(r.table, r.columns): r for r in rows}


def test_every_requirement_names_real_schema_columns():
    for need in indexes.NEEDED + indexes.OPTIONAL:
        table = schema.metadata.tables[need.table]
        assert set(need.columns) <= set(table.columns.keys()), need


def test_demo_world_has_every_index_but_sqlite_lacks_the_fk_index(demo_db):
    url, _truth = demo_db
    rows = _by_key(indexes.check(url))
    assert len(rows) == len(indexes.NEEDED) + len(indexes.OPTIONAL)
    optional = {k: rows.pop(k) for k in [k for k, r in rows.items() if r.optional]}  # production has none: nor has the demo
    assert sorted(optional) == sorted((n.table, ("updated_at",)) for n in indexes.OPTIONAL)
    assert all(r.status == "missing" for r in optional.values())
    fk = rows[("retell_error_log", ("call_session_id",))]
    if url.startswith("sqlite"):
        # SQLite creates no index for a foreign key; MariaDB does (the production lookup path)
        assert fk.status == "missing" and fk.found is None
        others = [r for k, r in rows.items() if k != ("retell_error_log", ("call_session_id",))]
    else:
        assert fk.status == "present" and fk.found == "retell_error_log_call_session_id_foreign"
        others = list(rows.values())
    assert all(r.status == "present" for r in others), [r for r in others if r.status != "present"]
    assert rows[("retell_function_traces", ("function_name", "started_at"))].found == "idx_traces_function_time"
    assert rows[("calls", ("retell_call_id",))].found == "calls_retell_call_id_unique"


@pytest.mark.mariadb
def test_dropped_index_and_missing_table_are_reported_with_exit_1(capsys):
    with fresh_mariadb_database("rca_idx") as url:
        engine = sa.create_engine(url)
        keep = [schema.metadata.tables[n] for n in ("retell_call_sessions", "retell_call_events", "retell_function_traces")]
        schema.metadata.create_all(engine, tables=keep)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX idx_traces_function_time ON retell_function_traces"))
        engine.dispose()
        code = cli.main(["indexes", "--db", url, "--format", "json"])
        data = json.loads(capsys.readouterr().out)
    assert code == 1
    status = {(r["table"], tuple(r["columns"])): r["status"] for r in data["indexes"]}
    assert status[("retell_function_traces", ("function_name", "started_at"))] == "missing"
    assert status[("retell_function_traces", ("call_session_id",))] == "present"
    assert status[("retell_call_sessions", ("company_id", "started_at"))] == "present"
    assert status[("calls", ("retell_call_id",))] == "table missing"
    required = {(r["table"], tuple(r["columns"])) for r in data["indexes"] if not r["optional"]}
    assert data["missing"] == sum(s != "present" for k, s in status.items() if k in required) == 6


def test_an_optional_index_is_reported_apart_and_never_makes_the_exit_1(demo_sqlite, tmp_path, capsys):
    """With every required index present the exit is 0 whatever optional ones lack; one added is found by its name."""
    from conftest import altered_copy

    url = altered_copy(demo_sqlite[0], tmp_path, "CREATE INDEX fk_errors ON retell_error_log (call_session_id)",
                       "CREATE INDEX calls_updated ON calls (updated_at)")
    code = cli.main(["indexes", "--db", url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PRESENT       calls(updated_at) by calls_updated" in out
    assert "OPTIONAL      appointments(updated_at) (production has none)" in out
    assert " ".join(out.split()).endswith("10 of 10 indexes the toolkit relies on are present; 1 of 4 optional ones "
                                         "(at 1M calls they cut a refresh's reads from disk five-fold: benchmarks/FINDINGS.md)")
    assert max(len(line) for line in out.splitlines()) <= 100


def test_unreachable_database_is_one_line_exit_2(capsys):
    code = cli.main(["indexes", "--db", "mysql+pymysql://root@127.0.0.1:1/nowhere"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "127.0.0.1" in err


def test_the_text_report_fits_a_terminal(demo_sqlite):
    from rca_toolkit.sources import indexes

    text = indexes.to_text(indexes.check(demo_sqlite[0]))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "used by booking attempts, attempt counts and latencies" in text
