"""Tolerant decoding of JSON columns: NULL, invalid and double-encoded values (P15); strict reading of
JSON documents from user files (one line of error, never a RecursionError)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rca_toolkit.errors import InputFormatError

MAX_DECODE_DEPTH = 3
# Deepest nesting a document may have. Real Retell, Cal.com and export files nest 5-8 levels; past
# a few hundred, Python's recursive copy/encode/walk of the object would fail later with RecursionError.
MAX_NESTING = 100


def decode_json(value: Any) -> tuple[Any, bool, bool]:
    """Return ``(obj, double_encoded, invalid)``.

    Decodes while the value is still a string, at most ``MAX_DECODE_DEPTH`` times, so a
    JSON string that itself contains JSON (``json_encode`` of an array assigned to an
    ``array`` cast) comes back as the object and is reported as double encoded.
    """
    if value is None or (isinstance(value, float) and value != value):
        return None, False, False
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return value, False, False
    obj: Any = value
    depth = 0
    while isinstance(obj, str) and depth < MAX_DECODE_DEPTH:
        try:
            decoded = loads(obj)
        except (ValueError, TypeError, RecursionError):
            return (value if depth == 0 else obj), depth > 1, depth == 0
        if _too_deep(obj, decoded):  # too deep to walk safely: kept as the text it was
            return (value if depth == 0 else obj), depth > 1, depth == 0
        obj = decoded
        depth += 1
    return obj, depth > 1, False


_LONG_DIGITS = re.compile(r"[0-9]{19}")  # orjson reads an integer past 64 bits as a float; json keeps it exact


def loads(text: str) -> Any:
    """``json.loads(text)``, by orjson where it gives the same object (4x faster: 300k appointment metadata texts
    in a two-month compare). json decides what orjson refuses (NaN, 1e400, lone surrogates) and long numbers."""
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def map_decoded(values: pd.Series, fn, batch: int = 50_000) -> np.ndarray:
    """``[fn(decode_json(v)[0]) for v in values]`` as an object array, without keeping the decoded objects.

    Why: 380k appointment metadata texts in a two-month compare, nearly all distinct, cost 1.7 s through
    :func:`decode_json`, mostly its per-text checks. Here those checks (no 19-digit run, few brackets) run
    once for the column in Arrow, and a text that passes them and decodes by orjson to anything but a
    string is what :func:`decode_json` returns for it; every other value goes through :func:`decode_json`."""
    texts = values.to_numpy(dtype=object)
    out = np.empty(len(texts), dtype=object)
    fast = np.zeros(0, dtype=bool)
    for i, text in enumerate(texts):
        if i % batch == 0:  # the checks a batch at a time: Arrow copies the texts it checks
            fast = _plain_texts(texts[i:i + batch])
        if fast[i % batch] and isinstance(text, str):
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                obj = text  # a string: decode_json decides below
            if not isinstance(obj, str):
                out[i] = fn(obj)
                continue
        out[i] = fn(decode_json(text)[0])
    return out


def _plain_texts(texts: np.ndarray) -> np.ndarray:
    """Per value: a text with no run of 19 digits (:data:`_LONG_DIGITS`) and at most :data:`MAX_NESTING`
    brackets (so :func:`_too_deep` is false). All false when the column is not all text (Arrow refuses it)."""
    try:
        arr = pa.array(texts, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
        return np.zeros(len(texts), dtype=bool)
    brackets = pc.add(pc.count_substring(arr, "["), pc.count_substring(arr, "{"))
    plain = pc.and_(pc.invert(pc.match_substring_regex(arr, _LONG_DIGITS.pattern)), pc.less_equal(brackets, MAX_NESTING))
    return plain.fill_null(False).to_numpy(zero_copy_only=False)


def nesting(obj: Any) -> int:
    """How many levels of lists/dicts ``obj`` has (iterative, so any depth is safe to measure)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, level)
        stack.extend((v, level + 1) for v in value if isinstance(v, (dict, list)))
    return deepest


def _too_deep(text: str, obj: Any) -> bool:
    """Nesting past :data:`MAX_NESTING`; the bracket count (fast, in C) bounds it, so most texts skip the walk."""
    return text.count("[") + text.count("{") > MAX_NESTING and nesting(obj) > MAX_NESTING


def load_document(text: str, origin: str, what: str) -> Any:
    """Strictly decode the JSON document ``text`` read from ``origin`` (a file name) that should be ``what``.

    Invalid JSON, nesting deeper than :data:`MAX_NESTING` (``[[[[...``) and ``NaN``/``Infinity``
    literals raise :class:`InputFormatError`, one line naming ``origin`` and ``what``.
    """
    def no_constants(name: str):
        raise ValueError(f"{name} is not a JSON value")

    hint = f"give a {what} JSON file"
    try:
        obj = json.loads(text, parse_constant=no_constants)
    except RecursionError:
        raise InputFormatError(f"{origin} nests JSON deeper than {MAX_NESTING} levels", hint=hint) from None
    except ValueError as exc:  # JSONDecodeError and the constants above
        raise InputFormatError(f"{origin} is not valid JSON: {_one_line(exc)}", hint=hint) from None
    if _too_deep(text, obj):
        raise InputFormatError(f"{origin} nests JSON deeper than {MAX_NESTING} levels", hint=hint)
    return obj


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for result objects: numpy/pandas scalars, times, sets, frames.

    Non-finite floats become ``null`` (JSON has no NaN); anything else unknown is rendered
    with ``str`` so a report never fails on an exotic value.
    """
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing values
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if getattr(value, "ndim", 0) > 0:  # numpy arrays and pandas arrays
        return value.tolist()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)
