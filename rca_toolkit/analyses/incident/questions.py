"""Open questions: what the data cannot answer about an incident, computed from what is missing or ambiguous.

Why computed: a postmortem template's "open questions" heading invites guesses; here each line is
there because something specific is absent (no change explains an onset, an onset before the window
start, several changes fit one interval, a path never recovered in the window, error rows without an
attempt, lost bookings whose fate no table records).
"""

from __future__ import annotations

import pandas as pd

from rca_toolkit.analyses.incident import groups
from rca_toolkit.analyses.incident.causes import span
from rca_toolkit.analyses.tables import when


def open_questions(impacts, onsets, recoveries, bound: pd.Timedelta, detection=None) -> list[str]:
    """What the data cannot answer about this incident, computed from what is missing or ambiguous
    (``detection``: the :class:`~rca_toolkit.analyses.incident.detection.Detection`, if computed)."""
    out = []
    for g in impacts:
        onset, fix = onsets.get(g.group), recoveries.get(g.group)
        if g.limited_by_window:
            out.append(f"{g.group}: failing from the window start on (first failure in the window {when(g.first_bad)}, "
                       f"no successful attempt before it in the window): the onset lies before the window start and "
                       f"its cause is not judged; widen --since.")
        elif onset is None:
            out.append(f"{g.group}: no deployment or migration lies within {span(bound)} before the first failure: "
                       f"the cause is not in the change lists.")
        elif onset.alternatives:
            out.append(f"{g.group}: {listed(onset.alternatives)} in the onset interval of {onset.commit[:12]} as well; "
                       f"the attempts cannot tell them apart.")
        if g.recovered_at is None and (g.errors or g.failed_attempts):
            out.append(f"{g.group}: no successful attempt after the last failure ({when(g.recovery_from)}) in the window: "
                       f"unresolved, or the window ends too early.")
        elif fix is not None and fix.alternatives:
            out.append(f"{g.group}: {listed(fix.alternatives)} in the recovery interval of {(fix.commit or '')[:12]} as well; "
                       f"the attempts cannot tell them apart.")
        if g.group == groups.UNATTRIBUTED:
            out.append(f"{g.errors:,} error rows carry the signature without a booking attempt: what they cost is not measured.")
        if any(a is not None and a.kind == "migration" for a in (onset, fix)):
            out.append(f"{g.group}: the change picked is a migration dated by its file name; when it ran is not recorded.")
    if detection is not None and detection.limited_by_window:
        out.append(f"When monitoring would first have said ACT: only days from {detection.limited_from} (inside the "
                   f"window) were checked, while the incident began before the window start; widen --since.")
    orphaned = sum(g.orphaned for g in impacts)
    if orphaned:
        out.append(f"Whether the {orphaned:,} orphaned Cal.com bookings were honoured, cancelled or re-created by hand "
                   f"is not in these tables.")
    if impacts:
        out.append("Callers who hung up before a booking function ran leave no attempt: bookings lost upstream of the "
                   "booking path are not counted.")
    return out


def listed(alternatives: list[dict]) -> str:
    names = [f"{a['commit'][:12] or a['description']} ({when(a['at'])})" for a in alternatives]
    return ("change " if len(names) == 1 else "changes ") + ", ".join(names) + (" lies" if len(names) == 1 else " lie")


__all__ = ["listed", "open_questions"]
