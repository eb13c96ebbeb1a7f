"""Before/after comparison of booking success, call duration and function latency.

Why: the seed report claimed "0 % before, ~100 % after" with no denominator and no per-path
split. This module compares two windows around a change with intervals and exact tests, and
refuses a verdict when the sample is too small.

Windows: ``before`` = [at - before, at - exclude), ``after`` = [at + exclude, at + after); the
``exclude`` guard band around the change drops attempts made while it rolled out.

Minimum samples (documented, used by every verdict):

* ``MIN_N_RATE = 10`` attempts per side for a success-rate verdict;
* ``MIN_N_SAMPLE = 20`` values per side for a duration/latency verdict.

Below that the verdict is ``not enough data`` whatever the p-value says. A path "still fails"
when it has at least ``MIN_N_RATE`` attempts after the change and the upper Wilson bound of its
success rate is below 50 %; a fix is called *partial* when one group improved while another
still fails. Statistics come from scipy/statsmodels: Wilson intervals, Newcombe's interval for
the difference, Fisher's exact test, percentile bootstrap CIs (fixed seed), Mann-Whitney U and
the Hodges-Lehmann shift (median of pairwise differences), chi-square for the error mix (only
when Cochran's rule holds). Durations from the session table and from Retell are never pooled
(P2); stuck sessions (P5), cleanup-closed calls (P20) and negative trace durations (P6) are
left out and counted.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from .jsonutil import json_default
from .errors import ConfigError, SchemaError
from .timeutil import parse_duration, parse_instant

MIN_N_RATE = 10
MIN_N_SAMPLE = 20
ALPHA = 0.05
STILL_FAILING_UPPER = 0.5
BOOTSTRAP_RESAMPLES = 999
BOOTSTRAP_SEED = 20251018
PERCENTILES = (50, 95, 99)
MAX_PAIRS = 2_000_000  # Hodges-Lehmann on a fixed-seed subsample beyond this many pairs
VERDICTS = ("improved", "regressed", "unchanged", "not enough data")
DISPLAY_TZ = "Europe/Berlin"


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
                min_n: int = MIN_N_RATE, alpha: float = ALPHA) -> Metric:
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
                               what=f"{_pct(b.value)} of {b.n} -> {_pct(a.value)} of {a.n}")
    return Metric(name, group, "share", "higher", b, a, _f(diff), diff_ci, p,
                  "Fisher exact (two-sided); Wilson intervals; Newcombe interval for the difference",
                  verdict, reason)


def distribution_metric(name: str, group: str, before, after, *, unit: str = "ms", better: str = "lower",
                        min_n: int = MIN_N_SAMPLE, alpha: float = ALPHA, notes: list[str] | None = None) -> Metric:
    """Durations/latencies: percentiles with bootstrap CIs, Mann-Whitney U, Hodges-Lehmann shift."""
    x = _clean(before)
    y = _clean(after)
    b, a = _percentile_side(x, alpha), _percentile_side(y, alpha)
    shift = p = None
    if len(x) and len(y):
        shift = hodges_lehmann(y, x)
        if len(x) >= 2 and len(y) >= 2:
            result = stats.mannwhitneyu(y, x, alternative="two-sided", method="auto")
            p = float(result.pvalue)
    verdict, reason = _verdict(b.n, a.n, min_n, p, None, shift, better=better, alpha=alpha,
                               what=f"median {_num(b.value)} (n={b.n}) -> {_num(a.value)} (n={a.n}) {unit}")
    return Metric(name, group, unit, better, b, a, _f(shift), None, p,
                  "Mann-Whitney U (two-sided); Hodges-Lehmann shift; percentile bootstrap CIs "
                  f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})",
                  verdict, reason, list(notes or []))


def _clean(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float) if values is not None else np.array([], dtype=float)
    return arr[np.isfinite(arr)]


def _percentile_side(values: np.ndarray, alpha: float) -> Side:
    n = len(values)
    if n == 0:
        return Side(None, 0, None, {f"p{q}": {"value": None, "ci": None} for q in PERCENTILES})
    point = np.percentile(values, PERCENTILES)
    cis = [None] * len(PERCENTILES)
    if n >= 2:
        res = stats.bootstrap((values,), _percentiles, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                              confidence_level=1 - alpha, rng=np.random.default_rng(BOOTSTRAP_SEED),
                              vectorized=True, batch=max(1, min(BOOTSTRAP_RESAMPLES, 20_000_000 // max(n, 1))))
        cis = [(float(lo), float(hi)) for lo, hi in zip(res.confidence_interval.low, res.confidence_interval.high)]
    detail = {f"p{q}": {"value": float(v), "ci": list(ci) if ci else None} for q, v, ci in zip(PERCENTILES, point, cis)}
    return Side(float(point[0]), n, cis[0], detail)


def _percentiles(sample, axis=-1):
    return np.percentile(sample, PERCENTILES, axis=axis)


def hodges_lehmann(after: np.ndarray, before: np.ndarray, *, seed: int = BOOTSTRAP_SEED) -> float:
    """Median of all pairwise differences after - before (a fixed-seed subsample when huge)."""
    x, y = _clean(before), _clean(after)
    if len(x) * len(y) > MAX_PAIRS:
        rng = np.random.default_rng(seed)
        size = MAX_PAIRS
        return float(np.median(rng.choice(y, size) - rng.choice(x, size)))
    return float(np.median(np.subtract.outer(y, x)))


def _verdict(n_before: int, n_after: int, min_n: int, p, diff_ci, effect, *, better: str, alpha: float,
             what: str) -> tuple[str, str]:
    if min(n_before, n_after) < min_n:
        return "not enough data", f"{what}; needs at least {min_n} per side"
    if p is None:
        return "not enough data", f"{what}; no test possible"
    significant = p < alpha and (diff_ci is None or diff_ci[0] > 0 or diff_ci[1] < 0)
    if not significant or effect is None or effect == 0:
        return "unchanged", f"{what}; no significant change (p={p:.3g})"
    up = effect > 0
    good = up if better == "higher" else not up
    return ("improved" if good else "regressed"), f"{what}; p={p:.3g}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _pp(value) -> str:
    return f"{100 * value:+.1f} pp"


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
                "reason": f"expected counts too small ({small:.0%} of cells below 5): not a valid chi-square test"}
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

    def metric(self, name: str, group: str = "all") -> Metric:
        for m in self.metrics:
            if m.name == name and m.group == group:
                return m
        raise KeyError(f"no metric {name!r} for group {group!r}")

    @property
    def summary(self) -> list[str]:
        """The sentences a reader must not miss (partial fix, synthetic data)."""
        lines = []
        if self.synthetic:
            lines.append("SYNTHETIC DEMO DATA: these numbers come from the generated demo world, not production.")
        lines.extend(self.partial.get("sentences", []))
        return lines

    def to_dict(self) -> dict:
        return {
            "at": self.at.isoformat(),
            "at_local": self.at.tz_convert(DISPLAY_TZ).isoformat(),
            "windows": {k: [a.isoformat(), b.isoformat()] for k, (a, b) in self.windows.items()},
            "exclude_seconds": self.exclude.total_seconds(),
            "by": self.by,
            "synthetic": self.synthetic,
            "minimum_n": {"rate": MIN_N_RATE, "distribution": MIN_N_SAMPLE},
            "alpha": ALPHA,
            "summary": self.summary,
            "partial": {k: v for k, v in self.partial.items() if k != "sentences"},
            "metrics": [m.to_dict() for m in self.metrics],
            "signature_mix": {"table": self.signature_mix.to_dict(orient="records"), "test": self.signature_test},
            "notes": self.notes,
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=json_default, ensure_ascii=False, **kwargs)

    def table(self) -> pd.DataFrame:
        """One display row per metric."""
        rows = []
        for m in self.metrics:
            fmt = _pct if m.unit == "share" else _num
            dfmt = _pp if m.unit == "share" else (lambda v: f"{v:+,.0f}")
            diff = dfmt(m.difference) if m.difference is not None else "n/a"
            if m.difference_ci:
                diff += f" [{dfmt(m.difference_ci[0])}, {dfmt(m.difference_ci[1])}]"
            rows.append({
                "metric": m.name, "group": m.group,
                "before": f"{fmt(m.before.value)} (n={m.before.n})" + _ci_text(m.before.ci, fmt),
                "after": f"{fmt(m.after.value)} (n={m.after.n})" + _ci_text(m.after.ci, fmt),
                "difference": diff, "p": "n/a" if m.p_value is None else f"{m.p_value:.3g}", "verdict": m.verdict,
            })
        return pd.DataFrame(rows, columns=["metric", "group", "before", "after", "difference", "p", "verdict"])

    def _header(self) -> list[str]:
        local = lambda ts: ts.tz_convert(DISPLAY_TZ).strftime("%Y-%m-%d %H:%M:%S %z")  # noqa: E731
        (b0, b1), (a0, a1) = self.windows["before"], self.windows["after"]
        return [
            f"Before/after comparison at {local(self.at)} ({self.at.strftime('%Y-%m-%d %H:%M:%S')} UTC)",
            f"before: {local(b0)} -> {local(b1)}; after: {local(a0)} -> {local(a1)}; "
            f"{_human(self.exclude)} excluded on each side of the change",
        ]

    def to_text(self) -> str:
        lines = self._header() + [""] + self.summary + [""]
        lines.append(self.table().to_string(index=False))
        lines += ["", "Error signatures of failed booking attempts (before -> after):"]
        for row in self.signature_mix.itertuples(index=False):
            lines.append(f"  {row.before:>4} -> {row.after:<4} {row.signature}")
        lines.append(f"  chi-square: {_mix_text(self.signature_test)}")
        lines += ["", "Verdict reasons:"] + [f"  {m.name} [{m.group}]: {m.verdict}: {m.reason}" for m in self.metrics]
        if self.notes:
            lines += ["", "Notes:"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        parts = ["## " + self._header()[0], "", self._header()[1], ""]
        parts += [f"**{s}**" for s in self.summary] + [""]
        parts.append(_md_table(self.table()))
        parts += ["", "### Error signatures of failed booking attempts", "", _md_table(self.signature_mix), "",
                  f"Chi-square: {_mix_text(self.signature_test)}", ""]
        parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        head = "".join(f"<p>{html.escape(h)}</p>" for h in self._header())
        summary = "".join(f"<p><strong>{html.escape(s)}</strong></p>" for s in self.summary)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (head + summary + self.table().to_html(index=False, escape=True)
                + "<h4>Error signatures of failed booking attempts</h4>"
                + self.signature_mix.to_html(index=False, escape=True)
                + f"<p>Chi-square: {html.escape(_mix_text(self.signature_test))}</p>" + (f"<ul>{notes}</ul>" if notes else ""))


def _ci_text(ci, fmt) -> str:
    return "" if ci is None else f" [{fmt(ci[0])}, {fmt(ci[1])}]"


def _mix_text(test: dict) -> str:
    return f"p={test['p_value']:.3g} (chi2={test['chi2']:.1f}, dof={test['dof']})" if test.get("valid") else test["reason"]


def _human(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _md_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join(rows)


def _in(frame: pd.DataFrame, col: str, window) -> pd.DataFrame:
    start, end = window
    return frame[(frame[col] >= start) & (frame[col] < end)]


def _require(frame: pd.DataFrame, label: str, cols: list[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise SchemaError(f"{label} frame lacks columns {', '.join(missing)}",
                          hint=f"build it with rca_toolkit.{'outcomes.booking_attempts' if label == 'attempts' else 'loaders.' + label}")


def compare(attempts: pd.DataFrame, calls: pd.DataFrame | None = None, traces: pd.DataFrame | None = None, *,
            at, before="5d", after="5d", exclude="30m", by: str | None = None) -> Comparison:
    """Compare the windows before and after ``at`` (an ISO-8601 instant with a zone)."""
    at_ts = parse_instant(at, name="at")
    span_b, span_a = parse_duration(before, name="before"), parse_duration(after, name="after")
    guard = parse_duration(exclude, name="exclude")
    if guard >= span_b or guard >= span_a:
        raise ConfigError(f"exclude={exclude!r} leaves nothing of before={before!r}/after={after!r}",
                          hint="make the excluded band shorter than both windows")
    _require(attempts, "attempts", ["at", "outcome"])
    if by is not None and by not in attempts.columns:
        raise ConfigError(f"--by {by!r} is not a column of the booking attempts",
                          hint="use one of: " + ", ".join(c for c in ("path", "code_path", "family", "company_id", "function_name") if c in attempts))
    windows = {"before": (at_ts - span_b, at_ts - guard), "after": (at_ts + guard, at_ts + span_a)}
    parts = {k: _in(attempts, "at", w) for k, w in windows.items()}
    notes: list[str] = []
    metrics = [_rate(parts, "all", None)]
    groups_for_partial = by if by is not None else ("path" if "path" in attempts else None)
    group_metrics = []
    if groups_for_partial:
        values = sorted(set(parts["before"][groups_for_partial].dropna()) | set(parts["after"][groups_for_partial].dropna()), key=str)
        group_metrics = [_rate(parts, str(v), (groups_for_partial, v)) for v in values]
        if by is not None:
            metrics += group_metrics
    samples: dict = {}
    if calls is not None:
        metrics += _duration_metrics(calls, windows, notes, samples)
    else:
        notes.append("call durations not compared (no calls frame given)")
    if traces is not None:
        metrics += _latency_metrics(traces, windows, notes, samples)
    else:
        notes.append("function latencies not compared (no traces frame given)")
    mix, mix_test = _signature_mix(parts)
    inferred = attempts.attrs.get("inferred_calcom_links")
    if inferred:
        notes.append(f"{inferred} attempts were matched to their Cal.com booking by company and time only (no id links "
                     "them); orphan and rescue counts rest on that inference")
    excluded = attempts.attrs.get("excluded_test_ids")
    if excluded:
        notes.append(f"{attempts.attrs.get('excluded_test_attempts', '?')} booking attempts of {excluded} "
                     "test/demo/temp call ids were excluded, over the whole loaded range (P4)")
    return Comparison(at_ts, windows, guard, by, metrics, mix, mix_test, _partial(group_metrics, groups_for_partial),
                      bool(attempts.attrs.get("synthetic", False)), notes, samples)


def _rate(parts: dict, group: str, selector) -> Metric:
    counts = []
    for key in ("before", "after"):
        frame = parts[key]
        if selector is not None:
            frame = frame[frame[selector[0]] == selector[1]]
        counts.append((int((frame["outcome"] == "success").sum()), len(frame)))
    return rate_metric("booking_success_rate", group, counts[0], counts[1])


def _duration_metrics(calls: pd.DataFrame, windows: dict, notes: list[str], samples: dict) -> list[Metric]:
    _require(calls, "calls", ["started_at", "duration_ms"])
    out = []
    for name, col in (("call_duration_session", "duration_ms"), ("call_duration_retell", "retell_duration_ms")):
        if col not in calls:
            notes.append(f"{name}: column {col} absent, not compared")
            continue
        values, dropped = [], []
        for key in ("before", "after"):
            frame = _in(calls, "started_at", windows[key])
            keep = frame[col].notna()
            for flag in ("stuck", "closed_by_cleanup"):
                if flag in frame:
                    keep &= ~frame[flag].fillna(False).astype(bool)
            dropped.append(int((~keep).sum()))
            values.append(frame.loc[keep, col].astype(float).to_numpy())
        note = (f"{dropped[0]} before / {dropped[1]} after left out (stuck P5, closed by cleanup P20, or no duration); "
                "session and Retell durations are separate sources (P2)")
        out.append(distribution_metric(name, "all", values[0], values[1], unit="ms", notes=[note]))
        samples[(name, "all")] = tuple(values)
    return out


def _latency_metrics(traces: pd.DataFrame, windows: dict, notes: list[str], samples: dict) -> list[Metric]:
    _require(traces, "function_traces", ["started_at", "family", "duration_ms"])
    parts = {k: _in(traces, "started_at", w) for k, w in windows.items()}
    families = sorted(set(parts["before"]["family"].dropna().astype(str)) | set(parts["after"]["family"].dropna().astype(str)))
    out = []
    for fam in families:
        values, negatives, zeros = [], [], []
        for key in ("before", "after"):
            d = parts[key].loc[parts[key]["family"].astype(str) == fam, "duration_ms"].astype(float)
            negatives.append(int((d < 0).sum()))
            zeros.append(int((d == 0).sum()))
            values.append(d[d >= 0].dropna().to_numpy())
        note = f"negative durations left out (P6): {negatives[0]} before / {negatives[1]} after"
        if any(zeros):
            note += f"; zero durations kept but suspect after the P6 fix: {zeros[0]} / {zeros[1]}"
        out.append(distribution_metric("function_latency", fam, values[0], values[1], unit="ms", notes=[note]))
        samples[("function_latency", fam)] = tuple(values)
    return out


def _signature_mix(parts: dict) -> tuple[pd.DataFrame, dict]:
    counts = {}
    for key in ("before", "after"):
        frame = parts[key]
        failed = frame[frame["outcome"] != "success"]
        sig = failed["signature"] if "signature" in failed else pd.Series(dtype="string")
        counts[key] = sig.fillna("(no error text)").astype(str).value_counts()
    mix = pd.concat(counts, axis=1).fillna(0).astype(int)
    mix = mix.reindex(columns=["before", "after"], fill_value=0)
    mix = mix.sort_values(["before", "after"], ascending=False).rename_axis("signature").reset_index()
    return mix, chi_square_mix(mix[["before", "after"]].to_numpy())


def _partial(group_metrics: list[Metric], column: str | None) -> dict:
    improved = [m for m in group_metrics if m.verdict == "improved"]
    failing = [m for m in group_metrics
               if m.after.n >= MIN_N_RATE and m.after.ci is not None and m.after.ci[1] < STILL_FAILING_UPPER]
    sentences = []
    fails = "; ".join(f"{m.group} still fails ({_pct(m.after.value)} success of {m.after.n} attempts after the change, "
                      f"95 % CI {_pct(m.after.ci[0])}-{_pct(m.after.ci[1])})" for m in failing)
    recovered = "; ".join(f"{m.group} recovered ({_pct(m.before.value)} of {m.before.n} -> {_pct(m.after.value)} of {m.after.n})"
                          for m in improved)
    if improved and failing:
        sentences.append(f"The fix was partial: {fails}; while {recovered}.")
    elif failing:
        sentences.append(f"The change did not fix every {column}: {fails}.")
    elif improved:
        sentences.append(f"Every {column} with enough data recovered: {recovered}.")
    return {"column": column, "is_partial": bool(improved and failing), "still_failing": [m.group for m in failing],
            "improved": [m.group for m in improved], "sentences": sentences}
