"""Apply a function once per distinct value of a column.

Why: a window of 100k+ attempts carries a handful of distinct function names, call-id shapes
and ``error_details`` texts; calling Python per row costs seconds at 1M calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def per_distinct(values: pd.Series, fn, missing=None) -> np.ndarray:
    """``fn(value)`` for each row, computed once per distinct value; missing values get ``missing``.

    An object array in row order. Equal values share one result object: treat them as read-only.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # its codes are the factorization (-1: missing)
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    elif isinstance(values.dtype, pd.StringDtype):  # texts (in Arrow: the store's reads) factorized as they are
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    else:
        codes, uniques = pd.factorize(values.astype("object"), use_na_sentinel=True)
    results = np.empty(len(uniques) + 1, dtype=object)
    results[:len(uniques)] = [fn(v) for v in uniques]
    results[-1] = missing  # code -1 (missing) indexes the last slot
    return results[codes]


def identity_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code by object identity, and the row where each code first occurs.

    Why: decoded JSON is shared, one object per distinct text (as ``attempt_inputs`` decodes them); hashing
    dicts is impossible and comparing them is slow, but their addresses factorize in C."""
    ids = np.fromiter(map(id, values.to_numpy(dtype=object)), dtype=np.uint64, count=len(values))
    codes, uniques = pd.factorize(ids)  # a hash, not a sort: codes in order of first occurrence
    first = np.empty(len(uniques), dtype=np.intp)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # written last to first: each code's first row stays
    return codes, first


def per_object(values: pd.Series, fn) -> np.ndarray:
    """``fn(value)`` for each row, computed once per distinct object (by identity, see ``identity_codes``)."""
    codes, first = identity_codes(values)
    objects = values.to_numpy(dtype=object)
    results = np.empty(len(first), dtype=object)
    results[:] = [fn(objects[i]) for i in first]
    return results[codes]
