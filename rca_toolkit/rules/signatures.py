"""Error-message normalisation: many texts of one failure -> one stable signature.

Why: the same failure reaches us in several shapes (data-contract P10, §5): the server writes
``in 'field list'``, the docs ``in field list``; Laravel appends ``(Connection: mysql, SQL: ...)``;
log lines carry a JSON context ``{"exception": ...}`` that the error monitor cuts at 200
characters. Counting by raw text would split one incident into dozens of rows. A signature keeps
what identifies the failure (SQLSTATE, MariaDB error number, the unknown column or table, key
names, HTTP status) and masks what varies per occurrence (ids, uuids, call ids, numbers, quoted
values).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# P10, lenient: quotes around the location are optional, the tail may be a Laravel "(..." or end.
UNKNOWN_COLUMN = re.compile(r"Unknown column '([^']+)' in '?([^'(]+?)'?(?: \(|$)")
_UNKNOWN_COLUMN_NAME = re.compile(r"Unknown column '([^']+)'")
_UNKNOWN_TABLE = re.compile(r"(?:Unknown table|Table) '([^']+)'(?: doesn't exist)?")
_KEY_COLUMN = re.compile(r"Key column '([^']+)' doesn't exist")
_SQLSTATE = re.compile(r"SQLSTATE\[([0-9A-Z]{5})\]:?\s*")
# "[2002] Connection refused" or "Column not found: 1054 Unknown column" or a bare "1054 ...".
_ERRNO_BRACKET = re.compile(r"^\[(\d{4})\]\s*")
_ERRNO_AFTER_CLASS = re.compile(r"^(?:[A-Za-z][A-Za-z ,/-]*:\s*)?(\d{4})\s+(?=[A-Z])")
_LARAVEL_SQL_TAIL = re.compile(r"\s*\(Connection: [^,)]*, SQL: .*$", re.S)
_JSON_CONTEXT_TAIL = re.compile(r"\s+\{(?:\"|\.\.\.\}|\s*$).*$", re.S)
_EXCEPTION_AT = re.compile(r"\s+at /\S+:\d+\)?.*$", re.S)

_MASKS = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\bcall_[0-9a-f]{20,40}\b"), "<call_id>"),
    (re.compile(r"\b(?:test|demo_call|temp)_[0-9A-Za-z_]+\b"), "<test_id>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b"), "<email>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<hex>"),
    (re.compile(r"\b[A-Za-z0-9]{32,}\b"), "<token>"),
]
_NUMBER = re.compile(r"(?<![\w.<])-?\d+(?:\.\d+)?(?![\w.>])")
_KEEP_NUMBER_BEFORE = re.compile(r"(?:HTTP|code:?|status:?)\s*$", re.I)
_QUOTED = re.compile(r"'([^']*)'")
_KEEP_QUOTED_AFTER = re.compile(r"(?:\bfor key|\bcolumn|\btable|\bKey column|\bin)\s*$", re.I)
_SPACES = re.compile(r"\s+")
NO_ERROR_TEXT = "(no error text)"  # the signature group of failures that carry no error text (counts and reports)


@dataclass(frozen=True)
class Signature:
    """One normalised error: ``signature`` is the grouping key, the rest its parsed parts."""

    signature: str
    sqlstate: str | None = None
    errno: int | None = None
    column: str | None = None
    table: str | None = None
    location: str | None = None
    truncated_context: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _strip_tails(text: str) -> tuple[str, bool]:
    """Drop the Laravel SQL tail, JSON log context and ``at /file:line`` (often cut at 200 chars)."""
    context = _JSON_CONTEXT_TAIL.search(text)
    truncated = bool(context) and not context.group(0).rstrip().endswith("}")
    text = _JSON_CONTEXT_TAIL.sub("", text)
    text = _LARAVEL_SQL_TAIL.sub("", text)
    text = _EXCEPTION_AT.sub("", text)
    return text.strip(), truncated


def _mask(text: str, keep: set[str]) -> str:
    def quoted(match: re.Match) -> str:
        value = match.group(1)
        before = text[: match.start()]
        if value in keep or _KEEP_QUOTED_AFTER.search(before):
            return match.group(0)
        return "'?'"

    text = _QUOTED.sub(quoted, text)
    for pattern, token in _MASKS:
        text = pattern.sub(token, text)

    def number(match: re.Match) -> str:
        if _KEEP_NUMBER_BEFORE.search(text[: match.start()]):
            return match.group(0)
        return "<n>"

    return _NUMBER.sub(number, text)


def normalise(message: str | None) -> Signature | None:
    """Parse one message into a :class:`Signature`; None/empty gives None."""
    if message is None or (not isinstance(message, str) and pd.isna(message)):
        return None
    text = _SPACES.sub(" ", str(message)).strip()
    if not text:
        return None
    text, truncated = _strip_tails(text)
    sqlstate = None
    state = _SQLSTATE.search(text)
    if state:
        sqlstate = state.group(1)
        text = (text[: state.start()] + text[state.end():]).strip()
    errno = None
    for pattern in (_ERRNO_BRACKET, _ERRNO_AFTER_CLASS):
        found = pattern.match(text)
        if found:
            errno = int(found.group(1))
            text = text[found.end():].strip()
            break
    column = location = table = None
    col = UNKNOWN_COLUMN.search(text)
    if col:
        column, location = col.group(1), col.group(2).strip()
        # One canonical shape for the P10 variants (quotes optional, tail dropped above).
        text = text[: col.start()] + f"Unknown column '{column}' in '{location}'"
    else:
        bare = _UNKNOWN_COLUMN_NAME.search(text)
        if bare:
            column = bare.group(1)
    key_col = _KEY_COLUMN.search(text)
    if key_col and column is None:
        column = key_col.group(1)
    tab = _UNKNOWN_TABLE.search(text)
    if tab:
        table = tab.group(1)
    keep = {v for v in (column, table) if v}
    core = _mask(text, keep).strip(" :")
    # The error number identifies a MariaDB error on its own; SQLSTATE only when there is none,
    # so a variant printed without its SQLSTATE still groups with the full one.
    if errno is not None:
        key = f"[{errno}] {core}"
    elif sqlstate:
        key = f"SQLSTATE[{sqlstate}] {core}"
    else:
        key = core
    return Signature(
        signature=key.strip(),
        sqlstate=sqlstate,
        errno=errno,
        column=column,
        table=table,
        location=location,
        truncated_context=truncated,
    )


def signature_of(message: str | None) -> str | None:
    """Just the grouping key of :func:`normalise`."""
    parsed = normalise(message)
    return parsed.signature if parsed else None


_CALL_ID_MASK = _MASKS[1][0]  # the call ids a signature masks


def call_ids_renumbered(text: str) -> str:
    """``text`` with each distinct call id that :func:`normalise` masks replaced by a stand-in of its length, the first
    ``call_00…0``, the next ``call_00…1``. Its signature is the text's own: every such id ends up masked as
    ``<call_id>`` or cut (inside a quoted value, a tail), equal ids stay equal and distinct ones distinct (a quoted
    value is kept when it is the unknown column's or table's name), and nothing else depends on an id's digits."""
    if "call_" not in text:
        return text
    seen: dict[str, int] = {}

    def stand_in(match: re.Match) -> str:
        number = format(seen.setdefault(match.group(0), len(seen)), "x")
        return "call_" + number.rjust(len(match.group(0)) - 5, "0")

    return _CALL_ID_MASK.sub(stand_in, text)


RETELL_DIGITS = 27  # the hex digits of a Retell call id (call_ + 27)


def _stand_in(texts: pa.Array, digits: int) -> pa.Array:
    """Every call id of ``digits`` hex digits (a whole word) replaced by the first stand-in of its length."""
    return pc.replace_substring_regex(texts, rf"\bcall_[0-9a-f]{{{digits}}}\b", "call_" + "0" * digits)


def renumbered(texts) -> pa.Array:
    """:func:`call_ids_renumbered` of each text (Arrow text, or values of which those that are no text become null), as
    Arrow text. Why: at 1M calls a million error texts each name their own call, 5 s one by one. A text of ASCII
    characters naming one call id has it replaced in Arrow, one RE2 pass for Retell's ids and one per other length found
    (RE2's ``\\b`` is Python's on ASCII text; the id's run of hex characters is the match whatever its length, so the
    pattern of its exact length finds it and no other); every other text goes through :func:`call_ids_renumbered`."""
    values = texts.cast(pa.large_string()) if isinstance(texts, pa.Array) else \
        pa.array([t if isinstance(t, str) else None for t in texts], type=pa.large_string())
    found = pc.count_substring_regex(values, _CALL_ID_MASK.pattern)
    ascii_ = pc.string_is_ascii(values)
    one = pc.and_(ascii_, pc.equal(found, 1)).fill_null(False)
    keys = _stand_in(values, RETELL_DIGITS)  # Retell's own ids first; a text's one id is the run of hex after call_
    # the texts it left alone hold an id of another length (or the stand-in): their lengths read (1.5 s for 1M texts)
    odd = pc.and_(one, pc.equal(keys, values)).fill_null(False)
    found_ids = pc.extract_regex(values.filter(odd), f"(?P<id>{_CALL_ID_MASK.pattern})")
    for length in pc.unique(pc.utf8_length(pc.struct_field(found_ids, [0]))).to_pylist():
        keys = _stand_in(keys, length - len("call_"))
    other = pc.and_(pc.invert(one), pc.greater(found, 0)).fill_null(False)  # non-ASCII, or several ids
    if pc.any(other).as_py():
        rows = np.flatnonzero(other.to_numpy(zero_copy_only=False))
        keys = pc.replace_with_mask(keys, other, pa.array([call_ids_renumbered(values[i].as_py()) for i in rows],
                                                          type=pa.large_string()))
    return keys


def shapes(texts) -> tuple[list[str], np.ndarray]:
    """The distinct shapes of ``texts`` (their call ids renumbered: :func:`renumbered`), and each text's shape as a
    position among them (-1: no text): what is parsed once per shape."""
    keys = renumbered(texts).dictionary_encode()
    return keys.dictionary.to_pylist(), keys.indices.fill_null(-1).to_numpy(zero_copy_only=False)


def signature_keys(messages: pd.Series) -> pd.Series:
    """The ``signature`` column of :func:`signatures` alone (``string``, same index), parsed once per distinct text with
    its call ids renumbered (:func:`call_ids_renumbered`, :func:`renumbered`). Why: at 1M calls each duplicate-entry
    error names its own call: a million distinct texts of one signature, 70 s to parse one by one (``rca incident``)."""
    codes, distinct = pd.factorize(messages, use_na_sentinel=True)
    keys, key_codes = shapes(np.asarray(distinct, dtype=object))
    parsed = np.array([signature_of(k) for k in keys] + [None], dtype=object)  # the last: no text
    per_text = np.append(parsed[key_codes], None)  # key_codes -1 picks the last slot too
    return pd.Series(per_text[codes], index=messages.index, dtype="string")


def signatures(messages: pd.Series) -> pd.DataFrame:
    """Vectorised :func:`normalise`: one row per message (same index), parsed once per text shape.

    Why per shape: 100k failures of one incident carry a handful of texts, but at 1M calls a duplicate-entry error
    names its own call in each (46 s for an incident of 2M such rows). Each distinct text is parsed as its call ids
    renumbered (:func:`renumbered`): a stand-in has the id's length, so every part is read at the same place and the
    signature is the text's own; a part that holds an id (an unknown column named like a call) holds the stand-in
    instead, so a shape whose column, table or location holds one is parsed text by text."""
    cols = ["signature", "sqlstate", "errno", "column", "table", "location", "truncated_context"]
    codes, distinct = pd.factorize(messages, use_na_sentinel=True)
    texts = np.asarray(distinct, dtype=object)
    keys, shape_of = shapes(texts)  # shape_of: each distinct text's shape, -1: no text
    by_shape = [normalise(k) for k in keys]  # rows 0..K-1 of the table; row K: no text
    names_id = np.array([p is not None and any(isinstance(v, str) and _CALL_ID_MASK.search(v)
                                               for v in (p.column, p.table, p.location)) for p in by_shape] + [False], dtype=bool)
    row_of = np.append(np.where(shape_of < 0, len(by_shape), shape_of), len(by_shape))  # the last slot: a missing message
    own = np.flatnonzero(names_id[shape_of])  # parsed text by text: rows K+1, K+2, ...
    row_of[own] = len(by_shape) + 1 + np.arange(len(own))
    parsed = by_shape + [None] + [normalise(texts[i]) for i in own]
    table = pd.DataFrame([[getattr(p, c) for c in cols] if p else [None] * len(cols) for p in parsed], columns=cols)
    table["errno"] = pd.array(table["errno"].to_numpy(dtype=object), dtype="Int64")  # typed per row of the table
    for col in ("signature", "sqlstate", "column", "table", "location"):
        table[col] = table[col].astype("string")
    table["truncated_context"] = table["truncated_context"].fillna(False).astype(bool)
    return table.iloc[row_of[codes]].set_index(messages.index)  # code -1 (missing) picks the last slot
