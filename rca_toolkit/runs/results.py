"""A notebook's results (metrics and figures) wherever it ran, and the one reader that gives them back.

Why: ``rca run`` writes ``metrics.json`` and ``figures/`` into its run folder, but a notebook executed
by plain papermill (``papermill notebooks/call_timeline.ipynb out.ipynb -p ...``) or by Airflow's
papermill operator has no run folder. So every recorded metric and figure is also

- **recorded in the notebook itself**, as scrapbook data scraps: a display output whose data holds
  ``application/scrapbook.scrap.json+json`` = ``{"name", "data", "encoder": "json", "version": 1}`` and
  whose metadata holds ``{"scrapbook": {"name", "data": true, "display": false}}``, exactly what
  ``scrapbook.glue`` writes, so ``scrapbook.read_notebook(path).scraps`` reads them too. The metrics are
  one scrap ``metrics`` (cumulative: the last one holds every value), each figure a scrap
  ``figure:<name>`` with the PNG as base64. A ``text/plain`` line says what was recorded (what a reader of
  the notebook and JupyterLab show instead of "no renderer");
- **written beside the output notebook** (``<output stem>_results/metrics.json`` and
  ``figures/<name>.png``, through the one writer, :mod:`rca_toolkit.runs.output`) when the kernel can
  tell where papermill writes it: ``RCA_OUTPUT_NOTEBOOK`` in the environment, papermill's injected
  ``PAPERMILL_OUTPUT_PATH`` (``--inject-output-path``), else the command line of the ``papermill``
  process that started the kernel, parsed by papermill's own parser.

:func:`read` returns ``{"metrics": {...}, "figures": {name: png bytes}, "source": ...}`` for an executed
notebook: from its scraps, else from the files beside it or from its run folder.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

SCRAP_MIME = "application/scrapbook.scrap.json+json"
SCRAP_PREFIX = "application/scrapbook.scrap."
METRICS = "metrics"
FIGURE_PREFIX = "figure:"
OUTPUT_ENV = "RCA_OUTPUT_NOTEBOOK"  # the output notebook's path, for runners papermill's command line does not show
_recorded: dict[str, Any] = {}  # this kernel's metrics so far (each scrap carries them all)


# --------------------------------------------------------------------------- in the kernel
def _shell():
    """The IPython kernel shell when this code runs inside one (never imports IPython itself)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def glue(name: str, data: Any, summary: str) -> bool:
    """Record ``data`` in the notebook as the scrapbook data scrap ``name`` (False outside a kernel)."""
    if _shell() is None:
        return False
    from IPython.display import display

    payload = {"name": name, "data": data, "encoder": "json", "version": 1}
    shown = {} if os.environ.get("RCA_RUN_DIR") else {"text/plain": summary}  # an rca report shows nothing of it
    display({SCRAP_MIME: payload, **shown}, metadata={"scrapbook": {"name": name, "data": True, "display": False}},
            raw=True)
    return True


def glue_metrics(metrics: dict) -> dict:
    """Merge ``metrics`` (JSON-safe) into this kernel's and record them all as the scrap ``metrics``."""
    _recorded.update(metrics)
    glue(METRICS, dict(_recorded), f"recorded {len(_recorded)} metrics (read them with rca_toolkit.runs.results.read)")
    return dict(_recorded)


def glue_figure(name: str, png: bytes) -> None:
    """Record a figure's PNG as the scrap ``figure:<name>``."""
    glue(FIGURE_PREFIX + name, {"format": "png", "base64": base64.b64encode(png).decode("ascii")},
         f"recorded figure {name}")


def record_metrics(metrics: dict) -> Path | None:
    """Without a run folder: the notebook's scrap and ``metrics.json`` beside the output notebook (its path,
    or None when the output notebook is unknown, e.g. interactively)."""
    merged = glue_metrics(metrics)
    folder = results_dir()
    if folder is None:
        return None
    from rca_toolkit.runs import output

    return output.write_json(folder / "metrics.json", output.names_sorted(merged), output.Policy())


def save_figure(name: str, png: bytes) -> Path | None:
    """Without a run folder: the figure's scrap and ``figures/<name>.png`` beside the output notebook."""
    glue_figure(name, png)
    folder = results_dir()
    if folder is None:
        return None
    from rca_toolkit.runs import output

    return output.write_bytes(folder / "figures" / f"{name}.png", png, output.Policy())


def results_dir() -> Path | None:
    """``<output stem>_results/`` beside the notebook papermill is writing, if the kernel can tell which."""
    notebook = output_notebook()
    return None if notebook is None else notebook.parent / f"{notebook.stem}_results"


def output_notebook() -> Path | None:
    """Where papermill writes the executed notebook (a local path), or None when it cannot be told."""
    given = os.environ.get(OUTPUT_ENV)
    shell = _shell()
    injected = shell.user_ns.get("PAPERMILL_OUTPUT_PATH") if shell is not None else None
    return _local(given) or _local(injected) or _papermill_output()


def _local(path: Any, cwd: Path | None = None) -> Path | None:
    """A local file path (no ``s3://``-style URL, not ``-`` for stdout), made absolute against ``cwd``."""
    if not isinstance(path, str) or not path or path == "-" or "://" in path:
        return None
    p = Path(path)
    return p if p.is_absolute() else (cwd or Path.cwd()) / p


# papermill's options that take values (papermill 2.x ``--help``), to find its two positional arguments
PAPERMILL_VALUE_OPTIONS = {"-p": 2, "--parameters": 2, "-r": 2, "--parameters_raw": 2, "-f": 1, "--parameters_file": 1,
                     "-y": 1, "--parameters_yaml": 1, "-b": 1, "--parameters_base64": 1, "--cwd": 1, "--engine": 1,
                     "--autosave-cell-every": 1, "-k": 1, "--kernel": 1, "-l": 1, "--language": 1, "--log-level": 1,
                     "--stdout-file": 1, "--stderr-file": 1, "--start-timeout": 1, "--start_timeout": 1,
                     "--execution-timeout": 1}


def papermill_positionals(args: list[str]) -> list[str]:
    """The positional arguments of a papermill command line (input and output notebook), options skipped."""
    out, i = [], 0
    while i < len(args):
        token = args[i]
        if token == "--":
            return out + args[i + 1:]
        if token.startswith("--") and "=" in token:
            i += 1
        elif token in PAPERMILL_VALUE_OPTIONS:
            i += 1 + PAPERMILL_VALUE_OPTIONS[token]
        elif token[:2] in PAPERMILL_VALUE_OPTIONS and len(token) > 2:  # a short option with its first value attached
            i += PAPERMILL_VALUE_OPTIONS[token[:2]]
        elif token.startswith("-") and token != "-":
            i += 1
        else:
            out.append(token)
            i += 1
    return out


@lru_cache(maxsize=1)
def _papermill_output() -> Path | None:
    """The output path on the command line of the ``papermill`` process that started this kernel (Linux
    ``/proc``). Two ``.ipynb`` positionals are taken as they are; anything less plain is read by papermill's
    own click parser (which costs a second of imports, so only then)."""
    parent = Path("/proc") / str(os.getppid())
    try:
        argv = (parent / "cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(parent / "cwd"))
    except OSError:
        return None
    args = [a.decode("utf-8", "surrogateescape") for a in argv if a]
    at = next((i for i, a in enumerate(args) if Path(a).name == "papermill"), None)
    if at is None:
        return None
    positionals = papermill_positionals(args[at + 1:])
    if len(positionals) == 2 and all(p.lower().endswith(".ipynb") for p in positionals):
        return _local(positionals[1], cwd)
    try:
        from papermill.cli import papermill as command

        context = command.make_context("papermill", args[at + 1:], resilient_parsing=True)
    except Exception:  # noqa: BLE001 - not a papermill command line we can read: the scraps still hold the results
        return None
    return _local(context.params.get("output_path"), cwd)


# --------------------------------------------------------------------------- the reader
def scraps(notebook: dict) -> dict[str, Any]:
    """The JSON data scraps of a notebook document (scrapbook's rule: the last one of a name wins)."""
    found: dict[str, Any] = {}
    for cell in notebook.get("cells", []):
        for out in cell.get("outputs", []) or []:
            for mime, payload in (out.get("data") or {}).items():
                if mime.startswith(SCRAP_PREFIX) and isinstance(payload, dict) and "name" in payload:
                    found[payload["name"]] = payload.get("data")
    return found


def read(notebook_path: str | Path) -> dict:
    """The metrics and figures of an executed notebook: ``{"metrics": dict, "figures": {name: png bytes},
    "source": "notebook" | "files" | "run folder" | "none"}``.

    From the scraps recorded in the notebook; if it holds none (a run of an older toolkit), from
    ``<stem>_results/`` beside it or from the run folder it lies in (``metrics.json``, ``figures/``).
    """
    from rca_toolkit.errors import InputFormatError, NotFound

    path = Path(notebook_path)
    if not path.is_file():
        raise NotFound(f"notebook {path} does not exist", hint="give the path of an executed notebook")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFormatError(f"{path} is not a readable notebook: {exc}", hint="give an .ipynb file") from None
    found = scraps(document) if isinstance(document, dict) else {}
    figures = {name[len(FIGURE_PREFIX):]: base64.b64decode(data["base64"]) for name, data in found.items()
               if name.startswith(FIGURE_PREFIX) and isinstance(data, dict) and "base64" in data}
    if METRICS in found or figures:
        return {"metrics": dict(found.get(METRICS) or {}), "figures": figures, "source": "notebook"}
    for folder, source in ((path.parent / f"{path.stem}_results", "files"), (path.parent, "run folder")):
        if (folder / "metrics.json").is_file() and (source == "files" or (folder / "run.json").is_file()):
            try:
                metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
                pngs = {p.stem: p.read_bytes() for p in sorted((folder / "figures").glob("*.png"))}
            except (OSError, ValueError) as exc:
                raise InputFormatError(f"{folder / 'metrics.json'} is not readable JSON: {exc}",
                                       hint="re-run the notebook, or repair or delete that file") from None
            return {"metrics": metrics if isinstance(metrics, dict) else {}, "figures": pngs, "source": source}
    return {"metrics": {}, "figures": {}, "source": "none"}


__all__ = ["FIGURE_PREFIX", "METRICS", "OUTPUT_ENV", "PAPERMILL_VALUE_OPTIONS", "SCRAP_MIME", "glue", "glue_figure", "glue_metrics",
           "output_notebook", "papermill_positionals",
           "read", "record_metrics", "results_dir", "save_figure", "scraps"]
