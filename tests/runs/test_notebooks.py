"""Parameter declaration/validation, run folders, reports and secrets of `rca run`."""

from __future__ import annotations

import base64
import json
import os
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa
import yaml

from rca_toolkit import cli
from rca_toolkit.runs import kernel, parameters, runner
from rca_toolkit.errors import ConfigError, NotFound
from rca_toolkit.outcome import Outcome

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"
TINY = FIXTURES / "tiny_report.ipynb"
GOOD_CELL = (
    'db_url: str = ""  # database URL or profile\n'
    'deployed_at: str = "2025-10-18T13:20:08+02:00"  # when the deploy finished\n'
    'as_of: str = ""  # end of the window\n'
    'since: str = "2025-11-14T12:00:00+01:00"  # ISO-8601 start\n'
    'window: str = "5d"  # how long after the deploy\n'
    'grace: str = "30m"  # duration to ignore\n'
    'min_n: int = 20  # attempts needed for a verdict\n'
    'target: float = 0.98  # success share\n'
    'strict: bool = True  # fail on warnings'
)


# --------------------------------------------------------------------------- declaration
def test_parse_parameters_types_kinds_and_help():
    params = {p.name: p for p in parameters.parse_parameters(GOOD_CELL)}
    assert list(params) == ["db_url", "deployed_at", "as_of", "since", "window", "grace", "min_n", "target", "strict"]
    assert [params[n].kind for n in ("deployed_at", "as_of", "since")] == ["timestamp"] * 3
    assert params["window"].kind == "duration" and params["grace"].kind == "duration"
    assert params["db_url"].kind == "value" and params["min_n"].default == 20 and params["target"].type == "float"
    assert params["strict"].default is True and params["min_n"].help == "attempts needed for a verdict"


@pytest.mark.parametrize("source, fragment", [
    ("x = 3  # untyped", "is not `name: type = default"),
    ("x: int = 3", "no `# help` comment"),
    ("x: list = []  # a list", "has type 'list'"),
    ("x: int = len('a')  # computed", "is not a literal"),
    ("x: int = '3'  # wrong", "is not a int"),
    ("started_at: str = '2025-10-18 13:20:08'  # naive", "has no time zone"),
    ("lookback: str = 'five days'  # how far back", "is not a duration"),
    ("import os", "is not `name: type = default"),
])
def test_parse_parameters_rejects_untyped_or_undocumented(source, fragment):
    with pytest.raises(ConfigError) as err:
        parameters.parse_parameters(source)
    assert fragment in str(err.value)


def test_read_parameters_of_fixture_and_missing_cell(tmp_path):
    names = [p.name for p in parameters.read_parameters(TINY)]
    assert names == ["db_url", "since_at", "window", "limit", "ratio", "fail"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x: int = 1  # x")])
    path = tmp_path / "untagged.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ConfigError, match="no cell tagged `parameters`"):
        parameters.read_parameters(path)
    with pytest.raises(NotFound):
        parameters.read_parameters(tmp_path / "nope.ipynb")


def test_validate_coerces_cli_strings_and_yaml_values():
    declared = parameters.parse_parameters(GOOD_CELL)
    got = parameters.validate(declared, {"min_n": "7", "target": "0.9", "strict": "no", "window": "36h",
                                        "deployed_at": "2025-11-14T12:00:00Z"})
    assert got == {"min_n": 7, "target": 0.9, "strict": False, "window": "36h", "deployed_at": "2025-11-14T12:00:00Z"}
    yaml_values = yaml.safe_load("min_n: 5\ntarget: 1\ndeployed_at: 2025-10-18T13:20:08+02:00\n")
    got = parameters.validate(declared, yaml_values)
    assert got["target"] == 1.0 and got["deployed_at"].startswith("2025-10-18T13:20:08+02:00")


@pytest.mark.parametrize("given, fragment", [
    ({"nope": "1"}, "unknown parameter nope"),
    ({"deployed_at": "2025-10-18 13:20:08"}, "has no time zone"),
    ({"deployed_at": "yesterday"}, "is not an ISO-8601 timestamp"),
    ({"window": "5 days"}, "is not a duration"),
    ({"min_n": "many"}, "min_n='many' is not a int"),
    ({"strict": "maybe"}, "is not a bool"),
    ({"min_n": 2.5}, "is not a int"),
    ({"deployed_at": yaml.safe_load("2025-10-18 13:20:08")}, "has no time zone"),
])
def test_validate_rejects_unknown_names_and_wrong_values(given, fragment):
    declared = parameters.parse_parameters(GOOD_CELL)
    with pytest.raises(ConfigError) as err:
        parameters.validate(declared, given, notebook="RB001.ipynb")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_rejects_bad_parameters_before_execution(tmp_path, capsys):
    out = tmp_path / "reports"
    assert cli.main(["run", str(TINY), "-p", "nope", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown parameter nope" in err and "known: db_url, since_at" in err
    assert cli.main(["run", str(TINY), "-p", "since_at", "2025-10-18T13:20:08", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no time zone" in err
    assert not out.exists()  # nothing executed, no run folder, no executed notebook


def test_helpers_are_noops_outside_a_run(monkeypatch):
    monkeypatch.delenv("RCA_RUN_DIR", raising=False)
    assert kernel.record_metrics({"a": 1}) is None
    assert kernel.save_text("x.md", "x") is None
    with pytest.raises(ConfigError):
        kernel.save_figure(object(), "../escape")


def test_helpers_write_into_the_run_dir(monkeypatch, tmp_path):
    from matplotlib.figure import Figure

    monkeypatch.setenv("RCA_RUN_DIR", str(tmp_path))
    kernel.record_metrics({"a": 1, "b": {"c": 2}})
    kernel.record_metrics({"a": 3})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 3, "b": {"c": 2}}
    kernel.record_metrics({"key_numbers": {"success before -> after": "0 % -> 75 %", "calls": 9}})
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert list(written) == ["a", "b", "key_numbers"]  # by name: a stable file
    assert list(written["key_numbers"]) == ["success before -> after", "calls"]  # as given: the index shows them so
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    path = kernel.save_figure(fig, "trend")
    assert path == tmp_path / "figures" / "trend.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_split_secrets_redacts_and_keeps_real_value_for_kernel(monkeypatch):
    url = "mysql+pymysql://ro:s3cr3t-pw@db.example:3306/app"
    safe, env, passwords = runner.split_secrets({"db_url": url, "note": "see http://x", "n": 1})
    assert safe == {"db_url": "mysql+pymysql://ro:***@db.example:3306/app", "note": "see http://x", "n": 1}
    assert env == {"RCA_PARAM_DB_URL": url} and passwords == ["s3cr3t-pw"]
    monkeypatch.setenv("RCA_PARAM_DB_URL", url)
    assert kernel.param_value("db_url", safe["db_url"]) == url
    assert kernel.param_value("db_url", "sqlite:///other.sqlite") == "sqlite:///other.sqlite"


# --------------------------------------------------------------------------- executions
@pytest.mark.slow
def test_run_folder_contents_report_and_non_default_parameters(tmp_path):
    result = runner.run_notebook(TINY, {"limit": "7", "window": "30m"}, out_dir=tmp_path, progress=False)
    assert result.status == "ok" and result.outcome == Outcome.CLEAR
    run = result.run_dir
    assert run.parent == tmp_path / "tiny_report" and run.name.endswith(run.name[-6:]) and "Z-" in run.name
    assert sorted(p.name for p in run.iterdir()) == ["figures", "metrics.json", "params.yaml", "report.html",
                                                      "report.md", "report_files", "run.json", "tiny_report.ipynb"]
    assert not list(tmp_path.glob("tiny_report/.*.partial"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["limit"] == 7 and metrics["window"] == "30m" and metrics["ratio"] == 0.5
    assert yaml.safe_load((run / "params.yaml").read_text())["limit"] == 7
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "ok" and info["outcome"] == "clear" and info["toolkit_version"]
    assert info["parameters"]["window"] == "30m" and info["started_at"] < info["ended_at"]
    assert (run / "figures" / "line.png").read_bytes()[:4] == b"\x89PNG"
    html = (run / "report.html").read_text()
    assert "kernel.save_figure" not in html and "record_metrics" not in html  # no code cells
    assert "limit is 7" in html and "Tiny report" in html
    assert "data:image/png;base64," in html  # the figure is embedded
    assert "<script src" not in html and "https://" not in html and "http://" not in html
    png = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(png)[:4] == b"\x89PNG"
    md = (run / "report.md").read_text()
    assert "limit is 7" in md and "save_figure" not in md
    for rel in [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]:
        assert (run / rel).is_file()
    executed = nbformat.read(run / "tiny_report.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


@pytest.mark.slow
def test_failed_run_keeps_executed_notebook_and_exits_3(tmp_path, capsys):
    code = cli.main(["run", str(TINY), "-p", "fail", "true", "--out", str(tmp_path)])
    assert code == 3  # an AssertionError in a cell is not the toolkit naming a wrong input: internal
    err = capsys.readouterr().err
    assert "AssertionError: asked to fail" in err
    (run,) = (tmp_path / "tiny_report").iterdir()
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and info["outcome"] == "internal_error" and info["error"] == "AssertionError: asked to fail"
    executed = nbformat.read(run / "tiny_report.ipynb", as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "AssertionError"
    assert "asked to fail" in (run / "report.html").read_text()


@pytest.mark.slow
def test_default_project_paths_resolve_from_outside_the_checkout(tmp_path, monkeypatch, demo_sqlite, capsys):
    """RB010's default code path (tests/fixtures/laravel_before) is found from the project its notebook ships
    in, not only from parents of the working directory: `cd /tmp; rca runbook RB010` scans it."""
    monkeypatch.chdir(tmp_path)
    code = cli.main(["runbook", "RB010", "--db", demo_sqlite[0], "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code in (0, 1), out
    (run,) = (tmp_path / "out" / "RB010-phantom-columns").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["counts"]["ERROR"] == 0 and metrics["verdict"] != "ERROR"


@pytest.mark.slow
def test_the_summary_block_says_what_the_result_objects_say(tmp_path, demo_sqlite):
    """The incident's and the overview's summary lines come from their result objects (metrics ``reasons``, ``headline``),
    never re-derived from metrics.json: the claim counts name every status, the success share is the table's."""
    from rca_toolkit.analyses import overview, quality, tables
    from rca_toolkit.analyses.bookings import counts
    from rca_toolkit.rules import timeutil
    from rca_toolkit.analyses.incident.build import incident
    from rca_toolkit.runs import render
    from rca_toolkit.sources import loaders

    url, _ = demo_sqlite
    root = Path(__file__).resolve().parents[2] / "notebooks"
    declared = {p.name: p.default for p in parameters.read_parameters(root / "overview.ipynb")}
    calls = loaders.calls(url, start=declared["start"], end=declared["end"])
    attempts = counts.attempt_counts(url, start=declared["start"], end=declared["end"],
                                     bins=timeutil.day_edges(declared["start"], declared["end"]))
    world = overview.summarize(calls, attempts, quality.quality_report(calls))
    signature = {p.name: p.default for p in parameters.read_parameters(root / "incident_report.ipynb")}["signature"]
    expected = {"overview": world.summary_lines(),
                "incident_report": [x.removeprefix("- ") for x in incident(url, signature).summary_lines()
                                    if not x.startswith("SYNTHETIC")]}  # one bullet each, never "- " inside one
    assert any(x.startswith("Claims: ") and "0 not measurable" in x for x in expected["incident_report"])
    for stem, lines in expected.items():
        run = runner.run_notebook(root / f"{stem}.ipynb", {}, db=url, out_dir=tmp_path, progress=False)
        assert run.status == "ok", run.error
        verdict = render.verdict_of(json.loads((run.run_dir / "metrics.json").read_text()))
        assert [text for _, text in verdict.reasons] == lines
    path, row = next(iter(world.outcomes_by_path.iterrows()))
    table_cell = tables.share_of(row["success"], row["attempts"], unit="")  # "53.6 (215/401)" under "success rate (%)"
    assert f"{path} {table_cell.replace(' (', ' % (')}" in expected["overview"][1]


SECRET_NB = [
    ("md", "# Secret handling fixture"),
    ("params", 'db_url: str = ""  # database URL or profile\nleak: bool = False  # print the real URL on purpose'),
    ("code", "from rca_toolkit.runs import kernel\nfrom rca_toolkit.sources import loaders\n"
             "engine = kernel.open_db(db_url)\n"
             "tables = sorted(loaders.schema_of(engine))\n"
             "kernel.record_metrics({'tables': tables, 'url_shown': str(engine.url)})\n"
             "print(engine.url, db_url, tables)"),
    ("code", "real = kernel.param_value('db_url', db_url)\n"
             "print(real if leak else 'not leaking')\n"
             "assert not leak, 'leaked ' + real"),
]


def _write_nb(path: Path, cells) -> Path:
    made = []
    for kind, src in cells:
        if kind == "md":
            made.append(nbformat.v4.new_markdown_cell(src))
        else:
            made.append(nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]} if kind == "params" else {}))
    nb = nbformat.v4.new_notebook(cells=made, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                       "language": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.fixture
def password_url(mariadb_url):
    """A MariaDB user with a password, allowed to read its own scratch database (dropped afterwards)."""
    server = sa.engine.make_url(mariadb_url).set(database="")
    admin = sa.create_engine(server)
    db_name, user = f"rca_secret_{uuid.uuid4().hex[:8]}", f"rca_ro_{uuid.uuid4().hex[:8]}"
    password = f"s3cr3t-pw-{uuid.uuid4().hex[:6]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{db_name}`"))
        conn.execute(sa.text(f"CREATE TABLE `{db_name}`.secret_probe (id INT PRIMARY KEY)"))
        conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
        conn.execute(sa.text(f"GRANT SELECT ON `{db_name}`.* TO '{user}'@'%'"))
    url = server.set(username=user, password=password, database=db_name)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{db_name}`"))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.mariadb
def test_no_password_in_any_file_of_the_run_folder(tmp_path, password_url):
    """The notebook connects with the real password, then prints it and fails with it in the
    traceback on purpose: no file of the run folder may contain it."""
    url, password = password_url
    nb = _write_nb(tmp_path / "secret_probe.ipynb", SECRET_NB)
    result = runner.run_notebook(nb, {"leak": "true"}, db=url, out_dir=tmp_path / "out", progress=False)
    assert result.status == "failed" and result.outcome == Outcome.INTERNAL_ERROR
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert {"secret_probe.ipynb", "report.html", "report.md", "metrics.json", "params.yaml", "run.json"} <= {p.name for p in files}
    for path in files:
        assert password.encode() not in path.read_bytes(), f"password found in {path.name}"
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["tables"] == ["secret_probe"] and "***" in metrics["url_shown"]  # the kernel really connected
    executed = nbformat.read(result.run_dir / "secret_probe.ipynb", as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert ":***@" in injected.source and "leaked" in (result.run_dir / "report.html").read_text()
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["database"].startswith("mysql+pymysql://rca_ro_") and ":***@" in info["database"]
    assert ":***@" in info["error"] and os.environ.get("RCA_PARAM_DB_URL") is None  # environment restored


@pytest.mark.slow
@pytest.mark.mariadb
@pytest.mark.parametrize("key", ["password", "passwd"])
def test_a_password_given_as_a_query_key_reaches_no_file_either(tmp_path, password_url, key):
    """pymysql also takes ``?password=`` / ``?passwd=``: the run connects with it, prints and raises it on
    purpose, and still no file of the run folder holds it (the scrubber knows the query-key forms)."""
    url, password = password_url
    user_info, rest = url.split("://", 1)[1].split("@", 1)
    query_url = f"mysql+pymysql://{user_info.split(':', 1)[0]}@{rest}?{key}={password}"
    nb = _write_nb(tmp_path / "secret_probe.ipynb", SECRET_NB)
    result = runner.run_notebook(nb, {"leak": "true"}, db=query_url, out_dir=tmp_path / "out", progress=False)
    assert result.status == "failed"  # it printed the real URL and failed with it on purpose
    assert json.loads((result.run_dir / "metrics.json").read_text())["tables"] == ["secret_probe"]
    for path in (p for p in result.run_dir.rglob("*") if p.is_file()):
        assert password.encode() not in path.read_bytes(), f"password found in {path.name}"


def test_params_file_is_validated_like_cli_values(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("since_at: 2025-10-18 13:20:08\nlimit: 4\n")  # YAML makes a naive datetime of it
    assert cli.main(["run", str(TINY), "-f", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "since_at='2025-10-18T13:20:08' has no time zone" in capsys.readouterr().err
    assert parameters.load_params_file(bad)["limit"] == 4
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="is not a mapping"):
        parameters.load_params_file(tmp_path / "list.yaml")
    assert cli.main(["run", "no_such_notebook", "--out", str(tmp_path / "out")]) == 2
    assert "no notebook named 'no_such_notebook'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_report_html_never_fetches_and_hides_code():
    from rca_toolkit.runs import render as report

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title\n\nSee [the docs](https://example.org/docs) and $x^2$."),
        nbformat.v4.new_code_cell("secret_code_here()", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": '<img src="https://cdn.example/x.png"><script src="//cdn.example/a.js">'
                                               "</script><b>shown</b>", "text/plain": "x"})]),
    ])
    page = report.render_html(nb, title="t")
    assert "secret_code_here" not in page and "<b>shown</b>" in page
    assert 'href="https://example.org/docs"' in page  # a link is not a fetch
    assert 'src="blocked-remote:cdn.example/x.png"' in page and 'src="blocked-remote:cdn.example/a.js"' in page
    assert "mathjax" not in page.lower() and "require.js" not in page
    md, files = report.render_markdown(nb, title="t")
    assert "secret_code_here" not in md and files == {}


FIRST_START_FAILS = '''import os, sys, time
marker, how = sys.argv[1], sys.argv[2]
if not os.path.exists(marker):  # the first start only: die at once, or hang without ever replying
    open(marker, "w").close()
    if how == "hang":
        time.sleep(30)
    sys.exit(1)
from ipykernel import kernelapp
sys.argv = [sys.argv[0], *sys.argv[3:]]
kernelapp.launch_new_instance()
'''


def _kernel_transport_notebook(path: Path) -> Path:
    """A notebook that prints its kernel's transport and socket address (``ip``), as the kernel itself has them."""
    cells = [nbformat.v4.new_code_cell("n: int = 1  # a run", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("import json\nfrom ipykernel import get_connection_info\n"
                                       "info = json.loads(get_connection_info())\nprint(info['transport'], info['ip'])")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def _kernel_transport(result) -> list[str]:
    """``[transport, ip]`` as the run's kernel printed them."""
    return nbformat.read(result.run_dir / "where.ipynb", as_version=4).cells[-1].outputs[0]["text"].split()


@pytest.mark.slow
def test_two_runs_at_once_talk_to_their_kernels_over_unix_sockets_of_their_own(tmp_path):
    """Over TCP two kernels started at once could race for a port (a kernel died, or its client waited on another's
    socket). Each start's kernel now listens on unix sockets in a folder of its own, gone once the run ends."""
    from concurrent.futures import ThreadPoolExecutor

    path = _kernel_transport_notebook(tmp_path / "where.ipynb")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda n: runner.run_notebook(path, out_dir=tmp_path / f"out{n}", progress=False), (1, 2)))
    places = []
    for result in runs:
        assert result.status == "ok"
        transport, ip = _kernel_transport(result)
        assert transport == "ipc" and Path(ip).name == "kernel"
        places.append(Path(ip).parent)
    assert places[0] != places[1] and not any(place.exists() for place in places)


@pytest.mark.slow
def test_under_a_temp_folder_too_long_for_a_unix_socket_the_kernel_talks_over_tcp(tmp_path, monkeypatch):
    """A socket's path holds about a hundred bytes: under a longer TMPDIR the run keeps TCP instead of failing."""
    import tempfile

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = _kernel_transport_notebook(tmp_path / "where.ipynb")
    result = runner.run_notebook(path, out_dir=tmp_path / "out", progress=False)
    assert result.status == "ok"
    assert _kernel_transport(result)[0] == "tcp"
    assert list(deep.iterdir()) == []  # the folder made for the sockets is gone too


@pytest.mark.slow
@pytest.mark.parametrize("how", ["die", "hang"])
def test_a_kernel_that_dies_or_hangs_before_its_first_reply_is_started_again(tmp_path, monkeypatch, how):
    """Two kernels started at once can race for a port: one dies, or hangs, before any cell runs. The run starts a
    new kernel then (a real kernelspec whose first start fails), and records the run as ok."""
    launcher, marker = tmp_path / "launch.py", tmp_path / "started-once"
    launcher.write_text(FIRST_START_FAILS)
    spec = tmp_path / "share" / "kernels" / "flaky"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(launcher), str(marker), how, "-f", "{connection_file}"],
        "display_name": "first start fails", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    monkeypatch.setattr(runner, "KERNEL_START_TIMEOUT", 5)
    result = runner.run_notebook(TINY, {"limit": "7", "window": "30m"}, out_dir=tmp_path / "out", progress=False,
                                 kernel_name="flaky")
    assert marker.exists() and result.status == "ok" and result.outcome == Outcome.CLEAR
    assert json.loads((result.run_dir / "run.json").read_text())["kernel"] == "flaky"
