"""Matplotlib figures for result objects: ``plot_x(result, *, ax=None) -> Figure``.

No global state at import, no ``plt.show()``; figures are built on :class:`ReportFigure`, a headless
``matplotlib.figure.Figure`` that shows itself inline (PNG with alt text, :func:`kernel.figure_bundle`)
in JupyterLab, in the executed notebook and so in the HTML report; tests inspect their artists.
Axes are fitted to the data and durations are labelled in plain seconds.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from rca_toolkit.rules.bookings import BOOKING_CRITICAL
from rca_toolkit.rules.timeutil import parse_instant, source_tz
from rca_toolkit.analyses.health.periods import PERIODS


class ReportFigure(Figure):
    """A headless figure that displays itself as a PNG with alt text (``alt``; default: the axes titles).

    Why: without pyplot, IPython has no image formatter for a ``Figure`` and shows ``<Figure size ...>``."""

    alt: str = ""

    def _repr_mimebundle_(self, include=None, exclude=None):
        from rca_toolkit.runs.kernel import figure_bundle

        return figure_bundle(self, self.alt or _titles(self))


def _titles(fig) -> str:
    return "; ".join(ax.get_title() for ax in fig.axes if ax.get_title()) or "figure"


def _describe(fig, alt: str) -> None:
    """Set the alt text a reader without the image gets (only on figures this module made)."""
    if isinstance(fig, ReportFigure):
        fig.alt = alt


def _figure_and_ax(ax=None, *, figsize=(10, 4)):
    """Use the caller's axes or make a fresh headless figure."""
    if ax is not None:
        return ax.figure, ax
    fig = ReportFigure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _plain_seconds(ax) -> None:
    """Log-scale y axis in seconds with plain tick labels (0.2, 0.3, 0.5, 1, 2, 3, 5, 10 ...), never 10^3."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.10g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _wall(tz: str, ts):
    """An instant as the naive wall time of ``tz``: matplotlib places naive times as they read."""
    import pandas as pd

    return pd.Timestamp(ts).tz_convert(tz).tz_localize(None)


def _dates(ax) -> None:
    """Short date ticks (no overlapping full timestamps)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# --------------------------------------------------------------------------- before/after report
_SERIES_COLOURS = ("#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6c4f9e")


def plot_rates(changepoints, *, resolution: str = "day", series=None, at=None, ax=None) -> Figure:
    """Booking success per path over time: Wilson bands, deployments (dotted), change intervals (shaded).

    ``changepoints`` is a :class:`rca_toolkit.analyses.compare.changepoints.ChangePoints`; ``at`` marks the
    compared change (dashed).
    """
    import pandas as pd

    fig, ax = _figure_and_ax(ax, figsize=(11, 4.5))
    tz = source_tz()  # the report's zone: a day's point sits on its own date's tick
    names = series or sorted({name for name, res in changepoints.series if res == resolution and name != "all"}) or ["all"]
    for colour, name in zip(_SERIES_COLOURS * 4, names):
        data = changepoints.series.get((name, resolution))
        if data is None or data.empty:
            continue
        x = data["bin"].dt.tz_convert(tz).dt.tz_localize(None)
        ax.plot(x, 100 * data["rate"], marker=".", color=colour, label=f"{name} (n={int(data['attempts'].sum())})")
        ax.fill_between(x, 100 * data["ci_low"], 100 * data["ci_high"], color=colour, alpha=0.15, linewidth=0)
    shaded = [c for c, _ in changepoints.listed() if c.resolution == "attempt" and c.series in names]  # as the table lists
    for change in shaded:
        lo, hi = (_wall(tz, t) for t in change.interval)
        ax.axvspan(lo, hi, color="#555555", alpha=0.25, gid=f"change:{change.series}:{change.direction}")
    deployments = changepoints.deployments
    if deployments is not None and not deployments.empty:
        first = True
        for row in deployments.itertuples(index=False):
            ax.axvline(_wall(tz, row.deployed_at), color="#444444", linestyle=":", linewidth=1,
                       label="deployment" if first else None, gid=f"deploy:{row.commit}")
            first = False
    at = None if at is None else parse_instant(at, name="at")  # as --at reads it (a time copied from a report too)
    if at is not None:
        ax.axvline(_wall(tz, at), color="black", linestyle="--",
                   label="compared change", gid="compared-change")
    shown = [changepoints.series[(n, resolution)]["bin"] for n in names if (n, resolution) in changepoints.series]
    if shown and any(len(b) for b in shown):
        lo, hi = _wall(tz, min(b.min() for b in shown if len(b))), _wall(tz, max(b.max() for b in shown if len(b)))
        ax.set_xlim(lo - pd.Timedelta(days=1), hi + pd.Timedelta(days=1))  # deployments outside the data stay off
    ax.set_ylim(-3, 103)
    ax.set_ylabel("booking success (%)")
    ax.set_xlabel(f"time ({tz})")
    title = f"Booking success per {resolution}, 95 % Wilson bands; shaded = change intervals"
    if getattr(changepoints, "synthetic", False):
        title += " (SYNTHETIC DEMO DATA)"
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small")  # beside the bands, never over them
    _dates(ax)
    changes = len(shaded)
    deploys = 0 if deployments is None else len(deployments)
    compared = "" if at is None else f", the compared change at {at.tz_convert(tz).isoformat()} dashed"
    _describe(fig, f"Line chart: booking success per {resolution} (%) for {', '.join(names)} with 95 % Wilson bands; "
                   f"{changes} change interval(s) shaded, {deploys} deployment(s) dotted{compared}.")
    return fig


def plot_latency(comparison, *, name: str = "function_latency", ax=None) -> Figure:
    """Before/after box plots of a duration metric per group (log scale, plain seconds), with n in the labels.

    The samples are milliseconds; one tick label per box (``<group>\\nbefore n=29``), slanted so long group
    names never collide."""
    import numpy as np
    from matplotlib.patches import Patch

    keys = sorted(k for k in comparison.samples if k[0] == name)
    fig, ax = _figure_and_ax(ax, figsize=(11, 4.8))
    data, labels, colours, positions = [], [], [], []
    for i, (_, group) in enumerate(keys):
        before, after = comparison.samples[(name, group)]
        for j, (label, values, colour) in enumerate((("before", before, "#1b6ca8"), ("after", after, "#d1495b"))):
            array = np.asarray(values, dtype=float)
            data.append(array[array > 0] / 1000.0)
            labels.append(f"{group}\n{label} n={len(values)}")
            colours.append(colour)
            positions.append(3 * i + j + 1)  # pairs side by side, a gap between groups
    what = name.replace("_", " ")
    if data:
        boxes = ax.boxplot(data, positions=positions, widths=0.7, patch_artist=True, showfliers=True,
                           medianprops={"color": "black"}, flierprops={"markersize": 3, "alpha": 0.5})
        # two-line labels one unit apart collide when flat: slant them (steeper for more groups)
        rotation = 0 if len(keys) <= 2 else 40 if len(keys) <= 6 else 60
        ax.set_xticks(positions, labels, fontsize="small", rotation=rotation, ha="right" if rotation else "center",
                      rotation_mode="anchor")
        for patch, colour in zip(boxes["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.5)
        _plain_seconds(ax)
        ax.legend(handles=[Patch(color="#1b6ca8", alpha=0.5, label="before"), Patch(color="#d1495b", alpha=0.5, label="after")],
                  loc="upper right", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    else:
        ax.text(0.5, 0.5, f"no {name} samples in either window", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel(f"{what} (s, log scale)")
    ax.set_title(f"{what}: before vs after the change (zero durations count in n, not drawn)")
    groups = ", ".join(f"{g} (n={len(comparison.samples[(name, g)][0])} before, {len(comparison.samples[(name, g)][1])} after)"
                       for _, g in keys)
    _describe(fig, f"Box plots of {what} in seconds (log scale) before and after the change"
                   + (f" for {groups}." if groups else ": no samples in either window."))
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
    import pandas as pd

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
    # the axis ends where the call (or the last thing placed on it) ends: a 144 s call gets a ~147 s axis
    ends = pd.to_numeric(pd.Series([duration, *spans.get("end_s", []), *timeline.tool_calls.get("end_s", [])]),
                         errors="coerce").dropna()
    right = max(float(ends.max()) if len(ends) else 0.0, 1.0) * 1.02
    ax.barh(y["actual"], duration, height=0.6, color="#888888", gid="whatif:actual")
    _bar_label(ax, f"{duration:.1f} s", duration, y["actual"], right)
    projected = timeline.what_if.duration_s
    if projected is not None:
        ax.barh(y["what-if"], projected, height=0.6, color="#1b6ca8", gid="whatif:projected")
        _bar_label(ax, f"{projected:.1f} s without {', '.join(k.replace('_', ' ') for k in timeline.what_if.kinds)}",
                   projected, y["what-if"], right)
    if spans.empty:
        ax.text(0.5, 0.62, "no transcript or trace: nothing to place on the time axis", ha="center",
                transform=ax.transAxes, gid="no-data")
    if shown:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=c, label=k.replace("_", " ")) for k, c in shown.items()], loc="upper left",
                  bbox_to_anchor=(1.005, 1.0), fontsize="small", title="findings", title_fontsize="small")
    ax.set_yticks([y[r] for r in rows], rows)
    ax.set_xlim(0, right)
    ax.set_xlabel("seconds from call start")
    title = f"{timeline.call_id}: {duration:.1f} s"
    if getattr(timeline, "synthetic", False):
        title += " (SYNTHETIC DEMO DATA)"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    tools = timeline.tool_calls
    failed = int((~tools["ok"].astype(bool)).sum()) if len(tools) else 0
    found = "; ".join(f"{f.kind.replace('_', ' ')} {f.seconds:.1f} s" for f in timeline.findings) or "none"
    alt = (f"Waterfall of call {timeline.call_id} ({duration:.1f} s): caller and agent speech, {len(tools)} tool call(s) "
           f"({failed} failed); findings: {found}")
    if projected is not None:
        alt += f"; without {', '.join(timeline.what_if.kinds)} the call would last {projected:.1f} s"
    _describe(fig, alt + ".")
    return fig


def _bar_label(ax, text: str, value: float, y: float, right: float) -> None:
    """A bar's label after its end, or inside it (white) when the bar runs to the axis end."""
    if value + 0.012 * len(text) * right < right:
        ax.annotate(text, (value, y), xytext=(4, -3), textcoords="offset points", fontsize="small")
    else:
        ax.annotate(text, (value, y), xytext=(-4, -3), textcoords="offset points", fontsize="small", ha="right",
                    color="white", fontweight="bold")


# --------------------------------------------------------------------------- overview
def _within_day(days: list, fraction: float) -> list:
    """Each local date as the moment ``fraction`` of the way through it: a day's bar or point sits on its own date,
    not across the midnight that begins it."""
    from datetime import datetime, timedelta

    return [datetime.combine(day, datetime.min.time()) + timedelta(days=fraction) for day in days]


def _day_axis(ax, days: list) -> None:
    """Date ticks over the days shown and a day either side: a window of a day or two otherwise reads as hours
    around one bar (its ticks 16:00 ... 08:00, half of them on the day before)."""
    from datetime import timedelta

    if days:
        first, last = _within_day([min(days), max(days)], 0)
        ax.set_xlim(first - timedelta(days=1), last + timedelta(days=2))
    _dates(ax)


def plot_calls_per_day(overview, *, ax=None) -> Figure:
    """Calls per local day (bars) with stuck sessions stacked in a second colour."""
    fig, ax = _figure_and_ax(ax)
    daily = overview.calls_per_day
    days = list(daily.index)
    ok = daily["calls"] - daily["stuck"]
    starts = _within_day(days, 0.1)  # each bar on its own day
    ax.bar(starts, ok, width=0.8, align="edge", color="#1b6ca8", label="calls")
    ax.bar(starts, daily["stuck"], width=0.8, align="edge", bottom=ok, color="#d1495b", label="stuck sessions")
    ax.set_ylim(0, max([1, *daily["calls"]]) * 1.05)  # the busiest day below the frame
    ax.set_ylabel(f"calls per day ({source_tz()})")
    title = "Calls per day" + (" (SYNTHETIC demo data)" if overview.synthetic else "")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small")  # beside the bars, never over them
    _day_axis(ax, days)
    span = f" from {days[0]} to {days[-1]}" if days else ""
    _describe(fig, f"Bar chart of calls per day{span} ({source_tz()}): {int(daily['calls'].sum())} calls, "
                   f"{int(daily['stuck'].sum())} stuck sessions stacked in red.")
    return fig


def plot_daily_success(overview, *, ax=None) -> Figure:
    """Daily booking success rate per path (a line per path; gaps on days without attempts)."""
    fig, ax = _figure_and_ax(ax)
    daily = overview.daily_success
    for i, path in enumerate(daily.columns):
        ax.plot(_within_day(list(daily.index), 0.5), daily[path] * 100, marker=".", color=_SERIES_COLOURS[i % len(_SERIES_COLOURS)], label=str(path))
    ax.set_ylim(-5, 105)
    ax.set_ylabel("booking success per day (%)")
    ax.set_title("Booking success by path" + (" (SYNTHETIC demo data)" if overview.synthetic else ""))
    if len(daily.columns):
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small")  # beside the lines, never over them
    _day_axis(ax, list(daily.index))
    days = list(daily.index)
    span = f" from {days[0]} to {days[-1]}" if days else ""
    _describe(fig, f"Line chart of daily booking success (%) per path{span}: "
                   f"{', '.join(map(str, daily.columns)) or 'no booking attempts'}; gaps are days without attempts.")
    return fig


# --------------------------------------------------------------------------- health report
def plot_health_booking(report, *, ax=None) -> Figure:
    """Daily booking success per path over baseline + period (Wilson intervals), the period shaded.

    ``report`` is a :class:`rca_toolkit.analyses.health.report.HealthReport`; the critical line is
    ``rules.bookings.BOOKING_CRITICAL``.
    """
    import numpy as np
    import pandas as pd

    fig, ax = _figure_and_ax(ax, figsize=(10, 3.8))
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
    days = PERIODS[report.period]
    period = f"{start:%Y-%m-%d}" if days == 1 else f"{start:%Y-%m-%d} to {start + pd.Timedelta(days=days - 1):%Y-%m-%d}"
    ax.set_title(f"Booking success per day and path: {report.baseline_label} and the reported period {period}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small")  # beside the data, never over it
    _dates(ax)
    paths = ", ".join(str(p) for p in sorted(daily["path"].unique())) if len(daily) else "no booking attempts"
    _describe(fig, f"Daily booking success (%) per path ({paths}) with 95 % Wilson intervals over {report.baseline_label} "
                   f"and the reported period {period} (shaded, verdict {report.verdict}); dashed line: critical 90 %.")
    return fig


# --------------------------------------------------------------------------- incident report
def plot_incident(report, *, ax=None) -> Figure:
    """Error rows carrying the incident's signature per day and group (stacked bars), with the deploys
    (dotted), each group's onset (red) and recovery (green) marked.

    ``report`` is a :class:`rca_toolkit.analyses.incident.report.IncidentReport`; days are source-zone days.
    """
    import pandas as pd

    fig, ax = _figure_and_ax(ax, figsize=(11, 4.2))
    tz = source_tz()
    daily = report.daily
    if daily.empty:
        ax.text(0.5, 0.5, "no error row carries the signature in the window", ha="center", va="center",
                transform=ax.transAxes, gid="no-errors")
    else:
        table = daily.pivot_table(index="day", columns="group", values="errors", aggfunc="sum", fill_value=0)
        days = pd.to_datetime(table.index) + pd.Timedelta(hours=12)
        bottom = None
        for colour, group in zip(_SERIES_COLOURS * 4, table.columns):
            ax.bar(days, table[group], width=0.8, bottom=bottom, color=colour, label=f"{group} ({int(table[group].sum())})",
                   gid=f"errors:{group}")
            bottom = table[group] if bottom is None else bottom + table[group]
    shown = report.changes[(report.changes["at"] >= report.since) & (report.changes["at"] < report.until)]
    first = True
    for row in shown[shown["kind"] == "deploy"].itertuples(index=False):
        ax.axvline(_wall(tz, row.at), color="#444444", linestyle=":", linewidth=1, label="deployment" if first else None,
                   gid=f"deploy:{row.commit}")
        first = False
    for g in report.groups:
        limited = getattr(g, "limited_by_window", False)  # the onset lies before --since: only first seen here
        ax.axvline(_wall(tz, g.first_bad), color="#cf222e", linewidth=1.5, linestyle=":" if limited else "-",
                   gid=f"{'first_seen' if limited else 'onset'}:{g.group}",
                   label=f"{'first seen (onset before the window)' if limited else 'onset'} {g.group}")
        if g.recovered_at is not None:
            ax.axvline(_wall(tz, g.recovered_at), color="#1a7f37", linewidth=1.5, linestyle="--", gid=f"recovery:{g.group}",
                       label=f"recovery {g.group}")
    ax.set_xlim(_wall(tz, report.since), _wall(tz, report.until))
    ax.set_ylabel("error rows per day")
    ax.set_title(f"Error rows carrying {report.signature!r} per day ({tz})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small")  # beside the bars, never over them
    _dates(ax)
    onsets = "; ".join(f"{g.group} onset {_wall(tz, g.first_bad):%Y-%m-%d %H:%M}"
                       + (f", recovered {_wall(tz, g.recovered_at):%Y-%m-%d %H:%M}" if g.recovered_at is not None else ", not recovered")
                       for g in report.groups) or "no group affected"
    _describe(fig, f"Stacked bar chart of error rows carrying {report.signature!r} per day ({tz}) from "
                   f"{_wall(tz, report.since):%Y-%m-%d} to {_wall(tz, report.until):%Y-%m-%d}: {onsets}; deployments dotted.")
    return fig
