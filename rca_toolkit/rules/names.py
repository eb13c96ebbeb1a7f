"""Call-id and function-name rules shared by loaders, formats and analyses (P3, P4, P18)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from rca_toolkit.distinct import per_distinct

RETELL_CALL_ID = re.compile(r"^call_[0-9a-f]{27}$")
TEST_ID_PATTERNS = {
    "test": re.compile(r"^test_"),
    "demo": re.compile(r"^demo_call_"),
    "temp": re.compile(r"^temp_\d+_[0-9a-f]{8}$"),
}
_VERSION_SUFFIX = re.compile(r"_v\d+$")

# Aliases the agent used for the same server-side function (data-contract P3).
FUNCTION_ALIASES = {
    "start_booking": "book_appointment",
    "get_current_context": "initialize_call",
    "collect_appointment_data": "collect_appointment",
}

BOOKING_FAMILIES = ("collect_appointment", "book_appointment")


def function_family(name: str | None) -> str | None:
    """``check_availability_v17`` -> ``check_availability``; aliases folded; None stays None."""
    if name is None or (isinstance(name, float) and name != name):
        return None
    base = _VERSION_SUFFIX.sub("", str(name).strip())
    return FUNCTION_ALIASES.get(base, base)


def family_series(names: pd.Series) -> pd.Series:
    """Vectorised :func:`function_family` returning a categorical series (once per distinct name;
    a categorical's codes are mapped without a string per row)."""
    if not isinstance(names.dtype, pd.CategoricalDtype):
        return pd.Series(per_distinct(names, function_family), index=names.index, dtype="string").astype("category")
    names = names.cat.remove_unused_categories()
    families = [function_family(name) for name in names.cat.categories]
    categories = sorted({f for f in families if f is not None})
    lookup = np.array([categories.index(f) if f is not None else -1 for f in families] + [-1])  # code -1: missing
    codes = lookup[names.cat.codes.to_numpy()]
    return pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(categories, dtype="string"))),
                     index=names.index)


def real_call_ids(call_ids: pd.Series) -> pd.Series:
    """:func:`is_real_call_id` per row, decided once per distinct id (bool series, same index)."""
    return pd.Series(per_distinct(call_ids, is_real_call_id, False).astype(bool), index=call_ids.index)


def id_kind(call_id: str | None) -> str:
    """Classify a call id: ``retell`` (well-formed), ``test``, ``demo``, ``temp`` or ``malformed``."""
    if not call_id:
        return "malformed"
    if RETELL_CALL_ID.match(call_id):
        return "retell"
    for kind, pattern in TEST_ID_PATTERNS.items():
        if pattern.match(call_id):
            return kind
    return "malformed"


def is_real_call_id(call_id: str | None) -> bool:
    """True only for ids of the Retell shape ``call_`` + 27 hex characters."""
    return bool(call_id) and bool(RETELL_CALL_ID.match(call_id))
