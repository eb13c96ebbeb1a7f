"""One ordered list of what happened, each event with its evidence: deploys, migrations, onsets,
the first ACT day, fixes, last errors and recoveries.

Why a list and not prose: a postmortem's timeline is where claims hide ("fixed at 13:20"); here each
line names where its instant comes from (a deployment list, the migrations table, an error row, an
attempt, a health report). The ``at`` of each event is full ISO-8601 (the JSON); the texts give
instants in local time to the second (:func:`rca_toolkit.analyses.tables.when`). A group failing from
the start of a given window gets ``first_seen`` instead of ``onset``: its onset lies before.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from rca_toolkit.analyses.incident.causes import Attribution, iso
from rca_toolkit.analyses.incident.detection import Detection
from rca_toolkit.analyses.incident.groups import GroupImpact
from rca_toolkit.analyses.tables import when
from rca_toolkit.rules.timeutil import midnight

KINDS = ("deploy", "migration", "onset", "first_seen", "detected", "fix", "last_error", "recovery")


def events(changes: pd.DataFrame, impacts: list[GroupImpact], onsets: dict[str, Attribution | None],
           recoveries: dict[str, Attribution | None], detection: Detection, since: pd.Timestamp,
           until: pd.Timestamp) -> list[dict]:
    """``[{"at", "kind", "text"}]`` sorted by time (ties in ``KINDS`` order), instants in the source zone."""
    out: list[tuple[pd.Timestamp, str, str]] = []
    for c in changes[(changes["at"] >= since) & (changes["at"] < until)].itertuples(index=False):
        label = f"{c.commit[:12]} " if c.commit and c.kind == "deploy" else ""
        out.append((c.at, "deploy" if c.kind == "deploy" else "migration", f"{label}{c.description} [{c.basis}]"))
    for g in impacts:
        cause = onsets.get(g.group)
        first_row = f"first error row {when(g.first_error)}, {g.errors:,} in the window"
        if g.limited_by_window:
            out.append((g.first_bad, "first_seen", f"{g.group}: first failure in the window, failing from the window "
                                                        f"start on ({first_row}): the onset lies before the window start; "
                                                        f"widen --since"))
        else:
            onset_text = f"{g.group}: onset, the first failure carrying the signature (booking attempt or error row; {first_row})"
            if cause is not None:
                onset_text += (f"; cause {(cause.commit or '')[:12]} ({cause.kind} at {when(cause.at)}, "
                               f"{cause.gap_s:.0f} s earlier)")
            out.append((g.first_bad, "onset", onset_text))
        if g.last_error is not None:
            out.append((g.last_error, "last_error", f"{g.group}: last error row carrying the signature"))
        fix = recoveries.get(g.group)
        if fix is not None and fix.at is not None:
            out.append((fix.at, "fix", f"{g.group}: recovered by {(fix.commit or '')[:12]} {fix.description}"))
        if g.recovered_at is not None:
            out.append((g.recovered_at, "recovery", f"{g.group}: first successful booking attempt after the last error "
                                                    f"({g.failed_attempts:,} failed attempts before it)"))
    if detection.first_act_day:
        end_of_day = midnight(date.fromisoformat(detection.first_act_day) + timedelta(days=1))
        limited = (f" (the first ACT from {detection.limited_from} on: earlier days were not checked, the incident "
                   f"began before the window start)" if detection.limited_by_window else "")
        out.append((end_of_day, "detected", f"the daily health report of {detection.first_act_day} says "
                                            f"{detection.verdict_line}{limited}"))
    out.sort(key=lambda e: (e[0], KINDS.index(e[1])))
    return [{"at": iso(at), "kind": kind, "text": text} for at, kind, text in out]


__all__ = ["KINDS", "events"]
