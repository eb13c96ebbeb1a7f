"""Airflow DAG: run ``rca report health`` once per Berlin day, catch-up through data intervals.

Why a data-interval timetable: Airflow 3 schedules cron strings with ``CronTriggerTimetable``
(zero-length interval, logical date = trigger time). A daily report must be about a *closed*
day, so this DAG uses ``CronDataIntervalTimetable``: the run that fires on D+1 at 06:30 Berlin
covers the interval [D 06:30, D+1 06:30) and reports on calendar day D, the date of
``data_interval_start`` in Berlin. Catch-up (``catchup=True``) and ``airflow backfill create``
create one run per missed interval, so every missed day gets exactly its own report.

The task is the same command line ``rca schedule health`` prints; the toolkit's exit codes
(0 OK/WATCH, 1 ACT, 2 bad input, 3 internal error; README "Exit codes") make an ACT day a failed task, which is how Airflow alerts.

Configuration at parse time (environment of the scheduler/DAG processor):
``RCA_HOME`` project directory (working directory of the command), ``RCA_BIN`` the ``rca``
executable (default ``rca`` on PATH), ``RCA_HEALTH_COMPANY`` optional company id,
``RCA_HEALTH_DB`` optional database profile name (never a URL with a password),
``RCA_HEALTH_START`` first day to report on (ISO date, default 2025-10-01).
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronDataIntervalTimetable

TIMEZONE = "Europe/Berlin"
REPORT_DATE = "{{ data_interval_start.in_timezone('" + TIMEZONE + "').strftime('%Y-%m-%d') }}"


def _carries_credentials(value: str) -> bool:
    """A password in any form rca_toolkit.sources.credentials.redact_text masks: ``scheme://user:password@``
    (to the last ``@``) or a ``password``/``passwd``/``*password`` query key. The same two patterns as there:
    the DAG must load in Airflow's own virtualenv, which does not install the toolkit."""
    return bool(re.search(r"://[^:/@\s]*:\S*@[^@\s]*", value) or
                re.search(r"[?&;][\w.-]*(?:password|passwd)=", value, re.IGNORECASE))


def _value(name: str, value: str) -> str:
    """One shell word; refused (a DAG import error) when it would leak a password, end the line or be
    rendered by Airflow's Jinja (``{{``, ``{%``, ``{#``)."""
    if _carries_credentials(value):
        raise ValueError(f"{name} carries credentials: use a profile name or RCA_DATABASE_URL in the worker's environment")
    if re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]|\{[{%#]", value):
        raise ValueError(f"{name}={value!r} holds a control character or a Jinja delimiter")
    return shlex.quote(value)


def health_command(rca_bin: str, date: str, company: str | None, db: str | None) -> str:
    """The ``rca report health`` line; identical to what ``rca schedule health --command-for`` prints.

    Every value is shell-quoted; ``date`` is this DAG's own Jinja template (it renders to YYYY-MM-DD)."""
    parts = [_value("RCA_BIN", rca_bin), "report", "health", "--date", date, "--period", "1d"]
    if company:
        parts += ["--company", _value("RCA_HEALTH_COMPANY", company)]
    if db:
        parts += ["--db", _value("RCA_HEALTH_DB", db)]
    return " ".join(parts)


with DAG(
    dag_id="rca_health_report",
    description="Daily booking-platform health report (rca report health), one run per Berlin day",
    schedule=CronDataIntervalTimetable("30 6 * * *", timezone=TIMEZONE),
    start_date=pendulum.parse(os.environ.get("RCA_HEALTH_START", "2025-10-01"), tz=TIMEZONE).add(hours=6, minutes=30),
    catchup=True,
    max_active_runs=2,
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=30)},
    tags=["rca", "health"],
) as dag:
    BashOperator(
        task_id="report_health",
        bash_command=health_command(
            os.environ.get("RCA_BIN", "rca"),
            REPORT_DATE,
            os.environ.get("RCA_HEALTH_COMPANY"),
            os.environ.get("RCA_HEALTH_DB"),
        ),
        cwd=os.environ.get("RCA_HOME") or None,
        env={"RCA_PROGRESS": "0"},
        append_env=True,
    )
