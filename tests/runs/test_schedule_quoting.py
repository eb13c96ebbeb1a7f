"""Shell-safe schedules: every value of the printed cron/systemd/Airflow lines comes back as exactly one
argument (no injection), credentials are refused, and the service reads secrets from an EnvironmentFile."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rca_toolkit.cli import main
from rca_toolkit.errors import ConfigError
from rca_toolkit.runs import scheduled, shell_quoting

ROOT = Path(__file__).resolve().parents[2]
DATE_EXPR = "$(TZ=Europe/Berlin date -d yesterday +%F)"
HOSTILE = ["prod; rm -rf ~", "a&b|c", "x' ; touch pwned ; '", "$(touch pwned)", "`id`", "${HOME} $HOME", "50% %F %%",
           'q"uote\\', "--db", "-x y", "é ü ß *", "mysql+pymysql://ro@db/app?charset=utf8mb4&ssl=1", "{{ 7*7 }}", "~root"]
values = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


def _cron_unescape(text: str) -> str:
    """What (vixie) cron hands to /bin/sh: ``\\%`` -> ``%``; an unescaped ``%`` ends the command."""
    out, escaped = [], False
    for ch in text:
        if escaped:
            out[-1:] = [ch] if ch == "%" else [out[-1], ch]
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif ch == "%":
            break
        else:
            out.append(ch)
    return "".join(out)


def _systemd_unquote(exec_start: str) -> list[str]:
    """``/bin/sh -c "<word>"`` -> the argv systemd starts (C escapes, ``$$``, ``%%``)."""
    assert exec_start.startswith('/bin/sh -c "') and exec_start.endswith('"')
    body = exec_start[len('/bin/sh -c "'):-1]
    assert not re.search(r'(?<!\\)(\\\\)*"', body)  # no quote ends the word early
    return ["/bin/sh", "-c", re.sub(r"\\(.)|\$\$|%%", lambda m: m.group(1) or m.group(0)[0], body)]


def _lines(text: str) -> tuple[str, str]:
    cron = next(line for line in text.splitlines() if line.startswith("30 6 * * * "))
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return cron[len("30 6 * * * "):], exec_start[len("ExecStart="):]


def _refused_for_a_reason(exc: ConfigError, *texts: str) -> bool:
    message = str(exc)
    return ("carries credentials" in message and any(shell_quoting.carries_credentials(t) for t in texts)) or \
        ("control character" in message and any(re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", t) for t in texts)) or \
        ("backslash before %" in message)


@settings(max_examples=300, deadline=None)
@given(db=values, company=values, rca_bin=values)
def test_command_for_gives_back_exactly_the_intended_argv(db, company, rca_bin):
    try:
        line = scheduled.health_command(rca_bin, "2025-10-14", "1d", company, db)
    except ConfigError as exc:
        assert _refused_for_a_reason(exc, db, company, rca_bin)
        return
    assert "\n" not in line
    assert shlex.split(line) == [rca_bin, "report", "health", "--date", "2025-10-14", "--period", "1d",
                                 "--company", company, "--db", db]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(db=values, company=values)
def test_cron_and_systemd_lines_give_back_exactly_the_intended_argv(db, company, tmp_path):
    try:
        text = scheduled.schedule_text("06:30", company_id=company, db=db, rca_bin="/opt/rca bin/rca", workdir=tmp_path)
    except ConfigError as exc:
        assert _refused_for_a_reason(exc, db, company)
        return
    argv = ["/opt/rca bin/rca", "report", "health", "--date", DATE_EXPR, "--period", "1d", "--company", company, "--db", db]
    cron, exec_start = _lines(text)
    assert shlex.split(_cron_unescape(cron)) == \
        ["cd", str(tmp_path), "&&", "RCA_PROGRESS=0", *argv, ">>", "reports/health-cron.log", "2>&1"]
    sh, dash_c, script = _systemd_unquote(exec_start)
    assert shlex.split(script) == ["exec", *argv]


@pytest.mark.parametrize("db", HOSTILE)
def test_hostile_values_reach_the_program_as_one_argument_through_a_real_shell(db, tmp_path):
    probe = tmp_path / "probe"
    probe.write_text("#!/bin/sh\nprintf '%s\\0' \"$@\"\n")
    probe.chmod(0o755)
    (tmp_path / "reports").mkdir()
    text = scheduled.schedule_text("06:30", db=db, company_id="7; id", rca_bin=str(probe), workdir=tmp_path)
    cron, exec_start = _lines(text)
    subprocess.run(["sh", "-c", _cron_unescape(cron)], check=True, cwd="/", timeout=30)
    from_cron = (tmp_path / "reports/health-cron.log").read_text().split("\0")[:-1]
    from_unit = subprocess.run(_systemd_unquote(exec_start), capture_output=True, text=True, cwd=tmp_path,
                               check=True, timeout=30).stdout.split("\0")[:-1]
    for got in (from_cron, from_unit):
        assert got[:3] == ["report", "health", "--date"] and re.fullmatch(r"\d{4}-\d\d-\d\d", got[3])
        assert got[4:] == ["--period", "1d", "--company", "7; id", "--db", db]
    assert not (tmp_path / "pwned").exists() and not Path("/pwned").exists()


@pytest.mark.parametrize("db", [
    "mysql+pymysql://ro:secret@db/app", "mysql+pymysql://ro:p@ss/word@db/app", "mysql+pymysql://ro@db/app?password=x",
    "mysql+pymysql://ro@db/app?charset=utf8&passwd=x", "mysql+pymysql://db/app?ssl_key_password=x",
    "mysql+pymysql://ro@db/app?PassWord=x"])
def test_urls_with_credentials_are_refused_everywhere_with_a_hint(db, capsys):
    for build in (lambda: scheduled.schedule_text("06:30", db=db), lambda: scheduled.health_command("rca", "2025-10-14", db=db)):
        with pytest.raises(ConfigError, match="carries credentials.*EnvironmentFile /etc/rca/rca-health.env"):
            build()
    assert main(["schedule", "health", "--db", db]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "secret" not in captured.err


def test_a_url_without_a_password_is_allowed_and_the_service_reads_secrets_from_an_environment_file(tmp_path):
    text = scheduled.schedule_text("06:30", db="mysql+pymysql://readonly@db.internal:3306/askproai", workdir=tmp_path,
                                   env_file="/etc/rca/prod.env")
    assert "EnvironmentFile=-/etc/rca/prod.env" in text.splitlines()
    with pytest.raises(ConfigError, match="--env-file='relative.env' is not an absolute path"):
        scheduled.schedule_text("06:30", env_file="relative.env")


def test_a_hostile_unit_still_passes_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = scheduled.schedule_text("06:30", db="x' ; \"$HOME\" 50% `id` \\", company_id="1 2", rca_bin="/bin/echo",
                                   workdir=tmp_path)
    unit = text.split("# --- /etc/systemd/system/rca-health-1d.service\n")[1].split("# ---")[0]
    (tmp_path / "rca-health-1d.service").write_text(unit)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "rca-health-1d.service")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


AIRFLOW_PYTHON = ROOT / os.environ.get("AIRFLOW_VENV", ".venv-airflow") / "bin" / "python"


@pytest.mark.skipif(not AIRFLOW_PYTHON.exists(), reason=".venv-airflow is absent (make airflow-check builds it)")
@pytest.mark.parametrize("db, refused", [("prod; rm -rf ~ & $(id)", False), ("mysql://u:pw@h/db", True)])
def test_the_airflow_dag_quotes_its_values_and_refuses_credentials(db, refused, tmp_path):
    out = tmp_path / "dag.json"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "RCA_BIN": "/srv/rca bin/rca", "RCA_HOME": "/srv/rca", "RCA_HEALTH_START": "2025-10-25",
           "RCA_HEALTH_DB": db, "RCA_HEALTH_COMPANY": "3"}
    subprocess.run([str(AIRFLOW_PYTHON), str(ROOT / "integrations/airflow/validate_dag.py"),
                    str(ROOT / "integrations/airflow"), "1", str(out)], capture_output=True, env=env, timeout=300)
    result = json.loads(out.read_text())
    if refused:
        assert "carries credentials" in json.dumps(result["import_errors"]) and "pw" not in result.get("runs", [])
        return
    command = result["runs"][0]["bash_command"]
    assert command == scheduled.health_command("/srv/rca bin/rca", "2025-10-25", "1d", "3", db)
    assert shlex.split(command)[-2:] == ["--db", db]


_secret = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs")), min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(secret=_secret, form=st.sampled_from(["user-info", "password", "passwd", "ssl_password"]))
def test_every_password_the_gate_would_hand_to_the_driver_is_refused_in_a_schedule(secret, form):
    """One definition of a credential (sources.credentials): whatever the gate moves into the driver's
    secrets, a schedule refuses, however the password is written (raw @ / ? #, URL-encoded, ...)."""
    from rca_toolkit.sources.credentials import gate_url, parse_url

    url = (f"mysql+pymysql://ro:{secret}@db:3306/app" if form == "user-info"
           else f"mysql+pymysql://ro@db:3306/app?{form}={secret}")
    try:
        gated = gate_url(parse_url(url))
    except ConfigError:
        return  # the gate refuses the URL itself: no schedule is made from it either
    if gated.secret_values():
        with pytest.raises(ConfigError, match="carries credentials"):
            shell_quoting.refuse_credentials(url)
