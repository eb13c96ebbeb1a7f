"""``rca demo-reports``: notebooks two at a time, one line each, a summary and the index, which lists every
run of every invocation (a second run must not drop the first one's runs from the index).

A folder with three copies of the tiny fixture notebook stands in for ``notebooks/`` (the catalog reads
the working directory first), so the two invocations stay fast; ``rca runbook`` is checked on RB030, which
needs no database.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rca_toolkit import cli
from rca_toolkit.analyses.tables import TEXT_WIDTH

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "notebooks" / "tiny_report.ipynb"
STEMS = ["alpha", "beta", "gamma"]

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    for stem in STEMS:
        shutil.copy(TINY, tmp_path / "notebooks" / f"{stem}.ipynb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RCA_REPORTS_DIR", raising=False)
    return tmp_path


def test_two_at_a_time_with_a_summary_and_an_index_of_every_run(workdir, demo_sqlite, capsys):
    url, _ = demo_sqlite
    out = workdir / "reports"
    for invocation in (1, 2):
        assert cli.main(["demo-reports", "--db", url, "--out", str(out)]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert printed[0] == f"running {len(STEMS)} notebooks, 2 at a time"
        progress = [line for line in printed if line.startswith("[")]
        assert [line.split("]")[0] + "]" for line in progress] == [f"[{k}/{len(STEMS)}]" for k in range(1, len(STEMS) + 1)]
        assert {line.split()[2] for line in progress} == {f"notebooks/{s}.ipynb" for s in STEMS}
        assert all(line.split()[1] == "ok" for line in progress)
        summary = printed[printed.index(next(line for line in printed if line.startswith("notebook "))):]
        assert [line.split()[0] for line in summary[1:] if line.split() and line.split()[0] in STEMS] == STEMS
        assert printed[-1] == f"open the index: {out / 'index.html'}"
        assert max(len(line.replace(str(workdir), '.')) for line in printed) <= TEXT_WIDTH  # a path is not wrapped
        index = json.loads((out / "index.json").read_text())
        assert index["count"] == invocation * len(STEMS)  # the second run adds to the first, drops nothing
    page = (out / "index.html").read_text()
    assert all(page.count(f">{stem}</a>") == 2 for stem in STEMS)
    assert len(list(out.glob("*/*/run.json"))) == 2 * len(STEMS)


def test_a_wrong_database_is_one_line_and_exit_2(workdir, capsys):
    assert cli.main(["demo-reports", "--db", f"sqlite:///{workdir}/missing.sqlite", "--out", "reports"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.sqlite" in err[0]


def test_run_and_runbook_refresh_the_index(tmp_path, capsys):
    old = Path.cwd()
    os.chdir(ROOT)  # RB030's default code tree is a project path
    try:
        assert cli.main(["runbook", "RB030", "--out", str(tmp_path)]) in (0, 1)
    finally:
        os.chdir(old)
    assert f"index: {tmp_path / 'index.html'}" in capsys.readouterr().out
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["count"] == 1 and index["runs"][0]["notebook"] == "RB030-cache-invalidation"
