"""Retell call objects (get-call API, lifecycle webhooks, ``calls.raw``) -> :class:`RetellCall`.

Accepted shapes (data-contract §6): the bare call object, the webhook envelope
``{"event" | "event_type": ..., "call": {...}}``, and ``calls.raw`` content, which may be a JSON
string of a JSON string (P15). A custom-function payload ``{name, args, call}`` is a different
thing and is refused with a pointer to :func:`load_function_payload`.

Types are Retell's own: the official SDK's models (``retell-sdk`` ``PhoneCallResponse`` /
``WebCallResponse``, chosen by ``call_type``) are the contract every field is checked against, and
each transcript entry is read as the SDK class its ``role`` names. What the SDK describes is
accepted, extra fields are kept (``time_sec`` is one), and these deviations are tolerated: absent or
null fields (webhooks and ``calls.raw`` are partial), enum values the SDK does not know yet (Retell
adds them), a tool result's ``content`` or an invocation's ``arguments`` that is decoded JSON rather
than a JSON string (P15) and a numeric ``tool_call_id``. Anything else of the wrong type is one :class:`InputFormatError` naming the field.

Dirt handled (P17): only tool calls and node transitions carry ``time_sec``, and the SDK does not
require it: an entry without it is placed at the end of the last timed thing before it in its list
(word timings or another entry's ``time_sec``; the call's start when it comes first) and its
``placed`` column says ``words``. Utterances carry word timings, rounded here to the millisecond
(``10.200999999999999`` -> ``10.201``). Tool results lack a name and are paired by ``tool_call_id``;
``arguments`` is a JSON string; ``successful: true`` is transport-level only, so ``ok`` is False
when the (possibly nested or double-encoded) ``content`` says ``success: false`` or carries an
``error``. Built-in tools are read by their invocation ``type``: ``end_call`` ends the call and
``transfer_call`` hands it over (neither answers with a result, so a missing one is no failure),
``extract_dynamic_variable`` and Retell's other built-in steps are not backend calls (no family).
When only ``scrubbed_transcript_with_tool_calls`` is there it stands in for the transcript, and the
pre-/post-session tool calls are read into :attr:`RetellCall.session_tool_calls`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic
from retell.types import PhoneCallResponse, WebCallResponse

from rca_toolkit.rules import call_ids, functions, personal_data
from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules.jsonutil import decode_json, load_document
from rca_toolkit.sources.formats import sniff

PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
UTTERANCE_COLUMNS = ["role", "content", "start_s", "end_s", "n_words"]
WORD_COLUMNS = ["utterance", "role", "word", "start_s", "end_s"]
TOOL_COLUMNS = ["tool_call_id", "name", "family", "arguments", "start_s", "end_s", "latency_s",
                "transport_ok", "ok", "error", "content", "type", "kind", "answered", "placed"]
SESSION_TOOL_COLUMNS = ["phase", *TOOL_COLUMNS]
NODE_COLUMNS = ["time_s", "former_node_id", "former_node_name", "new_node_id", "new_node_name", "placed"]
# Retell's built-in tool types (the invocation's ``type``; the SDK's docstring lists the known values).
# None of them is a call to the application's backend; none answers the way a function does, so a
# missing tool_call_result is not a failure. An absent type (custom LLMs, older calls) is a custom function.
ENDS_CALL_TYPES = frozenset({"end_call"})
HANDS_OVER_TYPES = frozenset({"transfer_call", "bridge_transfer"})
BUILTIN_TYPES = ENDS_CALL_TYPES | HANDS_OVER_TYPES | frozenset({
    "cancel_transfer", "agent_swap", "press_digit", "send_sms", "extract_dynamic_variable", "adjust_voice_speed"})
SPEECH_ROLES = ("agent", "user", "transfer_target")
# where tool calls are read from, best first (the scrubbed copy when Retell kept only that one)
TOOL_SOURCES = ("transcript_with_tool_calls", "scrubbed_transcript_with_tool_calls")
SESSION_SOURCES = {"pre_session": ("pre_session_transcript_with_tool_calls", "scrubbed_pre_session_transcript_with_tool_calls"),
                   "post_session": ("post_session_transcript_with_tool_calls",
                                    "scrubbed_post_session_transcript_with_tool_calls")}
TRANSCRIPT_LISTS = ("transcript_object", *TOOL_SOURCES, *(k for keys in SESSION_SOURCES.values() for k in keys))
# Webhook deliveries of one call, poorest first: a richer one's fields win, a null never overwrites
EVENT_RANK = {"call_started": 1, "call_ended": 2, "call_analyzed": 3}
STATUS_RANK = {"registered": 0, "ongoing": 1, "ended": 2, "not_connected": 2, "error": 2}


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
    call_type: str | None = None
    event: str | None = None  # the webhook event it came in (None: a bare call object)
    tool_source: str | None = None  # the transcript list the tool calls were read from
    session_tool_calls: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SESSION_TOOL_COLUMNS))
    transfer_end_s: float | None = None  # transfer_end_timestamp, seconds from call start
    digest: str | None = None  # identity of the delivery (event + object as sent, before masking)

    @property
    def rank(self) -> int:
        """How rich this delivery is (:func:`delivery_rank`)."""
        return delivery_rank(self.event, self.raw)

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
_WHAT = "Retell call object"
_HINT = "give a Retell call object as the get-call API, a call webhook or calls.raw holds it"
# Keys of Retell's call object (retell-sdk's PhoneCallResponse / WebCallResponse) besides call_id:
# an object with a call_id and none of these is something else that happens to have a call_id.
CALL_KEYS = frozenset({
    "agent_id", "agent_name", "agent_version", "call_status", "call_type", "start_timestamp", "end_timestamp",
    "duration_ms", "transcript", "transcript_object", "transcript_with_tool_calls", "disconnection_reason",
    "direction", "from_number", "to_number", "latency", "call_cost", "call_analysis", "recording_url",
    "scrubbed_transcript_with_tool_calls",
})
# Retell times are milliseconds since 1970; anything outside these years is a unit mix-up or garbage.
EPOCH_MS_MIN = 946_684_800_000  # 2000-01-01
EPOCH_MS_MAX = 4_102_444_800_000  # 2100-01-01
MAX_CALL_S = 7 * 86_400  # offsets and durations inside one call (Retell ends calls after hours)
_TEXT_KEYS = ("agent_id", "agent_name", "call_status", "call_type", "direction", "disconnection_reason",
              "from_number", "to_number", "transcript")
_OBJECT_KEYS = ("latency", "call_cost", "call_analysis", "retell_llm_dynamic_variables", "collected_dynamic_variables")
_NODE_TEXT = ("former_node_id", "former_node_name", "new_node_id", "new_node_name")


def _read(source, what: str) -> tuple[Any, str | None]:
    """A path, a JSON text or an already-decoded object -> (decoded object, file name or None).

    Double encoding is undone; a file that is not UTF-8 JSON, or nests deeper than
    :data:`rca_toolkit.rules.jsonutil.MAX_NESTING`, is one :class:`InputFormatError`.
    """
    if not isinstance(source, (str, bytes, bytearray, os.PathLike)):
        return source, None  # already decoded (a dict, or something the caller must be told is not one)
    if isinstance(source, (bytes, bytearray)):
        source = source.decode("utf-8", errors="replace")
    if isinstance(source, str) and source.lstrip()[:1] in ("{", '"', "["):
        text, origin = source, None
    else:
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"{what} file {path} does not exist", hint="check the path")
        text, origin = sniff.read_text(path, what), str(path)
    obj = load_document(text, origin or "the given JSON text", what)
    if isinstance(obj, str):  # calls.raw double encoded (P15)
        obj, _double, invalid = decode_json(obj)
        if invalid:
            raise InputFormatError(f"{origin or 'the given JSON text'} holds a JSON string that is not JSON",
                                   hint=f"give a {what} JSON file")
    return obj, origin


def _fail(origin: str | None, message: str, hint: str = _HINT) -> InputFormatError:
    return InputFormatError(f"{origin}: {message}" if origin else message, hint=hint)


def _unwrap_call(obj: Any, origin: str | None = None) -> tuple[dict, str | None]:
    """The call object and the webhook event it came in (None for a bare object)."""
    event = None
    if not isinstance(obj, dict):
        raise _fail(origin, f"expected a JSON object, got {sniff.describe_json(obj)}",
                    "give a Retell call object, a {event, call} webhook or calls.raw")
    if "args" in obj and isinstance(obj.get("call"), dict) and ("name" in obj or "function_name" in obj):
        raise _fail(origin, "this is a Retell custom-function payload {name, args, call}, not a call object",
                    "read it with rca_toolkit.sources.formats.retell.load_function_payload")
    if "event" in obj or "event_type" in obj:
        event = obj.get("event") or obj.get("event_type")
        inner = obj.get("call")
        if isinstance(inner, str):
            inner = decode_json(inner)[0]
        if not isinstance(inner, dict):
            raise _fail(origin, f"webhook event {repr(event)[:60]} carries no call object",
                        "only call_started/call_ended/call_analyzed webhooks hold a call")
        obj = inner
        event = event if isinstance(event, str) else None
    if "call_id" not in obj:
        raise _fail(origin, f"no call_id, so not a Retell call object: it looks like {sniff.describe_json(obj)}",
                    "give a Retell call object (get-call API or calls.raw)")
    call_id = obj["call_id"]
    if not isinstance(call_id, str) or not call_id.strip() or len(call_id) > 255 or not call_id.isprintable():
        raise _fail(origin, f"call_id is {_shown(call_id)}, expected a Retell call id string such as call_ab45...")
    if not CALL_KEYS & set(obj):
        raise _fail(origin, f"the object has a call_id but none of a Retell call's fields "
                            f"(call_status, start_timestamp, transcript_object, ...): it looks like {sniff.describe_json(obj)}")
    return obj, event


def _shown(value: Any) -> str:
    """A value for an error line: its JSON type and a short, one-line repr."""
    kind = {bool: "boolean", int: "number", float: "number", str: "string", list: "a list", dict: "an object",
            type(None): "null"}.get(type(value), type(value).__name__)
    if value is None:
        return kind
    text = repr(value)
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_call(call: dict, origin: str | None = None) -> None:
    """Refuse a call object whose fields the parser reads have the wrong type or an impossible value.

    Types follow Retell's own models (retell-sdk ``PhoneCallResponse``); unknown fields are left alone.
    """
    def bad(field_name: str, value: Any, expected: str) -> InputFormatError:
        return _fail(origin, f"{field_name} is {_shown(value)}, expected {expected}")

    for key in _TEXT_KEYS:
        if call.get(key) is not None and not isinstance(call[key], str):
            raise bad(key, call[key], "a string")
    for key in _OBJECT_KEYS:
        if call.get(key) is not None and not isinstance(call[key], dict):
            raise bad(key, call[key], "an object")
    for key in ("start_timestamp", "end_timestamp"):
        _epoch_ms(call.get(key), key, origin)
    duration = call.get("duration_ms")
    if duration is not None and not (_is_number(duration) and 0 <= duration <= MAX_CALL_S * 1000):
        raise bad("duration_ms", duration, f"milliseconds between 0 and {MAX_CALL_S * 1000}")
    start, end = _epoch_ms(call.get("start_timestamp"), "", origin), _epoch_ms(call.get("end_timestamp"), "", origin)
    if start is not None and end is not None and end < start:
        raise _fail(origin, f"end_timestamp {end} is before start_timestamp {start}")
    for name, block in (call.get("latency") or {}).items():
        if isinstance(block, dict):
            for key in ("p50", "p90", "p95", "p99", "min", "max", "num"):
                if block.get(key) is not None and not _is_number(block[key]):
                    raise bad(f"latency.{name}.{key}", block[key], "a number")
            values = block.get("values")
            if values is not None and not (isinstance(values, list) and all(_is_number(v) for v in values)):
                raise bad(f"latency.{name}.values", values, "a list of numbers")
    combined = (call.get("call_cost") or {}).get("combined_cost")
    if combined is not None and not _is_number(combined):
        raise bad("call_cost.combined_cost", combined, "a number")
    summary = (call.get("call_analysis") or {}).get("call_summary")
    if summary is not None and not isinstance(summary, str):
        raise bad("call_analysis.call_summary", summary, "a string")
    for key in TRANSCRIPT_LISTS:
        entries = call.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise bad(key, entries, "a list of utterance objects")
        for i, entry in enumerate(entries):
            _check_entry(entry, f"{key}[{i}]", bad)


def _check_entry(entry: Any, where: str, bad) -> None:
    if not isinstance(entry, dict):
        raise bad(where, entry, "an object")
    texts = ("role", "name", *_NODE_TEXT) + (() if entry.get("role") == "tool_call_result" else ("content",))
    for key in texts:  # a tool result's content may be any JSON (it is decoded, P15)
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise bad(f"{where}.{key}", entry[key], "a string")
    tool_id = entry.get("tool_call_id")
    if tool_id is not None and (isinstance(tool_id, bool) or not isinstance(tool_id, (str, int))):
        raise bad(f"{where}.tool_call_id", tool_id, "a string")
    role = entry.get("role")
    required = {"tool_call_invocation": ("tool_call_id", "name"), "tool_call_result": ("tool_call_id",)}.get(role, ())
    for key in required:  # Retell's types require them: a tool call without them cannot be paired or named
        if entry.get(key) in (None, ""):
            raise bad(f"{where}.{key}", entry.get(key), f"the {role}'s {key}")
    _check_offset(entry.get("time_sec"), f"{where}.time_sec", bad)
    words = entry.get("words")
    if words is None:
        return
    if not isinstance(words, list):
        raise bad(f"{where}.words", words, "a list of word objects")
    for j, word in enumerate(words):
        if not isinstance(word, dict):
            raise bad(f"{where}.words[{j}]", word, "an object")
        if word.get("word") is not None and not isinstance(word["word"], str):
            raise bad(f"{where}.words[{j}].word", word["word"], "a string")
        for key in ("start", "end"):
            _check_offset(word.get(key), f"{where}.words[{j}].{key}", bad)


def _check_offset(value: Any, where: str, bad) -> None:
    """Seconds from call start: a number inside one call."""
    if value is not None and not (_is_number(value) and -1 <= value <= MAX_CALL_S):
        raise bad(where, value, f"seconds from call start (at most {MAX_CALL_S})")


# --------------------------------------------------------------------------- the SDK's types
def sdk_model(call: dict) -> type[pydantic.BaseModel]:
    """The SDK class that describes ``call``: ``WebCallResponse`` for a web call, else ``PhoneCallResponse``."""
    return WebCallResponse if call.get("call_type") == "web_call" else PhoneCallResponse


def _members(annotation) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _members(arg)]


@lru_cache(maxsize=None)
def entry_classes(model: type[pydantic.BaseModel], key: str) -> dict[str, type[pydantic.BaseModel]]:
    """``role`` -> the SDK class of an entry of the transcript list ``key`` (from the union's members)."""
    out: dict[str, type[pydantic.BaseModel]] = {}
    for member in _members(model.model_fields[key].annotation):
        role = member.model_fields.get("role")
        for value in typing.get_args(role.annotation) if role is not None else ():
            out.setdefault(value, member)
    return out


@lru_cache(maxsize=None)
def _adapter(model: type[pydantic.BaseModel], key: str) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(model.model_fields[key].annotation)


def _where(key: str, loc: tuple) -> str:
    """``key.field[0]``; a key that is not printable text (a pasted ``\\r``) is shown as its repr: the error stays one line."""
    return key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" if isinstance(p, str) and p.isprintable() else f"[{p!r}]"
                         for p in loc)


def _sdk_errors(validate, value, where: str, cls_name: str, origin: str | None) -> None:
    try:
        validate(value)
    except pydantic.ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["type"] == "missing" or err.get("input", 0) is None:
                continue  # absent, or null (the same thing): webhooks and calls.raw are partial
            if err["type"] == "literal_error" and isinstance(err.get("input"), str):
                continue  # an enum value Retell added after this SDK version
            expected = str(err["msg"]).removeprefix("Input should be ").splitlines()[0]
            raise _fail(origin, f"{_where(where, err['loc'])} is {_shown(err.get('input'))}, expected {expected} "
                                f"(Retell's {cls_name})") from None


def check_sdk_types(call: dict, origin: str | None = None) -> None:
    """Refuse a field whose type contradicts Retell's own model (``retell-sdk``), tolerating what the
    module docstring lists; every transcript entry is checked as the SDK class its ``role`` names."""
    model = sdk_model(call)
    for key, value in call.items():
        if value is None or key not in model.model_fields:
            continue
        if key not in TRANSCRIPT_LISTS:
            _sdk_errors(_adapter(model, key).validate_python, value, key, model.__name__, origin)
            continue
        classes = entry_classes(model, key)
        for i, entry in enumerate(value if isinstance(value, list) else ()):
            cls = classes.get(entry.get("role")) if isinstance(entry, dict) else None
            if cls is None:
                continue  # a role the SDK does not know (check_call has checked what is read)
            entry = {k: v for k, v in entry.items() if v is not None}
            for text in {"tool_call_result": ("content",), "tool_call_invocation": ("arguments",)}.get(entry.get("role"), ()):
                if not isinstance(entry.get(text, ""), str):
                    entry.pop(text)  # decoded JSON instead of a JSON string (P15): read as it is
            if isinstance(entry.get("tool_call_id"), int):
                entry["tool_call_id"] = str(entry["tool_call_id"])
            _sdk_errors(cls.model_validate, entry, f"{key}[{i}]", cls.__name__, origin)


_DIGITS = re.compile(r"[0-9]{1,16}")


def _epoch_ms(value: Any, key: str, origin: str | None) -> int | None:
    """A Retell instant (ms since 1970, an integer or a digit string) -> int, or one line saying what it is."""
    if value is None:
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if not _is_number(value) or value != int(value):
        raise _fail(origin, f"{key} is {_shown(value)}, expected milliseconds since 1970 (an integer)")
    ms = int(value)
    if EPOCH_MS_MIN <= ms < EPOCH_MS_MAX:
        return ms
    if EPOCH_MS_MIN // 1000 <= ms < EPOCH_MS_MAX // 1000:
        unit = "seconds"
    elif EPOCH_MS_MIN * 1000 <= ms < EPOCH_MS_MAX * 1000:
        unit = "microseconds"
    elif EPOCH_MS_MIN * 1_000_000 <= ms < EPOCH_MS_MAX * 1_000_000:
        unit = "nanoseconds"
    else:
        unit = None
    said = f"{key} {ms} looks like {unit} since 1970" if unit else f"{key} {ms} is outside the years 2000-2099"
    raise _fail(origin, f"{said}; Retell times are milliseconds since 1970")


def load_call_object(source, *, mask_pii: bool = False) -> RetellCall:
    """Parse a Retell call from a path, a JSON string or a dict (see the module docstring).

    A file or object that is not a Retell call, or whose fields have the wrong types or
    impossible times, is one :class:`InputFormatError` naming the field.
    """
    obj, origin = _read(source, _WHAT)
    call, event = _unwrap_call(obj, origin)
    check_call(call, origin)
    check_sdk_types(call, origin)
    digest = hashlib.sha256(json.dumps({"event": event, "call": call}, sort_keys=True, ensure_ascii=False,
                                       default=str).encode("utf-8", errors="replace")).hexdigest()
    call = copy.deepcopy(call)
    if mask_pii:
        call = mask_call(call)
    notes: list[str] = []
    start_ms, end_ms = _epoch_ms(call.get("start_timestamp"), "", origin), _epoch_ms(call.get("end_timestamp"), "", origin)
    transfer_ms = _epoch_ms(call.get("transfer_end_timestamp"), "transfer_end_timestamp", origin)
    duration = call.get("duration_ms")
    if duration is None and start_ms is not None and end_ms is not None:
        duration = end_ms - start_ms
        notes.append("duration_ms absent: derived from end_timestamp - start_timestamp")
    tool_source = _tool_source(call)
    if tool_source and tool_source != TOOL_SOURCES[0]:
        notes.append(f"{TOOL_SOURCES[0]} absent: tool calls, flow steps and their placing read from {tool_source} "
                     "(Retell's copy with personal data scrubbed)")
    entries = _entries(call, tool_source)
    utterances, words = _transcript(call, entries, tool_source, notes)
    tools = _tool_calls(entries, notes)
    version = call.get("agent_version")
    cost = call.get("call_cost") or {}
    return RetellCall(
        call_id=str(call["call_id"]), agent_id=call.get("agent_id"), agent_name=call.get("agent_name"),
        agent_version=int(version) if isinstance(version, (int, str)) and not isinstance(version, bool)
        and _DIGITS.fullmatch(str(version)) and len(str(version)) <= 9 else None,
        call_status=call.get("call_status"), direction=call.get("direction"),
        disconnection_reason=call.get("disconnection_reason"),
        start=_epoch(start_ms), end=_epoch(end_ms), duration_ms=None if duration is None else int(duration),
        latency={k: _latency_block(v) for k, v in (call.get("latency") or {}).items() if isinstance(v, dict)},
        cost_cents=cost.get("combined_cost"), cost_breakdown=cost or None, analysis=call.get("call_analysis"),
        utterances=utterances, words=words, tool_calls=tools, node_transitions=_nodes(entries), raw=call, notes=notes,
        call_type=call.get("call_type"), event=event, tool_source=tool_source,
        session_tool_calls=_session_tool_calls(call, notes),
        transfer_end_s=None if transfer_ms is None or start_ms is None else round((transfer_ms - start_ms) / 1000, 3),
        digest=digest,
    )


def _epoch(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def _sec(value) -> float:
    return float("nan") if value is None else round(float(value), 3)


def _tool_source(call: dict) -> str | None:
    """The transcript list the tool calls come from: the first non-empty of :data:`TOOL_SOURCES`."""
    return (next((k for k in TOOL_SOURCES if call.get(k)), None)
            or next((k for k in TOOL_SOURCES if call.get(k) is not None), None))


def _entries(call: dict, key: str | None) -> list[dict]:
    return [e for e in (call.get(key) or []) if isinstance(e, dict)] if key else []


def _timed_words(entry: dict) -> list[dict]:
    return [w for w in entry.get("words") or []
            if isinstance(w, dict) and _is_number(w.get("start")) and _is_number(w.get("end"))]


def placements(entries: list[dict]) -> list[tuple[float, str | None]]:
    """Per entry of a transcript list: ``(seconds from call start, how)``.

    ``how`` is ``"time_sec"`` when the entry carries its own time; otherwise (``"words"``) the entry is
    placed at the end of the last timed thing before it in the list (a word's end or another entry's
    ``time_sec``; the call's start when nothing timed precedes it). A list without any time gives
    ``(nan, None)``: nothing to place by.
    """
    spans = []
    for entry in entries:
        words = _timed_words(entry)
        if _is_number(entry.get("time_sec")):
            spans.append((float(entry["time_sec"]),) * 2)
        else:
            spans.append((float(words[0]["start"]), max(float(w["end"]) for w in words)) if words else None)
    if all(span is None for span in spans):
        return [(float("nan"), None)] * len(entries)
    out, latest = [], 0.0
    for entry, span in zip(entries, spans):
        own = entry.get("time_sec")
        out.append((_sec(own), "time_sec") if _is_number(own) else (_sec(latest), "words"))
        if span is not None:
            latest = max(latest, span[1])
    return out


def _transcript(call: dict, entries: list[dict], source: str | None, notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    utts = call.get("transcript_object")
    if utts is None:
        utts = [e for e in entries if e.get("role") in SPEECH_ROLES]
        if utts:
            notes.append(f"transcript_object absent: utterances taken from {source}")
    rows, word_rows, untimed = [], [], 0
    for i, utt in enumerate(utts or []):
        words = utt.get("words") or []
        timed = [w for w in words if w.get("start") is not None and w.get("end") is not None]
        untimed += len(words) - len(timed)  # Retell's word times are optional: such a word has no place in time
        for w in timed:
            word_rows.append({"utterance": i, "role": utt.get("role"), "word": w.get("word"),
                              "start_s": _sec(w.get("start")), "end_s": _sec(w.get("end"))})
        rows.append({"role": utt.get("role"), "content": utt.get("content") or "",
                     "start_s": _sec(timed[0].get("start")) if timed else float("nan"),
                     "end_s": _sec(timed[-1].get("end")) if timed else float("nan"),
                     "n_words": len(words)})
    if untimed and word_rows:
        notes.append(f"{untimed} words have no start/end time: left off the time axis")
    if rows and not word_rows:
        notes.append("utterances have no word timings: speech cannot be placed on the time axis")
    return (pd.DataFrame(rows, columns=UTTERANCE_COLUMNS).astype({"n_words": "int64"}),
            pd.DataFrame(word_rows, columns=WORD_COLUMNS))


_BOOL = pydantic.TypeAdapter(bool)


def _flag(value) -> bool | None:
    """``successful`` as the SDK reads it (``true``, ``"true"``, ``1``); None when absent."""
    return None if value is None else _BOOL.validate_python(value)


def tool_kind(tool_type: Any) -> str:
    """``function`` (a custom function or integration: a backend call), ``end_call``, ``transfer`` or ``builtin``."""
    if tool_type in ENDS_CALL_TYPES:
        return "end_call"
    if tool_type in HANDS_OVER_TYPES:
        return "transfer"
    return "builtin" if tool_type in BUILTIN_TYPES else "function"


def _tool_calls(entries: list[dict], notes: list[str]) -> pd.DataFrame:
    placed = placements(entries)
    invocations, results = {}, {}
    for entry, where in zip(entries, placed):
        role = entry.get("role")
        if role == "tool_call_invocation":
            invocations.setdefault(entry.get("tool_call_id"), (entry, where))
        elif role == "tool_call_result":
            results.setdefault(entry.get("tool_call_id"), (entry, where))
    rows = []
    for tid, (inv, (start, how)) in invocations.items():
        res, (end, how_end) = results.get(tid, (None, (float("nan"), how)))
        args = decode_json(inv.get("arguments"))[0]
        tool_type = inv.get("type") if isinstance(inv.get("type"), str) else None
        kind = tool_kind(tool_type)
        if res is None:  # a built-in step answers with no result: only a function's silence is a failure
            transport, content = None, None
            error = "no tool_call_result recorded" if kind == "function" else None
        else:
            transport = _flag(res.get("successful"))
            content = _deep_decode(res.get("content"))
            error = result_error(content)
            if error is None and transport is False:
                error = "transport failure (successful: false)"
        if end == end and start == start and end < start:
            end = start  # placed from words: a result is never before its invocation
        placing = None if start != start else ("time_sec" if how == how_end == "time_sec" else "words")
        rows.append({"tool_call_id": tid, "name": inv.get("name"),
                     "family": functions.function_family(inv.get("name")) if kind == "function" else None,
                     "arguments": args if isinstance(args, dict) else {"_raw": args}, "start_s": start, "end_s": end,
                     "latency_s": round(end - start, 3) if end == end and placing == "time_sec" else float("nan"),
                     "transport_ok": transport, "ok": error is None, "error": error, "content": content,
                     "type": tool_type, "kind": kind, "answered": res is not None, "placed": placing})
    orphans = set(results) - set(invocations)
    if orphans:
        notes.append(f"{len(orphans)} tool_call_result(s) without an invocation: {sorted(map(str, orphans))}")
    frame = pd.DataFrame(rows, columns=TOOL_COLUMNS).sort_values("start_s", kind="stable").reset_index(drop=True)
    for col in ("family", "type", "error", "placed"):  # None, not NaN, where a text is absent
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _session_tool_calls(call: dict, notes: list[str]) -> pd.DataFrame:
    """Tool calls Retell ran before the session started and after post-call analysis (not on the call's clock)."""
    frames = []
    for phase, keys in SESSION_SOURCES.items():
        key = next((k for k in keys if call.get(k)), None)
        if key:
            frames.append(_tool_calls(_entries(call, key), notes).assign(phase=phase))
    if not frames:
        return pd.DataFrame(columns=SESSION_TOOL_COLUMNS)
    return pd.concat(frames, ignore_index=True)[SESSION_TOOL_COLUMNS]


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


def _nodes(entries: list[dict]) -> pd.DataFrame:
    rows = [{"time_s": at, **{c: e.get(c) for c in NODE_COLUMNS[1:-1]}, "placed": how}
            for e, (at, how) in zip(entries, placements(entries)) if e.get("role") == "node_transition"]
    return pd.DataFrame(rows, columns=NODE_COLUMNS)


# --------------------------------------------------------------------------- webhook deliveries
def delivery_rank(event: str | None, call: dict) -> int:
    """How rich one delivery of a call is: ``call_analyzed`` 3 > ``call_ended`` 2 > ``call_started`` 1.

    A bare object (or another event) ranks by what it holds: its ``call_status`` (``registered`` 0,
    ``ongoing`` 1, a final status 2) and 3 when it carries ``call_analysis``.
    """
    status = call.get("call_status")
    return max(EVENT_RANK.get(event, 0), STATUS_RANK.get(status, 0) if isinstance(status, str) else 0,
               3 if isinstance(call.get("call_analysis"), dict) else 0)


def _size(value: Any) -> int:
    """Non-null leaves: the tie-break between two deliveries of one rank (the fuller one wins)."""
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return sum(_size(v) for v in value) or 1
    return 0 if value is None else 1


def _overlay(base: dict, richer: dict) -> dict:
    out = dict(base)
    for key, value in richer.items():
        if value is None:
            out.setdefault(key, None)  # a null never replaces what a poorer delivery said
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_deliveries(deliveries: list[tuple[str | None, dict]]) -> tuple[dict, str | None]:
    """The call as all its deliveries ``(event, call object)`` together say it -> (object, richest event).

    Deliveries are applied poorest first (:func:`delivery_rank`, then size, then content), so a field a
    richer delivery carries wins and a null never overwrites: the result does not depend on the order
    the files came in (a shell glob gives analyzed, ended, started), and the same deliveries give the
    same object.
    """
    if not deliveries:
        raise ValueError("no deliveries to merge")
    order = sorted(deliveries, key=lambda d: (delivery_rank(d[0], d[1]), _size(d[1]),
                                              json.dumps(d[1], sort_keys=True, default=str)))
    merged: dict = {}
    for _event, call in order:
        merged = _overlay(merged, call)
    events = [e for e, _c in order if e in EVENT_RANK]
    return merged, (max(events, key=EVENT_RANK.__getitem__) if events else None)


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
    obj, _origin = _read(source, "Retell function payload")
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
# phone numbers, e-mail addresses and names: the one rule, rules/personal_data; Retell's own ids and URLs here
_SID = re.compile(r"\b(?:CA|AC|PN|SM)[0-9a-fA-F]{32}\b")
_PII_KEYS = ("name", "phone", "number", "email", "sid", "address", "city", "zip")
_URL_KEYS = ("recording_url", "recording_multi_channel_url", "public_log_url", "scrubbed_recording_url")
_NODE_KEYS = {"previous_node", "current_node", "former_node_name", "new_node_name", "agent_name"}


def mask_call(call: dict) -> dict:
    """A copy with phone numbers, recording/log URLs, telephony ids and caller names masked."""
    # the names the call names anywhere, by the one rule: dynamic variables, tool-call arguments and
    # results (JSON strings too), metadata, and names said in the transcript or summary
    names = personal_data.names_in(call)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return _SID.sub("[SID]", personal_data.mask(value, names))
        return value

    out = walk(call)
    for key in ("from_number", "to_number", "transfer_destination"):
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


__all__ = ["FunctionCall", "LatencyBlock", "RetellCall", "check_sdk_types", "delivery_rank", "entry_classes",
           "load_call_object", "load_function_payload", "mask_call", "merge_deliveries", "placements",
           "recompute_percentiles", "result_error", "sdk_model", "tool_kind"]
