"""The Airflow DAG, loaded by a real Airflow in its own virtualenv (.venv-airflow).

``make airflow-check`` builds that virtualenv (integrations/airflow/check_dag.sh) and runs the
full check, including Airflow's backfill planner; these tests reuse the virtualenv to check
from pytest that the DAG loads, that catch-up follows the data intervals, that the rendered
command is the toolkit's own ``rca report health`` line and parses with the real CLI, and that
a broken DAG file is reported rather than silently skipped.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from rca_toolkit import cli
from rca_toolkit.runs import scheduled

ROOT = Path(__file__).resolve().parents[2]
DAG_FOLDER = ROOT / "integrations" / "airflow"
AIRFLOW_PYTHON = ROOT / os.environ.get("AIRFLOW_VENV", ".venv-airflow") / "bin" / "python"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    if not AIRFLOW_PYTHON.exists():
        message = f"{AIRFLOW_PYTHON} is absent: run `make airflow-check` first (it builds Airflow's own virtualenv)"
        if IN_CI:
            pytest.fail(message + " (CI=true: this must run, not skip)")
        pytest.skip(message)
    return AIRFLOW_PYTHON


def validate(airflow_python: Path, folder: Path, tmp_path: Path, runs: int = 3) -> tuple[int, dict]:
    out = tmp_path / "dag.json"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "RCA_BIN": "/srv/rca/.venv/bin/rca", "RCA_HOME": "/srv/rca", "RCA_HEALTH_START": "2025-10-25"}
    env.pop("RCA_HEALTH_COMPANY", None)
    env.pop("RCA_HEALTH_DB", None)
    done = subprocess.run([str(airflow_python), str(DAG_FOLDER / "validate_dag.py"), str(folder), str(runs), str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    return done.returncode, json.loads(out.read_text()) if out.exists() else {}


def test_dag_loads_and_renders_the_rca_line_for_each_catch_up_day(airflow_python, tmp_path):
    code, result = validate(airflow_python, DAG_FOLDER, tmp_path)
    assert code == 0, result
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["rca_health_report"]
    assert result["timetable"] == "CronDataIntervalTimetable" and result["catchup"] is True
    assert result["cwd"] == "/srv/rca"
    days = ["2025-10-25", "2025-10-26", "2025-10-27"]  # across the DST change of 2025-10-26
    assert [r["bash_command"] for r in result["runs"]] == \
        [scheduled.health_command("/srv/rca/.venv/bin/rca", day) for day in days]
    # 06:30 Berlin is 04:30 UTC in summer time and 05:30 UTC after the change
    assert [r["data_interval_start"] for r in result["runs"]] == \
        ["2025-10-25T04:30:00+00:00", "2025-10-26T05:30:00+00:00", "2025-10-27T05:30:00+00:00"]
    parser = cli.build_parser()
    for day, run in zip(days, result["runs"]):
        argv = shlex.split(run["bash_command"])[1:]
        args = parser.parse_args(argv)
        assert (args.command, args.report_command, str(args.date), args.period, args.company) == \
            ("report", "health", day, "1d", 0)


def test_a_broken_dag_file_is_reported_as_an_import_error(airflow_python, tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    text = (DAG_FOLDER / "rca_health_dag.py").read_text()
    (folder / "rca_health_dag.py").write_text(text.replace("from airflow.sdk import DAG", "from airflow.sdk import DAGG"))
    code, result = validate(airflow_python, folder, tmp_path)
    assert code == 1
    assert list(result["import_errors"]) == [str(folder / "rca_health_dag.py")]
    assert "DAGG" in result["import_errors"][str(folder / "rca_health_dag.py")]
    assert result["dag_ids"] == []
