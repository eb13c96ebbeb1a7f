"""Declared requirements: the tables and columns an analysis or check reads, checked before it runs.

Why: a column missing from the live schema used to surface as a PASS or a quietly wrong number
(an "optional" column read as NULL: no Cal.com uid, so every appointment looked orphaned) or as
a driver error from deep inside a statement. Now every entry point declares what it reads as
:class:`Requirement` values (``REQUIRES`` near the top of its module) and calls :func:`check`
on the live schema before its first statement:

* missing tables and required columns raise one ``SchemaError``, one line grouped by table and
  capped near :data:`LIMIT` characters ("table 'calls' lacks session_outcome, status (needed by
  RB040's outcome check); tables missing: appointments (needed by ...)", "... and N more");
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

    ``why`` is a noun phrase that completes "(needed by <why>)". ``optional`` columns are
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


LIMIT = 300  # characters of the SchemaError message: one readable line, however much is missing
_WHYS_LIMIT = 120


@dataclass
class _Missing:
    """What one table lacks (``table`` is None for the list of missing tables) and who needs it."""

    table: str | None
    items: list[str]
    whys: list[str]

    def render(self, shown: int | None = None, more: int = 0) -> str:
        items = self.items if shown is None else self.items[:shown]
        listed = ", ".join(items) + (f" ... and {more} more" if more else "")
        head = "tables missing: " if self.table is None else f"table {self.table!r} lacks "
        return f"{head}{listed} (needed by {_whys(self.whys)})"


def _whys(whys: list[str]) -> str:
    """The whys, deduplicated, as many as fit ``_WHYS_LIMIT`` (at least one), then "and N more"."""
    shown = whys[:1]
    for why in whys[1:]:
        if len(", ".join([*shown, why])) > _WHYS_LIMIT:
            break
        shown.append(why)
    rest = len(whys) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest else "")


def _missing(schema: dict[str, TableInfo], requirements: tuple[Requirement, ...]) -> list[_Missing]:
    """Per table (in declaration order) its missing columns, then the missing tables, each with its whys."""
    groups: dict[str | None, _Missing] = {}
    for req in requirements:
        if req.table not in schema:
            if req.table_required:
                group = groups.setdefault(None, _Missing(None, [], []))
                lacking = [req.table]
            else:
                continue
        else:
            have = schema[req.table].columns
            lacking = [c for c in req.columns if c not in have]
            if req.one_of and not any(c in have for c in req.one_of):
                lacking.append("one of " + "/".join(req.one_of))
            if not lacking:
                continue
            group = groups.setdefault(req.table, _Missing(req.table, [], []))
        group.items += [item for item in lacking if item not in group.items]
        if req.why not in group.whys:
            group.whys.append(req.why)
    tables = groups.pop(None, None)
    return [*groups.values(), *([tables] if tables else [])]


def _message(groups: list[_Missing]) -> str:
    """One line: every group in full when it fits :data:`LIMIT`, else the items that fit and "... and N more"."""
    full = "; ".join(g.render() for g in groups)
    if len(full) <= LIMIT:
        return full
    total = sum(len(g.items) for g in groups)
    done: list[str] = []
    shown_before = 0
    for group in groups:
        for shown in range(1, len(group.items) + 1):
            more = total - shown_before - shown
            line = "; ".join([*done, group.render(shown, more)])
            if len(line) > LIMIT and (shown > 1 or done):  # at least one item is named
                if shown > 1:
                    return "; ".join([*done, group.render(shown - 1, more + 1)])
                return "; ".join(done) + f" ... and {more + 1} more"
        done.append(group.render())
        shown_before += len(group.items)
    return "; ".join(done)


def check(engine_or_schema, *requirements) -> dict[str, list[str]]:
    """Raise ``SchemaError`` for every missing table or required column; return the absent optional ones.

    ``engine_or_schema``: an Engine (its schema is read once and cached) or an introspected schema
    (``{table: TableInfo}``). ``requirements``: Requirement values or tuples of them. The result maps
    a table to its absent optional columns (``{}`` when nothing is absent), in declaration order.
    """
    schema = engine_or_schema if isinstance(engine_or_schema, dict) else schema_of(engine_or_schema)
    reqs = flatten(*requirements)
    missing = _missing(schema, reqs)
    if missing:
        raise SchemaError(_message(missing), hint=HINT)
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
