"""The index of every run under ``reports/``: ``index.json`` and a self-contained ``index.html``.

Why: a scheduled report nobody can find is a report nobody reads. After every run the index
is rebuilt from the run folders themselves (each has ``run.json`` and ``metrics.json`` written
by the notebook runner), so it can never disagree with what is on disk. Newest run first;
each row has the run time, notebook, parameters, status, verdict, key numbers and a relative
link to ``report.html``. The HTML has inline CSS, no scripts and no remote resources, so it
opens offline from a file manager or a CI artefact. Both files go through the one writer
(``runs/output``) with its default policy: the index is shared, so personal data is masked in it
even for a run that showed it.
"""

from __future__ import annotations

import html
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from rca_toolkit.analyses.tables import count, cut_html
from rca_toolkit.runs import output
from rca_toolkit.runs.locks import file_lock
from rca_toolkit.runs.summary import NOTHING_SAID, summary_lines

INDEX_JSON = "index.json"
INDEX_HTML = "index.html"
MAX_KEY_NUMBERS = 8
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;font-size:.9em;width:100%;table-layout:fixed}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f6f8fa;position:sticky;top:0}tr:nth-child(even){background:#fbfbfc}
.v{font-weight:700;padding:.05em .45em;border-radius:.3em;white-space:nowrap}.v-OK,.v-PASS,.v-CLEAR{background:#dafbe1;color:#1a7f37}
.v-WATCH,.v-WARN{background:#fff8c5;color:#9a6700}.v-ACT,.v-FAIL,.v-FOUND{background:#ffebe9;color:#cf222e}.v-ERROR{background:#fbefff;color:#8250df}
.s-failed,.s-error{color:#cf222e;font-weight:700}
.kn{font-size:.85em;white-space:pre-line}.muted{color:#57606a}.nb{font-weight:600}
"""


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _parse_time(text) -> datetime | None:
    if not text:
        return None
    try:
        ts = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _key_numbers(metrics: dict) -> dict:
    """The notebook's own ``key_numbers`` if it recorded them, else its first scalar metrics."""
    chosen = metrics.get("key_numbers")
    if isinstance(chosen, dict):
        return chosen
    scalars = {k: v for k, v in sorted(metrics.items())
               if k not in ("verdict", "verdict_line") and isinstance(v, (int, float, str, bool)) and len(str(v)) <= 40}
    return dict(list(scalars.items())[:MAX_KEY_NUMBERS])


def _count(value):
    """A whole number as the reports write it (``tables.count``: ``1,031,316``); anything else as recorded."""
    return count(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _run_folders(root: Path):
    """Folders holding ``run.json``; hidden (staging/partial) folders are skipped."""
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "run.json" in files:
            dirs[:] = []  # a run folder never contains another run
            yield Path(current)


def collect(root: str | Path) -> list[dict]:
    """One entry per run folder under ``root``, newest first (by the run's start time)."""
    root = Path(root)
    entries = []
    for folder in _run_folders(root) if root.is_dir() else []:
        run = _read_json(folder / "run.json")
        metrics = _read_json(folder / "metrics.json")
        started, ended = _parse_time(run.get("started_at")), _parse_time(run.get("ended_at"))
        if ended is None:
            ended = datetime.fromtimestamp((folder / "run.json").stat().st_mtime, tz=timezone.utc)
        rel = folder.relative_to(root).as_posix()
        params = run.get("parameters") if isinstance(run.get("parameters"), dict) else {}
        report = folder / "report.html"
        entries.append({
            "path": rel,
            "notebook": Path(str(run.get("notebook") or folder.parent.name)).stem,
            "run_id": run.get("run_id"),
            "started_at": run.get("started_at"),
            "ended_at": run.get("ended_at"),
            "ended_dt": ended,
            "date": params.get("period_start") or (started or ended).date().isoformat(),
            "parameters": params,
            "database": run.get("database"),
            "status": run.get("status", "unknown"),
            "outcome": run.get("outcome"),
            "error": run.get("error"),
            "personal_data": run.get("personal_data"),
            "verdict": metrics.get("verdict"),
            "verdict_line": metrics.get("verdict_line"),
            # what a run that judges nothing found (the comparison's "The fix was partial: ..."), as its report's block
            "summary": [] if metrics.get("verdict_line") or not metrics else
                       [line for line in summary_lines(metrics) if line != NOTHING_SAID],
            "key_numbers": _key_numbers(metrics),
            "report": f"{rel}/report.html" if report.exists() else None,
            "_sort": (started or ended).isoformat(),
        })
    entries.sort(key=lambda e: (e["_sort"], e["path"]), reverse=True)
    return entries


def _public(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("ended_dt", "_sort")}


REASON_CHARS = 180  # a verdict line longer than this is cut; the whole line is the cell's tooltip
PARAMS_CHARS = 90
_COLUMNS = [("started", "8em"), ("notebook", "12em"), ("covers", "14em"), ("result", "5.5em"), ("reason", "auto"),
            ("key numbers", "15em"), ("links", "6.5em")]


def _local_minute(text) -> str:
    """A run's start in the report zone to the minute (``2026-01-02 07:30 CET``); the raw text if unreadable."""
    ts = _parse_time(text)
    if ts is None:
        return str(text or "")
    from zoneinfo import ZoneInfo

    from rca_toolkit.config import load_settings

    return ts.astimezone(ZoneInfo(load_settings().source_tz)).strftime("%Y-%m-%d %H:%M %Z")


def _covers(e: dict) -> str:
    """What the run looked at: a health report's day, else its parameters (cut, the rest in the tooltip)."""
    params = e["parameters"]
    if params.get("period_start"):
        return html.escape(f"{params['period_start']} ({params.get('period', '1d')})")
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if v not in ("", None, 0) and k != "db_url")
    return cut_html(shown, PARAMS_CHARS) if shown else '<span class="muted">defaults</span>'


def render_html(entries: list[dict], *, generated: str) -> str:
    """The index page (pure function of the entries): one row per run, newest first, fitting a 1400 px window."""
    rows = []
    for e in entries:
        verdict = e.get("verdict")
        status = str(e["status"])
        if verdict:
            result = f'<span class="v v-{html.escape(verdict)}">{html.escape(verdict)}</span>'
        else:
            result = f'<span class="s-{html.escape(status)}">{html.escape(status)}</span>'
        line = cut_html(e.get("verdict_line") or e.get("error") or " ".join(e.get("summary") or []), REASON_CHARS)
        numbers = "\n".join(cut_html(f"{k}: {_count(v)}", 40) for k, v in list(e["key_numbers"].items())[:MAX_KEY_NUMBERS])
        name = html.escape(e["notebook"])
        folder = html.escape(e["path"], quote=True)
        if e["report"]:
            name = f'<a class="nb" href="{html.escape(e["report"], quote=True)}">{name}</a>'
            links = f'<a href="{html.escape(e["report"], quote=True)}">report</a> · <a href="{folder}/">folder</a>'
        else:
            links = f'<a href="{folder}/">folder</a>'
        rows.append(f"<tr><td>{html.escape(_local_minute(e.get('started_at')))}</td><td>{name}</td><td>{_covers(e)}</td>"
                    f"<td>{result}</td><td>{line}</td><td class=\"kn\">{numbers}</td><td>{links}</td></tr>")
    body = "\n".join(rows) if rows else f'<tr><td colspan="{len(_COLUMNS)}" class="muted">no runs yet</td></tr>'
    cols = "".join(f'<col style="width:{w}">' for _, w in _COLUMNS)
    heads = "".join(f"<th>{h}</th>" for h, _ in _COLUMNS)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rca reports</title>"
        f"<style>{_CSS}</style></head><body>\n<h1>rca reports</h1>\n"
        f"<p class=\"muted\">{len(entries)} runs, newest first · generated {html.escape(_local_minute(generated))} · "
        "exit codes: 0 OK/WATCH/PASS/WARN/CLEAR, 1 ACT/FAIL/FOUND, 2 bad input, 3 internal error · "
        "a cut text shows in full when the pointer rests on it</p>\n"
        f"<table><colgroup>{cols}</colgroup><thead><tr>{heads}</tr></thead>\n<tbody>\n"
        f"{body}\n</tbody></table>\n</body></html>\n")


def write_index(root: str | Path) -> tuple[Path, Path]:
    """Rebuild ``index.json`` and ``index.html`` under ``root`` (locked, each file replaced atomically)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".index.lock", what="the report index"):
        entries = collect(root)
        generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
        payload = {"generated_at": generated, "count": len(entries), "runs": [_public(e) for e in entries]}
        json_path = output.write_json(root / INDEX_JSON, payload)  # the default policy: secrets out, personal data masked
        html_path = output.write_text(root / INDEX_HTML, render_html(entries, generated=generated))
    return json_path, html_path
