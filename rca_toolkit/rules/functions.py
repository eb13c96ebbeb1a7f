"""Function families (data-contract P3): ``check_availability_v17`` and its aliases are one function.

Why: the agent calls the same server function under versioned names and aliases; matching exact
names produced the false "missing_check_availability 100 %". :func:`function_family` folds a
name in Python; :func:`family_in_sql` is its SQL twin, which selects the traces of some families
by the stored names that fold into them (``tests/rules/test_rules_functions.py`` runs both on
the same rows).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from rca_toolkit.distinct import per_distinct

VERSION_SUFFIX = re.compile(r"_v\d+$")

# Aliases the agent used for the same server-side function (data-contract P3).
FUNCTION_ALIASES = {
    "start_booking": "book_appointment",
    "get_current_context": "initialize_call",
    "collect_appointment_data": "collect_appointment",
}

BOOKING_FAMILIES = ("collect_appointment", "book_appointment")


def function_family(name: str | None) -> str | None:
    """``check_availability_v17`` -> ``check_availability``; aliases folded; None stays None."""
    if name is None or (isinstance(name, float) and name != name) or name is pd.NA:
        return None
    base = VERSION_SUFFIX.sub("", str(name).strip())
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


def wanted_families(families: str | Iterable[str]) -> set[str]:
    """One family name or several, as a set."""
    return {families} if isinstance(families, str) else set(families)


def names_of_families(stored: Iterable, families: str | Iterable[str]) -> list[str]:
    """The stored function names (sorted, missing ones skipped) that fold into ``families``."""
    wanted = wanted_families(families)
    return sorted(n for n in (str(s) for s in stored if s is not None and not pd.isna(s)) if function_family(n) in wanted)


def family_in_sql(col: str, stored: Iterable, families: str | Iterable[str], params: dict) -> list[str]:
    """SQL twin of ``family_series(col).isin(families)``: ``[col IN (:fam0, …)]``, names bound into ``params``.

    ``stored`` are the function names the table holds (``SELECT DISTINCT function_name``): they
    are folded here in Python, so the query compares plain names and MariaDB range-scans the
    ``(function_name, started_at)`` index per name; ``= x OR LIKE 'x_v%'`` could not, and read
    every trace (2.5M rows instead of 15k at 1M calls, benchmarks/FINDINGS.md). No family at all
    gives no condition; families without a stored name give ``1 = 0``.
    """
    if not families:
        return []
    matching = names_of_families(stored, families)
    if not matching:
        return ["1 = 0"]
    for i, name in enumerate(matching):
        params[f"fam{i}"] = name
    return [f"{col} IN ({', '.join(f':fam{i}' for i in range(len(matching)))})"]
