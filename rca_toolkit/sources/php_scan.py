"""Find Eloquent / query-builder column writes in PHP source with a real parser.

Uses tree-sitter's PHP grammar, so comments, strings, heredocs and nowdocs are never
mistaken for code, and a read such as ``$a->booking_source ?? null`` is an expression,
not a write. This module only reads syntax: which class a receiver is, which table a
model maps to and what the guard does with a key are decided in ``drift``.

What it recognises (``shape``):

* ``forceFill``, ``fill``, ``update`` on a model instance; ``save_property``
  (``$model->col = ...``); ``new``/``create``/``forceCreate``/``make``/
  ``updateOrCreate``/``firstOrCreate``/``firstOrNew`` on a model class (or builder);
* ``query_update``/``query_insert`` (``Model::where(...)->update([...])``: the
  Eloquent builder skips the guard);
* ``db_table_insert``/``db_table_update`` (``DB::table('t')->...->insert/update``).

Keys come from literal arrays (``[...]`` or ``array(...)``), ``array_merge``/
``array_replace``/``+`` of them, ``...$spread``, and local array variables with later
``$data['key'] = ...`` additions. Anything else is reported as unresolved, never guessed.
A model instance is known from ``new Model``, ``Model::find/first/create...``, a
builder chain ending in ``first()``/``find()``, a typed parameter, or ``foreach`` over
``Model::...->get()``. Closures see their enclosing function's variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter as ts
import tree_sitter_php as tsp

from rca_toolkit.errors import InputFormatError
from rca_toolkit.sources.formats import sniff

# Folders of a Laravel tree that hold no application code of its own (dependencies, caches, VCS).
DEFAULT_EXCLUDE = ("vendor", "node_modules", "storage", "bootstrap/cache", ".git")


def php_files(root: Path, exclude=DEFAULT_EXCLUDE) -> list[Path]:
    """The ``.php`` files under ``root`` (or ``root`` itself), sorted, outside the ``exclude`` folders."""
    if root.is_file():
        return [root]
    files = []
    for path in sorted(root.rglob("*.php")):
        rel = path.relative_to(root).as_posix()
        if not any(rel == ex or rel.startswith(ex.rstrip("/") + "/") for ex in exclude):
            files.append(path)
    return files


_OPEN_TAG = re.compile(rb"<\?(?:php\b|=)", re.IGNORECASE)
_PHP_HINT = "give the Laravel application's root folder or one PHP file"


def not_php(data: bytes) -> str | None:
    """Why ``data`` cannot be PHP source (binary, compressed, not UTF-8), or None when it can."""
    return sniff.binary_kind(data)


def has_php_code(data: bytes) -> bool:
    """True when the text opens PHP code (``<?php`` or ``<?=``); a Blade view or plain text does not."""
    return bool(_OPEN_TAG.search(data))


def check_php_file(path: Path, data: bytes) -> None:
    """Refuse a file given as PHP that is not: one line naming it and what it looks like instead."""
    problem = not_php(data)
    if problem:
        raise InputFormatError(f"{path} is not PHP source: it is {problem}", hint=_PHP_HINT)
    if not has_php_code(data):
        looks = sniff.describe_bytes(data[:sniff.HEAD_BYTES], complete=len(data) <= sniff.HEAD_BYTES)
        raise InputFormatError(f"{path} is not PHP source (no <?php tag): it looks like {looks}", hint=_PHP_HINT)


_PARSER: ts.Parser | None = None

MODEL_BASES = {"Model", "Authenticatable", "Pivot", "MorphPivot", "User"}
RAISING_SHAPES = {"forceFill", "forceCreate", "save_property", "query_update", "query_insert",
                  "db_table_insert", "db_table_update"}
# Static model methods (and builder methods) that return one model instance.
_INSTANCE_METHODS = {"find", "findOrFail", "findOrNew", "first", "firstOrFail", "firstWhere", "sole",
                     "create", "forceCreate", "make", "firstOrNew", "firstOrCreate", "updateOrCreate"}
# Instance methods that return the same model (chains like ->fill([...])->save()).
_PASSTHROUGH = {"fill", "forceFill", "fresh", "refresh", "replicate", "setAttribute", "load", "loadMissing"}
_COLLECTION_METHODS = {"get", "all", "cursor", "lazy", "lazyById"}
_CREATE_STATIC = {"create": "create", "forceCreate": "forceCreate", "make": "make",
                  "updateOrCreate": "updateOrCreate", "firstOrCreate": "firstOrCreate", "firstOrNew": "firstOrNew"}
_SAVE_METHODS = {"save", "saveOrFail", "saveQuietly", "push"}
_WRITE_NAMES = {"fill", "forceFill", "update", "create", "updateOrCreate", "firstOrCreate", "insert", "upsert"}
# Public properties every Eloquent model has: assigning them writes no column.
_MODEL_PROPERTIES = {"exists", "wasRecentlyCreated", "incrementing", "timestamps", "preventsLazyLoading",
                     "usesUniqueIds", "table", "primaryKey", "keyType", "connection", "with", "withCount"}
_FRAMEWORK_TRAITS = {"HasFactory", "SoftDeletes", "Notifiable", "HasApiTokens", "HasUuids", "HasUlids",
                     "Prunable", "MassPrunable", "Searchable", "HasRoles", "InteractsWithMedia"}
_FUNCTION_NODES = {"method_declaration", "function_definition", "anonymous_function", "arrow_function",
                   "anonymous_function_creation_expression"}


def parser() -> ts.Parser:
    global _PARSER
    if _PARSER is None:
        _PARSER = ts.Parser(ts.Language(tsp.language_php()))
    return _PARSER


@dataclass
class ClassInfo:
    """One PHP class: enough to decide whether it is a model and what its guard does."""

    name: str
    file: str
    line: int
    parent: str | None
    table: str | None = None
    guarded: list[str] | None = None
    fillable: list[str] | None = None
    attribute_defaults: list[str] = field(default_factory=list)
    timestamps: bool = True
    properties: set[str] = field(default_factory=set)
    traits: list[str] = field(default_factory=list)
    methods: set[str] = field(default_factory=set)

    @property
    def may_set_columns(self) -> bool:
        """Boot hooks or non-framework traits may fill columns on ``creating`` (invisible here)."""
        return bool({"boot", "booted"} & self.methods) or any(t not in _FRAMEWORK_TRAITS for t in self.traits)


@dataclass
class Write:
    column: str
    line: int
    call_line: int
    shape: str
    model: str | None  # short class name, None for DB::table
    table: str | None  # only for DB::table writes
    site: str
    note: str = ""
    group: int | None = None  # creation group id (for missing-required checks)
    unguarded: bool = False  # Model::unguard() seen in the same function


@dataclass
class CreateGroup:
    """One row being inserted: ``Model::create``, ``new Model`` + fills + save, ``DB::table()->insert``."""

    id: int
    model: str | None
    table: str | None
    call_line: int
    shape: str
    site: str
    saved: bool
    complete: bool = True  # False when some keys could not be resolved


@dataclass
class FileScan:
    file: str
    writes: list[Write] = field(default_factory=list)
    groups: list[CreateGroup] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    parse_error: bool = False


def parse(source: bytes) -> ts.Tree:
    return parser().parse(source)


def _line(node: ts.Node) -> int:
    return node.start_point[0] + 1


def _text(node: ts.Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None else ""


def _short(name_node: ts.Node | None) -> str | None:
    """Last segment of a (qualified) class name: ``\\App\\Models\\Appointment`` -> ``Appointment``."""
    if name_node is None or name_node.type not in ("name", "qualified_name"):
        return None
    return _text(name_node).rsplit("\\", 1)[-1]


def string_value(node: ts.Node | None) -> str | None:
    """The value of a plain string literal (no interpolation), else None."""
    if node is None or node.type not in ("string", "encapsed_string"):
        return None
    parts = []
    for child in node.named_children:
        if child.type == "string_content":
            parts.append(_text(child))
        elif child.type == "escape_sequence":
            raw = _text(child)
            parts.append(raw[1:] if raw in ("\\'", "\\\\", '\\"', "\\$") else raw)
        else:
            return None
    return "".join(parts)


def _args(call: ts.Node) -> list[ts.Node]:
    args = call.child_by_field_name("arguments")
    if args is None:
        args = next((c for c in call.named_children if c.type == "arguments"), None)
    if args is None:
        return []
    return [a.named_children[0] for a in args.named_children if a.type == "argument" and a.named_children]


def _string_list(node: ts.Node | None) -> list[str] | None:
    if node is None or node.type != "array_creation_expression":
        return None
    out = []
    for element in node.named_children:
        value = string_value(element.named_children[-1]) if element.named_children else None
        if value is not None:
            out.append(value)
    return out


def _array_keys_literal(node: ts.Node) -> list[str]:
    """Keys of a literal array (used for ``$attributes`` defaults)."""
    keys = []
    for element in node.named_children:
        if any(c.type == "=>" for c in element.children) and element.named_children:
            key = string_value(element.named_children[0])
            if key is not None:
                keys.append(key)
    return keys


def class_infos(tree: ts.Tree, file: str) -> list[ClassInfo]:
    """Every class declared in a file with its model-relevant properties."""
    out = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "class_declaration":
            base = next((c for c in node.named_children if c.type == "base_clause"), None)
            parent = _short(base.named_children[0]) if base is not None and base.named_children else None
            info = ClassInfo(name=_text(node.child_by_field_name("name")), file=file, line=_line(node), parent=parent)
            body = node.child_by_field_name("body")
            for decl in body.named_children if body is not None else []:
                if decl.type == "use_declaration":
                    info.traits += [_short(n) for n in decl.named_children if n.type in ("name", "qualified_name")]
                elif decl.type == "method_declaration":
                    info.methods.add(_text(decl.child_by_field_name("name")))
                if decl.type != "property_declaration":
                    continue
                for element in (c for c in decl.named_children if c.type == "property_element"):
                    prop = _text(element.child_by_field_name("name")).lstrip("$")
                    value = element.child_by_field_name("default_value")
                    info.properties.add(prop)
                    if prop == "table":
                        info.table = string_value(value)
                    elif prop == "guarded":
                        info.guarded = _string_list(value)
                    elif prop == "fillable":
                        info.fillable = _string_list(value)
                    elif prop == "attributes" and value is not None and value.type == "array_creation_expression":
                        info.attribute_defaults = _array_keys_literal(value)
                    elif prop == "timestamps" and value is not None:
                        info.timestamps = _text(value).lower() != "false"
            out.append(info)
        stack.extend(reversed(node.named_children))
    return out


class _Scope:
    def __init__(self, node: ts.Node | None, site: str, parent: "_Scope | None"):
        self.node, self.site, self.parent = node, site, parent
        self.bindings: list[tuple[int, str, ts.Node | None, str | None, int | None]] = []  # (pos, var, expr, model, group)
        self.additions: list[tuple[int, str, str, int]] = []  # (pos, var, key, line)
        self.unguarded: set[str] = set()

    def lookup(self, var: str, pos: int):
        best = None
        for binding in self.bindings:
            if binding[1] == var and binding[0] <= pos and (best is None or binding[0] >= best[0]):
                best = binding
        if best is None and self.parent is not None and self.node is not None and self.node.type != "method_declaration":
            return self.parent.lookup(var, pos)
        return best

    def is_unguarded(self, model: str) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if model in scope.unguarded or "Model" in scope.unguarded:
                return True
            scope = scope.parent
        return False


class FileWalker:
    """Walk one parsed file in source order and collect column writes."""

    def __init__(self, tree: ts.Tree, file: str, models: set[str]):
        self.tree, self.file, self.models = tree, file, models
        self.result = FileScan(file=file, parse_error=tree.root_node.has_error)
        self.aliases: dict[str, str] = {}
        self._next_group = 0
        self._group_nodes: dict[int, int] = {}
        self._class: str | None = None

    # ---- entry -------------------------------------------------------------------
    def run(self, group_offset: int = 0) -> FileScan:
        self._next_group = group_offset
        self._collect_aliases(self.tree.root_node)
        self._walk(self.tree.root_node, _Scope(None, "<script>", None))
        return self.result

    def _collect_aliases(self, root: ts.Node) -> None:
        for node in root.named_children:
            if node.type == "namespace_use_declaration":
                for clause in (c for c in node.named_children if c.type == "namespace_use_clause"):
                    names = [c for c in clause.named_children if c.type in ("name", "qualified_name")]
                    if len(names) == 2:  # use A\B as C
                        self.aliases[_text(names[1])] = _short(names[0]) or ""
            elif node.type == "namespace_definition":
                body = node.child_by_field_name("body")
                if body is not None:
                    self._collect_aliases(body)

    def _model_name(self, name_node: ts.Node | None) -> str | None:
        short = _short(name_node)
        if short is None:
            return None
        if short in ("self", "static") and self._class:
            short = self._class
        short = self.aliases.get(short, short)
        return short if short in self.models else None

    # ---- walking -----------------------------------------------------------------
    def _walk(self, node: ts.Node, scope: _Scope) -> None:
        kind = node.type
        if kind in ("class_declaration", "anonymous_class"):
            name = node.child_by_field_name("name")
            outer, self._class = self._class, _text(name) if name is not None else "class@anonymous"
            for child in node.named_children:
                self._walk(child, scope)
            self._class = outer
            return
        if kind in _FUNCTION_NODES:
            scope = self._enter_function(node, scope)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(node, scope)
        if kind == "foreach_statement":
            self._bind_foreach(node, scope)
        for child in node.named_children:
            self._walk(child, scope)

    def _enter_function(self, node: ts.Node, scope: _Scope) -> _Scope:
        if node.type == "method_declaration":
            site = f"{self._class or '?'}::{_text(node.child_by_field_name('name'))}"
        elif node.type == "function_definition":
            site = _text(node.child_by_field_name("name"))
        else:
            site = f"{scope.site}{{closure}}"
        inner = _Scope(node, site, scope)
        params = node.child_by_field_name("parameters")
        for param in params.named_children if params is not None else []:
            type_node = param.child_by_field_name("type")
            var = param.child_by_field_name("name")
            model = None
            if type_node is not None:
                model = next((m for m in (self._model_name(n) for n in _type_names(type_node)) if m), None)
            if var is not None:
                inner.bindings.append((node.start_byte, _text(var), None, model, None))
        return inner

    def _bind_foreach(self, node: ts.Node, scope: _Scope) -> None:
        named = node.named_children
        if len(named) < 2:
            return
        iterable, target = named[0], named[1]
        if target.type == "pair":
            target = target.named_children[-1]
        if target.type == "variable_name" and iterable.type == "member_call_expression":
            method = _text(iterable.child_by_field_name("name"))
            model = self._builder_model(iterable.child_by_field_name("object"), scope) if method in _COLLECTION_METHODS else None
            scope.bindings.append((target.start_byte, _text(target), None, model, None))

    # ---- node handlers -----------------------------------------------------------
    def _on_assignment_expression(self, node: ts.Node, scope: _Scope) -> None:
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or right is None:
            return
        if left.type == "variable_name":
            model = self._instance_model(right, scope)
            group = self._group_of(right, scope)
            scope.bindings.append((node.end_byte, _text(left), right, model, group))
        elif left.type == "subscript_expression" and left.named_children:
            var, index = left.named_children[0], left.named_children[1] if len(left.named_children) > 1 else None
            key = string_value(index)
            if var.type == "variable_name" and key is not None:
                scope.additions.append((node.start_byte, _text(var), key, _line(left)))
        elif left.type in ("member_access_expression", "nullsafe_member_access_expression"):
            obj, name = left.child_by_field_name("object"), left.child_by_field_name("name")
            model = self._instance_model(obj, scope)
            if model and name is not None and name.type == "name":
                prop = _text(name)
                if prop not in _MODEL_PROPERTIES and not prop.startswith("_"):
                    self._add(prop, _line(left), _line(node), "save_property", model, None, scope,
                              group=self._group_of(obj, scope))

    def _on_object_creation_expression(self, node: ts.Node, scope: _Scope) -> None:
        name = next((c for c in node.named_children if c.type in ("name", "qualified_name")), None)
        model = self._model_name(name)
        if not model:
            return
        group = self._group_nodes.get(node.start_byte) or self._new_group(model, None, node, "new", scope, saved=False)
        args = _args(node)
        if args:
            self._add_keys(args[0], node, "new", model, None, scope, group)

    def _on_scoped_call_expression(self, node: ts.Node, scope: _Scope) -> None:
        method = _text(node.child_by_field_name("name"))
        if method in ("unguard", "unguarded", "reguard"):  # X::unguard() affects later writes in this function
            target = self.aliases.get(_short(node.child_by_field_name("scope")) or "", _short(node.child_by_field_name("scope")))
            (scope.unguarded.discard if method == "reguard" else scope.unguarded.add)(target or "")
            return
        model = self._model_name(node.child_by_field_name("scope"))
        if model:
            self._model_static_write(node, method, model, scope)

    def _on_member_call_expression(self, node: ts.Node, scope: _Scope) -> None:
        method = _text(node.child_by_field_name("name"))
        obj = node.child_by_field_name("object")
        args = _args(node)
        if method in _SAVE_METHODS:
            group = self._group_of(obj, scope)
            if group is not None:
                self._group(group).saved = True
            return
        table = _db_table(obj)
        if table is not None:
            self._db_table_write(node, method, table, args, scope)
            return
        if method in ("fill", "forceFill", "update"):
            model = self._instance_model(obj, scope)
            if model and args:
                group = self._group_of(obj, scope) if method != "update" else None
                self._add_keys(args[0], node, method, model, None, scope, group)
                return
        builder = self._builder_model(obj, scope)
        if builder:
            if method in ("update", "insert", "insertOrIgnore", "insertGetId", "upsert") and args:
                shape = "query_update" if method == "update" else "query_insert"
                rows = method != "update"
                group = self._new_group(builder, None, node, shape, scope, saved=True) if rows else None
                self._add_keys(args[0], node, shape, builder, None, scope, group, rows=rows)
                return
            if method in _CREATE_STATIC:
                self._model_static_write(node, method, builder, scope)
                return
        if method in _WRITE_NAMES:
            self.result.unresolved.append(f"{self.file}:{_line(node)} ->{method}() on an unresolved receiver")

    _on_nullsafe_member_call_expression = _on_member_call_expression

    # ---- write recording ---------------------------------------------------------
    def _model_static_write(self, node: ts.Node, method: str, model: str, scope: _Scope) -> None:
        args = _args(node)
        if method in ("insert", "insertOrIgnore", "upsert") and args:
            group = self._new_group(model, None, node, "query_insert", scope, saved=True)
            self._add_keys(args[0], node, "query_insert", model, None, scope, group, rows=True)
            return
        shape = _CREATE_STATIC.get(method)
        if shape is None or not args:
            return
        saved = shape not in ("make", "firstOrNew")
        group = self._new_group(model, None, node, shape, scope, saved=saved)
        if shape in ("updateOrCreate", "firstOrCreate", "firstOrNew"):
            # The first array is the lookup (a WHERE clause: an unknown column raises there).
            self._add_keys(args[0], node, shape, model, None, scope, group, note="lookup key (WHERE clause)")
            if len(args) > 1:
                self._add_keys(args[1], node, shape, model, None, scope, group)
        else:
            self._add_keys(args[0], node, shape, model, None, scope, group)

    def _db_table_write(self, node: ts.Node, method: str, table: str, args: list[ts.Node], scope: _Scope) -> None:
        if not args:
            return
        if method in ("insert", "insertOrIgnore", "insertGetId", "upsert"):
            group = self._new_group(None, table, node, "db_table_insert", scope, saved=True)
            self._add_keys(args[0], node, "db_table_insert", None, table, scope, group, rows=True)
        elif method == "update":
            self._add_keys(args[0], node, "db_table_update", None, table, scope, None)
        elif method == "updateOrInsert":
            group = self._new_group(None, table, node, "db_table_insert", scope, saved=True)
            self._add_keys(args[0], node, "db_table_update", None, table, scope, group, note="lookup key (WHERE clause)")
            if len(args) > 1:
                self._add_keys(args[1], node, "db_table_update", None, table, scope, group)

    def _add_keys(self, expr, call, shape, model, table, scope, group, *, rows=False, note="") -> None:
        keys, complete = self._keys(expr, scope, call.start_byte, rows=rows)
        if not complete:
            self.result.unresolved.append(
                f"{self.file}:{_line(call)} {shape} on {model or table}: some keys are not literal (not checked)")
            if group is not None:
                self._group(group).complete = False
        for key, line in keys:
            self._add(key, line, _line(call), shape, model, table, scope, group=group, note=note)

    def _add(self, column, line, call_line, shape, model, table, scope, *, group=None, note="") -> None:
        if "->" in column:  # JSON path update ('metadata->source'): the column is the part before ->
            column, note = column.split("->", 1)[0], note or f"JSON path {column}"
        unguarded = bool(model) and scope.is_unguarded(model)
        self.result.writes.append(Write(column, line, call_line, shape, model, table, scope.site, note, group, unguarded))

    def _keys(self, expr: ts.Node, scope: _Scope, pos: int, *, rows: bool = False, depth: int = 0):
        """(key, line) pairs of an array expression, and whether every key was resolved."""
        if depth > 8:
            return [], False
        if expr.type == "parenthesized_expression" and expr.named_children:
            return self._keys(expr.named_children[0], scope, pos, rows=rows, depth=depth + 1)
        if expr.type == "array_creation_expression":
            keys, complete = [], True
            for element in expr.named_children:
                if element.type != "array_element_initializer" or not element.named_children:
                    continue
                first = element.named_children[0]
                if any(c.type == "=>" for c in element.children):
                    key = string_value(first)
                    if key is None:
                        complete = False
                    else:
                        keys.append((key, _line(first)))
                elif first.type == "variadic_unpacking" and first.named_children:
                    sub, ok = self._keys(first.named_children[0], scope, pos, depth=depth + 1)
                    keys += sub
                    complete &= ok
                elif rows and first.type == "array_creation_expression":
                    sub, ok = self._keys(first, scope, pos, depth=depth + 1)
                    keys += sub
                    complete &= ok
                else:
                    complete = False
            return keys, complete
        if expr.type == "function_call_expression" and _text(expr.child_by_field_name("function")).lstrip("\\") in (
                "array_merge", "array_replace"):
            keys, complete = [], True
            for arg in _args(expr):
                sub, ok = self._keys(arg, scope, pos, depth=depth + 1)
                keys += sub
                complete &= ok
            return keys, complete
        if expr.type == "binary_expression" and _text(expr.child_by_field_name("operator")) == "+":
            left, ok1 = self._keys(expr.child_by_field_name("left"), scope, pos, depth=depth + 1)
            right, ok2 = self._keys(expr.child_by_field_name("right"), scope, pos, depth=depth + 1)
            return left + right, ok1 and ok2
        if expr.type == "variable_name":
            binding = scope.lookup(_text(expr), pos)
            if binding is None or binding[2] is None:
                return [], False
            keys, complete = self._keys(binding[2], scope, binding[0], rows=rows, depth=depth + 1)
            keys += [(key, line) for p, var, key, line in scope.additions if var == _text(expr) and binding[0] <= p <= pos]
            return keys, complete
        return [], False

    # ---- receivers ---------------------------------------------------------------
    def _instance_model(self, expr: ts.Node | None, scope: _Scope) -> str | None:
        if expr is None:
            return None
        kind = expr.type
        if kind == "parenthesized_expression" and expr.named_children:
            return self._instance_model(expr.named_children[0], scope)
        if kind == "object_creation_expression":
            return self._model_name(next((c for c in expr.named_children if c.type in ("name", "qualified_name")), None))
        if kind == "variable_name":
            binding = scope.lookup(_text(expr), expr.start_byte)
            return binding[3] if binding else None
        if kind == "scoped_call_expression":
            method = _text(expr.child_by_field_name("name"))
            return self._model_name(expr.child_by_field_name("scope")) if method in _INSTANCE_METHODS else None
        if kind in ("member_call_expression", "nullsafe_member_call_expression"):
            method, obj = _text(expr.child_by_field_name("name")), expr.child_by_field_name("object")
            if method in _PASSTHROUGH:
                return self._instance_model(obj, scope)
            if method in _INSTANCE_METHODS:
                return self._builder_model(obj, scope)
        return None

    def _builder_model(self, expr: ts.Node | None, scope: _Scope) -> str | None:
        """The model of an Eloquent query builder chain (``Model::where(...)->...``)."""
        if expr is None:
            return None
        if expr.type == "scoped_call_expression":
            method = _text(expr.child_by_field_name("name"))
            return self._model_name(expr.child_by_field_name("scope")) if method not in _INSTANCE_METHODS else None
        if expr.type == "member_call_expression":
            method = _text(expr.child_by_field_name("name"))
            if method in _INSTANCE_METHODS or method in _COLLECTION_METHODS:
                return None
            return self._builder_model(expr.child_by_field_name("object"), scope)
        return None

    # ---- creation groups ---------------------------------------------------------
    def _new_group(self, model, table, node, shape, scope, *, saved) -> int:
        self._next_group += 1
        group = CreateGroup(self._next_group, model, table, _line(node), shape, scope.site, saved)
        self.result.groups.append(group)
        self._group_nodes[node.start_byte] = group.id
        return group.id

    def _group(self, group_id: int) -> CreateGroup:
        return next(g for g in self.result.groups if g.id == group_id)

    def _group_of(self, expr: ts.Node | None, scope: _Scope) -> int | None:
        """The creation group a receiver belongs to (a variable bound to ``new Model``)."""
        if expr is None:
            return None
        if expr.type == "parenthesized_expression" and expr.named_children:
            return self._group_of(expr.named_children[0], scope)
        if expr.type == "object_creation_expression":
            nodes = self._group_nodes
            if expr.start_byte not in nodes:  # visited later in source order: create it now
                model = self._instance_model(expr, scope)
                if not model:
                    return None
                return self._new_group(model, None, expr, "new", scope, saved=False)
            return nodes[expr.start_byte]
        if expr.type == "variable_name":
            binding = scope.lookup(_text(expr), expr.start_byte)
            return binding[4] if binding else None
        if expr.type in ("member_call_expression", "nullsafe_member_call_expression") and \
                _text(expr.child_by_field_name("name")) in ("fill", "forceFill"):
            return self._group_of(expr.child_by_field_name("object"), scope)
        return None


def _db_table(expr: ts.Node | None) -> str | None:
    """``DB::table('t')`` at the root of a builder chain -> ``t`` (literal names only)."""
    while expr is not None and expr.type == "member_call_expression":
        expr = expr.child_by_field_name("object")
    if expr is None or expr.type != "scoped_call_expression":
        return None
    if _short(expr.child_by_field_name("scope")) != "DB" or _text(expr.child_by_field_name("name")) != "table":
        return None
    args = _args(expr)
    return string_value(args[0]) if args else None


def _type_names(type_node: ts.Node) -> list[ts.Node]:
    if type_node.type in ("name", "qualified_name"):
        return [type_node]
    return [n for c in type_node.named_children for n in _type_names(c)]
