import pytest
import sqlalchemy as sa

from rca_toolkit.config import load_settings
from rca_toolkit.sources.db import check_connection, make_engine, redact_text, redact_url, resolve_url
from rca_toolkit.errors import ConfigError, ConnectionFailed, NotFound, WriteRefused


def test_redact_url_hides_password():
    assert redact_url("mysql+pymysql://ro:s3cret@db:3306/app") == "mysql+pymysql://ro:***@db:3306/app"
    assert "s3cret" not in redact_text("failed for mysql+pymysql://ro:s3cret@db/app today")


def test_settings_layering(tmp_path, monkeypatch):
    cfg = tmp_path / "rca.yaml"
    cfg.write_text("source_tz: Europe/Vienna\nstatement_timeout_s: 5\n")
    monkeypatch.setenv("RCA_CONFIG", str(cfg))
    monkeypatch.setenv("RCA_STATEMENT_TIMEOUT_S", "7")
    settings = load_settings(source_tz=None, redis_url="redis://127.0.0.1:6379/0")
    assert settings.source_tz == "Europe/Vienna"  # file beats default
    assert settings.statement_timeout_s == 7.0  # env beats file
    assert settings.redis_url == "redis://127.0.0.1:6379/0"  # explicit beats all


def test_unknown_config_key_is_one_line_error(tmp_path, monkeypatch):
    cfg = tmp_path / "rca.yaml"
    cfg.write_text("databse_url: x\n")
    monkeypatch.setenv("RCA_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="unknown keys: databse_url"):
        load_settings()


def test_profile_reads_password_from_env(monkeypatch):
    from rca_toolkit.config import Settings

    settings = Settings(profiles={"prod": {"url": "mysql+pymysql://ro@db:3306/app", "password_env": "RCA_TEST_PW"}})
    with pytest.raises(ConnectionFailed, match=r"needs the password in \$RCA_TEST_PW"):
        resolve_url("prod", settings)
    monkeypatch.setenv("RCA_TEST_PW", "pw1")
    assert resolve_url("prod", settings).password == "pw1"


def test_bad_url_and_missing_sqlite_file(tmp_path):
    with pytest.raises(ConnectionFailed, match="not a valid SQLAlchemy URL"):
        make_engine("not a url")
    with pytest.raises(NotFound, match="does not exist"):
        make_engine(f"sqlite:///{tmp_path}/nope.sqlite")
    with pytest.raises(ConnectionFailed, match="unsupported database"):
        make_engine("postgresql://x@127.0.0.1/db")


def test_sqlite_engine_is_read_only(tmp_path):
    path = tmp_path / "a.sqlite"
    writable = make_engine(f"sqlite:///{path}", writable=True)
    with writable.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x int)"))
    ro = make_engine(f"sqlite:///{path}")
    assert redact_url(ro.url) == f"sqlite:///{path}"
    with pytest.raises(WriteRefused, match="INSERT statement is not a read"):  # the gate, before SQLite's own refusal
        with ro.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))


def test_unreachable_mariadb_is_one_clear_error():
    engine = make_engine("mysql+pymysql://root@127.0.0.1:1/none")
    with pytest.raises(ConnectionFailed, match="cannot connect to mysql\\+pymysql://root@127.0.0.1:1/none"):
        check_connection(engine)


@pytest.mark.mariadb
def test_mariadb_engine_is_read_only_and_pinned(mariadb_url):
    writable = make_engine(mariadb_url, writable=True)
    with writable.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ro_probe (x int)"))
    ro = make_engine(mariadb_url)
    with ro.connect() as conn:
        assert conn.execute(sa.text("SELECT @@session.time_zone")).scalar() == "+00:00"
        assert conn.execute(sa.text("SELECT @@session.tx_read_only")).scalar() == 1
    with pytest.raises(WriteRefused, match="INSERT statement is not a read"):  # the gate, before the server's READ ONLY
        with ro.begin() as conn:
            conn.execute(sa.text("INSERT INTO ro_probe VALUES (1)"))
    with writable.begin() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM ro_probe")).scalar() == 0
        conn.execute(sa.text("DROP TABLE ro_probe"))


def test_introspection_reports_primary_key_and_autoincrement(demo_db):
    from rca_toolkit.sources.db import introspect

    url, _ = demo_db
    schema = introspect(make_engine(url), ["appointments", "retell_call_sessions"])
    assert schema["appointments"].primary_key == ["id"]
    assert "id" in schema["appointments"].autoincrement
    assert schema["retell_call_sessions"].primary_key == ["id"]  # char(36) uuid: not auto-increment
    assert schema["retell_call_sessions"].autoincrement == set()
