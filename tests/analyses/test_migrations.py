"""Migration history: the migrations table vs the fixture's migration files and a real git history."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import IN_CI, fresh_mariadb_database
from rca_toolkit import cli
from rca_toolkit.sources import loaders
from rca_toolkit.analyses.code import migrations
from rca_toolkit.errors import NotFound, SchemaError

FILES = Path(__file__).resolve().parents[1] / "fixtures" / "laravel_before" / "database" / "migrations"

# The table as a messy production one looks (data-contract 3.9): an id gap (4), a name out of
# order (id 5), a future-dated name, a malformed one, a duplicate (id 9, out of order too),
# three rows whose file is gone, and one file (retell_call_sessions) that never ran.
ROWS = [
    (1, "2019_12_14_000001_create_customers_table", 1),
    (2, "2025_09_24_110000_create_calls_table", 1),
    (3, "2025_09_26_120431_create_webhook_events_table", 2),
    (5, "2025_09_24_100000_create_appointments_legacy", 3),
    (6, "2025_10_06_093000_backfill_appointment_source", 4),
    (7, "2025_12_06_120000_add_sync_columns", 4),
    (8, "fix_appointments_hotfix", 4),
    (9, "2025_10_06_093000_backfill_appointment_source", 5),
    (10, "2025_10_18_000001_optimize_appointments_database_schema", 6),
]
FRAME = pd.DataFrame(ROWS, columns=["id", "migration", "batch"])
# Commits adding the files (Berlin times), newest last.
COMMITS = [
    ("2025-09-24T11:00:00+02:00", ["2019_12_14_000001_create_customers_table", "2025_09_24_110000_create_calls_table"]),
    ("2025-09-26T12:05:00+02:00", ["2025_09_26_120431_create_webhook_events_table"]),
    ("2025-10-06T09:30:00+02:00", ["2025_10_06_093000_backfill_appointment_source"]),
    ("2025-10-18T13:21:30+02:00", ["2025_10_18_000001_optimize_appointments_database_schema"]),
    ("2025-10-18T14:00:00+02:00", ["2025_10_18_120000_create_retell_call_sessions_table"]),
]


def test_table_only_checks():
    h = migrations.migration_history(FRAME, today="2025-10-20")
    assert h.counts() == {"ran": 9, "batches": 6, "pending": 0, "ran_file_missing": 0, "duplicates": 1,
                          "out_of_order": 2, "future_dated": 1, "malformed": 1, "nonstandard": 0, "id_gaps": 1}
    assert h.duplicates == ["2025_10_06_093000_backfill_appointment_source"]
    assert h.out_of_order == ["2025_09_24_100000_create_appointments_legacy",
                              "2025_10_06_093000_backfill_appointment_source"]
    assert h.future_dated == ["2025_12_06_120000_add_sync_columns"]
    assert h.malformed == ["fix_appointments_hotfix"]
    assert h.id_gaps == [4]
    assert (h.reference_date.isoformat(), h.reference_basis) == ("2025-10-20", "given")
    assert not h.files_checked and not h.git_checked
    b4 = h.batches.set_index("batch").loc[4]
    assert (b4["n"], b4["ids"], b4["first_id"], b4["last_id"]) == (3, [6, 7, 8], 6, 8)
    assert (str(b4["min_prefix"]), str(b4["max_prefix"])) == ("2025-10-06 09:30:00", "2025-12-06 12:00:00")
    assert h.batches["likely_deploy"].isna().all()


def test_with_migration_files():
    h = migrations.migration_history(FRAME, files_dir=FILES, today="2025-10-20")
    assert h.pending == ["2025_10_18_120000_create_retell_call_sessions_table"]
    assert h.ran_file_missing == ["2025_09_24_100000_create_appointments_legacy",
                                  "2025_12_06_120000_add_sync_columns", "fix_appointments_hotfix"]
    assert "pending (file, no row): 1" in h.to_text()
    md = h.to_markdown()
    assert "| ran_file_missing | 3 |" in md
    assert "| 4 | 3 | 6 | 8 | 2025-10-06 09:30:00 | 2025-12-06 12:00:00 |  | False |" in md
    assert "<td>pending</td><td>1</td>" in h._repr_html_()


@pytest.mark.parametrize("name,kind", [
    ("2025_10_18_000001_optimize_appointments_database_schema", "standard"),
    ("2025_13_01_000000_bad_month", "malformed"), ("*_fix_staff_branch_id_field", "malformed"),
    ("_*_create_calendar_event_types_table", "malformed"), ("2025_10_18_000001_Optimize", "nonstandard"),
    ("2025_01_13_add_capacity_fields_to_staff", "nonstandard"), ("2025_10_18_000001_", "nonstandard"),
])
def test_name_rules(name, kind):
    assert migrations.name_kind(name) == kind


@pytest.fixture()
def git_checkout(tmp_path):
    if shutil.which("git") is None:
        pytest.fail("git is required") if IN_CI else pytest.skip("git is not installed")
    repo = tmp_path / "app"
    target = repo / "database" / "migrations"
    target.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    for when, names in COMMITS:
        for name in names:
            shutil.copy(FILES / f"{name}.php", target)
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True, env=env)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", f"add {names[0]}"], check=True,
                       env={**env, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
    return repo


def test_git_commit_dates_and_inferred_deploy_times(git_checkout):
    h = migrations.migration_history(FRAME, git_dir=git_checkout)
    assert h.files_checked and h.git_checked
    assert (h.reference_date.isoformat(), h.reference_basis) == ("2025-10-18", "latest migration commit in git")
    assert h.future_dated == ["2025_12_06_120000_add_sync_columns"]
    assert h.pending == ["2025_10_18_120000_create_retell_call_sessions_table"]
    deploy = h.batches.set_index("batch")["likely_deploy"]
    assert deploy.loc[1] == pd.Timestamp("2025-09-24T09:00:00Z")
    assert deploy.loc[2] == pd.Timestamp("2025-09-26T10:05:00Z")
    assert pd.isna(deploy.loc[3])  # its only file is gone
    assert deploy.loc[4] == pd.Timestamp("2025-10-06T07:30:00Z")
    assert deploy.loc[6] == pd.Timestamp("2025-10-18T11:21:30Z")
    assert h.batches.set_index("batch")["deploy_inferred"].tolist() == [True, True, False, True, True, True]
    assert any("inferred" in n for n in h.notes)
    data = json.loads(h.to_json())
    assert data["batches"][0]["likely_deploy"] == "2025-09-24T09:00:00+00:00"


def test_bad_inputs(tmp_path):
    with pytest.raises(SchemaError, match="batch"):
        migrations.migration_history(FRAME.drop(columns=["batch"]))
    with pytest.raises(NotFound, match="does not exist"):
        migrations.migration_history(FRAME, files_dir=tmp_path / "nope")
    (tmp_path / "database" / "migrations").mkdir(parents=True)
    with pytest.raises(NotFound, match="not a readable git checkout"):
        migrations.migration_history(FRAME, git_dir=tmp_path)


def _fill(url: str) -> None:
    engine = sa.create_engine(url)
    table = sa.Table("migrations", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("migration", sa.String(255), nullable=False), sa.Column("batch", sa.Integer, nullable=False))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "migration": m, "batch": b} for i, m, b in ROWS])
    engine.dispose()


@pytest.fixture(scope="module")
def migrations_sqlite(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('mig') / 'app.sqlite'}"
    _fill(url)
    return url


@pytest.fixture(scope="module")
def migrations_mariadb():
    with fresh_mariadb_database("rca_mig") as url:
        _fill(url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def migrations_db(request) -> str:
    return request.getfixturevalue(f"migrations_{request.param}")


def test_loaded_from_the_database(migrations_db):
    h = migrations.migration_history(loaders.migrations(migrations_db), files_dir=FILES, today="2025-10-20")
    assert h.counts() == {"ran": 9, "batches": 6, "pending": 1, "ran_file_missing": 3, "duplicates": 1,
                          "out_of_order": 2, "future_dated": 1, "malformed": 1, "nonstandard": 0, "id_gaps": 1}


def test_cli(migrations_db, git_checkout, tmp_path, capsys):
    code = cli.main(["migrations", "--db", migrations_db, "--git", str(git_checkout), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["counts"]["pending"] == 1 and data["malformed"] == ["fix_appointments_hotfix"]
    assert data["batches"][5]["likely_deploy"] == "2025-10-18T11:21:30+00:00"

    code = cli.main(["migrations", "--db", migrations_db, "--files", str(FILES), "--today", "2025-10-20"])
    out = capsys.readouterr().out
    assert code == 0
    assert "9 migrations ran in 6 batches" in out
    assert "  batch 4: 3 (ids 6-8), names 2025-10-06 .. 2025-12-06" in out.splitlines()

    code = cli.main(["migrations", "--db", migrations_db, "--files", str(tmp_path / "nope")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    plain = tmp_path / "plain"  # a folder with migrations and no git history: git's own words, not a list's repr
    (plain / "database" / "migrations").mkdir(parents=True)
    code = cli.main(["migrations", "--db", migrations_db, "--files", str(plain / "database" / "migrations"),
                     "--git", str(plain)])
    err = capsys.readouterr().err
    assert code == 2 and f"{plain} is not a readable git checkout: fatal: not a git repository" in err and "['" not in err
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    sa.create_engine(empty).connect().close()
    code = cli.main(["migrations", "--db", empty])
    assert code == 2 and "migrations" in capsys.readouterr().err


def test_runbook_checks():
    from rca_toolkit.runbooks import code_checks
    from rca_toolkit.runbooks.framework import Status

    with_files = migrations.migration_history(FRAME, files_dir=FILES, today="2025-10-20")
    pending = code_checks.pending_check(with_files)
    assert (pending.status, pending.evidence["pending"]) == (Status.FAIL, ["2025_10_18_120000_create_retell_call_sessions_table"])
    assert pending.summary == "1 pending, 3 ran but their file is missing (9 ran in 6 batches)"
    names = code_checks.names_check(with_files)
    assert names.status == Status.WARN and names.evidence["malformed"] == ["fix_appointments_hotfix"]
    assert code_checks.pending_check(migrations.migration_history(FRAME)).status == Status.WARN  # folder not given

    ran_all = pd.DataFrame([(i + 1, p.stem, 1) for i, p in enumerate(sorted(FILES.glob("*.php")))],
                           columns=["id", "migration", "batch"])
    clean = migrations.migration_history(ran_all, files_dir=FILES, today="2025-10-20")
    assert code_checks.pending_check(clean).status == Status.PASS
    assert code_checks.names_check(clean).status == Status.PASS


def test_runbook_checks_load_the_folder_from_the_code_path(migrations_db, tmp_path):
    """RB010 passes empty strings for unset parameters; the code path supplies database/migrations."""
    from rca_toolkit.runbooks import code_checks
    from rca_toolkit.runbooks.framework import Status

    app = str(FILES.parents[1])
    pending = code_checks.check_pending(migrations_db, "", "", "2025-10-20", code_path=app)
    assert (pending.status, pending.evidence["pending"]) == (Status.FAIL, ["2025_10_18_120000_create_retell_call_sessions_table"])
    assert code_checks.check_names(migrations_db, "", "", "2025-10-20", code_path=app).evidence["malformed"] == ["fix_appointments_hotfix"]
    not_checked = code_checks.check_pending(migrations_db, "", "", "", code_path=str(tmp_path))
    assert not_checked.status == Status.WARN and "NOT checked" in not_checked.summary


def test_demo_world_migrations_match_its_ground_truth(demo_db):
    """The demo's migrations table reproduces the snapshot's defects (data-contract 3.9)."""
    url, truth = demo_db
    expected = truth["migrations"]
    h = migrations.migration_history(loaders.migrations(url), today="2025-10-27")
    m = h.migrations
    assert (h.ran, len(h.batches)) == (expected["rows"], expected["batches"]) == (421, 113)
    assert h.id_gaps == expected["missing_ids"] == [324, 325, 340, 361]
    assert m.loc[m["malformed"], "id"].tolist() == expected["malformed_ids"] == [1, 311]
    assert m.loc[m["future"], "id"].tolist() == expected["future_dated_ids"] == [307, 308, 309, 310]
    assert m.loc[m["out_of_order"], "id"].tolist() == expected["out_of_order_ids"]
    assert len(h.out_of_order) == 13
    batch = h.batches.set_index("batch").loc[1036]
    assert batch["names"] == ["2025_10_18_000001_optimize_appointments_database_schema"]


def test_empty_table_and_only_malformed_names():
    empty = migrations.migration_history(pd.DataFrame(columns=["id", "migration", "batch"]), files_dir=FILES,
                                         today="2025-10-20")
    assert (empty.ran, len(empty.pending), empty.id_gaps) == (0, 6, [])
    assert "batches: none" in empty.to_text()
    odd = migrations.migration_history(pd.DataFrame({"id": [1, 3], "migration": ["bad", "*_x"], "batch": [1, 1]}),
                                       today="2025-10-20")
    assert (odd.malformed, odd.future_dated, odd.out_of_order, odd.id_gaps) == (["bad", "*_x"], [], [], [2])


# --------------------------------------------------------------------------- Laravel's own file rule
# laravel/framework as the application vendors it: fabianSp77/askproai-api composer.lock (stored copy at
# commit 00f4f018fab41ec9e58d49bf1e9ac143ba8ab356) locks "laravel/framework" "version": "v12.24.0"
# (reference 6dcf2c46da23d159f35d6246234953a74b740d83). ../shared/data/askproai holds no composer.lock.
VENDORED_LARAVEL = "v12.24.0"


def test_the_discovery_rule_is_the_one_of_the_vendored_laravel(tmp_path, shared_data):
    """Pinned to Illuminate\\Database\\Migrations\\Migrator (laravel/framework, src/Illuminate/Database/
    Migrations/Migrator.php), the 12.x source line

        ->flatMap(fn ($path) => str_ends_with($path, '.php') ? [$path] : $this->files->glob($path.'/*_*.php'))

    and ``getMigrationName``: ``return str_replace('.php', '', basename($path));`` (the 5.x source,
    ``return $this->files->glob($path.'/*_*.php');``, globs the same pattern). PHP's glob() is glob(3)
    without flags: case-sensitive, no leading-dot names, not recursive.
    """
    from rca_toolkit.sources import migration_files as mf

    assert mf.MIGRATION_GLOB == "*_*.php" and "$this->files->glob($path.'/*_*.php')" in mf.RULE
    assert mf.migration_name("/app/database/migrations/2025_10_18_000001_x.php") == "2025_10_18_000001_x"
    major = int(VENDORED_LARAVEL.lstrip("v").split(".")[0])
    assert mf.RULE_READ_FOR[0] <= major <= mf.RULE_READ_FOR[1]
    assert mf.laravel_version(shared_data) is None  # the sample data carries no composer.lock
    app = tmp_path / "app"
    (app / "database" / "migrations").mkdir(parents=True)
    lock = {"packages": [{"name": "laravel/horizon", "version": "v5.33.2"},
                         {"name": "laravel/framework", "version": VENDORED_LARAVEL,
                          "source": {"reference": "6dcf2c46da23d159f35d6246234953a74b740d83"}}]}
    (app / "composer.lock").write_text(json.dumps(lock))
    h = migrations.migration_history(FRAME.head(0), files_dir=app / "database" / "migrations", today="2025-10-20")
    assert h.laravel_version == VENDORED_LARAVEL and json.loads(h.to_json())["laravel_version"] == VENDORED_LARAVEL
    assert any(f"as laravel/framework {VENDORED_LARAVEL} (composer.lock) does" in n for n in h.notes)
    (app / "composer.lock").write_text(json.dumps({"packages": [{"name": "laravel/framework", "version": "v13.0.0"}]}))
    later = migrations.migration_history(FRAME.head(0), files_dir=app / "database" / "migrations", today="2025-10-20")
    assert any("was not read for this rule" in n for n in later.notes)


def test_pending_and_missing_are_what_migrate_status_says(tmp_path):
    """Edge names in a migrations folder: only what glob('*_*.php') returns is a migration."""
    from rca_toolkit.sources.migration_files import migration_files

    folder = tmp_path / "database" / "migrations"
    (folder / "archive").mkdir(parents=True)
    listed = ["2024_01_01_000000_create_users_table.php", "2024_01_02_000000_create_Posts_Table.php", "_.php",
              "2024_01_06_000000_twice.php", "2024_01_06_000000_twice.php.php"]
    ignored = ["nounderscore.php", "2024_01_03_000000_old.php.bak", "2024_01_04_000000_upper.PHP",
               ".2024_01_05_000000_hidden.php", "._2024_01_01_000000_create_users_table.php", "x_y.php.txt",
               "archive/2023_01_01_000000_archived_table.php"]
    for name in listed + ignored:
        (folder / name).write_text("<?php\n")
    (folder / "2024_01_07_000000_a_folder.php").mkdir()  # glob does not look at the type: listed
    (folder / "2024_01_08_000000_linked.php").symlink_to(folder / "2024_01_01_000000_create_users_table.php")
    found = migration_files(folder)
    assert list(found) == ["2024_01_01_000000_create_users_table", "2024_01_02_000000_create_Posts_Table",
                           "2024_01_06_000000_twice", "2024_01_07_000000_a_folder", "2024_01_08_000000_linked", "_"]
    assert found["2024_01_06_000000_twice"].name == "2024_01_06_000000_twice.php.php"  # keyBy: the later one wins
    table = pd.DataFrame({"id": [1, 2, 3, 4, 5], "batch": [1, 1, 1, 2, 2], "migration": [
        "2024_01_01_000000_create_users_table", "nounderscore", "2024_01_03_000000_old",
        "2023_01_01_000000_archived_table", "2024_01_06_000000_twice"]})
    h = migrations.migration_history(table, files_dir=folder, today="2025-10-20")
    assert h.pending == ["2024_01_02_000000_create_Posts_Table", "2024_01_07_000000_a_folder",
                         "2024_01_08_000000_linked", "_"]
    # files Laravel never sees cannot have a file in migrate:status: their rows are "ran, file missing"
    assert h.ran_file_missing == ["2023_01_01_000000_archived_table", "2024_01_03_000000_old", "nounderscore"]
    assert h.laravel_version is None and any("no composer.lock" in n for n in h.notes)
