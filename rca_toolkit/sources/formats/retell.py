"""Retell call objects (get-call API, lifecycle webhooks, ``calls.raw``) -> :class:`RetellCall`.

Accepted shapes (data-contract §6): the bare call object, the webhook envelope
``{"event" | "event_type": ..., "call": {...}}``, and ``calls.raw`` content, which may be a JSON
string of a JSON string (P15). A custom-function payload ``{name, args, call}`` is a different
thing and is refused with a pointer to :func:`load_function_payload`.

Dirt handled (P17): only tool calls and node transitions carry ``time_sec``; utterances carry
word timings, rounded here to the millisecond (``10.200999999999999`` -> ``10.201``). Tool
results lack a name and are paired by ``tool_call_id``; ``arguments`` is a JSON string;
``successful: true`` is transport-level only, so ``ok`` is False when the (possibly nested or
double-encoded) ``content`` says ``success: false`` or carries an ``error``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rca_toolkit.rules import call_ids, functions
from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules.jsonutil import decode_json

PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
UTTERANCE_COLUMNS = ["role", "content", "start_s", "end_s", "n_words"]
WORD_COLUMNS = ["utterance", "role", "word", "start_s", "end_s"]
TOOL_COLUMNS = ["tool_call_id", "name", "family", "arguments", "start_s", "end_s", "latency_s",
                "transport_ok", "ok", "error", "content"]
NODE_COLUMNS = ["time_s", "former_node_id", "former_node_name", "new_node_id", "new_node_name"]


@dataclass(frozen=True)
class LatencyBlock:
    """One Retell latency metric in milliseconds (``values`` are the raw samples)."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None
    num: int | None
    values: tuple[float, ...] = ()


@dataclass
class RetellCall:
    """A parsed Retell call; times in seconds from call start, instants in UTC."""

    call_id: str
    agent_id: str | None
    agent_name: str | None
    agent_version: int | None
    call_status: str | None
    direction: str | None
    disconnection_reason: str | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    duration_ms: int | None
    latency: dict[str, LatencyBlock]
    cost_cents: float | None
    cost_breakdown: dict | None
    analysis: dict | None
    utterances: pd.DataFrame
    words: pd.DataFrame
    tool_calls: pd.DataFrame
    node_transitions: pd.DataFrame
    raw: dict
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return None if self.duration_ms is None else self.duration_ms / 1000

    def __repr__(self) -> str:
        return (f"RetellCall({self.call_id}, {self.duration_s} s, {self.call_status}/{self.disconnection_reason}, "
                f"{len(self.utterances)} utterances, {len(self.tool_calls)} tool calls)")


@dataclass
class FunctionCall:
    """A Retell custom-function POST (data-contract §6.2); ``call_id`` comes from ``call`` (P18)."""

    name: str | None
    family: str | None
    args: dict
    call_id: str | None
    arg_call_id: str | None
    arg_call_id_suspicious: bool
    raw: dict


# --------------------------------------------------------------------------- reading
def _read(source, what: str) -> Any:
    """A path, a JSON text or an already-decoded object -> decoded object (double encoding undone)."""
    if isinstance(source, dict):
        return source
    if isinstance(source, (bytes, bytearray)):
        source = source.decode("utf-8", errors="replace")
    if isinstance(source, str) and source.lstrip()[:1] in ("{", '"', "["):
        text, origin = source, "the given JSON text"
    else:
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"{what} file {path} does not exist", hint="check the path")
        try:
            text, origin = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError:
            raise InputFormatError(f"{path} is not UTF-8 text", hint=f"give a {what} JSON file") from None
    obj, _double, invalid = decode_json(text)
    if invalid:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"{origin} is not valid JSON: {exc}", hint=f"give a {what} JSON file") from None
    return obj


def _unwrap_call(obj: Any) -> dict:
    if not isinstance(obj, dict):
        raise InputFormatError(f"expected a JSON object, got {type(obj).__name__}",
                               hint="give a Retell call object, a {event, call} webhook or calls.raw")
    if "args" in obj and isinstance(obj.get("call"), dict) and ("name" in obj or "function_name" in obj):
        raise InputFormatError("this is a Retell custom-function payload {name, args, call}, not a call object",
                               hint="read it with rca_toolkit.sources.formats.retell.load_function_payload")
    if "event" in obj or "event_type" in obj:
        event = obj.get("event") or obj.get("event_type")
        inner = obj.get("call")
        if isinstance(inner, str):
            inner = decode_json(inner)[0]
        if not isinstance(inner, dict):
            raise InputFormatError(f"webhook event {event!r} carries no call object",
                                   hint="only call_started/call_ended/call_analyzed webhooks hold a call")
        obj = inner
    if "call_id" not in obj:
        raise InputFormatError("the object has no call_id", hint="give a Retell call object (get-call API or calls.raw)")
    return obj


def load_call_object(source, *, mask_pii: bool = False) -> RetellCall:
    """Parse a Retell call from a path, a JSON string or a dict (see the module docstring)."""
    call = copy.deepcopy(_unwrap_call(_read(source, "Retell call object")))
    if mask_pii:
        call = mask_call(call)
    notes: list[str] = []
    start_ms, end_ms = call.get("start_timestamp"), call.get("end_timestamp")
    duration = call.get("duration_ms")
    if duration is None and start_ms is not None and end_ms is not None:
        duration = int(end_ms) - int(start_ms)
        notes.append("duration_ms absent: derived from end_timestamp - start_timestamp")
    utterances, words = _transcript(call, notes)
    version = call.get("agent_version")
    cost = call.get("call_cost") or {}
    return RetellCall(
        call_id=str(call["call_id"]), agent_id=call.get("agent_id"), agent_name=call.get("agent_name"),
        agent_version=int(version) if isinstance(version, (int, float, str)) and str(version).isdigit() else None,
        call_status=call.get("call_status"), direction=call.get("direction"),
        disconnection_reason=call.get("disconnection_reason"),
        start=_epoch(start_ms), end=_epoch(end_ms), duration_ms=None if duration is None else int(duration),
        latency={k: _latency_block(v) for k, v in (call.get("latency") or {}).items() if isinstance(v, dict)},
        cost_cents=cost.get("combined_cost"), cost_breakdown=cost or None, analysis=call.get("call_analysis"),
        utterances=utterances, words=words, tool_calls=_tool_calls(call, notes),
        node_transitions=_nodes(call), raw=call, notes=notes,
    )


def _epoch(ms) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC")


def _sec(value) -> float:
    return float("nan") if value is None else round(float(value), 3)


def _transcript(call: dict, notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    entries = call.get("transcript_object")
    if entries is None:
        entries = [e for e in call.get("transcript_with_tool_calls") or [] if e.get("role") in ("agent", "user")]
        if entries:
            notes.append("transcript_object absent: utterances taken from transcript_with_tool_calls")
    rows, word_rows = [], []
    for i, utt in enumerate(entries or []):
        words = utt.get("words") or []
        for w in words:
            word_rows.append({"utterance": i, "role": utt.get("role"), "word": w.get("word"),
                              "start_s": _sec(w.get("start")), "end_s": _sec(w.get("end"))})
        rows.append({"role": utt.get("role"), "content": utt.get("content") or "",
                     "start_s": _sec(words[0].get("start")) if words else float("nan"),
                     "end_s": _sec(words[-1].get("end")) if words else float("nan"),
                     "n_words": len(words)})
    if rows and not word_rows:
        notes.append("utterances have no word timings: speech cannot be placed on the time axis")
    return (pd.DataFrame(rows, columns=UTTERANCE_COLUMNS).astype({"n_words": "int64"}),
            pd.DataFrame(word_rows, columns=WORD_COLUMNS))


def _tool_calls(call: dict, notes: list[str]) -> pd.DataFrame:
    invocations, results = {}, {}
    for entry in call.get("transcript_with_tool_calls") or []:
        role = entry.get("role")
        if role == "tool_call_invocation":
            invocations.setdefault(entry.get("tool_call_id"), entry)
        elif role == "tool_call_result":
            results.setdefault(entry.get("tool_call_id"), entry)
    rows = []
    for tid, inv in invocations.items():
        res = results.get(tid)
        args = decode_json(inv.get("arguments"))[0]
        start = _sec(inv.get("time_sec"))
        if res is None:
            end, transport, content, error = float("nan"), None, None, "no tool_call_result recorded"
        else:
            end, transport = _sec(res.get("time_sec")), res.get("successful")
            content = _deep_decode(res.get("content"))
            error = result_error(content)
            if error is None and transport is False:
                error = "transport failure (successful: false)"
        rows.append({"tool_call_id": tid, "name": inv.get("name"), "family": functions.function_family(inv.get("name")),
                     "arguments": args if isinstance(args, dict) else {"_raw": args}, "start_s": start, "end_s": end,
                     "latency_s": round(end - start, 3) if end == end else float("nan"),
                     "transport_ok": transport, "ok": error is None, "error": error, "content": content})
    orphans = set(results) - set(invocations)
    if orphans:
        notes.append(f"{len(orphans)} tool_call_result(s) without an invocation: {sorted(map(str, orphans))}")
    return pd.DataFrame(rows, columns=TOOL_COLUMNS).sort_values("start_s", kind="stable").reset_index(drop=True)


def _deep_decode(value: Any, depth: int = 0) -> Any:
    """Decode JSON strings inside JSON (bounded), so nested results can be read for failure."""
    if depth > 4:
        return value
    if isinstance(value, str):
        obj, _double, invalid = decode_json(value)
        return value if invalid or isinstance(obj, str) else _deep_decode(obj, depth + 1)
    if isinstance(value, dict):
        return {k: _deep_decode(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_decode(v, depth + 1) for v in value]
    return value


def result_error(content: Any, depth: int = 0) -> str | None:
    """The application-level error a tool result reports, or None when it reports success."""
    if not isinstance(content, dict) or depth > 4:
        return None
    error = content.get("error")
    if content.get("success") is False or content.get("ok") is False or error:
        text = error or content.get("message") or "success: false"
        return text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    for key in ("data", "result", "response", "body"):
        nested = result_error(content.get(key), depth + 1)
        if nested:
            return nested
    return None


def _nodes(call: dict) -> pd.DataFrame:
    rows = [{"time_s": _sec(e.get("time_sec")), **{c: e.get(c) for c in NODE_COLUMNS[1:]}}
            for e in call.get("transcript_with_tool_calls") or [] if e.get("role") == "node_transition"]
    return pd.DataFrame(rows, columns=NODE_COLUMNS)


# --------------------------------------------------------------------------- latency
def _latency_block(block: dict) -> LatencyBlock:
    values = tuple(float(v) for v in block.get("values") or [])
    return LatencyBlock(*(block.get(k) for k in ("p50", "p90", "p95", "p99", "min", "max")),
                        num=block.get("num"), values=values)


def recompute_percentiles(block: LatencyBlock | dict) -> dict[str, float]:
    """p50/p90/p95/p99 by linear interpolation over ``values`` (Retell's own method, checked on the sample)."""
    values = block.values if isinstance(block, LatencyBlock) else block.get("values") or []
    if not len(values):
        return {k: float("nan") for k in PERCENTILES}
    return {k: float(np.percentile(np.asarray(values, dtype=float), q, method="linear")) for k, q in PERCENTILES.items()}


# --------------------------------------------------------------------------- custom functions
def load_function_payload(source) -> FunctionCall:
    """Parse a custom-function POST ``{name, args, call}`` (also ``function_name``/``arguments``/``parameters``)."""
    obj = _read(source, "Retell function payload")
    if not isinstance(obj, dict) or not ({"name", "function_name"} & set(obj)):
        raise InputFormatError("not a Retell custom-function payload (no name/function_name)",
                               hint="a call object is read with load_call_object")
    name = obj.get("name") or obj.get("function_name")
    args = next((obj[k] for k in ("args", "arguments", "parameters") if obj.get(k) is not None), {})
    args = decode_json(args)[0] if isinstance(args, str) else args
    if not isinstance(args, dict):
        raise InputFormatError(f"function {name!r} args are not a JSON object", hint="expected {name, args: {...}, call}")
    call = obj.get("call") if isinstance(obj.get("call"), dict) else {}
    arg_id = args.get("call_id")
    return FunctionCall(name=name, family=functions.function_family(name), args=args, call_id=call.get("call_id"),
                        arg_call_id=None if arg_id is None else str(arg_id),
                        arg_call_id_suspicious=arg_id is not None and not call_ids.is_real_call_id(str(arg_id)),
                        raw=obj)


# --------------------------------------------------------------------------- personal data
_PHONE = re.compile(r"\+\d{8,}")
_SID = re.compile(r"\b(?:CA|AC|PN|SM)[0-9a-fA-F]{32}\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_SAID_NAME = re.compile(r"(?i:mein name ist|ich heiße|ich heisse|name ist|my name is|name is|hier spricht)\s+"
                        r"((?:[A-ZÄÖÜ][\w'-]+)(?:\s+[A-ZÄÖÜ][\w'-]+){0,2})")
_PII_KEYS = ("name", "phone", "number", "email", "sid", "address", "city", "zip")
_URL_KEYS = ("recording_url", "recording_multi_channel_url", "public_log_url", "scrubbed_recording_url")
_NODE_KEYS = {"previous_node", "current_node", "former_node_name", "new_node_name", "agent_name"}


def _name_parts(call: dict) -> set[str]:
    found: list[str] = []
    for key in ("retell_llm_dynamic_variables", "collected_dynamic_variables", "metadata"):
        for k, v in (call.get(key) or {}).items():
            if isinstance(v, str) and "name" in k.lower() and k not in _NODE_KEYS:
                found.append(v)
    texts = [call.get("transcript") or ""] + [u.get("content") or "" for u in call.get("transcript_object") or []]
    texts += [(call.get("call_analysis") or {}).get("call_summary") or ""]
    for text in texts:
        found += [m.group(1) for m in _SAID_NAME.finditer(text)]
    return {p.strip(".,;:!?") for n in found for p in n.split() if len(p.strip(".,;:!?")) >= 2}


def mask_call(call: dict) -> dict:
    """A copy with phone numbers, recording/log URLs, telephony ids and caller names masked."""
    parts = _name_parts(call)
    name_re = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(parts, key=len, reverse=True))) + r")\b") if parts else None

    def text(s: str) -> str:
        s = _SID.sub("[SID]", _PHONE.sub("[PHONE]", _EMAIL.sub("[EMAIL]", s)))
        return name_re.sub("[NAME]", s) if name_re else s

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str):
            return text(value)
        return value

    out = walk(call)
    for key in ("from_number", "to_number"):
        if out.get(key) not in (None, "", "anonymous"):
            out[key] = "[PHONE]"
    for key in _URL_KEYS:
        if out.get(key):
            out[key] = "[URL]"
    for key in ("telephony_identifier", "custom_sip_headers"):
        if isinstance(out.get(key), dict):
            out[key] = {k: "[REDACTED]" for k in out[key]}
    for key in ("retell_llm_dynamic_variables", "collected_dynamic_variables"):
        if isinstance(out.get(key), dict):
            out[key] = {k: ("[REDACTED]" if k not in _NODE_KEYS and any(p in k.lower() for p in _PII_KEYS) else v)
                        for k, v in out[key].items()}
    return out


__all__ = ["FunctionCall", "LatencyBlock", "RetellCall", "load_call_object", "load_function_payload",
           "mask_call", "recompute_percentiles", "result_error"]
