"""The one output writer (runs/output): what a run writes and prints holds no credential and, unless
``--show-personal-data``, no phone number, e-mail address or customer name.

Real runs: the call-timeline notebook through papermill on a copy of the demo SQLite world whose
call transcript carries a German mobile number, a Berlin number, an e-mail address and the caller's
name; every file of the run folder is read (JSON decoded, so ``\\u00fc`` hides nothing). A run given
a MariaDB URL with ``?password=`` leaves the secret in no file and no printed line.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from conftest import MARIADB_ADMIN_URL
from rca_toolkit import cli
from rca_toolkit.runs import output, runner

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rca_toolkit"
NOTEBOOK = ROOT / "notebooks" / "call_timeline.ipynb"
LOOP_CALL = "call_ab45deadd7db66c4956d5243861"
SAID = {  # utterance of the caller -> what they say instead (tables show the first 50 to 60 characters)
    1: "Hallo, ich rufe an von +49 30 1234567 wegen eines Termins am Montag.",
    3: "Mein Name ist Hans Müller, meine Nummer ist 0151 23456789, danke.",
    5: "Die Mail ist hans.mueller@example.de, Büro 030 1234567.",
    8: "Ich bin unter 0151 23456789 erreichbar.",
}
PERSONAL = ["Hans", "Müller", "Mueller", "0151 23456789", "23456789", "+49 30 1234567", "030 1234567", "1234567",
            "hans.mueller", "example.de"]
SECRET = "s3cret-XYZ"


# --------------------------------------------------------------------------- one writer, by construction
WRITERS = {"write_text", "write_bytes"}  # Path methods
ALLOWED = {  # (file under rca_toolkit, call) -> why it is not an output file
    ("runs/locks.py", "os.open"): "a lock file: created empty, never holds output",
    ("runs/kernel.py", "fig.savefig"): "into an in-memory buffer; the PNG bytes go through output.write_bytes",
}


def _writes(path: Path, root: Path = PACKAGE) -> list[str]:
    """Calls in ``path`` that open or write a file: open(.., 'w'/'a'/'x'/'+'), Path.write_text/write_bytes,
    json/yaml dumps into a stream, os.open/os.fdopen, nbformat.write, savefig, pandas to_csv/to_parquet/..."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name.startswith("output."):  # the writer itself
            continue
        short = name.rsplit(".", 1)[-1]
        mode = next((k.value for k in node.keywords if k.arg == "mode"), node.args[1] if len(node.args) > 1 else None)
        opens_for_writing = short == "open" and isinstance(mode, ast.Constant) and re.search(r"[wax+]", str(mode.value))
        dumps_to_stream = name in ("json.dump", "yaml.dump", "yaml.safe_dump") and (
            len(node.args) > 1 or any(k.arg == "stream" for k in node.keywords))
        if (opens_for_writing or short in WRITERS or dumps_to_stream or name in ("os.open", "os.fdopen", "nbformat.write")
                or short in ("savefig", "to_csv", "to_parquet", "to_excel", "to_pickle", "to_feather")):
            found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}: {name}")
    return found


def test_nothing_under_runs_or_commands_writes_a_file_but_the_writer():
    wrong = []
    for path in sorted((PACKAGE / "runs").rglob("*.py")) + sorted((PACKAGE / "commands").rglob("*.py")):
        if path.name == "output.py" and path.parent.name == "runs":
            continue
        for hit in _writes(path):
            where, call = hit.split(": ", 1)
            if (where.split(":")[0], call) not in ALLOWED:
                wrong.append(hit)
    assert wrong == [], "write through rca_toolkit.runs.output (or add an allow-list entry with a reason)"


def test_the_scan_sees_every_kind_of_write(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("open(p, 'w')\nopen(p, mode='ab')\nPath(p).write_text('x')\njson.dump(d, f)\nyaml.safe_dump(d, f)\n"
                     "os.fdopen(fd, 'wb')\nframe.to_csv(p)\nopen(p)\njson.dumps(d)\nyaml.safe_dump(d)\n")
    hits = _writes(probe, tmp_path)
    assert len(hits) == 7, hits  # the last three only read or serialise to a string


# --------------------------------------------------------------------------- the policy on real values
def test_every_credential_form_is_redacted():
    policy = output.Policy().with_secrets_of(f"mysql+pymysql://app:{SECRET}@db:3306/x")
    texts = [
        f"mysql+pymysql://app:{SECRET}@db:3306/x", f"mysql+pymysql://root@db/x?password={SECRET}",
        f"mysql+pymysql://root@db/x?charset=utf8mb4&passwd={SECRET}", f"mysql://u@h/d?ssl_key_password={SECRET}",
        "link ?db=mysql%3A%2F%2Fapp%3As3cret-XYZ%40db%2Fx", "q=1&db_password%3Ds3cret-XYZ",
        f"db_password: {SECRET}", f'{{"admin_password": "{SECRET}"}}', f"the value was {SECRET} in clear",
    ]
    for text in texts:
        assert SECRET not in policy.text(text), text
    other = "mysql+pymysql://u:p%40ss%2Fw0rd@h/d"  # an unknown secret, URL-encoded in user-info
    assert "p%40ss" not in output.Policy().text(other) and "w0rd" not in output.Policy().text(other)
    data = output.Policy().value({"mail_password": SECRET, "nested": [{"smtp_passwd": SECRET}], "count": 3})
    assert data == {"mail_password": "***", "nested": [{"smtp_passwd": "***"}], "count": 3}
    assert "(using password: YES)" in output.Policy().text("Access denied for user 'root' (using password: YES)")


def test_files_keep_their_shape(tmp_path):
    """JSON is cleaned in its decoded strings (an escaped name is found), YAML by key, a PNG is never touched."""
    policy = output.Policy().knowing("Hans Müller")
    output.write_json(tmp_path / "m.json", {"line": "Herr Müller rief an", "db_password": SECRET}, policy)
    assert json.loads((tmp_path / "m.json").read_text()) == {"line": "Herr [NAME] rief an", "db_password": "***"}
    escaped = json.dumps({"cells": [{"source": "Hans M\u00fcller, 0151 23456789"}]}, ensure_ascii=True)
    assert "Müller" not in escaped
    output.write_bytes(tmp_path / "n.ipynb", escaped.encode(), policy)
    assert json.loads((tmp_path / "n.ipynb").read_text())["cells"][0]["source"] == "[NAME] [NAME], [PHONE]"
    output.write_yaml(tmp_path / "p.yaml", {"db_url": "sqlite:///x", "smtp_password": SECRET}, policy)
    assert yaml.safe_load((tmp_path / "p.yaml").read_text()) == {"db_url": "sqlite:///x", "smtp_password": "***"}
    png = _png_holding(b"Hans Muller +4915123456789 " + SECRET.encode())
    output.write_bytes(tmp_path / "f.png", png, policy.with_secrets_of(f"mysql://a:{SECRET}@h/d"))
    assert (tmp_path / "f.png").read_bytes() == png
    page = f'<p>Hans</p><img src="data:image/png;base64,{base64.b64encode(png).decode()}">'
    assert output.Policy().knowing("Hans").text(page) == page.replace("<p>Hans</p>", "<p>[NAME]</p>")


def _png_holding(text: bytes) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title(text.decode())
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Description": text.decode()})
    plt.close(fig)
    return buffer.getvalue()


# --------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def personal_world(demo_sqlite, tmp_path_factory):
    """The demo world with the loop call's caller saying name, numbers and address (calls.raw, words timed)."""
    url, _ = demo_sqlite
    path = tmp_path_factory.mktemp("personal") / "demo.sqlite"
    shutil.copy(sa.engine.make_url(url).database, path)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        raw = json.loads(conn.execute(sa.text("SELECT raw FROM calls WHERE retell_call_id = :c"), {"c": LOOP_CALL}).scalar())
        for index, said in SAID.items():
            utterance = raw["transcript_object"][index]
            assert utterance["role"] == "user"
            raw["transcript"] = raw["transcript"].replace(utterance["content"], said)
            start, end, words = utterance["words"][0]["start"], utterance["words"][-1]["end"], said.split()
            step = (end - start) / len(words)
            utterance["content"] = said
            utterance["words"] = [{"word": w, "start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3)}
                                  for i, w in enumerate(words)]
        conn.execute(sa.text("UPDATE calls SET raw = :raw WHERE retell_call_id = :c"),
                     {"raw": json.dumps(raw, ensure_ascii=False), "c": LOOP_CALL})
    engine.dispose()
    return f"sqlite:///{path}"


def _texts(folder: Path) -> dict[str, str]:
    """Every file of a run folder as the text a reader would see: JSON decoded string by string,
    embedded images left out (they are pixels, not text); PNG files are checked to be PNGs."""
    texts = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
            continue
        text = data.decode("utf-8")
        if path.suffix in (".ipynb", ".json"):
            text = "\n".join(_strings(json.loads(text)))
        texts[path.relative_to(folder).as_posix()] = re.sub(r"data:image/[\w+.-]+;base64,[A-Za-z0-9+/=\s]+", "", text)
    return texts


def _strings(value, key=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, str) and not key.startswith("image/"):
        yield value


@pytest.mark.slow
def test_the_call_timeline_run_masks_the_callers_personal_data(personal_world, tmp_path):
    result = runner.run_notebook(NOTEBOOK, db=personal_world, out_dir=tmp_path, progress=False)
    assert result.status == "ok", result.error
    texts = _texts(result.run_dir)
    assert {"call_timeline.ipynb", "report.html", "report.md", "metrics.json", "params.yaml", "run.json"} <= set(texts)
    leaks = [(name, value) for name, text in texts.items() for value in PERSONAL if value in text]
    assert leaks == []
    for said in ("Hallo, ich rufe an von [PHONE] wegen", "Mein Name ist [NAME] [NAME], meine Nummer",
                 "Die Mail ist [EMAIL], Büro", "Ich bin unter [PHONE] erreichbar."):
        assert said in texts["report.html"] and said in texts["call_timeline.ipynb"], said
    assert json.loads((result.run_dir / "run.json").read_text())["personal_data"] == "masked"
    assert "personal data masked" in texts["report.html"] and not (result.run_dir / output.NAMES_FILE).exists()


@pytest.mark.slow
def test_show_personal_data_shows_it_and_says_so(personal_world, tmp_path, capsys):
    assert cli.main(["run", str(NOTEBOOK), "--db", personal_world, "--out", str(tmp_path), "--show-personal-data"]) == 0
    run_dir = Path(capsys.readouterr().out.splitlines()[0].split(": ", 1)[1])
    texts = _texts(run_dir)
    for said in SAID.values():
        assert said[:40] in texts["report.html"] and said[:40] in texts["call_timeline.ipynb"], said
    assert json.loads((run_dir / "run.json").read_text())["personal_data"] == "shown"
    assert "personal data SHOWN (--show-personal-data)" in texts["report.html"]


@pytest.mark.slow
def test_a_password_in_the_url_reaches_no_file_and_no_printed_line(tmp_path, capfd):
    """``?password=`` on a MariaDB URL the server refuses: the run fails on the input (exit 2) and says so,
    and neither the run folder nor stdout/stderr holds the secret (raw or URL-encoded)."""
    url = f"{MARIADB_ADMIN_URL}/rca_no_such_db?password={SECRET}"
    code = cli.main(["run", str(NOTEBOOK), "--db", url, "--out", str(tmp_path)])
    printed = capfd.readouterr()
    assert code == 2 and printed.err.strip()
    assert SECRET not in printed.out + printed.err
    for name, text in _texts(tmp_path).items():
        assert SECRET not in text, name
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), path


def test_timeline_prints_through_the_writer(personal_world, capsys):
    for fmt in ("text", "json"):
        assert cli.main(["timeline", LOOP_CALL, "--db", personal_world, "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "144.481" in out and not [v for v in PERSONAL if v in out]
    policy = output.policy(data=[{"arguments": {"name": "Hans Müller"}}], secrets_of=[f"mysql://a:{SECRET}@h/d"])
    output.echo(f"Herr Müller rief von 0151 23456789 an, mysql://a:{SECRET}@h/d", policy)
    assert capsys.readouterr().out == "Herr [NAME] rief von [PHONE] an, mysql://a:***@h/d\n"
