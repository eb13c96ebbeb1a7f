"""Real call ids (P4): ``is_real_call_id`` and its SQL twin agree row by row.

On the demo world (SQLite and MariaDB), on a world of odd ids (case, length, trailing newline and
space, NULL, LIKE/GLOB metacharacters, multibyte characters), and on generated ids (Hypothesis, SQLite).
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rca_toolkit.rules import call_ids
from rca_toolkit.sources import loaders
from rule_worlds import BACKENDS, empty_world, insert, one_column_table, query, refill

HEX27 = "ab45deadd7db66c4956d5243861"
ODD_IDS = {  # id -> is it a real Retell call id?
    f"call_{HEX27}": True,
    f"call_{'0' * 27}": True,
    f"call_{HEX27[:-1]}": False,  # 26 hex
    f"call_{HEX27}0": False,  # 28 hex: the 33-character typo shape
    f"call_{HEX27}abcd": False,  # 31 characters after call_
    f"CALL_{HEX27}": False,
    f"call_{HEX27.upper()}": False,
    f"Call_{HEX27}": False,
    f"call_{HEX27}\n": False,  # PCRE's $ and Python's $ both accept a trailing newline
    f"call_{HEX27} ": False,  # MariaDB's PAD SPACE collation ignores it in =, not in REGEXP
    f" call_{HEX27[:-1]}": False,
    f"callx{HEX27}": False,  # _ is a wildcard in LIKE
    f"call%{HEX27}": False,
    f"call_{HEX27[:-1]}g": False,
    f"call_{HEX27[:-1]}é": False,  # 32 characters, 33 bytes
    f"call_{HEX27[:-2]}é": False,  # 31 characters, 32 bytes
    "call_*": False,
    "test_123": False,
    "test_fix_verification_001": False,
    "demo_call_1761249581": False,
    "temp_1761122080_9e0002da": False,
    "": False,
}


def _sql_flags(url: str, table: str, col: str) -> pd.DataFrame:
    engine = loaders.engine_for(url)
    exact = call_ids.real_call_id_sql(f"t.{col}", engine)
    return query(url, f"SELECT t.id, t.{col} AS call_id, CASE WHEN {exact} THEN 1 ELSE 0 END AS exact FROM {table} t ORDER BY t.id")


def _check(frame: pd.DataFrame) -> None:
    """SQL twin == pandas rule on every row."""
    pandas_rule = call_ids.real_call_ids(frame["call_id"]).tolist()
    assert frame["exact"].astype(int).astype(bool).tolist() == pandas_rule


def test_demo_world(demo_db):
    url, truth = demo_db
    frame = _sql_flags(url, "retell_call_sessions", "call_id")
    _check(frame)
    not_real = set(frame.loc[frame["exact"].astype(int) == 0, "call_id"])
    assert not_real == set(truth["excluded_ids"]) and len(not_real) > 5


@pytest.fixture(scope="module", params=BACKENDS)
def odd_world(request, tmp_path_factory):
    with empty_world(request.param, tmp_path_factory.mktemp("call_ids")) as url:
        rows = [{"retell_call_id": f"r{i}", "company_id": 1, "call_id": cid} for i, cid in enumerate([*ODD_IDS, None])]
        insert(url, "calls", rows)
        yield url


def test_odd_ids(odd_world):
    frame = _sql_flags(odd_world, "calls", "call_id")
    _check(frame)
    stored = frame.set_index("call_id")["exact"].astype(int).astype(bool)
    assert {cid: bool(stored[cid]) for cid in ODD_IDS} == ODD_IDS  # every id came back as written, judged as listed
    assert frame.loc[frame["call_id"].isna(), "exact"].astype(int).tolist() == [0]


@pytest.mark.parametrize("call_id,kind", [(f"call_{HEX27}", "retell"), ("test_fix_verification_001", "test"),
                                          ("demo_call_1761249581", "demo"), ("temp_1761122080_9e0002da", "temp"),
                                          (f"call_{HEX27}0", "malformed"), (f"call_{HEX27}\n", "malformed"),
                                          (None, "malformed"), (pd.NA, "malformed"), ("", "malformed")])
def test_id_kind(call_id, kind):
    assert call_ids.id_kind(call_id) == kind
    assert call_ids.is_real_call_id(call_id) == (kind == "retell")


# --------------------------------------------------------------------------- generated ids (SQLite)
HEXISH = st.text(alphabet="0123456789abcdefABCDEFg_%*?[]\n é", min_size=25, max_size=29)
IDS = st.one_of(st.builds(lambda body: "call_" + body, HEXISH),
                st.builds(lambda prefix, body: prefix + body, st.sampled_from(["CALL_", "call", "callx", " call_", ""]), HEXISH),
                st.text(max_size=40), st.none())


@pytest.fixture(scope="module")
def scratch():
    return one_column_table("call_id")


@settings(max_examples=200, deadline=None)
@given(st.lists(IDS, min_size=1, max_size=15))
@example([f"call_{HEX27}", f"call_{HEX27}\n", f"CALL_{HEX27}", None])
def test_generated_ids_agree(scratch, ids):
    with scratch.begin() as conn:
        refill(conn, ids)
        exact = call_ids.real_call_id_sql("call_id", scratch)
        got = conn.execute(sa.text(f"SELECT CASE WHEN {exact} THEN 1 ELSE 0 END FROM t ORDER BY id")).scalars().all()
    assert [bool(e) for e in got] == [call_ids.is_real_call_id(c) for c in ids]


@pytest.fixture(scope="module")
def local_store():
    """DuckDB, the local store's engine: it has its own twin of the rule."""
    return one_column_table("call_id", "duckdb:///:memory:")


@settings(max_examples=200, deadline=None)
@given(st.lists(IDS, min_size=1, max_size=15))
@example([f"call_{HEX27}", f"call_{HEX27}\n", f"CALL_{HEX27}", f"call_{HEX27[:-2]}é", f"call_{HEX27} ", None])
def test_generated_ids_agree_on_the_local_store(local_store, ids):
    engine = local_store
    with engine.begin() as conn:
        refill(conn, ids)
        exact = call_ids.real_call_id_sql("call_id", engine)
        got = conn.execute(sa.text(f"SELECT CASE WHEN {exact} THEN 1 ELSE 0 END FROM t ORDER BY id")).all()
    assert [bool(e) for e, in got] == [call_ids.is_real_call_id(c) for c in ids]


@settings(max_examples=300, deadline=None)
@given(st.lists(IDS, max_size=15), st.sampled_from(["object", "string", "category"]))
@example([f"call_{HEX27}", f"call_{HEX27}\n", f"call_{HEX27[:-2]}é", None], "string")
@example([f"call_{HEX27}", 7, b"call_x", None], "object")  # not all text: decided per distinct value
def test_real_call_ids_is_the_rule_per_row(ids, dtype):
    """The column rule (one RE2 pass in Arrow for text) is ``is_real_call_id`` on each row, whatever the dtype."""
    if dtype != "object" and any(v is not None and not isinstance(v, str) for v in ids):
        dtype = "object"
    got = call_ids.real_call_ids(pd.Series(ids, dtype=dtype)).tolist()
    assert got == [call_ids.is_real_call_id(v) for v in ids]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(IDS, st.sampled_from(["test_fix_verification_001", "demo_call_1761249581", "temp_1761122080_9e0002da",
                                               "", "1"])), max_size=15), st.sampled_from(["object", "string"]))
@example([f"call_{HEX27}", "test_123", None, 7], "object")
def test_id_kinds_is_id_kind_per_row(ids, dtype):
    """The column rule (real ids in one RE2 pass, the rest one by one) is ``id_kind`` on each row, index kept."""
    if dtype != "object" and any(v is not None and not isinstance(v, str) for v in ids):
        dtype = "object"
    series = pd.Series(ids, dtype=dtype, index=range(len(ids) * 2, 0, -2))
    got = call_ids.id_kinds(series)
    assert got.tolist() == [call_ids.id_kind(v) for v in ids]
    assert got.index.tolist() == series.index.tolist()


FOLDABLE = st.lists(st.sampled_from([f"call_{HEX27}", f"CALL_{HEX27}", f"call_{HEX27[:-1]}", "call_", " ", "x", "\n", "é",
                                     "0"]), max_size=6).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(FOLDABLE | st.none(), max_size=8))
def test_folding_the_call_ids_of_texts_is_re_sub_text_by_text(texts):
    """The one pass in Arrow (what the store keeps) is Python's rule on each text; a missing text stays missing."""
    folded = call_ids.fold_call_ids(pd.Series(texts, dtype="string"))
    want = [None if t is None else re.sub(call_ids.RETELL_CALL_ID_BODY, call_ids.CALL_ID_FOLDED, t) for t in texts]
    assert [None if pd.isna(v) else v for v in folded] == want


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("callCAL_0123456789abcdefABCDEF/?=: \n")), max_size=80),
       st.from_regex(r"[0-9a-f]{27}", fullmatch=True))
def test_a_pasted_text_yields_its_one_call_id_and_never_an_id_it_does_not_hold(noise, body):
    """call_id_in: the one id (any case) standing on its own in a paste; none when there are several or none."""
    found = call_ids.call_id_in(noise)
    whole = re.findall(r"(?<![0-9A-Za-z])[cC][aA][lL][lL]_[0-9a-fA-F]{27}(?![0-9A-Za-z])", noise)
    assert found == (whole[0].lower() if len({w.lower() for w in whole}) == 1 else None)
    assert found is None or (call_ids.is_real_call_id(found) and found in noise.lower())
    pasted = f"https://dashboard.retellai.com/call-history?history=call_{body.upper()}#x"
    assert call_ids.call_id_in(pasted) == f"call_{body}" and call_ids.call_id_in(f"{pasted} call_{body[::-1]}") in (
        None if body[::-1] != body else f"call_{body}",)
    assert call_ids.call_id_in(f"call_{body}0") is None and call_ids.call_id_in(f"xcall_{body}") is None
