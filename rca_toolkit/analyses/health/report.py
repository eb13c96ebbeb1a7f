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

Loading lives in :mod:`rca_toolkit.analyses.health.data` (``load_counts``); ``compute``
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

from rca_toolkit.analyses.markdown import md_items, md_text
from rca_toolkit.analyses.compare import stats as cmp
from rca_toolkit.analyses.health import data as health_data
from rca_toolkit.analyses.health.data import HealthInputs, load_counts
from rca_toolkit.analyses.health.periods import BASELINE_PERIODS, PERIODS, period_bounds
from rca_toolkit.rules import bookings, functions
from rca_toolkit.rules.bookings import BOOKING_CRITICAL, BOOKING_TARGET, MIN_ATTEMPTS
from rca_toolkit.rules.timeutil import day_edges, midnight, source_tz
from rca_toolkit.analyses.bookings.outcomes import NO_ERROR_TEXT
from rca_toolkit.rules.signatures import signature_keys
from rca_toolkit.analyses import tables
from rca_toolkit.errors import EmptyResult

MIN_NEW_SIGNATURE = 3
GROWTH_ALPHA = 0.01
REQUIRES = {"health": health_data.REQUIRES["load_counts"]}  # checked by load_counts before its first statement
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
DURATION_COLUMNS = ["metric", "group", "n", "p50", "p95", "p99", "p95_ci", "baseline_n", "baseline_p50", "baseline_p95",
                    "p_value", "verdict"]


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
        return {  # named as the index shows them, the unit in the name (the values stay numbers)
            "calls": self.counts.get("sessions", 0),
            "booking attempts": self.counts.get("attempts", 0),
            "booking success (%)": None if rate is None or pd.isna(rate) else round(100 * float(rate), 1),
            "call p95 (s)": None if dur.empty or pd.isna(dur["p95"].iloc[0]) else round(float(dur["p95"].iloc[0]) / 1000, 1),
            "new or growing signatures": int(self.signatures["status"].isin(["new", "growing"]).sum()) if len(self.signatures) else 0,
            "stuck sessions": int(stuck.iloc[0]) if len(stuck) else 0,
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

    def sections(self) -> list[tuple[str, tables.Table]]:
        """Display tables (units in the headers, percentages with their counts) under their headings."""
        return [("Booking success by path", self.table("booking")), ("Reach rates by function family", self.table("reach")),
                ("Call duration and function latency", self.table("durations")),
                ("New and growing error signatures", self.table("signatures")), ("Data-quality flags", self.table("quality"))]

    def table(self, name: str) -> tables.Table:
        """One section formatted for reading (:mod:`rca_toolkit.analyses.tables`); the raw numbers stay in the
        attribute of that name."""
        frame = getattr(self, name).copy()
        t = tables
        if name == "booking":
            frame["success_text"] = [t.share_of(k, n, 0, "") for k, n in zip(frame.get("success", []), frame.get("attempts", []))]
            frame["ci"] = [t.percent_interval(lo, hi, 0, "") for lo, hi in zip(frame.get("ci_low", []), frame.get("ci_high", []))]
            frame["failed_orphaned"] = [f"{f} / {o}" for f, o in zip(frame.get("failed", []), frame.get("orphaned", []))]
            frame["baseline"] = [t.share_of(k, n, 0, "") for k, n in
                                 zip(frame.get("baseline_success", []), frame.get("baseline_attempts", []))]
            return t.Table(frame, [t.col("path"), t.col("success_text", "success (%)", numeric=True),
                                   t.col("ci", "95 % CI", numeric=True), t.col("failed_orphaned", "failed / orphaned", numeric=True),
                                   t.col("baseline", "baseline (%)", numeric=True),
                                   t.col("p_value", "p (Fisher)", t.p_value, numeric=True), t.col("level"),
                                   t.col("judgement"), t.col("top_failure_signature", "top failure signature", max_chars=50)],
                           empty="no booking attempts")
        if name == "reach":
            frame["reach"] = [t.share_of(k, n, 0, "") for k, n in zip(frame.get("reached", []), frame.get("calls", []))]
            frame["ci"] = [t.percent_interval(lo, hi, 0, "") for lo, hi in zip(frame.get("ci_low", []), frame.get("ci_high", []))]
            return t.Table(frame, [t.col("family"), t.col("reach", "reach (%)", numeric=True), t.col("ci", "95 % CI", numeric=True),
                                   t.col("baseline_reach_rate", "baseline (%)", lambda v: t.percent(v, 0, ""), numeric=True),
                                   t.col("band"), t.col("level")], empty="no calls")
        if name == "durations":
            def s(row_metric):
                return (lambda v: t.ms_as_seconds(v, 2)) if row_metric == "function_latency" else (lambda v: t.ms_as_seconds(v, 1))
            rows = []
            for r in frame.to_dict(orient="records"):
                f = s(r["metric"])
                ci = r.get("p95_ci")
                rows.append({"metric": r["metric"] if r["group"] == "all" else f"{r['metric']} {r['group']}", "n": r["n"],
                             "p50": f(r["p50"]), "p95": f(r["p95"]),
                             "p95 CI": t.interval(ci[0], ci[1], fmt=f) if ci else t.MISSING, "p99": f(r["p99"]),
                             "baseline": f"{f(r['baseline_p50'])} / {f(r['baseline_p95'])}", "baseline n": r["baseline_n"],
                             "p": r["p_value"], "verdict": r["verdict"]})
            return t.Table(rows, [t.col("metric"), t.col("n", numeric=True), t.col("p50", "p50 (s)", numeric=True),
                                  t.col("p95", "p95 (s)", numeric=True), t.col("p95 CI", "p95 95 % CI", numeric=True),
                                  t.col("p99", "p99 (s)", numeric=True), t.col("baseline", "baseline p50 / p95 (s)", numeric=True),
                                  t.col("baseline n", numeric=True), t.col("p", "p (Mann-Whitney)", t.p_value, numeric=True),
                                  t.col("verdict")], empty="no durations")
        if name == "signatures":
            return t.Table(frame, [t.col("signature", max_chars=60), t.col("count", "errors", numeric=True),
                                   t.col("per_day", "per day", _rate, numeric=True),
                                   t.col("baseline_count", "baseline errors", numeric=True),
                                   t.col("baseline_per_day", "baseline per day", _rate, numeric=True),
                                   t.col("first_seen", f"first seen ({source_tz()})"), t.col("status"),
                                   t.col("p_value", "p (binomial)", t.p_value, numeric=True),
                                   t.col("booking_failed", "failed bookings", numeric=True)], empty="no error signatures")
        if name == "quality":
            frame["share_text"] = [t.percent(c / o) if o and not t.is_missing(o) else t.MISSING
                                   for c, o in zip(frame.get("count", []), frame.get("of", []))]
            return t.Table(frame, [t.col("flag"), t.col("count", numeric=True),
                                   t.col("of", fmt=lambda v: t.MISSING if t.is_missing(v) else f"{int(v):,}", numeric=True),
                                   t.col("share_text", "share", numeric=True)])
        raise KeyError(f"no section {name!r}")

    def to_markdown(self) -> str:
        parts = [f"# {self.title()}", "", f"**{md_text(self.verdict_line)}**", ""]
        if self.synthetic:
            parts += ["*SYNTHETIC DEMO DATA*", ""]
        for name, table in self.sections():
            parts += [f"## {name}", "", table.to_markdown() if len(table) else "(none)", ""]
        parts += md_items(self.notes)
        return "\n".join(parts)

    def verdict_html(self) -> str:
        colour = {"OK": "#1a7f37", "WATCH": "#9a6700", "ACT": "#cf222e"}[self.verdict]
        synthetic = "<p><em>SYNTHETIC DEMO DATA</em></p>" if self.synthetic else ""
        return (f'<div style="border-left:6px solid {colour};padding:.4em .8em;font-size:1.15em">'
                f'<strong style="color:{colour}">{html.escape(self.verdict_line)}</strong></div>{synthetic}')

    def _repr_html_(self) -> str:
        body = [f"<h3>{html.escape(self.title())}</h3>", self.verdict_html()]
        for name, table in self.sections():
            body += [f"<h4>{html.escape(name)}</h4>", table.to_html()]
        body.append(tables.bullet_list(self.notes))
        return "".join(body)


# --------------------------------------------------------------------------- computation
def _wilson(k: int, n: int) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return max(0.0, round(float(lo), 6)), min(1.0, round(float(hi), 6))


def _pct(v) -> str:
    return "n/a" if v is None or pd.isna(v) else tables.percent(v, 0)


def _rate(per_day: float) -> str:
    """Errors per day as the table and the reason line show it (``17.0``): a day's count and a week's read alike."""
    return tables.number(per_day, 1)


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
                     "baseline_attempts": bn, "baseline_success": bk, "baseline_success_rate": bk / bn if bn else None,
                     "p_value": metric.p_value, "level": level, "judgement": judged or "within target",
                     "top_failure_signature": signature})
        if level != "OK" and path != "all":
            text = (f"booking success on path {path} {_pct(ck / cn)} ({ck:,}/{cn:,}, 95 % CI {_pct(lo)}-{_pct(hi)}) "
                    f"vs {_pct(bk / bn) if bn else 'n/a'} ({bk:,}/{bn:,}) in {base_label}")
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
                reasons.append(Reason(level, f"reach rate of {family} {_pct(row['reach_rate'])} ({ck:,}/{cn:,} calls, "
                                             f"95 % CI up to {_pct(hi)}: {confident_band}) vs "
                                             f"{_pct(row['baseline_reach_rate'])} in {base_label}", "reach"))
        rows.append(row)
    return pd.DataFrame(rows)


def _durations(data: health_data.HealthData, base_label: str, reasons: list[Reason], notes: list[str]) -> pd.DataFrame:
    rows = []
    series = [(name, "all", data.durations[name]["base"], data.durations[name]["cur"])
              for name in health_data.DURATIONS if name in data.durations]
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
            reasons.append(Reason("WATCH", f"{what} regressed: median {tables.ms_as_seconds(metric.after.value)} s "
                                           f"(n={metric.after.n:,}) vs {tables.ms_as_seconds(metric.before.value)} s "
                                           f"(n={metric.before.n:,}) in {base_label}, {tables.p_text(metric.p_value)}",
                                  "durations"))
    return pd.DataFrame(rows, columns=DURATION_COLUMNS)  # the columns even without a series (no data at all)


def _signatures(data: health_data.HealthData, bounds: dict, base_label: str, reasons: list[Reason]) -> tuple[pd.DataFrame, dict]:
    errs = data.errors
    cols = ["signature", "count", "per_day", "baseline_count", "baseline_per_day", "first_seen", "status", "p_value",
            "booking_failed"]
    if errs.empty:
        return pd.DataFrame(columns=cols), {}
    errs = errs.assign(signature=signature_keys(errs["key_text"].astype("string"))).dropna(subset=["signature"])
    first_seen = errs.groupby("signature")["first_at"].min().to_dict()
    cur, base = errs[errs["side"] == "cur"], errs[errs["side"] == "base"]
    # Expected share of the period if errors per call were unchanged (errors follow call volume:
    # a weekday after a weekend is not "growing"); by time when there are no calls.
    cn, bn = data.sessions["cur"]["n"], data.sessions["base"]["n"]
    b = bounds
    share = cn / (cn + bn) if cn and bn else (b["end"] - b["start"]) / (b["end"] - b["baseline_start"])
    base_counts = base.groupby("signature")["n"].sum()
    days = max(1, round((b["end"] - b["start"]) / pd.Timedelta(days=1)))  # 23/25-hour DST days are days
    base_days = max(1, round((b["start"] - b["baseline_start"]) / pd.Timedelta(days=1)))
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
        per_day, base_per_day = int(count) / days, base_count / base_days  # once: the table shows these too
        rows.append({"signature": sig, "count": int(count), "per_day": per_day, "baseline_count": base_count,
                     "baseline_per_day": base_per_day, "first_seen": _local(first_seen[sig]), "status": status,
                     "p_value": p, "booking_failed": int(failed_counts.get(sig, 0))})
        if status in ("new", "growing"):
            reasons.append(Reason("WATCH", f"{status} signature {sig} since {_local(first_seen[sig])} "
                                           f"({_rate(per_day)}/day now vs {_rate(base_per_day)}/day in "
                                           f"{base_label}: {count:,} errors now, {base_count:,} then)", "signatures"))
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
        reasons.append(Reason("WATCH", f"{stuck:,} of {n:,} sessions stuck in_progress (P5)", "quality"))
    for table, cols in (data.missing_columns or {}).items():
        notes.append(f"columns missing in {table}: {', '.join(cols)} (left out, not assumed)")
    if n == 0:
        notes.append("no calls in this period: no rate or percentile can be judged")
    return frame


def compute(inputs: HealthInputs) -> HealthReport:
    """Every section, the reasons and the verdict (pure: counts in, result out)."""
    data = inputs.data
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
    if inputs.read_note:
        notes.append(inputs.read_note)
    cur_attempts = int(data.attempts.loc[data.attempts["period"] >= inputs.bounds["start"], "attempts"].sum()) if len(data.attempts) else 0
    _judge_emptiness(inputs, data, cur_attempts, base_label, reasons)
    return HealthReport(inputs.day, inputs.period, inputs.company_id, inputs.bounds, booking, reach, durations, sig_frame,
                        quality, reasons, tables.Notes(notes), inputs.synthetic, inputs.source,
                        {"sessions": data.sessions["cur"]["n"], "attempts": cur_attempts}, daily_counts(data.attempts))


def _judge_emptiness(inputs: HealthInputs, data: health_data.HealthData, cur_attempts: int, base_label: str,
                     reasons: list[Reason]) -> None:
    """An empty period (no call, attempt or error) is never OK ("0 of 0" is not enough data, not a pass).

    Nothing in the period nor in its baseline: the company, the day or the database is wrong, not the
    platform; a scheduled report should fail loudly (``EmptyResult``, exit 2) instead of filing a green
    report every day. Nothing in the period but calls in the baseline: WATCH, not ACT, because a closed
    day (a Sunday) looks the same as an outage; the line says which to check.
    """
    cur_calls, base_calls = data.sessions["cur"]["n"], data.sessions["base"]["n"]
    all_attempts = int(data.attempts["attempts"].sum()) if len(data.attempts) else 0
    errors = data.errors.groupby("side")["n"].sum() if len(data.errors) else pd.Series(dtype="int64")
    if cur_calls or cur_attempts or errors.get("cur", 0):
        return
    who = f"company {inputs.company_id}" if inputs.company_id else "any company"
    if not (base_calls or all_attempts or errors.get("base", 0)):
        raise EmptyResult(f"no calls and no booking attempts of {who} in the {inputs.period} period from "
                          f"{inputs.day.isoformat()} nor in {base_label}",
                          hint="check the company id, the date and the database: nothing there to report on")
    reasons.append(Reason("WATCH", f"not enough data: no calls in this period ({base_calls} in {base_label}); "
                                   f"if calls were expected, check that they reach the platform", "quality"))


def health(db=None, period_start: date | str = "2025-10-14", period: str = "1d", company_id: int = 0) -> HealthReport:
    """Load counts and compute in one call (what the notebook, the scheduled report and the tests use)."""
    return compute(load_counts(db, period_start, period, company_id))


def daily_booking(attempts: pd.DataFrame) -> pd.DataFrame:
    """Attempts and successes per Berlin day and path, with Wilson intervals (from attempt rows)."""
    if attempts.empty:
        return daily_counts(pd.DataFrame())
    frame = attempts if "rescued_by_webhook" in attempts else attempts.assign(rescued_by_webhook=False)
    local = attempts["at"].dt.tz_convert(source_tz())
    edges = day_edges(midnight(local.min().date()), midnight(local.max().date() + timedelta(days=1)))  # local midnights
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
