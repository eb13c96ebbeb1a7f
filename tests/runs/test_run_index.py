"""The run index: built from the run folders on disk, newest first, self-contained HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rca_toolkit.runs import index as run_index


def _run(root: Path, rel: str, *, started: str, status: str = "ok", metrics: dict | None = None,
         params: dict | None = None, report: bool = True) -> Path:
    """A run folder in the shape the notebook runner writes (run.json, metrics.json, report.html)."""
    folder = root / rel
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "notebook": f"notebooks/{rel.split('/')[0]}.ipynb", "run_id": folder.name, "parameters": params or {},
        "started_at": started, "ended_at": started, "status": status, "outcome": "clear" if status == "ok" else "internal_error",
        "database": "sqlite:///data/demo.sqlite", "error": None if status == "ok" else "ValueError: boom",
    }))
    (folder / "metrics.json").write_text(json.dumps(metrics or {}))
    if report:
        (folder / "report.html").write_text("<html></html>")
    return folder


def test_entries_newest_first_with_verdict_numbers_and_relative_links(tmp_path):
    _run(tmp_path, "health/1d/2025-10-14", started="2026-01-02T06:30:00+00:00",
         params={"period_start": "2025-10-14", "period": "1d", "company_id": 0},
         metrics={"verdict": "ACT", "verdict_line": "ACT: booking success on path book_appointment 0 % (0/9)",
                  "key_numbers": {"calls": 24, "booking_success_pct": 41.7}})
    _run(tmp_path, "health/1d/2025-10-15", started="2026-01-03T06:30:00+00:00",
         params={"period_start": "2025-10-15", "period": "1d", "company_id": 0},
         metrics={"verdict": "WATCH", "verdict_line": "WATCH: 3 of 20 sessions stuck in_progress (P5)"})
    _run(tmp_path, "call_timeline/20260101T000000Z-abc123", started="2026-01-01T00:00:00+00:00",
         status="failed", metrics={"calls": 1, "seconds": 144.5}, report=False)
    (tmp_path / "health/1d/.2025-10-16.staging-000000/health_report/x").mkdir(parents=True)
    (tmp_path / "health/1d/.2025-10-16.staging-000000/health_report/x/run.json").write_text("{}")

    entries = run_index.collect(tmp_path)

    assert [e["path"] for e in entries] == ["health/1d/2025-10-15", "health/1d/2025-10-14",
                                            "call_timeline/20260101T000000Z-abc123"]
    act = entries[1]
    assert act["verdict"] == "ACT" and act["date"] == "2025-10-14" and act["notebook"] == "health"
    assert act["key_numbers"] == {"calls": 24, "booking_success_pct": 41.7}
    assert act["report"] == "health/1d/2025-10-14/report.html"
    failed = entries[2]
    assert failed["status"] == "failed" and failed["report"] is None and failed["verdict"] is None
    assert failed["key_numbers"] == {"calls": 1, "seconds": 144.5}  # scalar metrics when no key_numbers
    assert failed["date"] == "2026-01-01"


def test_write_index_is_self_contained_and_escapes(tmp_path):
    _run(tmp_path, "health/1d/2025-10-14", started="2026-01-02T06:30:00+00:00",
         params={"period_start": "2025-10-14"},
         metrics={"verdict": "ACT", "verdict_line": "ACT: <script>alert(1)</script> in 'field list'"})
    json_path, html_path = run_index.write_index(tmp_path)

    data = json.loads(json_path.read_text())
    assert data["count"] == 1 and data["runs"][0]["verdict"] == "ACT"
    page = html_path.read_text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from the network
    assert 'href="health/1d/2025-10-14/report.html"' in page
    assert (tmp_path / "health/1d/2025-10-14/report.html").exists()
    assert '<span class="v v-ACT">ACT</span>' in page
    assert not list(tmp_path.glob(".index.*.tmp"))  # atomic writes left no temp files


def test_a_long_reason_is_cut_as_every_table_cuts_with_the_whole_line_as_tooltip(tmp_path):
    from rca_toolkit.analyses import tables

    line = "ACT: booking success on path book_appointment 0 % (0/9) & failing with " + "x" * 200
    _run(tmp_path, "health/1d/2025-10-14", started="2026-01-02T06:30:00+00:00", metrics={"verdict": "ACT", "verdict_line": line})
    page = run_index.write_index(tmp_path)[1].read_text()
    cell = tables.cut_html(line, run_index.REASON_CHARS)  # the one cut of analyses/tables, as Table.to_html cuts
    assert cell.startswith(f'<span title="{line.replace("&", "&amp;")}">') and cell.endswith("…</span>")
    assert cell in page
    wide = tables.Table([{"reason": line}], [tables.col("reason", max_chars=run_index.REASON_CHARS)]).to_html()
    assert cell in wide


def test_empty_reports_folder_gives_an_empty_index(tmp_path):
    json_path, html_path = run_index.write_index(tmp_path / "reports")
    assert json.loads(json_path.read_text())["count"] == 0
    assert "no runs yet" in html_path.read_text()


def test_a_run_that_judges_nothing_shows_what_it_found_as_its_reason_and_its_own_key_numbers(tmp_path):
    """The before/after row said "ok" with an empty reason and "alpha: 0.05, at: ..." (its parameters) as key numbers,
    while its report said "The fix was partial"; the index now says the lines the report's block says."""
    _run(tmp_path, "before_after_report/20260102T063000Z-abc123", started="2026-01-02T06:30:00+00:00",
         metrics={"alpha": 0.05, "at": "2025-10-18T11:20:08+00:00", "summary": [
             "SYNTHETIC DEMO DATA: generated", "The fix was partial: book_appointment still fails."],
             "key_numbers": {"book_appointment": "0.0 % -> 0.0 %", "collect_appointment": "0.0 % -> 100.0 %"}})
    _run(tmp_path, "call_timeline/20260101T000000Z-abc123", started="2026-01-01T00:00:00+00:00",
         metrics={"duration_s": 144.481, "findings": [{"kind": "dead_air", "seconds": 17.6}]})
    _run(tmp_path, "tiny/20260101T000000Z-abc123", started="2025-12-31T00:00:00+00:00", metrics={"limit": 7})
    compare, call, tiny = run_index.collect(tmp_path)
    assert compare["summary"] == ["The fix was partial: book_appointment still fails."]
    assert call["summary"] == ["144.5 s call; findings: dead air 17.6 s."] and tiny["summary"] == []
    page = run_index.write_index(tmp_path)[1].read_text()
    assert "<td>The fix was partial: book_appointment still fails.</td>" in page
    assert "book_appointment: 0.0\u00a0% -&gt; 0.0\u00a0%" in page and "alpha: 0.05" not in page  # "%" never wraps alone
    assert "<td>144.5\u00a0s call; findings: dead air 17.6\u00a0s.</td>" in page
    assert re.search(r"generated \d{4}-\d\d-\d\d \d\d:\d\d [A-Z]", page)  # local, as the started column


def test_whole_key_numbers_read_with_thousands_separators_as_the_reports_write_them(tmp_path):
    """At 1M calls the overview's row said "calls: 1031316" beside "1,031,316 calls" in its own reason."""
    _run(tmp_path, "overview/20261207T000000Z-abc123", started="2026-01-02T06:30:00+00:00",
         metrics={"key_numbers": {"calls": 1031316, "days": 70, "call p95 (s)": 1147.9, "synthetic": True}})
    _, html_path = run_index.write_index(tmp_path)
    page = html_path.read_text()
    assert all(cell in page for cell in ("calls: 1,031,316", "days: 70", "call p95 (s): 1147.9", "synthetic: True"))
    assert json.loads((tmp_path / "index.json").read_text())["runs"][0]["key_numbers"]["calls"] == 1031316  # data as recorded
