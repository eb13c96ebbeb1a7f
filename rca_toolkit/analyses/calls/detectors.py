"""Findings on one call's span table: re-ask loops, dead air, slow/failed tools, duplicate side
effects, N+1 queries, and the what-if projection that removes chosen findings.

Every finding carries its time span, its ``seconds`` and the ``removable`` intervals a fix
would save; the what-if takes the *union* of the removable intervals of the chosen kinds, so
overlapping findings (a failed tool inside a loop) are never counted twice.

Thresholds (documented, overridable):

* loop: agent turns (fragments less than 0.5 s apart joined) are "near-identical" when
  ``max(SequenceMatcher.ratio, token Jaccard) >= LOOP_SIMILARITY`` (0.6) on lower-cased,
  punctuation-free text *and* they do not ask about different things (keyword topics: a
  name question never matches a phone question of the same template); a loop is
  ``>= LOOP_MIN_REPEATS`` (3) such turns with at most ``LOOP_MAX_INTERLEAVE`` (2) other
  agent turns between consecutive ones. Iteration *i* runs
  from prompt *i* to prompt *i+1*; the last one ends where the next different agent turn
  starts. The finding's span and ``seconds`` cover the *extra* iterations (prompt 2 to the
  loop's end) -- what a first-time success would have saved; ``details`` has the whole loop.
  Repeated tool calls of one family with similar arguments (ratio >= 0.6 on canonical JSON)
  join an overlapping text loop, or form a loop of their own.
* dead air: a silent gap (nobody speaks) longer than ``dead_air_s`` (3 s) between utterances
  or before the first one; removable = the part beyond the threshold.
* slow tool: latency > ``slow_tool_s`` (2 s). failed tool: ``ok`` False; removable = the part
  of its run nobody spoke over (the caller waited for nothing); an error-log row from 0.5 s
  before its start to 2 s after its end is quoted as the server-side cause.
* duplicate side effect: a booking-type tool called again with identical arguments (Retell's
  function retry); removable = its silent part.
* bad argument: a placeholder ``call_id`` in the arguments (P18) or a date argument
  (``dd.mm.yyyy`` / ``yyyy-mm-dd``) before the call's own Europe/Berlin date (``"heute"`` sent
  as ``04.10.2023``); no removable time.
* N+1: >= ``N_PLUS_ONE_MIN`` (5) identical normalised queries in one request; needs a frame
  of queries (``sql`` and optionally ``request_id``, ``start_s``, ``duration_ms``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher

import pandas as pd

from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.call_ids import is_real_call_id

LOOP_SIMILARITY = 0.6
LOOP_MIN_REPEATS = 3
LOOP_MAX_INTERLEAVE = 2
TURN_JOIN_GAP_S = 0.5
TOOL_ARG_SIMILARITY = 0.6
N_PLUS_ONE_MIN = 5
DEFAULT_WHAT_IF = ("loop", "dead_air", "failed_tool")
FINDING_KINDS = ("loop", "dead_air", "slow_tool", "failed_tool", "duplicate_side_effect", "bad_argument", "n_plus_one")
SIDE_EFFECT_PREFIXES = ("book", "collect_appointment", "cancel", "reschedule", "update_appointment", "create")
TOPICS = {  # words in a repeated prompt -> what the loop is about
    "the caller's name": ("name", "namen", "heißen", "heissen", "buchstabieren", "nachname", "vorname"),
    "the phone number": ("telefonnummer", "rufnummer", "phone"),
    "the date": ("datum", "welchem tag", "welcher tag", "date"),
    "the time": ("uhrzeit", "wie viel uhr", "time"),
    "the service": ("dienstleistung", "service"),
    "the e-mail address": ("e-mail", "email"),
}
TOOL_TOPICS = {"check_customer": "the caller's name"}
_PUNCT = re.compile(r"[^\w\s]")
_DATE_DE = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$")
_DATE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SQL_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_SQL_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_SQL_IN = re.compile(r"\bin\s*\((?:\s*\?\s*,?)+\)")


@dataclass
class Finding:
    kind: str
    label: str
    start_s: float | None
    end_s: float | None
    seconds: float
    removable_s: float = 0.0
    removable: list[tuple[float, float]] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["removable"] = [list(iv) for iv in self.removable]
        return out


@dataclass
class WhatIf:
    duration_s: float | None
    removed_s: float
    kinds: tuple[str, ...]
    removed: list[dict]

    def to_dict(self) -> dict:
        return {"duration_s": self.duration_s, "removed_s": self.removed_s, "kinds": list(self.kinds),
                "removed": self.removed}


# --------------------------------------------------------------------------- interval helpers
def union_length(intervals) -> float:
    """Total length of a union of ``(start, end)`` intervals."""
    total, cur_a, cur_b = 0.0, None, None
    for a, b in sorted((a, b) for a, b in intervals if b > a):
        if cur_b is None or a > cur_b:
            total += 0 if cur_b is None else cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    return total + (0 if cur_b is None else cur_b - cur_a)


def silent_parts(start: float, end: float, speech: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``[start, end]`` minus the speech intervals."""
    parts, cursor = [], start
    for a, b in sorted(speech):
        if b <= cursor or a >= end:
            continue
        if a > cursor:
            parts.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        parts.append((cursor, end))
    return [(round(a, 3), round(b, 3)) for a, b in parts if b - a > 0]


def _speech(spans: pd.DataFrame) -> list[tuple[float, float]]:
    sp = spans[spans["kind"].isin(["caller_speech", "agent_speech"])]
    return list(zip(sp["start_s"].astype(float), sp["end_s"].astype(float)))


# --------------------------------------------------------------------------- loops
def _norm(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", str(text).lower()).split())


def similarity(a: str, b: str) -> float:
    """max(SequenceMatcher ratio, token Jaccard) of two normalised texts."""
    a, b = _norm(a), _norm(b)
    if not a or not b:
        return 0.0
    ta, tb = set(a.split()), set(b.split())
    return max(SequenceMatcher(None, a, b).ratio(), len(ta & tb) / len(ta | tb))


def turns(spans: pd.DataFrame, *, join_gap_s: float = TURN_JOIN_GAP_S) -> pd.DataFrame:
    """Speech spans of one role less than ``join_gap_s`` apart merged into turns (role, start_s, end_s, text).

    Retell splits one response into fragments that follow each other without a pause; a
    longer pause starts a new turn even for the same speaker (a filler, then a new question).
    """
    sp = spans[spans["kind"].isin(["caller_speech", "agent_speech"])].sort_values("start_s", kind="stable")
    rows: list[dict] = []
    for rec in sp.itertuples(index=False):
        if rows and rows[-1]["role"] == rec.role and rec.start_s - rows[-1]["end_s"] <= join_gap_s:
            rows[-1]["end_s"] = max(rows[-1]["end_s"], rec.end_s)
            rows[-1]["text"] += " " + str(rec.text)
        else:
            rows.append({"role": rec.role, "start_s": rec.start_s, "end_s": rec.end_s, "text": str(rec.text)})
    return pd.DataFrame(rows, columns=["role", "start_s", "end_s", "text"])


def _runs(members: list[int], max_gap: int) -> list[list[int]]:
    runs: list[list[int]] = []
    for m in members:
        if runs and m - runs[-1][-1] - 1 <= max_gap:
            runs[-1].append(m)
        else:
            runs.append([m])
    return runs


def topics(text: str) -> set[str]:
    """What a prompt asks about (name, date, time, ...), from :data:`TOPICS` keywords."""
    norm = _norm(text)
    return {topic for topic, words in TOPICS.items() if any(re.search(r"\b" + re.escape(w), norm) for w in words)}


def _topic(texts: list[str], families: list[str]) -> str | None:
    for fam in families:
        if fam in TOOL_TOPICS:
            return TOOL_TOPICS[fam]
    found = [t for text in texts for t in topics(text)]
    return max(set(found), key=found.count) if found else None


def _same_prompt(a: str, b: str, threshold: float) -> bool:
    """Near-identical and not about different things (template questions for name vs phone differ)."""
    ta, tb = topics(a), topics(b)
    return similarity(a, b) >= threshold and (not ta or not tb or bool(ta & tb))


def detect_loops(spans: pd.DataFrame, tool_calls: pd.DataFrame, *, duration_s: float | None,
                 threshold: float = LOOP_SIMILARITY, min_repeats: int = LOOP_MIN_REPEATS) -> list[Finding]:
    """Re-ask loops from near-identical agent turns and/or repeated similar tool calls.

    Turns join a cluster when they are similar to any member (single linkage). Runs of one
    cluster that overlap in time (a question and the filler repeated with it) are one loop,
    counted by its most repeated turn.
    """
    agent = turns(spans).query("role == 'agent'").reset_index(drop=True)
    clusters: list[list[int]] = []
    for i, text in enumerate(agent["text"]):
        home = next((c for c in clusters if any(_same_prompt(agent.at[m, "text"], text, threshold) for m in c)), None)
        if home is None:
            clusters.append([i])
        else:
            home.append(i)
    runs = sorted((r for c in clusters for r in _runs(c, LOOP_MAX_INTERLEAVE) if len(r) >= min_repeats), key=lambda r: r[0])
    groups: list[list[list[int]]] = []
    for run in runs:
        if groups and run[0] <= max(m for r in groups[-1] for m in r):
            groups[-1].append(run)
        else:
            groups.append([run])
    end_of_speech = max([e for _, e in _speech(spans)], default=duration_s or 0.0)
    findings = []
    for group in groups:
        primary = max(group, key=lambda r: (len(r), -r[0]))
        members = {m for r in group for m in r}
        nxt = agent[(agent.index > max(members)) & ~agent.index.isin(members)]
        loop_end = float(nxt["start_s"].iloc[0]) if len(nxt) else float(end_of_speech)
        loop_start = float(agent.at[min(members), "start_s"])
        tools = _tools_in(tool_calls, loop_start, loop_end)
        findings.append(_loop_finding(agent.loc[primary], loop_start, loop_end, tools, "agent prompts"))
    covered = [(f.details["loop_start_s"], f.end_s) for f in findings]
    findings += _tool_loops(tool_calls, covered, min_repeats)
    return findings


def _tools_in(tool_calls: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    if tool_calls.empty:
        return tool_calls
    return tool_calls[(tool_calls["start_s"] >= start) & (tool_calls["start_s"] < end)]


def _loop_finding(prompts: pd.DataFrame, loop_start: float, loop_end: float, tools: pd.DataFrame, what: str) -> Finding:
    n = len(prompts)
    extra_start = float(prompts["start_s"].iloc[1])
    families = [f for f in tools["family"].dropna()] if len(tools) else []
    topic = _topic(list(prompts["text"]), families)
    about = topic or f'"{str(prompts["text"].iloc[0])[:40]}"'
    label = f"re-asks {about} {n}×" if what == "agent prompts" else f"repeats {what} {n}× ({about})"
    if families:
        counts = pd.Series(families).value_counts()
        label += " with " + ", ".join(f"{c} {fam}" for fam, c in counts.items()) + " call(s)"
    seconds = round(loop_end - extra_start, 3)
    return Finding("loop", label, round(extra_start, 3), round(loop_end, 3), seconds, seconds,
                   [(round(extra_start, 3), round(loop_end, 3))],
                   {"topic": topic, "iterations": n, "loop_start_s": round(loop_start, 3),
                    "loop_seconds": round(loop_end - loop_start, 3), "prompt_starts_s": list(prompts["start_s"].round(3)),
                    "source": what})


def _canon(args) -> str:
    if not isinstance(args, dict):
        return json.dumps(args, sort_keys=True, default=str)
    return json.dumps({k: v for k, v in args.items() if k != "call_id"}, sort_keys=True, default=str, ensure_ascii=False)


def _tool_loops(tool_calls: pd.DataFrame, covered: list, min_repeats: int) -> list[Finding]:
    out = []
    if tool_calls.empty:
        return out
    for family, group in tool_calls.dropna(subset=["family"]).groupby("family", sort=False):
        group = group.sort_values("start_s")
        similar = [i for i, args in enumerate(group["arguments"])
                   if SequenceMatcher(None, _canon(group["arguments"].iloc[0]), _canon(args)).ratio() >= TOOL_ARG_SIMILARITY]
        if len(similar) < min_repeats:
            continue
        calls = group.iloc[similar]
        start, end = float(calls["start_s"].iloc[0]), float(calls["end_s"].iloc[-1])
        if any(a <= start <= b for a, b in covered):
            continue  # already explained by a text loop that contains these calls
        prompts = calls.assign(text=calls["name"])
        out.append(_loop_finding(prompts, start, end, calls, f"{family} with similar arguments"))
    return out


# --------------------------------------------------------------------------- other detectors
def detect_dead_air(gaps: pd.DataFrame, tool_calls: pd.DataFrame, *, threshold_s: float) -> list[Finding]:
    """Silent gaps over the threshold (the attribution's ``dead_air`` gaps)."""
    out = []
    for gap in gaps[gaps["category"] == "dead_air"].itertuples(index=False):
        where = "before the first utterance" if gap.prev_role is None else f"after the {gap.prev_role} turn"
        label = f"{gap.seconds:.1f} s of silence {where}"
        before = tool_calls[(tool_calls["end_s"] <= gap.start_s + 0.001) & (tool_calls["end_s"] >= gap.start_s - 5)] \
            if not tool_calls.empty else tool_calls
        during = tool_calls[(tool_calls["start_s"] < gap.end_s) & (tool_calls["end_s"] > gap.start_s)] \
            if not tool_calls.empty else tool_calls
        if len(during):
            label += " while " + ", ".join(during["name"]) + " ran"
        elif len(before):
            last = before.iloc[-1]
            label += f" ({last['name']} {'returned' if last['ok'] else 'failed'} at {last['end_s']:.2f} s)"
        cut = round(gap.start_s + threshold_s, 3)
        out.append(Finding("dead_air", label, gap.start_s, gap.end_s, gap.seconds, round(gap.end_s - cut, 3),
                           [(cut, gap.end_s)], {"threshold_s": threshold_s, "prev_role": gap.prev_role,
                                                "next_role": gap.next_role}))
    return out


def _bad_arguments(call, call_date) -> list[str]:
    """Argument problems: a placeholder ``call_id`` (P18) or a date before the call's own date."""
    problems = []
    args = call.arguments if isinstance(call.arguments, dict) else {}
    if "call_id" in args and not is_real_call_id(str(args["call_id"])):
        problems.append(f"call_id={args['call_id']!r} is not a Retell call id (P18)")
    for key, value in args.items():
        text = str(value).strip()
        if call_date is None or not (_DATE_DE.match(text) or _DATE_ISO.match(text)):
            continue
        day = pd.to_datetime(text, dayfirst=bool(_DATE_DE.match(text)), errors="coerce")
        if pd.notna(day) and day.date() < call_date:
            problems.append(f"{key}={text!r} lies before the call's date {call_date.isoformat()}")
    return problems


def detect_tools(tool_calls: pd.DataFrame, spans: pd.DataFrame, *, slow_tool_s: float, call_date=None) -> list[Finding]:
    """Slow and failed tool calls, duplicate side effects (Retell retries) and bad arguments."""
    out: list[Finding] = []
    if tool_calls.empty:
        return out
    speech = _speech(spans)
    errors = spans[spans["kind"] == "error"]
    seen: dict[tuple, int] = {}
    for call in tool_calls.itertuples(index=False):
        end = call.end_s if call.end_s == call.end_s else call.start_s
        latency = call.latency_s if call.latency_s == call.latency_s else 0.0
        if latency > slow_tool_s:
            parts = silent_parts(call.start_s + slow_tool_s, end, speech)
            out.append(Finding("slow_tool", f"{call.name} took {latency:.2f} s (> {slow_tool_s:g} s)", call.start_s, end,
                               latency, round(union_length(parts), 3), parts, {"name": call.name}))
        if not call.ok:
            parts = silent_parts(call.start_s, end, speech)
            logged = [e.label for e in errors.itertuples(index=False) if call.start_s - 0.5 <= e.start_s <= end + 2.0]
            label = f"{call.name} failed: {call.error}" + (f" (error log: {logged[0]})" if logged else "")
            out.append(Finding("failed_tool", label, call.start_s, end, latency, round(union_length(parts), 3), parts,
                               {"name": call.name, "transport_ok": call.transport_ok, "error": call.error,
                                "error_log": logged}))
        for problem in _bad_arguments(call, call_date):
            out.append(Finding("bad_argument", f"{call.name}: {problem}", call.start_s, end, 0.0, 0.0, [],
                               {"name": call.name}))
        family = call.family or ""
        if family.startswith(SIDE_EFFECT_PREFIXES):
            key = (family, _canon(call.arguments))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                parts = silent_parts(call.start_s, end, speech)
                out.append(Finding("duplicate_side_effect",
                                   f"{call.name} called again with identical arguments ({seen[key]}×): possible Retell "
                                   "retry, risk of a duplicate booking", call.start_s, end, latency,
                                   round(union_length(parts), 3), parts, {"name": call.name, "occurrence": seen[key]}))
    return out


def normalise_sql(sql: str) -> str:
    """Literals to ``?``, IN lists folded, whitespace collapsed, lower case."""
    text = _SQL_NUMBER.sub("?", _SQL_STRING.sub("?", str(sql).lower()))
    return " ".join(_SQL_IN.sub("in (?)", text).split())


def detect_n_plus_one(queries: pd.DataFrame | None, *, min_repeats: int = N_PLUS_ONE_MIN) -> tuple[list[Finding], str | None]:
    """N+1 patterns in query-level data; returns ``(findings, note)`` and skips honestly without data."""
    if queries is None or len(queries) == 0:
        return [], ("N+1: skipped, no query-level data (retell_function_traces.db_query_count is never written); "
                    "pass a frame of queries to check")
    if "sql" not in queries:
        return [], "N+1: skipped, the query frame has no 'sql' column"
    frame = queries.assign(norm=queries["sql"].map(normalise_sql))
    frame["request"] = frame["request_id"] if "request_id" in frame else "all"
    out = []
    for (request, norm), group in frame.groupby(["request", "norm"], sort=False):
        if len(group) < min_repeats:
            continue
        start = float(group["start_s"].min()) if "start_s" in group else None
        end = float(group["start_s"].max()) if "start_s" in group else None
        seconds = float(group["duration_ms"].sum()) / 1000 if "duration_ms" in group else 0.0
        out.append(Finding("n_plus_one", f"{len(group)}× the same query in request {request}: {norm[:80]}",
                           start, end, round(seconds, 3), 0.0, [], {"request": str(request), "count": len(group)}))
    return out, None


def what_if(duration_s: float | None, findings: list[Finding], kinds=DEFAULT_WHAT_IF) -> WhatIf:
    """Projected duration with the removable time of the chosen finding kinds taken out (union)."""
    kinds = tuple(k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k.strip())
    unknown = [k for k in kinds if k not in FINDING_KINDS]
    if unknown:
        raise ConfigError(f"unknown finding kind(s) for the what-if: {', '.join(unknown)}",
                          hint=f"choose from {', '.join(FINDING_KINDS)}")
    chosen = [f for f in findings if f.kind in kinds and f.removable_s > 0]
    if duration_s is None:
        return WhatIf(None, 0.0, kinds, [])
    clip = [(max(0.0, a), min(duration_s, b)) for f in chosen for a, b in f.removable]
    removed_s = round(union_length(clip), 3)
    removed = [{"kind": f.kind, "label": f.label, "seconds": f.removable_s} for f in chosen]
    return WhatIf(round(duration_s - removed_s, 3), removed_s, kinds, removed)


__all__ = ["DEFAULT_WHAT_IF", "FINDING_KINDS", "Finding", "WhatIf", "detect_dead_air", "detect_loops", "detect_n_plus_one",
           "detect_tools", "normalise_sql", "similarity", "silent_parts", "turns", "union_length", "what_if"]
