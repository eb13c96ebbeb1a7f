"""Findings on one call's span table: re-ask loops, dead air, slow/failed tools, duplicate side
effects, N+1 queries, and the what-if projection that removes chosen findings.

Every finding carries its time span, its ``seconds`` and the ``removable`` intervals a fix
would save; the what-if takes the *union* of the removable intervals of the chosen kinds, so
overlapping findings (a failed tool inside a loop) are never counted twice.

Thresholds (documented, overridable):

* loop: agent turns (fragments less than 0.5 s apart joined) are "near-identical" when
  their text similarity (``rapidfuzz``: the best of the Indel ratio, the token-sorted ratio and
  the token Jaccard, on lower-cased, punctuation-free text) is ``>= LOOP_SIMILARITY`` (0.6)
  *and* they do not ask about different things (keyword topics: a name question never
  matches a phone question of the same template); a loop is ``>= LOOP_MIN_REPEATS`` (2) such
  turns with at most ``LOOP_MAX_INTERLEAVE`` (2) other agent turns between consecutive ones.
  Fewer than ``LOOP_MIN_STATEMENT_REPEATS`` (3) count only as a prompt asked again: each turn
  asks something (a question mark or a topic) and they share a topic or are nearly the same
  words (similarity ``>= LOOP_PAIR_SIMILARITY``, 0.85); "Einen Moment bitte" said twice
  around a lookup is no loop. Iteration *i* runs from prompt *i* to prompt *i+1*; the last
  one ends where the next different agent turn starts. The finding's span and ``seconds``
  cover the *extra* iterations (prompt 2 to the loop's end) -- what a first-time success
  would have saved; ``details`` has the whole loop, its ``iterations`` and ``repeats`` (the
  extra iterations). Node re-entries (the flow enters a node it already went through; the
  loop ends at the next node after its last re-entry) and repeated tool calls form loops of
  their own where no text loop covers them: ``>= 3`` calls of one function with similar
  arguments (ratio >= 0.6 on canonical JSON), or ``>= 2`` calls of one function with
  equivalent arguments (the same after case, spaces, umlauts, date format and ``call_id`` are
  normalised); overlapping repeats of several functions are one loop (a booking cycle
  repeated).
* dead air: a silent gap (nobody speaks) longer than ``dead_air_s`` (3 s) between utterances
  or before the first one; removable = the part beyond the threshold.
* slow tool: latency > ``slow_tool_s`` (2 s). failed tool: ``ok`` False; removable = the part
  of its run nobody spoke over (the caller waited for nothing); an error-log row from 0.5 s
  before its start to 2 s after its end is quoted as the server-side cause.
* duplicate side effect: a booking-type tool (same function, version suffix ignored) called again
  with identical arguments (Retell's function retry); removable = its silent part.
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

import pandas as pd
from rapidfuzz import fuzz

from rca_toolkit.analyses.tables import cut
from rca_toolkit.errors import ConfigError
from rca_toolkit.rules.call_ids import is_real_call_id
from rca_toolkit.rules.functions import base_name
from rca_toolkit.rules.jsonutil import decode_json

LOOP_SIMILARITY = 0.6
LOOP_MIN_REPEATS = 2
LOOP_MIN_STATEMENT_REPEATS = 3  # below this, only a prompt asked again about the same thing is a loop
LOOP_PAIR_SIMILARITY = 0.85
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
    """The best of rapidfuzz's Indel ratio, its token-sorted ratio and the token Jaccard of two normalised texts (0..1)."""
    a, b = _norm(a), _norm(b)
    if not a or not b:
        return 0.0
    ta, tb = set(a.split()), set(b.split())
    return max(fuzz.ratio(a, b) / 100, fuzz.token_sort_ratio(a, b) / 100, len(ta & tb) / len(ta | tb))


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


def asks(text: str) -> bool:
    """A prompt: the turn asks the caller something (a question mark, or a topic it names)."""
    return "?" in str(text) or bool(topics(text))


def _is_loop(texts: list[str], min_repeats: int) -> bool:
    """Enough near-identical turns: ``LOOP_MIN_STATEMENT_REPEATS`` of anything, or from ``min_repeats`` on a
    prompt asked again about the same thing (a shared topic, or nearly the same words)."""
    if len(texts) < min_repeats:
        return False
    if len(texts) >= LOOP_MIN_STATEMENT_REPEATS:
        return True
    if not all(asks(t) for t in texts):
        return False
    shared = set.intersection(*(topics(t) for t in texts))
    return bool(shared) or all(similarity(texts[0], t) >= LOOP_PAIR_SIMILARITY for t in texts[1:])


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
    texts = agent["text"].tolist()
    runs = sorted((r for c in clusters for r in _runs(c, LOOP_MAX_INTERLEAVE) if _is_loop([texts[m] for m in r], min_repeats)),
                  key=lambda r: r[0])
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
    for node in _node_loops(spans, tool_calls, end_of_speech, min_repeats):
        if not any(a <= node.details["loop_start_s"] <= b for a, b in covered):
            findings.append(node)
            covered.append((node.details["loop_start_s"], node.end_s))
    findings += _tool_loops(tool_calls, covered, min_repeats)
    return findings


def _node_loops(spans: pd.DataFrame, tool_calls: pd.DataFrame, end_of_speech: float, min_repeats: int) -> list[Finding]:
    """Node re-entries: the flow enters a node it already went through. Re-entered nodes whose entries
    overlap are one loop, counted by the node entered most often (the earliest on a tie); iteration *i*
    runs from its entry *i* to entry *i+1*, the last one ends at the next node entered after the loop."""
    nodes = spans[spans["kind"] == "node"].sort_values("start_s", kind="stable") if "kind" in spans else spans.iloc[:0]
    entries: list[tuple[str, float]] = []
    for name, at in zip(nodes["label"].astype(str), nodes["start_s"].astype(float)):
        if not entries or entries[-1][0] != name:  # the same node announced twice in a row is one entry
            entries.append((name, at))
    seen: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(entries):
        seen.setdefault(name, []).append(i)
    groups: list[list[list[int]]] = []
    for idx in sorted((idx for idx in seen.values() if len(idx) >= min_repeats), key=lambda idx: idx[0]):
        if groups and idx[0] <= max(i for g in groups[-1] for i in g):
            groups[-1].append(idx)
        else:
            groups.append([idx])
    findings = []
    for group in groups:
        idx = max(group, key=lambda g: (len(g), -g[0]))
        last = max(i for g in group for i in g)
        loop_end = entries[last + 1][1] if last + 1 < len(entries) else float(end_of_speech)
        loop_start = entries[idx[0]][1]
        name = entries[idx[0]][0]
        prompts = pd.DataFrame({"start_s": [entries[i][1] for i in idx], "text": name})
        topic = _topic([name], [])
        label = f"re-enters node {name!r} {len(idx)}×" + (f" ({topic})" if topic else "")
        findings.append(_loop_finding(prompts, loop_start, loop_end, _tools_in(tool_calls, loop_start, loop_end),
                                      "node re-entries", label=label))
    return findings


def _tools_in(tool_calls: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    if tool_calls.empty:
        return tool_calls
    return tool_calls[(tool_calls["start_s"] >= start) & (tool_calls["start_s"] < end)]


def _loop_finding(prompts: pd.DataFrame, loop_start: float, loop_end: float, tools: pd.DataFrame, what: str,
                  label: str | None = None) -> Finding:
    n = len(prompts)
    extra_start = float(prompts["start_s"].iloc[1])
    families = [f for f in tools["family"].dropna()] if len(tools) else []
    topic = _topic(list(prompts["text"]), families)
    about = topic or f'"{cut(str(prompts["text"].iloc[0]), 40)}"'
    if label is None:
        label = f"re-asks {about} {n}×" if what == "agent prompts" else f"repeats {what} {n}× ({about})"
    if families:
        counts = pd.Series(families).value_counts()
        label += " with " + ", ".join(f"{c} {fam}" for fam, c in counts.items()) + " call(s)"
    seconds = round(loop_end - extra_start, 3)
    return Finding("loop", label, round(extra_start, 3), round(loop_end, 3), seconds, seconds,
                   [(round(extra_start, 3), round(loop_end, 3))],
                   {"topic": topic, "iterations": n, "repeats": n - 1, "loop_start_s": round(loop_start, 3),
                    "loop_seconds": round(loop_end - loop_start, 3), "prompt_starts_s": list(prompts["start_s"].round(3)),
                    "source": what})


def _canon(args) -> str:
    if not isinstance(args, dict):
        return json.dumps(args, sort_keys=True, default=str)
    return json.dumps({k: v for k, v in args.items() if k != "call_id"}, sort_keys=True, default=str, ensure_ascii=False)


_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _normal(value):
    """An argument value as equivalence sees it: keys and texts case-folded, spaces collapsed, umlauts spelt out,
    ``dd.mm.yyyy`` dates as ``yyyy-mm-dd``, whole floats as integers, ``call_id`` left out (P18)."""
    if isinstance(value, dict):
        items = ((" ".join(str(k).casefold().split()), v) for k, v in value.items())
        return {k: _normal(v) for k, v in items if k != "call_id"}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str):
        text = " ".join(value.casefold().translate(_UMLAUTS).split())
        if _DATE_DE.match(text):
            day, month, year = text.split(".")
            return f"{year}-{int(month):02d}-{int(day):02d}"
        return text
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def equivalent_key(args) -> str:
    """One text per class of equivalent arguments (a JSON text is read first)."""
    if isinstance(args, (str, bytes)):
        args = decode_json(args)[0]
    return json.dumps(_normal(args), sort_keys=True, default=str, ensure_ascii=False)


def _repeated_calls(tool_calls: pd.DataFrame, min_repeats: int) -> list[tuple[pd.DataFrame, str]]:
    """Repeated tool calls of one function (version suffix ignored; not its family: ``start_booking`` and
    ``confirm_booking`` are two steps of one booking): ``>= 3`` with arguments similar to the first call's,
    else ``>= min_repeats`` with equivalent arguments (the largest such class, the earliest on a tie)."""
    calls = tool_calls.dropna(subset=["family"]).sort_values("start_s", kind="stable")
    out = []
    for name, group in calls.groupby(calls["name"].map(base_name), sort=False):
        first = _canon(group["arguments"].iloc[0])
        similar = [i for i, args in enumerate(group["arguments"]) if fuzz.ratio(first, _canon(args)) / 100 >= TOOL_ARG_SIMILARITY]
        if len(similar) >= max(min_repeats, LOOP_MIN_STATEMENT_REPEATS):
            out.append((group.iloc[similar], f"{name} with similar arguments"))
            continue
        classes = group.groupby(group["arguments"].map(equivalent_key), sort=False).indices
        biggest = max(classes.values(), key=lambda rows: (len(rows), -rows[0]))
        if len(biggest) >= min_repeats:
            out.append((group.iloc[sorted(biggest)], f"{name} with equivalent arguments"))
    return out


def _last_end(calls: pd.DataFrame) -> float:
    """Where the last of these calls ended (its start when no result came back)."""
    return float(calls["end_s"].astype(float).fillna(calls["start_s"].astype(float)).max())


def _tool_loops(tool_calls: pd.DataFrame, covered: list, min_repeats: int) -> list[Finding]:
    """Repeated tool calls no text or node loop explains; repeats of several functions that overlap in time are
    one loop (a booking cycle repeated), counted by the function that starts it."""
    if tool_calls.empty:
        return []
    repeats = sorted(_repeated_calls(tool_calls, min_repeats), key=lambda r: float(r[0]["start_s"].iloc[0]))
    groups: list[list[tuple[pd.DataFrame, str]]] = []
    for calls, what in repeats:
        start = float(calls["start_s"].iloc[0])
        if groups and start <= max(_last_end(c) for c, _ in groups[-1]):
            groups[-1].append((calls, what))
        else:
            groups.append([(calls, what)])
    out = []
    for group in groups:
        calls, what = group[0]
        every = pd.concat([c for c, _ in group]).sort_values("start_s", kind="stable")
        start, end = float(calls["start_s"].iloc[0]), _last_end(every)
        if any(a <= start <= b for a, b in covered):
            continue  # already explained by a text or node loop that contains these calls
        prompts = calls.assign(text=calls["name"])
        label = None
        if len(group) > 1:
            steps = " → ".join(dict.fromkeys(str(n) for n in every["name"]))
            label = f"repeats the cycle {steps} {len(calls)}× (equivalent arguments)"
        out.append(_loop_finding(prompts, start, end, every, what, label=label))
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
            logged = [e for e in errors.itertuples(index=False) if call.start_s - 0.5 <= e.start_s <= end + 2.0]
            label = f"{call.name} failed: {call.error}" + (f" (error log: {logged[0].label})" if logged else "")
            out.append(Finding("failed_tool", label, call.start_s, end, latency, round(union_length(parts), 3), parts,
                               {"name": call.name, "transport_ok": call.transport_ok, "error": call.error,
                                "error_log": [e.text or e.label for e in logged]}))  # whole messages, labels cut
        for problem in _bad_arguments(call, call_date):
            out.append(Finding("bad_argument", f"{call.name}: {problem}", call.start_s, end, 0.0, 0.0, [],
                               {"name": call.name}))
        family = call.family or ""
        if family.startswith(SIDE_EFFECT_PREFIXES):
            key = (base_name(call.name), _canon(call.arguments))  # start_booking then confirm_booking: two steps, one booking
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
        out.append(Finding("n_plus_one", f"{len(group)}× the same query in request {request}: {cut(norm, 80)}",
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
