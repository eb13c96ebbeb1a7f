"""Health of one day or week, compared with the periods before it, and a verdict: OK / WATCH / ACT.

Why: the team's post-deployment script printed all-green whatever happened. Here every part
of the verdict is computed from numbers that the report shows next to it, with the
denominator and an interval, and the verdict line names the reason.

Periods are Europe/Berlin calendar days: ``1d`` is compared with the previous 7 days, ``7d``
with the previous 4 weeks (``BASELINE_PERIODS``). Rules (thresholds from incidents.md §E):

* **ACT** when a booking path is confidently below the critical 90 % success (upper Wilson
  bound < 90 % with at least ``MIN_ATTEMPTS`` attempts), or has fewer attempts, none of them
  successful, while its baseline was itself confidently below 90 % (an outage that goes on),
  or a reach rate is confidently in
  the team's failing band (``initialize_call`` < 70 %, ``check_availability`` < 50 %).
* **WATCH** when a booking path is confidently below the 98 % target, a reach rate is
  confidently in a warning band, call duration or a function latency regressed against the
  baseline (Mann-Whitney, via :mod:`rca_toolkit.analyses.compare.stats`), an error signature is new (absent
  from the baseline, at least ``MIN_NEW_SIGNATURE`` times) or growing (conditional binomial
  test of the period's share of the counts against its share of the calls, p < ``GROWTH_ALPHA``),
  or sessions are stuck (P5).
* **OK** otherwise. "Confidently" means the whole 95 % interval is past the threshold, so a
  handful of calls on a Sunday cannot raise an alarm and an empty day says so instead.

Loading lives in :mod:`rca_toolkit.analyses.health.data` (``load_counts``, ``load``); ``compute``
is pure, and the figure is :func:`rca_toolkit.runs.plots.plot_health_booking`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from rca_toolkit.analyses.compare import stats as cmp
from rca_toolkit.analyses.health import data as health_data
from rca_toolkit.analyses.health.data import HealthInputs, load_counts
from rca_toolkit.analyses.health.periods import BASELINE_PERIODS, PERIODS, period_bounds
from rca_toolkit.rules import bookings, functions
from rca_toolkit.rules.bookings import BOOKING_CRITICAL, BOOKING_TARGET, MIN_ATTEMPTS
from rca_toolkit.rules.timeutil import source_tz
from rca_toolkit.analyses.bookings.outcomes import NO_ERROR_TEXT
from rca_toolkit.rules.signatures import signatures
from rca_toolkit.analyses.markdown import md_table

MIN_NEW_SIGNATURE = 3
GROWTH_ALPHA = 0.01
BOOKING_REACH = health_data.BOOKING_REACH
# The §E reach bands of rules.bookings in the report's words: (family, [(lower bound, band, verdict level)...]),
# checked top-down; "info only" judges nothing.
_LEVEL_OF = {bookings.OK: "OK", bookings.WARN: "WATCH", bookings.FAIL: "ACT", bookings.INFO: "OK"}
REACH_BANDS = {
    (BOOKING_REACH if family == bookings.BOOKING_REACH_FAMILY else family):
        [(band.lower, band.name, _LEVEL_OF[band.severity]) for band in bands]
    for family, bands in bookings.REACH_BANDS.items()
}
LEVELS = ("OK", "WATCH", "ACT")


# --------------------------------------------------------------------------- result
@dataclass
class Reason:
    level: str
    text: str
    section: str


@dataclass
class HealthReport:
    """All sections of one health report, the verdict and the reasons behind it."""

    day: date
    period: str
    company_id: int
    bounds: dict
    booking: pd.DataFrame
    reach: pd.DataFrame
    durations: pd.DataFrame
    signatures: pd.DataFrame
    quality: pd.DataFrame
    reasons: list[Reason]
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False
    source: str | None = None
    counts: dict = field(default_factory=dict)
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def verdict(self) -> str:
        return max((r.level for r in self.reasons), key=LEVELS.index, default="OK")

    @property
    def baseline_label(self) -> str:
        n = BASELINE_PERIODS[self.period]
        return f"the previous {n * PERIODS[self.period]} days" if self.period == "1d" else f"the previous {n} weeks"

    @property
    def verdict_line(self) -> str:
        top = [r.text for r in sorted(self.reasons, key=lambda r: -LEVELS.index(r.level)) if r.level != "OK"]
        if not top:
            c = self.counts
            return (f"OK: no threshold crossed ({c.get('sessions', 0)} calls, {c.get('attempts', 0)} booking attempts, "
                    f"compared with {self.baseline_label})")
        shown = top[:4] + ([f"and {len(top) - 4} more"] if len(top) > 4 else [])
        return f"{self.verdict}: " + "; ".join(shown)

    def title(self) -> str:
        who = "all companies" if not self.company_id else f"company {self.company_id}"
        span = self.day.isoformat() if self.period == "1d" else f"week from {self.day.isoformat()}"
        return f"Health report {span} ({self.period}, {who}, {source_tz()})"

    def key_numbers(self) -> dict:
        """The few numbers the run index shows."""
        allrow = self.booking[self.booking["path"] == "all"]
        rate = allrow["success_rate"].iloc[0] if len(allrow) else None
        dur = self.durations[self.durations["metric"] == "call_duration_session"]
        stuck = self.quality.loc[self.quality["flag"] == "stuck sessions (P5)", "count"]
        return {
            "calls": self.counts.get("sessions", 0),
            "booking_attempts": self.counts.get("attempts", 0),
            "booking_success_pct": None if rate is None or pd.isna(rate) else round(100 * float(rate), 1),
            "call_p95_s": None if dur.empty or pd.isna(dur["p95"].iloc[0]) else round(float(dur["p95"].iloc[0]) / 1000, 1),
            "new_or_growing_signatures": int(self.signatures["status"].isin(["new", "growing"]).sum()) if len(self.signatures) else 0,
            "stuck_sessions": int(stuck.iloc[0]) if len(stuck) else 0,
        }

    def metrics(self) -> dict:
        """What the run records in metrics.json (verdict first, then key numbers)."""
        return {"verdict": self.verdict, "verdict_line": self.verdict_line, "key_numbers": self.key_numbers(),
                "period_start": self.day.isoformat(), "period": self.period, "company_id": self.company_id,
                "reasons": [r.__dict__ for r in self.reasons if r.level != "OK"], "synthetic": self.synthetic}

    def to_dict(self) -> dict:
        frames = {name: json.loads(getattr(self, name).to_json(orient="records", date_format="iso"))
                  for name in ("booking", "reach", "durations", "signatures", "quality")}
        return {**self.metrics(), "title": self.title(), "baseline": self.baseline_label,
                "bounds": {k: str(v) for k, v in self.bounds.items()}, "notes": self.notes, "source": self.source, **frames}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, ensure_ascii=False, **kwargs)

    def sections(self) -> list[tuple[str, pd.DataFrame]]:
        """Display tables (percentages, intervals and p-values as text) under their headings."""
        return [("Booking success by path", self.table("booking")), ("Reach rates by function family", self.table("reach")),
                ("Call duration and function latency (ms)", self.table("durations")),
                ("New and growing error signatures", self.table("signatures")), ("Data-quality flags", self.table("quality"))]

    def table(self, name: str) -> pd.DataFrame:
        """One section formatted for reading; the raw numbers stay in the attribute of that name."""
        frame = getattr(self, name).copy()
        if frame.empty:
            return frame
        if name == "booking":
            return pd.DataFrame({
                "path": frame["path"], "success": [f"{_pct(r)} ({k}/{n})" for r, k, n in zip(frame["success_rate"], frame["success"], frame["attempts"])],
                "95 % CI": [_ci(lo, hi) for lo, hi in zip(frame["ci_low"], frame["ci_high"])],
                "failed / orphaned": [f"{f} / {o}" for f, o in zip(frame["failed"], frame["orphaned"])],
                "baseline": [f"{_pct(r)} ({n})" for r, n in zip(frame["baseline_success_rate"], frame["baseline_attempts"])],
                "p (Fisher)": frame["p_value"].map(_p), "level": frame["level"], "judgement": frame["judgement"],
                "top failure signature": frame["top_failure_signature"].fillna(""),
            })
        if name == "reach":
            return pd.DataFrame({
                "family": frame["family"], "reach": [f"{_pct(r)} ({k}/{n})" for r, k, n in zip(frame["reach_rate"], frame["reached"], frame["calls"])],
                "95 % CI": [_ci(lo, hi) for lo, hi in zip(frame["ci_low"], frame["ci_high"])],
                "baseline": frame["baseline_reach_rate"].map(_pct), "band": frame["band"], "level": frame["level"],
            })
        if name == "durations":
            ms = lambda v: "n/a" if v is None or pd.isna(v) else f"{v:,.0f}"  # noqa: E731
            return pd.DataFrame({
                "metric": frame["metric"], "group": frame["group"], "n": frame["n"], "p50": frame["p50"].map(ms),
                "p95": frame["p95"].map(ms), "p95 95 % CI": frame["p95_ci"].map(lambda c: f"{c[0]:,.0f}-{c[1]:,.0f}" if c else "n/a"),
                "p99": frame["p99"].map(ms), "baseline p50 / p95": [f"{ms(a)} / {ms(b)}" for a, b in zip(frame["baseline_p50"], frame["baseline_p95"])],
                "baseline n": frame["baseline_n"], "p (Mann-Whitney)": frame["p_value"].map(_p), "verdict": frame["verdict"],
            })
        if name == "signatures":
            frame["p_value"] = frame["p_value"].map(_p)
            return frame
        if name == "quality":
            frame["share"] = frame["share"].map(lambda v: "" if v is None or pd.isna(v) else f"{100 * v:.1f} %")
            frame["of"] = frame["of"].map(lambda v: "" if v is None or pd.isna(v) else str(int(v)))
            return frame
        raise KeyError(f"no section {name!r}")

    def to_markdown(self) -> str:
        parts = [f"# {self.title()}", "", f"**{self.verdict_line}**", ""]
        if self.synthetic:
            parts += ["*SYNTHETIC DEMO DATA*", ""]
        for name, frame in self.sections():
            parts += [f"## {name}", "", md_table(frame) if len(frame) else "(none)", ""]
        parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts)

    def verdict_html(self) -> str:
        colour = {"OK": "#1a7f37", "WATCH": "#9a6700", "ACT": "#cf222e"}[self.verdict]
        synthetic = "<p><em>SYNTHETIC DEMO DATA</em></p>" if self.synthetic else ""
        return (f'<div style="border-left:6px solid {colour};padding:.4em .8em;font-size:1.15em">'
                f'<strong style="color:{colour}">{html.escape(self.verdict_line)}</strong></div>{synthetic}')

    def _repr_html_(self) -> str:
        body = [f"<h3>{html.escape(self.title())}</h3>", self.verdict_html()]
        for name, frame in self.sections():
            body += [f"<h4>{html.escape(name)}</h4>", frame.to_html(index=False, escape=True, na_rep="")]
        if self.notes:
            body.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        return "".join(body)


# --------------------------------------------------------------------------- computation
def _wilson(k: int, n: int) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return max(0.0, round(float(lo), 6)), min(1.0, round(float(hi), 6))


def _pct(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{100 * v:.0f} %"


def _ci(lo, hi) -> str:
    return "n/a" if lo is None or pd.isna(lo) else f"{_pct(lo)}-{_pct(hi)}"


def _p(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{v:.2g}"


def _split(frame: pd.DataFrame, col: str, bounds: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    cur = frame[(frame[col] >= bounds["start"]) & (frame[col] < bounds["end"])]
    base = frame[(frame[col] >= bounds["baseline_start"]) & (frame[col] < bounds["start"])]
    return cur, base


def _local(ts: pd.Timestamp) -> str:
    return ts.tz_convert(source_tz()).strftime("%Y-%m-%d %H:%M")


def _first_occurrence_counts(frame: pd.DataFrame, key: str, count: str = "n", first: str = "first_at") -> pd.Series:
    """Counts per key, largest first, ties in order of first occurrence (as ``value_counts`` on rows)."""
    if frame.empty:
        return pd.Series(dtype="int64")
    grouped = frame.groupby(key, sort=False).agg(n=(count, "sum"), first=(first, "min"))
    grouped = grouped.sort_values("first", kind="stable")
    return grouped["n"].astype("int64").sort_values(ascending=False, kind="stable")


def _booking(data: health_data.HealthData, bounds: dict, first_seen: dict, base_label: str, reasons: list[Reason]) -> pd.DataFrame:
    att = data.attempts
    side = pd.Series(np.where(att["period"] < bounds["start"], "base", "cur"), index=att.index) if len(att) else pd.Series(dtype=object)
    cur, base = att[side == "cur"], att[side == "base"]
    paths = sorted(set(cur["path"].dropna().astype(str)) | set(base["path"].dropna().astype(str)))
    rows = []
    for path in ["all"] + paths:
        c = cur if path == "all" else cur[cur["path"].astype(str) == path]
        b = base if path == "all" else base[base["path"].astype(str) == path]
        ck, cn = int(c.loc[c["outcome"] == "success", "attempts"].sum()), int(c["attempts"].sum())
        bk, bn = int(b.loc[b["outcome"] == "success", "attempts"].sum()), int(b["attempts"].sum())
        metric = cmp.rate_metric("booking_success_rate", path, (bk, bn), (ck, cn))
        lo, hi = _wilson(ck, cn)
        failed = c[(c["outcome"] != "success") & (c["signature"] != NO_ERROR_TEXT)]
        top = _first_occurrence_counts(failed, "signature", "attempts")
        signature = top.index[0] if len(top) else None
        level, judged = "OK", ""
        if cn >= MIN_ATTEMPTS and hi is not None and hi < BOOKING_CRITICAL:
            level, judged = "ACT", f"below the critical {BOOKING_CRITICAL * 100:.0f} %"
        elif cn >= MIN_ATTEMPTS and hi is not None and hi < BOOKING_TARGET:
            level, judged = "WATCH", f"below the {BOOKING_TARGET * 100:.0f} % target"
        elif 0 < cn < MIN_ATTEMPTS and ck == 0 and bn >= MIN_ATTEMPTS and _wilson(bk, bn)[1] < BOOKING_CRITICAL:
            # too few attempts to judge the period alone, but an outage of the baseline goes on
            level, judged = "ACT", f"still failing: no success today, baseline below the critical {BOOKING_CRITICAL * 100:.0f} %"
        elif cn < MIN_ATTEMPTS:
            judged = f"fewer than {MIN_ATTEMPTS} attempts: no judgement"
        rows.append({"path": path, "attempts": cn, "success": ck, "success_rate": ck / cn if cn else None,
                     "ci_low": lo, "ci_high": hi, "failed": int(c.loc[c["outcome"] == "failed", "attempts"].sum()),
                     "orphaned": int(c.loc[c["outcome"] == "orphaned", "attempts"].sum()),
                     "baseline_attempts": bn, "baseline_success_rate": bk / bn if bn else None,
                     "p_value": metric.p_value, "level": level, "judgement": judged or "within target",
                     "top_failure_signature": signature})
        if level != "OK" and path != "all":
            text = (f"booking success on path {path} {_pct(ck / cn)} ({ck}/{cn}, 95 % CI {_pct(lo)}-{_pct(hi)}) "
                    f"vs {_pct(bk / bn) if bn else 'n/a'} ({bk}/{bn}) in {base_label}")
            if signature:
                since = first_seen.get(signature)
                text += f"; failing with {signature}" + (f" since {_local(since)}" if since is not None else "")
            reasons.append(Reason(level, text, "booking"))
    return pd.DataFrame(rows)


def _band(family: str, value: float | None) -> tuple[str, str]:
    if value is None:
        return "no data", "OK"
    for lower, band, level in REACH_BANDS[family]:
        if value >= lower:
            return band, level
    return REACH_BANDS[family][-1][1:]


def _reach(data: health_data.HealthData, base_label: str, reasons: list[Reason]) -> pd.DataFrame:
    cn, bn = data.sessions["cur"]["n"], data.sessions["base"]["n"]
    present = set(data.families) | ({BOOKING_REACH} if set(data.families) & set(functions.BOOKING_FAMILIES) else set())
    rows = []
    families = [f for f in REACH_BANDS] + sorted(present - set(REACH_BANDS))
    for family in families:
        ck, bk = data.reached.get(("cur", family), 0), data.reached.get(("base", family), 0)
        lo, hi = _wilson(ck, cn)
        row = {"family": family, "calls": cn, "reached": ck, "reach_rate": ck / cn if cn else None, "ci_low": lo,
               "ci_high": hi, "baseline_reach_rate": bk / bn if bn else None, "band": "", "level": "OK"}
        if family in REACH_BANDS:
            row["band"], _ = _band(family, row["reach_rate"])
            confident_band, level = _band(family, hi)  # the whole interval must sit in the band
            row["level"] = level
            if level != "OK":
                reasons.append(Reason(level, f"reach rate of {family} {_pct(row['reach_rate'])} ({ck}/{cn} calls, "
                                             f"95 % CI up to {_pct(hi)}: {confident_band}) vs "
                                             f"{_pct(row['baseline_reach_rate'])} in {base_label}", "reach"))
        rows.append(row)
    return pd.DataFrame(rows)


def _durations(data: health_data.HealthData, base_label: str, reasons: list[Reason], notes: list[str]) -> pd.DataFrame:
    rows = []
    series = [(name, "all", data.durations[name]["base"], data.durations[name]["cur"])
              for name, _ in health_data.DURATIONS if name in data.durations]
    series += [("function_latency", fam, data.latencies[fam]["base"], data.latencies[fam]["cur"]) for fam in sorted(data.latencies)]
    notes.append("call durations leave out stuck sessions (P5) and calls closed by cleanup (P20); session and Retell "
                 "durations are separate sources (P2); negative trace durations (P6) are left out of latencies")
    for name, group, base, cur in series:
        metric = cmp.distribution_metric(name, group, base, cur)
        detail = metric.after.detail
        rows.append({"metric": name, "group": group, "n": metric.after.n,
                     "p50": detail["p50"]["value"], "p95": detail["p95"]["value"], "p99": detail["p99"]["value"],
                     "p95_ci": detail["p95"]["ci"], "baseline_n": metric.before.n,
                     "baseline_p50": metric.before.detail["p50"]["value"], "baseline_p95": metric.before.detail["p95"]["value"],
                     "p_value": metric.p_value, "verdict": metric.verdict})
        if metric.verdict == "regressed":
            what = "call duration" if name.startswith("call") else f"latency of {group}"
            reasons.append(Reason("WATCH", f"{what} regressed: median {metric.after.value:,.0f} ms (n={metric.after.n}) vs "
                                           f"{metric.before.value:,.0f} ms (n={metric.before.n}) in {base_label}, "
                                           f"p={metric.p_value:.2g}", "durations"))
    return pd.DataFrame(rows)


def _signatures(data: health_data.HealthData, bounds: dict, base_label: str, reasons: list[Reason]) -> tuple[pd.DataFrame, dict]:
    errs = data.errors
    cols = ["signature", "count", "baseline_count", "first_seen", "status", "p_value", "booking_failed"]
    if errs.empty:
        return pd.DataFrame(columns=cols), {}
    errs = errs.assign(signature=signatures(errs["key_text"].astype("string"))["signature"]).dropna(subset=["signature"])
    first_seen = errs.groupby("signature")["first_at"].min().to_dict()
    cur, base = errs[errs["side"] == "cur"], errs[errs["side"] == "base"]
    # Expected share of the period if errors per call were unchanged (errors follow call volume:
    # a weekday after a weekend is not "growing"); by time when there are no calls.
    cn, bn = data.sessions["cur"]["n"], data.sessions["base"]["n"]
    b = bounds
    share = cn / (cn + bn) if cn and bn else (b["end"] - b["start"]) / (b["end"] - b["baseline_start"])
    base_counts = base.groupby("signature")["n"].sum()
    failed_counts = cur.groupby("signature")["booking_failed"].sum()
    rows = []
    for sig, count in _first_occurrence_counts(cur, "signature").items():
        base_count = int(base_counts.get(sig, 0))
        p = float(binomtest(int(count), int(count) + base_count, share, alternative="greater").pvalue)
        if base_count == 0:
            status = "new" if count >= MIN_NEW_SIGNATURE else "new (rare)"
        elif p < GROWTH_ALPHA:
            status = "growing"
        else:
            status = "steady"
        rows.append({"signature": sig, "count": int(count), "baseline_count": base_count,
                     "first_seen": _local(first_seen[sig]), "status": status, "p_value": p,
                     "booking_failed": int(failed_counts.get(sig, 0))})
        if status in ("new", "growing"):
            reasons.append(Reason("WATCH", f"{status} signature {sig} since {_local(first_seen[sig])} "
                                           f"({count} now vs {base_count} in {base_label})", "signatures"))
    frame = pd.DataFrame(rows, columns=cols).sort_values(["status", "count"], ascending=[True, False], kind="stable")
    return frame.reset_index(drop=True), first_seen


def _quality(data: health_data.HealthData, reasons: list[Reason], notes: list[str]) -> pd.DataFrame:
    cur, tq = data.sessions["cur"], data.trace_quality
    n = cur["n"]
    rows = [
        ("stuck sessions (P5)", cur["stuck"], n),
        ("closed by cleanup, system_timeout (P20)", cur["cleanup"], n),
        ("calls without any function trace", cur["untraced"], n),
        ("negative trace durations (P6)", tq["negative"], tq["n"]),
        ("zero trace durations (P6, suspect after the fix)", tq["zero"], tq["n"]),
        ("trace durations divisible by 1,000 ms (P7)", tq["whole_seconds"], tq["n"]),
        ("DST-ambiguous start times (P1)", cur["ambiguous"], n),
        ("test/demo/temp ids excluded (P4, whole window)", data.excluded_test_ids, None),
    ]
    frame = pd.DataFrame(rows, columns=["flag", "count", "of"])
    frame["share"] = [c / o if o else None for c, o in zip(frame["count"], frame["of"])]
    stuck = int(frame.loc[0, "count"])
    if stuck:
        reasons.append(Reason("WATCH", f"{stuck} of {n} sessions stuck in_progress (P5)", "quality"))
    for table, cols in (data.missing_columns or {}).items():
        notes.append(f"columns missing in {table}: {', '.join(cols)} (left out, not assumed)")
    if n == 0:
        notes.append("no calls in this period: no rate or percentile can be judged")
    return frame


def compute(inputs: HealthInputs) -> HealthReport:
    """Every section, the reasons and the verdict (pure: frames or counts in, result out)."""
    data = inputs.data or health_data.from_frames(inputs.calls, inputs.traces, inputs.errors, inputs.attempts, inputs.bounds)
    reasons: list[Reason] = []
    notes: list[str] = []
    report_label = HealthReport(inputs.day, inputs.period, inputs.company_id, inputs.bounds, *[pd.DataFrame()] * 5, [])
    base_label = report_label.baseline_label
    sig_frame, first_seen = _signatures(data, inputs.bounds, base_label, reasons)
    booking = _booking(data, inputs.bounds, first_seen, base_label, reasons)
    reach = _reach(data, base_label, reasons)
    durations = _durations(data, base_label, reasons, notes)
    quality = _quality(data, reasons, notes)
    if data.excluded_test_attempts:
        notes.append(f"{data.excluded_test_attempts} booking attempts of test/demo/temp call ids excluded (P4)")
    notes.append("first_seen is the earliest occurrence within the loaded window (baseline + period); "
                 "a signature first seen at the window start may be older")
    cur_attempts = int(data.attempts.loc[data.attempts["period"] >= inputs.bounds["start"], "attempts"].sum()) if len(data.attempts) else 0
    return HealthReport(inputs.day, inputs.period, inputs.company_id, inputs.bounds, booking, reach, durations, sig_frame,
                        quality, reasons, notes, inputs.synthetic, inputs.source,
                        {"sessions": data.sessions["cur"]["n"], "attempts": cur_attempts}, daily_counts(data.attempts))


def health(db=None, period_start: date | str = "2025-10-14", period: str = "1d", company_id: int = 0) -> HealthReport:
    """Load counts and compute in one call (what the notebook, the scheduled report and the tests use)."""
    return compute(load_counts(db, period_start, period, company_id))


def daily_booking(attempts: pd.DataFrame) -> pd.DataFrame:
    """Attempts and successes per Berlin day and path, with Wilson intervals (from attempt rows)."""
    if attempts.empty:
        return daily_counts(pd.DataFrame())
    frame = attempts if "rescued_by_webhook" in attempts else attempts.assign(rescued_by_webhook=False)
    tz = source_tz()
    local = attempts["at"].dt.tz_convert(tz)
    days = pd.date_range(local.min().date(), local.max().date() + timedelta(days=1), freq="D")
    edges = [pd.Timestamp(d).tz_localize(tz).tz_convert("UTC") for d in days]  # Berlin midnights (DST-safe)
    from rca_toolkit.analyses.bookings import outcomes
    return daily_counts(outcomes.count_attempts(frame, bins=edges))


def daily_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """Attempts and successes per Berlin day and path from ``count_attempts(bins=<Berlin midnights>)``."""
    cols = ["day", "path", "attempts", "success", "success_rate", "ci_low", "ci_high"]
    if counts.empty:
        return pd.DataFrame(columns=cols)
    frame = counts.assign(day=pd.DatetimeIndex(counts["period"]).tz_convert(source_tz()).strftime("%Y-%m-%d"), path=counts["path"].astype(str),
                          ok=counts["attempts"].where(counts["outcome"] == "success", 0))
    grouped = frame.groupby(["day", "path"]).agg(attempts=("attempts", "sum"), success=("ok", "sum")).reset_index()
    grouped["success_rate"] = grouped["success"] / grouped["attempts"]
    bounds = [_wilson(int(k), int(n)) for k, n in zip(grouped["success"], grouped["attempts"])]
    grouped["ci_low"], grouped["ci_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return grouped[cols]


__all__ = ["HealthReport", "Reason", "compute", "daily_booking", "daily_counts", "health", "period_bounds"]
