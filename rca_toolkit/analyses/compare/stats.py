"""Before/after comparison of booking success, call duration and function latency.

Why: the seed report claimed "0 % before, ~100 % after" with no denominator and no per-path
split. This module compares two windows around a change with intervals and exact tests, and
refuses a verdict when the sample is too small.

Windows: ``before`` = [at - before, at - exclude), ``after`` = [at + exclude, at + after); the
``exclude`` guard band around the change drops attempts made while it rolled out.

Minimum samples (documented, used by every verdict):

* :data:`rca_toolkit.rules.bookings.MIN_ATTEMPTS` (10) attempts per side for a booking
  success-rate verdict, the one minimum every booking verdict uses (why 10: see there);
* ``MIN_N_SAMPLE = 20`` values per side for a duration/latency verdict.

Below that the verdict is ``not enough data`` whatever the p-value says. A path "still fails"
when it has at least ``MIN_ATTEMPTS`` attempts after the change and the upper Wilson bound of its
success rate is below 50 %; a fix is called *partial* when one group improved while another
still fails. Statistics come from scipy/statsmodels: Wilson intervals, Newcombe's interval for
the difference, Fisher's exact test, percentile bootstrap CIs (fixed seed), Mann-Whitney U and
the Hodges-Lehmann shift (median of pairwise differences), chi-square for the error mix (only
when Cochran's rule holds). Distributions are handled as histograms (:class:`Histogram`: value
-> count), so the same code serves raw samples and the database's ``GROUP BY value`` counts
(:mod:`rca_toolkit.sources.aggregates`); attempts as rows or as counts per side window. Durations from the session table and from Retell are never pooled
(P2); stuck sessions (P5), cleanup-closed calls (P20) and negative trace durations (P6) are
left out and counted.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from rca_toolkit.rules.bookings import MIN_ATTEMPTS
from rca_toolkit.rules.jsonutil import json_default
from rca_toolkit.errors import ConfigError, SchemaError
from rca_toolkit.rules.signatures import NO_ERROR_TEXT
from rca_toolkit.rules.timeutil import parse_duration, parse_instant, source_tz
from rca_toolkit.analyses import tables
from rca_toolkit.analyses.markdown import md_items, md_text

MIN_N_SAMPLE = 20
ALPHA = 0.05
STILL_FAILING_UPPER = 0.5
BOOTSTRAP_RESAMPLES = 999
BOOTSTRAP_SEED = 20251018
PERCENTILES = (50, 95, 99)
SHIFT_NOTE = ("shift (Hodges-Lehmann): the median of all after-minus-before differences between single values; "
              "it estimates how far the distribution moved and is not the difference of the two medians shown")
MAX_PAIRS = 2_000_000  # Hodges-Lehmann on a fixed-seed subsample beyond this many pairs


@dataclass
class Side:
    """One window of one metric: the estimate, its sample size and its interval."""

    value: float | None
    n: int
    ci: tuple[float, float] | None = None
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ci"] = list(self.ci) if self.ci is not None else None
        return out


@dataclass
class Metric:
    """Before vs after for one metric and group, with the test used and a verdict that states n."""

    name: str
    group: str
    unit: str
    better: str  # "higher" or "lower"
    before: Side
    after: Side
    difference: float | None
    difference_ci: tuple[float, float] | None
    p_value: float | None
    test: str
    verdict: str
    reason: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["before"], out["after"] = self.before.to_dict(), self.after.to_dict()
        out["difference_ci"] = list(self.difference_ci) if self.difference_ci is not None else None
        return out


def _f(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def rate_metric(name: str, group: str, before: tuple[int, int], after: tuple[int, int], *,
                min_n: int = MIN_ATTEMPTS, alpha: float = ALPHA) -> Metric:
    """Success rate: ``before``/``after`` are (successes, attempts)."""
    sides = []
    for k, n in (before, after):
        if n > 0:
            lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
            sides.append(Side(k / n, int(n), (float(lo), float(hi)), {"successes": int(k), "failures": int(n - k)}))
        else:
            sides.append(Side(None, 0, None, {"successes": 0, "failures": 0}))
    b, a = sides
    diff = diff_ci = p = None
    if b.n and a.n:
        diff = a.value - b.value
        lo, hi = confint_proportions_2indep(after[0], after[1], before[0], before[1], method="newcomb",
                                            compare="diff", alpha=alpha)
        diff_ci = (float(lo), float(hi))
        table = [[after[0], after[1] - after[0]], [before[0], before[1] - before[0]]]
        p = float(stats.fisher_exact(table).pvalue)
    verdict, reason = _verdict(b.n, a.n, min_n, p, diff_ci, diff, better="higher", alpha=alpha,
                               what=f"{_pct(b.value)} of {b.n:,} -> {_pct(a.value)} of {a.n:,}")
    return Metric(name, group, "share", "higher", b, a, _f(diff), diff_ci, p,
                  "Fisher exact (two-sided); Wilson intervals; Newcombe interval for the difference",
                  verdict, reason)


def distribution_metric(name: str, group: str, before, after, *, unit: str = "ms", better: str = "lower",
                        min_n: int = MIN_N_SAMPLE, alpha: float = ALPHA, notes: list[str] | None = None) -> Metric:
    """Durations/latencies: percentiles with bootstrap CIs, Mann-Whitney U, Hodges-Lehmann shift.

    ``before``/``after`` are samples (arrays) or :class:`Histogram` objects; both give the same
    numbers, since every statistic here depends only on the values and their counts.
    """
    x, y = Histogram.of(before), Histogram.of(after)
    b, a = _percentile_side(x, alpha), _percentile_side(y, alpha)
    shift = p = None
    if x.n and y.n:
        shift = hodges_lehmann(y, x)
        if x.n >= 2 and y.n >= 2:
            p = mann_whitney_p(y, x)
    verdict, reason = _verdict(b.n, a.n, min_n, p, None, shift, better=better, alpha=alpha,
                               what=f"median {_value(b.value, unit)} (n={b.n:,}) -> {_value(a.value, unit)} (n={a.n:,})")
    return Metric(name, group, unit, better, b, a, _f(shift), None, p,
                  "Mann-Whitney U (two-sided); Hodges-Lehmann shift; percentile bootstrap CIs "
                  f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})",
                  verdict, reason, list(notes or []))


def _clean(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float) if values is not None else np.array([], dtype=float)
    return arr[np.isfinite(arr)]


@dataclass(frozen=True)
class Histogram:
    """A sample as its distinct values (sorted) and their counts.

    Why: the database can count values (``GROUP BY value``) far cheaper than it can ship rows;
    percentiles, ranks, pairwise differences and bootstrap resamples need nothing else.
    """

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, sample) -> "Histogram":
        """From raw values (non-finite left out), or a Histogram as it is."""
        if isinstance(sample, Histogram):
            return sample
        values, counts = np.unique(_clean(sample), return_counts=True)
        return cls(values, counts.astype(np.int64))

    @classmethod
    def from_counts(cls, values, counts) -> "Histogram":
        """From value -> count pairs (duplicates summed; non-finite values and zero counts left out)."""
        values, counts = np.asarray(values, dtype=float), np.asarray(counts, dtype=np.int64)
        keep = np.isfinite(values) & (counts > 0)
        distinct, inverse = np.unique(values[keep], return_inverse=True)
        summed = np.zeros(len(distinct), dtype=np.int64)
        np.add.at(summed, inverse, counts[keep])
        return cls(distinct, summed)

    @classmethod
    def from_series(cls, series: pd.Series) -> "Histogram":
        """From a Series indexed by value with counts (what :mod:`rca_toolkit.sources.aggregates` returns)."""
        return cls.from_counts(series.index.to_numpy(dtype=float), series.to_numpy(dtype=np.int64))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def order_statistic(self, ranks) -> np.ndarray:
        """Values at 0-based positions of the sorted sample."""
        cum = np.cumsum(self.counts)
        return self.values[np.minimum(np.searchsorted(cum, np.asarray(ranks), side="right"), len(self.values) - 1)]

    def percentiles(self, qs) -> np.ndarray:
        """``np.percentile(sample, qs)`` (linear method) without building the sample."""
        lower, upper, gamma = _positions(self.n, qs)
        return _lerp(self.order_statistic(lower), self.order_statistic(upper), gamma)

    def sample(self) -> np.ndarray:
        return np.repeat(self.values, self.counts)

    def is_integral(self) -> bool:
        return bool(np.all(self.values == np.round(self.values)))


def _positions(n: int, qs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's linear-method virtual index split into (lower, upper, weight)."""
    q = np.asarray(qs, dtype=float) / 100
    virtual = n * q + (1 + q * (1 - 1 - 1)) - 1  # numpy's formula with alpha = beta = 1
    lower = np.clip(np.floor(virtual), 0, n - 1)
    upper = np.clip(lower + 1, 0, n - 1)
    return lower.astype(np.int64), upper.astype(np.int64), virtual - np.floor(virtual)


def _lerp(a, b, t):
    """numpy's ``_lerp`` (same rounding as ``np.percentile``)."""
    a, b, t = np.asarray(a, dtype=float), np.asarray(b, dtype=float), np.asarray(t, dtype=float)
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def _percentile_side(values, alpha: float) -> Side:
    hist = Histogram.of(values)
    n = hist.n
    if n == 0:
        return Side(None, 0, None, {f"p{q}": {"value": None, "ci": None} for q in PERCENTILES})
    point = hist.percentiles(PERCENTILES)
    cis = [None] * len(PERCENTILES)
    if n >= 2:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        cis = []
        for q in PERCENTILES:
            draws = bootstrap_percentile(hist, q, BOOTSTRAP_RESAMPLES, rng)
            lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
            cis.append((float(lo), float(hi)))
    detail = {f"p{q}": {"value": float(v), "ci": list(ci) if ci else None} for q, v, ci in zip(PERCENTILES, point, cis)}
    return Side(float(point[0]), n, cis[0], detail)


def bootstrap_percentile(hist: Histogram, q: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` draws of the ``q``-th percentile of a bootstrap resample (n values with replacement).

    Same distribution as resampling the values, at O(log bins) per draw: a resample is
    ``F_n^-1(U_i)`` for n uniforms, so its order statistics are ``F_n^-1`` of uniform order
    statistics, U_(k) ~ Beta(k, n-k+1) and U_(k+1) = U_(k) + (1-U_(k)) Beta(1, n-k); the
    percentile interpolates between those two (numpy's linear method).
    """
    n = hist.n
    lower, upper, gamma = (v.item() for v in _positions(n, [q]))
    k = lower + 1  # 1-based rank of the lower order statistic
    u_low = rng.beta(k, n - k + 1, size)
    x_low = hist.order_statistic(np.minimum(np.floor(n * u_low), n - 1))
    if upper == lower:
        return x_low
    u_up = u_low + (1 - u_low) * rng.beta(1, n - k, size)
    x_up = hist.order_statistic(np.minimum(np.floor(n * u_up), n - 1))
    return _lerp(x_low, x_up, gamma)


def mann_whitney_p(after, before) -> float:
    """Two-sided p of ``scipy.stats.mannwhitneyu(after, before)`` (method auto), from counts.

    scipy's asymptotic branch (tie-corrected normal approximation with continuity correction)
    computed from the histograms; the exact branch (both n <= 8 and no ties) runs scipy itself.
    """
    y, x = Histogram.of(after), Histogram.of(before)
    n1, n2 = y.n, x.n
    values = np.union1d(y.values, x.values)
    cy = np.zeros(len(values)); cy[np.searchsorted(values, y.values)] = y.counts
    cx = np.zeros(len(values)); cx[np.searchsorted(values, x.values)] = x.counts
    t = cy + cx
    if not (n1 > 8 and n2 > 8) and not (t > 1).any():
        return float(stats.mannwhitneyu(y.sample(), x.sample(), alternative="two-sided", method="auto").pvalue)
    midrank = np.cumsum(t) - t + (t + 1) / 2
    u1 = float(np.sum(cy * midrank)) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    n = n1 + n2
    s = np.sqrt(n1 * n2 / 12 * ((n + 1) - np.sum(t ** 3 - t) / (n * (n - 1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u - n1 * n2 / 2 - 0.5) / s
    return float(np.clip(2 * special.ndtr(-z), 0.0, 1.0))


def hodges_lehmann(after, before, *, seed: int = BOOTSTRAP_SEED) -> float:
    """Median of all pairwise differences after - before.

    Exact: by the outer difference up to ``MAX_PAIRS`` pairs, beyond that by searching the
    k-th smallest difference over the histograms when the values are integers (stored
    durations are); other large float samples fall back to a fixed-seed subsample of pairs.
    """
    y, x = Histogram.of(after), Histogram.of(before)
    pairs = y.n * x.n
    if pairs <= MAX_PAIRS:
        return float(np.median(np.subtract.outer(y.sample(), x.sample())))
    if y.is_integral() and x.is_integral():
        return (_kth_difference(y, x, (pairs - 1) // 2) + _kth_difference(y, x, pairs // 2)) / 2
    rng = np.random.default_rng(seed)
    return float(np.median(rng.choice(y.sample(), MAX_PAIRS) - rng.choice(x.sample(), MAX_PAIRS)))


def _kth_difference(y: Histogram, x: Histogram, k: int) -> float:
    """k-th smallest (0-based) of the y - x pair differences, integer values: bisection on the difference."""
    cum_x = np.concatenate([[0], np.cumsum(x.counts)])
    n_x = x.n

    def at_most(d: int) -> int:  # pairs with y - x <= d, i.e. x >= y - d
        first = np.searchsorted(x.values, y.values - d, side="left")
        return int(np.dot(y.counts, n_x - cum_x[first]))

    lo, hi = int(y.values[0] - x.values[-1]), int(y.values[-1] - x.values[0])
    while lo < hi:
        mid = (lo + hi) // 2
        if at_most(mid) >= k + 1:
            hi = mid
        else:
            lo = mid + 1
    return float(lo)


def _verdict(n_before: int, n_after: int, min_n: int, p, diff_ci, effect, *, better: str, alpha: float,
             what: str) -> tuple[str, str]:
    if min(n_before, n_after) < min_n:
        return "not enough data", f"{what}; needs at least {min_n} per side"
    if p is None:
        return "not enough data", f"{what}; no test possible"
    if p >= alpha:
        return "unchanged", f"{what}; no significant change ({tables.p_text(p)})"
    # the test sees a difference that the estimate does not: said so, never "no significant change (p=1e-12)"
    if diff_ci is not None and diff_ci[0] <= 0 <= diff_ci[1]:
        return "unchanged", f"{what}; {tables.p_text(p)}, but the {100 * (1 - alpha):g} % CI of the difference includes 0"
    if effect is None or effect == 0:
        return "unchanged", f"{what}; {tables.p_text(p)}, but the estimated change is 0"
    up = effect > 0
    good = up if better == "higher" else not up
    return ("improved" if good else "regressed"), f"{what}; {tables.p_text(p)}"


def _pct(value) -> str:
    return "n/a" if value is None else tables.percent(value)


def _value(value, unit: str) -> str:
    """A median in a reason: milliseconds read as seconds (``2.42 s``), other units as they are."""
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value / 1000:,.2f} s" if abs(value) < 10_000 else f"{value / 1000:,.1f} s"
    return f"{_num(value)} {unit}"


def _shown_unit(unit: str) -> str:
    """The unit a distribution is shown in: milliseconds as seconds, any other unit as it is."""
    return "s" if unit == "ms" else unit


def _num(value) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def chi_square_mix(table: np.ndarray) -> dict:
    """Chi-square test of a (signature x window) count table, only when Cochran's rule holds."""
    table = np.asarray(table, dtype=float)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0] if table.size else table
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < 2:
        return {"valid": False, "reason": "needs at least two signatures seen in both windows", "p_value": None}
    chi2, p, dof, expected = stats.chi2_contingency(table)
    small = float((expected < 5).mean())
    if (expected < 1).any() or small > 0.2:
        return {"valid": False, "p_value": None, "chi2": float(chi2), "dof": int(dof),
                "reason": f"expected counts too small ({tables.percent(small, 0)} of cells below 5): not a valid chi-square test"}
    return {"valid": True, "chi2": float(chi2), "dof": int(dof), "p_value": float(p), "reason": "Cochran's rule holds"}


# --------------------------------------------------------------------------- the comparison
@dataclass
class Comparison:
    """All metrics of one before/after comparison plus the plain-language summary."""

    at: pd.Timestamp
    windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    exclude: pd.Timedelta
    by: str | None
    metrics: list[Metric]
    signature_mix: pd.DataFrame
    signature_test: dict
    partial: dict
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    samples: dict = field(default_factory=dict, repr=False)
    lead: list[str] = field(default_factory=list)  # what the data cannot say, before any finding (an empty window)

    def metric(self, name: str, group: str = "all") -> Metric:
        for m in self.metrics:
            if m.name == name and m.group == group:
                return m
        raise KeyError(f"no metric {name!r} for group {group!r}")

    @property
    def summary(self) -> list[str]:
        """The sentences a reader must not miss (synthetic data, an empty window, a partial fix)."""
        lines = []
        if self.synthetic:
            lines.append("SYNTHETIC DEMO DATA: these numbers come from the generated demo world, not production.")
        lines.extend(self.lead)
        lines.extend(self.partial.get("sentences", []))
        return lines

    def to_dict(self) -> dict:
        return {
            "at": self.at.isoformat(),
            "at_local": self.at.tz_convert(source_tz()).isoformat(),
            "windows": {k: [a.isoformat(), b.isoformat()] for k, (a, b) in self.windows.items()},
            "exclude_seconds": self.exclude.total_seconds(),
            "by": self.by,
            "synthetic": self.synthetic,
            "minimum_n": {"rate": MIN_ATTEMPTS, "distribution": MIN_N_SAMPLE},
            "alpha": ALPHA,
            "summary": self.summary,
            "key_numbers": self.key_numbers(),
            "partial": {k: v for k, v in self.partial.items() if k != "sentences"},
            "metrics": [m.to_dict() for m in self.metrics],
            "signature_mix": {"table": self.signature_mix.to_dict(orient="records"), "test": self.signature_test},
            "notes": self.notes,
        }

    def empty_sides(self) -> list[str]:
        """The windows that hold no booking attempt and no call duration: nothing there can be compared."""
        measured = [m for m in self.metrics if m.group == "all" and m.name in ("booking_success_rate", "call_duration_session")]
        return [side for side in ("before", "after") if measured and all(getattr(m, side).n == 0 for m in measured)]

    def key_numbers(self) -> dict:
        """What the run index shows: booking success before -> after per group (path), as the comparison's table gives it."""
        return {m.group: f"{tables.percent(m.before.value)} -> {tables.percent(m.after.value)}"
                for m in self.metrics if m.name == "booking_success_rate"}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=json_default, ensure_ascii=False, **kwargs)

    def _tables(self) -> list[tuple[str, tables.Table]]:
        """Booking success (%) and durations/latencies (s) as two tables. Milliseconds are shown as seconds;
        a distribution in another unit is shown in its own: one unit of all rows in the headers, else in each value."""
        rates, dists = [], []
        units = {_shown_unit(m.unit) for m in self.metrics if m.unit != "share"} or {"s"}
        unit = units.pop() if len(units) == 1 else None
        for m in self.metrics:
            if m.unit == "share":
                k_b, k_a = m.before.detail.get("successes"), m.after.detail.get("successes")
                rates.append({
                    "group": m.group, "before": tables.share_of(k_b, m.before.n, unit=""),
                    "before CI": tables.percent_interval(*(m.before.ci or (None, None)), unit=""),
                    "after": tables.share_of(k_a, m.after.n, unit=""),
                    "after CI": tables.percent_interval(*(m.after.ci or (None, None)), unit=""),
                    "diff": None if m.difference is None else tables.signed_points(m.difference),
                    "diff CI": tables.signed_interval(*(m.difference_ci or (None, None)), fmt=tables.signed_points),
                    "p": m.p_value, "verdict": m.verdict})
                continue
            decimals = 2 if m.name == "function_latency" else 1
            s = (lambda v, d=decimals: tables.ms_as_seconds(v, d)) if m.unit == "ms" else tables.number
            own = "" if unit else _shown_unit(m.unit)  # rows of different units: each value says its own

            def u(text: str, own: str = own) -> str:
                return f"{text} {own}" if own and text != tables.MISSING else text

            dists.append({
                "metric": m.name if m.group == "all" else f"{m.name} {m.group}",
                "before": f"{u(s(m.before.value))} (n={m.before.n:,})",
                "before CI": tables.interval(*(m.before.ci or (None, None)), fmt=s, unit=own),
                "after": f"{u(s(m.after.value))} (n={m.after.n:,})",
                "after CI": tables.interval(*(m.after.ci or (None, None)), fmt=s, unit=own),
                "shift": None if m.difference is None else u(("+" if m.difference > 0 else "") + s(m.difference)),
                "p": m.p_value, "verdict": m.verdict})
        rate_cols = [tables.col("group", "path" if self.by == "path" else (self.by or "group")),
                     tables.col("before", "before (%)", numeric=True), tables.col("before CI", "95 % CI", numeric=True),
                     tables.col("after", "after (%)", numeric=True), tables.col("after CI", "95 % CI", numeric=True),
                     tables.col("diff", "change (pp)", numeric=True), tables.col("diff CI", "95 % CI", numeric=True),
                     tables.col("p", "p (Fisher)", tables.p_value, numeric=True), tables.col("verdict")]
        in_header = f" ({unit})" if unit else ""
        dist_cols = [tables.col("metric"),
                     tables.col("before", f"median before{in_header}", numeric=True), tables.col("before CI", "95 % CI", numeric=True),
                     tables.col("after", f"median after{in_header}", numeric=True), tables.col("after CI", "95 % CI", numeric=True),
                     tables.col("shift", f"shift (Hodges-Lehmann{unit and ', ' + unit or ''})", numeric=True),
                     tables.col("p", "p (Mann-Whitney)", tables.p_value, numeric=True), tables.col("verdict")]
        return [("Booking success", tables.Table(rates, rate_cols, empty="no booking attempts")),
                ("Call duration and function latency", tables.Table(dists, dist_cols, empty="no durations"))]

    def _header(self) -> list[str]:
        tz = source_tz()
        local = lambda ts: ts.tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S %z")  # noqa: E731
        (b0, b1), (a0, a1) = self.windows["before"], self.windows["after"]
        return [
            f"Before/after comparison at {local(self.at)} ({self.at.strftime('%Y-%m-%d %H:%M:%S')} UTC)",
            f"before: {local(b0)} -> {local(b1)}; after: {local(a0)} -> {local(a1)}; "
            f"{_human(self.exclude)} excluded on each side of the change",
        ]

    def _reading_notes(self) -> list[str]:
        return [SHIFT_NOTE] if any(m.unit != "share" for m in self.metrics) else []

    def to_text(self, width: int = tables.TEXT_WIDTH) -> str:
        lines = [tables.wrap_lines(self._header() + [""] + self.summary, width), ""]
        for title, table in self._tables():
            if len(table):
                lines += [f"{title}:", table.to_text(width), ""]
        lines.append("Error signatures of failed booking attempts (before -> after):")
        wide = max([4, *(len(f"{n:,}") for n in self.signature_mix[["before", "after"]].to_numpy().ravel())])
        for row in self.signature_mix.itertuples(index=False):
            lines.append(tables.wrap_lines([f"  {row.before:>{wide},} -> {row.after:<{wide},} {row.signature}"], width,
                                           hang=" " * (2 * wide + 7)))
        lines.append(tables.wrap_lines([f"  chi-square: {_mix_text(self.signature_test)}"], width, hang="    "))
        lines += ["", "Verdict reasons:"]
        lines += [tables.wrap_lines([f"  {m.name} [{m.group}]: {m.verdict}: {m.reason}" for m in self.metrics], width, hang="    ")]
        notes = self._reading_notes() + self.notes
        if notes:
            lines += ["", "Notes:", tables.wrap_lines([f"  - {n}" for n in notes], width, hang="    ")]
        return "\n".join(lines)

    def _mix(self) -> tables.Table:
        return tables.Table(self.signature_mix, [tables.col("signature", max_chars=90), tables.col("before", numeric=True),
                                                 tables.col("after", numeric=True)], empty="no failed attempt")

    def _markdown_body(self, heading: str) -> list[str]:
        """The tables, the signature mix and the notes, under ``heading`` (``###``, ``####``) titles."""
        parts = []
        for title, table in self._tables():
            if len(table):
                parts += [f"{heading} {title}", "", table.to_markdown(), ""]
        parts += [f"{heading} Error signatures of failed booking attempts", "", self._mix().to_markdown(), "",
                  f"Chi-square: {_mix_text(self.signature_test)}", ""]
        return parts + md_items(self._reading_notes() + self.notes)

    def to_markdown(self) -> str:
        """A document of its own: the comparison as its ``##`` heading, the summary in bold."""
        parts = ["## " + self._header()[0], "", self._header()[1], ""]
        return "\n".join(parts + [f"**{md_text(s)}**" for s in self.summary] + [""] + self._markdown_body("###"))

    def _repr_markdown_(self) -> str:  # a section of the Markdown report (runs.render), as the HTML is one of the page
        summary = tables.verdict_repeat_md([f"**{md_text(s)}**" for s in self.summary])  # the report's block says it
        return "\n".join([self._header()[0], "", self._header()[1], "", summary, ""] + self._markdown_body("####"))

    def _repr_html_(self) -> str:
        head = "".join(f"<p>{html.escape(h)}</p>" for h in self._header())
        summary = f'<div class="{tables.VERDICT_REPEAT}">' + "".join(
            f"<p><strong>{html.escape(s)}</strong></p>" for s in self.summary) + "</div>"  # the report's block says it
        body = "".join(f"<h4>{html.escape(title)}</h4>{table.to_html()}" for title, table in self._tables() if len(table))
        return (head + summary + body + "<h4>Error signatures of failed booking attempts</h4>" + self._mix().to_html()
                + f"<p>Chi-square: {html.escape(_mix_text(self.signature_test))}</p>"
                + tables.bullet_list(self._reading_notes() + self.notes))


def _mix_text(test: dict) -> str:
    return f"{tables.p_text(test['p_value'])} (chi2={test['chi2']:,.1f}, dof={test['dof']})" if test.get("valid") else test["reason"]


def _human(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def in_window(frame: pd.DataFrame, col: str, window) -> pd.DataFrame:
    """The rows whose ``col`` lies in ``[start, end)`` of ``window``."""
    start, end = window
    return frame[(frame[col] >= start) & (frame[col] < end)]


def _require(frame: pd.DataFrame, label: str, cols: list[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise SchemaError(f"{label} frame lacks columns {', '.join(missing)}",
                          hint=f"build it with rca_toolkit.{'outcomes.booking_attempts' if label == 'attempts' else 'loaders.' + label}")


ATTEMPT_GROUPS = ("path", "code_path", "family", "company_id", "function_name")


def attempt_counts_of(attempts: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """Attempt rows -> counts per ``column`` (if any), outcome and signature (the shape compare needs)."""
    keys = ([column] if column else []) + ["outcome", "signature"]
    sig = attempts["signature"] if "signature" in attempts else pd.Series(pd.NA, index=attempts.index, dtype="object")
    frame = attempts.assign(outcome=attempts["outcome"].astype(str),
                            signature=sig.astype("object").where(sig.notna(), NO_ERROR_TEXT).astype(str))
    counts = frame.groupby(keys, dropna=False, observed=True, sort=False).size().rename("attempts").reset_index()
    counts.attrs = dict(attempts.attrs)
    return counts


def comparison_windows(at, before="5d", after="5d", exclude="30m", *, prefix: str = "") -> tuple[pd.Timestamp, dict, pd.Timedelta]:
    """(at, {"before": (lo, hi), "after": (lo, hi)}, guard) in UTC; bad input is one ConfigError naming ``prefix + name``."""
    at_ts = parse_instant(at, name=f"{prefix}at")
    span_b, span_a = parse_duration(before, name=f"{prefix}before"), parse_duration(after, name=f"{prefix}after")
    guard = parse_duration(exclude, name=f"{prefix}exclude")
    if guard >= span_b or guard >= span_a:
        raise ConfigError(f"exclude={exclude!r} leaves nothing of before={before!r}/after={after!r}",
                          hint="make the excluded band shorter than both windows")
    return at_ts, {"before": (at_ts - span_b, at_ts - guard), "after": (at_ts + guard, at_ts + span_a)}, guard


def compare(attempts: pd.DataFrame | None = None, calls: pd.DataFrame | None = None, traces: pd.DataFrame | None = None, *,
            at, before="5d", after="5d", exclude="30m", by: str | None = None,
            counts: dict[str, pd.DataFrame] | None = None, histograms=None) -> Comparison:
    """Compare the windows before and after ``at`` (an ISO-8601 instant with a zone).

    Row path: ``attempts`` (``outcomes.booking_attempts``), ``calls`` and ``traces`` frames.
    Aggregated path: ``counts`` = ``{"before": …, "after": …}`` attempt counts per side window
    (``outcomes.attempt_counts`` shape: ``by`` or ``path``, ``outcome``, ``signature``,
    ``attempts``) and ``histograms`` (:class:`rca_toolkit.sources.aggregates.Histograms`) instead of
    calls and traces. Both give the same numbers.
    """
    at_ts, windows, guard = comparison_windows(at, before, after, exclude)
    if counts is None:
        if attempts is None:
            raise ConfigError("compare() needs attempts or counts", hint="pass outcomes.booking_attempts(...) as attempts")
        _require(attempts, "attempts", ["at", "outcome"])
        available = attempts.columns
    else:
        available = set(counts["before"].columns) & set(counts["after"].columns)
    if by is not None and by not in available:
        raise ConfigError(f"--by {by!r} is not a column of the booking attempts",
                          hint="use one of: " + ", ".join(c for c in ATTEMPT_GROUPS if c in available))
    column = by if by is not None else ("path" if "path" in available else None)
    if counts is None:
        counts = {k: attempt_counts_of(in_window(attempts, "at", w), column) for k, w in windows.items()}
        attrs = dict(attempts.attrs)
    else:
        attrs = _merged_attrs(counts)
    notes: list[str] = []
    metrics = [_rate(counts, "all", None)]
    group_metrics = []
    if column:
        values = sorted(set(counts["before"][column].dropna()) | set(counts["after"][column].dropna()), key=str)
        group_metrics = [_rate(counts, str(v), (column, v)) for v in values]
        if by is not None:
            metrics += group_metrics
    samples: dict = {}
    if histograms is not None:
        metrics += _histogram_metrics(histograms, notes, samples)
    else:
        if calls is not None:
            metrics += _duration_metrics(calls, windows, notes, samples)
        else:
            notes.append("call durations not compared (no calls frame given)")
        if traces is not None:
            metrics += _latency_metrics(traces, windows, notes, samples)
        else:
            notes.append("function latencies not compared (no traces frame given)")
    mix, mix_test = _signature_mix(counts)
    inferred = attrs.get("inferred_calcom_links")
    if inferred:
        notes.append(f"{int(inferred):,} attempts were matched to their Cal.com booking by company and time only (no id links "
                     "them); orphan and rescue counts rest on that inference")
    excluded = attrs.get("excluded_test_ids")
    if excluded:
        notes.append(f"{attrs.get('excluded_test_attempts', '?')} booking attempts of {excluded} "
                     "test/demo/temp call ids were excluded, over the whole loaded range (P4)")
    return Comparison(at_ts, windows, guard, by, metrics, mix, mix_test, _partial(group_metrics, column),
                      bool(attrs.get("synthetic", False)), notes, samples)


def _merged_attrs(counts: dict[str, pd.DataFrame]) -> dict:
    """attrs of the per-side counts: flags from either, exclusion/inference counts summed."""
    attrs: dict = {}
    for frame in counts.values():
        for key, value in frame.attrs.items():
            if key in ("excluded_test_ids", "excluded_test_attempts", "inferred_calcom_links") and isinstance(value, (int, np.integer)):
                attrs[key] = int(attrs.get(key, 0)) + int(value)
            elif key == "synthetic":
                attrs[key] = bool(attrs.get(key, False) or value)
            else:
                attrs.setdefault(key, value)
    return attrs


def _rate(counts: dict[str, pd.DataFrame], group: str, selector) -> Metric:
    pairs = []
    for key in ("before", "after"):
        frame = counts[key]
        if selector is not None:
            frame = frame[frame[selector[0]] == selector[1]]
        pairs.append((int(frame.loc[frame["outcome"].astype(str) == "success", "attempts"].sum()), int(frame["attempts"].sum())))
    return rate_metric("booking_success_rate", group, pairs[0], pairs[1])


DURATION_NOTE = ("{0} before / {1} after left out (stuck P5, closed by cleanup P20, or no duration); "
                 "session and Retell durations are separate sources (P2)")


def _duration_metrics(calls: pd.DataFrame, windows: dict, notes: list[str], samples: dict) -> list[Metric]:
    _require(calls, "calls", ["started_at", "duration_ms"])
    out = []
    for name, col in (("call_duration_session", "duration_ms"), ("call_duration_retell", "retell_duration_ms")):
        if col not in calls:
            notes.append(f"{name}: column {col} absent, not compared")
            continue
        values, dropped = [], []
        for key in ("before", "after"):
            frame = in_window(calls, "started_at", windows[key])
            keep = frame[col].notna()
            for flag in ("stuck", "closed_by_cleanup"):
                if flag in frame:
                    keep &= ~frame[flag].fillna(False).astype(bool)
            dropped.append(int((~keep).sum()))
            values.append(frame.loc[keep, col].astype(float).to_numpy())
        out.append(distribution_metric(name, "all", values[0], values[1], unit="ms", notes=[DURATION_NOTE.format(*dropped)]))
        samples[(name, "all")] = tuple(values)
    return out


def _latency_metrics(traces: pd.DataFrame, windows: dict, notes: list[str], samples: dict) -> list[Metric]:
    _require(traces, "function_traces", ["started_at", "family", "duration_ms"])
    parts = {k: in_window(traces, "started_at", w) for k, w in windows.items()}
    families = sorted(set(parts["before"]["family"].dropna().astype(str)) | set(parts["after"]["family"].dropna().astype(str)))
    out = []
    for fam in families:
        sides = [Histogram.of(parts[k].loc[parts[k]["family"].astype(str) == fam, "duration_ms"].astype(float))
                 for k in ("before", "after")]
        out.append(_latency_metric(fam, sides, samples))
    return out


def _latency_metric(family: str, sides: list[Histogram], samples: dict) -> Metric:
    """P6: negative durations left out and counted, zeros kept and counted."""
    kept, negatives, zeros = [], [], []
    for h in sides:
        negatives.append(int(h.counts[h.values < 0].sum()))
        zeros.append(int(h.counts[h.values == 0].sum()))
        kept.append(Histogram(h.values[h.values >= 0], h.counts[h.values >= 0]))
    note = f"negative durations left out (P6): {negatives[0]} before / {negatives[1]} after"
    if any(zeros):
        note += f"; zero durations kept but suspect after the P6 fix: {zeros[0]} / {zeros[1]}"
    samples[("function_latency", family)] = tuple(h.sample() for h in kept)
    return distribution_metric("function_latency", family, kept[0], kept[1], unit="ms", notes=[note])


def _histogram_metrics(histograms, notes: list[str], samples: dict) -> list[Metric]:
    """Duration and latency metrics from database histograms (:func:`rca_toolkit.sources.aggregates.fetch`)."""
    out = []
    notes.extend(histograms.notes)
    for name in ("call_duration_session", "call_duration_retell"):
        if name not in histograms.durations:
            continue
        sides = [Histogram.from_series(histograms.durations[name][k]) for k in ("before", "after")]
        out.append(distribution_metric(name, "all", sides[0], sides[1], unit="ms",
                                       notes=[DURATION_NOTE.format(*histograms.dropped[name])]))
        samples[(name, "all")] = tuple(h.sample() for h in sides)
    for fam in sorted(histograms.latencies):
        sides = [Histogram.from_series(histograms.latencies[fam][k]) for k in ("before", "after")]
        if sides[0].n or sides[1].n:
            out.append(_latency_metric(fam, sides, samples))
    return out


def _signature_mix(counts: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict]:
    per_side = {}
    for key in ("before", "after"):
        frame = counts[key]
        failed = frame[frame["outcome"].astype(str) != "success"]
        sig = failed["signature"].astype("object").where(failed["signature"].notna(), NO_ERROR_TEXT).astype(str)
        per_side[key] = failed["attempts"].groupby(sig.to_numpy()).sum().astype(int)
    mix = pd.concat(per_side, axis=1).fillna(0).astype(int)
    mix = mix.reindex(columns=["before", "after"], fill_value=0)
    mix = mix.rename_axis("signature").reset_index()
    mix = mix.sort_values(["before", "after", "signature"], ascending=[False, False, True], kind="stable").reset_index(drop=True)
    return mix, chi_square_mix(mix[["before", "after"]].to_numpy())


def _partial(group_metrics: list[Metric], column: str | None) -> dict:
    improved = [m for m in group_metrics if m.verdict == "improved"]
    failing = [m for m in group_metrics
               if m.after.n >= MIN_ATTEMPTS and m.after.ci is not None and m.after.ci[1] < STILL_FAILING_UPPER]
    sentences = []
    fails = "; ".join(f"{m.group} still fails ({_pct(m.after.value)} success of {m.after.n:,} attempts after the change, "
                      f"95 % CI {_pct(m.after.ci[0])}-{_pct(m.after.ci[1])})" for m in failing)
    recovered = "; ".join(f"{m.group} recovered ({_pct(m.before.value)} of {m.before.n:,} -> {_pct(m.after.value)} of "
                          f"{m.after.n:,})"
                          for m in improved)
    if improved and failing:
        sentences.append(f"The fix was partial: {fails}; while {recovered}.")
    elif failing:
        sentences.append(f"The change did not fix every {column}: {fails}.")
    elif improved:
        sentences.append(f"Every {column} with enough data recovered: {recovered}.")
    return {"column": column, "is_partial": bool(improved and failing), "still_failing": [m.group for m in failing],
            "improved": [m.group for m in improved], "sentences": sentences}
