"""Executed notebook -> self-contained report files, written atomically.

``report.html`` uses nbconvert's ``basic`` template (no require.js, MathJax or mermaid from a
CDN) wrapped in a small page with inline CSS: code cells are hidden, images are embedded as
data URIs, nothing is fetched from the network. ``report.md`` is the same content as
Markdown; images in outputs are written beside it under ``report_files/``.

Every file goes through :func:`atomic_write_bytes` (temp file + ``os.replace``), so a reader
never sees half a report.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter, MarkdownExporter

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1f2328;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f6f8fa} pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap}
img{max-width:100%} .anchor-link{display:none} .output_error pre,.output_stderr pre{background:#ffebe9}
.rca-status-PASS{color:#1a7f37;font-weight:600}.rca-status-WARN{color:#9a6700;font-weight:600}
.rca-status-FAIL{color:#cf222e;font-weight:600}.rca-status-ERROR{color:#8250df;font-weight:600}
header.rca-meta{color:#57606a;font-size:.9em;border-bottom:1px solid #d0d7de;margin-bottom:1em}
"""
# Attributes that make a browser fetch (links a reader clicks are fine): src of any tag, href of <link>.
_REMOTE = re.compile(r"""(<(?:[a-z]+)\b[^>]*?\bsrc\s*=\s*["']?|<link\b[^>]*?\bhref\s*=\s*["']?)(?:https?:)?//""",
                     re.IGNORECASE)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _visible(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Copy without the papermill injected-parameters cell (parameters are in params.yaml)."""
    out = nbformat.from_dict(nb)
    out.cells = [c for c in out.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    return out


def render_html(nb: nbformat.NotebookNode, *, title: str, meta: str = "") -> str:
    """A self-contained HTML page: no code cells, embedded images, no remote resources."""
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    body, _ = exporter.from_notebook_node(_visible(nb))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<header class=\"rca-meta\">{html.escape(meta)}</header>\n{body}\n</body></html>\n"
    )
    # An output that loads from a CDN would make the report fetch from the network: neutralise it.
    return _REMOTE.sub(lambda m: m.group(1) + "blocked-remote:", page)


def render_markdown(nb: nbformat.NotebookNode, *, title: str, meta: str = "") -> tuple[str, dict[str, bytes]]:
    """Markdown text and the image files it references (relative paths under report_files/)."""
    exporter = MarkdownExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, resources = exporter.from_notebook_node(_visible(nb), resources={"output_files_dir": "report_files"})
    header = f"<!-- {meta} -->\n\n" if meta else ""
    return header + body, dict(resources.get("outputs", {}))


def write_reports(notebook_path: str | Path, out_dir: str | Path, *, title: str, meta: str = "") -> list[Path]:
    """Render ``report.html`` and ``report.md`` (+ ``report_files/``) from an executed notebook."""
    nb = nbformat.read(str(notebook_path), as_version=4)
    out = Path(out_dir)
    written = [atomic_write_text(out / "report.html", render_html(nb, title=title, meta=meta))]
    text, files = render_markdown(nb, title=title, meta=meta)
    written.append(atomic_write_text(out / "report.md", text))
    for rel, data in files.items():
        written.append(atomic_write_bytes(out / rel, data))
    return written
