"""Personal data masked inside what an import stores: text, and every string of a JSON value.

Why: ``rca import`` writes Cal.com deliveries, Laravel log entries and call-history rows into a
scratch database that leaves the analyst's machine. What is personal (phone numbers, e-mail
addresses, the names the data names) is decided by the one rule, :mod:`rca_toolkit.rules.personal_data`;
this module only walks dicts and lists so that rule reaches every field, keys and shapes unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

import pandas as pd

from rca_toolkit.rules import personal_data


def mask_text(text, names: Iterable[str] = ()):
    """``text`` with everything :func:`personal_data.mask` masks: the known ``names`` (each word of a
    name, as a whole word: "Max" masks "Max", never the head of "Maximum"), e-mail addresses, phone
    numbers and said names; anything but a string is returned as it is."""
    if not isinstance(text, str) or not text:
        return text
    return personal_data.mask(text, [n for n in names if isinstance(n, str) and n.strip()])


# keys whose values are ids or times (uid, bookingUid, id, call_id, eventTypeId, startTime, createdAt,
# started_at, timestamp): they key and order the rows and are never personal, so they are kept as they are
_ID_OR_TIME_KEY = re.compile(
    r"^(?:id|uid|time|timestamp|date)$|(?:_id|_uid|_at|_time|_date)$|[a-z0-9](?:Id|ID|Uid|UID|At|Time|Date)$")


def mask_value(value: Any, names: Iterable[str] = (), key: str | None = None) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings, numbers) with every string masked by
    :func:`mask_text`; dict keys, numbers, booleans and None are kept, and so are the strings of
    id and time keys (``uid``, ``bookingUid``, ``*_id``, ``startTime``, ``createdAt``)."""
    names = list(names)
    if isinstance(value, dict):
        return {k: mask_value(v, names, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v, names, key) for v in value]
    if key is not None and _ID_OR_TIME_KEY.search(key):
        return value
    return mask_text(value, names)


def names_of(*values: Any) -> list[str]:
    """The names the values themselves name (person-name keys, said names), for :func:`mask_value`."""
    return sorted(personal_data.names_in(*values))


def mask_stored_text(text):
    """One stored text as :func:`mask_text` with the names it names itself would leave it, faster.

    Why: a store masks millions of texts, most of which hold nothing. A text :func:`personal_data.may_hold`
    clears is returned at once; JSON is decoded once and returned unchanged when it names no person and none
    of its keys or strings can hold a finding; anything else goes through the whole rule."""
    if not isinstance(text, str) or not personal_data.may_hold(text):
        return text
    if text.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, (dict, list)):
            names = names_of(value)
            if not names and not personal_data.findable("\x00".join(_strings(value))):  # NUL ends every pattern
                return text
            return mask_text(text, names)
    return mask_text(text, names_of(text))


def _strings(value):
    """Every key and string inside a decoded JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for k, v in item.items():
                yield str(k)
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)


def mask_arrow(column):
    """:func:`mask_column` for an Arrow text column (what the store reads from a server): the rows the prefilter
    clears never leave Arrow (nine in ten at 1M calls: converting them cost as much as the masking)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.string())
    hits, masked = _masked_hits(array)
    return array if masked is None else pc.replace_with_mask(array, hits, masked)


def mask_column(values: pd.Series) -> pd.Series:
    """Every text of a column through :func:`mask_stored_text` (other values are left as they are, as that rule
    leaves them), by :func:`_masked_hits`."""
    import pyarrow as pa

    texts = values.astype("object").where(values.notna(), None)
    is_text = texts.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    hits, masked = _masked_hits(pa.array(texts.where(is_text, None).tolist(), type=pa.string()))
    if masked is None:
        return values
    out = values.astype("object").copy()
    out[hits.to_numpy(zero_copy_only=False)] = masked.to_pylist()
    return out


# What the whole rule may change in a text the prefilter picked: a backslash (a JSON escape: a string then decodes
# to other characters than it is written with), anything findable, or a person key (every one ends so) whose value
# is a list or a string without "[" (a person value never holds one: a scrubbed "[PII]"). Without a backslash a quoted
# run that ends so and is followed by a colon is a key: between two JSON strings there are only brackets, commas,
# colons, numbers and true/false/null, none of which ends so.
_NEEDS_RULE_RE2 = (r'\\|' + personal_data.FINDABLE_RE2
                   + r'|"[^"]*(?i:name|kunde)"[ \t\n\r]*:[ \t\n\r]*(?:\[|"[^"\[]*")')


def _masked_hits(array):
    """The texts that may hold personal data (``personal_data.MAY_HOLD_RE2``, one vectorised RE2 pass) and what
    they become: the picked rows (Arrow booleans) and their texts (an Arrow array), or None when none is picked.

    Why so: most picked texts are payloads and metadata picked for a key such as ``name`` that holds no person;
    a second RE2 pass over the picked ones (``_NEEDS_RULE_RE2``) leaves those as they are, in Arrow (walking each
    decoded in Python cost 16 µs a text, 1.5M webhook payloads at 1M calls). The rest are masked once per distinct
    text, and only the distinct ones become Python strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hits = pc.fill_null(pc.match_substring_regex(array, personal_data.MAY_HOLD_RE2), False)
    if not pc.any(hits).as_py():
        return hits, None
    picked = pc.filter(array, hits)
    needs = pc.match_substring_regex(picked, _NEEDS_RULE_RE2)
    if pc.any(needs).as_py():
        encoded = pc.dictionary_encode(pc.filter(picked, needs))
        masked = pa.array([mask_stored_text(v) for v in encoded.dictionary.to_pylist()], type=array.type)
        picked = pc.replace_with_mask(picked, needs, pc.take(masked, encoded.indices))
    return hits, picked
