"""Every report of a demo run, and the index, opened in a real browser at 1400 px: the verdict is on
the first screen, every image loaded, no ``<Figure ...>`` or ``PosixPath(`` text, no horizontal
scroll, and the title names the date or window the report covers.

Headless Chromium is Debian's ``chromium`` package driven by Playwright for Python (``playwright
install`` is never needed: ``executable_path``). Without it the test skips locally and FAILS under
CI=true (``.ci/run`` installs it). The reports are built once per session, as ``rca demo-reports`` and
``rca report health`` build them, on the demo SQLite world in a temporary folder (slow). The layout's
parts (verdict from metrics, the "when" line, the key figure moved up with its alt text, wide tables
in a scroller) are also checked without a browser on small notebooks built here.

``RCA_BROWSER_REPORTS=reports`` checks an existing reports folder instead (after ``make demo`` and
``rca report health --date 2025-10-14``); ``RCA_SCREENSHOTS=docs/img`` also saves the README's pictures:

    RCA_BROWSER_REPORTS=reports RCA_SCREENSHOTS=docs/img .venv/bin/python -m pytest tests/runs/test_reports_in_browser.py
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import IN_CI
from rca_toolkit import cli
from rca_toolkit.runs import index, runner

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RCA_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WIDTH, HEIGHT = 1400, 900
NOTEBOOKS = [p.stem for p in runner.notebook_paths(ROOT / "notebooks", ROOT / "runbooks")]
HEALTH_DAY = "2025-10-14"  # the scheduled report of an ACT day
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# RCA_SCREENSHOTS=docs/img saves the first screen of these pages (the README's pictures), palette PNGs
SCREENSHOTS = {"before_after_report": "report-before-after.png", "call_timeline": "report-call-timeline.png",
               "health": "report-health.png", "RB001-post-deployment": "report-rb001.png", "index": "reports-index.png"}

# what the page says about itself, measured by the browser
INSPECT = """() => {
  const root = document.scrollingElement;
  const verdict = document.getElementById('verdict');
  const h1 = document.querySelector('h1');
  const when = document.querySelector('.rca-when');
  return {
    verdictTop: verdict ? verdict.getBoundingClientRect().top : null,
    verdictText: verdict ? verdict.innerText : '',
    viewport: window.innerHeight,
    images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, alt: i.getAttribute('alt') || '',
                                             src: i.getAttribute('src').slice(0, 40)})),
    text: document.body.innerText,
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
    title: document.title, heading: (h1 ? h1.innerText : '') + ' ' + (when ? when.innerText : ''),
  };
}"""


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through Playwright (never Playwright's own browser download)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright; it is in the dev dependencies)")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def demo_reports(request, tmp_path_factory) -> Path:
    """Every notebook and runbook report (``rca demo-reports``) and one scheduled health report, with the index."""
    if os.environ.get("RCA_BROWSER_REPORTS"):
        return Path(os.environ["RCA_BROWSER_REPORTS"]).resolve()
    url, _truth = request.getfixturevalue("demo_sqlite")
    out = tmp_path_factory.mktemp("demo_reports")
    old = Path.cwd()
    os.chdir(ROOT)  # the notebooks' relative defaults (fixture code trees) are project paths
    try:
        cli.main(["demo-reports", "--db", url, "--out", str(out)])  # verdicts do not matter here, the pages do
        cli.main(["report", "health", "--date", HEALTH_DAY, "--db", url, "--reports-dir", str(out)])
    finally:
        os.chdir(old)
    index.write_index(out)  # every run, whichever command wrote the index last
    return out


@pytest.fixture(scope="session")
def page(browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    yield context.new_page()
    context.close()


def _open(page, path: Path) -> dict:
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page.evaluate(INSPECT)


def _screenshot(page, key: str) -> None:
    """The first screen (1400x900) as a small palette PNG under $RCA_SCREENSHOTS, when set."""
    folder = os.environ.get("RCA_SCREENSHOTS")
    if not folder or key not in SCREENSHOTS:
        return
    import io

    from PIL import Image

    shot = Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB")
    small = shot.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    Path(folder).mkdir(parents=True, exist_ok=True)
    small.save(Path(folder) / SCREENSHOTS[key], optimize=True)


def _report(root: Path, stem: str) -> Path:
    found = sorted(root.glob(f"{stem}/*/report.html"))
    assert found, f"no report.html of {stem} under {root}: {sorted(p.name for p in root.iterdir())}"
    return found[-1]


def _readable(info: dict, what: str) -> None:
    broken = [i for i in info["images"] if not i["ok"]]
    assert not broken, f"{what}: images that did not load: {broken}"
    assert all(i["alt"] for i in info["images"]), f"{what}: an image without alt text"
    assert "<Figure" not in info["text"], f"{what}: a figure shown as text instead of an image"
    assert "PosixPath(" not in info["text"], f"{what}: a leftover path repr"
    assert info["scrollWidth"] <= info["clientWidth"], \
        f"{what}: horizontal scroll at {WIDTH} px ({info['scrollWidth']} > {info['clientWidth']})"


@pytest.mark.slow
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_report_reads_on_the_first_screen(stem, demo_reports, page):
    info = _open(page, _report(demo_reports, stem))
    _screenshot(page, stem)
    assert info["verdictTop"] is not None, f"{stem}: no #verdict element"
    assert 0 <= info["verdictTop"] < info["viewport"], f"{stem}: the verdict starts at {info['verdictTop']} px"
    assert re.match(r"\s*(OK|WATCH|ACT|PASS|WARN|FAIL|ERROR|FOUND|CLEAR|SUMMARY)\b", info["verdictText"]), info["verdictText"][:200]
    if stem == "incident_report":  # the demo's incident is in the window: said as `rca incident` exits, never a bare summary
        assert info["verdictText"].startswith("FOUND\nSignature") and "SYNTHETIC DEMO DATA" in info["heading"]
    assert DATE.search(info["title"]) and DATE.search(info["heading"]), \
        f"{stem}: the title does not name a date or window: {info['title']!r} / {info['heading']!r}"
    _readable(info, stem)


@pytest.mark.slow
def test_reports_with_figures_show_them_inline(demo_reports, page):
    for stem in ("overview", "health_report", "call_timeline", "before_after_report"):
        info = _open(page, _report(demo_reports, stem))
        assert info["images"] and all(i["src"].startswith("data:image/png;base64,") for i in info["images"]), stem


@pytest.mark.slow
def test_the_scheduled_health_report_names_its_day(demo_reports, page):
    report = demo_reports / "health" / "1d" / HEALTH_DAY / "report.html"
    if not report.is_file() and os.environ.get("RCA_BROWSER_REPORTS"):
        pytest.skip(f"no scheduled report {report} (rca report health --date {HEALTH_DAY})")
    info = _open(page, report)
    _screenshot(page, "health")
    assert f"Day {HEALTH_DAY}" in info["heading"] and HEALTH_DAY in info["title"]
    assert info["verdictText"].lstrip().startswith("ACT") and 0 <= info["verdictTop"] < info["viewport"]
    assert len(info["images"]) == 1
    _readable(info, "scheduled health report")


@pytest.mark.slow
def test_the_runbook_checklist_appears_once(demo_reports, page):
    info = _open(page, _report(demo_reports, "RB001-post-deployment"))
    assert info["text"].count("Required tables and columns") == 1  # a PASS check: in its own cell only
    assert info["verdictText"].lstrip().startswith("FAIL") and "Booking success since the deploy" in info["verdictText"]


@pytest.mark.slow
def test_the_index_reads_at_1400_px(demo_reports, page):
    info = _open(page, demo_reports / "index.html")
    _screenshot(page, "index")
    _readable(info, "index.html")
    for stem in NOTEBOOKS:
        assert stem in info["text"], f"the index does not list {stem}"


# --------------------------------------------------------------------------- the layout without a browser
def _notebook_with_a_figure() -> nbformat.NotebookNode:
    """A small executed-looking notebook: title, parameters, a wide table, then a package figure's real output."""
    from IPython.core.formatters import DisplayFormatter

    from rca_toolkit.runs import plots

    fig = plots.ReportFigure(figsize=(6, 3))
    fig.add_subplot().plot([1, 2, 3], [3, 1, 2])
    fig.alt = "Line chart of three points"
    data, meta = DisplayFormatter().format(fig)  # what IPython puts into the notebook
    wide = "<table><tr>" + "".join(f"<td>column_{i}_with_a_long_name</td>" for i in range(60)) + "</tr></table>"
    params = nbformat.v4.new_code_cell('period_start: str = "2025-10-14"  # day\nperiod: str = "1d"  # 1d or 7d')
    params.metadata["tags"] = ["parameters"]
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Health report: booking success, reach, latency, error signatures, data quality\n\nIntro."),
        params,
        nbformat.v4.new_code_cell("table", outputs=[nbformat.v4.new_output("display_data", data={"text/html": wide})]),
        nbformat.v4.new_code_cell("figure", outputs=[nbformat.v4.new_output("display_data", data=data, metadata=meta)]),
    ])


def test_a_package_figure_is_an_inline_png_with_alt_text():
    from IPython.core.formatters import DisplayFormatter

    from rca_toolkit.runs import plots

    fig = plots.ReportFigure()
    fig.add_subplot().set_title("A title")
    data, meta = DisplayFormatter().format(fig)
    assert data["image/png"] and "<Figure" not in data["text/plain"]
    assert meta["image/png"]["alt"] == data["text/plain"] == "A title"  # no alt given: the axes titles


def test_layout_order_verdict_figure_details():
    from rca_toolkit.runs import render

    metrics = {"verdict": "ACT", "verdict_line": "ACT: booking success 0 %", "synthetic": True,
               "reasons": [{"level": "WATCH", "text": "growing signature"}, {"level": "ACT", "text": "booking success 0 %"}]}
    page = render.render_html(_notebook_with_a_figure(), title="health_report (run)", meta="database sqlite:///x.sqlite",
                              metrics=metrics)
    head, verdict, figure, details = (page.index("<h1>"), page.index('id="verdict"'), page.index("<img"),
                                      page.index('class="rca-details"'))
    assert head < verdict < figure < details and page.count("<img") == 1  # the figure moved up, not repeated
    assert 'alt="Line chart of three points"' in page and "<Figure" not in page
    assert "Day 2025-10-14" in page and "<title>Health report · Day 2025-10-14" in page
    assert page.index("booking success 0\u00a0%") < page.index("growing signature")  # ACT reasons before WATCH
    assert 'class="table-wrap"><table>' in page and "SYNTHETIC DEMO DATA" in page
    md, files = render.render_markdown(_notebook_with_a_figure(), title="t", metrics=metrics)
    assert md.startswith("# Health report (SYNTHETIC DEMO DATA)") and "> **ACT**" in md
    assert md.index("> **ACT**") < md.index(f"]({render.KEY_FIGURE})") and files[render.KEY_FIGURE][:4] == b"\x89PNG"


def test_a_results_own_summary_is_left_out_of_the_report_its_block_says_it():
    """The incident's box, the overview's and the comparison's bold headline repeated the verdict block right under
    it; a part marked ``tables.VERDICT_REPEAT`` is left out of the rendered page when the block says each of its lines,
    and what stands beside it stays."""
    from rca_toolkit.analyses import tables
    from rca_toolkit.runs import render

    nb = _notebook_with_a_figure()
    nb.cells.append(nbformat.v4.new_code_cell("world", outputs=[nbformat.v4.new_output("display_data", data={
        "text/html": f'<div class="{tables.VERDICT_REPEAT}"><p><b>1,422 calls on 70 days.</b></p></div>'
                     '<h4>Booking outcomes by path</h4><p>the table</p>'})]))
    box = '<div class="{}" style="x"><p>{}</p><p>SYNTHETIC DEMO DATA</p><ul><li>{}</li></ul></div>'
    nb.cells.append(nbformat.v4.new_code_cell("incident", outputs=[nbformat.v4.new_output("display_data", data={
        "text/html": box.format(tables.VERDICT_REPEAT, "FOUND it", "per path"), "text/plain": "<HTML>"})]))
    nb.cells.append(nbformat.v4.new_code_cell("custom", outputs=[nbformat.v4.new_output("display_data", data={
        "text/html": box.format(tables.VERDICT_REPEAT, "a line no block says", "per path")})]))
    metrics = {"headline": ["1,422 calls on 70 days.", "FOUND it", "- per path"]}
    page = render.render_html(nb, title="t", metrics=metrics)
    assert page.count("1,422 calls on 70 days.") == 1 and page.index("1,422 calls") < page.index('class="rca-details"')
    assert "Booking outcomes by path" in page and "the table" in page
    assert page.count("FOUND it") == 1 and "&lt;HTML&gt;" not in page  # an output that was all summary: gone, text too
    # a summary that says more than the block (a notebook whose metrics record something else) stays whole
    assert page.count(tables.VERDICT_REPEAT) == 1 and "a line no block says" in page and page.count("per path") == 2
    md, _ = render.render_markdown(nb, title="t", metrics=metrics)
    assert md.count("1,422 calls on 70 days.") == 1 and "Booking outcomes by path" in md and md.count("FOUND it") == 1


def test_the_markdown_report_leaves_out_a_marked_summary_its_block_says_and_shows_markup_in_data_as_written():
    """A result's Markdown marks its summary as its HTML does (``tables.verdict_repeat_md``): the Markdown report leaves
    it out when the verdict block says each line, and keeps one that says more, without its marks. A value such as
    ``<script>`` in a cell, a note or the block is escaped: taken for HTML it vanished from the rendered Markdown."""
    from rca_toolkit.analyses import tables
    from rca_toolkit.runs import render

    said = tables.verdict_repeat_md(["**FOUND it**", "**SYNTHETIC DEMO DATA: every row was generated**", "- per <path>"])
    cell = tables.Table([{"context": "<script>", "n": 3}]).to_markdown()
    outputs = [{"text/markdown": said + "\n\n#### Booking success\n\n" + cell, "text/plain": "summary and table"},
               {"text/markdown": said, "text/plain": "only the summary"},
               {"text/markdown": tables.verdict_repeat_md(["**a line no block says**"])},
               {"text/markdown": tables.Notes(["an <img src=x> note"])._repr_markdown_()}]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data=data) for data in outputs])])
    md, _ = render.render_markdown(nb, title="t", metrics={"headline": ["FOUND it", "per <path>"]})
    assert md.count("FOUND it") == 1 and md.count("per &lt;path>") == 1 and "SYNTHETIC" not in md
    assert md.index("> - per &lt;path>") < md.index("#### Booking success") and "only the summary" not in md
    assert "| context | n |" in md and "| &lt;script> | 3 |" in md and "- an &lt;img src=x> note" in md
    assert md.count("a line no block says") == 1 and "rca-verdict-repeat" not in md and "<script>" not in md


def test_the_markdown_report_shows_tables_and_notes_as_markdown_and_the_html_report_as_html():
    """The Markdown report carried every table as raw HTML with inline styles (nbconvert prefers text/html)."""
    from IPython.core.formatters import DisplayFormatter

    from rca_toolkit.analyses import tables
    from rca_toolkit.runs import render

    table = tables.Table([{"path": "book_appointment", "rate": "0 (0/8)"}],
                         [tables.col("path"), tables.col("rate", "success (%)", numeric=True)])
    outputs = [nbformat.v4.new_output("display_data", data=DisplayFormatter().format(shown)[0])
               for shown in (table, tables.Notes(["stuck sessions are left out"]))]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Health report: a title"),
                                         nbformat.v4.new_code_cell("t", outputs=outputs)])
    md, _ = render.render_markdown(nb, title="t")
    assert "| path | success (%) |" in md and "| book_appointment | 0 (0/8) |" in md and "- stuck sessions are left out" in md
    assert "<table" not in md and "<ul>" not in md
    page = render.render_html(nb, title="t")
    assert '<table class="rca-table">' in page and "<li>stuck sessions are left out</li>" in page


def test_a_number_and_its_unit_never_wrap_apart_in_html_and_stay_plain_in_markdown():
    """A browser broke "baseline below the critical 90 %" after "90" in a narrow window. In the HTML the verdict,
    prose and table cells join each number to its unit with a no-break space; attributes and Markdown keep theirs."""
    from rca_toolkit.runs import render

    nb = _notebook_with_a_figure()
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("Booking success fell to 12.5 % over 7 d; latency 4.9 s, 98 % CI."))
    nb.cells.append(nbformat.v4.new_code_cell("t", outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": '<table><tr><td title="90 % of 30">90 % of 30</td><td>1.5 MiB</td></tr></table>'})]))
    metrics = {"verdict": "ACT", "reasons": [{"level": "ACT", "text": "baseline below the critical 90 %"}]}
    page = render.render_html(nb, title="t", metrics=metrics)
    for kept in ("critical 90\u00a0%</li>", "to 12.5\u00a0% over 7 d", "latency 4.9\u00a0s, 98\u00a0%\u00a0CI",
                 ">90\u00a0% of 30<", ">1.5\u00a0MiB<"):
        assert kept in page, kept
    assert 'title="90 % of 30"' in page  # an attribute is left as it is
    assert "over 7 d" in page and "7\u00a0d" not in page  # "d" is no unit the rule knows: left alone
    md, _ = render.render_markdown(nb, title="t", metrics=metrics)
    assert "\u00a0" not in md and "fell to 12.5 % over" in md


@pytest.mark.parametrize("metrics, word, text", [
    ({"verdict": "FAIL", "verdict_line": "FAIL: x", "counts": {"PASS": 2, "FAIL": 1, "SKIPPED": 0},
      "reasons": [{"status": "FAIL", "name": "Booking success", "summary": "0/30 succeeded"}]}, "FAIL",
     "Booking success: 0/30 succeeded"),
    ({"verdict": "PASS", "counts": {"PASS": 3}}, "PASS", "every check passed"),
    ({"summary": ["SYNTHETIC DEMO DATA: ...", "The fix was partial"]}, "SUMMARY", "The fix was partial"),
    ({"duration_s": 144.481, "findings": [{"kind": "dead_air", "seconds": 4.9}],
      "what_if": {"duration_s": 38.98, "kinds": ["dead_air"], "removed": [{}]}}, "SUMMARY", "144.5 s call"),
    ({}, "SUMMARY", "Every cell ran"),
])
def test_the_verdict_block_comes_from_the_metrics(metrics, word, text):
    from rca_toolkit.runs import render

    verdict = render.verdict_of(metrics)
    assert verdict.word == word
    assert text in verdict.line + " ".join(t for _, t in verdict.reasons)
    assert "SYNTHETIC" not in " ".join(t for _, t in verdict.reasons)  # the header says it once
    assert render.verdict_of(metrics, "KeyError: 'x'").word == "ERROR"


@pytest.mark.parametrize("params, metrics, expected", [
    ({"period_start": "2025-10-14", "period": "1d"}, {}, "Day 2025-10-14 (Europe/Berlin)"),
    ({"period_start": "2025-10-13", "period": "7d"}, {}, "Week 2025-10-13 to 2025-10-19 (Europe/Berlin)"),
    ({"change_at": "2025-10-18T13:20:08+02:00", "before": "5d", "after": "5d"}, {},
     "Change at 2025-10-18 13:20:08 +02:00 (5d before, 5d after)"),
    ({"deployed_at": "2025-10-18T13:20:08+02:00", "window": "5d"}, {}, "Deploy at 2025-10-18 13:20:08 +02:00, judged over 5d after"),
    ({"since": "2025-11-14T00:00:00+01:00", "until": "2025-11-21T00:00:00+01:00"}, {},
     "Window 2025-11-14 00:00 +01:00 to 2025-11-21 00:00 +01:00"),
    ({"since": "", "until": ""}, {"window": {"since": "2025-09-22T00:00:00+02:00", "until": "2025-12-01T00:00:00+01:00"}},
     "Window 2025-09-22 00:00 +02:00 to 2025-12-01 00:00 +01:00"),
    ({"call_id": "call_ab"}, {"known": {"started_at": "2025-10-18T10:09:26.412000+00:00"}},
     "call_ab, started 2025-10-18 12:09:26 +02:00 (Europe/Berlin)"),
])
def test_the_title_says_what_time_the_report_covers(params, metrics, expected, monkeypatch):
    from rca_toolkit.runs import render

    monkeypatch.delenv("RCA_SOURCE_TZ", raising=False)
    assert render.when_of(params, metrics) == expected


def test_a_cell_id_broken_by_the_masking_does_not_stop_the_report():
    """The writer may mask a cell id that looks like a phone number (``[PHONE]``): the report still renders."""
    from rca_toolkit.runs import render

    nb = _notebook_with_a_figure()
    nb.cells[2]["id"] = "[PHONE]"
    assert 'id="verdict"' in render.render_html(nb, title="t") and render.render_markdown(nb, title="t")[0]
