#!/usr/bin/env bash
# Validate the Airflow DAG with a real Apache Airflow in its own virtualenv (.venv-airflow/),
# so Airflow's pins never touch the toolkit's .venv. Idempotent: the venv is (re)built only
# when it is missing or the pinned version/constraints changed; later runs take a few seconds.
#
# Checks: the DAG folder loads with no import errors; the DAG serialises as the scheduler
# needs; catch-up through CronDataIntervalTimetable yields consecutive Berlin days across the
# 2025-10-26 DST change; for each of those runs the command Airflow renders is exactly the
# line `rca schedule health --command-for DAY` prints (the toolkit's own definition); and
# `airflow backfill create --dry-run` over the same range plans exactly those days.
#
# Env: AIRFLOW_VENV (default .venv-airflow), PYTHON (default python3.11), RCA_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
AIRFLOW_VERSION=3.2.2
PY_MINOR=3.11
CONSTRAINTS="integrations/airflow/constraints-${AIRFLOW_VERSION}-py${PY_MINOR}.txt"
VENV="${AIRFLOW_VENV:-.venv-airflow}"
PYTHON="${PYTHON:-python${PY_MINOR}}"
RCA_VENV="${RCA_VENV:-.venv}"
STAMP="$VENV/.installed-${AIRFLOW_VERSION}-$(sha256sum "$CONSTRAINTS" | cut -c1-12)"

if [[ ! -f "$STAMP" ]]; then
    echo "airflow-check: building $VENV with apache-airflow==$AIRFLOW_VERSION (pinned by $CONSTRAINTS)" >&2
    start=$(date +%s)
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$CONSTRAINTS" "apache-airflow==$AIRFLOW_VERSION" 2> >(grep -v "is ignored: it is neither" >&2)
    touch "$STAMP"
    echo "airflow-check: venv ready in $(( $(date +%s) - start )) s" >&2
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export AIRFLOW_HOME="$WORK/airflow-home"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/integrations/airflow"
export RCA_BIN="$ROOT/$RCA_VENV/bin/rca"
export RCA_HOME="$ROOT"
export RCA_HEALTH_START=2025-10-25   # three runs across the DST change of 2025-10-26
mkdir -p "$AIRFLOW_HOME"

"$VENV/bin/python" integrations/airflow/validate_dag.py integrations/airflow 3 "$WORK/dag.json" >"$WORK/airflow.log" 2>&1 || {
    echo "airflow-check: FAILED, the DAG does not load:" >&2
    cat "$WORK/dag.json" >&2 2>/dev/null || true
    grep -v "setup plugin" "$WORK/airflow.log" | tail -20 >&2
    exit 1
}

status=0
expected_days=(2025-10-25 2025-10-26 2025-10-27)
mapfile -t rendered_lines < <("$VENV/bin/python" -c "import json,sys; [print(r['bash_command']) for r in json.load(open(sys.argv[1]))['runs']]" "$WORK/dag.json")
mapfile -t expected_lines < <("$RCA_BIN" schedule health --command-for "${expected_days[@]}" --rca "$RCA_BIN")
for i in 0 1 2; do
    rendered="${rendered_lines[$i]:-}"
    expected="${expected_lines[$i]:-}"
    if [[ "$rendered" == "$expected" ]]; then
        echo "airflow-check: run $((i + 1)) renders: $rendered"
    else
        echo "airflow-check: MISMATCH for ${expected_days[$i]}:" >&2
        echo "  airflow renders: $rendered" >&2
        echo "  rca expects:     $expected" >&2
        status=1
    fi
done
# Airflow's own backfill planner (metadata DB in a throw-away AIRFLOW_HOME): the logical dates of a
# backfill over the same days must be the same Berlin days (logical date = data_interval_start).
"$VENV/bin/airflow" db migrate >"$WORK/db.log" 2>&1 && "$VENV/bin/airflow" dags reserialize >>"$WORK/db.log" 2>&1 \
    && "$VENV/bin/airflow" backfill create --dag-id rca_health_report --from-date 2025-10-25 --to-date 2025-10-28 \
        --dry-run >"$WORK/backfill.log" 2>&1 || { echo "airflow-check: backfill dry run FAILED" >&2; tail -20 "$WORK/backfill.log" "$WORK/db.log" >&2; exit 1; }
planned=$("$VENV/bin/python" -c "
import re, sys, pendulum
stamps = re.findall(r'^\| (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00)', open(sys.argv[1]).read(), re.M)
print(' '.join(pendulum.parse(s).in_timezone('Europe/Berlin').strftime('%Y-%m-%d') for s in stamps))
" "$WORK/backfill.log")
if [[ "$planned" == "${expected_days[*]}" ]]; then
    echo "airflow-check: airflow backfill create --dry-run plans the Berlin days: $planned"
else
    echo "airflow-check: backfill plans '$planned', expected '${expected_days[*]}'" >&2
    status=1
fi

"$VENV/bin/python" -c "
import json, sys
d = json.load(open(sys.argv[1]))
assert d['import_errors'] == {}, d['import_errors']
assert d['catchup'] is True and d['timetable'] == 'CronDataIntervalTimetable', d
assert d['cwd'] == sys.argv[2], d['cwd']
print('airflow-check: DagBag import errors: none; dags:', ', '.join(d['dag_ids']), '; timetable', d['timetable'], '; catchup on')
" "$WORK/dag.json" "$ROOT" || status=1
cp "$WORK/dag.json" "${AIRFLOW_CHECK_OUT:-/dev/null}" 2>/dev/null || true
exit $status
