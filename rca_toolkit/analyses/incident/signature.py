"""Which error texts belong to the incident: the ``--signature`` given as a substring or a signature.

Why one rule: the attempts, the error rows and the claims must agree on what "carrying the
signature" means. A text carries it when its normalised signature
(:func:`rca_toolkit.rules.signatures.signatures`) equals the normalised query, or when the query
occurs (case-insensitively) in the raw text or in its signature. So ``Unknown column 'created_by'``,
the full MariaDB message and ``[1054] Unknown column 'created_by' in 'field list'`` all select the
same 1054 rows; a whole Laravel log line pasted (``[2025-10-13 11:22:35] production.ERROR: SQLSTATE...``) is read
as its message, which is what the error rows store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.signatures import shapes, signature_of
from rca_toolkit.sources.formats.laravel_log import HEADER as LOG_HEADER


@dataclass(frozen=True)
class SignatureQuery:
    """The user's text and its normalised form."""

    text: str
    normalised: str | None
    pasted: str | None = None  # the log line given, when its message is the query
    # each text shape judged (its call ids renumbered) -> carries it: one incident asks of the same texts several times
    judged: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, text: str | None) -> "SignatureQuery":
        clean = (text or "").strip()
        if not clean:
            raise ConfigError("--signature is empty", hint="give an error text or signature, e.g. \"Unknown column 'created_by'\"")
        line = LOG_HEADER.match(clean)  # a pasted Laravel log line: the stored errors carry its message, not its head
        message = line.group("rest").strip() if line else ""
        if message:
            return cls(message, signature_of(message), pasted=clean)
        return cls(clean, signature_of(clean))

    def matches(self, messages: pd.Series) -> np.ndarray:
        """Boolean mask: which messages carry the signature (missing messages never do); each distinct text is judged
        once, in Arrow where it can be (at 1M calls a million distinct texts)."""
        if messages.empty:
            return np.zeros(0, dtype=bool)
        if isinstance(messages.dtype, pd.StringDtype):  # texts: handed to Arrow in C (the store's: no copy at all)
            values = pa.array(messages.array)
            if isinstance(values, pa.ChunkedArray):  # the store's text as DuckDB streamed it out, in chunks
                values = values.combine_chunks()
        else:
            values = pa.array([v if v is None or isinstance(v, str) else str(v)
                               for v in messages.astype("object").where(messages.notna(), None)], type=pa.large_string())
        encoded = values.cast(pa.large_string()).dictionary_encode()
        hit = np.append(self._carries(encoded.dictionary), False)  # the last slot answers a missing message
        return hit[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)]

    def _carries(self, texts: pa.Array) -> np.ndarray:
        """The rule, per distinct text: the query in the raw text (case-insensitively), else in its signature, or the
        signature is the query's. Raw texts are searched in Arrow where the text is ASCII (casefolding is then lower
        case, which Arrow's ``ignore_case`` is; a query outside ASCII is in no ASCII text), the others one by one; the
        signatures are parsed once per text shape (:func:`rca_toolkit.rules.signatures.shapes`) and remembered."""
        needle = self.text.casefold()
        ascii_ = pc.string_is_ascii(texts).to_numpy(zero_copy_only=False)
        raw = np.zeros(len(texts), dtype=bool)
        if needle.isascii():
            raw = pc.match_substring(texts, needle, ignore_case=True).to_numpy(zero_copy_only=False) & ascii_
        for i in np.flatnonzero(~ascii_):
            raw[i] = needle in texts[i].as_py().casefold()
        rest = np.flatnonzero(~raw)
        keys, key_of = shapes(texts.take(pa.array(rest)))
        for key in keys:
            if key not in self.judged:
                sig = signature_of(key) or ""
                self.judged[key] = needle in sig.casefold() or (self.normalised is not None and sig == self.normalised)
        raw[rest] = np.array([self.judged[k] for k in keys] + [False], dtype=bool)[key_of]
        return raw


__all__ = ["SignatureQuery"]
