"""What a run that judges nothing says, in a few lines read off its ``metrics.json``.

Why a module of its own: the report's verdict block (:mod:`rca_toolkit.runs.render`) and the run index's reason column
(:mod:`rca_toolkit.runs.index`) say the same lines, and the index must stay light (no nbformat, no nbconvert).
"""

from __future__ import annotations

NOTHING_SAID = "Every cell ran; the details follow."


def summary_lines(metrics: dict) -> list[str]:
    """Key numbers of a notebook that records no verdict: its ``headline`` (the lines its result object
    says, e.g. the incident's and the overview's), else from the shape of its metrics, at most five lines.
    A SYNTHETIC line is left out: the page's header says it once."""
    if isinstance(metrics.get("headline"), (str, list)):
        lines = metrics["headline"]
        lines = [lines] if isinstance(lines, str) else [str(x) for x in lines]
        lines = [x[2:] if x.startswith("- ") else x for x in lines]  # the block is a list already: no "- " in it
        return [x for x in lines if not x.startswith("SYNTHETIC")] or [NOTHING_SAID]
    lines: list[str] = []
    if isinstance(metrics.get("summary"), list):  # before/after
        lines += [str(x) for x in metrics["summary"] if not str(x).startswith("SYNTHETIC")]
    if isinstance(metrics.get("duration_s"), (int, float)):  # one call's timeline
        found = [f"{f.get('kind', '?').replace('_', ' ')} {f.get('seconds', 0):.1f} s" for f in metrics.get("findings") or []
                 if isinstance(f, dict)]
        lines.append(f"{metrics['duration_s']:.1f} s call; findings: {', '.join(found) or 'none'}.")
        what_if = metrics.get("what_if") or {}
        if isinstance(what_if, dict) and what_if.get("duration_s") is not None and what_if.get("removed"):
            kinds = ", ".join(k.replace("_", " ") for k in what_if.get("kinds", []))
            lines.append(f"Without {kinds}: {what_if['duration_s']:.1f} s.")
    return lines[:5] or [NOTHING_SAID]
