"""Tolerant decoding of JSON columns: NULL, invalid and double-encoded values (P15)."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DECODE_DEPTH = 3


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
            obj = json.loads(obj)
        except (ValueError, TypeError):
            return (value if depth == 0 else obj), depth > 1, depth == 0
        depth += 1
    return obj, depth > 1, False


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
