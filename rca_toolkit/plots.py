"""Matplotlib figures for result objects: ``plot_x(result, *, ax=None) -> Figure``.

No global state at import, no ``plt.show()``; figures are built on ``matplotlib.figure.Figure``
so they render headless in papermill and tests inspect their artists.
"""

from __future__ import annotations

from matplotlib.figure import Figure


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

    ``changepoints`` is a :class:`rca_toolkit.changepoints.ChangePoints`; ``at`` marks the
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
    ax.set_title(f"{name}: before (blue) vs after (red) the change")
    return fig
