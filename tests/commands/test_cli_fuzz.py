"""Hypothesis over the CLI's argument surface: every hostile value keeps the boundary's contract.

Subcommand x option x hostile value (text, huge/negative/nan/inf numbers, unicode, NUL-free
binary-ish strings, paths to odd files), plus RCA_* variables and config files, through
``cli.main(argv)`` in-process. The contract: exit 0/1/2 (never 3: none of these is a bug), at most
one stderr line, no traceback, the analysed demo database unchanged (hash and mtime), and a
password given in a URL (``?password=s3cret-XYZ``) in no output. Commands that run a notebook are
fuzzed only with values the host must refuse before a kernel starts: no run folder may appear.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from rca_toolkit import cli

PASSWORD = "s3cret-XYZ"
CALL = "call_ab45deadd7db66c4956d5243861"
AT = "2025-10-18T13:20:08+02:00"
# capsys is read (and so reset) after every example, which makes sharing it across examples safe
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SMALL_FUZZ = settings(FUZZ, max_examples=40)
ODD = "@odd:"  # marks a value that names an odd file in the module's folder

# ---------------------------------------------------------------------------- hostile values
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
BINARYISH = st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" not in b).map(lambda b: b.decode("latin-1"))
NUMBERS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "NaN", "-1", "0", "-0", "1e400", "-1e400", "1e-400", "9" * 60,
                     "99999999999999999999999", "0x10", "1_000", " 7 ", "3.5", "-2.5"]),
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
TIMES = st.sampled_from([
    "9999-12-31", "0001-01-01", "9999-12-31T00:00:00Z", "0001-01-01T00:00:00+14:00", "yesterday-ish garbage",
    "2025-02-30T00:00:00Z", "2025-10-18T13:20:08+99:00", "2025-10-18T25:61:00Z", "99999999d", "-5d", "1e9w",
    "0d", "5 days", "1970-01-01T00:00:00-00:01", "2199-12-31T23:59:59Z", "2262-04-12T00:00:00Z", "NaT", "now",
])
UNICODE = st.sampled_from(["call_ä", "😀", "\u202e\u202d", "ｃａｌｌ_１２３", "Ω" * 300, "\u0301", "e\u0301", "\ufeff2025-10-18"])
ODD_FILES = ["text.txt", "image.png", "empty.sqlite", "folder", "missing.sqlite", "binary.bin", "notes.sqlite",
             "list.yaml", "deep.json", "header.csv"]
PATHS = st.sampled_from(ODD_FILES).map(lambda name: ODD + name)
URL_VALUES = [
    f"mysql+pymysql://root@127.0.0.1:1/db?password={PASSWORD}",
    f"mysql+pymysql://root@127.0.0.1:abc/db?password={PASSWORD}",
    f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:99999/db",
    f"mysql+pymysql://root:{PASSWORD}/db",
    f"mysql+pymysql://root@127.0.0.1:0/db?passwd={PASSWORD}",
    f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:1/db?init_command=DELETE%20FROM%20calls",
    f"mysql+pymysql://root@127.0.0.1:-1/db?password={PASSWORD}",
    f"sqlite:///{ODD}text.txt?password={PASSWORD}",
    "sqlite:///" + ODD + "image.png", "sqlite:///" + ODD + "empty.sqlite", "sqlite:///" + ODD + "folder",
    "sqlite:///" + ODD + "missing.sqlite", "sqlite://", "sqlite:///:memory:", "postgresql://u@h/db", "not a url", "prod",
]
URLS = st.sampled_from(URL_VALUES)
SECRET_URLS = [u for u in URL_VALUES if PASSWORD in u]  # a password given in a URL: it must appear nowhere
HOSTILE = st.one_of(TEXT, BINARYISH, NUMBERS, TIMES, UNICODE, PATHS, URLS)

# ---------------------------------------------------------------------------- the surface (no kernels)
# command -> (argv, positional or None, {option: values}); None takes any HOSTILE value. Options that walk
# a folder (drift --code, migrations --files, prune --reports-dir, import FILE) get only the odd paths: "/"
# would make them scan the whole disk, which is slow, not wrong.
SURFACE = {
    "timeline": (["timeline"], CALL, {"@pos": None, "--dead-air": None, "--slow-tool": None, "--retell-json": None,
                                      "--db": None, "--format": None}),
    "compare": (["compare", "--at", AT, "--no-changepoints", "--before", "1d", "--after", "1d"], None,
                {"--at": None, "--before": None, "--after": None, "--exclude": None, "--by": None,
                 "--deployments": None, "--history": None, "--db": None, "--format": None}),
    "quality": (["quality"], None, {"@pos": None, "--db": None, "--as-of": None, "--format": None}),
    "indexes": (["indexes"], None, {"--db": None, "--format": None}),
    "drift": (["drift"], None, {"--code": PATHS, "--db": None, "--table": None, "--format": None}),
    "migrations": (["migrations"], None, {"--db": None, "--files": PATHS, "--git": PATHS, "--today": None, "--format": None}),
    "import": (["import", "retell", "--db", "@scratch"], ODD + "text.txt", {"@pos": PATHS, "--company-id": None,
                                                                            "--format": None}),
    "report prune": (["report", "prune", "--dry-run", "--reports-dir", "@reports"], None,
                     {"--keep": None, "--reports-dir": PATHS}),
    "schedule health": (["schedule", "health"], None, {"--at": None, "--period": None, "--company": None, "--db": None,
                                                       "--rca": None, "--workdir": None, "--env-file": None,
                                                       "--command-for": None}),
    "list": (["list"], None, {"--format": None}),
    "incident": (["incident", "--signature", "x", "--no-detection", "--no-claims"], None,
                 {"--signature": None, "--since": None, "--until": None, "--by": None, "--deployments": None, "--db": None,
                  "--format": None}),
}
# a progress line (only with RCA_PROGRESS on): a tqdm bar, or config.LineProgress's "desc: 1,234/5,000 rows (25 %)"
PROGRESS = re.compile(r"\d+%\||^[^:]+: [\d,.]+( ?[kMG]?\w+)?(/| \(|$)")


@pytest.fixture(scope="module")
def world(demo_sqlite, tmp_path_factory):
    """A private copy of the demo world (the analysed database) and a folder of odd files."""
    url, _ = demo_sqlite
    root = tmp_path_factory.mktemp("cli_fuzz")
    db = root / "demo.sqlite"
    shutil.copy(url.removeprefix("sqlite:///"), db)
    odd = root / "odd"
    odd.mkdir()
    (odd / "text.txt").write_text("hello, not a database\n")
    (odd / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(1, 200)))
    (odd / "empty.sqlite").write_bytes(b"")
    (odd / "folder").mkdir()
    (odd / "binary.bin").write_bytes(bytes(range(1, 256)) * 4)
    (odd / "notes.sqlite").write_text("SQLite format 2, honest\n" * 20)
    (odd / "list.yaml").write_text("- 1\n- 2\n")
    (odd / "deep.json").write_text("[" * 5000)
    (odd / "header.csv").write_text("deployed_at,commit,description,source\n")
    return {"db": db, "odd": odd, "root": root}


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def resolve(value: str, odd: Path) -> str:
    return value.replace(ODD, f"{odd}/")


def rca(argv: list[str], world: dict, capsys, env: dict | None = None) -> tuple[int, str, str]:
    """One in-process run with the boundary's checks; returns (code, stdout, stderr)."""
    before = fingerprint(world["db"])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(world["root"])  # nothing lands in the checkout
        mp.setenv("RCA_PROGRESS", "0")
        mp.setenv("RCA_DATABASE_URL", f"sqlite:///{world['db']}")
        mp.setenv("RCA_REPORTS_DIR", str(world["root"] / "reports"))
        mp.delenv("RCA_CONFIG", raising=False)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        code = cli.main(argv)
    out, err = capsys.readouterr()
    shown = f"{argv!r}\nexit {code}\nstderr: {err[-2000:]}"
    assert code in (0, 1, 2), shown  # 3 is a bug: none of these inputs is one
    assert len([line for line in err.splitlines() if not PROGRESS.search(line)]) <= 1, shown
    assert "Traceback" not in out + err, shown
    assert "internal error" not in err, shown
    given = [*argv, *(env or {}).values()]
    if any(resolve(url, world["odd"]) in a for url in SECRET_URLS for a in given):  # not a bare word Hypothesis typed
        assert PASSWORD not in out + err, shown
    assert fingerprint(world["db"]) == before, shown  # the analysed database was not written
    return code, out, err


@FUZZ
@given(command=st.sampled_from(sorted(SURFACE)), data=st.data())
def test_any_hostile_value_in_any_option_keeps_the_contract(world, capsys, command, data):
    base, positional, options = SURFACE[command]
    option = data.draw(st.sampled_from(sorted(options)), label="option")
    value = resolve(data.draw(HOSTILE if options[option] is None else options[option], label="value"), world["odd"])
    fixed = {"@scratch": f"sqlite:///{world['root'] / 'scratch.sqlite'}", "@reports": str(world["root"] / "reports")}
    argv = [fixed.get(a, a) for a in base]
    if option != "@pos":
        argv.append(f"{option}={value}")  # the = form: a value starting with - stays a value
    chosen = value if option == "@pos" else positional
    if chosen is not None:
        argv += ["--", resolve(chosen, world["odd"])]  # after --, even "-h" is the positional
    rca(argv, world, capsys)


SETTINGS_ENV = ["RCA_STATEMENT_TIMEOUT_S", "RCA_CONNECT_TIMEOUT_S", "RCA_SOURCE_TZ", "RCA_DB_TIME_ZONE",
                "RCA_REPORTS_DIR", "RCA_DATABASE_URL", "RCA_PROGRESS", "RCA_REDIS_URL", "RCA_CACHE_MAX_ROWS_PER_S",
                "RCA_CACHE_CHECK_EVERY_S"]


@SMALL_FUZZ
@given(name=st.sampled_from(SETTINGS_ENV), value=HOSTILE,
       argv=st.sampled_from([["indexes"], ["timeline", CALL], ["quality"], ["schedule", "health"]]))
def test_any_hostile_rca_variable_keeps_the_contract(world, capsys, name, value, argv):
    rca(list(argv), world, capsys, env={name: resolve(value, world["odd"])})


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True), TEXT, NUMBERS,
                    URLS, st.sampled_from(["Not/AZone", "Europe/Berlin", "+00:00", "'; DROP TABLE calls; --"]))
YAML_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.one_of(TEXT, st.integers()), inner, max_size=3)),
                           max_leaves=8)
CONFIG_KEYS = st.sampled_from(["database_url", "source_tz", "db_time_zone", "statement_timeout_s", "connect_timeout_s",
                               "redis_url", "reports_dir", "progress", "profiles", "databse_url"])


@SMALL_FUZZ
@given(config=st.one_of(st.dictionaries(CONFIG_KEYS, YAML_VALUES, max_size=3), YAML_VALUES,
                        st.binary(max_size=60).filter(lambda b: b"\x00" not in b)))
def test_any_config_file_keeps_the_contract(world, capsys, config):
    path = world["root"] / "fuzz-rca.yaml"
    if isinstance(config, bytes):
        path.write_bytes(config)
    else:
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
    rca(["timeline", CALL, "--db", "prod"], world, capsys, env={"RCA_CONFIG": str(path)})


# ---------------------------------------------------------------------------- the kernel path: refused on the host
def _not_a_number(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return True


def _not_a_day(text: str) -> bool:
    try:
        return not 1970 <= date.fromisoformat(text.strip()).year < 2200
    except ValueError:
        return True


BAD_SECONDS = st.one_of(st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e400", "86401", "abc", ""]),
                        st.floats(max_value=0).map(repr), TEXT.filter(_not_a_number))
BAD_COUNT = st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=2**63).map(str),
                      st.sampled_from(["nan", "1.5", "1e3", "ten", ""]), TEXT.filter(lambda t: not t.strip().isdigit()))
BAD_ID = st.one_of(st.integers(max_value=-1).map(str), st.integers(min_value=2**63).map(str), st.sampled_from(["nan", "x", ""]))
BAD_JOBS = st.one_of(BAD_ID, st.integers(min_value=33).map(str), st.just("0"))
BAD_DAY = st.one_of(TIMES.filter(_not_a_day), TEXT.filter(_not_a_day), UNICODE)
BAD_INSTANT = st.sampled_from(["9999-12-31T00:00:00Z", "0001-01-01T00:00:00+14:00", "yesterday-ish garbage",
                               "2025-10-18", "2025-10-18T13:20:08", "2025-02-30T00:00:00Z", "now", "NaT"])
BAD_URL = URLS.filter(lambda u: "://" in u and not u.startswith("sqlite://") or "odd" in u)
KERNEL_CASES = st.one_of(
    st.tuples(st.just(["run", "call_timeline", "-p", "dead_air_s"]), BAD_SECONDS),
    st.tuples(st.just(["run", "call_timeline", "-p", "slow_tool_s"]), BAD_SECONDS),
    st.tuples(st.just(["runbook", "RB020", "-p", "min_attempts"]), BAD_COUNT),
    st.tuples(st.just(["run", "overview", "-p", "company_id"]), BAD_ID),
    st.tuples(st.just(["run", "overview", "-p", "start"]), BAD_INSTANT),
    st.tuples(st.just(["run", "health_report", "-p", "period_start"]), BAD_DAY),
    st.tuples(st.just(["run", "before_after_report", "-p", "before"]), TIMES.filter(lambda t: t not in ("0d",))),
    st.tuples(st.just(["run", "overview", "--db"]), BAD_URL),
    st.tuples(st.just(["run", "overview", "-f"]), PATHS.filter(lambda p: p != ODD + "empty.sqlite")),  # empty = {}
    st.tuples(st.just(["run"]), PATHS.filter(lambda p: p != ODD + "folder")),
    st.tuples(st.just(["report", "health", "--date"]), BAD_DAY),
    st.tuples(st.just(["report", "health", "--date", "2025-10-14", "--company"]), BAD_ID),
    st.tuples(st.just(["report", "health", "--from", "2025-10-14", "--to", "2025-10-15", "--jobs"]), BAD_JOBS),
    st.tuples(st.just(["demo-reports", "--jobs"]), BAD_JOBS),
    st.tuples(st.just(["report", "health", "--date", "2025-10-14", "--db"]), BAD_URL),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=KERNEL_CASES)
def test_a_bad_notebook_parameter_is_refused_before_a_kernel_or_a_run_folder(world, capsys, case):
    head, value = case
    value = resolve(value, world["odd"])
    out_dir = world["root"] / "runs"
    argv = head + [value] if head[0] == "run" and len(head) == 1 else [*head, value]
    if argv[0] in ("run", "runbook", "demo-reports"):
        argv += ["--out", str(out_dir)]
    else:
        argv += ["--reports-dir", str(out_dir)]
    folders = lambda: {p for p in out_dir.rglob("*") if p.is_dir()} if out_dir.exists() else set()  # noqa: E731
    before = folders()
    code, out, err = rca(argv, world, capsys)
    assert code == 2 and err.count("\n") == 1, (argv, err)
    assert folders() <= before, (argv, sorted(folders() - before))  # no run folder, not even a staging one
