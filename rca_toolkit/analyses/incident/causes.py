"""Which change explains a group's onset and which its recovery: deployments and migrations weighed
against the instants the attempts pin down.

Why not simply "the latest change before the first error": changes come in bursts (the phantom
columns reached ``main`` at 11:16:08 and a backfill script followed at 11:42:29; the partial fix at
13:20:08 was followed by a migration 27 s later and another change at 13:32). The attempts bound
each regime change to an interval: the onset lies after the group's last clean attempt and at or
before its first failure, the recovery after its last sign of the fault (the later of its last failing
attempt and its last error row) and at or before its first success after that.
Every change inside that interval fits the attempts equally well, so we pick, and say so:

1. changes whose description names the failing code (a class or method of the group's code path) or
   the column/table of the signature, then
2. the earliest: the first change after the old regime's last observation (later ones in the same
   interval are follow-ups as often as not); the others are returned as ``alternatives``.

With no change inside the interval, the onset falls back to the latest change before the first
error within ``bound`` (flagged: successful attempts came after it); a recovery gets no commit.
A group failing from the start of a given window (``limited_by_window``) gets no onset cause: its
onset lies before the window, and the latest change before its first failure there is not it.
Migrations from the ``migrations`` table count as changes only when no deployment row names them,
at the time in their file name (when they were written, not when they ran), and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rca_toolkit.analyses.code.migrations import name_prefix
from rca_toolkit.analyses.tables import when
from rca_toolkit.rules.timeutil import source_tz

BOUND = pd.Timedelta(days=3)  # how far before the first error a change may lie and still be a candidate
CHANGE_COLUMNS = ["at", "commit", "description", "kind", "basis"]


@dataclass
class Attribution:
    """The change picked for an onset or a recovery, how far it is from the data, and the runners-up."""

    commit: str | None
    at: pd.Timestamp | None
    description: str
    kind: str | None = None  # "deploy" or "migration"
    gap_s: float | None = None  # seconds from the change to the first observation it explains
    relevant: bool = False  # its description names the failing code or column
    inside: bool = True  # inside the interval the attempts allow
    alternatives: list[dict] = field(default_factory=list)


def changes_frame(deployments: pd.DataFrame, migrations: pd.DataFrame | None = None,
                  deployments_file: str | None = None) -> pd.DataFrame:
    """Deployments (``sources.deployments.load_deployments``) and unnamed migrations as one sorted frame."""
    rows = [{"at": r.deployed_at, "commit": str(r.commit or ""), "description": str(r.description), "kind": "deploy",
             "basis": f"deployment list {Path(deployments_file or deployments.attrs.get('source_file', '')).name}".strip()}
            for r in deployments.itertuples(index=False)]
    named = " ".join(str(d) for d in deployments["description"]) if len(deployments) else ""
    if migrations is not None and len(migrations):
        for r in migrations.itertuples(index=False):
            name = str(r.migration)
            stamp = name_prefix(name)
            if stamp is None or name in named:
                continue
            at = pd.Timestamp(stamp).tz_localize(source_tz(), ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
            rows.append({"at": at, "commit": name, "kind": "migration", "basis": "migrations table (time from the file name)",
                         "description": f"migration {name} (batch {int(r.batch)}); the time is the date in its name, "
                                        f"not when it ran"})
    frame = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.sort_values("at", kind="stable").reset_index(drop=True)


def hint_words(code_paths, column: str | None = None, table: str | None = None) -> list[str]:
    """Words that tie a change to the failing code: class and method names of the code paths, the column, the table."""
    words = set()
    for path in code_paths:
        for part in re.split(r"::|\\", str(path)):
            if len(part) >= 4:
                words.add(part)
    words |= {w for w in (column, table) if w}
    return sorted(words)


def _relevant(description: str, words: list[str]) -> bool:
    text = description.casefold()
    return any(w.casefold() in text for w in words)


def _pick(inside: pd.DataFrame, words: list[str]) -> tuple[pd.Series, list[dict]]:
    ranked = inside.assign(relevant=[_relevant(d, words) for d in inside["description"]])
    ranked = ranked.sort_values(["relevant", "at"], ascending=[False, True], kind="stable")
    best = ranked.iloc[0]
    others = [{"commit": r.commit, "at": iso(r.at), "kind": r.kind, "description": r.description,
               "relevant": bool(r.relevant)} for r in ranked.iloc[1:].itertuples(index=False)]
    return best, others


def onset_cause(changes: pd.DataFrame, first_bad: pd.Timestamp, last_clean: pd.Timestamp | None, words: list[str], *,
                bound: pd.Timedelta = BOUND) -> Attribution | None:
    """The change that best explains an onset first observed at ``first_bad``; None when no change lies within ``bound``."""
    lower = first_bad - bound
    inside = changes[(changes["at"] > max(lower, last_clean) if last_clean is not None else changes["at"] > lower)
                     & (changes["at"] <= first_bad)]
    if len(inside):
        best, others = _pick(inside, words)
        return Attribution(best.commit, best["at"], best.description, best.kind, (first_bad - best["at"]).total_seconds(),
                           bool(best.relevant), True, others)
    earlier = changes[(changes["at"] > lower) & (changes["at"] <= first_bad)]
    if earlier.empty:
        return None
    best = earlier.iloc[-1]
    note = (f"{best.description} (before the group's last successful attempt at {when(last_clean)}: "
            f"successful attempts came after it, so it explains the onset only with a delay)")
    return Attribution(best.commit, best["at"], note, best.kind, (first_bad - best["at"]).total_seconds(),
                       _relevant(best.description, words), False, [])


def recovery_cause(changes: pd.DataFrame, last_failure: pd.Timestamp, recovered_at: pd.Timestamp,
                   words: list[str]) -> Attribution:
    """The change that best explains a recovery between the last sign of the fault (``GroupImpact.recovery_from``:
    the later of the last failing attempt and the last error row) and the first success after it."""
    inside = changes[(changes["at"] > last_failure) & (changes["at"] <= recovered_at)]
    if inside.empty:
        return Attribution(None, None, f"no known change between the last failure ({when(last_failure)}) and the first "
                                       f"success ({when(recovered_at)})", inside=False)
    best, others = _pick(inside, words)
    return Attribution(best.commit, best["at"], best.description, best.kind, (recovered_at - best["at"]).total_seconds(),
                       bool(best.relevant), True, others)


def attribute(impacts, changes: pd.DataFrame, signature_words: list[str], *, bound: pd.Timedelta = BOUND):
    """``(onsets, recoveries)``: per group of :func:`rca_toolkit.analyses.incident.groups.impacts`, the
    onset's and the recovery's attribution (None: no candidate, not recovered, or an onset before the window)."""
    onsets, recoveries = {}, {}
    for g in impacts:
        words = hint_words(g.code_paths) + list(signature_words)
        onsets[g.group] = None if g.limited_by_window else onset_cause(changes, g.first_bad, g.last_clean, words, bound=bound)
        recoveries[g.group] = (recovery_cause(changes, g.recovery_from, g.recovered_at, words)
                               if g.recovered_at is not None else None)
    return onsets, recoveries


def iso(ts: pd.Timestamp | None) -> str | None:
    """An instant as ISO-8601 in the source zone (Europe/Berlin by default), with its offset."""
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_convert(source_tz()).isoformat()


def span(delta) -> str:
    """A duration in words: ``3 days``, ``1 day``, ``36 h``, ``90 min`` (never ``3 days 00:00:00``)."""
    seconds = pd.Timedelta(delta).total_seconds()
    day = 86400
    if seconds and seconds % day == 0:
        days = int(seconds // day)
        return f"{days} day" if days == 1 else f"{days} days"
    if seconds >= 7200:
        return f"{seconds / 3600:g} h"
    if seconds >= 120:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


__all__ = ["Attribution", "BOUND", "attribute", "changes_frame", "hint_words", "iso", "onset_cause", "recovery_cause", "span"]
