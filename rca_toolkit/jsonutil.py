"""Tolerant decoding of JSON columns: NULL, invalid and double-encoded values (P15)."""

from __future__ import annotations

import json
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
