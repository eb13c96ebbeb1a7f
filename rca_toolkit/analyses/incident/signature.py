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

from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.signatures import signature_keys, signature_of
from rca_toolkit.sources.formats.laravel_log import HEADER as LOG_HEADER


@dataclass(frozen=True)
class SignatureQuery:
    """The user's text and its normalised form."""

    text: str
    normalised: str | None
    pasted: str | None = None  # the log line given, when its message is the query
    # text -> carries it, for every text judged: one incident asks of the same texts several times (the impact, the
    # onset, the claims), each time a million distinct texts at 1M calls
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
        """Boolean mask: which messages carry the signature (missing messages never do)."""
        if messages.empty:
            return np.zeros(0, dtype=bool)
        codes, distinct = pd.factorize(messages.astype("object"), use_na_sentinel=True)
        if not len(distinct):
            return np.zeros(len(messages), dtype=bool)
        texts = [str(t) for t in distinct]
        needle = self.text.casefold()
        for text in texts:  # the query in the raw text: no parse needed
            if text not in self.judged and needle in text.casefold():
                self.judged[text] = True
        unparsed = pd.Series([t for t in texts if t not in self.judged], dtype="object")
        if len(unparsed):
            sigs = signature_keys(unparsed).astype("object").fillna("")
            self.judged.update((t, needle in s.casefold() or (self.normalised is not None and s == self.normalised))
                               for t, s in zip(unparsed, sigs))
        hit = np.array([self.judged[t] for t in texts], dtype=bool)
        return np.where(codes < 0, False, hit[np.maximum(codes, 0)])


__all__ = ["SignatureQuery"]
