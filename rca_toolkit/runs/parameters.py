"""The parameter contract of every notebook and runbook: declared, parsed, validated before a run.

Every notebook in ``notebooks/`` and ``runbooks/`` has a first code cell tagged ``parameters``
holding only lines ``name: type = default  # help`` with ``type`` one of ``str int float bool``
and a literal default. Two kinds of ``str`` parameter are checked further:

* **timestamp**: name ends in ``_at`` or is ``as_of``, or the help contains ``ISO-8601``.
  The value must be ISO-8601 *with* a zone (``2025-10-18T13:20:08+02:00``); ``""`` = unset.
* **duration**: name ends in ``window``, ``before``, ``after``, ``period`` or ``lookback``,
  or the help contains ``duration``. Values like ``30m``, ``5d``, ``2h``; ``""`` = unset.
* **date**: name ends in ``_date`` or ``_start``, or the help contains ``YYYY-MM-DD``: a calendar
  day ``2025-10-14`` in 1970-2199; ``""`` = unset.

A ``str`` parameter may be set to ``""`` only when its default is ``""`` or its help says what empty
means (``empty means now``); otherwise the notebook would fail on it in its kernel.

Every ``int`` and ``float`` is finite and inside a range, decided like the kinds (first match):
the help's ``between A and B`` (inclusive); a name ending in ``_s`` (seconds) is > 0 and at most
a day; a name starting with ``min_`` (a minimum sample) is at least 1; anything else is >= 0.
An ``int`` is at most 2**63 - 1 (what SQLite and MariaDB's BIGINT hold).

Unknown names and wrong values are rejected before any cell runs (``ConfigError``, exit 2), so a
bad parameter leaves no run folder; so is a notebook file that is not a notebook.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rca_toolkit.config import SECONDS_RANGE
from rca_toolkit.errors import ConfigError, InputFormatError, NotFound

if TYPE_CHECKING:  # imported lazily at run time (see read sites)
    import nbformat

PARAM_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_TIMESTAMP_NAME = re.compile(r"(_at|^as_of)$")
_DURATION_NAME = re.compile(r"(window|before|after|period|lookback)$")
_DATE_NAME = re.compile(r"(_date|_start)$")
MAX_INT = 2**63 - 1
_BETWEEN = re.compile(r"between (-?\d+(?:\.\d+)?) and (-?\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class NumericRange:
    """Allowed values of a numeric parameter: ``low`` (excluded when ``low_open``) to ``high``."""

    low: float
    high: float
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{_bound(self.low)}, {_bound(self.high)}]"


def _bound(value: float) -> str:
    if value >= MAX_INT:
        return "2^63-1"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def numeric_range(name: str, type_: str, help_: str) -> NumericRange:
    """The range of a numeric parameter, from its help (``between A and B``) or its name (module docstring)."""
    high = MAX_INT if type_ == "int" else float(MAX_INT)
    between = _BETWEEN.search(help_)
    if between:
        return NumericRange(float(between.group(1)), float(between.group(2)))
    if name.endswith("_s"):
        return NumericRange(*SECONDS_RANGE, low_open=True)
    if name.startswith("min_"):
        return NumericRange(1, high)
    return NumericRange(0, high)


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: ``name: type = default  # help``."""

    name: str
    type: str
    default: Any
    help: str
    kind: str = "value"  # value | timestamp | duration

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "default": self.default, "help": self.help, "kind": self.kind}


def _kind(name: str, type_: str, help_: str) -> str:
    if type_ != "str":
        return "value"
    if _TIMESTAMP_NAME.search(name) or "iso-8601" in help_.lower():
        return "timestamp"
    if _DURATION_NAME.search(name) or "duration" in help_.lower():
        return "duration"
    if _DATE_NAME.search(name) or "yyyy-mm-dd" in help_.lower():
        return "date"
    return "value"


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The first code cell tagged ``parameters`` (None if there is none)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def parse_parameters(source: str, *, where: str = "parameters cell") -> list[Parameter]:
    """Parse a parameters cell strictly; anything but typed, documented literals is an error."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(f"{where}: line {exc.lineno} is not valid Python", hint="write `name: type = default  # help`") from None
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    out: list[Parameter] = []
    for node in tree.body:
        line = node.lineno
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            raise ConfigError(f"{where}: line {line} is not `name: type = default  # help`", hint="keep only parameter lines")
        name = node.target.id
        type_ = node.annotation.id if isinstance(node.annotation, ast.Name) else ast.unparse(node.annotation)
        if type_ not in PARAM_TYPES:
            raise ConfigError(f"{where}: parameter {name!r} has type {type_!r}", hint="use str, int, float or bool")
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ConfigError(f"{where}: default of {name!r} is not a literal", hint="use a plain value, e.g. 30 or \"5d\"") from None
        if not _type_ok(default, type_):
            raise ConfigError(f"{where}: default {default!r} of {name!r} is not a {type_}", hint="fix the default")
        help_ = comments.get(node.end_lineno, "")
        if not help_:
            raise ConfigError(f"{where}: parameter {name!r} has no `# help` comment", hint="say what it means and its unit")
        param = Parameter(name, type_, default, help_, _kind(name, type_, help_))
        if default != "" and param.kind != "value":
            _check_kind(param, default)
        _check_range(param, default, what=f"{where}: default of")
        out.append(param)
    return out


def read_parameters(path: str | Path) -> list[Parameter]:
    """Declared parameters of a notebook file (``NotFound`` / ``ConfigError`` when unusable)."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"notebook {path} does not exist", hint="see `rca list` for the notebooks")
    import nbformat  # lazily: its jsonschema/rfc3987 import costs seconds in every kernel

    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - whatever the file holds (binary, JSON of another shape) is the user's
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputFormatError(f"{path} is not a readable notebook: {first}",
                               hint="give a .ipynb file saved by Jupyter; see `rca list` for the notebooks") from None
    cell = parameters_cell(nb)
    if cell is None:
        raise ConfigError(f"{path.name} has no cell tagged `parameters`", hint="tag the first code cell `parameters`")
    return parse_parameters(cell.source, where=path.name)


def _type_ok(value: Any, type_: str) -> bool:
    if type_ == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_ == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, PARAM_TYPES[type_])


def _check_kind(param: Parameter, value: str) -> None:
    from rca_toolkit.rules.timeutil import parse_date, parse_duration, parse_instant

    if param.kind == "timestamp":
        parse_instant(value, name=param.name)
    elif param.kind == "duration":
        parse_duration(value, name=param.name)
    elif param.kind == "date":
        parse_date(value, name=param.name)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_range(param: Parameter, value: Any, *, what: str = "parameter") -> None:
    """A number outside the parameter's range (nan and inf included) is one line naming the range."""
    if param.type not in ("int", "float"):
        return
    allowed = numeric_range(param.name, param.type, param.help)
    if value not in allowed:
        raise ConfigError(f"{what} {param.name}={_shown(value)} is outside {allowed}",
                          hint=f"give a finite number in {allowed}; {param.name}: {param.help}")


def _coerce(param: Parameter, value: Any) -> Any:
    """Turn a CLI string or YAML value into the declared type, or raise one clear line."""
    bad = ConfigError(f"parameter {param.name}={value!r} is not a {param.type}", hint=f"{param.name}: {param.help}")
    if isinstance(value, datetime) and param.kind == "timestamp":
        if value.tzinfo is None:
            raise ConfigError(f"parameter {param.name}={value.isoformat()!r} has no time zone",
                              hint="add an offset or Z, e.g. 2025-10-18T13:20:08+02:00")
        value = value.isoformat()
    if isinstance(value, date) and not isinstance(value, datetime) and param.kind == "date":
        value = value.isoformat()  # YAML reads 2025-10-14 as a date
    if isinstance(value, str) and param.type != "str":
        text = value.strip()
        try:
            if param.type == "int":
                value = int(text)
            elif param.type == "float":
                value = float(text)
            else:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise bad
                value = lowered in ("true", "1", "yes")
        except ValueError:
            raise bad from None
    if not _type_ok(value, param.type):
        raise bad
    if param.type == "float":
        try:
            value = float(value)
        except OverflowError:  # a YAML integer beyond a float
            raise bad from None
    _check_range(param, value)
    if param.type == "str" and "\x00" in value:
        raise ConfigError(f"parameter {param.name} holds a NUL character", hint=f"{param.name}: {param.help}")
    if value == "" and param.default != "" and "empty" not in param.help.lower():
        raise ConfigError(f"parameter {param.name} may not be empty", hint=f"{param.name}: {param.help}")
    if param.kind != "value" and value != "":
        _check_kind(param, value)
    return value


def validate(declared: list[Parameter], given: dict[str, Any], *, notebook: str = "notebook") -> dict[str, Any]:
    """Check names and types of ``given`` against ``declared``; returns the coerced values."""
    by_name = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise ConfigError(f"unknown parameter {', '.join(unknown)} for {notebook}",
                          hint=f"known: {', '.join(by_name) or 'none'}; see `rca list`")
    return {name: _coerce(by_name[name], value) for name, value in given.items()}


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Parameters from a YAML mapping file (``-f params.yaml``)."""
    from rca_toolkit.config import read_yaml_mapping

    data = read_yaml_mapping(Path(path), "parameters file", unreadable_hint="give a YAML mapping",
                             mapping_hint="write `name: value` lines")
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"parameters file {path} has the key {odd[0]!r}, not a parameter name",
                          hint="write `name: value` lines with the names `rca list` shows")
    return dict(data)


__all__ = ["PARAM_TYPES", "MAX_INT", "NumericRange", "Parameter", "load_params_file", "numeric_range", "parameters_cell",
           "parse_parameters", "read_parameters", "validate"]
