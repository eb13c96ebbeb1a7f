"""Executed notebook -> the report a person reads in 30 seconds, written atomically.

One layout for every notebook and runbook (Jinja2 templates in ``runs/templates/``): a title with
what and when (the day, window, change instant or call, from the run's parameters), the run line
(notebook, run, status, database label redacted by the runner), then the verdict block
(``id="verdict"``: OK/WATCH/ACT or PASS/WARN/FAIL/ERROR and its one-line reasons, from the run's
``metrics.json``; SUMMARY with the key numbers for a notebook that judges nothing), then the key
figure (the notebook's first image, moved up), then the details: the notebook's cells without code,
rendered by nbconvert's ``basic`` template (images as data URIs with their alt text, wide tables in
their own horizontal scroller). Nothing is fetched from the network. ``report.md`` has the same order;
its images are written beside it under ``report_files/``.

Every file goes through the one writer (:mod:`rca_toolkit.runs.output`: temp file + ``os.replace``,
so a reader never sees half a report; credentials redacted, personal data masked by the run's policy).
"""

from __future__ import annotations

import ast
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter, MarkdownExporter
from traitlets.config import Config

from rca_toolkit.analyses import tables
from rca_toolkit.analyses.markdown import md_text
from rca_toolkit.runs import output
from rca_toolkit.runs.summary import summary_lines

TEMPLATES = Path(__file__).with_name("templates")
KEY_FIGURE = "report_files/key_figure.png"
_MOVED = "The figure is shown at the top of the report."
_FOLD_INTRO = 500  # characters of the first cell's text beyond which it is folded under "About this report"
# Attributes that make a browser fetch (links a reader clicks are fine): src of any tag, href of <link>.
_REMOTE = re.compile(r"""(<(?:[a-z]+)\b[^>]*?\bsrc\s*=\s*["']?|<link\b[^>]*?\bhref\s*=\s*["']?)(?:https?:)?//""",
                     re.IGNORECASE)
_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")  # nbformat's rule; an invalid id stops nbconvert
_VERDICT_WORDS = ("OK", "WATCH", "ACT", "PASS", "WARN", "FAIL", "ERROR", "FOUND", "CLEAR")  # FOUND, CLEAR: an incident's
_LEVEL_ORDER = {w: i for i, w in enumerate(("ERROR", "ACT", "FAIL", "WATCH", "WARN", "OK", "PASS"))}


# --------------------------------------------------------------------------- what the page shows
@dataclass
class Verdict:
    """The block at the top: a word, its one-line reason, the reasons (level, text) one a line, and counts."""

    word: str
    line: str = ""
    reasons: list[tuple[str, str]] = field(default_factory=list)
    counts: str = ""


@dataclass
class Layout:
    """Everything the templates need, taken from the executed notebook and its metrics."""

    title: str
    subtitle: str
    when: str
    meta: str
    synthetic: bool
    verdict: Verdict
    key_figure: dict | None
    nb: nbformat.NotebookNode

    @property
    def page_title(self) -> str:
        return f"{self.title} · {self.when}"


def _for_machines(out: dict) -> bool:
    """An output only a program reads (scrapbook's recorded metrics): nothing for the page."""
    data = out.get("data") or {}
    return bool(data) and all(key.startswith("application/scrapbook") for key in data)


def _visible(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Copy without the papermill injected-parameters cell (parameters are in params.yaml) and without
    outputs only a program reads (nbconvert cannot show them and would warn)."""
    out = nbformat.from_dict(nb)
    out.cells = [c for c in out.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for i, cell in enumerate(out.cells):
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if not _for_machines(o)]
        if "id" in cell and not _CELL_ID.match(str(cell.id)):  # e.g. an id the masking took for a number
            cell.id = f"cell-{i}"
    return out


def _literals(source: str) -> dict:
    """``name = literal`` / ``name: type = literal`` lines of a parameters cell (anything else ignored)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    values = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            try:
                values[target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return values


def parameters_of(nb: nbformat.NotebookNode) -> dict:
    """The values the run used: the parameters cell's defaults, overridden by papermill's injected cell."""
    values: dict = {}
    for tag in ("parameters", "injected-parameters"):
        for cell in nb.cells:
            if cell.cell_type == "code" and tag in cell.get("metadata", {}).get("tags", []):
                values.update(_literals(cell.source))
    return values


def _instant(text, tz: str | None = None) -> str:
    """An ISO instant as ``2025-10-18 13:20:08 +02:00`` (seconds only when not zero, never microseconds),
    in zone ``tz`` when given."""
    try:
        ts = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    if tz and ts.tzinfo is not None:
        from zoneinfo import ZoneInfo

        ts = ts.astimezone(ZoneInfo(tz))
    shown = ts.strftime("%Y-%m-%d %H:%M" + (":%S" if ts.second else ""))
    if ts.tzinfo is None:
        return shown
    offset = ts.strftime("%z")
    return f"{shown} UTC" if offset == "+0000" else f"{shown} {offset[:3]}:{offset[3:]}"


def when_of(params: dict, metrics: dict, *, now: datetime | None = None) -> str:
    """What the report covers in time: the day or week, the change or deploy instant, the window, the call."""
    from rca_toolkit.rules.timeutil import source_tz

    if params.get("period_start"):
        days = {"1d": 1, "7d": 7}.get(str(params.get("period")), 1)
        start = str(params["period_start"])
        if days == 1:
            return f"Day {start} ({source_tz()})"
        from datetime import date, timedelta

        try:
            last = (date.fromisoformat(start) + timedelta(days=days - 1)).isoformat()
        except ValueError:
            last = "?"
        return f"Week {start} to {last} ({source_tz()})"
    if params.get("change_at"):
        around = ", ".join(f"{params[k]} {k}" for k in ("before", "after") if params.get(k))
        return f"Change at {_instant(params['change_at'])}" + (f" ({around})" if around else "")
    if params.get("deployed_at"):
        text = f"Deploy at {_instant(params['deployed_at'])}"
        if params.get("window"):
            text += f", judged over {params['window']} after"
        return text + (f", as of {_instant(params['as_of'])}" if params.get("as_of") else "")
    window = metrics.get("window")
    for lo, hi in (("since", "until"), ("start", "end")):
        if params.get(lo) or params.get(hi):
            if isinstance(window, dict) and not (params.get(lo) and params.get(hi)):
                start, end = params.get(lo) or window.get("since"), params.get(hi) or window.get("until")
            else:
                start, end = params.get(lo), params.get(hi)
            return f"Window {_instant(start) if start else 'start of the data'} to {_instant(end) if end else 'now'}"
    if isinstance(window, dict) and window.get("since"):
        return f"Window {_instant(window['since'])} to {_instant(window.get('until') or 'now')}"
    if params.get("call_id"):
        started = (metrics.get("known") or {}).get("started_at") if isinstance(metrics.get("known"), dict) else None
        call = str(params["call_id"])
        return (call if call.startswith("call") else f"Call {call}") + (
            f", started {_instant(started, source_tz())} ({source_tz()})" if started else "")
    moment = now or datetime.now(timezone.utc)
    code = f"Code tree {params['code_path']}, " if params.get("code_path") else ""
    return f"{code}{'as' if code else 'As'} of {moment:%Y-%m-%d %H:%M} UTC"


def _title(nb: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """(title, subtitle) from the first ``# `` heading, which is taken out of the details."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("# "):
                cell.source = "\n".join(lines[:i] + lines[i + 1:]).strip("\n")
                if len(cell.source) > _FOLD_INTRO:  # when to use, safety, steps: for running it, one click away
                    cell.metadata["rca_fold"] = True
                head = line[2:].strip()
                name, _, rest = head.partition(": ")
                return (name, rest) if rest and len(head) > 60 else (head, "")
        break
    return fallback, ""


def _error(nb: nbformat.NotebookNode) -> str | None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename', 'Error')}: {str(out.get('evalue', '')).splitlines()[0] if out.get('evalue') else ''}"
    return None


def _strip_word(line: str, word: str) -> str:
    return line[len(word) + 1:].strip() if line.startswith(f"{word}:") else line


def verdict_of(metrics: dict, error: str | None = None) -> Verdict:
    """The verdict block from the run's metrics: the recorded verdict and its reasons, else a summary."""
    if error:
        return Verdict("ERROR", f"the notebook stopped: {error}", [("", "The cells before the failure are shown below; "
                                                                        "the executed notebook is in the run folder.")])
    word = metrics.get("verdict")
    if word in _VERDICT_WORDS:
        line = _strip_word(str(metrics.get("verdict_line") or ""), word)
        reasons = []
        for r in metrics.get("reasons") or []:
            if isinstance(r, dict):
                level = r.get("level") or r.get("status") or ""
                text = r.get("text") or ": ".join(str(r[k]) for k in ("name", "summary") if r.get(k))
                reasons.append((_LEVEL_ORDER.get(level, 9), level, str(text)))
            elif isinstance(r, str):
                reasons.append((9, "", r))
        reasons = [(level, text) for _, level, text in sorted(reasons, key=lambda x: x[0])]
        if reasons:
            line = ""  # the reasons say what the line says, one per line
        counts = metrics.get("counts")
        counts_text = " · ".join(f"{v} {k}" for k, v in counts.items() if v) if isinstance(counts, dict) else ""
        if not line and not reasons and isinstance(metrics.get("checks"), dict):
            reasons = [(status, name) for name, status in metrics["checks"].items() if status != "PASS"]
        if not line and not reasons:
            line = "every check passed" if word in ("OK", "PASS") else ""
        return Verdict(word, line, reasons, f"checks: {counts_text}" if counts_text else "")
    return Verdict("SUMMARY", "", [("", line) for line in summary_lines(metrics)])


def _key_figure(nb: nbformat.NotebookNode) -> dict | None:
    """Take the first image output out of the details (a note stays in its place) to show it at the top."""
    for cell in nb.cells:
        for i, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {})
            if "image/png" in data:
                alt = (out.get("metadata", {}).get("image/png", {}) or {}).get("alt") or data.get("text/plain") or "figure"
                cell.outputs[i] = nbformat.v4.new_output("display_data", data={
                    "text/html": f'<p class="rca-moved">{html.escape(_MOVED)}</p>', "text/markdown": f"*{_MOVED}*",
                    "text/plain": _MOVED})
                return {"data": "".join(str(data["image/png"]).split()), "alt": str(alt), "path": KEY_FIGURE}
    return None


def _drop_verdict_repeats(nb: nbformat.NotebookNode, metrics: dict, verdict: Verdict) -> None:
    """What the verdict block says already, out of both reports: a result's own summary (the part of an HTML output
    marked ``tables.VERDICT_REPEAT``; JupyterLab, which has no such block, shows it) when the block says each of its
    lines, and a short output that only repeats the verdict line (the health report's banner)."""
    line = str(metrics.get("verdict_line") or "") if metrics.get("verdict") in _VERDICT_WORDS else ""
    said = {" ".join(text.split()) for text in [verdict.line, *(text for _, text in verdict.reasons)]}
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            data, emptied = out.get("data", {}), False
            for mime, without in (("text/html", _without_repeats), ("text/markdown", _md_without_repeats)):
                if tables.VERDICT_REPEAT in str(data.get(mime, "")):
                    data[mime] = without(str(data[mime]), said)
                    emptied |= not data[mime].strip()
            page = str(data.get("text/html", ""))
            if not emptied and not (line and html.escape(line) in page and len(page) < len(line) + 600):
                kept.append(out)
        if "outputs" in cell:
            cell.outputs = kept


def _without_repeats(page: str, said: set[str]) -> str:
    """``page`` without its marked summaries whose every paragraph and item the block says (a SYNTHETIC line: the
    header says it); one that says more stays (a notebook whose metrics record something else)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, "html.parser")
    for repeat in soup.select(f".{tables.VERDICT_REPEAT}"):
        lines = [" ".join(part.get_text(" ").split()) for part in repeat.find_all(["p", "li"])]
        if lines and all(x in said or x.startswith("SYNTHETIC") for x in lines):
            repeat.decompose()
    return str(soup)


_MD_REPEAT = re.compile(rf"<!-- {tables.VERDICT_REPEAT} -->\n(.*?)\n<!-- /{tables.VERDICT_REPEAT} -->\n?", re.S)
_MD_MARKS = re.compile(r"^\s*(?:>\s*)?(?:-\s+)?|\*\*")  # a quote's and a bullet's lead, bold


def _md_without_repeats(text: str, said: set[str]) -> str:
    """The Markdown twin of :func:`_without_repeats`: a part marked by ``tables.verdict_repeat_md`` is left out when
    the block says each of its lines (bold, quote and bullet marks and ``md_text``'s escape aside); one that says more
    loses its marks only."""
    def part(match: re.Match) -> str:
        lines = [" ".join(_MD_MARKS.sub("", line).replace("&lt;", "<").split()) for line in match.group(1).splitlines()
                 if line.strip()]
        return "" if lines and all(x in said or x.startswith("SYNTHETIC") for x in lines) else match.group(1) + "\n"

    return _MD_REPEAT.sub(part, text)


def layout(nb: nbformat.NotebookNode, *, title: str, meta: str = "", metrics: dict | None = None) -> Layout:
    """The page's parts from an executed notebook (the notebook is copied, never changed)."""
    metrics = metrics or {}
    params = parameters_of(nb)
    visible = _visible(nb)
    name, subtitle = _title(visible, title)
    verdict = verdict_of(metrics, _error(visible))
    _drop_verdict_repeats(visible, metrics, verdict)
    figure = _key_figure(visible)
    synthetic = bool(metrics.get("synthetic")) or "SYNTHETIC" in json.dumps(metrics.get("summary", ""))
    return Layout(name, subtitle, when_of(params, metrics), meta, synthetic, verdict, figure, visible)


# --------------------------------------------------------------------------- rendering
def _environment(autoescape: bool):
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["units_unbroken"] = tables.units_unbroken
    env.filters["md_text"] = md_text
    return env


def _tidy(body: str, fold: list[str]) -> str:
    """Every outermost table in its own horizontal scroller (a wide table never widens the page), and the
    long introduction of the cells in ``fold`` under a closed "About this report"."""
    from bs4 import BeautifulSoup, NavigableString

    soup = BeautifulSoup(body, "html.parser")
    for text in soup.find_all(string=True):  # prose and cells, not attributes: "98 %" never wraps apart
        kept = tables.units_unbroken(str(text))
        if kept != text and type(text) is NavigableString and text.parent.name not in ("script", "style"):
            text.replace_with(kept)
    for table in soup.find_all("table"):
        if table.find_parent("table") is None and not (table.parent and "table-wrap" in (table.parent.get("class") or [])):
            table.wrap(soup.new_tag("div", attrs={"class": "table-wrap"}))
    for cell_id in fold:
        cell = soup.find(id=f"cell-id={cell_id}")
        text = cell.find(class_="text_cell_render") if cell else None
        if text is not None:
            details = soup.new_tag("details")
            summary = soup.new_tag("summary")
            summary.string = "About this report"
            details.append(summary)
            for child in list(text.children):
                details.append(child.extract())
            text.append(details)
    return str(soup)


def render_html(nb: nbformat.NotebookNode, *, title: str, meta: str = "", metrics: dict | None = None) -> str:
    """A self-contained HTML page: title/when, verdict, key figure, details; no code cells, no remote resources."""
    from markupsafe import Markup

    page = layout(nb, title=title, meta=meta, metrics=metrics)
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    body, _ = exporter.from_notebook_node(page.nb)
    text = _environment(True).get_template("report.html.j2").render(
        page_title=page.page_title, title=page.title, subtitle=page.subtitle, when=page.when, meta=page.meta,
        synthetic=page.synthetic, verdict=page.verdict, key_figure=page.key_figure,
        body=Markup(_tidy(body, [c.get("id", "") for c in page.nb.cells if c.metadata.get("rca_fold")])))
    # An output that loads from a CDN would make the report fetch from the network: neutralise it.
    return _REMOTE.sub(lambda m: m.group(1) + "blocked-remote:", text)


def render_markdown(nb: nbformat.NotebookNode, *, title: str, meta: str = "",
                    metrics: dict | None = None) -> tuple[str, dict[str, bytes]]:
    """Markdown text in the same order and the image files it references (relative paths under report_files/)."""
    import base64

    page = layout(nb, title=title, meta=meta, metrics=metrics)
    # an output that has Markdown (the toolkit's tables and notes) as Markdown, not as the raw HTML nbconvert prefers
    priority = ["text/markdown", "text/html", "image/svg+xml", "text/latex", "image/png", "image/jpeg", "text/plain"]
    exporter = MarkdownExporter(config=Config({"NbConvertBase": {"display_data_priority": priority}}), exclude_input=True,
                                exclude_input_prompt=True, exclude_output_prompt=True)
    body, resources = exporter.from_notebook_node(page.nb, resources={"output_files_dir": "report_files"})
    files = dict(resources.get("outputs", {}))
    if page.key_figure:
        files[KEY_FIGURE] = base64.b64decode(page.key_figure["data"])
    text = _environment(False).get_template("report.md.j2").render(
        title=page.title, subtitle=page.subtitle, when=page.when, meta=meta, synthetic=page.synthetic,
        verdict=page.verdict, key_figure=page.key_figure, body=body.strip())
    return text, files


def _read_metrics(folder: Path) -> dict:
    try:
        data = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_reports(notebook_path: str | Path, out_dir: str | Path, *, title: str, meta: str = "",
                  policy: output.Policy = output.Policy()) -> list[Path]:
    """Render ``report.html`` and ``report.md`` (+ ``report_files/``) from an executed notebook and the
    ``metrics.json`` beside it, written through ``policy`` (the run's: secrets out, personal data masked unless shown)."""
    nb = nbformat.read(str(notebook_path), as_version=4)
    out = Path(out_dir)
    metrics = _read_metrics(out)
    written = [output.write_text(out / "report.html", render_html(nb, title=title, meta=meta, metrics=metrics), policy)]
    text, files = render_markdown(nb, title=title, meta=meta, metrics=metrics)
    written.append(output.write_text(out / "report.md", text, policy))
    for rel, data in files.items():
        written.append(output.write_bytes(out / rel, data, policy))
    return written


__all__ = ["Layout", "Verdict", "layout", "parameters_of", "render_html", "render_markdown", "verdict_of", "when_of",
           "write_reports"]
