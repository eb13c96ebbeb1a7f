"""Which call ids are real Retell calls (data-contract P4), in pandas and in SQL.

Why one module: test, demo, temp and typo ids must be left out of every statistic and counted,
and the loaders, the aggregate queries, the health report and the timeline all decide it. The
pandas rule (:func:`is_real_call_id`) and its SQL twin (:func:`real_call_id_sql`) sit side by
side so they cannot drift; ``tests/rules/test_rules_call_ids.py`` runs both on the same rows.
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rca_toolkit.distinct import per_distinct

RETELL_CALL_ID_BODY = "call_[0-9a-f]{27}"  # unanchored: also masks ids inside error texts
RETELL_CALL_ID = re.compile(RETELL_CALL_ID_BODY)  # use fullmatch: ``$`` would accept a trailing newline
RETELL_CALL_ID_LENGTH = 32
CALL_ID_FOLDED = "call_000000000000000000000000000"  # every real call id in an error text becomes this one
TEST_ID_PATTERNS = {
    "test": re.compile(r"^test_"),
    "demo": re.compile(r"^demo_call_"),
    "temp": re.compile(r"^temp_\d+_[0-9a-f]{8}$"),
}


def fold_call_ids(texts: pd.Series) -> pd.Series:
    """Each text with every call id in it replaced by :data:`CALL_ID_FOLDED` (one RE2 pass in Arrow, as DuckDB's
    ``regexp_replace(..., 'g')`` and Python's ``re.sub`` replace them), so the texts of one error signature group
    together; a missing text stays missing."""
    values = pa.array(texts.to_numpy(dtype=object, na_value=None), type=pa.string())  # as real_call_ids hands them over
    folded = pc.replace_substring_regex(values, RETELL_CALL_ID_BODY, CALL_ID_FOLDED)
    return pd.Series(folded.to_numpy(zero_copy_only=False), index=texts.index, dtype="string")


def is_real_call_id(call_id: str | None) -> bool:
    """True only for ids of the Retell shape ``call_`` + 27 lowercase hex characters, nothing around them."""
    return isinstance(call_id, str) and RETELL_CALL_ID.fullmatch(call_id) is not None


def real_call_ids(call_ids: pd.Series) -> pd.Series:
    """:func:`is_real_call_id` per row (bool series, same index): texts by one RE2 pass in Arrow (call ids are
    nearly all distinct, 0.5 s per 460k in Python), anything else once per distinct value."""
    values = call_ids.to_numpy(dtype=object, na_value=None)
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return pd.Series(per_distinct(call_ids, is_real_call_id, False).astype(bool), index=call_ids.index)
    hits = pc.match_substring_regex(pa.array(values, type=pa.string()), f"^{RETELL_CALL_ID_BODY}$").fill_null(False)
    return pd.Series(hits.to_numpy(zero_copy_only=False), index=call_ids.index, dtype=bool)


_PASTED = re.compile(rf"(?<![0-9A-Za-z]){RETELL_CALL_ID_BODY}(?![0-9A-Za-z])", re.IGNORECASE)


def call_id_in(text: str) -> str | None:
    """The one Retell call id a pasted text holds, lowercased (a dashboard URL, a log line, an id in capitals), or None
    when it holds none or several. Why: people paste what they have at hand; the id inside it is unambiguous."""
    found = {match.lower() for match in _PASTED.findall(text or "")}
    return found.pop() if len(found) == 1 else None


def id_kind(call_id: str | None) -> str:
    """Classify a call id: ``retell`` (well-formed), ``test``, ``demo``, ``temp`` or ``malformed``."""
    if not isinstance(call_id, str) or not call_id:
        return "malformed"
    if is_real_call_id(call_id):
        return "retell"
    for kind, pattern in TEST_ID_PATTERNS.items():
        if pattern.match(call_id):
            return kind
    return "malformed"


def id_kinds(call_ids: pd.Series) -> pd.Series:
    """:func:`id_kind` per row (object series, same index): the real ids in one RE2 pass (:func:`real_call_ids`; a
    million ids, each distinct, took 1.2 s one by one), the few others one by one."""
    kinds = pd.Series("retell", index=call_ids.index, dtype="object")
    other = ~real_call_ids(call_ids).to_numpy()
    kinds[other] = [id_kind(v) for v in call_ids.to_numpy(dtype=object)[other]]
    return kinds


def real_call_id_sql(col: str, engine=None) -> str:
    """:func:`is_real_call_id` as a SQL condition on ``col`` (NULL is not real), case-sensitive.

    ``GLOB`` on SQLite (matches the whole value); on the local store RE2's whole-value match (case-sensitive; a
    tenth faster than a 27-class ``GLOB`` over a million sessions); elsewhere (MariaDB, also when no ``engine``
    is given) ``REGEXP`` with ``(?-i)`` against the case-insensitive collation, plus a length check
    because PCRE's ``$`` also matches before a trailing newline. ``engine``: an engine or its dialect's name.
    """
    dialect = engine if engine is None or isinstance(engine, str) else engine.dialect.name
    if dialect == "duckdb":
        return f"regexp_full_match({col}, '{RETELL_CALL_ID_BODY}')"
    if dialect == "sqlite":
        return f"({col} GLOB 'call_{'[0-9a-f]' * 27}')"
    return f"({col} REGEXP '(?-i)^{RETELL_CALL_ID_BODY}$' AND LENGTH({col}) = {RETELL_CALL_ID_LENGTH})"
