"""The store holds every column an analysis declares it reads: a column it lacked would be silently missing.

Why: the analyses read the store instead of the server (``rca_toolkit.sources.store``), and the store keeps
lean columns only (``tables.TABLES``). ``requirements.check`` on the store's pinned schema would then report a
required column missing, or, worse, an optional one (read as NULL) as merely absent.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from rca_toolkit.sources import requirements
from rca_toolkit.sources.store.tables import BY_NAME, TABLES

PACKAGES = ("rca_toolkit.sources", "rca_toolkit.analyses", "rca_toolkit.runbooks", "rca_toolkit.commands")
# one call's trace is a point lookup on the server, never the store (tables.py): calls.raw is not stored
SERVER_ONLY = {"rca_toolkit.sources.loaders:call_trace", "rca_toolkit.analyses.calls.timeline:load_timeline"}


def _declared() -> dict[str, tuple]:
    """Every module's ``REQUIRES`` (as tests/sources/test_requirements.py walks them), flattened."""
    found = {}
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            declared = getattr(importlib.import_module(info.name), "REQUIRES", None)
            if isinstance(declared, dict):
                found.update({f"{info.name}:{key}": requirements.flatten(reqs) for key, reqs in declared.items()})
    return found


DECLARED = _declared()


def test_the_walk_finds_declarations_on_stored_tables():
    """Guards the check below against passing on nothing."""
    tables = {r.table for reqs in DECLARED.values() for r in reqs}
    assert len(DECLARED) >= 10
    assert {"retell_call_sessions", "retell_function_traces", "retell_error_log", "calls", "appointments",
            "webhook_events"} <= tables


def test_every_declared_column_of_a_stored_table_is_stored():
    """Required, optional and one-of columns alike: an optional one the store lacked would read as absent."""
    lacking = {}
    for where, reqs in DECLARED.items():
        if where in SERVER_ONLY:
            continue
        for req in reqs:
            spec = BY_NAME.get(req.table)
            if spec is None or spec.whole:
                continue
            for column in (*req.columns, *req.optional, *req.one_of):
                if column not in spec.columns:
                    lacking.setdefault(f"{req.table}.{column}", []).append(where)
    assert not lacking, "the store lacks declared columns: " + "; ".join(f"{c} (declared by {', '.join(w)})" for c, w in sorted(lacking.items()))


def test_the_point_lookups_left_out_read_the_server():
    """The exemption above holds only while one call's trace is read without the store."""
    from rca_toolkit.sources import loaders

    source = inspect.getsource(loaders.call_trace)
    assert "engine_for(db)" in source and "cached" not in source
    assert SERVER_ONLY <= set(DECLARED)


def test_each_stored_table_keeps_its_key_time_and_updated_columns():
    """The refresh pages by the key and re-reads by the time and updated columns: each must be stored."""
    for spec in TABLES:
        if spec.whole:
            continue
        assert spec.key in spec.columns, spec.name
        assert spec.time is None or spec.time in spec.columns, spec.name
        assert spec.updated is None or spec.updated in spec.columns, spec.name
        assert set(spec.masked) <= set(spec.columns), spec.name
        assert len(set(spec.columns)) == len(spec.columns), spec.name
