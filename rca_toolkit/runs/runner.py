"""Notebook runs: declared parameters, validation before execution, immutable run folders.

Parameters contract (every notebook in ``notebooks/`` and ``runbooks/``): the first code
cell tagged ``parameters`` holds only lines ``name: type = default  # help`` with ``type``
one of ``str int float bool`` and a literal default. Two kinds of ``str`` parameter are
checked further:

* **timestamp**: name ends in ``_at`` or is ``as_of``, or the help contains ``ISO-8601``.
  The value must be ISO-8601 *with* a zone (``2025-10-18T13:20:08+02:00``); ``""`` = unset.
* **duration**: name ends in ``window``, ``before``, ``after``, ``period`` or ``lookback``,
  or the help contains ``duration``. Values like ``30m``, ``5d``, ``2h``; ``""`` = unset.

Unknown names and wrong values are rejected before any cell runs (``ConfigError``, exit 2).

Secrets: papermill writes parameters into the executed notebook, so a value that carries a
password (any ``scheme://user:password@`` text, e.g. ``db_url``) is injected *redacted* and
the real value travels to the kernel in the environment variable ``RCA_PARAM_<NAME>``.
Inside the notebook :func:`open_db` / :func:`param_value` give the real value back. As a
second line of defence every text file of the run folder is scrubbed of the password.

Run folder ``<out>/<notebook stem>/<run id>/`` (run id = UTC time + random suffix) holds the
executed notebook, ``report.html``, ``report.md``, ``metrics.json``, ``params.yaml``,
``run.json`` and ``figures/``. It is built in a hidden ``.partial`` folder and renamed into
place at the end, so a run folder is complete or absent. In a run, ``RCA_RUN_DIR`` points
at it and :func:`record_metrics` / :func:`save_figure` write there; interactively they do
nothing and return None.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import secrets
import subprocess
import sys
import tokenize
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rca_toolkit.rules.jsonutil import json_default
from rca_toolkit.errors import ConfigError, NotFound

if TYPE_CHECKING:  # imported lazily at run time (see read sites)
    import nbformat

PARAM_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_TIMESTAMP_NAME = re.compile(r"(_at|^as_of)$")
_DURATION_NAME = re.compile(r"(window|before|after|period|lookback)$")
_FIGURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
RUN_DIR_ENV = "RCA_RUN_DIR"


# --------------------------------------------------------------------------- declaration
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
        out.append(param)
    return out


def read_parameters(path: str | Path) -> list[Parameter]:
    """Declared parameters of a notebook file (``NotFound`` / ``ConfigError`` when unusable)."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"notebook {path} does not exist", hint="see `rca list` for the notebooks")
    import nbformat  # lazily: its jsonschema/rfc3987 import costs seconds in every kernel

    nb = nbformat.read(str(path), as_version=4)
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
    from rca_toolkit.rules.timeutil import parse_duration, parse_instant

    if param.kind == "timestamp":
        parse_instant(value, name=param.name)
    elif param.kind == "duration":
        parse_duration(value, name=param.name)


def _coerce(param: Parameter, value: Any) -> Any:
    """Turn a CLI string or YAML value into the declared type, or raise one clear line."""
    bad = ConfigError(f"parameter {param.name}={value!r} is not a {param.type}", hint=f"{param.name}: {param.help}")
    if isinstance(value, datetime) and param.kind == "timestamp":
        if value.tzinfo is None:
            raise ConfigError(f"parameter {param.name}={value.isoformat()!r} has no time zone",
                              hint="add an offset or Z, e.g. 2025-10-18T13:20:08+02:00")
        value = value.isoformat()
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
        value = float(value)
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
    return {str(k): v for k, v in data.items()}


# --------------------------------------------------------------------------- secrets
def env_name(param: str) -> str:
    return f"RCA_PARAM_{param.upper()}"


def split_secrets(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """(values safe to write, env vars carrying the real values, passwords to scrub)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from rca_toolkit.sources.db import redact_text, redact_url

    safe, env, passwords = dict(values), {}, []
    for name, value in values.items():
        if not isinstance(value, str) or "://" not in value:
            continue
        redacted = redact_url(value) if name.endswith("_url") else redact_text(value)
        if redacted == value:
            continue
        safe[name], env[env_name(name)] = redacted, value
        try:
            password = make_url(value).password
        except (ArgumentError, ValueError):  # not a URL: fall back to the pattern below
            password = None
        passwords += [password] if password else re.findall(r"://[^:/@\s]+:([^@\s]+)@", value)
    return safe, env, passwords


def param_value(name: str, value: Any) -> Any:
    """The real value of a parameter that the runner injected redacted (else ``value``)."""
    from rca_toolkit.sources.db import redact_text, redact_url

    real = os.environ.get(env_name(name))
    if isinstance(value, str) and real and value in (redact_url(real), redact_text(real)):
        return real
    return value


def open_db(db_url: str = ""):
    """Read-only engine for a notebook's ``db_url`` parameter ('' = configured default).

    A relative SQLite path (the default ``data/demo.sqlite``) is also looked up in parent
    folders, so the same notebook runs from the project root and from ``runbooks/``.
    """
    from sqlalchemy.engine import make_url

    from rca_toolkit.config import load_settings
    from rca_toolkit.sources.db import redact_url
    from rca_toolkit.sources.loaders import engine_for

    real = param_value("db_url", db_url) or load_settings().database_url
    if real.startswith("sqlite:///") and not real.startswith("sqlite:////"):
        path = make_url(real).database or ""
        real = f"sqlite:///{project_path(path)}" if path else real  # relative demo file from a notebook folder
    engine = engine_for(real)
    engine.rca_label = redact_url(real)  # read-only SQLite engines have the bare URL sqlite://
    return engine


def db_label(engine) -> str:
    """The redacted URL to show for an engine (the file path for read-only SQLite)."""
    from rca_toolkit.sources.db import redact_url

    return getattr(engine, "rca_label", None) or redact_url(engine.url)


def project_path(text: str) -> str:
    """A relative path as given if it exists here, else found in a parent folder ('' stays '').

    nbval starts kernels in the notebook's folder and ``rca run`` in the working directory;
    this lets a default like ``tests/fixtures/...`` work from both.
    """
    if not text or Path(text).is_absolute() or Path(text).exists():
        return text
    for parent in Path.cwd().resolve().parents:
        if (parent / text).exists():
            return str(parent / text)
    return text


# --------------------------------------------------------------------------- in-notebook helpers
def run_dir() -> Path | None:
    """The run folder of the current papermill run, or None in interactive use."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def record_metrics(metrics: dict) -> Path | None:
    """Merge ``metrics`` into ``metrics.json`` of the current run; None when not in a run."""
    folder = run_dir()
    if folder is None:
        return None
    from rca_toolkit.runs.render import atomic_write_text

    path = folder / "metrics.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(json.loads(json.dumps(metrics, default=json_default)))
    return atomic_write_text(path, json.dumps(current, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def save_figure(fig, name: str, *, dpi: int = 110) -> Path | None:
    """Save a matplotlib figure as ``figures/<name>.png`` of the current run; None interactively."""
    if not _FIGURE_NAME.match(name):
        raise ConfigError(f"figure name {name!r} is not a plain file name", hint="use letters, digits, - _ .")
    folder = run_dir()
    if folder is None:
        return None
    from rca_toolkit.runs.render import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    stem = name[:-4] if name.endswith(".png") else name
    return atomic_write_bytes(folder / "figures" / f"{stem}.png", buffer.getvalue())


def save_text(name: str, text: str) -> Path | None:
    """Save a text artefact (e.g. ``signoff.md``) into the current run; None interactively."""
    if not _FIGURE_NAME.match(name):
        raise ConfigError(f"file name {name!r} is not a plain file name", hint="use letters, digits, - _ .")
    folder = run_dir()
    if folder is None:
        return None
    from rca_toolkit.runs.render import atomic_write_text

    return atomic_write_text(folder / name, text)


@contextmanager
def _environ(extra: dict[str, str]):
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- runs
@dataclass
class RunResult:
    """Where a run went and how it ended (``status`` ok / failed / error)."""

    notebook: Path
    run_dir: Path
    status: str
    exit_code: int
    error: str | None
    metrics: dict

    def to_dict(self) -> dict:
        return {"notebook": str(self.notebook), "run_dir": str(self.run_dir), "status": self.status,
                "exit_code": self.exit_code, "error": self.error}


def _toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rca_toolkit")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _git_sha(folder: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _database_label(values: dict, declared: list[Parameter]) -> str | None:
    """Redacted URL of the database the kernel will use (None if the notebook takes none)."""
    from rca_toolkit.config import load_settings
    from rca_toolkit.sources.db import redact_text, redact_url, resolve_url
    from rca_toolkit.errors import RcaError

    if "db_url" not in {p.name for p in declared}:
        return None
    raw = values.get("db_url") or next(p.default for p in declared if p.name == "db_url") or None
    try:
        return redact_url(resolve_url(raw, load_settings()))
    except RcaError:
        return redact_text(str(raw))


def _scrub(folder: Path, passwords: list[str]) -> list[str]:
    """Replace any password left in a text file of the run folder; returns the files touched."""
    from rca_toolkit.runs.render import atomic_write_bytes

    touched = []
    needles = [p.encode() for p in passwords if p and len(p) >= 3]
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif"):
            continue
        data = path.read_bytes()
        clean = data
        for needle in needles:
            clean = clean.replace(needle, b"***")
        if clean != data:
            atomic_write_bytes(path, clean)
            touched.append(path.name)
    return touched


def run_notebook(path: str | Path, params: dict | None = None, *, db: str | None = None, out_dir: str | Path | None = None,
                 kernel_name: str | None = None, progress: bool | None = None) -> RunResult:
    """Validate parameters, execute with papermill and build the run folder atomically.

    Raises ``ConfigError`` before anything runs when a name or value is wrong. A failing
    cell does not raise: the run folder keeps the executed notebook and ``status='failed'``.
    """
    import papermill
    import yaml
    from papermill.exceptions import PapermillExecutionError

    from rca_toolkit.config import load_settings, progress_enabled
    from rca_toolkit.runs.render import atomic_write_text, write_reports

    path = Path(path)
    declared = read_parameters(path)
    given = dict(params or {})
    if db is not None:
        if "db_url" not in {p.name for p in declared}:
            raise ConfigError(f"{path.name} takes no database (it declares no db_url parameter)", hint="drop --db")
        given["db_url"] = db
    values = validate(declared, given, notebook=path.name)
    safe, env, passwords = split_secrets(values)
    started = datetime.now(timezone.utc)
    run_id = new_run_id(started)
    root = Path(out_dir or load_settings().reports_dir) / path.stem
    final, work = root / run_id, root / f".{run_id}.partial"
    work.mkdir(parents=True)
    executed = work / path.name
    if progress is None:
        progress = progress_enabled() and sys.stderr.isatty()
    import nbformat  # lazily: its jsonschema/rfc3987 import costs seconds in every kernel

    nb = nbformat.read(str(path), as_version=4)
    kernel = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    status, error, failed_cell = "ok", None, None
    try:
        with _environ({**env, RUN_DIR_ENV: str(work.resolve())}):
            papermill.execute_notebook(str(path), str(executed), parameters=safe, kernel_name=kernel,
                                       progress_bar=progress, log_output=False)
    except PapermillExecutionError as exc:
        status, error, failed_cell = "failed", f"{exc.ename}: {exc.evalue}".splitlines()[0], exc.exec_count
    except Exception as exc:  # noqa: BLE001 - kernel could not start or died: recorded, never hidden
        status, error = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    database = _database_label(values, declared)
    meta = f"{path.name} · run {run_id} · status {status} · database {database or '-'}"
    if executed.exists():
        try:
            write_reports(executed, work, title=f"{path.stem} ({run_id})", meta=meta)
        except Exception as exc:  # noqa: BLE001 - the run record must still be written
            status, error = "error", f"report rendering failed: {type(exc).__name__}: {exc}"
    metrics_path = work / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    if not metrics_path.exists():
        atomic_write_text(metrics_path, "{}\n")
    effective = {p.name: p.default for p in declared} | safe
    atomic_write_text(work / "params.yaml", yaml.safe_dump(effective, sort_keys=False, allow_unicode=True))
    exit_code = 0 if status == "ok" else 1
    from rca_toolkit.sources.db import redact_text

    run = {
        "notebook": str(path), "run_id": run_id, "toolkit_version": _toolkit_version(), "git_sha": _git_sha(path.resolve().parent),
        "database": database, "parameters": effective, "started_at": started.isoformat(),
        "ended_at": datetime.now(timezone.utc).isoformat(), "status": status, "exit_code": exit_code,
        "error": redact_text(error) if error else None, "failed_cell_execution_count": failed_cell,
        "kernel": kernel, "python": sys.version.split()[0], "papermill": papermill.__version__,
    }
    atomic_write_text(work / "run.json", json.dumps(run, indent=2, default=str) + "\n")
    _scrub(work, passwords)
    os.rename(work, final)
    return RunResult(path, final, status, exit_code, run["error"], metrics)


def notebook_paths(*folders: str | Path) -> list[Path]:
    """Every ``*.ipynb`` (checkpoints excluded) under the given folders, sorted."""
    out: list[Path] = []
    for folder in folders:
        out += [p for p in sorted(Path(folder).glob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
    return out


__all__ = [
    "Parameter", "RunResult", "load_params_file", "notebook_paths", "open_db", "param_value", "parameters_cell", "parse_parameters",
    "project_path", "read_parameters", "record_metrics", "run_dir", "run_notebook", "save_figure", "save_text", "validate",
]
