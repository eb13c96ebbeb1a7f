"""Matplotlib figures for result objects: ``plot_x(result, *, ax=None) -> Figure``.

No global state at import, no ``plt.show()``; figures are built on ``matplotlib.figure.Figure``
so they render headless in papermill and tests inspect their artists.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from rca_toolkit.rules.bookings import BOOKING_CRITICAL
from rca_toolkit.rules.timeutil import source_tz
from rca_toolkit.analyses.health.periods import PERIODS


def _figure_and_ax(ax=None, *, figsize=(10, 4)):
    """Use the caller's axes or make a fresh headless figure."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


# --------------------------------------------------------------------------- before/after report
_SERIES_COLOURS = ("#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6c4f9e")


def plot_rates(changepoints, *, resolution: str = "day", series=None, at=None, ax=None) -> Figure:
    """Booking success per path over time: Wilson bands, deployments (dotted), change intervals (shaded).

    ``changepoints`` is a :class:`rca_toolkit.analyses.compare.changepoints.ChangePoints`; ``at`` marks the
    compared change (dashed).
    """
    import pandas as pd

    fig, ax = _figure_and_ax(ax, figsize=(11, 4.5))
    names = series or sorted({name for name, res in changepoints.series if res == resolution and name != "all"}) or ["all"]
    for colour, name in zip(_SERIES_COLOURS * 4, names):
        data = changepoints.series.get((name, resolution))
        if data is None or data.empty:
            continue
        x = data["bin"].dt.tz_convert("UTC").dt.tz_localize(None)
        ax.plot(x, 100 * data["rate"], marker=".", color=colour, label=f"{name} (n={int(data['attempts'].sum())})")
        ax.fill_between(x, 100 * data["ci_low"], 100 * data["ci_high"], color=colour, alpha=0.15, linewidth=0)
    for change in changepoints.changes:
        if change.resolution == "attempt" and change.series in names:
            lo, hi = (t.tz_convert("UTC").tz_localize(None) for t in change.interval)
            ax.axvspan(lo, hi, color="#555555", alpha=0.25, gid=f"change:{change.series}:{change.direction}")
    deployments = changepoints.deployments
    if deployments is not None and not deployments.empty:
        first = True
        for row in deployments.itertuples(index=False):
            ax.axvline(row.deployed_at.tz_convert("UTC").tz_localize(None), color="#444444", linestyle=":", linewidth=1,
                       label="deployment" if first else None, gid=f"deploy:{row.commit}")
            first = False
    if at is not None:
        ax.axvline(pd.Timestamp(at).tz_convert("UTC").tz_localize(None), color="black", linestyle="--",
                   label="compared change", gid="compared-change")
    shown = [changepoints.series[(n, resolution)]["bin"] for n in names if (n, resolution) in changepoints.series]
    if shown and any(len(b) for b in shown):
        lo = min(b.min() for b in shown if len(b)).tz_convert("UTC").tz_localize(None)
        hi = max(b.max() for b in shown if len(b)).tz_convert("UTC").tz_localize(None)
        ax.set_xlim(lo - pd.Timedelta(days=1), hi + pd.Timedelta(days=1))  # deployments outside the data stay off
    ax.set_ylim(-3, 103)
    ax.set_ylabel("booking success (%)")
    ax.set_xlabel("time (UTC)")
    title = f"Booking success per {resolution}, 95 % Wilson bands; shaded = change intervals"
    if getattr(changepoints, "synthetic", False):
        title += " (SYNTHETIC DEMO DATA)"
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize="small")
    return fig


def plot_latency(comparison, *, name: str = "function_latency", ax=None) -> Figure:
    """Before/after box plots of a duration metric per group (log scale, ms), with n in the labels."""
    fig, ax = _figure_and_ax(ax, figsize=(11, 4.5))
    keys = sorted(k for k in comparison.samples if k[0] == name)
    data, labels, colours = [], [], []
    for _, group in keys:
        before, after = comparison.samples[(name, group)]
        for label, values, colour in (("before", before, "#1b6ca8"), ("after", after, "#d1495b")):
            data.append(values[values > 0] if len(values) else values)
            labels.append(f"{group}\n{label} n={len(values)}")
            colours.append(colour)
    if data:
        boxes = ax.boxplot(data, patch_artist=True, showfliers=True)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize="x-small")
        for patch, colour in zip(boxes["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.5)
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, f"no {name} samples in either window", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("duration (ms, log scale)")
    ax.set_title(f"{name}: before (blue) vs after (red) the change; zero durations are counted in n but not drawn (log scale)")
    return fig


# --------------------------------------------------------------------------- call timeline
_KIND_COLOURS = {"caller_speech": "#1b6ca8", "agent_speech": "#2e933c", "loop": "#6c4f9e", "dead_air": "#d1495b",
                 "slow_tool": "#edae49", "failed_tool": "#b22222", "duplicate_side_effect": "#8b4513",
                 "bad_argument": "#c71585", "n_plus_one": "#555555"}


def plot_waterfall(timeline, *, ax=None) -> Figure:
    """One call as a waterfall: caller and agent speech, tool calls (red = failed), findings, what-if.

    ``timeline`` is a :class:`rca_toolkit.analyses.calls.timeline.CallTimeline`. Artists carry ``gid`` values
    (``speech:caller``, ``tool:<name>:ok|failed``, ``finding:<kind>``, ``whatif:actual|projected``).
    """
    fig, ax = _figure_and_ax(ax, figsize=(12, 4.8))
    rows = ["caller", "agent", "tools", "findings", "actual", "what-if"]
    y = {name: len(rows) - 1 - i for i, name in enumerate(rows)}
    spans = timeline.spans
    for role, kind in (("caller", "caller_speech"), ("agent", "agent_speech")):
        part = spans[spans["kind"] == kind]
        if len(part):
            ax.broken_barh(list(zip(part["start_s"], part["end_s"] - part["start_s"])), (y[role] - 0.35, 0.7),
                           facecolors=_KIND_COLOURS[kind], gid=f"speech:{role}")
    for tool in timeline.tool_calls.itertuples(index=False):
        width = max((tool.end_s if tool.end_s == tool.end_s else tool.start_s) - tool.start_s, 0.15)
        state = "ok" if tool.ok else "failed"
        ax.broken_barh([(tool.start_s, width)], (y["tools"] - 0.35, 0.7), gid=f"tool:{tool.name}:{state}",
                       facecolors="#2e933c" if tool.ok else "#b22222", edgecolors="black", linewidth=0.5)
        ax.annotate(str(tool.name), (tool.start_s, y["tools"] + 0.38), fontsize="x-small", rotation=20)
    errors = spans[spans["kind"] == "error"]
    if len(errors):
        ax.plot(errors["start_s"], [y["tools"]] * len(errors), "kx", gid="errors", label="error log")
    shown: dict[str, str] = {}
    for finding in timeline.findings:
        if finding.start_s is None or finding.end_s is None:
            continue
        ax.broken_barh([(finding.start_s, max(finding.end_s - finding.start_s, 0.15))], (y["findings"] - 0.35, 0.7),
                       facecolors=_KIND_COLOURS.get(finding.kind, "#999999"), alpha=0.8, gid=f"finding:{finding.kind}")
        if finding.end_s - finding.start_s > 0.08 * (timeline.duration_s or 1):
            ax.annotate(f"{finding.kind.replace('_', ' ')} {finding.seconds:.1f} s", (finding.start_s, y["findings"] - 0.1),
                        xytext=(2, 0), textcoords="offset points", fontsize="x-small", color="white")
        shown.setdefault(finding.kind, _KIND_COLOURS.get(finding.kind, "#999999"))
    duration = timeline.duration_s or 0.0
    ax.barh(y["actual"], duration, height=0.6, color="#888888", gid="whatif:actual")
    ax.annotate(f"{duration:.1f} s", (duration, y["actual"]), xytext=(4, -3), textcoords="offset points", fontsize="small")
    projected = timeline.what_if.duration_s
    if projected is not None:
        ax.barh(y["what-if"], projected, height=0.6, color="#1b6ca8", gid="whatif:projected")
        ax.annotate(f"{projected:.1f} s without {', '.join(timeline.what_if.kinds)}", (projected, y["what-if"]),
                    xytext=(4, -3), textcoords="offset points", fontsize="small")
    if spans.empty:
        ax.text(0.5, 0.62, "no transcript or trace: nothing to place on the time axis", ha="center",
                transform=ax.transAxes, gid="no-data")
    if shown:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=c, label=k.replace("_", " ")) for k, c in shown.items()], loc="upper right",
                  fontsize="x-small", title="findings", title_fontsize="x-small")
    ax.set_yticks([y[r] for r in rows], rows)
    ax.set_xlim(0, max(duration, 1.0) * 1.25)
    ax.set_xlabel("seconds from call start")
    title = f"{timeline.call_id}: {duration:.1f} s"
    if getattr(timeline, "synthetic", False):
        title += " (SYNTHETIC DEMO DATA)"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------- overview
def plot_calls_per_day(overview, *, ax=None) -> Figure:
    """Calls per local day (bars) with stuck sessions stacked in a second colour."""
    fig, ax = _figure_and_ax(ax)
    daily = overview.calls_per_day
    days = list(daily.index)
    ok = daily["calls"] - daily["stuck"]
    ax.bar(days, ok, color="#1b6ca8", label="calls")
    ax.bar(days, daily["stuck"], bottom=ok, color="#d1495b", label="stuck sessions")
    ax.set_ylabel(f"calls per day ({source_tz()})")
    title = "Calls per day" + (" (SYNTHETIC demo data)" if overview.synthetic else "")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    return fig


def plot_daily_success(overview, *, ax=None) -> Figure:
    """Daily booking success rate per path (a line per path; gaps on days without attempts)."""
    fig, ax = _figure_and_ax(ax)
    daily = overview.daily_success
    for i, path in enumerate(daily.columns):
        ax.plot(list(daily.index), daily[path] * 100, marker=".", color=_SERIES_COLOURS[i % len(_SERIES_COLOURS)], label=str(path))
    ax.set_ylim(-5, 105)
    ax.set_ylabel("booking success per day (%)")
    ax.set_title("Booking success by path" + (" (SYNTHETIC demo data)" if overview.synthetic else ""))
    if len(daily.columns):
        ax.legend(loc="lower left")
    fig.autofmt_xdate()
    return fig


# --------------------------------------------------------------------------- health report
def plot_health_booking(report, *, ax=None) -> Figure:
    """Daily booking success per path over baseline + period (Wilson intervals), the period shaded.

    ``report`` is a :class:`rca_toolkit.analyses.health.report.HealthReport`; the critical line is
    ``rules.bookings.BOOKING_CRITICAL``.
    """
    import numpy as np
    import pandas as pd

    if ax is None:
        fig = Figure(figsize=(10, 3.6))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    daily = report.daily
    for path, frame in daily.groupby("path"):
        x = pd.to_datetime(frame["day"])
        y = frame["success_rate"].to_numpy(dtype=float)
        err = np.clip(np.vstack([y - frame["ci_low"].to_numpy(dtype=float), frame["ci_high"].to_numpy(dtype=float) - y]), 0, None)
        ax.errorbar(x, 100 * y, yerr=100 * err, marker="o", capsize=3, label=f"{path}")
    start = pd.Timestamp(report.day)
    ax.axvspan(start - pd.Timedelta(hours=12), start + pd.Timedelta(days=PERIODS[report.period]) - pd.Timedelta(hours=12),
               color="#cf222e" if report.verdict == "ACT" else "#999999", alpha=0.12, label="reported period")
    ax.axhline(100 * BOOKING_CRITICAL, color="#cf222e", linestyle="--", linewidth=1, label="critical 90 %")
    ax.set_ylim(-5, 105)
    ax.set_ylabel("booking success (%)")
    ax.set_title(f"Booking success per day and path, {report.baseline_label} and the reported period")
    ax.legend(loc="lower left", fontsize="small")
    fig.autofmt_xdate()
    return fig
