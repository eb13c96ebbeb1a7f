"""Booking attempts counted per path, outcome, rescue and signature, from the classified attempt rows.

Why a module of its own: counts are what reports need, and one implementation gives them everywhere:
the lean inputs (:mod:`rca_toolkit.sources.attempt_inputs`) classified row by row (:mod:`outcomes`), then
grouped. On MariaDB they are read from the local store (:mod:`rca_toolkit.sources.store`), not the server.
"""

from __future__ import annotations

import logging

import pandas as pd

from rca_toolkit.analyses.bookings.outcomes import BY_COLUMNS, attempts_of, count_attempts
from rca_toolkit.errors import ConfigError
from rca_toolkit.sources import attempt_inputs, loaders, requirements

log = logging.getLogger(__name__)
REQUIRES = {"attempt_counts": attempt_inputs.REQUIRES["load"]}  # what the outcomes need


def attempt_counts(db=None, *, start=None, end=None, company_id=None, freq: str | None = None, bins=None,
                   by=(), first_at: bool = False, when_fetched=None) -> pd.DataFrame:
    """Attempts counted per path, outcome, rescue flag and error signature (and ``period``).

    Why: reports need counts, not 100k attempt rows. The counts are exactly those of
    :func:`rca_toolkit.analyses.bookings.outcomes.booking_attempts` over the same window (the contract the tests check); ``attrs``
    carries its exclusion and inference counts. The inputs are read lean
    (:func:`rca_toolkit.sources.attempt_inputs.load`): no error context, JSON only where it can hold a link.

    ``freq`` ("1h", "1D", ...) adds ``period``, the UTC floor of the attempt time; ``bins``
    (increasing instants, e.g. Berlin midnights) adds ``period`` = the left edge of the bin the
    attempt falls in (attempts outside the edges are not counted). ``by`` adds keys from
    ``BY_COLUMNS``; ``code_path`` needs the error context and so reads it. ``first_at`` adds the
    earliest attempt time of each group (reports order ties by first occurrence).

    ``when_fetched`` (no arguments) is called once the inputs are read, before they are classified: a
    caller can start database work of its own beside that Python work (``rca compare`` its histograms).
    """
    extra = [by] if isinstance(by, str) else list(by)
    unknown = [k for k in extra if k not in BY_COLUMNS]
    if unknown:
        raise ConfigError(f"by={unknown[0]!r} is not a column attempts can be counted by", hint=f"use one of {', '.join(BY_COLUMNS)}")
    engine = loaders.engine_for(db, cached=True)
    requirements.check(engine, *REQUIRES["attempt_counts"])  # before the first statement
    inputs = attempt_inputs.load(engine, start=start, end=end, company_id=company_id, lean="code_path" not in extra)
    if when_fetched is not None:
        when_fetched()
    attempts = attempts_of(inputs)
    log.info("booking counts %s: %d attempts classified row by row", _span(start, end), len(attempts))
    return count_attempts(attempts, freq=freq, bins=bins, by=extra, first_at=first_at)


def _span(start, end) -> str:
    """The window for a log line, one word per bound."""
    return " to ".join("open" if x is None else str(x).replace(" ", "T") for x in (start, end))
