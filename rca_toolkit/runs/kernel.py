"""What a notebook calls inside its kernel: the database, real parameter values, and the run folder.

Secrets: papermill writes parameters into the executed notebook, so the runner
(:mod:`rca_toolkit.runs.runner`) injects a value that carries a password *redacted* and passes
the real value in the environment variable ``RCA_PARAM_<NAME>`` (:func:`env_name`); here
:func:`open_db` / :func:`param_value` give the real value back.

In a run, ``RCA_NOTEBOOK`` names the notebook (:func:`project_path` finds default paths in the project it
ships in) and ``RCA_RUN_DIR`` points at the run folder being built and :func:`record_metrics`,
:func:`save_figure` and :func:`save_text` write there, through the one writer (``runs/output``:
credentials redacted, personal data masked unless the run shows it). Metrics and figures are also
recorded in the notebook itself, and a plain papermill run writes them beside its output notebook
(``runs/results``); interactively :func:`save_text` does nothing and they return None. :func:`declare_personal_data` tells the writer which customer names the data names.
:func:`figure_png` / :func:`figure_bundle` render a figure once for both the saved PNG and the inline
image with its alt text (``runs/plots.ReportFigure`` shows itself through them).
This module stays light (no papermill, no nbformat): every kernel imports it.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

from rca_toolkit.rules.jsonutil import json_default
from rca_toolkit.errors import ConfigError

_FIGURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")
RUN_DIR_ENV = "RCA_RUN_DIR"
NOTEBOOK_ENV = "RCA_NOTEBOOK"  # the runner sets it to the notebook's path: the project it ships in is found from it


def env_name(param: str) -> str:
    """The environment variable that carries the real value of parameter ``param`` into the kernel."""
    from rca_toolkit.runs.output import PARAM_ENV_PREFIX

    return f"{PARAM_ENV_PREFIX}{param.upper()}"


# --------------------------------------------------------------------------- database and parameters
def param_value(name: str, value: Any) -> Any:
    """The real value of a parameter that the runner injected redacted (else ``value``)."""
    from rca_toolkit.sources.db import redact_text, redact_url

    real = os.environ.get(env_name(name))
    if isinstance(value, str) and real and value in (redact_url(real), redact_text(real)):
        return real
    return value


def open_db(db_url: str = "", *, cached: bool = False):
    """Read-only engine for a notebook's ``db_url`` parameter ('' = configured default).

    A relative SQLite path (the default ``data/demo.sqlite``) is also looked up in parent
    folders, so the same notebook runs from the project root and from ``runbooks/``. ``cached`` (the report
    notebooks that count over windows): the database's local store, refreshed first, when the ``cache``
    setting says so (``loaders.engine_for``); runbooks check the live database and leave it False.
    """
    from sqlalchemy.engine import make_url

    from rca_toolkit.config import load_settings
    from rca_toolkit.sources.db import redact_url
    from rca_toolkit.sources.loaders import engine_for

    real = param_value("db_url", db_url) or load_settings().database_url
    if real.startswith("sqlite:///") and not real.startswith("sqlite:////"):
        path = make_url(real).database or ""
        real = f"sqlite:///{project_path(path)}" if path else real  # relative demo file from a notebook folder
    engine = engine_for(real, cached=cached)
    if not getattr(engine, "rca_store", None):  # a store's label names its source already
        engine.rca_label = redact_url(real)  # read-only SQLite engines have the bare URL sqlite://
    return engine


def db_label(engine) -> str:
    """The redacted URL to show for an engine (the file path for read-only SQLite)."""
    from rca_toolkit.sources.db import redact_url

    return getattr(engine, "rca_label", None) or redact_url(engine.url)


def project_path(text: str) -> str:
    """A relative path as given if it exists here, else found in the project the notebook ships in (the
    parent of its folder, from ``RCA_NOTEBOOK``), else in a parent folder ('' stays '').

    nbval starts kernels in the notebook's folder and ``rca run`` in the working directory, which may be
    outside the checkout (``cd /tmp; rca demo-reports``); this lets a default like ``tests/fixtures/...``
    work from all of them.
    """
    if not text or Path(text).is_absolute() or Path(text).exists():
        return text
    notebook = os.environ.get(NOTEBOOK_ENV)
    folders = [Path(notebook).resolve().parent.parent] if notebook else []
    for folder in folders + list(Path.cwd().resolve().parents):
        if (folder / text).exists():
            return str(folder / text)
    return text


# --------------------------------------------------------------------------- in-notebook helpers
def run_dir() -> Path | None:
    """The run folder of the current papermill run, or None in interactive use."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def record_metrics(metrics: dict) -> Path | None:
    """Merge ``metrics`` into ``metrics.json`` of the current run. Also recorded in the notebook itself, and
    without a run (plain papermill) written beside the output notebook (``runs/results``); None interactively."""
    from rca_toolkit.runs import results

    clean = json.loads(json.dumps(metrics, default=json_default))
    folder = run_dir()
    if folder is None:
        return results.record_metrics(clean)
    from rca_toolkit.runs import output

    path = folder / "metrics.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(clean)
    results.glue_metrics(clean)
    return output.write_json(path, output.names_sorted(current), output.run_policy(folder))


def save_figure(fig, name: str, *, dpi: int = 110) -> Path | None:
    """Save a matplotlib figure as ``figures/<name>.png`` of the current run; None interactively."""
    if not _FIGURE_NAME.match(name):
        raise ConfigError(f"figure name {name!r} is not a plain file name", hint="use letters, digits, - _ .")
    from rca_toolkit.runs import results

    folder = run_dir()
    stem = name[:-4] if name.endswith(".png") else name
    png = figure_png(fig, dpi=dpi)
    if folder is None:  # plain papermill: in the notebook and beside its output (runs/results); None interactively
        return results.save_figure(stem, png)
    from rca_toolkit.runs import output

    results.glue_figure(stem, png)
    return output.write_bytes(folder / "figures" / f"{stem}.png", png, output.run_policy(folder))


# --------------------------------------------------------------------------- figure display
def figure_png(fig, *, dpi: int = 110) -> bytes:
    """The PNG bytes of a matplotlib figure (in memory): the saved file and the inline image are the same."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def figure_bundle(fig, alt: str, *, dpi: int = 110) -> tuple[dict, dict]:
    """(data, metadata) for IPython's ``_repr_mimebundle_``: the PNG inline with its ``alt`` text.

    Why: the package's figures are headless ``Figure`` objects (no pyplot), which IPython shows as the
    text ``<Figure size ...>`` unless the figure itself offers an image; nbconvert writes ``alt`` from the
    output metadata into the report's ``<img>``."""
    import base64

    data = {"image/png": base64.b64encode(figure_png(fig, dpi=dpi)).decode("ascii"), "text/plain": alt}
    return data, {"image/png": {"alt": alt}}


def save_text(name: str, text: str) -> Path | None:
    """Save a text artefact (e.g. ``signoff.md``) into the current run; None interactively."""
    if not _FIGURE_NAME.match(name):
        raise ConfigError(f"file name {name!r} is not a plain file name", hint="use letters, digits, - _ .")
    folder = run_dir()
    if folder is None:
        return None
    from rca_toolkit.runs import output

    return output.write_text(folder / name, text, output.run_policy(folder))


def declare_personal_data(*data) -> None:
    """Tell the run's writer the customer names this data names (values of name keys such as
    ``customer_name`` in tool arguments or the customer record, names said in the transcript), so they
    are masked in every file of the run. Interactively (or with ``--show-personal-data``) it does nothing."""
    from rca_toolkit.rules.personal_data import names_in
    from rca_toolkit.runs import output

    folder = run_dir()
    if folder is not None and os.environ.get(output.SHOW_ENV) != "1":
        output.remember_names(folder, names_in(*data))


__all__ = ["NOTEBOOK_ENV", "RUN_DIR_ENV", "db_label", "declare_personal_data", "env_name", "figure_bundle", "figure_png", "open_db",
           "param_value", "project_path", "record_metrics", "run_dir", "save_figure", "save_text"]
