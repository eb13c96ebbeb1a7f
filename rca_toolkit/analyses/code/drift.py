"""Code-vs-schema drift: columns a Laravel app writes that the live table does not have.

The phantom-column incident (incidents.md §A, data-contract P9): the app wrote
``created_by``/``booking_source``/``booked_by_user_id`` into ``appointments``, which no
migration created. What happens depends on the call shape, not only on the column:

* ``forceFill``, property assignment + ``save``, ``forceCreate``, ``DB::table()->insert/update``
  and Eloquent builder ``->update()`` reach SQL: **raises 1054 at runtime**;
* ``fill``/``create``/``update``/``updateOrCreate``/``firstOrCreate``/``new Model([...])`` on a
  model with a non-empty ``$guarded`` check each key with ``isGuardableColumn()`` and
  **silently drop** unknown keys; with ``$fillable`` a key not listed is dropped, a listed
  one reaches SQL (raises); ``$guarded = []`` or ``Model::unguard()`` lets every key through.
* The lookup array of ``updateOrCreate``/``firstOrCreate`` becomes a WHERE clause (raises).

``scan_code`` reads the source (no I/O beyond the files) and ``find_drift`` compares with a
schema from ``rca_toolkit.sources.db.introspect``. The analysis is static: writes through dynamic
keys, relations (``$customer->appointments()->create``) or untyped receivers are listed as
not checked, never assumed clean.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from rca_toolkit.sources import db as dbmod, php_scan
from rca_toolkit.config import progress
from rca_toolkit.sources.db import TableInfo
from rca_toolkit.errors import InputFormatError, NotFound, SchemaError
from rca_toolkit.analyses.markdown import md_items, md_table, md_text
from rca_toolkit.analyses.tables import show as show_table

RAISES = "raises 1054 at runtime"
DROPPED = "silently dropped"
MASS_ASSIGNMENT = "raises MassAssignmentException"
UNKNOWN = "unknown (model class not in the scanned code)"
MISSING_TABLE = "raises 1146 at runtime (table missing)"
REQUIRED_EFFECT = "raises 1364 in strict mode (NOT NULL without default)"
DEFAULT_EXCLUDE = php_scan.DEFAULT_EXCLUDE
WRITE_COLUMNS = ["table", "column", "file", "line", "shape", "model", "guard", "effect", "reaches_sql",
                 "site", "call_line", "note", "group"]
FINDING_KEYS = ["table", "column", "file", "line", "shape", "effect"]

_UNCOUNTABLE = {"data", "information", "equipment", "metadata", "feedback", "sheep", "series", "news", "audio"}
_IRREGULAR = {"person": "people", "child": "children", "man": "men", "woman": "women", "mouse": "mice"}


def pluralize(word: str) -> str:
    """English plural of a lower-case word, as Laravel's ``Str::plural`` does for common nouns."""
    if word in _UNCOUNTABLE:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    return word + "s"


def table_for_class(name: str) -> str:
    """Laravel's default table: snake case, last word plural (``WebhookEvent`` -> ``webhook_events``)."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    parts = snake.split("_")
    parts[-1] = pluralize(parts[-1])
    return "_".join(parts)


def _model_index(classes: dict[str, php_scan.ClassInfo]) -> dict[str, php_scan.ClassInfo]:
    """Classes that extend an Eloquent base (directly or through another model), guard inherited."""
    models: dict[str, php_scan.ClassInfo] = {}
    changed = True
    while changed:
        changed = False
        for name, info in classes.items():
            if name in models or info.parent is None:
                continue
            if info.parent in php_scan.MODEL_BASES and info.parent not in classes or info.parent in models:
                parent = models.get(info.parent)
                if parent is not None:
                    info.guarded = info.guarded if info.guarded is not None else parent.guarded
                    info.fillable = info.fillable if info.fillable is not None else parent.fillable
                    info.table = info.table or parent.table
                    info.attribute_defaults = info.attribute_defaults or parent.attribute_defaults
                models[name] = info
                changed = True
    return models


def guard_of(model: php_scan.ClassInfo | None, unguarded: bool = False) -> str:
    """guarded | fillable | none | all | unknown (how mass assignment treats unknown keys)."""
    if model is None:
        return "unknown"
    if unguarded:
        return "none"
    if model.fillable:
        return "fillable"
    if model.guarded is None or model.guarded == ["*"]:
        return "all"
    return "guarded" if model.guarded else "none"


def effect_of(shape: str, guard: str, column: str, model: php_scan.ClassInfo | None, note: str = "") -> str:
    """What writing ``column`` does when the table lacks it."""
    if shape in php_scan.RAISING_SHAPES or note.startswith("lookup"):
        return RAISES
    if guard == "unknown":
        return UNKNOWN
    if guard == "none":
        return RAISES
    if guard == "all":
        return MASS_ASSIGNMENT
    if guard == "fillable":
        return RAISES if column in (model.fillable or []) else DROPPED
    return DROPPED


def reaches_sql(shape: str, guard: str, column: str, model: php_scan.ClassInfo | None, note: str = "") -> bool:
    """Whether the key reaches the INSERT/UPDATE when the column exists (for NOT NULL checks)."""
    if shape in php_scan.RAISING_SHAPES or note.startswith("lookup") or guard in ("none", "unknown"):
        return True
    if guard == "all":
        return False
    if guard == "fillable":
        return column in (model.fillable or [])
    return column.lower() not in {g.lower() for g in model.guarded or []}


def scan_code(path, *, exclude=DEFAULT_EXCLUDE) -> pd.DataFrame:
    """Every column write found in the PHP files under ``path``, one row per (site, key).

    Columns: table, column, file (relative to ``path``), line (of the key), shape, model,
    guard, effect (if the column is absent), site (Class::method), call_line, note, group.
    ``attrs``: ``models`` (class -> table/guard), ``create_groups``, ``unresolved``,
    ``parse_errors``, ``files`` (count) and ``root``.
    """
    root = Path(path)
    if not root.exists():
        raise NotFound(f"code path {root} does not exist", hint="give the Laravel application's root folder")
    files = php_scan.php_files(root, exclude)
    if not files:
        raise NotFound(f"no PHP files under {root}", hint="give the Laravel application's root folder")
    base = root if root.is_dir() else root.parent
    parsed, unreadable, with_code = [], [], 0
    classes: dict[str, php_scan.ClassInfo] = {}
    for file in files:
        rel = file.relative_to(base).as_posix()
        data = file.read_bytes()
        if root.is_file():
            php_scan.check_php_file(root, data)  # one file given as PHP must be PHP
        if php_scan.not_php(data):
            unreadable.append(rel)  # binary or not UTF-8: nothing to parse, listed as a parse error
            continue
        with_code += php_scan.has_php_code(data)
        tree = php_scan.parse(data)
        parsed.append((rel, tree))
        for info in php_scan.class_infos(tree, rel):
            classes.setdefault(info.name, info)
    if not with_code:
        raise InputFormatError(f"no PHP code under {root}: none of its {len(files)} .php files opens with <?php",
                               hint="give the Laravel application's root folder")
    models = _model_index(classes)
    tables = {name: info.table or table_for_class(name) for name, info in models.items()}

    rows, groups, unresolved, parse_errors = [], [], [], list(unreadable)
    offset = 0
    for rel, tree in progress(parsed, "scanning PHP", unit="file", at_least=500):
        scan = php_scan.FileWalker(tree, rel, set(models)).run(group_offset=offset)
        offset += len(scan.groups)
        if scan.parse_error:
            parse_errors.append(rel)
        unresolved += scan.unresolved
        for group in scan.groups:
            groups.append({"id": group.id, "table": group.table or tables.get(group.model), "model": group.model,
                           "file": rel, "call_line": group.call_line, "shape": group.shape, "site": group.site,
                           "saved": group.saved, "complete": group.complete})
        for w in scan.writes:
            info = models.get(w.model) if w.model else None
            guard = guard_of(info, w.unguarded) if w.model else "none"
            rows.append({"table": w.table or tables.get(w.model), "column": w.column, "file": rel, "line": w.line,
                         "shape": w.shape, "model": w.model, "guard": guard,
                         "effect": effect_of(w.shape, guard, w.column, info, w.note),
                         "reaches_sql": reaches_sql(w.shape, guard, w.column, info, w.note), "site": w.site,
                         "call_line": w.call_line, "note": w.note, "group": w.group})
    frame = pd.DataFrame(rows, columns=WRITE_COLUMNS)
    frame["line"] = frame["line"].astype("int64")
    frame["call_line"] = frame["call_line"].astype("int64")
    frame.attrs = {
        "root": str(root), "files": len(files), "parse_errors": parse_errors, "unresolved": unresolved,
        "create_groups": groups,
        "models": {name: {"table": tables[name], "guard": guard_of(info), "file": info.file,
                          "fillable": info.fillable, "guarded": info.guarded,
                          "attribute_defaults": info.attribute_defaults, "timestamps": info.timestamps,
                          "may_set_columns": info.may_set_columns}
                   for name, info in sorted(models.items())},
    }
    return frame


@dataclass
class DriftReport:
    """Phantom columns (written in code, absent from the schema) and unmet NOT NULL columns."""

    phantom_columns: pd.DataFrame
    missing_required: pd.DataFrame
    missing_tables: pd.DataFrame
    checked_tables: list[str]
    writes_checked: int
    notes: list[str] = field(default_factory=list)

    @property
    def raises_at_runtime(self) -> bool:
        """True when some finding fails at runtime (the CLI's exit code 1)."""
        raising = self.phantom_columns["effect"].str.startswith("raises").any() if len(self.phantom_columns) else False
        return bool(raising or len(self.missing_required) or len(self.missing_tables))

    def findings(self) -> set[tuple]:
        """The phantom findings as (table, column, file, line, shape, effect) tuples."""
        return set(self.phantom_columns[FINDING_KEYS].itertuples(index=False, name=None))

    def by_column(self) -> pd.DataFrame:
        """One row per (table, column): number of sites and whether any raises."""
        if self.phantom_columns.empty:
            return pd.DataFrame(columns=["table", "column", "sites", "raises", "dropped"])
        pc = self.phantom_columns
        return (pc.assign(raises=pc["effect"].str.startswith("raises"), dropped=pc["effect"] == DROPPED)
                .groupby(["table", "column"], as_index=False)
                .agg(sites=("file", "size"), raises=("raises", "sum"), dropped=("dropped", "sum")))

    def to_dict(self) -> dict:
        def records(frame, cols):
            return [{k: (int(v) if k in ("line", "call_line") else v) for k, v in row.items()}
                    for row in frame[cols].to_dict("records")]
        return {
            "phantom_columns": records(self.phantom_columns, FINDING_KEYS + ["model", "guard", "site", "call_line", "note"]),
            "missing_required": records(self.missing_required, list(self.missing_required.columns)),
            "missing_tables": records(self.missing_tables, list(self.missing_tables.columns)),
            "checked_tables": list(self.checked_tables),
            "writes_checked": int(self.writes_checked),
            "raises_at_runtime": self.raises_at_runtime,
            "notes": list(self.notes),
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, **kwargs)

    def to_text(self) -> str:
        lines = [f"checked tables: {', '.join(self.checked_tables) or '(none)'}; {self.writes_checked} column writes"]
        if self.phantom_columns.empty:
            lines.append("phantom columns: none")
        else:
            lines.append(f"phantom columns: {len(self.phantom_columns)} writes of "
                         f"{self.phantom_columns[['table', 'column']].drop_duplicates().shape[0]} columns")
            for r in self.phantom_columns.itertuples(index=False):
                lines.append(f"  {r.table}.{r.column}  {r.file}:{r.line}  {r.shape}  {r.site}  -> {r.effect}")
        for r in self.missing_required.itertuples(index=False):
            lines.append(f"missing required {r.table}.{r.column}  {r.file}:{r.line}  {r.shape}  {r.site}  -> {r.effect}")
        for r in self.missing_tables.itertuples(index=False):
            lines.append(f"missing table {r.table}  {r.file}:{r.line}  {r.shape}  -> {r.effect}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        checked = md_text(", ".join(self.checked_tables) or "(none)")
        out = [f"**Checked tables:** {checked} ({self.writes_checked} column writes)", ""]
        if self.phantom_columns.empty:
            out.append("No phantom columns: every written column exists.")
        else:
            out.append(md_table(self.phantom_columns[FINDING_KEYS + ["site"]]))
        if len(self.missing_required):
            out += ["", "**Required columns never set:**", "", md_table(self.missing_required)]
        if len(self.missing_tables):
            out += ["", "**Tables missing from the schema:**", "", md_table(self.missing_tables)]
        out += [""] + md_items(self.notes)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        parts = [f"<p><b>Checked tables:</b> {html.escape(', '.join(self.checked_tables) or '(none)')} "
                 f"({self.writes_checked} column writes)</p>"]
        if self.phantom_columns.empty:
            parts.append("<p>No phantom columns: every written column exists.</p>")
        else:
            parts.append("<h4>Phantom columns</h4>" + show_table(self.phantom_columns[FINDING_KEYS + ["site"]]).to_html())
        if len(self.missing_required):
            parts.append("<h4>Required columns never set</h4>" + show_table(self.missing_required).to_html())
        if len(self.missing_tables):
            parts.append("<h4>Tables missing from the schema</h4>" + show_table(self.missing_tables).to_html())
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(parts)


def _lower(schema: dict[str, TableInfo]) -> dict[str, set[str]]:
    return {name: {c.lower() for c in info.columns} for name, info in schema.items()}


def find_drift(writes: pd.DataFrame, schema: dict[str, TableInfo], tables: list[str] | None = None) -> DriftReport:
    """Compare scanned writes with a live schema; ``tables`` limits the check (each must exist)."""
    if tables:
        absent = [t for t in tables if t not in schema]
        if absent:
            raise SchemaError(f"table(s) {', '.join(absent)} not in the schema",
                              hint=f"known tables: {', '.join(sorted(schema)) or '(none)'}")
    written = writes[writes["table"].notna()]
    if tables:
        written = written[written["table"].isin(tables)]
    columns = _lower(schema)
    in_schema = written["table"].isin(list(schema))
    checked = sorted(written.loc[in_schema, "table"].unique())
    present = written.loc[in_schema]
    is_phantom = pd.Series([col.lower() not in columns[tab] for tab, col in zip(present["table"], present["column"])],
                           index=present.index, dtype=bool)
    phantom = (present[is_phantom].sort_values(["table", "column", "file", "line"]).reset_index(drop=True)
               [FINDING_KEYS + ["model", "guard", "site", "call_line", "note"]])
    missing_tables = (written.loc[~in_schema].drop_duplicates(["table", "file", "call_line", "shape"])
                      .assign(line=lambda f: f["call_line"], effect=MISSING_TABLE)
                      [["table", "file", "line", "shape", "effect"]].reset_index(drop=True))
    required, hooked = _missing_required(written[in_schema], writes.attrs, schema, checked)
    notes = _notes(writes, written)
    if hooked:
        notes.append(f"{len(hooked)} create sites not checked for required columns: their model has boot hooks or "
                     f"traits that may set columns ({', '.join(sorted(set(hooked)))})")
    return DriftReport(phantom, required, missing_tables, checked, int(len(present)), notes)


def _missing_required(written, attrs, schema, checked) -> pd.DataFrame:
    """NOT NULL columns without a default that a saved create site never sets."""
    models = attrs.get("models", {})
    rows, hooked = [], []
    for group in attrs.get("create_groups", []):
        if not group["saved"] or group["table"] not in checked or not group["complete"]:
            continue
        info = schema[group["table"]]
        keys = written[written["group"] == group["id"]]
        model = models.get(group["model"] or "", {})
        if model.get("may_set_columns"):
            hooked.append(group["model"])
            continue
        reaching = set(keys.loc[keys["reaches_sql"].astype(bool), "column"].str.lower())
        reaching |= {k.lower() for k in model.get("attribute_defaults") or []}
        if group["model"] and model.get("timestamps", True):
            reaching |= {"created_at", "updated_at"}
        for col in info.columns:
            required = not info.nullable.get(col, True) and not info.has_default.get(col, False)
            if required and not _filled_by_database(info, col) and col.lower() not in reaching:
                rows.append({"table": group["table"], "column": col, "file": group["file"], "line": group["call_line"],
                             "shape": group["shape"], "site": group["site"], "effect": REQUIRED_EFFECT})
    return pd.DataFrame(rows, columns=["table", "column", "file", "line", "shape", "site", "effect"]), hooked


def _notes(writes: pd.DataFrame, written: pd.DataFrame) -> list[str]:
    attrs = writes.attrs
    notes = [f"scanned {attrs.get('files', 0)} PHP files under {attrs.get('root', '?')}; "
             f"{len(attrs.get('models', {}))} models"]
    if attrs.get("parse_errors"):
        notes.append(f"files with PHP syntax errors (scanned best effort): {', '.join(attrs['parse_errors'])}")
    unresolved = attrs.get("unresolved", [])
    if unresolved:
        shown = "; ".join(unresolved[:5]) + (f"; ... {len(unresolved) - 5} more" if len(unresolved) > 5 else "")
        notes.append(f"{len(unresolved)} write-shaped calls not checked (receiver or keys not static): {shown}")
    unknown = writes[writes["effect"] == UNKNOWN]
    if len(unknown):
        notes.append(f"{len(unknown)} writes on model classes not in the scanned code: effect unknown")
    notes.append("static analysis: effects assume Laravel's default mass-assignment rules "
                 "(no preventSilentlyDiscardingAttributes, no mutators, no model events setting columns)")
    return notes


def _filled_by_database(info, col: str) -> bool:
    """Auto-increment columns need no value; without key information, Laravel's ``id`` convention."""
    if info.autoincrement or info.primary_key:
        return col in info.autoincrement
    return col.lower() == "id"


def _table_list(tables) -> list[str] | None:
    """``--table`` values or a runbook's comma-separated parameter as a list; None means every table."""
    if isinstance(tables, str):
        tables = [t.strip() for t in tables.split(",") if t.strip()]
    return list(tables) or None if tables else None


def load_report(code_path, db=None, tables=None) -> DriftReport:
    """Scan ``code_path`` and compare with the schema of ``db`` (URL, profile, engine or None).

    One path for ``rca drift`` and the RB010 checks, so both judge the same findings.
    """
    writes = scan_code(code_path)
    engine = db if isinstance(db, sa.Engine) else dbmod.make_engine(db or None)
    try:
        schema = dbmod.introspect(engine)
    finally:
        if engine is not db:
            engine.dispose()
    return find_drift(writes, schema, tables=_table_list(tables))
