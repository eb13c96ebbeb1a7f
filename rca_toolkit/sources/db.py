"""The one database gate: every engine comes from :func:`make_engine` (read-only by default).

Analyses never write to the database they analyse. The gate parses the URL once and keeps
every password out of what an engine can print (``sources/credentials``), refuses URL options
that run SQL or change the session, sets connect/read/write timeouts, and installs the
read-only guards (``sources/read_only``): SQLite ``mode=ro`` + ``query_only`` + an authorizer;
MariaDB ``READ ONLY`` on every checkout, with a statement time limit; statements that write or
lift read-only are refused. Only the demo builder and ``rca import`` ask for ``writable=True``,
and only for scratch databases. Driver errors become one line (``sources/db_errors``).
"""

from __future__ import annotations

import os
import re
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from rca_toolkit.config import DB_TIME_ZONE, Settings, load_settings, seconds_setting
from rca_toolkit.errors import ConnectionFailed, InputFormatError, NotFound, RcaError
from rca_toolkit.sources import db_errors, read_only
from rca_toolkit.sources.credentials import GatedUrl, gate_url, parse_url, redact_text, redact_url

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["make_engine", "resolve_url", "redact_url", "redact_text", "check_connection", "database_error",
           "connection_timeouts", "ping_ms", "introspect", "naive_param", "TableInfo", "GROUP_BY_MEMORY",
           "check_sqlite_file", "check_sqlite_source"]

_SECRETS: "weakref.WeakKeyDictionary[sa.Engine, list[str]]" = weakref.WeakKeyDictionary()


def resolve_url(db: str | None = None, settings: Settings | None = None) -> URL:
    """Turn ``--db`` (URL, profile name, or None for the configured default) into a URL.

    A profile may name ``password_env``: the password is read from that variable and never
    appears in parameters or outputs.
    """
    settings = settings or load_settings()
    raw = db or settings.database_url
    profile = settings.profiles.get(raw) if settings.profiles else None
    if profile:
        raw = profile["url"]
    try:
        url = parse_url(raw)
    except (ArgumentError, ValueError):
        if "://" not in str(raw):
            known = ", ".join(sorted(settings.profiles)) or "none configured"
            what = "--db" if db else "the database_url setting (RCA_DATABASE_URL, rca.yaml)"
            raise ConnectionFailed(f"{what} {_shown(redact_text(str(raw)))} is not a valid SQLAlchemy URL nor a database profile",
                                   hint=_pasted_hint(str(raw)) or f"profiles: {known} (rca.yaml or $RCA_CONFIG); or give "
                                        f"sqlite:///path.sqlite or mysql+pymysql://user@host:3306/db") from None
        raise _port_error(str(raw)) or ConnectionFailed(
            f"database URL {redact_text(str(raw))!r} is not a valid SQLAlchemy URL",
            hint=_pasted_hint(str(raw)) or "use sqlite:///path.sqlite or mysql+pymysql://user@host:3306/db",
        ) from None
    _check_port(url)
    if profile and profile.get("password_env"):
        secret = os.environ.get(profile["password_env"])
        if secret is None:
            raise ConnectionFailed(
                f"profile {db!r} needs the password in ${profile['password_env']}",
                hint=f"export {profile['password_env']}=... before running",
            )
        url = url.set(password=secret)
    if url.get_backend_name() == "mysql" and url.drivername == "mysql":
        url = url.set(drivername="mysql+pymysql")
    return url


def _pasted_hint(raw: str) -> str | None:
    """The URL a pasted database address means, where it is plain: a JDBC URL (its driver options left out), or a path
    to a SQLite file."""
    if raw.startswith("jdbc:mysql://") or raw.startswith("jdbc:mariadb://"):
        return f"write it for SQLAlchemy: {redact_text('mysql+pymysql://' + raw.split('://', 1)[1].split('?', 1)[0])}"
    if "://" not in raw and Path(raw).is_file():
        return f"a SQLite file is given as a URL: sqlite:///{raw}"
    return None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


PORTS = (1, 65535)
# scheme://[user-info@]host:port -- the user-info up to its last @ (no / inside, so a path is never taken for it)
_HOST_PORT = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<auth>[^/?#]*@)?(?P<host>\[[^\]]*\]|[^/?#@:]*):"
                        r"(?P<port>[^/?#@]*)(?:[/?#]|$)", re.DOTALL)
_PORT_HINT = "write the port as a number from 1 to 65535, e.g. mysql+pymysql://user@host:3306/db"
_NO_HOST_HINT = ("write user:password@host:3306/db (without @host the password is read as the port); "
                 "best keep the password in a profile's password_env")


def _port_error(raw: str) -> ConnectionFailed | None:
    """The one line for a URL that does not parse because its port is not a number (None: another reason).

    Without user-info the text after ``host:`` may be a password whose ``@host`` was forgotten, so it is
    masked then."""
    match = _HOST_PORT.match(raw.strip())
    if not match or match["port"].isdigit():
        return None
    where = f"{match['scheme']}://{match['host']}"
    if match["auth"] is None:
        return ConnectionFailed(f"database URL {where}:*** has no port number after {match['host']!r}", hint=_NO_HOST_HINT)
    shown = match["port"] if len(match["port"]) <= 20 else match["port"][:17] + "..."
    return ConnectionFailed(f"database URL {redact_text(raw)!r}: port {shown!r} is not a number", hint=_PORT_HINT)


def _check_port(url: URL) -> None:
    """A server URL's port must be 1-65535 (pymysql would take 0 as the default port, 99999 as an error)."""
    low, high = PORTS
    if url.get_backend_name() == "sqlite" or url.port is None or low <= url.port <= high:
        return
    if url.username is None:  # "user:secret/db" parses as host "user", port "secret"
        raise ConnectionFailed(f"database URL {url.drivername}://{url.host}:*** has a port outside {low}-{high}",
                               hint=_NO_HOST_HINT)
    raise ConnectionFailed(f"database URL {redact_url(url)!r}: port {url.port} is outside {low}-{high}", hint=_PORT_HINT)


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database file


def check_sqlite_file(path: str | Path, *, writable: bool = False) -> None:
    """``path`` must be a SQLite database file (readable, with the SQLite header); a writable scratch
    target may also be absent or empty (SQLite creates it). One line naming the file otherwise."""
    path = Path(path)
    hint = "give the path of a SQLite database file, e.g. sqlite:///data/demo.sqlite (built by `rca demo-data`)"
    if path.is_dir():
        raise InputFormatError(f"SQLite database {path} is a directory, not a database file", hint=hint)
    if not path.exists():
        if writable:
            return
        raise NotFound(
            f"SQLite database {path} does not exist",
            hint="build the demo with `make demo` or `rca demo-data --db sqlite:///data/demo.sqlite`",
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ConnectionFailed(f"cannot read SQLite database {path}: {exc.strerror or type(exc).__name__}",
                               hint="check the path and its permissions") from None
    if not head and writable:
        return
    if not head:
        raise InputFormatError(f"SQLite database {path} is an empty file, not a database", hint=hint)
    if head != SQLITE_HEADER:
        raise InputFormatError(f"{path} is not a SQLite database (it lacks the SQLite file header)", hint=hint)


def check_sqlite_source(url: URL) -> str:
    """The file a ``sqlite:///path`` URL (or its ``file:`` URI form) names, checked as a database to analyse."""
    path = url.database
    if not path or path == ":memory:":
        raise ConnectionFailed("an in-memory SQLite database has nothing to analyse", hint="give a file path")
    if path.startswith("file:"):
        path = path[5:].split("?", 1)[0]
    check_sqlite_file(path)
    return path


def _sqlite_readonly(url: URL) -> URL:
    """``sqlite:///path`` -> the same file opened through SQLite's URI form with ``mode=ro``."""
    return make_url(f"sqlite:///file:{Path(check_sqlite_source(url)).resolve()}?mode=ro&uri=true")


def check_backend(url: URL) -> str:
    """The URL's backend when the toolkit reads it (SQLite, MariaDB/MySQL); else :class:`ConnectionFailed`."""
    backend = url.get_backend_name()
    if backend not in ("sqlite", "mysql", "mariadb"):
        raise ConnectionFailed(
            f"unsupported database {redact_url(url)!r}", hint="use SQLite or MariaDB/MySQL via mysql+pymysql://"
        )
    return backend


def make_engine(db: str | URL | None = None, *, writable: bool = False, settings: Settings | None = None) -> sa.Engine:
    """Create an engine through the gate; read-only unless ``writable`` (scratch databases only).

    The engine's URL shows a password as ``***`` even unhidden: the real one is handed to the
    driver at connect time only."""
    settings = settings or load_settings()
    url = db if isinstance(db, URL) else resolve_url(db, settings)
    backend = check_backend(url)
    gated = gate_url(url)
    try:
        if backend == "sqlite" and not writable:
            engine = sa.create_engine(_sqlite_readonly(gated.url))
        elif backend == "sqlite":
            if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
                check_sqlite_file(url.database, writable=True)
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(gated.url)
        else:
            timeouts = {**connection_timeouts(settings, writable), **gated.timeouts}
            engine = sa.create_engine(gated.url, pool_pre_ping=True, connect_args=timeouts)
    except (NoSuchModuleError, ArgumentError) as exc:
        raise ConnectionFailed(f"cannot use {redact_url(url)!r}: {redact_text(str(exc))}", hint="check the driver name") from None
    _hand_over_secrets(engine, gated)
    label = redact_url(url)
    if backend in ("mysql", "mariadb"):
        statements = _pin_mysql_session(engine, settings, writable)
        if not writable and not url.query:
            _BULK[engine] = BulkSource(_bulk_uri(url), statements)
        if not writable:
            read_only.keep_mariadb_read_only(engine)
    elif not writable:
        read_only.keep_sqlite_read_only(engine)
    if not writable:
        read_only.guard_statements(engine, label)
    return engine


def connection_timeouts(settings: Settings, writable: bool = False) -> dict[str, float]:
    """pymysql timeouts: connect after ``connect_timeout_s``; on read-only engines a read or write
    waits at most ``statement_timeout_s + connect_timeout_s`` (the server cuts a statement at
    ``statement_timeout_s``, so a longer silence is a silent server). Writable scratch engines lift
    the statement limit for bulk loads and get the connect timeout only."""
    connect = seconds_setting("connect_timeout_s (RCA_CONNECT_TIMEOUT_S)", settings.connect_timeout_s)
    statement = seconds_setting("statement_timeout_s (RCA_STATEMENT_TIMEOUT_S)", settings.statement_timeout_s)
    if writable:
        return {"connect_timeout": connect}
    return {"connect_timeout": connect, "read_timeout": statement + connect, "write_timeout": statement + connect}


def _hand_over_secrets(engine: sa.Engine, gated: GatedUrl) -> None:
    """The password (and e.g. ``ssl_key_password``) reach the driver here and nowhere else."""
    _SECRETS[engine] = gated.secret_values()
    if not gated.secrets:
        return
    @sa.event.listens_for(engine, "do_connect")
    def _with_secrets(_dialect, _record, _cargs, cparams):  # noqa: ANN001
        cparams.pop("password", None)
        cparams.pop("passwd", None)
        for key, value in gated.secrets.items():
            cparams[key] = value  # pymysql and sqlite3 keywords: password, ssl_key_password


def database_error(engine: sa.Engine, exc: BaseException, doing: str = "query") -> RcaError:
    """The one-line error (SchemaError, WriteRefused or ConnectionFailed) for a driver, SQLAlchemy or
    pandas database error on ``engine``, with its passwords scrubbed."""
    where = getattr(engine, "rca_label", None) or redact_url(engine.url)
    return db_errors.translate(exc, where, secrets=_SECRETS.get(engine, []), doing=doing)


# A GROUP BY on a VARCHAR(255) utf8mb4 column keys ~1 KB per group in MariaDB's MEMORY temporary
# table; with the 16 MiB default, 20k (side, function, duration) groups spill to disk: 28 s instead
# of 4 s over the 2M traces of a two-month comparison at 1M calls. Per session, not global.
GROUP_BY_MEMORY = 256 * 2**20


def _pin_mysql_session(engine: sa.Engine, settings: Settings, writable: bool) -> None:
    """Every pooled connection: fixed time zone, statement limit, read-only unless writable, and
    in-memory GROUP BY tables large enough for the toolkit's aggregates (see ``GROUP_BY_MEMORY``)."""
    statement_s = seconds_setting("statement_timeout_s (RCA_STATEMENT_TIMEOUT_S)", settings.statement_timeout_s)
    statements = [f"SET time_zone = '{_safe_tz(settings.db_time_zone)}'"]
    statements.append(f"SET SESSION max_statement_time = {statement_s:.3f}")
    statements.append(f"SET SESSION tmp_table_size = {GROUP_BY_MEMORY}, max_heap_table_size = {GROUP_BY_MEMORY}")
    if not writable:
        statements.append("SET SESSION TRANSACTION READ ONLY")

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        with dbapi_conn.cursor() as cur:
            for stmt in statements:
                cur.execute(stmt)

    return statements


@dataclass(frozen=True)
class BulkSource:
    """What a bulk reader (connectorx) needs to read like the engine: its URI, password included (never shown:
    ``repr`` hides it), and the session statements every connection of the engine runs first (time zone,
    statement limit, read-only transaction)."""

    uri: str = field(repr=False)
    session: list


_BULK: "weakref.WeakKeyDictionary[sa.Engine, BulkSource]" = weakref.WeakKeyDictionary()


def _bulk_uri(url: URL) -> str:
    from urllib.parse import quote

    user = quote(url.username or "", safe="")
    secret = f":{quote(url.password, safe='')}" if url.password else ""
    return f"mysql://{user}{secret}@{url.host or '127.0.0.1'}:{url.port or 3306}/{quote(url.database or '', safe='')}"


def bulk_source(engine: sa.Engine) -> BulkSource | None:
    """How to read ``engine``'s database in bulk (MariaDB/MySQL read-only engines from the gate without URL
    options), or None: then read through the engine itself."""
    return _BULK.get(engine)


def secrets_of(engine: sa.Engine) -> list[str]:
    """The secret values ``engine`` was built with, to scrub from messages of other clients of the same server."""
    return list(_SECRETS.get(engine, []))


def _safe_tz(value: str) -> str:
    if not DB_TIME_ZONE.fullmatch(value):
        raise ConnectionFailed(f"db_time_zone={value!r} is not a time zone", hint="use +00:00 or SYSTEM")
    return value


def check_connection(engine: sa.Engine) -> None:
    """Open one connection and translate driver errors into one clear line."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except DBAPIError as exc:
        raise ConnectionFailed(
            f"cannot connect to {redact_url(engine.url)}: {db_errors.first_line(exc, _SECRETS.get(engine, []))}",
            hint="check host, port, user and that the server is running",
        ) from None


def check_reachable(db) -> None:
    """``db`` (a URL, a profile, None for the configured default) opens and answers, else one clear line:
    what runs check on the host before any kernel or run folder exists."""
    engine = make_engine(db)
    try:
        check_connection(engine)
    finally:
        engine.dispose()


def ping_ms(engine: sa.Engine) -> float:
    """Milliseconds for a ``SELECT 1`` round trip, taking the connection from the pool included."""
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return (time.perf_counter() - started) * 1000


@dataclass
class TableInfo:
    """Columns (name -> SQL type text), nullability and indexes of one live table."""

    name: str
    columns: dict[str, str]
    nullable: dict[str, bool] = field(default_factory=dict)
    has_default: dict[str, bool] = field(default_factory=dict)
    indexes: list[dict] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    autoincrement: set[str] = field(default_factory=set)


def naive_param(naive: pd.Timestamp, engine: sa.Engine):
    """A naive timestamp as the database compares its stored times: a ``datetime``, or on SQLite, which stores and
    compares text, the text with the fraction's trailing zeros left out (none at all for a whole second), so that
    text order is time order for stored values of the form ``YYYY-MM-DD HH:MM:SS[.f]`` (a row stored at
    "... 00:00:00" is below "... 00:00:00.000000" as text)."""
    if engine.dialect.name != "sqlite":
        return naive.to_pydatetime()
    return naive.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")


def introspect(engine: sa.Engine, tables: list[str] | None = None) -> dict[str, TableInfo]:
    """Read the live schema (information_schema on MariaDB, the catalogue on SQLite)."""
    check_connection(engine)
    inspector = sa.inspect(engine)
    try:
        present = set(inspector.get_table_names()) | set(inspector.get_view_names())
    except DBAPIError as exc:
        raise database_error(engine, exc, doing="reading the schema") from None
    wanted = sorted(present if tables is None else set(tables) & present)
    out: dict[str, TableInfo] = {}
    for name in wanted:
        cols = inspector.get_columns(name)
        out[name] = TableInfo(
            name=name,
            columns={c["name"]: str(c["type"]) for c in cols},
            nullable={c["name"]: bool(c.get("nullable", True)) for c in cols},
            has_default={c["name"]: c.get("default") is not None or bool(c.get("autoincrement") is True) for c in cols},
            indexes=inspector.get_indexes(name) if name not in inspector.get_view_names() else [],
            primary_key=list(inspector.get_pk_constraint(name).get("constrained_columns") or []),
            autoincrement=_autoincrement_columns(engine, name, cols),
        )
    return out


def _autoincrement_columns(engine: sa.Engine, table: str, cols: list[dict]) -> set[str]:
    """Columns the database fills itself: MariaDB ``auto_increment``; SQLite's INTEGER PRIMARY KEY."""
    found = {c["name"] for c in cols if c.get("autoincrement") is True}
    if engine.dialect.name == "sqlite":
        pk = [c for c in cols if c.get("primary_key")]
        if len(pk) == 1 and str(pk[0]["type"]).upper() in ("INTEGER", "BIGINT"):
            found.add(pk[0]["name"])
    return found
