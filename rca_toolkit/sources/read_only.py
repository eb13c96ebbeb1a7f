"""Read-only as a guarantee, not a session default: guards installed on every read-only engine.

Three layers, so one that is lifted or fooled still leaves the others:

1. Every statement is checked before it reaches the driver (``before_cursor_execute``): only
   reads (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, reading PRAGMAs) and an allow-list of harmless
   session settings pass; writes, DDL, ``LOAD``/``CALL``/``HANDLER``/``LOCK``, ``INTO OUTFILE``,
   ``SET GLOBAL``, anything that makes a transaction ``READ WRITE`` and MariaDB's executable
   comments (``/*! ... */``) are refused with :class:`WriteRefused`.
2. MariaDB: ``SET SESSION TRANSACTION READ ONLY`` on every checkout from the pool, so a session
   made writable by anything is read-only again for the next user.
3. SQLite: the file opened with ``mode=ro``, ``PRAGMA query_only=1`` on each connection and an
   authorizer that denies ATTACH, DETACH and every write action inside SQLite itself.
"""

from __future__ import annotations

import re
import sqlite3

import sqlalchemy as sa

from rca_toolkit.errors import WriteRefused

READ_LEADS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES"}
TRANSACTION_LEADS = {"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}
# session variables the toolkit itself changes on a read-only session (sources/db)
SETTABLE = {"tmp_table_size", "max_heap_table_size", "max_statement_time", "names"}
SQLITE_WRITE_PRAGMAS = {"query_only", "writable_schema", "journal_mode", "user_version", "application_id",
                        "schema_version", "locking_mode", "incremental_vacuum", "wal_checkpoint", "optimize"}

_TOKENS = re.compile(r"'(?:[^'\\]|\\.|'')*'?|\"(?:[^\"\\]|\\.|\"\")*\"?|`(?:[^`]|``)*`?"
                     r"|/\*.*?(?:\*/|$)|--[^\n]*|#[^\n]*", re.DOTALL)
_WRITE_WORDS = re.compile(r"\b(?:INSERT|REPLACE)\b(?!\s*\()|\b(?:UPDATE|DELETE)\b|\bINTO\s+(?:OUTFILE|DUMPFILE)\b")
_ASSIGNMENT = re.compile(r"^(?:(GLOBAL|SESSION|LOCAL|PERSIST|PERSIST_ONLY)\s+)?(@@(?:(\w+)\.)?)?(@?[\w$]+)")


def normalised(sql: str) -> tuple[str, bool]:
    """(statement with literals emptied and comments removed, upper-cased; whether it held an
    executable ``/*! */`` or ``/*M! */`` comment, which MariaDB runs as SQL)."""
    executable = False

    def blank(match: re.Match) -> str:
        nonlocal executable
        token = match.group(0)
        if token.startswith("/*"):
            executable |= token.startswith(("/*!", "/*M!"))
            return " "
        if token.startswith(("--", "#")):
            return " "
        return token[0] * 2  # '' "" ``: the literal's place, not its words
    return " ".join(_TOKENS.sub(blank, sql).split()).upper(), executable


def refusal(sql: str) -> str | None:
    """Why ``sql`` may not run on a read-only engine, or None when it only reads."""
    text, executable = normalised(sql)
    if executable:
        return "an executable comment /*! ... */ runs SQL the guard cannot see"
    if re.search(r";\s*\S", text):
        return "more than one statement"
    lead = text.lstrip("( ").split(" ", 1)[0].rstrip("(;")
    if lead in READ_LEADS:
        found = _WRITE_WORDS.search(text)
        return f"{found.group(0)} writes" if found else None
    if lead in TRANSACTION_LEADS:
        return "a READ WRITE transaction" if "READ WRITE" in text else None
    if lead == "SET":
        return _set_refusal(text[3:].strip())
    if lead == "PRAGMA":
        return _pragma_refusal(text[6:].strip())
    return f"{lead or 'an empty'} statement is not a read"


def _set_refusal(body: str) -> str | None:
    if re.match(r"^(?:(?:SESSION|LOCAL)\s+)?TRANSACTION\b", body):
        return "SET TRANSACTION READ WRITE" if "READ WRITE" in body else None
    for part in _top_level_parts(body):
        match = _ASSIGNMENT.match(part)
        if not match:
            return f"SET {part[:40]}"
        scope, sysvar, sysvar_scope, name = match.groups()
        if name.startswith("@"):
            continue  # a user variable: state of this statement list only
        if scope in ("GLOBAL", "PERSIST", "PERSIST_ONLY") or (sysvar_scope or "").upper() == "GLOBAL":
            return "SET GLOBAL"
        if name.lower() not in SETTABLE:
            return f"SET {name.lower()} (only {', '.join(sorted(SETTABLE))} may change on a read-only session)"
    return None


def _pragma_refusal(body: str) -> str | None:
    name = body.split("=", 1)[0].split("(", 1)[0].strip().split(".")[-1].lower()
    if "=" in body or ("(" in body and not re.search(r"(info|list)$", name)):
        return f"PRAGMA {name} with a value"
    return None


def _top_level_parts(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    return parts + [body[start:].strip()]


def guard_statements(engine: sa.Engine, label: str) -> None:
    """Refuse, before it reaches the driver, every statement that is not a read (see :func:`refusal`)."""
    @sa.event.listens_for(engine, "before_cursor_execute")
    def _check(_conn, _cursor, statement, _params, _context, _many):  # noqa: ANN001
        why = refusal(statement)
        if why:
            raise WriteRefused(f"refused on the read-only database {label}: {why}",
                               hint="the toolkit only reads the database it analyses")


def keep_mariadb_read_only(engine: sa.Engine) -> None:
    """Re-assert ``READ ONLY`` on every checkout, not only when the connection was opened."""
    @sa.event.listens_for(engine, "checkout")
    def _reassert(dbapi_conn, _record, _proxy):  # noqa: ANN001
        with dbapi_conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION READ ONLY")


_SQLITE_DENIED = {getattr(sqlite3, name) for name in dir(sqlite3)
                  if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_"))} | {
    getattr(sqlite3, name) for name in ("SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_INSERT", "SQLITE_UPDATE",
                                        "SQLITE_DELETE", "SQLITE_ALTER_TABLE", "SQLITE_REINDEX", "SQLITE_ANALYZE")}


def sqlite_authorizer(action: int, arg1, arg2, _db, _trigger) -> int:  # noqa: ANN001
    """SQLite's own veto: ATTACH, DETACH, every write and every writing PRAGMA are denied."""
    if action in _SQLITE_DENIED:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg2 is not None and str(arg1).lower() in SQLITE_WRITE_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def keep_sqlite_read_only(engine: sa.Engine) -> None:
    """``PRAGMA query_only=1`` and the authorizer on each new connection (``mode=ro`` is in the URL)."""
    @sa.event.listens_for(engine, "connect")
    def _lock(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.execute("PRAGMA query_only = 1")
        dbapi_conn.set_authorizer(sqlite_authorizer)
