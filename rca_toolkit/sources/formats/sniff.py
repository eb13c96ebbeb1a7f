"""What a user's file is, told in one phrase, so a refusal can say "expected X, it looks like Y".

Why: each reader checks that its file IS its format (a Retell object given to the Cal.com importer,
a JSON file given to ``drift --code``); the phrase for what the file looks like instead is the same
for all of them, and reading a whole file as text is refused here for binary, compressed and
non-UTF-8 data before any parser sees it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rca_toolkit.errors import InputFormatError

HEAD_BYTES = 64 * 1024
_LARAVEL_HEADER = re.compile(r"^\[[^\]]{1,40}\] [\w-]+\.(?:DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL|ALERT|EMERGENCY): ")
_MAGIC = ((b"\x1f\x8b", "gzip-compressed data"), (b"PK\x03\x04", "a ZIP archive"),
          (b"SQLite format 3\x00", "an SQLite database"), (b"%PDF", "a PDF document"),
          (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"\x7fELF", "an executable"))


def binary_kind(data: bytes, *, complete: bool = True) -> str | None:
    """What ``data`` is when it is not text: a known magic number, NUL bytes or bytes that are not
    UTF-8; None for UTF-8 text. ``complete=False``: a file's first bytes, which may end mid-character."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if b"\x00" in data:
        return "binary data (NUL bytes)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(data) - 3 or exc.reason != "unexpected end of data":
            return f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    return None


def read_text(path: Path, what: str) -> str:
    """The whole file as text (a UTF-8 BOM dropped), or one :class:`InputFormatError` naming the file,
    ``what`` it should be and what it is instead (binary, compressed, not UTF-8)."""
    data = path.read_bytes()
    kind = binary_kind(data)
    if kind:
        raise InputFormatError(f"{path} is {kind}, not a {what}", hint=f"give a {what} file (UTF-8 text)")
    return data.decode("utf-8").removeprefix("\ufeff")


def describe_file(path: Path) -> str:
    """One phrase for what the file at ``path`` looks like (from its first bytes)."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    return describe_bytes(head, complete=len(head) < HEAD_BYTES)


def describe_bytes(data: bytes, *, complete: bool = True) -> str:
    """One phrase for what ``data`` looks like; ``complete`` says it is the whole file (so JSON can be decoded)."""
    kind = binary_kind(data, complete=complete)
    if kind:
        return kind
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    stripped = text.strip()
    if not stripped:
        return "an empty file"
    first = stripped.splitlines()[0]
    if stripped[0] in "{[":
        if complete:
            import json

            try:
                return describe_json(json.loads(stripped))
            except (ValueError, RecursionError):
                pass
            return "JSON-like text that is not valid JSON"
        return "a JSON document"
    if _LARAVEL_HEADER.match(first):
        return "a Laravel log"
    if first.startswith("=") and "Error Monitor" in first:
        return "an error-monitor log"
    if first.startswith("<?php") or "<?php" in text[:2000]:
        return "PHP source"
    if first.count(",") >= 2:
        return f"CSV with the header {_short(first)}"
    return f"text starting with {_short(first)}"


def describe_json(obj: Any, _inner: bool = False) -> str:
    """One phrase for a decoded JSON document: which of the toolkit's formats it looks like, else its shape."""
    if isinstance(obj, dict):
        keys = set(obj)
        if "call_id" in keys and keys & {"call_status", "start_timestamp", "transcript_object", "agent_id",
                                         "transcript_with_tool_calls", "call_type"}:
            return "a Retell call object"
        if keys & {"event", "event_type"} and isinstance(obj.get("call"), (dict, str)):
            return "a Retell call webhook"
        if keys & {"name", "function_name"} and "call" in keys and keys & {"args", "arguments", "parameters"}:
            return "a Retell custom-function payload"
        if "triggerEvent" in keys or (isinstance(obj.get("payload"), dict) and "uid" in obj["payload"]):
            return "a Cal.com webhook"
        if isinstance(obj.get("calls"), list) and ("metadata" in keys or "summary" in keys):
            return "a call-history export"
        shown = ", ".join(_short(str(k), 20) for k in sorted(map(str, keys))[:6]) + (", ..." if len(keys) > 6 else "")
        return f"a JSON object with the keys {shown}" if keys else "an empty JSON object"
    if isinstance(obj, list):
        if not obj:
            return "an empty JSON list"
        return f"a JSON list of {len(obj)} items" + ("" if _inner else f" (the first is {describe_json(obj[0], True)})")
    kind = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}.get(type(obj), "value")
    return f"a JSON {kind}"


def _short(text: str, size: int = 60) -> str:
    """A user's text in an error line: its repr (one line, control characters escaped), cut to ``size``."""
    return repr(text[:size] + ("..." if len(text) > size else ""))
