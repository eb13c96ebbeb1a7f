"""A notebook's metrics and figures after any run: plain papermill (no RCA_RUN_DIR), ``rca run``, and the reader.

The plain run is the real ``papermill`` command line, as a user or a cron job types it; its kernel finds
the output notebook on that command line, writes ``<stem>_results/`` beside it and records the same
values in the notebook as scrapbook data scraps.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rca_toolkit import cli
from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.runs import results

ROOT = Path(__file__).resolve().parents[2]
PAPERMILL = Path(sys.executable).with_name("papermill")
CALL = "call_ab45deadd7db66c4956d5243861"
PNG = b"\x89PNG\r\n\x1a\n"


def _scrap_outputs(notebook: Path) -> list[dict]:
    doc = json.loads(notebook.read_text(encoding="utf-8"))
    return [o for c in doc["cells"] for o in c.get("outputs", []) if results.SCRAP_MIME in o.get("data", {})]


@pytest.mark.slow
def test_plain_papermill_writes_results_beside_the_output_and_in_the_notebook(demo_sqlite, tmp_path):
    url, _ = demo_sqlite
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCA_")}
    out = tmp_path / "out.ipynb"
    done = subprocess.run([str(PAPERMILL), str(ROOT / "notebooks" / "call_timeline.ipynb"), "out.ipynb",
                           "-p", "call_id", CALL, "-p", "db_url", url, "--no-progress-bar"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    beside = tmp_path / "out_results"
    metrics = json.loads((beside / "metrics.json").read_text())
    assert metrics["call_id"] == CALL and metrics["duration_s"] == pytest.approx(144.481)
    figure = (beside / "figures" / "call_waterfall.png").read_bytes()
    assert figure.startswith(PNG)

    read = results.read(out)  # from the notebook itself
    assert read["source"] == "notebook"
    assert read["metrics"] == metrics and read["figures"] == {"call_waterfall": figure}

    # scrapbook's format: a data scrap per name, version 1, JSON encoder, metadata marking it data, not display
    outputs = _scrap_outputs(out)
    payload = outputs[-1]["data"][results.SCRAP_MIME]
    assert {o["data"][results.SCRAP_MIME]["name"] for o in outputs} == {"metrics", "figure:call_waterfall"}
    assert set(payload) == {"name", "data", "encoder", "version"} and payload["encoder"] == "json" and payload["version"] == 1
    assert all(o["metadata"]["scrapbook"] == {"name": o["data"][results.SCRAP_MIME]["name"], "data": True, "display": False}
               for o in outputs)
    assert all("".join(o["data"]["text/plain"]).startswith("recorded ") for o in outputs)  # what JupyterLab shows


@pytest.mark.slow
def test_rca_run_records_the_same_metrics_in_the_notebook_and_shows_none_of_it(demo_sqlite, tmp_path):
    url, _ = demo_sqlite
    assert cli.main(["run", "call_timeline", "--db", url, "--out", str(tmp_path)]) == 0
    (folder,) = (tmp_path / "call_timeline").iterdir()
    executed = folder / "call_timeline.ipynb"
    read = results.read(executed)
    assert read["source"] == "notebook"
    assert read["metrics"] == json.loads((folder / "metrics.json").read_text())
    assert read["figures"]["call_waterfall"] == (folder / "figures" / "call_waterfall.png").read_bytes()
    assert not [o for o in _scrap_outputs(executed) if "text/plain" in o["data"]]  # nothing on the report
    assert "recorded 14 metrics" not in (folder / "report.html").read_text()
    assert (tmp_path / "index.html").is_file() and "call_timeline" in (tmp_path / "index.html").read_text()


def _notebook(path: Path, outputs: list[dict]) -> Path:
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "a", "metadata": {}, "execution_count": 1, "source": "", "outputs": outputs}]}))
    return path


def _scrap(name: str, data) -> dict:
    return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name, "data": True, "display": False}},
            "data": {results.SCRAP_MIME: {"name": name, "data": data, "encoder": "json", "version": 1}}}


def test_reader_takes_the_last_scrap_of_a_name_and_decodes_figures(tmp_path):
    png = PNG + b"rest"
    nb = _notebook(tmp_path / "x.ipynb", [
        _scrap("metrics", {"a": 1}), {"output_type": "stream", "name": "stdout", "text": "hello"},
        _scrap("metrics", {"a": 1, "b": [2, 3]}),
        _scrap("figure:f1", {"format": "png", "base64": base64.b64encode(png).decode()})])
    assert results.read(nb) == {"metrics": {"a": 1, "b": [2, 3]}, "figures": {"f1": png}, "source": "notebook"}


def test_reader_falls_back_to_the_files_beside_or_the_run_folder(tmp_path):
    nb = _notebook(tmp_path / "old.ipynb", [])
    assert results.read(nb) == {"metrics": {}, "figures": {}, "source": "none"}
    (tmp_path / "old_results" / "figures").mkdir(parents=True)
    (tmp_path / "old_results" / "metrics.json").write_text('{"verdict": "OK"}')
    (tmp_path / "old_results" / "figures" / "g.png").write_bytes(PNG)
    assert results.read(nb) == {"metrics": {"verdict": "OK"}, "figures": {"g": PNG}, "source": "files"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "metrics.json").write_text('{"verdict": "FAIL"}')
    assert results.read(_notebook(run / "nb.ipynb", []))["metrics"] == {"verdict": "FAIL"}
    with pytest.raises(NotFound):
        results.read(tmp_path / "missing.ipynb")


def test_a_damaged_metrics_file_is_one_input_error_naming_it(tmp_path):
    nb = _notebook(tmp_path / "old.ipynb", [])
    (tmp_path / "old_results").mkdir()
    damaged = tmp_path / "old_results" / "metrics.json"
    damaged.write_text('{"a":')
    with pytest.raises(InputFormatError) as err:
        results.read(nb)
    assert str(damaged) in str(err.value) and err.value.hint


def test_outside_a_kernel_nothing_is_glued_and_no_path_is_guessed(tmp_path, monkeypatch):
    monkeypatch.delenv(results.OUTPUT_ENV, raising=False)
    monkeypatch.setattr(results, "_recorded", {})
    assert results.glue("metrics", {"a": 1}, "recorded") is False
    assert results.record_metrics({"a": 1}) is None  # pytest is not papermill: no output notebook to write beside
    monkeypatch.setenv(results.OUTPUT_ENV, str(tmp_path / "given.ipynb"))
    written = results.record_metrics({"b": 2})
    assert written == tmp_path / "given_results" / "metrics.json"
    assert json.loads(written.read_text()) == {"a": 1, "b": 2}
    monkeypatch.setenv(results.OUTPUT_ENV, "s3://bucket/out.ipynb")
    assert results.output_notebook() is None  # a URL is papermill's to write; nothing local beside it


def test_the_papermill_option_table_is_papermills_own():
    from papermill.cli import papermill as command

    taking = {opt: param.nargs for param in command.params if not getattr(param, "is_flag", False)
              and param.param_type_name == "option" for opt in param.opts + param.secondary_opts}
    assert taking == results.PAPERMILL_VALUE_OPTIONS


@pytest.mark.parametrize("argv", [
    ["in.ipynb", "out.ipynb"],
    ["-p", "call_id", "x.ipynb", "in.ipynb", "out.ipynb", "--no-progress-bar"],
    ["in.ipynb", "-k", "python3", "out.ipynb", "-pdb_url", "sqlite:///a.ipynb", "--cwd=/tmp"],
    ["--log-level", "INFO", "-r", "a", "b", "in.ipynb", "sub/out.ipynb", "-y", "a: 1"],
])
def test_positionals_agree_with_papermills_parser(argv):
    from papermill.cli import papermill as command

    params = command.make_context("papermill", list(argv), resilient_parsing=True).params
    assert results.papermill_positionals(argv) == [params["notebook_path"], params["output_path"]]
