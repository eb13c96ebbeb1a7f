"""One call, second by second: span table, attribution, findings and a what-if.

Sources: a Retell call object (file, webhook envelope or ``calls.raw``) or the database trace
(:func:`rca_toolkit.sources.loaders.call_trace`). A trace that carries ``calls.raw`` with word
timings or tool calls is read through the Retell object (the best source, data-contract §3.6);
otherwise transcript segments, function traces and the error log are placed on the session's
clock. Nothing is invented: a call without transcript or traces gets one ``unaccounted``
category and a list of what is missing.

Attribution (integer milliseconds, so the categories add up *exactly* to the duration):
every instant of ``[0, duration)`` falls in one category --

* ``caller_speech`` / ``agent_speech``: one side speaks (a tool may run meanwhile: that time is
  reported as ``tool_coverage.covered_by_speech_s``, not as a category, so it is not counted twice);
* ``overlap``: both speak;
* ``tool_wait_silent``: nobody speaks while a tool runs;
* the rest of a silent gap, by its context: ``dead_air`` when the whole gap (nobody speaking)
  is longer than ``dead_air_s`` (default 3 s) -- all of it, matching the dead-air finding;
  otherwise ``agent_response_latency`` (caller turn -> agent), ``caller_response_latency``
  (agent turn -> caller) or ``pause`` (same speaker continues); ``lead_in`` before the first
  utterance (unless longer than the threshold) and ``tail`` after the last one;
* ``transfer``: after a Retell ``transfer_call`` handed the call over, the time nobody of the two
  speaks (ringing, the transfer target talking) until the transfer leg ends; only present then;
* ``unaccounted``: no speech data at all (``tool_running`` then holds tool time).

Retell's built-in tools are read by their type: ``end_call`` is an instant that ends the call,
``transfer_call`` opens the transfer segment above, ``extract_dynamic_variable`` and the other
built-in steps are shown but are not backend calls (no tool wait, no tool findings unless they
fail). Pre-/post-session tool calls are listed beside the timeline, not on it.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

import pandas as pd

from rca_toolkit.analyses.markdown import md_items, md_text
from rca_toolkit.rules.jsonutil import json_default
from rca_toolkit.analyses.calls import detectors
from rca_toolkit.rules import call_ids, functions, sessions
from rca_toolkit.errors import InputFormatError
from rca_toolkit.rules.timeutil import source_tz
from rca_toolkit.sources import loaders
from rca_toolkit.sources.formats.retell import RetellCall, load_call_object, result_error
from rca_toolkit.analyses import tables

SPAN_COLUMNS = ["start_s", "end_s", "kind", "label", "role", "source", "text", "name", "family", "ok"]
SPEECH_KINDS = {"user": "caller_speech", "caller": "caller_speech", "agent": "agent_speech"}
CATEGORIES = ["caller_speech", "agent_speech", "overlap", "agent_response_latency", "caller_response_latency",
              "pause", "tool_wait_silent", "dead_air", "lead_in", "tail"]
SPLIT_GAP_S = 1.5  # a pause inside one utterance longer than this splits it into two speech spans
# a database timeline reads one call's trace; loaders.call_trace checks these before its first statement and
# lists absent optional columns among the data gaps
REQUIRES = {"load_timeline": loaders.REQUIRES["call_trace"]}


@dataclass
class CallData:
    """A span table plus what is known about the call and what is missing."""

    call_id: str
    duration_s: float | None
    spans: pd.DataFrame
    tool_calls: pd.DataFrame
    known: dict
    data_gaps: list[str]
    notes: list[str]
    source: str
    synthetic: bool = False
    session_tool_calls: pd.DataFrame = field(default_factory=pd.DataFrame)  # Retell pre-/post-session tools


# --------------------------------------------------------------------------- spans
def _span(start, end, kind, label, role=None, source="", text="", name=None, family=None, ok=None) -> dict:
    return dict(zip(SPAN_COLUMNS, (round(float(start), 3), round(float(end), 3), kind, label, role, source,
                                   text, name, family, ok)))


def _error_span(at: float, error) -> dict:
    """An error-log row as a point on the timeline: its label cut with an ellipsis (never a message that merely ends
    short, such as "(Connection: mys"), the whole message beside it."""
    text = f"{error.error_code}: {error.error_message}"
    return _span(at, at, "error", tables.cut(text, 100), None, "retell_error_log", text)


def _speech_from_words(call: RetellCall, source: str) -> list[dict]:
    rows = []
    for idx, words in call.words.groupby("utterance", sort=True):
        utt = call.utterances.loc[idx]
        kind = SPEECH_KINDS.get(utt["role"], "other_speech")
        role = "caller" if kind == "caller_speech" else utt["role"]
        start, end, piece = None, None, []
        for w in words.itertuples(index=False):
            if start is not None and w.start_s - end > SPLIT_GAP_S:
                rows.append(_span(start, end, kind, tables.cut(" ".join(piece), 60), role, source, " ".join(piece)))
                start, piece = None, []
            start = w.start_s if start is None else start
            end = w.end_s
            piece.append(str(w.word).strip())
        if start is not None:
            rows.append(_span(start, end, kind, tables.cut(" ".join(piece), 60), role, source, " ".join(piece)))
    return rows


TOOL_FRAME_COLUMNS = ["name", "family", "start_s", "end_s", "latency_s", "ok", "error", "transport_ok", "arguments",
                      "type", "kind", "answered", "placed"]
# what a Retell built-in tool that answered nothing did (formats.retell.tool_kind), for the tool table
BUILTIN_RESULT = {"end_call": "ended the call", "transfer": "handed the call over", "builtin": "built-in step"}


def _tool_frame(tool_calls: pd.DataFrame) -> pd.DataFrame:
    out = tool_calls.reindex(columns=TOOL_FRAME_COLUMNS).copy()
    out["kind"] = out["kind"].fillna("function")  # database traces are the application's own functions
    out["family"] = out["family"].astype(object).where(out["family"].notna(), None)  # a built-in has none
    return out.reset_index(drop=True)


def backend_calls(tool_calls: pd.DataFrame) -> pd.DataFrame:
    """The tool calls the detectors judge: functions (backend calls), and any built-in step that failed."""
    if tool_calls.empty or "kind" not in tool_calls:
        return tool_calls
    keep = tool_calls["kind"].isna() | tool_calls["kind"].eq("function") | ~tool_calls["ok"].astype(bool)
    return tool_calls[keep].reset_index(drop=True)


def _retell_tool_span(t, call: RetellCall, source: str) -> dict:
    """A tool call as a span: a function's run, the hand-over of a transfer, or a built-in step."""
    end = t.end_s if t.end_s == t.end_s else t.start_s
    if t.kind == "function" or not t.ok:
        return _span(t.start_s, end, "tool", t.name, None, source, "", t.name, t.family, bool(t.ok))
    if t.kind == "transfer":  # the caller is with the transfer target from here to the end of the transfer leg
        until = call.transfer_end_s if call.transfer_end_s is not None else call.duration_s
        return _span(t.start_s, max(end, until if until is not None else end), "transfer",
                     f"{t.name}: hands the call over ({t.type})", None, source, "", t.name, None, True)
    if t.kind == "end_call":
        return _span(t.start_s, end, "end_call", f"{t.name}: ends the call (end_call)", None, source, "", t.name, None, True)
    return _span(t.start_s, end, "step", f"{t.name} ({t.type}, not a backend call)", None, source, "", t.name, None, True)


def _placing_gaps(call: RetellCall) -> list[str]:
    """What the data gaps say about tool calls and flow steps without ``time_sec``."""
    tools, nodes, where = call.tool_calls, call.node_transitions, call.tool_source or "transcript_with_tool_calls"
    gaps = []
    by_words = tools[tools["placed"].eq("words")] if len(tools) else tools
    steps = int(nodes["placed"].eq("words").sum()) if len(nodes) else 0
    if len(by_words) or steps:
        what = " and ".join(filter(None, [
            f"{len(by_words)} tool calls ({', '.join(map(str, by_words['name']))})" if len(by_words) else "",
            f"{steps} flow steps" if steps else ""]))
        gaps.append(f"{what} have no time_sec (Retell's types do not require it): placed at the end of the last word "
                    f"(or timed entry) before them in {where}, at the call's start when none precedes them, so they "
                    "are accurate to a word and their latency is unknown")
    lost = tools[tools["start_s"].isna()] if len(tools) else tools
    unplaced = len(lost) + (int(nodes["time_s"].isna().sum()) if len(nodes) else 0)
    if unplaced:
        names = f" (tool calls: {', '.join(map(str, lost['name']))})" if len(lost) else ""
        gaps.append(f"{unplaced} tool calls or node transitions have neither time_sec nor word timings around them"
                    f"{names}: not placed on the time axis, not judged")
    return gaps


def from_retell(call: RetellCall, *, source: str = "Retell call object") -> CallData:
    """Span table of a parsed Retell call (word-timed speech, tool calls, node transitions, transfers)."""
    rows = _speech_from_words(call, source)
    placed = call.tool_calls[call.tool_calls["start_s"].notna()]
    for t in placed.itertuples(index=False):
        rows.append(_retell_tool_span(t, call, source))
    for n in call.node_transitions.itertuples(index=False):
        if n.time_s == n.time_s:
            rows.append(_span(n.time_s, n.time_s, "node", str(n.new_node_name), None, source))
    gaps, notes = _placing_gaps(call), list(call.notes)
    if call.words.empty:
        gaps.append("word timings (transcript_object words) absent: speech not placed on the time axis")
    if call.tool_source is None:
        gaps.append("transcript_with_tool_calls absent: tool calls unknown")
    known = {"call_status": call.call_status, "disconnection_reason": call.disconnection_reason,
             "agent_version": call.agent_version, "agent_name": call.agent_name,
             "started_at": None if call.start is None else call.start.isoformat(), "direction": call.direction,
             "call_type": call.call_type}
    return CallData(call.call_id, call.duration_s, _frame(rows), _tool_frame(placed), known, gaps, notes, source,
                    session_tool_calls=call.session_tool_calls)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=SPAN_COLUMNS)
    return frame.sort_values(["start_s", "end_s"], kind="stable").reset_index(drop=True)


def _offset(ts, origin) -> float | None:
    if ts is None or origin is None or pd.isna(ts) or pd.isna(origin):
        return None
    return (pd.Timestamp(ts) - pd.Timestamp(origin)).total_seconds()


def from_trace(trace) -> CallData:
    """Span table of a database trace (``loaders.CallTrace`` or an object with the same attributes)."""
    session = dict(trace.session or {})
    synthetic = bool(getattr(trace, "attrs", {}).get("synthetic", False))
    raw_problem = None
    if isinstance(trace.retell, dict):
        try:
            call = load_call_object(trace.retell)
        except InputFormatError as exc:
            call, raw_problem = None, f"calls.raw is not a Retell call object ({exc}): built from the database rows"
        if call is not None and (not call.words.empty or not call.tool_calls.empty):
            data = from_retell(call, source="calls.raw")
            data.synthetic = synthetic
            _compare_durations(data, session)
            _add_aligned_errors(data, trace.errors, call.start, session.get("started_at"))
            return data
    data = _from_db_rows(trace, session, synthetic)
    data.notes += [raw_problem] if raw_problem else []
    return data


def _add_aligned_errors(data: CallData, errors: pd.DataFrame, retell_start, session_start) -> None:
    """Error-log rows on the Retell clock: by ``occurred_at``, else session start + ``call_offset_ms``."""
    if errors is None or not len(errors) or retell_start is None:
        return
    rows = []
    for e in errors.itertuples(index=False):
        at = _offset(getattr(e, "occurred_at", None), retell_start)
        if at is None and pd.notna(getattr(e, "call_offset_ms", None)) and session_start is not None:
            at = _offset(pd.Timestamp(session_start) + pd.Timedelta(milliseconds=e.call_offset_ms), retell_start)
        if at is not None and 0 <= at <= (data.duration_s or at):
            rows.append(_error_span(at, e))
    if rows:
        data.spans = _frame(data.spans.to_dict("records") + rows)
        data.notes.append(f"{len(rows)} error-log rows placed on the Retell clock by their timestamps (server clock)")


def _compare_durations(data: CallData, session: dict) -> None:
    ms = session.get("duration_ms")
    if ms is not None and not pd.isna(ms) and data.duration_s is not None:
        delta = int(ms) - round(data.duration_s * 1000)
        data.notes.append(f"session duration_ms {int(ms)} (server clock, P2) vs Retell {round(data.duration_s * 1000)}: "
                          f"delta {delta:+d} ms; the timeline uses Retell's")
    for key in ("call_status", "disconnection_reason", "agent_version"):
        value = session.get(key)
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            continue
        if data.known.get(key) is None:
            data.known[key] = value
        elif str(data.known[key]) != str(value):
            data.notes.append(f"session {key} is {value!r} but Retell says {data.known[key]!r} (the timeline uses Retell's)")


def _from_db_rows(trace, session: dict, synthetic: bool) -> CallData:
    origin = session.get("started_at")
    rows, notes = [], []
    duration_ms = session.get("duration_ms")
    duration = None if duration_ms is None or pd.isna(duration_ms) else int(duration_ms) / 1000
    if duration is None and _offset(session.get("ended_at"), origin) is not None:
        duration = _offset(session.get("ended_at"), origin)
        notes.append("session duration_ms empty: duration taken from ended_at - started_at")
    seg = trace.transcript
    no_len = 0
    for s in seg.itertuples(index=False) if len(seg) else []:
        start = s.call_offset_ms / 1000 if pd.notna(getattr(s, "call_offset_ms", None)) else _offset(s.occurred_at, origin)
        if start is None:
            continue
        length = getattr(s, "duration_ms", None)
        no_len += int(length is None or pd.isna(length))
        end = start + (0 if length is None or pd.isna(length) else length / 1000)
        kind = SPEECH_KINDS.get(str(s.role), "other_speech")
        rows.append(_span(start, end, kind, tables.cut(str(s.text), 60), "caller" if kind == "caller_speech" else str(s.role),
                          "retell_transcript_segments", str(s.text)))
    if no_len:
        notes.append(f"{no_len} transcript segments have no duration_ms: placed as instants")
    if rows and duration:
        covered = detectors.union_length([(r["start_s"], r["end_s"]) for r in rows]) / duration
        notes.append(f"speech placed from {len(rows)} transcript segments covering {tables.percent(covered, 0)} of the call; "
                     "a gap may be untranscribed speech, so dead air from segments is an upper bound")
    tools = _db_tools(trace, origin)
    if tools and tools[0]["source"] == "retell_call_events":
        notes.append("no function traces: tool calls taken from function_call events (offset + response_time_ms)")
    for t in tools:
        rows.append(_span(t["start_s"], t["end_s"], "tool", t["name"], None, t.pop("source"), "", t["name"],
                          t["family"], t["ok"]))
    events = getattr(trace, "events", None)
    if events is not None and len(events) and "to_node" in events:
        for e in events[events["event_type"] == "flow_transition"].itertuples(index=False):
            if pd.notna(getattr(e, "call_offset_ms", None)):
                rows.append(_span(e.call_offset_ms / 1000, e.call_offset_ms / 1000, "node", str(e.to_node), None,
                                  "retell_call_events"))
    for e in trace.errors.itertuples(index=False) if len(trace.errors) else []:
        at = e.call_offset_ms / 1000 if pd.notna(getattr(e, "call_offset_ms", None)) else _offset(e.occurred_at, origin)
        if at is not None:
            rows.append(_error_span(at, e))
    gaps = [g for g in getattr(trace, "missing", []) or [] if g not in ("function traces", "transcript segments")]
    if seg is None or len(seg) == 0:
        gaps.append("no transcript: speech, silences and loops cannot be reconstructed")
    if len(tools) == 0:
        gaps.append("no function traces: tool timings unknown (no evidence for phase timings)")
    known = {k: (None if v is None or (not isinstance(v, str) and pd.isna(v)) else v)
             for k, v in ((k, session.get(k)) for k in ("call_status", "disconnection_reason", "agent_version", "started_at"))}
    if known.get("started_at") is not None:
        known["started_at"] = pd.Timestamp(known["started_at"]).isoformat()
    if duration is None:
        gaps.append("duration unknown: the session has neither duration_ms nor ended_at")
    tool_frame = pd.DataFrame(tools, columns=["name", "family", "start_s", "end_s", "latency_s", "ok", "error",
                                              "transport_ok", "arguments"])
    return CallData(trace.call_id, duration, _frame(rows), tool_frame, known, gaps, notes, "database trace", synthetic)


def _tool_row(name, start, end, status, error, result, args, source) -> dict:
    error = error if isinstance(error, str) and error else result_error(result)
    ok = str(status) == "success" and not error
    if not ok and not error:
        error = f"status {status}"
    end = start if end is None else end
    return {"name": name, "family": functions.function_family(name), "start_s": round(start, 3), "end_s": round(end, 3),
            "latency_s": round(end - start, 3), "ok": ok, "error": error, "transport_ok": None, "arguments": args,
            "source": source}


def _db_tools(trace, origin) -> list[dict]:
    """Tool calls from function traces (session clock), else from ``function_call`` events."""
    out = []
    for t in trace.function_traces.itertuples(index=False) if len(trace.function_traces) else []:
        start = _offset(t.started_at, origin)
        if start is None:
            continue
        end = _offset(getattr(t, "completed_at", None), origin)
        if end is None and pd.notna(getattr(t, "duration_ms", None)):
            end = start + max(t.duration_ms, 0) / 1000
        out.append(_tool_row(t.function_name, start, end, t.status, getattr(t, "error", None),
                             getattr(t, "output_result", None), getattr(t, "input_params", None), "retell_function_traces"))
    events = getattr(trace, "events", None)
    if out or events is None or not len(events) or "event_type" not in events:
        return out
    for e in events[events["event_type"] == "function_call"].itertuples(index=False):
        if pd.isna(getattr(e, "call_offset_ms", None)):
            continue
        start = e.call_offset_ms / 1000
        rt = getattr(e, "response_time_ms", None)
        end = None if rt is None or pd.isna(rt) else start + max(rt, 0) / 1000
        out.append(_tool_row(e.function_name, start, end, getattr(e, "function_status", None), None,
                             getattr(e, "function_response", None), getattr(e, "function_arguments", None),
                             "retell_call_events"))
    return out


def build_spans(source) -> pd.DataFrame:
    """The span table of a call from a ``RetellCall``, a ``CallTrace``, or a Retell file/JSON/dict."""
    return collect(source).spans


def collect(source) -> CallData:
    if isinstance(source, CallData):
        return source
    if isinstance(source, RetellCall):
        return from_retell(source)
    if hasattr(source, "session") and hasattr(source, "function_traces"):
        return from_trace(source)
    return from_retell(load_call_object(source))


# --------------------------------------------------------------------------- attribution
@dataclass
class Attribution:
    ms: dict[str, int]
    duration_ms: int | None
    tool_coverage: dict[str, float]
    gaps: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> dict[str, float]:
        return {k: v / 1000 for k, v in self.ms.items()}

    def to_dict(self) -> dict:
        return self.seconds


def _ms(x) -> int:
    return int(round(float(x) * 1000))


def attribute(spans: pd.DataFrame, duration_s: float | None, *, dead_air_s: float = 3.0) -> Attribution:
    """Split ``[0, duration)`` into the categories of the module docstring (exact integer-ms sum)."""
    gap_cols = ["start_s", "end_s", "seconds", "prev_role", "next_role", "category", "tool_s"]
    if duration_s is None:
        return Attribution({}, None, {}, pd.DataFrame(columns=gap_cols), ["duration unknown: nothing to attribute"])
    total = _ms(duration_s)
    clip = lambda a, b: (min(max(_ms(a), 0), total), min(max(_ms(b), 0), total))  # noqa: E731
    speech = [(clip(r.start_s, r.end_s), r.role) for r in spans.itertuples(index=False)
              if r.kind in ("caller_speech", "agent_speech")]
    speech = [((a, b), role) for (a, b), role in speech if b > a]
    tools = [clip(r.start_s, r.end_s) for r in spans.itertuples(index=False) if r.kind == "tool"]
    tools = [(a, b) for a, b in tools if b > a]
    handed = [clip(r.start_s, r.end_s) for r in spans.itertuples(index=False) if r.kind == "transfer"]
    handed = [(a, b) for a, b in handed if b > a]
    notes = []
    beyond = int(((spans["end_s"] > duration_s + 0.001) & spans["kind"].isin(["caller_speech", "agent_speech", "tool"])).sum())
    if beyond:
        notes.append(f"{beyond} spans extend beyond the call's duration and were clipped")
    tool_ms = int(round(detectors.union_length(tools)))
    if not speech:
        ms = {"unaccounted": total - tool_ms}
        if tool_ms:
            ms = {"tool_running": tool_ms, **ms}
        return Attribution(ms, total, {"tool_running_s": tool_ms / 1000}, pd.DataFrame(columns=gap_cols),
                           notes + ["no timed speech: time cannot be split into speech, waits and silence"])
    cuts = sorted({0, total, *[x for (a, b), _ in speech for x in (a, b)], *[x for iv in tools + handed for x in iv]})
    ms = dict.fromkeys(CATEGORIES + (["transfer"] if handed else []), 0)
    covered, silent = 0, []  # silent: (a, b, tool_running)
    for a, b in zip(cuts, cuts[1:]):
        mid = (a + b) / 2
        roles = {role for (s, e), role in speech if s <= mid < e}
        tool = any(s <= mid < e for s, e in tools)
        if len(roles) > 1:
            ms["overlap"] += b - a
        elif roles:
            ms["caller_speech" if "caller" in roles else "agent_speech"] += b - a
        elif any(s <= mid < e for s, e in handed):
            ms["transfer"] += b - a  # handed over: a silence here is the transfer leg, not dead air
            continue
        else:
            silent.append((a, b, tool))
            continue
        covered += (b - a) if tool else 0
    first, last = min(a for (a, _), _ in speech), max(b for (_, b), _ in speech)
    rows = []
    for g0, g1, parts in _merge_silent(silent):
        prev = max(((b, role) for (a, b), role in speech if b <= g0), default=(None, None))[1]
        nxt = min(((a, role) for (a, b), role in speech if a >= g1), default=(None, None))[1]
        length = g1 - g0
        if g1 <= first:
            cat = "dead_air" if length > dead_air_s * 1000 else "lead_in"
        elif g0 >= last:
            cat = "tail"
        elif length > dead_air_s * 1000:
            cat = "dead_air"
        elif prev == "caller" and nxt == "agent":
            cat = "agent_response_latency"
        elif prev == "agent" and nxt == "caller":
            cat = "caller_response_latency"
        else:
            cat = "pause"
        tool_part = sum(b - a for a, b, t in parts if t)
        ms["tool_wait_silent"] += tool_part
        ms[cat] += length - tool_part
        rows.append({"start_s": g0 / 1000, "end_s": g1 / 1000, "seconds": length / 1000, "prev_role": prev,
                     "next_role": nxt, "category": cat, "tool_s": tool_part / 1000})
    assert sum(ms.values()) == total, (ms, total)
    coverage = {"tool_running_s": tool_ms / 1000, "covered_by_speech_s": covered / 1000,
                "silent_s": ms["tool_wait_silent"] / 1000}
    return Attribution(ms, total, coverage, pd.DataFrame(rows, columns=gap_cols), notes)


def _merge_silent(silent):
    """Adjacent silent elementary intervals -> gaps ``(start, end, parts)``."""
    gaps = []
    for a, b, tool in silent:
        if gaps and gaps[-1][1] == a:
            gaps[-1] = (gaps[-1][0], b, gaps[-1][2] + [(a, b, tool)])
        else:
            gaps.append((a, b, [(a, b, tool)]))
    return gaps


# --------------------------------------------------------------------------- result
@dataclass
class CallTimeline:
    """Where every second of one call went, its findings and the what-if projection."""

    call_id: str
    duration_s: float | None
    source: str
    synthetic: bool
    known: dict
    spans: pd.DataFrame
    tool_calls: pd.DataFrame
    attribution: Attribution
    findings: list[detectors.Finding]
    what_if: detectors.WhatIf
    data_gaps: list[str]
    notes: list[str]
    thresholds: dict
    session_tool_calls: pd.DataFrame = field(default_factory=pd.DataFrame)  # Retell pre-/post-session tools

    def to_dict(self) -> dict:
        tools = [{"name": t.name, "family": t.family, "start_s": t.start_s, "end_s": t.end_s,
                  "latency_s": t.latency_s, "ok": bool(t.ok), "error": t.error,
                  "type": getattr(t, "type", None), "kind": getattr(t, "kind", "function"),
                  "placed": getattr(t, "placed", None)}
                 for t in self.tool_calls.itertuples(index=False)]
        session = [{"phase": t.phase, "name": t.name, "type": t.type, "ok": bool(t.ok), "error": t.error}
                   for t in self.session_tool_calls.itertuples(index=False)] if len(self.session_tool_calls) else []
        return _clean({
            "call_id": self.call_id, "duration_s": self.duration_s, "source": self.source, "synthetic": self.synthetic,
            "key_numbers": {"duration (s)": self.duration_s, "findings": len(self.findings),
                            **({"what-if (s)": round(self.what_if.duration_s, 1)}
                               if self.what_if.removed and self.what_if.duration_s is not None else {})},
            "known": self.known, "attribution": self.attribution.seconds, "attribution_ms": self.attribution.ms,
            "tool_coverage": self.attribution.tool_coverage, "tool_calls": tools, "session_tool_calls": session,
            "findings": [f.to_dict() for f in self.findings], "what_if": self.what_if.to_dict(),
            "data_gaps": self.data_gaps, "notes": self.notes + self.attribution.notes, "thresholds": self.thresholds,
        })

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=json_default, ensure_ascii=False, **kwargs)

    # ---- renderings
    def __repr__(self) -> str:
        return "\n".join(self._summary_lines())

    def banner(self) -> str:
        """One Markdown line on provenance: synthetic demo data or real, and how complete the record is."""
        head = ("**SYNTHETIC DEMO DATA**: this call comes from the demo world, not production."
                if self.synthetic else f"Data: {self.source}.")
        if self.data_gaps:
            head += f" Missing: {'; '.join(self.data_gaps)}."
        return head

    def _summary_lines(self) -> list[str]:
        dur = "unknown" if self.duration_s is None else f"{self.duration_s:.3f} s"
        known = ", ".join(f"{k} {tables.when(v) if k == 'started_at' else v}" for k, v in self.known.items() if v is not None)
        lines = [f"Call {self.call_id}: {dur} ({self.source}{', SYNTHETIC demo data' if self.synthetic else ''})",
                 f"Known: {known or 'nothing beyond the duration'}"]
        if self.what_if.duration_s is not None and self.what_if.removed:
            lines.append(f"What-if without {', '.join(self.what_if.kinds)}: {self.what_if.duration_s:.1f} s "
                         f"({self.what_if.removed_s:.1f} s removed)")
        return lines

    def _tables(self) -> list[tuple[str, tables.Table]]:
        total = self.duration_s or 1
        attr = tables.Table(
            [{"category": k, "seconds": v, "share": v / total} for k, v in self.attribution.seconds.items() if v],
            [tables.col("category"), tables.col("seconds", "time (s)", lambda v: tables.seconds(v, 1), numeric=True),
             tables.col("share", "share of the call", tables.percent, numeric=True)])
        tools = self.tool_calls.assign(tool=[_tool_label(t) for t in self.tool_calls.itertuples(index=False)],
                                       result=[_result_text(t) for t in self.tool_calls.itertuples(index=False)])
        tool_table = tables.Table(tools, [
            tables.col("tool"), tables.col("start_s", "start (s)", tables.seconds, numeric=True),
            tables.col("end_s", "end (s)", tables.seconds, numeric=True),
            tables.col("latency_s", "latency (s)", lambda v: tables.seconds(v, 2), numeric=True),
            tables.col("result"), tables.col("error", max_chars=60)])
        finds = tables.Table([f.to_dict() for f in self.findings], [
            tables.col("kind"), tables.col("label", "finding", max_chars=90),
            tables.col("start_s", "from (s)", tables.seconds, numeric=True),
            tables.col("end_s", "to (s)", tables.seconds, numeric=True),
            tables.col("seconds", "lasts (s)", tables.seconds, numeric=True),
            tables.col("removable_s", "removable (s)", tables.seconds, numeric=True)])
        return [("Where the time went", attr), ("Tool calls", tool_table), ("Findings", finds)]

    def events(self) -> tables.Table:
        """The spans as a reader follows the call: one row per utterance, tool call, flow step or
        logged error, in time order, with one text column (no duplicated label/text or name/family)."""
        rows = []
        for s in self.spans.itertuples(index=False):
            instant = s.end_s == s.start_s
            if s.kind in ("caller_speech", "agent_speech", "other_speech"):
                who, what = (s.role if isinstance(s.role, str) and s.role else "speech"), s.text or s.label
            elif s.kind == "tool":
                family = "" if tables.is_missing(s.family) or s.family == s.name else f" ({s.family})"
                outcome = "ok" if s.ok is True or s.ok == 1 else "FAILED" if s.ok is False or s.ok == 0 else "status unknown"
                what = f"{s.name}{family} {outcome}" + ("" if instant else f" after {s.end_s - s.start_s:.2f} s")
                who = "tool"
            elif s.kind == "node":
                who, what = "flow", f"-> {s.label}"
            elif s.kind == "error":
                who, what = "error log", s.label
            else:
                who, what = s.kind, s.label
            inside = sorted({f.kind.replace("_", " ") for f in self.findings if f.start_s is not None and f.end_s is not None
                             and f.start_s - 0.0005 <= s.start_s < f.end_s})
            rows.append({"start_s": s.start_s, "end_s": None if instant else s.end_s, "who": who, "what": what,
                         "finding": ", ".join(inside)})
        return tables.Table(rows, [tables.col("start_s", "at (s)", tables.seconds, numeric=True),
                                   tables.col("end_s", "until (s)", tables.seconds, numeric=True),
                                   tables.col("who"), tables.col("what", max_chars=100),
                                   tables.col("finding", "during finding")], empty="no events")

    def reconciliation(self) -> list[str]:
        """One line per number the report shows in two places with two values, saying why they differ."""
        lines = []
        gaps = self.attribution.gaps
        for f in (f for f in self.findings if f.kind == "dead_air"):
            gap = gaps[(gaps["category"] == "dead_air") & ((gaps["start_s"] - f.start_s).abs() < 0.0005)]
            tool_s = float(gap["tool_s"].iloc[0]) if len(gap) else 0.0
            tools = self.tool_calls
            ran = sorted(set(tools.loc[(tools["start_s"] < f.end_s) & (tools["end_s"] > f.start_s), "name"])) \
                if len(tools) else []
            split = (f"splits it into {tool_s:.1f} s tool_wait_silent ({', '.join(ran) or 'a tool'} ran) and "
                     f"{f.seconds - tool_s:.1f} s dead_air" if tool_s > 0 else f"counts it as {f.seconds:.1f} s dead_air")
            threshold = f.details.get("threshold_s", self.thresholds.get("dead_air_s"))
            lines.append(f"Dead air {f.start_s:.1f}-{f.end_s:.1f} s: the finding counts the whole {f.seconds:.1f} s "
                         f"silence; 'Where the time went' {split}; {f.removable_s:.1f} s is removable "
                         f"(beyond the {threshold:g} s threshold).")
        items = [f for f in self.findings if f.kind in self.what_if.kinds and f.removable_s > 0]
        listed = round(sum(f.removable_s for f in items), 3)
        overlap = round(listed - self.what_if.removed_s, 3)
        if self.what_if.duration_s is not None and overlap >= 0.05:
            pairs = []
            for i, a in enumerate(items):
                for b in items[i + 1:]:
                    shared = detectors.union_length([(max(x0, y0), min(x1, y1)) for x0, x1 in a.removable
                                                     for y0, y1 in b.removable if min(x1, y1) > max(x0, y0)])
                    if shared >= 0.05:
                        pairs.append(f"{a.kind} and {b.kind} share {shared:.1f} s")
            lines.append(f"The what-if items add up to {listed:.1f} s but {self.what_if.removed_s:.1f} s is removed: "
                         f"{overlap:.1f} s is claimed by more than one item and counted once"
                         + (f" ({'; '.join(pairs)})." if pairs else "."))
        return lines

    def _lists(self) -> list[tuple[str, list[str]]]:
        removed = [f"{r['kind']}: {r['label']} (-{r['seconds']:.1f} s)" for r in self.what_if.removed]
        session = [f"{t.phase.replace('_', '-')}: {t.name} {_result_text(t)}" + (f": {t.error}" if t.error else "")
                   for t in self.session_tool_calls.itertuples(index=False)] if len(self.session_tool_calls) else []
        return [("How the numbers relate", self.reconciliation()), ("What-if removed", removed),
                ("Tool calls before and after the call", session),
                ("Data gaps", self.data_gaps), ("Notes", self.notes + self.attribution.notes)]

    def to_text(self, width: int = tables.TEXT_WIDTH) -> str:
        out = [tables.wrap_lines(self._summary_lines(), width)]
        for title, table in self._tables():
            out += ["", f"{title}:", table.to_text(width) if len(table) else "  (none)"]
        for title, items in self._lists():
            if items:
                out += ["", f"{title}:", tables.wrap_lines([f"  - {i}" for i in items], width, hang="  ")]
        return "\n".join(out)

    def to_markdown(self) -> str:
        out = [f"## Call timeline {md_text(self.call_id)}", ""] + md_items(self._summary_lines())
        for title, table in self._tables():
            out += ["", f"### {title}", "", table.to_markdown() if len(table) else "_none_"]
        for title, items in self._lists():
            if items:
                out += ["", f"### {title}", ""] + md_items(items)
        return "\n".join(out) + "\n"

    def _repr_markdown_(self) -> str:  # what the Markdown report shows (runs.render)
        return self.to_markdown()

    def _repr_html_(self) -> str:
        parts = [f"<h3>Call timeline <code>{html.escape(self.call_id)}</code></h3><ul>"]
        parts += [f"<li>{html.escape(line)}</li>" for line in self._summary_lines()] + ["</ul>"]
        for title, table in self._tables():
            parts.append(f"<h4>{title}</h4>" + table.to_html())
        for title, items in self._lists():
            if items:
                parts.append(f"<h4>{title}</h4>" + tables.bullet_list(items))
        return "\n".join(parts)


def _tool_label(t) -> str:
    """``name (family)`` for a function, ``name (type)`` for a Retell built-in tool."""
    name, family, kind, kind_type = t.name, t.family, getattr(t, "kind", "function"), getattr(t, "type", None)
    if kind not in (None, "function") and isinstance(kind_type, str):
        return f"{name} ({kind_type})" if kind_type != name else str(name)
    return name if family in (None, name) or tables.is_missing(family) else f"{name} ({family})"


def _result_text(t) -> str:
    """ok / failed, or what a Retell built-in tool that answered nothing did."""
    kind = getattr(t, "kind", "function")
    if bool(t.ok) and kind in BUILTIN_RESULT and getattr(t, "answered", True) is False:
        return BUILTIN_RESULT[kind]
    return "ok" if bool(t.ok) else "failed"


def _clean(value):
    """JSON-safe copy: numpy scalars to Python, NaN/NaT to None, timestamps to ISO text."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return value


def build_timeline(source, *, dead_air_s: float = 3.0, slow_tool_s: float = 2.0, queries: pd.DataFrame | None = None,
                   what_if_kinds=detectors.DEFAULT_WHAT_IF) -> CallTimeline:
    """Analyse one call given as a ``CallTrace``, a ``RetellCall`` or a Retell file/JSON/dict."""
    data = collect(source)
    attribution = attribute(data.spans, data.duration_s, dead_air_s=dead_air_s)
    judged = backend_calls(data.tool_calls)  # end_call, transfers and built-in steps are no backend calls
    findings = detectors.detect_loops(data.spans, judged, duration_s=data.duration_s)
    findings += detectors.detect_dead_air(attribution.gaps, judged, threshold_s=dead_air_s)
    started = data.known.get("started_at")
    call_date = pd.Timestamp(started).tz_convert(source_tz()).date() if started else None
    findings += detectors.detect_tools(judged, data.spans, slow_tool_s=slow_tool_s, call_date=call_date)
    n1, n1_note = detectors.detect_n_plus_one(queries)
    findings = sorted(findings + n1, key=lambda f: (f.start_s is None, f.start_s or 0.0))
    notes = data.notes + ([n1_note] if n1_note else []) + _record_notes(data)
    if data.spans.empty:
        notes.append("no evidence for phase timings: no loop, dead-air or tool findings can be computed")
    return CallTimeline(
        call_id=data.call_id, duration_s=data.duration_s, source=data.source, synthetic=data.synthetic, known=data.known,
        spans=data.spans, tool_calls=data.tool_calls, attribution=attribution, findings=findings,
        what_if=detectors.what_if(data.duration_s, findings, what_if_kinds), data_gaps=data.data_gaps, notes=notes,
        thresholds={"dead_air_s": dead_air_s, "slow_tool_s": slow_tool_s, "loop_similarity": detectors.LOOP_SIMILARITY,
                    "loop_min_repeats": detectors.LOOP_MIN_REPEATS},
        session_tool_calls=data.session_tool_calls,
    )


def _record_notes(data: CallData) -> list[str]:
    """Flags on the record itself: test/typo ids (P4), cleanup artefacts (P20), stuck sessions (P5)."""
    notes = []
    kind = call_ids.id_kind(data.call_id)
    if kind != "retell":
        notes.append(f"call id {data.call_id!r} is {kind}, not a Retell id (P4): keep it out of statistics")
    # the record as a one-row session frame; "ended" stands for any recorded end (duration or ended_at)
    record = pd.DataFrame({"call_status": [data.known.get("call_status")],
                           "disconnection_reason": [data.known.get("disconnection_reason")],
                           "ended_at": [None if data.duration_s is None else "ended"]})
    if sessions.closed_by_cleanup(record["disconnection_reason"]).iloc[0]:
        notes.append(f"disconnection_reason {sessions.CLEANUP_REASON} was written by the app's cleanup job (P20), not by Retell")
    # a record without any end time is the set-without-end-times case: an open session counts as stuck
    # (sessions.stuck_or_open_without_end_times), whatever its age
    if sessions.open_sessions(record).iloc[0]:
        notes.append("session still in_progress with no end: stuck (P5), its duration is unknown")
    return notes


def load_timeline(call_id: str, *, source: str = "db", db=None, **options) -> CallTimeline:
    """I/O entry point for the CLI and notebooks: ``source`` is ``"db"`` or a Retell JSON path."""
    from rca_toolkit.errors import ConfigError, NotFound

    if source == "db":
        try:
            return build_timeline(loaders.call_trace(db, call_id), **options)
        except NotFound:  # the id as given first (a stored test id is any text); then the Retell id a paste holds
            pasted = call_ids.call_id_in(call_id)
            if pasted is None or pasted == call_id:
                raise
        result = build_timeline(loaders.call_trace(db, pasted), **options)
        result.notes.insert(0, f"read {pasted}: the call id in {call_id!r}")
        return result
    call = load_call_object(source)
    if call_id and call.call_id not in (call_id, call_ids.call_id_in(call_id)):
        raise ConfigError(f"{source} holds call {call.call_id}, not {call_id}", hint="pass the file's call id or another file")
    return build_timeline(call, **options)


__all__ = ["Attribution", "CallData", "CallTimeline", "attribute", "build_spans", "build_timeline", "collect",
           "from_retell", "from_trace", "load_timeline"]
