"""When did booking success break and when did it recover? Change points per path.

Why: a before/after comparison needs a change time; the data can tell it. We segment the
booking outcome sequence with binary segmentation (:func:`binary_segmentation`, ``ruptures.Binseg``'s search) under a
binomial likelihood cost (-2 log L of the pooled rate in each segment) and a BIC-like penalty, on three
resolutions: every attempt (a Bernoulli sequence), hourly and daily bins (binomial counts; empty
bins are skipped, not treated as zeros). Each change is reported with an interval: from the
last attempt of the old regime to the first attempt of the new one (the true moment lies
between them, nothing finer is knowable from the attempts). Small wobbles are ignored: a change
must move the rate by at least ``MIN_EFFECT`` and leave ``MIN_SEGMENT`` samples on each side.
"""

from __future__ import annotations

import bisect
import heapq
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from rca_toolkit.analyses.markdown import md_items
from rca_toolkit.analyses import tables
from rca_toolkit.sources.deployments import rank_candidates
from rca_toolkit.errors import SchemaError
from rca_toolkit.rules.timeutil import source_tz

MIN_EFFECT = 0.3
MIN_SEGMENT = {"attempt": 4, "hour": 2, "day": 1}
PENALTY_FACTOR = 3.0  # x log(n): stricter than BIC, we want breaks, not noise
RESOLUTIONS = ("attempt", "hour", "day")
FOLD_WITHIN = pd.Timedelta(days=1)  # one change seen at several resolutions: shown once
# the changes a report lists, the largest; at 1M calls two months hold a thousand bursts of a few dozen failures
MAX_LISTED = 25


class CostBinomial:
    """-2 log-likelihood of (successes, trials) samples under one rate per segment, of many segments at once."""

    def __init__(self, signal):
        signal = np.asarray(signal, dtype=float).reshape(len(signal), -1)
        self._k = np.concatenate([[0.0], np.cumsum(signal[:, 0])])
        self._n = np.concatenate([[0.0], np.cumsum(signal[:, 1])])

    def errors(self, start, end) -> np.ndarray:
        """The cost of each ``[start, end)`` (arrays of positions, or one of them a single position)."""
        k = self._k[end] - self._k[start]
        n = self._n[end] - self._n[start]
        m = n - k
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 log 0 is NaN here, and set to 0 below
            hits, misses = k * np.log(k / n), m * np.log(m / n)
        hits[k <= 0], misses[m <= 0] = 0.0, 0.0  # in place: fewer passes than np.where (an empty segment: both 0)
        return -2.0 * (hits + misses)

    def error(self, start: int, end: int) -> float:
        return float(self.errors(np.array([start]), np.array([end]))[0])


def binary_segmentation(cost: CostBinomial, n: int, *, min_size: int, pen: float) -> list[int]:
    """The breakpoints (segment ends, ``n`` last) of ``ruptures.Binseg(jump=1).predict(pen=pen)`` under ``cost``: split
    the segment whose best split gains most while that gain exceeds ``pen``. Why not ruptures itself: it calls the
    cost once per candidate split in Python (a change-point search over 570k attempts took 79 s); here every split
    of a segment is costed at once, and each segment's best split is found once."""
    best: dict[tuple[int, int], tuple[int | None, float]] = {}

    def best_split(start: int, end: int) -> tuple[int | None, float]:
        if (start, end) not in best:
            splits = np.arange(start + min_size, end - min_size + 1)
            if not len(splits):
                best[(start, end)] = (None, 0)
            else:
                gains = cost.error(start, end) - cost.errors(start, splits) \
                    - cost.errors(splits, end)  # one end fixed: broadcast, not gathered
                top = np.flatnonzero(gains == gains.max())[-1]  # ruptures: max of (gain, split), the later split on a tie
                best[(start, end)] = (int(splits[top]), float(gains[top]))
        return best[(start, end)]

    # the segments by best gain (equal gains: the leftmost first, as max() over them in order gives it), so that a
    # search of a thousand splits does not look at every segment again for each (1M calls: 0.1 s of 1.2 s)
    bkps, heap = [n], [(-best_split(0, n)[1], 0, n)]
    while True:
        _, start, end = heapq.heappop(heap)
        split, gain = best_split(start, end)
        if split is None or not gain > pen:
            return bkps
        bisect.insort(bkps, split)
        for a, b in ((start, split), (split, end)):
            heapq.heappush(heap, (-best_split(a, b)[1], a, b))


@dataclass
class Change:
    """One regime change of one series."""

    series: str
    resolution: str
    interval: tuple[pd.Timestamp, pd.Timestamp]  # last attempt of the old regime, first of the new
    direction: str  # "broke" or "recovered"
    rate_before: float
    n_before: int
    rate_after: float
    n_after: int
    gain: float  # -2 log-likelihood improvement of the split
    candidates: list[dict] = field(default_factory=list)

    @property
    def at(self) -> pd.Timestamp:
        """Point estimate: the first attempt seen in the new regime."""
        return self.interval[1]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["interval"] = [t.isoformat() for t in self.interval]
        out["at"] = self.at.isoformat()
        return out


@dataclass
class ChangePoints:
    """All changes found plus the binned series they were found on (for plots)."""

    changes: list[Change]
    series: dict[tuple[str, str], pd.DataFrame]
    deployments: pd.DataFrame | None = None
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    def select(self, *, series: str | None = None, resolution: str | None = None, direction: str | None = None) -> list[Change]:
        return [c for c in self.changes if (series is None or c.series == series)
                and (resolution is None or c.resolution == resolution) and (direction is None or c.direction == direction)]

    def nearest(self, when, *, series: str | None = None, resolution: str | None = None) -> Change | None:
        when = pd.Timestamp(when).tz_convert("UTC")
        found = self.select(series=series, resolution=resolution)
        return min(found, key=lambda c: abs(c.at - when), default=None)

    def folded(self) -> list[tuple[Change, list[str]]]:
        """Each change once: a change of one series and direction found at several resolutions within
        ``FOLD_WITHIN`` of each other is one row, shown at the finest resolution that found it, with the
        resolutions that agree."""
        order = {r: i for i, r in enumerate(RESOLUTIONS)}
        groups: list[tuple[Change, list[str]]] = []
        # the groups of each series and direction in the order made, with their time in ns: at 1M calls a thousand
        # changes compared as Timestamps with every group took 0.65 s, and a report folds three times
        of_kind: dict[tuple[str, str], list[tuple[int, tuple[Change, list[str]]]]] = {}
        for c in sorted(self.changes, key=lambda c: (order.get(c.resolution, len(order)), c.at)):
            at, kind = c.at.value, of_kind.setdefault((c.series, c.direction), [])
            same = next((g for g_at, g in kind if abs(g_at - at) <= FOLD_WITHIN.value and c.resolution not in g[1]), None)
            if same is None:
                groups.append((c, [c.resolution]))
                kind.append((at, groups[-1]))
            else:
                same[1].append(c.resolution)
        series_order = list(dict.fromkeys(c.series for c in self.changes))
        return sorted(groups, key=lambda g: (series_order.index(g[0].series), g[0].at))

    def listed(self) -> list[tuple[Change, list[str]]]:
        """What a report lists: :meth:`folded`, or its ``MAX_LISTED`` largest changes (by the split's log-likelihood
        gain: an outage of thousands of attempts before a burst of thirty) in the same order."""
        folded = self.folded()
        if len(folded) <= MAX_LISTED:
            return folded
        largest = {id(change) for change, _ in sorted(folded, key=lambda g: -g[0].gain)[:MAX_LISTED]}
        return [g for g in folded if id(g[0]) in largest]

    def _display(self, shown: list[tuple[Change, list[str]]], all_resolutions: bool = False) -> tables.Table:
        """``shown`` (a change and the resolutions that found it) as a table; ``all_resolutions``: one column says
        the resolution of each row instead."""
        rows = []
        for c, found in shown:
            first = c.candidates[0] if c.candidates else None
            rows.append({
                "series": c.series, "resolution": c.resolution, "found at": ", ".join(found), "direction": c.direction,
                "between": tables.between(*c.interval),
                "rate before": tables.share_of(round(c.rate_before * c.n_before), c.n_before),
                "rate after": tables.share_of(round(c.rate_after * c.n_after), c.n_after),
                "top candidate": (f"{first['commit'][:10] or '(no commit)'} ({first['distance_hours']:+.1f} h"
                                  + ("" if first["before_change"] else ", AFTER the change: not a cause")
                                  + f") {first['description']}") if first else "none within 3 days",
            })
        columns = ["series", "resolution" if all_resolutions else "found at", "direction", "between", "rate before",
                   "rate after"]
        return tables.Table(rows, [tables.col(c, numeric=c.startswith("rate"), nowrap=c in ("between", "direction"))
                                   for c in columns] + [tables.col("top candidate", max_chars=110)],
                            empty="no change found")

    def table(self, *, all_resolutions: bool = False) -> pd.DataFrame:
        """One row per change (folded over the resolutions, see :meth:`folded`); ``all_resolutions=True``
        gives one row per change and resolution. Display strings, times in the report's zone."""
        shown = [(c, [c.resolution]) for c in self.changes] if all_resolutions else self.folded()
        return self._display(shown, all_resolutions).to_frame()

    def to_dict(self) -> dict:
        return {"synthetic": self.synthetic, "min_effect": MIN_EFFECT, "penalty": f"{PENALTY_FACTOR} x log(n)",
                "changes": [c.to_dict() for c in self.changes], "notes": self.notes}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, ensure_ascii=False, **kwargs)

    def _fold_note(self) -> str:
        folded, listed = len(self.folded()), len(self.listed())
        note = (f"{len(self.changes):,} changes over {len(RESOLUTIONS)} resolutions (every attempt, hourly, daily) shown "
                f"as {folded:,}: each at the finest resolution that found it")
        if listed < folded:
            return (f"{note}; listed here: the {listed} largest (by the log-likelihood gain of the split), the other "
                    f"{folded - listed:,} are in table() and the JSON, table(all_resolutions=True) has every one")
        return f"{note}; table(all_resolutions=True) lists every one"

    def _listed_table(self) -> tables.Table:
        return self._display(self.listed())

    def to_text(self, width: int = tables.TEXT_WIDTH) -> str:
        lines = ["SYNTHETIC DEMO DATA"] if self.synthetic else []
        lines.append(self._listed_table().to_text(width))
        return "\n".join(lines + [tables.wrap_lines([f"- {n}" for n in self.notes + [self._fold_note()]], width)])

    def to_markdown(self) -> str:
        prefix = ["**SYNTHETIC DEMO DATA**", ""] if self.synthetic else []
        return "\n".join(prefix + [self._listed_table().to_markdown(), ""]
                         + md_items(self.notes + [self._fold_note()]))

    def _repr_markdown_(self) -> str:  # what the Markdown report shows (runs.render)
        return self.to_markdown()

    def _repr_html_(self) -> str:
        head = "<p><strong>SYNTHETIC DEMO DATA</strong></p>" if self.synthetic else ""
        return head + self._listed_table().to_html() + tables.bullet_list(self.notes + [self._fold_note()])


def binned(attempts: pd.DataFrame, resolution: str, *, alpha: float = 0.05) -> pd.DataFrame:
    """Attempts per hour/day bin (UTC for hours, Berlin days for days) with rate and Wilson band."""
    at = attempts["at"]
    key = at.dt.floor("h") if resolution == "hour" else at.dt.tz_convert(source_tz()).dt.floor("D", ambiguous=True, nonexistent="shift_forward")
    grouped = attempts.assign(bin=key, ok=attempts["outcome"].eq("success")).groupby("bin", sort=True)
    out = grouped.agg(attempts=("ok", "size"), successes=("ok", "sum"), first=("at", "min"), last=("at", "max")).reset_index()
    out["rate"] = out["successes"] / out["attempts"]
    lo, hi = proportion_confint(out["successes"], out["attempts"], alpha=alpha, method="wilson")
    out["ci_low"], out["ci_high"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return out


def detect(attempts: pd.DataFrame, *, by: str | None = "path", deployments: pd.DataFrame | None = None,
           resolutions=("attempt", "hour", "day")) -> ChangePoints:
    """Change points of the booking success series, overall (``all``) and per ``by`` value."""
    missing = [c for c in ("at", "outcome") + ((by,) if by else ()) if c not in attempts.columns]
    if missing:
        raise SchemaError(f"attempts frame lacks columns {', '.join(missing)}",
                          hint="build it with rca_toolkit.analyses.bookings.outcomes.booking_attempts")
    frame = attempts.dropna(subset=["at"]).sort_values("at", kind="stable")
    groups = [("all", frame)]
    if by:
        groups += [(str(v), g) for v, g in frame.groupby(by, sort=True, observed=True)]
    changes, series = [], {}
    for name, group in groups:
        for res in resolutions:
            if res != "attempt":
                series[(name, res)] = binned(group, res)
            changes += _segment(name, res, group, series.get((name, res)), deployments)
    notes = [f"{len(frame):,} attempts; a change must move the success rate by at least {tables.percent(MIN_EFFECT, 0)}"]
    if deployments is None or deployments.empty:
        notes.append("no deployment list given: no candidate causes ranked")
    else:
        notes.append("candidates: deployments within 3 days, those before the change first, then by distance; the "
                     "migrations table records no applied-at time, so only migrations listed with a time are candidates")
    return ChangePoints(changes, series, deployments, bool(attempts.attrs.get("synthetic", False)), notes)


def _segment(name: str, resolution: str, attempts: pd.DataFrame, bins: pd.DataFrame | None, deployments) -> list[Change]:
    ok = attempts["outcome"].eq("success").to_numpy(dtype=float)
    times = attempts["at"].reset_index(drop=True)
    if resolution == "attempt":
        signal = np.column_stack([ok, np.ones_like(ok)])
    else:
        signal = bins[["successes", "attempts"]].to_numpy(dtype=float)
    n = len(signal)
    min_size = MIN_SEGMENT[resolution]
    if n < 2 * min_size:
        return []
    cost = CostBinomial(signal)
    bounds = [0] + binary_segmentation(cost, n, min_size=min_size, pen=PENALTY_FACTOR * np.log(max(signal[:, 1].sum(), 2)))
    out = []
    for left, split, right in zip(bounds[:-2], bounds[1:-1], bounds[2:]):
        k0, n0 = signal[left:split, 0].sum(), signal[left:split, 1].sum()
        k1, n1 = signal[split:right, 0].sum(), signal[split:right, 1].sum()
        r0, r1 = k0 / n0, k1 / n1
        if abs(r1 - r0) < MIN_EFFECT:
            continue
        gain = cost.error(left, right) - cost.error(left, split) - cost.error(split, right)
        if resolution == "attempt":
            interval = (times.iloc[split - 1], times.iloc[split])
        else:  # a bin can hold both regimes: place the split among the attempts of the two bins
            interval = _refine(ok, times, bins["first"].iloc[split - 1], bins["last"].iloc[split])
        interval = (pd.Timestamp(interval[0]), pd.Timestamp(interval[1]))
        direction = "recovered" if r1 > r0 else "broke"
        if out and out[-1].interval == interval and out[-1].direction == direction:
            # a mixed bin split twice: one change, from the first regime to the last
            out[-1].rate_after, out[-1].n_after, out[-1].gain = float(r1), int(n1), out[-1].gain + float(gain)
            continue
        mid = interval[0] + (interval[1] - interval[0]) / 2
        out.append(Change(name, resolution, interval, direction, float(r0), int(n0),
                          float(r1), int(n1), float(gain),
                          rank_candidates(deployments, mid, first_new=interval[1]) if deployments is not None else []))
    return out


def _refine(ok: np.ndarray, times: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Best single split (binomial likelihood) among the attempts from ``lo`` to ``hi``."""
    idx = np.flatnonzero(((times >= lo) & (times <= hi)).to_numpy())
    if len(idx) < 2:
        return lo, hi
    cost = CostBinomial(np.column_stack([ok[idx], np.ones(len(idx))]))
    splits = np.arange(1, len(idx))
    costs = cost.errors(np.zeros(len(splits), dtype=int), splits) + cost.errors(splits, np.full(len(splits), len(idx)))
    j = int(np.argmin(costs)) + 1
    return times.iloc[idx[j - 1]], times.iloc[idx[j]]
