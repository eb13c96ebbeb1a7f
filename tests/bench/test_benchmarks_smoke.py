"""Smoke test of the benchmark harness at scale 1: the three variants agree with each other and
with the demo ground truth, and one end-to-end run writes its results (no timing asserted)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import queries, run
from rca_toolkit.sources import loaders


def _truth_attempts(truth: dict) -> pd.DataFrame:
    att = pd.DataFrame(truth["attempts"])
    att["at"] = pd.to_datetime(att["at_utc"], utc=True)
    return att[att["is_real"]]


def _counts(att: pd.DataFrame) -> dict:
    return {p: [int((att["path"] == p).sum()), int(((att["path"] == p) & (att["outcome"] == "success")).sum())]
            for p in queries.PATHS}


@pytest.mark.parametrize("job", list(queries.JOBS))
def test_variants_agree(demo_db, job):
    url, _truth = demo_db
    engine = loaders.engine_for(url)
    digests = {v: queries.run(job, v, engine) for v in queries.VARIANTS}
    assert digests["toolkit"] == digests["floor"] == digests["naive"]


def test_digests_match_ground_truth(demo_db):
    url, truth = demo_db
    engine = loaders.engine_for(url)
    att = _truth_attempts(truth)
    windows = queries.compare_windows()
    expected = {side: _counts(att[(att["at"] >= lo) & (att["at"] < hi)])
                for side, (lo, hi) in (("before", windows.before), ("after", windows.after))}
    assert queries.run("compare", "floor", engine) == expected
    lo, hi = (pd.Timestamp(x) for x in queries.DAY)
    day = queries.run("day", "floor", engine)
    assert day["attempts"] == _counts(att[(att["at"] >= lo) & (att["at"] < hi)])
    assert day["attempts"]["book_appointment"][1] == 0  # 2025-10-14 lies in the phantom-column outage of both paths
    trace = queries.run("trace", "floor", engine)
    assert trace["retell_function_traces"] == 10 and trace["retell_transcript_segments"] == 26


def test_run_writes_results(demo_sqlite, tmp_path):
    url, truth = demo_sqlite
    code = run.main(["--db", url, "--scale", str(truth["scale"]), "--reuse", "--repeat", "2", "--jobs", "trace",
                     "--out", str(tmp_path)])
    assert code == 0
    (result_file,) = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["build"] is None and result["row_counts"]["retell_call_sessions"] == truth["calls_total"]
    row = result["jobs"]["trace"]
    assert row["agree"] is True and row["toolkit"]["n"] == 2 and row["naive"]["n"] == 2 and row["sql"]["n"] == 2
    assert row["toolkit_over_floor"] > 0 and row["toolkit_over_own_sql"] > 0 and row["toolkit"]["rss_peak_mib"] > 0
    check = result["index_check"]  # SQLite makes no index for the error log's foreign key
    assert check["missing"] == 1 and len(check["indexes"]) == 10
    tables = {a["table"] for r in result["indexes"] for a in r["access"]}
    assert {"retell_call_sessions", "retell_call_events", "retell_transcript_segments"} <= tables
    assert (tmp_path / result_file.name.replace(".json", ".md")).read_text().startswith("# Benchmark")


def test_unknown_job_is_refused(capsys):
    assert run.main(["--jobs", "nope", "--db", "sqlite:///unused.sqlite"]) == 2
    assert "unknown job/variant nope" in capsys.readouterr().err
