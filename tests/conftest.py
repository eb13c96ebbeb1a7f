"""Shared fixtures: demo worlds on SQLite and on the real MariaDB, and the real sample files.

MariaDB: each test session creates its own database and drops it at the end. When the
server is unreachable the MariaDB tests skip locally but FAIL under CI=true.
``../shared/data/askproai`` follows the same rule.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "askproai"
IN_CI = os.environ.get("CI", "").lower() == "true"
MARIADB_ADMIN_URL = os.environ.get("RCA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
DEMO_SEED = 7


def pytest_configure(config):
    """Stores made by the tests (MariaDB reads go through the local store) live in a scratch folder, never data/cache."""
    import tempfile

    os.environ.setdefault("RCA_CACHE_DIR", tempfile.mkdtemp(prefix="rca-test-cache-"))


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real askproai sample files; never copied into the project."""
    if not SHARED_DATA.is_dir():
        _unavailable(f"{SHARED_DATA} is absent (clone the project beside ../shared)")
    return SHARED_DATA


@contextmanager
def fresh_mariadb_database(prefix: str = "rca_test"):
    """A MariaDB database of this test run's own (URL), dropped afterwards.

    An unreachable server skips the test locally and fails it under CI=true.
    """
    admin = sa.create_engine(MARIADB_ADMIN_URL, connect_args={"connect_timeout": 5})
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _unavailable(f"MariaDB at {MARIADB_ADMIN_URL} is unreachable: {str(exc.orig).splitlines()[0]}")
    try:
        yield f"{MARIADB_ADMIN_URL}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(scope="session")
def mariadb_url():
    """A fresh MariaDB database for this test session, dropped afterwards."""
    with fresh_mariadb_database() as url:
        yield url


@pytest.fixture(scope="session")
def demo_sqlite(tmp_path_factory):
    """(url, ground_truth) of the default demo world in a temporary SQLite file."""
    from rca_toolkit import demo

    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'demo.sqlite'}"
    truth = demo.build(url, seed=DEMO_SEED, truth_path=folder / "demo.truth.json")
    return url, truth


@pytest.fixture(scope="session")
def demo_mariadb(mariadb_url, tmp_path_factory):
    """(url, ground_truth) of the same demo world built on the real MariaDB."""
    from rca_toolkit import demo

    truth_path = tmp_path_factory.mktemp("demo_mariadb") / "demo.truth.json"
    truth = demo.build(mariadb_url, seed=DEMO_SEED, truth_path=truth_path)
    return mariadb_url, truth


@pytest.fixture()
def demo_store(demo_sqlite, tmp_path):
    """The demo world's store, filled and opened read-only as the analyses open it."""
    from rca_toolkit.sources import loaders, store

    url, _ = demo_sqlite
    source = loaders.engine_for(url)
    folder = Path(tmp_path) / "store"
    store.refresh(source, folder, storage_zone=loaders.storage_zone(source))
    source.dispose()
    yield store.open_store(folder)
    store.close(folder)


@pytest.fixture
def store_waits(monkeypatch) -> list[float]:
    """The waits the store's rate limiter asks for, recorded instead of slept (at tens of rows a second a refresh
    of the demo would wait minutes): the refresh's other clock readings stay real."""
    import time
    from types import SimpleNamespace

    from rca_toolkit.sources.store import extract

    waits: list[float] = []
    monkeypatch.setattr(extract, "time", SimpleNamespace(monotonic=time.monotonic, perf_counter=time.perf_counter,
                                                         sleep=waits.append))
    return waits


@pytest.fixture(scope="session", params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def demo_db(request):
    """The demo world on each backend: tests using it run on SQLite and on MariaDB."""
    return request.getfixturevalue(f"demo_{request.param}")


def copy_mariadb_world(source_url: str, url: str, perturbations=()) -> None:
    """The tables of the MariaDB world at ``source_url`` copied into ``url``'s database (same server), then each
    ``(what, statement)`` of ``perturbations`` applied (each must change more than 20 rows)."""
    import sqlalchemy as sa

    source = sa.make_url(source_url).database
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for (table,) in conn.execute(sa.text(f"SHOW TABLES FROM `{source}`")).fetchall():
            conn.execute(sa.text(f"CREATE TABLE `{table}` LIKE `{source}`.`{table}`"))
            conn.execute(sa.text(f"INSERT INTO `{table}` SELECT * FROM `{source}`.`{table}`"))
        for what, statement in perturbations:
            assert conn.execute(sa.text(statement)).rowcount > 20, what
    engine.dispose()


def altered_copy(demo_url: str, folder: Path, *statements: str) -> str:
    """A copy of a demo SQLite world in ``folder`` with ``statements`` run on it (drop a column, empty a
    table): the data the toolkit meets when a schema differs. Returns the copy's URL."""
    import shutil
    import sqlite3

    path = Path(folder) / "world.sqlite"
    shutil.copy(demo_url.removeprefix("sqlite:///"), path)
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)
    return f"sqlite:///{path}"
