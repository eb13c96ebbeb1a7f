"""Proof that a database holds a demo world, before ``demo-data --replace`` drops anything.

Why: dropping tables is the one destructive thing the toolkit does to a database, and a table
named ``rca_demo_world`` proves nothing (anyone can create one, empty, beside real data). The
proof has three parts, each checked by SQL so it stays cheap at any scale:

1. the marker row exactly as the builder writes it (one row, its ``generator`` and ``note``);
2. no table the demo does not create (a subset is fine: a build killed half-way);
3. demo-shaped rows in the tables that hold calls. Every ``retell_call_sessions`` row has the
   builder's id shape, a version-4 uuid whose variant nibble is ``a`` (a real uuid4 has that with
   probability 1/4 per row), a call id of the Retell shape or one of the demo's fixed test ids, and a
   start inside the demo window (2025-09-22 .. 2025-11-30 Berlin, a day of slack each side); every
   ``calls`` row has its session and lies in the window. This is a fingerprint, not a signature:
   real rows pass only when every one of them looks generated (ten real sessions all with variant
   ``a`` and all inside the window: about one in a million). Other tables are covered by 1 and 2.
"""

from __future__ import annotations

import sqlalchemy as sa

from rca_toolkit.demo import spec as S
from rca_toolkit.rules.call_ids import real_call_id_sql
from rca_toolkit.sources import schema

MARKER_TABLE = "rca_demo_world"
WINDOW_SQL = ("2025-09-21 00:00:00", "2025-12-02 00:00:00")  # naive Berlin (SQLite) or UTC (MariaDB): both fit
_HEX = "[0-9a-f]"
UUID_GLOB = f"{_HEX * 8}-{_HEX * 4}-4{_HEX * 3}-a{_HEX * 3}-{_HEX * 12}"
UUID_REGEXP = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$"


def _demo_session_id_sql(col: str, engine: sa.Engine) -> str:
    if engine.dialect.name == "sqlite":
        return f"({col} GLOB '{UUID_GLOB}')"
    return f"({col} REGEXP '(?-i){UUID_REGEXP}' AND LENGTH({col}) = 36)"


def _demo_call_id_sql(col: str, engine: sa.Engine) -> str:
    fixed = ", ".join(f"'{cid}'" for cid in (*S.TEST_IDS, S.TYPO_ID))  # constants of ours, no user text
    return f"({real_call_id_sql(col, engine)} OR {col} IN ({fixed}))"


def _count(conn: sa.Connection, sql: str) -> int:
    lo, hi = WINDOW_SQL
    return int(conn.execute(sa.text(sql), {"lo": lo, "hi": hi}).scalar_one())


def not_a_demo_world(engine: sa.Engine, present: set[str]) -> str | None:
    """Why the database with tables ``present`` is not provably a demo world; None when it is."""
    foreign = sorted(present - set(schema.DEMO_TABLES))
    if foreign:
        listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        return f"it has {len(foreign)} table(s) the demo does not create ({listed})"
    if MARKER_TABLE not in present:
        return f"it has no marker table {MARKER_TABLE}"
    with engine.connect() as conn:
        marker = conn.execute(sa.text(f"SELECT generator, note FROM {MARKER_TABLE}")).fetchmany(2)
        if not marker:
            return f"its {MARKER_TABLE} table is empty (the demo builder writes one marker row first)"
        if len(marker) > 1 or tuple(marker[0]) != (S.GENERATOR, S.NOTE):
            return f"its {MARKER_TABLE} table does not hold the one marker row the demo builder writes"
        if "retell_call_sessions" in present:
            odd = _count(conn, "SELECT COUNT(*) FROM retell_call_sessions WHERE id IS NULL OR call_id IS NULL "
                               f"OR started_at IS NULL OR NOT {_demo_session_id_sql('id', engine)} "
                               f"OR NOT {_demo_call_id_sql('call_id', engine)} "
                               "OR started_at < :lo OR started_at >= :hi")
            if odd:
                return f"{odd} retell_call_sessions row(s) do not have the demo's shape (ids, window)"
        if "calls" in present:
            orphan = "NOT EXISTS (SELECT 1 FROM retell_call_sessions s WHERE s.call_id = c.retell_call_id)" \
                if "retell_call_sessions" in present else "1 = 1"
            odd = _count(conn, "SELECT COUNT(*) FROM calls c WHERE c.retell_call_id IS NULL OR c.created_at IS NULL "
                               f"OR c.created_at < :lo OR c.created_at >= :hi OR {orphan}")
            if odd:
                return f"{odd} calls row(s) do not have the demo's shape (no demo session, or outside the window)"
    return None


__all__ = ["MARKER_TABLE", "not_a_demo_world"]
