"""Ownership before destruction: prune deletes only rca's run folders, a failed re-run keeps the good
report, ``--out`` never nests a run inside a run folder nor writes onto a file."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa

from rca_toolkit.cli import main
from rca_toolkit.runs import ownership, scheduled
from rca_toolkit.runs.runner import run_notebook

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=200)


def _signed_run(root: Path, rel: str, *, ended: datetime = OLD, run_id: str = "20250901T063000Z-a1b2c3",
                **overrides) -> Path:
    """A run folder as the runner writes it (signed run.json, metrics, report, executed notebook, figure)."""
    folder = root / rel
    (folder / "figures").mkdir(parents=True)
    run = {"generator": ownership.generator(), "notebook": "notebooks/health_report.ipynb", "run_id": run_id,
           "parameters": {"period_start": "2025-09-01"}, "started_at": ended.isoformat(), "ended_at": ended.isoformat(),
           "status": "ok", "outcome": "clear", **overrides}
    (folder / "run.json").write_text(json.dumps(run))
    for name in ("metrics.json", "params.yaml", "report.html", "report.md", "health_report.ipynb"):
        (folder / name).write_text("{}")
    (folder / "figures" / "health.png").write_bytes(b"\x89PNG")
    return folder


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --------------------------------------------------------------------------- prune
def test_prune_removes_signed_runs_and_skips_every_folder_rca_did_not_write(tmp_path, capsys):
    owned = _signed_run(tmp_path, "health/1d/2025-09-01")
    unsigned = _signed_run(tmp_path, "health/1d/2025-09-02", generator="someone-else/1.0")
    no_generator = tmp_path / "notes/2025"
    no_generator.mkdir(parents=True)
    (no_generator / "run.json").write_text(json.dumps({"ended_at": OLD.isoformat(), "status": "ok"}))
    (no_generator / "thesis.docx").write_text("years of work")
    extra_file = _signed_run(tmp_path, "health/1d/2025-09-03")
    (extra_file / "my-notes.txt").write_text("keep me")
    extra_folder = _signed_run(tmp_path, "health/1d/2025-09-04")
    (extra_folder / "data").mkdir()
    linked = _signed_run(tmp_path, "health/1d/2025-09-05")
    (linked / "figures" / "home.png").symlink_to(Path.home())
    bad_run_id = _signed_run(tmp_path, "health/1d/2025-09-06", run_id="../../etc")
    before = {p: _tree(p) for p in (unsigned, no_generator, extra_file, extra_folder, linked, bad_run_id)}

    dry = scheduled.prune(tmp_path, "90d", now=NOW, dry_run=True)
    assert dry.removed == [owned] and owned.exists()
    pruned = scheduled.prune(tmp_path, "90d", now=NOW)

    assert pruned.removed == [owned] and not owned.exists()
    reasons = {path: reason for path, reason in pruned.skipped}
    assert set(reasons) == set(before)
    for path, tree in before.items():
        assert _tree(path) == tree  # nothing inside was touched
    assert "not written by rca" in reasons[unsigned] and "not written by rca" in reasons[no_generator]
    assert reasons[extra_file] == "it holds my-notes.txt, which no run writes"
    assert reasons[extra_folder] == "it holds a folder data/ that no run writes"
    assert "symbolic link" in reasons[linked]

    assert main(["report", "prune", "--keep", "90d", "--reports-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "removed 0 run folder(s)" in out and "skipped 6 old folder(s) not written by rca (never deleted):" in out
    assert f"  {extra_file}: it holds my-notes.txt, which no run writes" in out.splitlines()
    assert all(p.exists() for p in before)


def test_a_real_run_folder_is_signed_and_owned(tmp_path):
    nb = _notebook(tmp_path / "tiny.ipynb", "x: int = 1  # a number", "print(x * 2)")
    result = run_notebook(nb, {"x": 3}, out_dir=tmp_path / "reports")
    run = json.loads((result.run_dir / "run.json").read_text())
    assert result.status == "ok"
    assert run["generator"] == f"rca_toolkit/{ownership.toolkit_version()}"
    assert ownership.read_signed_run(result.run_dir)["run_id"] == result.run_dir.name
    assert ownership.foreign_reason(result.run_dir) is None  # what the runner writes is exactly what prune accepts


# --------------------------------------------------------------------------- --out
def _notebook(path: Path, params: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(body)],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("where", ["inside", "itself", "deeper"])
def test_out_inside_a_run_folder_is_refused_and_creates_nothing(tmp_path, capsys, where):
    run = _signed_run(tmp_path, "reports/overview/20250901T063000Z-a1b2c3")
    nb = _notebook(tmp_path / "tiny.ipynb", "x: int = 1  # a number", "print(x)")
    before = _tree(tmp_path)
    out = {"inside": run / "nested", "itself": run, "deeper": run / "figures" / "a" / "b"}[where]

    assert main(["run", str(nb), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"lies inside the run folder {run}, which is immutable" in err[0]
    assert _tree(tmp_path) == before


def test_out_on_a_file_is_refused_and_creates_nothing(tmp_path, capsys):
    nb = _notebook(tmp_path / "tiny.ipynb", "x: int = 1  # a number", "print(x)")
    target = tmp_path / "report.txt"
    target.write_text("mine")
    before = _tree(tmp_path)
    assert main(["run", str(nb), "--out", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"rca run: error: --out {target} is a file (give a folder path)"
    assert main(["runbook", str(nb), "--out", str(target / "sub")]) == 2
    assert f"--out {target / 'sub'} lies under the file {target}" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tiny").write_text("a file where the notebook's folder would go")
    before = _tree(tmp_path)
    assert main(["run", str(nb), "--out", str(tmp_path / "out")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert _tree(tmp_path) == before and target.read_text() == "mine"


def test_reports_dir_inside_a_run_folder_is_refused_before_any_database_or_lock(tmp_path, capsys):
    run = _signed_run(tmp_path, "reports/health/1d/2025-09-01")
    before = _tree(tmp_path)
    assert main(["report", "health", "--date", "2025-10-14", "--db", "sqlite:///nowhere.sqlite",
                 "--reports-dir", str(run / "again")]) == 2
    assert "--reports-dir" in capsys.readouterr().err and _tree(tmp_path) == before


# --------------------------------------------------------------------------- failed re-runs
@pytest.fixture
def tiny_db(tmp_path) -> str:
    path = tmp_path / "tiny.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    return f"sqlite:///{path}"


HEALTH_PARAMS = ('period_start: str = "2025-10-14"  # day\nperiod: str = "1d"  # 1d or 7d\n'
                 'company_id: int = 0  # company\ndb_url: str = ""  # database')


def test_a_failed_rerun_keeps_the_good_report_and_lands_beside_it(tmp_path, tiny_db):
    nb = _notebook(tmp_path / "health_probe.ipynb", HEALTH_PARAMS,
                   "from rca_toolkit.runs import kernel\n"
                   "assert company_id != 13, 'company 13 fails on purpose'\n"
                   "kernel.record_metrics({'verdict': 'OK', 'verdict_line': 'OK: probe'})")
    root = tmp_path / "reports"
    day = date(2025, 10, 14)
    good = scheduled.run_health(day, db=tiny_db, root=root, notebook=nb)
    final = root / "health/1d/2025-10-14"
    assert good.status == "ok" and good.path == final and good.kept_previous is None
    good_id = json.loads((final / "run.json").read_text())["run_id"]

    failed = scheduled.run_health(day, company_id=13, db=tiny_db, root=root, notebook=nb)

    assert failed.status == "failed" and failed.kept_previous == final
    assert json.loads((final / "run.json").read_text())["run_id"] == good_id  # the good report is still there
    failed_id = json.loads((failed.path / "run.json").read_text())["run_id"]
    assert failed.path == final.parent / f"2025-10-14.failed-{failed_id}"
    assert ownership.foreign_reason(failed.path) is None  # signed: pruned like any run
    index = json.loads((root / "index.json").read_text())
    assert sorted((r["path"], r["status"]) for r in index["runs"]) == [
        ("health/1d/2025-10-14", "ok"), (f"health/1d/2025-10-14.failed-{failed_id}", "failed")]
    assert failed.to_dict()["kept_previous"] == str(final)

    again = scheduled.run_health(day, db=tiny_db, root=root, notebook=nb)  # a good re-run replaces the good one
    assert again.path == final and json.loads((final / "run.json").read_text())["run_id"] not in (good_id, failed_id)
    assert failed.path.exists()


def test_a_failed_first_run_takes_the_place_and_a_foreign_folder_is_never_replaced(tmp_path, tiny_db, capsys):
    nb = _notebook(tmp_path / "health_probe.ipynb", HEALTH_PARAMS, "raise ValueError('always fails')")
    root = tmp_path / "reports"
    first = scheduled.run_health("2025-10-14", db=tiny_db, root=root, notebook=nb)
    assert first.status == "failed" and first.path == root / "health/1d/2025-10-14" and first.kept_previous is None

    foreign = root / "health/1d/2025-10-15"
    foreign.mkdir(parents=True)
    (foreign / "run.json").write_text("{}")
    (foreign / "evidence.csv").write_text("a,b")
    with pytest.raises(scheduled.ConfigError, match="was not written by rca"):
        scheduled.run_health("2025-10-15", db=tiny_db, root=root, notebook=nb)
    assert sorted(os.listdir(foreign)) == ["evidence.csv", "run.json"]
