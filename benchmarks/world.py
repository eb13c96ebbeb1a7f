"""The ≥1M-call benchmark world, built in minutes: a small demo world multiplied inside MariaDB.

Why: generating a million calls in pandas and loading them took 41 min and 8 GiB. Here the
existing builder makes a small base world (``rca_toolkit.demo.build`` at ``base_scale``, in a
scratch database ``<db>_world_base``), and every table is then copied ``copies`` more times
with ``INSERT ... SELECT`` into tables that have only their primary key (base rows and copies
in one statement sorted by the new key: pure appends, no page splits); indexes, unique
keys and foreign keys are added afterwards (one sorted build per table, two tables at once
over two connections). The FULLTEXT index is built in the same ``ALTER`` as the segments'
other indexes: InnoDB rebuilds the whole table to add a table's first FULLTEXT index (hidden
``FTS_DOC_ID``), so adding it afterwards built the five secondary indexes twice; and on the
first connection it overlaps the other tables' copies instead of running alone at the end.

Each copy is *more traffic for the same companies* (the rule, checked by
tests/bench/test_benchmarks_world.py):

* only rows of real calls are copied (Retell id ``call_`` + 27 lowercase hex): sessions and
  every row under them, their ``calls`` rows and ``call_started`` webhooks; appointments of
  real calls and the Cal.com rows (webhooks, webhook-upserted appointments) of everything
  except the Cal.com bookings made by test/demo calls. Test, demo, temp and typo ids, the
  migrations and the marker stay in the base only;
* ids grow with time, as production's auto-increment ids do (the store's refresh reads rows
  past the high-water key and a trailing time window by key range; with the old ``id + k *
  stride`` both scanned whole tables): with ``M = copies + 1`` the row of base id ``b`` gets
  integer id ``b * M + k`` in copy ``k``, ``k = 0`` being the base row itself (copied or not),
  and every integer reference to another table's id (foreign keys, the ``"call_id":N`` in
  ``appointments.metadata``) becomes ``x * M + k`` the same way. Base rows change nothing else;
* copy ``k`` also gets new string keys: session uuids and call ids with their last 4 hex
  digits XOR ``k``, Cal.com uids with their last two base-62 digits + ``k`` (mod 62²), so a
  copy never equals its base or another copy of the same row. At most 25 copies: the unique
  keys compare uids case-insensitively (utf8mb4_unicode_ci) and base-62 digit + 26 is the
  same letter in the other case (``xNN`` + 2 = ``xNP``, + 28 = ``xNp``: seen at 36 copies);
  every reference inside JSON/text (webhook payloads and idempotency keys,
  ``appointments.metadata`` Retell id and uid, ``calls.raw``, the duplicate-key error
  messages) is rewritten the same way;
* every timestamp of copy ``k`` moves by ``k * step_ms`` (3 s by default, whole seconds so
  ``TIMESTAMP(0)`` columns shift exactly; 19 copies stay under a minute). Times written
  *inside* JSON (``createdAt``, ``start_timestamp``, ``synced_at``) keep the base value.
  Near an incident boundary a copy of a call that started less than ``k * step_ms`` before
  it lands after it (counts per window move by those few calls; totals per path do not).
  With a step above 2.5 s a copy's Cal.com webhook (0.3-1.5 s after its attempt) never lies
  before a later copy's attempt, so the copies of one attempt do not take each other's
  webhook. Attempts of *other* calls of the same company now come ``copies + 1`` times as
  often, so the toolkit's time links (webhook within 60 s) collide more: attempts and
  successes scale exactly, the orphaned/rescued split of failures does not (README).

The marker row says SYNTHETIC like the base and records the replication in ``generator``
(``... x benchmarks.world/2 copies=N step_ms=S``; ``/1`` worlds, built by the older id rule, are rebuilt
rather than reused); :func:`marker` reads it back.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pymysql
import sqlalchemy as sa

from rca_toolkit.rules import call_ids, functions
from rca_toolkit.sources import schema
from rca_toolkit.demo import fastload as F
from rca_toolkit.demo import ownership
from rca_toolkit.demo.spec import GENERATOR as DEMO_GENERATOR

GENERATOR = "benchmarks.world/2"  # /2: ids id * M + k (grow with time); /1 was id + k * stride
BASE_SCALE, COPIES, STEP_MS = 29, 25, 3000  # 1,031,194 calls; a base of 29 keeps the build under 1 GiB (37 x 19: 1.07 GiB)
MAX_COPIES = 25  # uid digit + 26 = same letter, other case: equal under utf8mb4_unicode_ci (module docstring)
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Largest tables first, so the two workers finish together (longest-processing-time order).
TABLE_ORDER = ("retell_transcript_segments", "retell_call_events", "retell_function_traces", "retell_error_log",
               "webhook_events", "retell_call_sessions", "calls", "appointments")
SETTINGS_TUNED = {"innodb_buffer_pool_size": 4 << 30, "innodb_log_file_size": 1 << 30, "innodb_io_capacity": 2000}


class WorldError(RuntimeError):
    """The world cannot be built as asked (bad arguments or a database that is not a demo world)."""


def _real(col: str) -> str:
    """The P4 rule in MariaDB SQL (rules.call_ids.real_call_id_sql): ``call_`` + 27 lowercase hex."""
    return call_ids.real_call_id_sql(col)


# --------------------------------------------------------------------------- id rewrites (SQL)
def hex_tail(col: str, k: int | str) -> str:
    """``col`` with its last 4 hex digits XOR ``k`` (call ids, session uuids): never equal to ``col``."""
    new = (f"CONCAT(LEFT({col}, CHAR_LENGTH({col}) - 4), "
           f"LPAD(LOWER(CONV(CONV(RIGHT({col}, 4), 16, 10) ^ {k}, 10, 16)), 4, '0'))")
    return f"IF({k} = 0, {col}, {new})" if isinstance(k, str) else new  # copy 0 (the base) keeps test ids as they are


def uid_tail(col: str, k: int | str) -> str:
    """Cal.com uid with its last two base-62 digits + ``k`` (mod 62²): never equal to ``col``."""
    digit = lambda pos: f"(INSTR(BINARY '{B62}', BINARY SUBSTR({col}, {pos}, 1)) - 1)"  # noqa: E731
    v = f"(({digit(-2)} * 62 + {digit(-1)} + {k}) MOD 3844)"
    return (f"CONCAT(LEFT({col}, CHAR_LENGTH({col}) - 2), "
            f"SUBSTR('{B62}', {v} DIV 62 + 1, 1), SUBSTR('{B62}', {v} MOD 62 + 1, 1))")


def _is_time(column: sa.Column) -> bool:
    return isinstance(column.type, sa.DateTime)


# Integer references to another table's id: rewritten like the ids (``x * M + k``).
INT_REFS = {"retell_function_traces": ("event_id",), "retell_transcript_segments": ("event_id",),
            "retell_error_log": ("event_id", "function_trace_id"), "calls": ("appointment_id",),
            "appointments": ("call_id", "parent_appointment_id")}


def new_id(col: str, k: int | str, multiplier: int) -> str:
    """Copy ``k``'s integer id (or reference to one): ``col * M + k``, so ids follow the base's time order."""
    return f"{col} * {multiplier} + {k}"


def select_list(table: sa.Table, k: int | str, *, shift_us: int | str, multiplier: int) -> str:
    """The copy-``k`` value of every column of ``table`` (base alias ``b``; joins per :func:`source`).

    ``k`` and ``shift_us`` are numbers or SQL expressions (``q.seq`` of a sequence join). ``k = 0``
    (the number) is the base row: only its integer ids move; its strings and times stay as they are
    (test ids are not hex, and an error row of a test session has no joined session to rewrite)."""
    ints = {c: new_id(f"b.{c}", k, multiplier) for c in ("id", *INT_REFS.get(table.name, ()))
            if isinstance(table.c[c].type, sa.Integer)}
    if table.name == "appointments":
        ints["metadata"] = _appointment_metadata(k, multiplier)
    if isinstance(k, int) and k == 0:
        return ", ".join(ints.get(c.name, f"b.`{c.name}`") for c in table.columns)
    call = hex_tail("s.call_id", k)
    over = {
        "retell_call_sessions": {"id": hex_tail("b.id", k), "call_id": hex_tail("b.call_id", k)},
        "retell_call_events": {},
        "retell_function_traces": {},
        "retell_transcript_segments": {"related_function_trace_id": hex_tail("b.related_function_trace_id", k)},
        "retell_error_log": {"error_message": f"REPLACE(b.error_message, s.call_id, {call})"},
        "calls": {"retell_call_id": hex_tail("b.retell_call_id", k), "call_id": hex_tail("b.call_id", k),
                  "raw": f"REPLACE(b.raw, b.retell_call_id, {hex_tail('b.retell_call_id', k)})"},
        "appointments": {"calcom_v2_booking_id": uid_tail("b.calcom_v2_booking_id", k)},
        "webhook_events": {"event_id": "{new}", "idempotency_key": "REPLACE(b.idempotency_key, b.event_id, {new})",
                           "payload": "REPLACE(b.payload, b.event_id, {new})"},
    }[table.name]
    if "call_session_id" in table.columns:
        over["call_session_id"] = hex_tail("b.call_session_id", k)
    if table.name == "webhook_events":
        new = f"IF(b.provider = 'retell', {hex_tail('b.event_id', k)}, {uid_tail('b.event_id', k)})"
        over = {c: v.replace("{new}", new) for c, v in over.items()}
    over.update(ints)
    out = []
    for column in table.columns:
        if column.name in over:
            out.append(over[column.name])
        elif _is_time(column):
            out.append(f"b.`{column.name}` + INTERVAL {shift_us} MICROSECOND")
        else:
            out.append(f"b.`{column.name}`")
    return ", ".join(out)


def _appointment_metadata(k: int | str, multiplier: int) -> str:
    """metadata: the local ``"call_id":N`` (plain or double-encoded JSON; base rows too), and in the
    copies the uid and the Retell id."""
    meta = "b.metadata"
    if not (isinstance(k, int) and k == 0):
        meta = f"REPLACE({meta}, b.calcom_v2_booking_id, {uid_tail('b.calcom_v2_booking_id', k)})"
        meta = f"IF(c.retell_call_id IS NULL, {meta}, REPLACE({meta}, c.retell_call_id, {hex_tail('c.retell_call_id', k)}))"
    for quote in ('"', '\\\\"'):  # {"call_id":7,...} and "{\"call_id\":7,...}"
        old = f"CONCAT('call_id{quote}:', b.call_id, ',')"
        new = f"CONCAT('call_id{quote}:', {new_id('b.call_id', k, multiplier)}, ',')"
        meta = f"IF(b.call_id IS NULL, {meta}, REPLACE({meta}, {old}, {new}))"
    return meta


def source(table: str, base: str, excluded_uids: list[str], test_sessions: list[str], join: str = "") -> str:
    """FROM/WHERE of the rows copied from ``table`` (see the module rule); ``base`` is the base database,
    ``join`` a table joined last (the copy numbers: ``seq_1_to_N q``).

    The error log joins the real sessions (its duplicate-key messages name the call id); the
    other per-call tables only leave out the few test sessions (a constant list: no join)."""
    uids = ", ".join(f"'{u}'" for u in excluded_uids) or "''"
    j = f" JOIN {join}" if join else ""
    if table == "retell_error_log":
        return f"`{base}`.`{table}` b JOIN `{base}`.wx_real_sessions s ON s.id = b.call_session_id{j}"
    if table in ("retell_call_events", "retell_function_traces", "retell_transcript_segments"):
        tests = ", ".join(f"'{u}'" for u in test_sessions) or "''"
        return f"`{base}`.`{table}` b{j} WHERE b.call_session_id NOT IN ({tests})"
    return {
        "retell_call_sessions": f"`{base}`.retell_call_sessions b{j} WHERE {_real('b.call_id')}",
        "calls": f"`{base}`.calls b{j} WHERE {_real('b.retell_call_id')}",
        "appointments": (f"`{base}`.appointments b LEFT JOIN `{base}`.calls c ON c.id = b.call_id{j} "
                         f"WHERE IF(b.call_id IS NULL, COALESCE(b.calcom_v2_booking_id, '') NOT IN ({uids}), "
                         f"COALESCE({_real('c.retell_call_id')}, 0))"),
        "webhook_events": (f"`{base}`.webhook_events b{j} WHERE IF(b.provider = 'retell', {_real('b.event_id')}, "
                           f"b.event_id NOT IN ({uids}))"),
    }[table]


# --------------------------------------------------------------------------- DDL
def index_clauses(table: sa.Table) -> tuple[list[str], list[str]]:
    """(plain, fulltext) ADD clauses: the schema's indexes and unique keys, plus the index InnoDB
    would create implicitly for each foreign key without one (named like the constraint), so the
    foreign keys added later are metadata-only."""
    plain, fulltext = [], []
    leading: list[tuple[str, ...]] = []
    for uc in (c for c in table.constraints if isinstance(c, sa.UniqueConstraint)):
        cols = tuple(c.name for c in uc.columns)
        plain.append(f"ADD UNIQUE INDEX `{uc.name}` ({', '.join(f'`{c}`' for c in cols)})")
        leading.append(cols)
    for ix in table.indexes:
        cols = tuple(c.name for c in ix.columns)
        clause = f"({', '.join(f'`{c}`' for c in cols)})"
        if ix.dialect_options["mysql"].get("prefix") == "FULLTEXT":
            fulltext.append(f"ADD FULLTEXT INDEX `{ix.name}` {clause}")
        else:
            plain.append(f"ADD {'UNIQUE ' if ix.unique else ''}INDEX `{ix.name}` {clause}")
            leading.append(cols)
    for fk in table.foreign_key_constraints:
        cols = tuple(c.name for c in fk.columns)
        if not any(have[:len(cols)] == cols for have in leading):
            plain.append(f"ADD INDEX `{fk.name}` ({', '.join(f'`{c}`' for c in cols)})")
            leading.append(cols)
    return plain, fulltext


# --------------------------------------------------------------------------- connections
def _connect(url: sa.URL, database: str | None = None) -> pymysql.Connection:
    conn = pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           password=url.password or "", database=database, autocommit=True, charset="utf8mb4",
                           local_infile=False)
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00', max_statement_time = 0, unique_checks = 0, "
                    "foreign_key_checks = 0, explicit_defaults_for_timestamp = 1")
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")  # no locks on the base rows read
    return conn


def _one(conn: pymysql.Connection, sql: str, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return None if row is None else row[0]


def _run(conn: pymysql.Connection, sql: str) -> int:
    with conn.cursor() as cur:
        return cur.execute(sql)


# --------------------------------------------------------------------------- the build
class _Clock:
    """Per-phase wall seconds (phases may overlap: the table tasks run two at a time)."""

    def __init__(self, log):
        self.phases: dict[str, float] = {}
        self.log = log

    def time(self, name: str, fn, *args):
        t = time.monotonic()
        out = fn(*args)
        self.phases[name] = round(time.monotonic() - t, 2)
        self.log(f"{name}: {self.phases[name]:.1f} s")
        return out


def build(url: str, *, base_scale: int = BASE_SCALE, copies: int = COPIES, seed: int = 7, step_ms: int = STEP_MS,
          fulltext: bool = True, workers: int = 2, tune_server: bool = False, log=None) -> dict:
    """Build the replicated world into ``url`` (an empty database or a demo world, replaced).

    Returns the build record: seconds (total and per phase), peak RSS of this process,
    row counts, the rule's parameters and any server settings changed."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    target = sa.make_url(url)
    if target.get_backend_name() not in ("mysql", "mariadb") or not target.database:
        raise WorldError(f"{url!r} is not a MariaDB URL with a database; use mysql+pymysql://root@127.0.0.1:3306/rca_bench")
    if not 0 <= copies <= MAX_COPIES or base_scale < 1:
        raise WorldError(f"copies={copies}, base_scale={base_scale}: need 0 <= copies <= {MAX_COPIES} (Cal.com uid "
                         "rewrite: a digit + 26 is the same letter in the other case, equal under the unique keys' "
                         "case-insensitive collation) and base_scale >= 1; raise --scale instead")
    if step_ms < 0 or step_ms % 1000:
        raise WorldError(f"step_ms={step_ms} must be whole seconds (TIMESTAMP(0) columns would not shift exactly)")
    started, clock = time.monotonic(), _Clock(log)
    db, base = target.database, f"{target.database}_world_base"
    admin = _connect(target)
    tuned, own_base = (_tune(admin, log) if tune_server else {}), False
    try:
        _check_target(admin, db)
        if _one(admin, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (base,)):
            _check_target(admin, base, ("wx_real_sessions",))  # an earlier scratch base may be replaced, nothing else
        _run(admin, f"CREATE DATABASE IF NOT EXISTS `{base}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        own_base = True
        _run(admin, f"DROP TABLE IF EXISTS `{base}`.wx_real_sessions")  # left by a killed build; demo.build refuses it
        truth = clock.time("base_world", _base_world, target.set(database=base), seed, base_scale)
        plan = clock.time("plan", _plan, admin, base, db)
        clock.time("bare_tables", _bare_tables, target)
        counts = clock.time("copy_and_index", _copy_all, target, base, db, plan, copies, step_ms, workers, fulltext, log)
        clock.time("foreign_keys", _foreign_keys, admin, db)
        _marker(admin, base, db, copies, step_ms)
    finally:
        if own_base:
            _run(admin, f"DROP DATABASE IF EXISTS `{base}`")  # scratch, also after a failure
        if tuned:
            _restore(admin, tuned, log)
        admin.close()
    seconds = round(time.monotonic() - started, 2)
    record = {
        "seconds": seconds,
        "phases_s": clock.phases, "rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "base_scale": base_scale, "copies": copies, "step_ms": step_ms, "seed": seed, "fulltext": fulltext,
        "workers": workers, "table_seconds": plan.get("table_seconds"), "id_rule": "id * M + k", "multiplier": copies + 1,
        "excluded_uids": plan["excluded_uids"],
        "copied_per_copy": plan["copied"], "row_counts": {**counts, "migrations": truth["row_counts"]["migrations"],
                                                           "rca_demo_world": 1},
        "base_build_seconds": truth["build_seconds"], "server_settings_changed": tuned,
        "built_at_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = record_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return record


def record_path(url: str) -> Path:
    """``data/world-<db>.json``: the last build record (read by ``benchmarks.run --reuse``)."""
    return Path(__file__).resolve().parent.parent / "data" / f"world-{sa.make_url(url).database}.json"


def _check_target(conn: pymysql.Connection, db: str, scratch: tuple[str, ...] = ()) -> None:
    """Only an empty database or a demo world (plus this builder's ``scratch`` tables) may be (re)built."""
    if _one(conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,)) == 0:
        raise WorldError(f"database {db} does not exist; create it: mariadb -uroot -h127.0.0.1 -e 'CREATE DATABASE {db}'")
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))
        present = {r[0] for r in cur.fetchall()}
    foreign = sorted(present - set(schema.DEMO_TABLES) - set(scratch))
    if present and ("rca_demo_world" not in present or foreign):
        raise WorldError(f"database {db} holds {', '.join((foreign or sorted(present))[:5])} and is not a demo world; "
                         "the world builder only replaces demo worlds: point --db at an empty database")
    why = _not_a_world(conn, db, present) if "rca_demo_world" in present else None
    if why:
        raise WorldError(f"database {db} is not a demo or benchmark world: {why}; the world builder only replaces "
                         "worlds it or rca demo-data built: point --db at an empty database")


_MARKER_GENERATOR = re.compile(rf"{re.escape(DEMO_GENERATOR)}( x benchmarks\.world/[12] copies=\d+ step_ms=\d+)?")  # /1: rebuilt over


def _not_a_world(conn: pymysql.Connection, db: str, present: set[str]) -> str | None:
    """Why ``db`` is not provably a world of ours (the marker row, demo-shaped session ids); None when it is.

    Why: an empty ``rca_demo_world`` table beside real rows proves nothing (demo/ownership.py says the same for
    ``demo-data --replace``). Copies keep the session ids' demo shape (only the last 4 hex digits change) but are
    shifted in time, so the demo's window check does not apply here."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT generator FROM `{db}`.rca_demo_world LIMIT 2")
        rows = cur.fetchall()
        if len(rows) != 1 or not _MARKER_GENERATOR.fullmatch(str(rows[0][0] or "")):
            return "its rca_demo_world table does not hold the one marker row a world builder writes"
        if "retell_call_sessions" in present:
            cur.execute(f"SELECT COUNT(*) FROM `{db}`.retell_call_sessions WHERE id IS NULL OR LENGTH(id) <> 36 "
                        "OR NOT id REGEXP %s", (f"(?-i){ownership.UUID_REGEXP}",))
            odd = cur.fetchone()[0]
            if odd:
                return f"{odd} retell_call_sessions row(s) do not have the demo's session id shape"
    return None


def _base_world(base_url: sa.URL, seed: int, scale: int) -> dict:
    from rca_toolkit import demo

    return demo.build(base_url.render_as_string(hide_password=False), seed=seed, scale=scale, replace=True, progress=False,
                      truth_path=Path("/tmp") / f"{base_url.database}.truth.json")


def _plan(conn: pymysql.Connection, base: str, db: str) -> dict:
    """The Cal.com uids of test calls and the test sessions (never copied), rows per table and copied per copy."""
    _run(conn, f"CREATE TABLE `{base}`.wx_real_sessions (id CHAR(36) NOT NULL PRIMARY KEY, call_id VARCHAR(255) NOT NULL) "
               f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci "
               f"SELECT id, call_id FROM `{base}`.retell_call_sessions WHERE {_real('call_id')}")
    with conn.cursor() as cur:
        cur.execute(f"SELECT DISTINCT function_name FROM `{base}`.retell_function_traces")
        booking = [n for (n,) in cur.fetchall() if functions.function_family(n) in functions.BOOKING_FAMILIES]
        marks = ", ".join(["%s"] * len(booking)) or "''"
        # A test call's booking reaches Cal.com like any other: its webhook (0.3-1.5 s after the
        # attempt, same company) and the appointment it led to stay in the base only.
        cur.execute(f"""
            SELECT w.event_id FROM `{base}`.retell_function_traces t
            JOIN `{base}`.retell_call_sessions s ON s.id = t.call_session_id
            JOIN `{base}`.webhook_events w ON w.provider = 'calcom' AND w.company_id = s.company_id
             AND w.created_at BETWEEN t.started_at - INTERVAL MICROSECOND(t.started_at) MICROSECOND
                                  AND t.started_at + INTERVAL 2 SECOND
            WHERE NOT ({_real('s.call_id')}) AND t.function_name IN ({marks})
            UNION SELECT a.calcom_v2_booking_id FROM `{base}`.appointments a JOIN `{base}`.calls c ON c.id = a.call_id
            WHERE NOT ({_real('c.retell_call_id')}) AND a.calcom_v2_booking_id IS NOT NULL""", booking)
        excluded = sorted({r[0] for r in cur.fetchall()})
    if any(not re.fullmatch(r"[0-9A-Za-z]+", u) for u in excluded):
        raise WorldError(f"unexpected Cal.com uid shape among {excluded[:3]}")
    with conn.cursor() as cur:
        cur.execute(f"SELECT id FROM `{base}`.retell_call_sessions WHERE NOT ({_real('call_id')})")
        tests = sorted(r[0] for r in cur.fetchall())
    if any(not re.fullmatch(r"[0-9a-f-]{36}", u) for u in tests):
        raise WorldError(f"unexpected session id shape among {tests[:3]}")
    copied = {name: int(_one(conn, f"SELECT COUNT(*) FROM {source(name, base, excluded, tests)}")) for name in TABLE_ORDER}
    base_rows = {name: int(_one(conn, f"SELECT COUNT(*) FROM `{base}`.`{name}`")) for name in TABLE_ORDER}
    return {"excluded_uids": excluded, "test_sessions": tests, "copied": copied, "base_rows": base_rows}


def _bare_tables(target: sa.URL) -> None:
    """Drop the demo tables of the target and create them with columns and primary keys only."""
    from rca_toolkit.demo import load as demo_load
    from rca_toolkit.sources.db import make_engine

    engine = make_engine(target.render_as_string(hide_password=False), writable=True)
    try:
        demo_load.create_schema(engine, True, bare=True)
    finally:
        engine.dispose()


def _copy_all(target: sa.URL, base: str, db: str, plan: dict, copies: int, step_ms: int, workers: int,
              fulltext: bool, log) -> dict:
    """Copy and index every table, ``workers`` tables at a time (one connection each); with
    ``fulltext`` a table's first FULLTEXT index joins its other indexes in the one ``ALTER``
    (InnoDB allows one FULLTEXT index per in-place ``ALTER``: any further one follows alone)."""

    base_rows, multiplier, shift = plan["base_rows"], copies + 1, f"q.seq * {step_ms * 1000}"

    def task(name: str) -> tuple[str, int, float, float]:
        conn = _connect(target, db)
        try:
            table = schema.metadata.tables[name]
            t0 = time.monotonic()
            expected = base_rows[name] + copies * plan["copied"][name]
            if name == "retell_call_sessions":
                # uuid keys: a copy's key sorts next to its base row, so copy-by-copy inserts would
                # split pages all over the table; one statement sorted by the new key appends instead.
                cols = select_list(table, "q.seq", shift_us=shift, multiplier=multiplier)
                rows = _run(conn, f"INSERT INTO `{db}`.`{name}` SELECT {cols} FROM `{base}`.`{name}` b "
                                  f"JOIN seq_0_to_{copies} q WHERE q.seq = 0 OR {_real('b.call_id')} ORDER BY 1")
            else:  # integer keys: every base row (k = 0) and the copies (k >= 1) interleave by the new
                # id b * M + k, so one statement sorted by it appends (copy by copy would split pages)
                sql = f"SELECT {select_list(table, 0, shift_us=0, multiplier=multiplier)} FROM `{base}`.`{name}` b"
                if copies:
                    cols = select_list(table, "q.seq", shift_us=shift, multiplier=multiplier)
                    frm = source(name, base, plan["excluded_uids"], plan["test_sessions"], join=f"seq_1_to_{copies} q")
                    sql += f" UNION ALL SELECT STRAIGHT_JOIN {cols} FROM {frm}"
                rows = _run(conn, f"INSERT INTO `{db}`.`{name}` {sql} ORDER BY 1")
            if rows != expected:
                raise WorldError(f"{name}: stored {rows} rows, expected {expected} ({copies} copies of {plan['copied'][name]})")
            t1 = time.monotonic()
            plain, full = index_clauses(table)
            full = full if fulltext else []
            for clauses in ([*plain, *full[:1]], *([c] for c in full[1:])):
                try:
                    if clauses:
                        _run(conn, f"ALTER TABLE `{db}`.`{name}` {', '.join(clauses)}, ALGORITHM=INPLACE")
                except pymysql.err.IntegrityError as err:  # a copy rule that fails to keep copies apart
                    raise WorldError(f"{name}: two copies collide on a unique key ({err.args[-1]}); "
                                     "the copy rule is broken for this base: report it with the seed and scale") from err
            t2 = time.monotonic()
            log(f"  {name}: {rows:,} rows, copy {t1 - t0:.1f} s, indexes{' + FULLTEXT' if full else ''} {t2 - t1:.1f} s")
            return name, rows, round(t1 - t0, 2), round(t2 - t1, 2)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = list(pool.map(task, TABLE_ORDER))
    conn = _connect(target, db)
    try:
        _run(conn, f"INSERT INTO `{db}`.migrations SELECT * FROM `{base}`.migrations ORDER BY id")
    finally:
        conn.close()
    plan["table_seconds"] = {n: {"copy_s": c, "index_s": i} for n, _, c, i in done}
    return {n: r for n, r, _, _ in done}


def _foreign_keys(conn: pymysql.Connection, db: str) -> None:
    """Foreign keys (not re-validated: foreign_key_checks=0; their indexes already exist)."""
    quote = lambda name: f"`{name}`"  # noqa: E731
    for table in schema.metadata.sorted_tables:
        for stmt in F.foreign_key_statements(table, quote):
            _run(conn, stmt.replace("ALTER TABLE `", f"ALTER TABLE `{db}`.`", 1).replace("REFERENCES `", f"REFERENCES `{db}`.`"))


def _marker(conn: pymysql.Connection, base: str, db: str, copies: int, step_ms: int) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT seed, scale, generator, note FROM `{base}`.rca_demo_world WHERE id = 1")
        seed, scale, generator, note = cur.fetchone()
        note = f"{note.split(' - ')[0]} - demo world (scale {scale}) replicated {copies}x by {GENERATOR}, not production"
        cur.execute(f"INSERT INTO `{db}`.rca_demo_world (id, seed, scale, generator, note, built_at_utc) "
                    "VALUES (1, %s, %s, %s, %s, %s)",
                    (seed, scale, f"{generator} x {GENERATOR} copies={copies} step_ms={step_ms}", note[:255],
                     datetime.now(timezone.utc).isoformat(timespec="seconds")))


def marker(url: str) -> dict | None:
    """``{seed, scale, copies, step_ms, current}`` of the world in ``url`` (copies 0 for a plain demo world; ``current``:
    built by this builder's id rule, not an older one), None if none."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            seed, scale, generator = conn.execute(sa.text("SELECT seed, scale, generator FROM rca_demo_world")).one()
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    found = dict(re.findall(r"(copies|step_ms)=(\d+)", generator))
    return {"seed": int(seed), "scale": int(scale), "copies": int(found.get("copies", 0)),
            "step_ms": int(found.get("step_ms", 0)), "current": GENERATOR in generator or "copies=" not in generator}


# --------------------------------------------------------------------------- server settings (opt-in)
def _tune(conn: pymysql.Connection, log) -> dict:
    """--tune-server: raise the InnoDB settings for the build; returns {name: [before, set]}."""
    changed = {}
    for name, value in SETTINGS_TUNED.items():
        before = int(_one(conn, f"SELECT @@GLOBAL.{name}"))
        if before < value:
            _run(conn, f"SET GLOBAL {name} = {value}")
            changed[name] = [before, int(_one(conn, f"SELECT @@GLOBAL.{name}"))]
    log(f"server settings raised for the build (restored afterwards): {changed}")
    return changed


def _restore(conn: pymysql.Connection, changed: dict, log) -> None:
    for name, (before, _) in changed.items():
        _run(conn, f"SET GLOBAL {name} = {before}")
    log(f"server settings restored: { {n: v[0] for n, v in changed.items()} }")

