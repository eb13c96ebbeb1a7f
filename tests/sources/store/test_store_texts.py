"""Texts read from the store stay in Arrow: the source's values, missing ones as NaN, no Python object per row.

Why: a million sessions read as Python strings took 4.1 s and 800 MiB as a frame, and Python kept most of that
memory after the statuses became categories (``rca quality`` peaked at 1.7 GB at 1M calls).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from rca_toolkit.sources import loaders

ARROW_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
SESSIONS = ("SELECT duration_ms, call_id, company_id, disconnection_reason, id, call_status FROM retell_call_sessions "
            "ORDER BY id")


def _values(column: pd.Series) -> list:
    return column.astype(object).where(column.notna(), None).tolist()


def test_texts_come_back_in_arrow_with_the_sources_values_and_its_missing_ones(demo_sqlite, demo_store):
    url, _ = demo_sqlite
    stored, direct = loaders.query(demo_store, SESSIONS, {}), loaders.query(loaders.engine_for(url), SESSIONS, {})
    assert list(stored.columns) == list(direct.columns)  # in the statement's order, texts between numbers
    for col in ("call_id", "disconnection_reason", "id", "call_status"):
        assert stored[col].dtype == ARROW_TEXT, col
        assert _values(stored[col]) == _values(direct[col]), col
    missing = stored["disconnection_reason"].isna()
    assert 0 < missing.sum() < len(stored)  # the demo's 155 sessions without a reason stay missing
    ended = stored["disconnection_reason"] == "user_hangup"
    assert ended.dtype == bool and not ended[missing].any()  # compared as DuckDB's own str column: False, never NA
    assert stored["company_id"].dtype == "int64" and stored["duration_ms"].dtype == "Int64"  # numbers as DuckDB gives them
    assert _values(stored["duration_ms"]) == _values(direct["duration_ms"].astype("Int64"))


def test_a_statement_with_no_rows_or_two_columns_alike_keeps_its_columns(demo_sqlite, demo_store):
    empty = loaders.query(demo_store, "SELECT call_id, duration_ms FROM retell_call_sessions WHERE 1 = 0", {})
    assert list(empty.columns) == ["call_id", "duration_ms"] and len(empty) == 0
    assert empty["call_id"].dtype == ARROW_TEXT
    sql = "SELECT company_id, call_id, company_id, call_id FROM retell_call_sessions ORDER BY id"
    twice, direct = loaders.query(demo_store, sql, {}), loaders.query(loaders.engine_for(demo_sqlite[0]), sql, {})
    assert list(twice.columns) == list(direct.columns) == ["company_id", "call_id", "company_id", "call_id"]
    assert twice.iloc[:, 0].equals(twice.iloc[:, 2]) and twice.iloc[:, 1].equals(twice.iloc[:, 3])


@given(st.lists(st.one_of(st.none(), st.sampled_from(["ended", "in_progress", "Ended", "ended ", "über", "z", ""])),
                min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_categories_of_texts_in_arrow_equal_those_of_python_texts(values):
    """Arrow texts are factorized in Arrow (loaders.typed): the same categories, in the same order, as Python texts."""
    in_arrow = loaders.typed(pd.DataFrame({"v": pd.Series(values, dtype=ARROW_TEXT)}), cats=["v"])["v"]
    in_python = loaders.typed(pd.DataFrame({"v": pd.Series(values, dtype=object)}), cats=["v"])["v"]
    assert in_arrow.dtype == in_python.dtype
    assert in_arrow.equals(in_python)


def test_no_frame_a_loader_returns_from_the_store_holds_arrow_text(demo_store):
    """Arrow text ends in ``sources``: ``isin`` over it with 100k values to look up takes ten times as long
    (``rca_toolkit.frames``), so every text a loader hands on is Python-backed, or a category of such texts."""
    frames = {name: getattr(loaders, name)(demo_store) for name in
              ("calls", "function_traces", "errors", "appointments", "webhook_events")}
    for name, frame in frames.items():
        assert len(frame) > 0, name
        for col, dtype in frame.dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype):
                dtype = dtype.categories.dtype
            if isinstance(dtype, pd.StringDtype):
                assert dtype.storage == "python", (name, col)
            assert not isinstance(dtype, pd.ArrowDtype), (name, col)
