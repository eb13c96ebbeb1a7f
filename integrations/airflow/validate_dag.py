"""Load the DAG folder with real Airflow and render the task command for the first catch-up runs.

Run with the Airflow virtualenv's python (``check_dag.sh`` does). Writes one JSON object to OUT.json
(Airflow logs to stdout, so the result goes to a file):
``import_errors`` (must be empty), ``dag_ids``, and ``runs``: for each of the first N runs the
scheduler would create with ``catchup=True``, the data interval and the bash command rendered by
Airflow's own Jinja environment. Exit status 1 when the DAG does not load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction

DAG_ID = "rca_health_report"
TASK_ID = "report_health"


def main(folder: str, runs: int, out_path: str) -> int:
    bag = DagBag(dag_folder=folder, include_examples=False)
    out: dict = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
                 "dag_ids": sorted(bag.dag_ids), "runs": []}
    dag = bag.dags.get(DAG_ID)
    if dag is None or out["import_errors"]:
        Path(out_path).write_text(json.dumps(out, indent=2))
        return 1
    task = dag.get_task(TASK_ID)
    # What the scheduler sees: the serialized DAG with the core timetable.
    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    restriction = TimeRestriction(earliest=scheduled.start_date, latest=None, catchup=scheduled.catchup)
    last = None
    for _ in range(runs):
        info = scheduled.timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        last = info.data_interval
        context = {"data_interval_start": last.start, "data_interval_end": last.end,
                   "logical_date": info.logical_date, "dag": dag, "task": task}
        command = task.render_template(task.bash_command, context, jinja_env=dag.get_template_env())
        out["runs"].append({"data_interval_start": last.start.isoformat(), "data_interval_end": last.end.isoformat(),
                            "run_after": info.run_after.isoformat(), "bash_command": command})
    out["catchup"] = dag.catchup
    out["timetable"] = type(scheduled.timetable).__name__
    out["cwd"] = task.cwd
    Path(out_path).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: validate_dag.py DAG_FOLDER RUNS OUT.json")
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
