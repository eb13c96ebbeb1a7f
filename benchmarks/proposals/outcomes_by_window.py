"""A measurement, not the product: do the attempts' outcomes depend on the window they are classified in?

Why it is here: storing each attempt's outcome once (classified over the whole history) and summing the stored rows
for any window would make compare and the health report cost a statement instead of a classification. That is
exact only where no attempt's outcome depends on its window, and the rules say it can (``benchmarks/FINDINGS.md``,
"Why the outcomes cannot simply be stored per day and summed"). This counts how often it does in a store's data:
every attempt of the history classified at once, against compare's two-month span and random windows of 1 h to 3
days starting at any second, column by column, and which traces are attempts at all.

    .venv/bin/python -m benchmarks.proposals.outcomes_by_window <store folder or database URL> [random windows] [seed]

A store folder is a benchmark store (``benchmarks.queries.store_folder``); a URL is read as ``rca`` reads it
(``sqlite:///data/demo.sqlite``: the demo world, whose injected incidents this measures too).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import queries
from rca_toolkit.analyses.bookings import outcomes
from rca_toolkit.sources import loaders, store

COMPARED = ["outcome", "rescued_by_webhook", "signature", "calcom_uid", "calcom_link", "appointment_id", "error_message",
            "code_path"]


def differing(window: pd.DataFrame, history: pd.DataFrame, start, end) -> dict[str, int]:
    """Per column, the window's attempts whose value differs from the same trace's in the history; and the attempts
    only one of the two has in the window's time (a trace that is an attempt in one and not in the other)."""
    both = window.merge(history, on="trace_id", how="left", suffixes=("", "_history"))
    inside = history[(history["at"] >= start) & (history["at"] < end)]
    out = {"only_window": int((~window["trace_id"].isin(inside["trace_id"])).sum()),
           "only_history": int((~inside["trace_id"].isin(window["trace_id"])).sum())}
    for col in COMPARED:
        mine, theirs = both[col].astype("object"), both[f"{col}_history"].astype("object")
        same = ((mine == theirs) | (mine.isna() & theirs.isna())).fillna(False)
        out[col] = int((~same).sum())
    return out


def main(where: str, windows: int = 12, seed: int = 7) -> None:
    engine = store.open_store(Path(where)) if Path(where).is_dir() else loaders.engine_for(where, cached=True)
    started = time.perf_counter()
    history = outcomes.booking_attempts(engine)
    print(f"history: {len(history):,} attempts classified in {time.perf_counter() - started:.1f} s")
    compared = queries.compare_windows()
    spans = [(compared.before[0], compared.after[1])]
    rng = np.random.default_rng(seed)
    first, last = history["at"].min(), history["at"].max()
    room = int((last - first).total_seconds()) - 3 * 86_400
    for _ in range(windows):
        start = first + pd.Timedelta(seconds=int(rng.integers(0, max(room, 1))))
        spans.append((start, start + pd.Timedelta(hours=int(rng.choice([1, 6, 24, 72])))))
    total = worst = 0
    for start, end in spans:
        window = outcomes.booking_attempts(engine, start=start, end=end)
        found = differing(window, history, start, end)
        total += len(window)
        worst = max(worst, max(found.values()))
        print(f"{start:%Y-%m-%d %H:%M:%S} UTC +{end - start}: {len(window):>7,} attempts, "
              f"differing {({k: v for k, v in found.items() if v}) or 'none'}")
    print(f"{total:,} attempts in {len(spans)} windows; the most differing in one column of one window: {worst}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
