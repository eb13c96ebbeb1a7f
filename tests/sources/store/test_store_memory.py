"""A statement on the store that needs more memory than the analyses start with runs again with more.

Why: the store's read-only connection starts at ``READ_MIB`` so that DuckDB's cache and the analyses' frames
stay under 1 GiB for a two-month compare at 1M calls; a year-long compare joins more (every session of the
year to every call) and failed with DuckDB's "Out of Memory" at a fixed limit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rca_toolkit.sources import loaders, store
from rca_toolkit.sources.store import engine as store_engine

JOINED = ("SELECT s.call_id, count(*) AS n, max(c.duration_ms) AS longest FROM retell_call_sessions s "
          "JOIN retell_function_traces t ON t.call_session_id = s.id LEFT JOIN calls c ON c.retell_call_id = s.call_id "
          "GROUP BY s.call_id ORDER BY s.call_id")


def _limit(engine) -> str:
    return loaders.query(engine, "SELECT current_setting('memory_limit') AS v", {})["v"].iloc[0]


def test_a_statement_out_of_memory_runs_again_with_more(demo_store, monkeypatch, caplog):
    expected = loaders.query(demo_store, JOINED, {})
    assert len(expected) > 100 and expected["n"].sum() > 1000
    at_start = _limit(demo_store)
    store.close(Path(demo_store.rca_store))
    tight = store.open_store(Path(demo_store.rca_store))
    monkeypatch.setattr(store_engine, "READ_MIB", 1)  # far too little for the join: DuckDB refuses it at first
    with caplog.at_level(logging.INFO, logger=store_engine.__name__):
        again = loaders.query(tight, JOINED, {})
    assert again.equals(expected)
    assert any("run again with 2 MiB" in r.getMessage() for r in caplog.records)  # doubled from 1 MiB until it ran
    assert _limit(tight) == "1.0 MiB" and at_start != "1.0 MiB"  # and set back after the statement


def test_no_more_than_a_quarter_of_the_machine(demo_store, monkeypatch):
    monkeypatch.setattr(store_engine, "READ_MIB", 1)
    monkeypatch.setattr(store_engine, "memory_ceiling_mib", lambda: 1)  # no room to grow: DuckDB's error reaches the user
    store.close(Path(demo_store.rca_store))
    tight = store.open_store(Path(demo_store.rca_store))
    with pytest.raises(Exception, match="Out of Memory"):
        loaders.query(tight, JOINED, {})
