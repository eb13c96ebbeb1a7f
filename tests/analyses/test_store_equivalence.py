"""The local store gives every report the direct read gives (issue 20).

Why: the analyses read a MariaDB server through its DuckDB copy (``RCA_CACHE=auto``), so a type, a time zone
or a filter the store gets wrong would change a verdict with no error anywhere. Each world (the demo world and
a copy with ``test_outcomes.PERTURBATIONS`` applied, on SQLite and on MariaDB) is stored once; every report is
then computed on the direct engine and on the store and compared whole. Expected differences, and only those:
``source`` names the store, and the columns it masks or redacts (``tables.StoredTable.masked``/``redacted``)
hold the source's text through the store's rule. The demo build and the stores take ~10 s; the comparisons
~40 s of CPU.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import altered_copy, copy_mariadb_world, fresh_mariadb_database
from rca_toolkit.analyses.bookings.counts import attempt_counts
from rca_toolkit.analyses.bookings.outcomes import booking_attempts
from rca_toolkit.analyses.compare.before_after import before_after
from rca_toolkit.analyses.health.report import health
from rca_toolkit.analyses.incident.build import incident
from rca_toolkit.distinct import per_distinct
from rca_toolkit.rules.jsonutil import decode_json
from rca_toolkit.sources import loaders, store
from rca_toolkit.sources.formats.masking import mask_column
from rca_toolkit.sources.store.extract import redact_phone
from rca_toolkit.sources.store.tables import BY_NAME
from test_outcomes import PERTURBATIONS

SIGNATURE = "Unknown column 'created_by'"
WINDOW = {"start": "2025-10-10T00:00:00+02:00", "end": "2025-10-25T00:00:00+02:00"}
DST_START = "2025-10-25T00:00:00+02:00"  # a day before the repeated hour of 2025-10-26
BERLIN_DAYS = list(pd.date_range("2025-10-01", "2025-11-20", freq="D", tz="Europe/Berlin"))
# The PERTURBATIONS of test_outcomes in SQLite's words (%, ||, strftime), one for one and in the same order.
SQLITE_PERTURBATIONS = [
    "UPDATE appointments SET metadata = NULL WHERE call_id IS NOT NULL AND id % 2 = 0",
    "UPDATE retell_error_log SET function_trace_id = NULL, error_message = 'Unlinked: ' || error_message "
    "WHERE function_trace_id % 3 = 1 AND affected_function IS NOT NULL",
    "INSERT INTO retell_error_log (call_session_id, function_trace_id, error_code, error_type, occurred_at, error_message, "
    "affected_function) SELECT call_session_id, function_trace_id, 'EARLIER', error_type, "
    "strftime('%Y-%m-%d %H:%M:%S', occurred_at, '-1 second') || substr(occurred_at, 20), 'Earlier: ' || error_message, "
    "affected_function FROM retell_error_log WHERE function_trace_id % 3 = 0",
    "INSERT INTO retell_error_log (call_session_id, function_trace_id, error_code, error_type, occurred_at, error_message, "
    "affected_function) SELECT call_session_id, function_trace_id, 'LATER', error_type, "
    "strftime('%Y-%m-%d %H:%M:%S', occurred_at, '+1 second') || substr(occurred_at, 20), 'Later: ' || error_message, "
    "affected_function FROM retell_error_log WHERE function_trace_id % 3 = 2",
    "UPDATE retell_error_log SET call_session_id = (SELECT MIN(id) FROM retell_call_sessions WHERE call_id LIKE 'test%'), "
    "error_message = 'Foreign: ' || error_message WHERE function_trace_id % 5 = 4",
    "INSERT INTO retell_error_log (call_session_id, function_trace_id, error_code, error_type, occurred_at, error_message, "
    "affected_function) SELECT t.call_session_id, t.id, 'ON_SUCCESS', 'api_error', t.started_at, 'On success: retried', "
    "t.function_name FROM retell_function_traces t JOIN (SELECT 1 AS k UNION ALL SELECT 2) twice "
    "WHERE t.status = 'success' AND t.id % 4 = 0",
]
assert len(SQLITE_PERTURBATIONS) == len(PERTURBATIONS)


@dataclass
class World:
    name: str
    direct: sa.Engine  # reads the source itself (an Engine is used as given, whatever RCA_CACHE says)
    stored: sa.Engine  # the read-only store engine built from it
    folder: Path

    @property
    def perturbed(self) -> bool:
        return self.name.endswith("perturbed")


def _stored(name: str, url: str, folder: Path) -> World:
    direct = loaders.engine_for(url)
    assert not store.is_store(direct)
    done = store.refresh(direct, folder, storage_zone=loaders.storage_zone(direct))
    assert done.built and not done.missing and done.total_read > 10_000  # built whole from this source
    return World(name, direct, store.open_store(folder), folder)


@pytest.fixture(scope="module", params=["sqlite-demo", pytest.param("mariadb-demo", marks=pytest.mark.mariadb),
                                        "sqlite-perturbed", pytest.param("mariadb-perturbed", marks=pytest.mark.mariadb)])
def world(request, tmp_path_factory):
    """One world and its store, built once for every test of this module."""
    backend, kind = request.param.split("-")
    url, _ = request.getfixturevalue(f"demo_{backend}")
    folder = tmp_path_factory.mktemp(f"store-{request.param}")
    if kind == "demo":
        yield _stored(request.param, url, folder)
    elif backend == "sqlite":
        yield _stored(request.param, altered_copy(url, tmp_path_factory.mktemp("perturbed"), *SQLITE_PERTURBATIONS), folder)
    else:
        with fresh_mariadb_database("rca_test_store_perturbed") as copy:
            copy_mariadb_world(url, copy, PERTURBATIONS)
            built = _stored(request.param, copy, folder)
            yield built
            store.close(folder)
            built.direct.dispose()


# --------------------------------------------------------------------------- comparison helpers
def _without_source(attrs: dict, world: World, stored: bool) -> dict:
    attrs = dict(attrs)
    source = attrs.pop("source")
    direct = loaders.base_attrs(world.direct)["source"]
    assert source == (f"{direct}{_store_suffix(world)}" if stored else direct)
    return attrs


def _store_suffix(world: World) -> str:
    """What the store adds to a source's name: its folder and when its last refresh started."""
    with_time = store.open_store(world.folder).rca_label
    assert re.fullmatch(rf".* \(local store {world.folder.name}, as of \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", with_time)
    return with_time[with_time.rindex(" (local store "):]


def _drop_note(node, note: str) -> int:
    """Remove ``note`` from every list of texts in ``node``; how many times it was there."""
    found = 0
    if isinstance(node, dict):
        found = sum(_drop_note(v, note) for v in node.values())
    elif isinstance(node, list):
        found = node.count(note)
        node[:] = [v for v in node if v != note]
        found += sum(_drop_note(v, note) for v in node)
    return found


def assert_same_frame(world: World, direct: pd.DataFrame, stored: pd.DataFrame) -> None:
    """Equal frames (values, dtypes, order, index) and equal attrs but for ``source``."""
    pd.testing.assert_frame_equal(stored, direct)
    assert _without_source(stored.attrs, world, True) == _without_source(direct.attrs, world, False)


def assert_same_report(world: World, direct: dict, stored: dict, volatile=(), noted: bool = True) -> None:
    """Equal report dicts but for ``source`` (anywhere), keys that record when they were made and, when ``noted``,
    the stored report's note that names the store."""
    text = {}
    for name, report in (("direct", direct), ("stored", stored)):
        shown = json.dumps(report, sort_keys=True, default=str)
        if name == "stored":
            shown = shown.replace(_store_suffix(world), "")
        text[name] = json.loads(shown)
        if name == "stored" and noted:  # the one note the store adds: where it read, and as of when (store.read_note)
            said = f"read from {loaders.base_attrs(world.direct)['source']}"
            assert _drop_note(text[name], said) == 1, f"the stored report does not say {said!r} once"
        for path in volatile:  # e.g. ("provenance", "generated_at")
            node = text[name]
            for key in path[:-1]:
                node = node[key]
            node.pop(path[-1])
    assert text["stored"] == text["direct"]


def masked_as_stored(world: World, frame: pd.DataFrame, table: str, frame_key: str) -> pd.DataFrame:
    """``frame`` (a direct read) with the columns the store masks or redacts (``tables.BY_NAME[table]``) as the
    store holds them: the source's text through the store's rule, then decoded as the loader decodes it."""
    spec = BY_NAME[table]
    rules = {**{c: mask_column for c in spec.masked}, **{c: redact_phone for c in spec.redacted}}
    out = frame.copy()
    keys = [int(k) for k in out[frame_key]]
    raw = loaders.query(world.direct, f"SELECT id, {', '.join(rules)} FROM {table}", {}).set_index("id").loc[keys]
    for col, rule in rules.items():
        values = rule(raw[col])
        if col in JSON_COLUMNS:
            values = per_distinct(values, lambda v: decode_json(v)[0])
        out[col] = pd.Series(list(values), index=out.index, dtype=frame[col].dtype)
    return out


# --------------------------------------------------------------------------- the loaders
JSON_COLUMNS = {"input_params", "output_result", "error_details", "error_context", "metadata", "payload"}  # decoded
LOADED = {"calls": ("calls", "local_call_id"), "function_traces": ("retell_function_traces", "trace_id"),
          "errors": ("retell_error_log", "error_id"), "appointments": ("appointments", "id"),
          "webhook_events": ("webhook_events", "id")}  # loader -> (table, the frame column of its key)


@pytest.mark.parametrize("window", [{}, {"start": DST_START, "end": "2025-11-05T00:00:00+01:00", "company_id": 1}],
                         ids=["whole-database", "over-dst-company-1"])  # whole: a session without a call row
@pytest.mark.parametrize("loader", sorted(LOADED))
def test_loader_frames_equal_the_direct_read(world, loader, window):
    """Every column, dtype, row order and attr of a loader's frame; masked columns hold the source masked."""
    kwargs = dict(window)
    if loader == "calls":
        kwargs["as_of"] = "2025-12-01T00:00:00Z"  # `stuck` depends on it: the same instant on both sides
    if loader == "webhook_events":
        kwargs.pop("company_id", None)
    read = getattr(loaders, loader)
    direct, stored = read(world.direct, **kwargs), read(world.stored, **kwargs)
    assert len(direct) > 5
    want = masked_as_stored(world, direct, *LOADED[loader])
    want.attrs = dict(direct.attrs)
    assert_same_frame(world, want, stored)


@pytest.mark.parametrize("chunk", [loaders.ERROR_CHUNK, 7], ids=["one-statement", "seven-ids-a-statement"])
def test_error_rows_kept_equal_the_direct_read(world, monkeypatch, chunk):
    """``errors(keep=...)``: the store reads each part's texts, then every column of the rows kept by their ids; the
    rows, columns, order and attrs are the direct read's, and ``keep`` sees the same columns on both."""
    monkeypatch.setattr(loaders, "ERROR_CHUNK", chunk)
    seen: dict = {"direct": set(), "stored": set()}

    def keep(side):
        def carries(rows):
            seen[side].add(tuple(rows.columns))
            return rows["error_message"].str.contains("Unknown column", regex=False).fillna(False)
        return carries

    direct, stored = loaders.errors(world.direct, keep=keep("direct")), loaders.errors(world.stored, keep=keep("stored"))
    assert 5 < len(direct) < len(loaders.errors(world.direct))
    want = masked_as_stored(world, direct, *LOADED["errors"])
    want.attrs = dict(direct.attrs)
    assert_same_frame(world, want, stored)
    assert seen["direct"] == seen["stored"] == {tuple(loaders.KEPT_BY)}


def test_the_store_holds_no_caller_number_and_no_said_name(world):
    """The one expected difference is real: the store masked what the direct read shows."""
    direct, stored = loaders.calls(world.direct, **WINDOW), loaders.calls(world.stored, **WINDOW)
    numbers = direct["from_number"].dropna()
    assert numbers.str.startswith("+49").sum() > 100
    assert not stored["from_number"].dropna().str.contains(r"\+49|\d{6}").any()
    direct_t, stored_t = (loaders.function_traces(e, **WINDOW) for e in (world.direct, world.stored))
    names = direct_t["input_params"].map(lambda p: p.get("name") if isinstance(p, dict) else None)
    said = names.notna() & (names != "[PII_REDACTED]")  # the demo also has names its builder redacted
    assert said.sum() >= 3
    assert set(stored_t.loc[said, "input_params"].map(lambda p: p["name"])) <= {"[NAME]", "[NAME] [NAME]"}


# --------------------------------------------------------------------------- the analyses
def test_booking_attempts_equal_the_direct_rows(world):
    direct, stored = booking_attempts(world.direct), booking_attempts(world.stored)
    assert len(direct) > 500
    assert_same_frame(world, direct, stored)
    if world.perturbed:  # the perturbations reached the attempts, on both sides
        assert direct["signature"].astype(str).str.startswith(("Earlier", "Unlinked")).any()


@pytest.mark.parametrize("kwargs", [{"freq": "1D"}, {"by": ["family"]}, {"bins": BERLIN_DAYS}],
                         ids=["freq-1D", "by-family", "berlin-day-bins"])
def test_attempt_counts_equal_the_direct_counts(world, kwargs):
    direct, stored = attempt_counts(world.direct, **kwargs), attempt_counts(world.stored, **kwargs)
    assert direct["attempts"].sum() > 500
    assert_same_frame(world, direct, stored)


@pytest.mark.parametrize("at, kwargs", [
    ("2025-10-18T13:20:08+02:00", {}),  # the partial fix (incidents.md §A), change points included
    ("2025-10-26T02:30:00+01:00", {"before": "10d", "after": "3d", "exclude": "0s", "by": "family",
                                   "with_changepoints": False}),  # in the repeated hour
], ids=["partial-fix", "dst-repeated-hour-by-family"])
def test_before_after_equals_the_direct_comparison(world, at, kwargs):
    """The comparison, the per-window outcomes and the change points (``BeforeAfter.to_dict``)."""
    direct = before_after(world.direct, at=at, **kwargs).to_dict()
    stored = before_after(world.stored, at=at, **kwargs).to_dict()
    assert any(m["name"] == "booking_success_rate" and m["before"]["n"] >= 10 for m in direct["metrics"])
    assert_same_report(world, direct, stored)


@pytest.mark.parametrize("day, period, company", [("2025-10-14", "1d", 0), ("2025-10-20", "7d", 1)])  # 2nd: over DST
def test_health_equals_the_direct_report(world, day, period, company):
    """The direct health is counted by the database (MariaDB, or SQLite in wall time), the store's by DuckDB
    running the same statements: same report."""
    direct = json.loads(health(world.direct, day, period, company).to_json())
    stored = json.loads(health(world.stored, day, period, company).to_json())
    assert direct["key_numbers"]["booking attempts"] > 0
    assert_same_report(world, direct, stored)


def test_error_texts_fold_every_call_id_as_the_rule_does(world):
    """The health report groups error texts with each real call id replaced by one: MariaDB replaces every
    match, case-sensitively, as Python's pattern does; SQLite's texts are folded by the rule itself, which
    leaves a folded text as it is (the store keeps them folded by the rule: see its tests)."""
    import re
    from rca_toolkit.analyses.health import data as health_data
    from rca_toolkit.rules import call_ids

    ids = ["call_" + "a1" * 13 + "b", "call_" + "0f" * 13 + "9"]
    text = f"booking of {ids[0]} failed; retry of {ids[1]} too; CALL_{'A1' * 13}B kept"
    expected = re.sub(call_ids.RETELL_CALL_ID_BODY, health_data.CALL_ID_FOLDED, text)
    assert expected.count(health_data.CALL_ID_FOLDED) == 2
    sql = f"SELECT {health_data.folded_message_sql(world.direct)} AS m FROM (SELECT :text AS error_message) e"
    handed_back = loaders.query(world.direct, sql, {"text": text})["m"].iloc[0]
    assert handed_back == (text if world.direct.dialect.name == "sqlite" else expected)  # SQLite: raw, folded after
    assert call_ids.fold_call_ids(pd.Series([handed_back], dtype="string")).iloc[0] == expected


def test_incident_equals_the_direct_incident(world):
    """The demo worlds: the whole database with claims and detection; the perturbed ones (their error rows
    moved): a window grouped by code path, as the error rows name it."""
    kwargs = {"since": "2025-10-10T00:00:00+02:00", "until": "2025-11-20T00:00:00+01:00", "by": "code_path",
              "with_claims": False, "detect": False} if world.perturbed else {}
    direct = incident(world.direct, SIGNATURE, **kwargs).to_dict()
    stored = incident(world.stored, SIGNATURE, **kwargs).to_dict()
    assert direct["groups"]
    assert_same_report(world, direct, stored, volatile=[("provenance", "generated_at")], noted=False)  # its provenance names it
