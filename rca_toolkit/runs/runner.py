"""Notebook runs on the host: validated parameters, papermill, immutable run folders.

Parameters are read and validated before any cell runs (:mod:`rca_toolkit.runs.parameters`).

Secrets: papermill writes parameters into the executed notebook, so a value that carries a
password (any ``scheme://user:password@`` text, e.g. ``db_url``) is injected *redacted* and
the real value travels to the kernel in the environment variable ``RCA_PARAM_<NAME>``.
Inside the notebook :func:`rca_toolkit.runs.kernel.open_db` / :func:`~rca_toolkit.runs.kernel.param_value`
give the real value back. Every file of the run folder is written, or finally passed, through the
one writer (:mod:`rca_toolkit.runs.output`): credentials redacted in every form, personal data masked
unless the run shows it (``--show-personal-data``, recorded in ``run.json``).

Run folder ``<out>/<notebook stem>/<run id>/`` (run id = UTC time + random suffix) holds the
executed notebook, ``report.html``, ``report.md``, ``metrics.json``, ``params.yaml``,
``run.json`` and ``figures/``. It is built in a hidden ``.partial`` folder and renamed into
place at the end, so a run folder is complete or absent. In a run, ``RCA_RUN_DIR`` points
at it and the kernel-side helpers (:mod:`rca_toolkit.runs.kernel`) write there. ``run.json``
carries the signature ``"generator": "rca_toolkit/<version>"`` that proves the folder is the
toolkit's (:mod:`rca_toolkit.runs.ownership`); ``--out`` inside a run folder, or on a file, is refused.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rca_toolkit.errors import ConfigError
from rca_toolkit.outcome import Outcome
from rca_toolkit.runs import output, ownership
from rca_toolkit.runs.kernel import NOTEBOOK_ENV, RUN_DIR_ENV, env_name
from rca_toolkit.runs.parameters import Parameter, read_parameters, validate

log = logging.getLogger(__name__)
# The kernel's own log is silenced: the "KeyboardInterrupt caught" that jupyter_client's interrupt-before-shutdown
# sometimes provokes says nothing about the notebook. A failing cell or a dead kernel is reported by papermill.
QUIET_KERNEL = ["--IPKernelApp.log_level=CRITICAL"]


# --------------------------------------------------------------------------- secrets
def split_secrets(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """(values safe to write, env vars carrying the real values, passwords to scrub as typed and URL-encoded)."""
    from rca_toolkit.sources.credentials import secret_forms
    from rca_toolkit.sources.db import redact_text, redact_url

    safe, env, passwords = dict(values), {}, []
    for name, value in values.items():
        if not isinstance(value, str) or "://" not in value:
            continue
        redacted = redact_url(value) if name.endswith("_url") else redact_text(value)
        if redacted == value:
            continue
        safe[name], env[env_name(name)] = redacted, value
        passwords += secret_forms(value)  # user-info and every *password query key, raw @ / ? # included
    return safe, env, passwords


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
    """Where a run went and how it ended (``status`` ok / failed / error).

    ``outcome``: CLEAR when every cell ran; BAD_INPUT when a cell failed on an ``RcaError`` (the
    toolkit named a wrong input: a missing table, an unreachable database); INTERNAL_ERROR for any
    other failure (a bug, a crashed kernel, a report that could not be rendered). A verdict the
    notebook recorded is not part of it (callers read ``metrics``)."""

    notebook: Path
    run_dir: Path
    status: str
    outcome: Outcome
    error: str | None
    metrics: dict

    def to_dict(self) -> dict:
        return {"notebook": str(self.notebook), "run_dir": str(self.run_dir), "status": self.status,
                "outcome": self.outcome.value, "error": self.error}


def _git_sha(folder: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _check_database(values: dict, declared: list[Parameter]) -> None:
    """A ``db_url`` given to the run must be one the kernel can open: checked on the host, before a run
    folder or a kernel exists (the URL parses, its options are allowed, a profile resolves, a SQLite
    file is a database, the server answers), as ``rca report health`` checks its database. Empty means
    the configured default, which the notebook may not need (a call timeline from a file)."""
    from rca_toolkit.sources.db import check_reachable

    if "db_url" not in {p.name for p in declared}:
        return
    raw = values.get("db_url") or next(p.default for p in declared if p.name == "db_url")
    if raw:
        check_reachable(raw)


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


KERNEL_STARTS = 3  # a kernel that dies before its first reply, or hangs without one, is started again (no cell
# has run then): seen in `make demo` right after a test run, when kernels still talked over TCP (_kernel_sockets)
KERNEL_START_TIMEOUT = 60  # seconds a kernel has to answer its first request (papermill's default)
MAX_SOCKET_PATH = 96  # bytes of a kernel socket's path before its "-<port>": a unix socket's path holds 103 on macOS


@contextmanager
def _kernel_sockets():
    """The kernel's sockets as unix sockets in a folder of this start's own (jupyter_client's ``ipc`` transport).
    Why: over TCP jupyter_client picks free ports and the kernel binds them later, so two kernels started at once
    (``rca demo-reports`` runs two, the tests run on two workers) could race for a port: one died before its first
    reply, or its client hung waiting for one. Files in a folder of one start's own cannot collide."""
    from traitlets.config import Config

    folder = tempfile.mkdtemp(prefix="rca-kernel-")
    ip = os.path.join(folder, "kernel")
    try:  # under a TMPDIR too long for a socket's path, TCP as before
        yield Config({"KernelManager": {"transport": "ipc", "ip": ip}}) if len(os.fsencode(ip)) <= MAX_SOCKET_PATH else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _kernel_did_not_start(exc: Exception) -> bool:
    """The kernel died or hung before it answered ``kernel_info``: nothing of the notebook ran, a new start is safe."""
    return "before replying to kernel_info" in str(exc) or "Kernel didn't respond in" in str(exc)


def run_notebook(path: str | Path, params: dict | None = None, *, db: str | None = None, out_dir: str | Path | None = None,
                 kernel_name: str | None = None, progress: bool | None = None,
                 show_personal_data: bool = False) -> RunResult:
    """Validate parameters, execute with papermill and build the run folder atomically.

    Raises ``ConfigError`` before anything runs when a name or value is wrong. A failing
    cell does not raise: the run folder keeps the executed notebook and ``status='failed'``.
    Every file goes through the one writer (``runs/output``): credentials out, personal data masked
    unless ``show_personal_data`` (recorded in run.json as ``personal_data`` and shown on the report).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from rca_toolkit.config import load_settings, progress_enabled
    from rca_toolkit.runs.render import write_reports

    path = Path(path)
    declared = read_parameters(path)
    given = dict(params or {})
    if db is not None:
        if "db_url" not in {p.name for p in declared}:
            raise ConfigError(f"{path.name} takes no database (it declares no db_url parameter)", hint="drop --db")
        given["db_url"] = db
    values = validate(declared, given, notebook=path.name)
    _check_database(values, declared)
    safe, env, passwords = split_secrets(values)
    policy = output.Policy(show_personal_data, secrets=frozenset(passwords))
    if show_personal_data:
        env[output.SHOW_ENV] = "1"
    started = datetime.now(timezone.utc)
    run_id = new_run_id(started)
    out = Path(out_dir or load_settings().reports_dir)
    ownership.check_output_folder(out)
    ownership.check_output_folder(out / path.stem)
    root = out / path.stem
    final, work = root / run_id, root / f".{run_id}.partial"
    work.mkdir(parents=True)
    executed = work / path.name
    if progress is None:
        progress = progress_enabled() and sys.stderr.isatty()
    import nbformat  # lazily: its jsonschema/rfc3987 import costs seconds in every kernel

    nb = nbformat.read(str(path), as_version=4)
    kernel = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    status, error, failed_cell, outcome = "ok", None, None, Outcome.CLEAR
    try:
        with _environ({**env, RUN_DIR_ENV: str(work.resolve()), NOTEBOOK_ENV: str(path.resolve())}):
            for attempt in range(KERNEL_STARTS):
                try:
                    with _kernel_sockets() as sockets:
                        papermill.execute_notebook(str(path), str(executed), parameters=safe, kernel_name=kernel,
                                                   progress_bar=progress, log_output=False, extra_arguments=QUIET_KERNEL,
                                                   start_timeout=KERNEL_START_TIMEOUT, config=sockets)
                    break
                except RuntimeError as exc:
                    if not _kernel_did_not_start(exc) or attempt == KERNEL_STARTS - 1:
                        raise
    except PapermillExecutionError as exc:
        status, error, failed_cell = "failed", f"{exc.ename}: {exc.evalue}".splitlines()[0], exc.exec_count
        outcome = Outcome.of_failure(exc.ename)
    except Exception as exc:  # noqa: BLE001 - kernel could not start or died: recorded, never hidden
        status, error = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        outcome = Outcome.INTERNAL_ERROR
    database = _database_label(values, declared)
    shown = "SHOWN (--show-personal-data)" if show_personal_data else "masked"
    meta = f"{path.name} · run {run_id} · status {status} · database {database or '-'} · personal data {shown}"
    policy = policy.knowing(*output.take_names(work))  # the names the notebook found in its data
    if executed.exists():  # papermill wrote it: through the writer before anything is rendered from it
        policy = output.clean_folder(work, policy)
        try:
            write_reports(executed, work, title=f"{path.stem} ({run_id})", meta=meta, policy=policy)
        except Exception as exc:  # noqa: BLE001 - the run record must still be written
            status, error = "error", f"report rendering failed: {type(exc).__name__}: {exc}"
            outcome = Outcome.INTERNAL_ERROR
    metrics_path = work / "metrics.json"
    if not metrics_path.exists():
        output.write_json(metrics_path, {}, policy)
    effective = {p.name: p.default for p in declared} | safe
    output.write_yaml(work / "params.yaml", effective, policy)
    run = {
        "generator": ownership.generator(), "notebook": str(path), "run_id": run_id,
        "toolkit_version": ownership.toolkit_version(), "git_sha": _git_sha(path.resolve().parent),
        "database": database, "parameters": effective, "started_at": started.isoformat(),
        "ended_at": datetime.now(timezone.utc).isoformat(), "status": status, "outcome": outcome.value,
        "error": policy.text(error) if error else None, "failed_cell_execution_count": failed_cell,
        "kernel": kernel, "python": sys.version.split()[0], "papermill": papermill.__version__,
        "personal_data": policy.personal_data,
    }
    output.write_json(work / "run.json", run, policy)
    output.clean_folder(work, policy)  # the last pass: every file of the folder, whoever wrote it
    metrics = _read_json(metrics_path)
    os.rename(work, final)
    log.info("run of %s: status %s, outcome %s, folder %s", path.name, status, outcome.value, final)
    checks = metrics.get("checks") if isinstance(metrics.get("checks"), dict) else {}
    for check, check_status in checks.items():  # a runbook's checks ran in the kernel: their results, here
        log.info("%s check %r: %s", metrics.get("runbook", path.stem), check, check_status)
    return RunResult(path, final, status, outcome, run["error"], metrics)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def notebook_paths(*folders: str | Path) -> list[Path]:
    """Every ``*.ipynb`` (checkpoints excluded) under the given folders, sorted."""
    out: list[Path] = []
    for folder in folders:
        out += [p for p in sorted(Path(folder).glob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
    return out


__all__ = ["RunResult", "notebook_paths", "run_notebook", "split_secrets"]
