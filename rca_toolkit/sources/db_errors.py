"""Driver errors -> the one-line ``RcaError`` family, with every password scrubbed.

pymysql, sqlite3, SQLAlchemy's ``DBAPIError`` wrappers and ``pandas.errors.DatabaseError`` (which
``pd.read_sql`` raises around any SQLAlchemy error) all end in the same three kinds: a table or
column the schema lacks (``SchemaError``), a write the database refused (``WriteRefused``), and
everything else the server or file did (``ConnectionFailed``: unreachable, timed out, cut).
Only the driver's first line is shown: SQLAlchemy's own text carries the statement and its
bound values.
"""

from __future__ import annotations

import re
import sqlite3
from urllib.parse import quote

from rca_toolkit.errors import ConnectionFailed, RcaError, SchemaError, WriteRefused
from rca_toolkit.sources.credentials import MASK, redact_text

MYSQL_SCHEMA_CODES = {1054, 1051, 1109, 1146}  # unknown column, unknown table (x3)
MYSQL_READ_ONLY_CODES = {1290, 1792}  # --read-only server, statement in a READ ONLY transaction
MYSQL_TIMEOUT_CODES = {1969, 2013, 3024}  # max_statement_time, lost/timed-out read, MySQL's max_execution_time


def driver_error(exc: BaseException) -> BaseException:
    """The innermost driver exception behind ``exc`` (``exc`` itself when there is none)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            return orig
        current = current.__cause__ or current.__context__
    return exc


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from a database driver (directly or wrapped by SQLAlchemy or pandas)."""
    inner = driver_error(exc)
    return isinstance(inner, sqlite3.Error) or type(inner).__module__.startswith(("pymysql", "MySQLdb"))


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with URL passwords masked and each known secret (plain or URL-encoded) replaced."""
    text = redact_text(text)
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):  # a 1-3 character
        # secret would mask ordinary words; drivers do not echo passwords, this is the second net
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, MASK)
    return text


def first_line(exc: BaseException, secrets: list[str] = ()) -> str:
    """The driver's first line for ``exc``, scrubbed (never SQLAlchemy's text with the statement)."""
    inner = driver_error(exc)
    return scrub((str(inner).strip().splitlines() or [type(inner).__name__])[0], list(secrets))


# Driver exceptions the server or the file raise on their own (unreachable, lost, timed out, locked,
# not a database); ProgrammingError, IntegrityError, DataError and the like stay bugs of the toolkit.
ENVIRONMENT_ERRORS = ("OperationalError", "InterfaceError")


def untranslated(exc: BaseException) -> RcaError | None:
    """The one-line error for a database failure that reached the CLI without a layer translating it,
    when the database caused it (``ENVIRONMENT_ERRORS``, SQLite's "file is not a database"); None
    for anything else, which stays an internal error."""
    if not is_database_error(exc):
        return None
    inner = driver_error(exc)
    if isinstance(inner, sqlite3.OperationalError) and _SQLITE_OWN_BUG.search(str(inner)):
        return None  # SQLite reports a bad statement as OperationalError too: that is the toolkit's bug
    if type(inner).__name__ in ENVIRONMENT_ERRORS or type(inner) is sqlite3.DatabaseError:
        return translate(exc, "the database")
    return None


_SQLITE_OWN_BUG = re.compile(r"syntax error|no such (column|function)|misuse|incomplete input|"
                             r"wrong number of arguments|ambiguous column", re.IGNORECASE)


def translate(exc: BaseException, where: str, *, secrets: list[str] = (), doing: str = "query") -> RcaError:
    """The one-line error for ``exc`` raised while ``doing`` something on ``where`` (a redacted URL)."""
    inner = driver_error(exc)
    first = first_line(exc, secrets)
    code = inner.args[0] if inner.args and isinstance(inner.args[0], int) else None
    low = first.lower()
    message = f"{doing} on {where} failed: {first}"
    if code in MYSQL_SCHEMA_CODES or "no such table" in low or "no such column" in low:
        return SchemaError(message, hint="the schema differs from the data contract; point --db at the production schema")
    if code in MYSQL_READ_ONLY_CODES or "not authorized" in low or "readonly" in low or "read only" in low:
        return WriteRefused(message, hint="the toolkit only reads the database it analyses")
    if code in MYSQL_TIMEOUT_CODES or "timed out" in low:
        return ConnectionFailed(message, hint="the server was too slow or silent: check it, or raise RCA_STATEMENT_TIMEOUT_S")
    return ConnectionFailed(message, hint="check host, port, user, that the server is running and the file is a database")
