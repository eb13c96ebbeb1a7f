"""Declared requirements: the tables and columns an analysis or check reads, checked before it runs.

Why: a column missing from the live schema used to surface as a PASS or a quietly wrong number
(an "optional" column read as NULL: no Cal.com uid, so every appointment looked orphaned) or as
a driver error from deep inside a statement. Now every entry point declares what it reads as
:class:`Requirement` values (``REQUIRES`` near the top of its module) and calls :func:`check`
on the live schema before its first statement:

* a missing table or required column raises one ``SchemaError`` naming the table, the column
  and what needed it ("table 'calls' has no column 'session_outcome', which ... needs");
* an optional column is allowed to be absent; :func:`check` returns what is absent and the
  caller writes it on its result (``attrs["missing_columns"]``, a note, check evidence), with
  the requirement's ``if_absent`` saying what was left out (:func:`absent_notes`).

A requirement whose ``columns`` are empty makes its table optional too: an absent table then
counts as all of its optional columns absent. The live schema is read once per engine
(:func:`schema_of`, the cache the loaders share).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import sqlalchemy as sa

from rca_toolkit.errors import SchemaError
from rca_toolkit.sources.db import TableInfo, introspect

__all__ = ["Requirement", "absent_notes", "check", "flatten", "pin_schema", "required_columns", "schema_of"]

HINT = ("the schema differs from the data contract in rca_toolkit/sources/schema.py: point --db at the production "
        "schema or a demo database, or run the migration that adds it")
_SCHEMAS: "weakref.WeakKeyDictionary[sa.Engine, dict[str, TableInfo]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Requirement:
    """``table`` must have ``columns`` (and at least one of ``one_of``) because ``why`` reads them.

    ``why`` is a noun phrase that completes "..., which <why> needs". ``optional`` columns are
    read when present; ``if_absent`` says what their absence leaves out of the result.
    """

    table: str
    columns: tuple[str, ...]
    why: str
    optional: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    if_absent: str = ""

    def __post_init__(self) -> None:
        for name in ("columns", "optional", "one_of"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))

    @property
    def table_required(self) -> bool:
        return bool(self.columns or self.one_of)


def schema_of(engine: sa.Engine) -> dict[str, TableInfo]:
    """The live schema of ``engine``, read once per engine (``rca_toolkit.sources.db.introspect``)."""
    if engine not in _SCHEMAS:
        _SCHEMAS[engine] = introspect(engine)
    return _SCHEMAS[engine]


def pin_schema(engine: sa.Engine, schema: dict[str, TableInfo]) -> None:
    """Make :func:`schema_of` answer ``schema`` for ``engine`` instead of reading the catalogue."""
    _SCHEMAS[engine] = schema


def flatten(*groups) -> tuple[Requirement, ...]:
    """Requirements from any nesting of tuples/lists of them (declarations compose by concatenation)."""
    out: list[Requirement] = []
    for item in groups:
        if isinstance(item, Requirement):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(flatten(*item.values()))
        else:
            out.extend(flatten(*item))
    return tuple(out)


def _failures(schema: dict[str, TableInfo], requirements: tuple[Requirement, ...]) -> list[str]:
    failures: list[str] = []
    seen: set[tuple[str, str]] = set()
    for req in requirements:
        if req.table not in schema:
            if req.table_required and (req.table, "") not in seen:
                seen.add((req.table, ""))
                failures.append(f"table {req.table!r} is missing, which {req.why} needs")
            continue
        have = schema[req.table].columns
        for column in req.columns:
            if column not in have and (req.table, column) not in seen:
                seen.add((req.table, column))
                failures.append(f"table {req.table!r} has no column {column!r}, which {req.why} needs")
        if req.one_of and not any(c in have for c in req.one_of) and (req.table, "|".join(req.one_of)) not in seen:
            seen.add((req.table, "|".join(req.one_of)))
            names = " nor ".join(repr(c) for c in req.one_of)
            failures.append(f"table {req.table!r} has neither {names}, which {req.why} needs")
    return failures


def check(engine_or_schema, *requirements) -> dict[str, list[str]]:
    """Raise ``SchemaError`` for every missing table or required column; return the absent optional ones.

    ``engine_or_schema``: an Engine (its schema is read once and cached) or an introspected schema
    (``{table: TableInfo}``). ``requirements``: Requirement values or tuples of them. The result maps
    a table to its absent optional columns (``{}`` when nothing is absent), in declaration order.
    """
    schema = engine_or_schema if isinstance(engine_or_schema, dict) else schema_of(engine_or_schema)
    reqs = flatten(*requirements)
    failures = _failures(schema, reqs)
    if failures:
        raise SchemaError("; ".join(failures), hint=HINT)
    required = {(r.table, c) for r in reqs for c in r.columns}
    absent: dict[str, list[str]] = {}
    for req in reqs:
        have = schema[req.table].columns if req.table in schema else {}
        for column in req.optional:
            if column not in have and (req.table, column) not in required and column not in absent.get(req.table, []):
                absent.setdefault(req.table, []).append(column)
    return absent


def absent_notes(absent: dict[str, list[str]], *requirements) -> list[str]:
    """One line per absent optional column: ``table.column absent: <if_absent of its requirement>``."""
    reqs = flatten(*requirements)
    notes = []
    for table, columns in absent.items():
        for column in columns:
            effect = next((r.if_absent for r in reqs if r.table == table and column in r.optional and r.if_absent), "")
            notes.append(f"{table}.{column} absent: {effect or 'left out, not assumed'}")
    return notes


def required_columns(*requirements) -> list[tuple[str, str, str]]:
    """``(table, column, why)`` of every required column, first declaration wins (for tests and docs)."""
    out: dict[tuple[str, str], str] = {}
    for req in flatten(*requirements):
        for column in req.columns:
            out.setdefault((req.table, column), req.why)
    return [(t, c, why) for (t, c), why in out.items()]
