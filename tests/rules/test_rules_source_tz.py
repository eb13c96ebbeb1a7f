"""The source time zone comes from settings, read when asked: periods, local days and schedules follow RCA_SOURCE_TZ."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

from rca_toolkit.analyses import overview
from rca_toolkit.analyses.health.periods import period_bounds
from rca_toolkit.rules import timeutil
from rca_toolkit.rules.timeutil import localize_naive, source_tz
from rca_toolkit.runs.scheduled import schedule_text

PACKAGE = Path(__file__).resolve().parents[2] / "rca_toolkit"


def test_default_is_berlin_and_a_change_is_seen_without_reimport(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no rca.yaml here
    monkeypatch.delenv("RCA_SOURCE_TZ", raising=False)
    monkeypatch.delenv("RCA_CONFIG", raising=False)
    assert source_tz() == "Europe/Berlin"
    assert period_bounds("2025-10-14")["start"] == pd.Timestamp("2025-10-13T22:00Z")
    monkeypatch.setenv("RCA_SOURCE_TZ", "Europe/London")
    assert source_tz() == "Europe/London"
    bounds = period_bounds("2025-10-14")
    assert (bounds["start"], bounds["end"]) == (pd.Timestamp("2025-10-13T23:00Z"), pd.Timestamp("2025-10-14T23:00Z"))
    assert timeutil.day_edges(bounds["baseline_start"], bounds["end"])[-1] == pd.Timestamp("2025-10-14T23:00Z")
    local = localize_naive(pd.Series(["2025-10-14 12:00:00"]))["ts"].iloc[0]
    assert local == pd.Timestamp("2025-10-14T11:00Z")
    assert "CRON_TZ=Europe/London" in schedule_text("06:30", rca_bin="rca", workdir=tmp_path)
    late = pd.DataFrame({"call_id": ["call_" + "0" * 27], "started_at": pd.to_datetime(["2025-10-14T23:30Z"]),
                         "stuck": [False], "closed_by_cleanup": [False]})
    assert list(overview.calls_per_day(late).index) == [pd.Timestamp("2025-10-15").date()]  # already the 15th in London


def test_a_config_file_sets_it_too(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RCA_SOURCE_TZ", raising=False)
    monkeypatch.delenv("RCA_CONFIG", raising=False)
    (tmp_path / "rca.yaml").write_text("source_tz: America/New_York\n")
    assert source_tz() == "America/New_York"
    assert period_bounds("2025-10-14")["start"] == pd.Timestamp("2025-10-14T04:00Z")


def test_no_module_spells_the_zone_instead_of_reading_the_setting():
    """Only the setting's default (config) names Europe/Berlin in code; the demo world is defined in Berlin
    time by its specification and the schema's column default is data, not the setting."""
    allowed = {PACKAGE / "config.py", PACKAGE / "sources" / "schema.py"}
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if path in allowed or "demo" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == "Europe/Berlin":
                spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert spelled == []


def test_day_edges_are_local_midnights_across_a_dst_change():
    edges = timeutil.day_edges("2025-10-25T12:00:00+02:00", "2025-10-28T00:00:00+01:00")
    assert [e.tz_convert("Europe/Berlin").isoformat() for e in edges] == [
        "2025-10-25T12:00:00+02:00", "2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00", "2025-10-28T00:00:00+01:00"]
    assert edges[2] - edges[1] == pd.Timedelta(hours=25)  # the autumn day is a day, not 24 hours
    assert timeutil.day_edges("2025-10-20T00:00:00+02:00", "2025-10-20T06:00:00+02:00") == [
        pd.Timestamp("2025-10-19T22:00Z"), pd.Timestamp("2025-10-20T04:00Z")]
