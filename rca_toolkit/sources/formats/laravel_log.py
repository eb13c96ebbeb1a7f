"""Laravel (Monolog 3 ``LineFormatter``) log files -> one record per log entry.

Production logs carry naive Europe/Berlin wall time, any channel prefix (``production``,
``local``, ``testing``, ``laravel``), emoji, JSON context, multi-line stack traces, lines
cut short by tools (``error-monitor.log`` keeps 200 characters) and documentation
placeholders such as ``[timestamp]``. Nothing here crashes on such input: odd timestamps
become ``ts=None`` with a flag, unclosed context becomes ``truncated=True``.

Files are streamed line by line (``.gz`` transparently), so a log of hundreds of MB is
never held in memory whole; :func:`iter_laravel_log` is the generator,
:func:`read_laravel_log` the frame.

Pasted excerpts are read too: ``grep -A/-B`` output (``--`` between groups), section headings
(markdown ``## ...``, ``=== ...``, rules and code fences) and fragments of other entries. A separator
or heading ends the entry before it, and the lines after it up to the next header belong to an
entry whose header the excerpt lacks: fragments. An entry whose JSON context closed (followed only by
Monolog's extra on its line) ends there, so fragments after it never cost it its context. Skipped
separators, headings and fragments are counted in ``stats`` (and the frame's ``attrs``). :func:`read_error_monitor` reads the cron output of
``error-monitor.log`` (German-locale zoned headers, cumulative counters, cut last errors).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

import pandas as pd

from rca_toolkit.config import progress_enabled
from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules.signatures import UNKNOWN_COLUMN  # P10, lenient
from rca_toolkit.rules import timeutil
from rca_toolkit.rules.jsonutil import MAX_NESTING, nesting
from rca_toolkit.rules.timeutil import localize_naive
from rca_toolkit.sources.formats import masking, sniff

# data-contract §5; ``rest`` is the message, context and extra.
HEADER = re.compile(
    r"^\[(?P<ts>[^\]]+)\] (?P<env>[\w-]+)\."
    r"(?P<level>DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL|ALERT|EMERGENCY): (?P<rest>.*)$",
    re.DOTALL,
)
_VALID_TS = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?P<zone>Z|[+-]\d{2}:?\d{2})?$")
_EXCEPTION = re.compile(r"\[object\] \((?P<cls>[A-Za-z_][\w\\]*)\(code: (?P<code>[^)]*)\)")
_SQLSTATE = re.compile(r"SQLSTATE\[(?P<state>[0-9A-Z]{5})\](?:\s*\[(?P<errno1>\d{3,5})\]|:[^:\n]{1,80}?:\s*(?P<errno2>\d{3,5})\b)?")
_RAW_CONTEXT = re.compile(r'^[\[{]\s*(?:["\[{]|\.\.\.|[\]}])')
# Laravel suffixes that always close; an unclosed one means the line was cut.
_UNCLOSED_SUFFIX = re.compile(r" \((?:Connection|View): [^)]*$")
_PROGRESS_MIN_BYTES = 8 * 1024 * 1024
# Bracket positions tried as the start of a line's context: real lines need one or two, a hostile
# line of thousands of " [" would otherwise cost quadratic time.
_MAX_CONTEXT_CANDIDATES = 20
_READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError
# Lines a paste adds between entries: grep's group separator, and headings/markup around sections.
_SEPARATOR_LINE = re.compile(r"^--\s*$")
_HEADING_LINE = re.compile(r"^(?:#{1,6}(?:\s.*)?|={3,}.*|-{3,}\s*|\*{3,}\s*|`{3,}.*|~{3,}.*)$")
SKIPPED_KEYS = ("separators", "headings", "fragments", "fragment_lines")
_LOG_HINT = "give a Laravel log (storage/logs/laravel.log, plain or .gz) as UTF-8 text"
_DECODER = json.JSONDecoder(strict=False)

COLUMNS = [
    "line_no", "ts", "ts_raw", "ts_placeholder", "ts_ambiguous", "ts_nonexistent", "env", "level",
    "message", "context", "context_parsed", "exception_class", "sqlstate", "errno", "unknown_column",
    "truncated", "n_lines", "continuation",
]


def _scan_json_end(text: str, start: int) -> int | None:
    """Index after the bracket closing the one at ``start`` (strings respected), None if unclosed."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _is_extra(tail: str) -> bool:
    """Monolog's ``%extra%`` after the context: empty, ``[]`` or a JSON value."""
    tail = tail.strip()
    if tail in ("", "[]", "{}"):
        return True
    try:
        json.loads(tail, strict=False)
    except (ValueError, RecursionError):
        return False
    return True


def _shallow(value) -> bool:
    """A decoded context nested no deeper than the documents the toolkit reads (see MAX_NESTING)."""
    return nesting(value) <= MAX_NESTING


def split_context(text: str) -> tuple[str, object, bool, bool]:
    """Split ``message {context} [extra]`` -> (message, context, parsed, truncated).

    ``context`` is the decoded dict/list, the raw text when it is not valid JSON
    (placeholders like ``{...}``), or None. ``truncated`` means a JSON context or a Laravel
    ``(Connection: ...`` suffix was opened and never closed.
    """
    for tried, match in enumerate(re.finditer(r"(?:^|\s)([{\[])", text)):
        if tried >= _MAX_CONTEXT_CANDIDATES:
            break
        pos = match.start(1)
        try:  # fast path (C decoder): a well-formed context followed only by extra
            value, end = _DECODER.raw_decode(text, pos)
            if _is_extra(text[end:]) and _shallow(value):
                return text[:pos].rstrip(), value, True, False
        except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
            pass
        end = _scan_json_end(text, pos)
        looks_json = bool(re.match(r'[{\[]\s*["{\[]', text[pos:pos + 3]))
        if end is None:
            if looks_json:
                return text[:pos].rstrip(), text[pos:], False, True
            continue
        if not _is_extra(text[end:]):
            continue
        segment = text[pos:end]
        try:
            value = json.loads(segment, strict=False)
            if _shallow(value):
                return text[:pos].rstrip(), value, True, False
            return text[:pos].rstrip(), segment, False, False  # too deep to keep as an object: its text
        except (ValueError, RecursionError):
            if _RAW_CONTEXT.match(segment):
                return text[:pos].rstrip(), segment, False, False
            continue
    message = text.rstrip()
    return message, None, False, bool(_UNCLOSED_SUFFIX.search(message))


def _exception_fields(message: str, context) -> dict:
    if isinstance(context, dict) and isinstance(context.get("exception"), str):
        exc_text = context["exception"]
    elif isinstance(context, str):
        exc_text = context.replace("\\\\", "\\")
    else:
        exc_text = ""
    exc = _EXCEPTION.search(exc_text)
    haystack = message + "\n" + exc_text
    state = _SQLSTATE.search(haystack)
    errno = None
    if state and (state.group("errno1") or state.group("errno2")):
        errno = int(state.group("errno1") or state.group("errno2"))
    elif exc and exc.group("code").isdigit() and exc.group("code") != "0":
        errno = int(exc.group("code"))
    column = UNKNOWN_COLUMN.search(haystack)
    return {
        "exception_class": exc.group("cls") if exc else None,
        "sqlstate": state.group("state") if state else None,
        "errno": errno,
        "unknown_column": column.group(1) if column else None,
    }


def _timestamp_fields(ts_raw: str) -> dict:
    valid = _VALID_TS.match(ts_raw.strip())
    return {"ts_raw": ts_raw, "ts_placeholder": valid is None, "ts_zoned": bool(valid and valid.group("zone"))}


def parse_laravel_line(line: str, line_no: int | None = None) -> dict | None:
    """Parse one header line (plus any joined continuation text); None if it is no header."""
    head = HEADER.match(line)
    if head is None:
        return None
    _, _, continuation = head.group("rest").partition("\n")
    message, context, parsed, truncated = split_context(head.group("rest"))
    record = {
        "line_no": line_no,
        **_timestamp_fields(head.group("ts")),
        "env": head.group("env"),
        "level": head.group("level"),
        "message": message,
        "context": context,
        "context_parsed": parsed,
        **_exception_fields(message, context),
        "truncated": truncated,
        "n_lines": 1 + (continuation.count("\n") + 1 if continuation else 0),
        "continuation": continuation or None,
    }
    return record


def _open_binary(source) -> tuple[IO[bytes], int | None, IO[bytes] | None]:
    """(line stream, total bytes for progress, raw handle whose tell() tracks progress).

    gzip is recognised by its magic bytes (a rotated ``laravel.log.1`` may be compressed); a
    ``.gz`` name on data that is not gzip is refused.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"log file {path} does not exist", hint="check the path")
        raw = path.open("rb")
        size = path.stat().st_size
        packed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if path.suffix == ".gz" and not packed and size:
            raw.close()
            raise InputFormatError(f"{path} is named .gz but is not gzip-compressed: it looks like "
                                   f"{sniff.describe_file(path)}", hint=_LOG_HINT)
        stream = gzip.GzipFile(fileobj=raw) if packed else raw
        return stream, size, raw
    if isinstance(source, io.TextIOBase):
        return source, None, None
    return source, None, None


@contextmanager
def _opened(source):
    """The binary line stream of a path or file object; files we opened are closed afterwards."""
    stream, _, raw = _open_binary(source)
    try:
        yield stream
    finally:
        if raw is not None:
            stream.close()
            raw.close()


def is_error_monitor(source) -> bool:
    """True when the first non-empty line is an ``====== Error Monitor: ... ======`` header."""
    with _opened(source) as stream:
        for line, _ in _lines(stream, _name(source)):
            if line.strip():
                return bool(_MONITOR_HEADER.match(line.strip()))
    return False


def _name(source) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")


def _lines(stream, name: str = "<stream>", stats: dict | None = None) -> Iterator[tuple[str, int]]:
    """(line without its end, bytes) of a text log. A stray byte that is not UTF-8 becomes U+FFFD and
    is counted in ``stats["invalid_utf8_lines"]``; binary data (NUL bytes, a magic number on the
    first line) and an unreadable or cut-off gzip stream are one :class:`InputFormatError`."""
    first = True
    line_no = 0
    iterator = iter(stream)
    while True:
        try:
            raw_line = next(iterator)
        except StopIteration:
            return
        except _READ_ERRORS as exc:
            raise InputFormatError(f"cannot read log {name} after line {line_no}: {' '.join(str(exc).split())[:160]}",
                                   hint=_LOG_HINT) from None
        line_no += 1
        size = len(raw_line)
        if isinstance(raw_line, bytes):
            kind = sniff.binary_kind(raw_line[:64], complete=False) if first else None
            if kind and not kind.startswith("not UTF-8") or b"\x00" in raw_line:
                raise InputFormatError(f"{name} line {line_no} is {kind or 'binary data (NUL bytes)'}, not a Laravel log",
                                       hint=_LOG_HINT)
            try:
                raw_line = raw_line.decode("utf-8")
            except UnicodeDecodeError:
                raw_line = raw_line.decode("utf-8", errors="replace")
                if stats is not None:
                    stats["invalid_utf8_lines"] = stats.get("invalid_utf8_lines", 0) + 1
        elif "\x00" in raw_line:
            raise InputFormatError(f"{name} line {line_no} holds binary data (NUL characters), not a Laravel log",
                                   hint=_LOG_HINT)
        if first:
            raw_line, first = raw_line.lstrip("\ufeff"), False  # a BOM would hide the first header
        yield raw_line.rstrip("\r\n"), size


def iter_laravel_log(source, *, progress: bool | None = None, stats: dict | None = None) -> Iterator[dict]:
    """Yield one record per log entry; continuation lines are attached to their entry.

    ``source`` is a path (``.gz`` read transparently) or an open file object. Lines before
    the first header are yielded as one record with ``level=None`` and ``orphan=True``; text with
    no header at all, binary data and a cut-off ``.gz`` are one :class:`InputFormatError`.
    ``progress`` shows a byte-based tqdm bar (default: on for files over 8 MB, never when
    RCA_PROGRESS=0). ``stats`` (a dict) receives ``invalid_utf8_lines``, the lines whose stray
    non-UTF-8 bytes were replaced by U+FFFD, and what a pasted excerpt had between entries:
    ``separators`` and ``headings`` (lines), ``fragments`` (runs of lines of entries whose header is
    not in the excerpt) and ``fragment_lines``.
    """
    stream, total, raw = _open_binary(source)
    show = progress_enabled() and (progress if progress is not None else (total or 0) > _PROGRESS_MIN_BYTES)
    bar = None
    if show:
        from rca_toolkit.config import progress_bar as tqdm  # a terminal bar, or plain lines in a log

        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"reading {Path(str(source)).name}")
    try:
        yield from _records(_lines(stream, _name(source), stats), bar, raw, _name(source), stats)
    finally:
        if bar is not None:
            bar.close()
        if raw is not None:
            stream.close()
            raw.close()


def _markup(line: str) -> str | None:
    """``separator`` (grep's ``--``), ``heading`` (``## x``, ``=== x``, a rule or code fence) or None."""
    if _SEPARATOR_LINE.match(line):
        return "separator"
    if _HEADING_LINE.match(line.strip()) and not HEADER.match(line):
        return "heading"
    return None


def _count(stats: dict | None, key: str, n: int = 1) -> None:
    if stats is not None and n:
        stats[key] = stats.get(key, 0) + n


def _records(lines: Iterable[tuple[str, int]], bar, raw, name: str = "<stream>", stats: dict | None = None) -> Iterator[dict]:
    """Records from lines. Text with no Laravel header at all is not a log: refused, saying what it is.

    Lines before the first header (a log that starts mid-entry) are one orphan record; after a
    separator or heading, the lines up to the next header are fragments: skipped and counted."""
    head_line: str | None = None
    head_no = 0
    extra: list[str] = []
    cut = False  # after a separator or heading: no entry is open until the next header
    in_fragment = False
    seen_header = False
    unheaded: list[str] = []  # the head of the text outside entries, to say what a headerless file looks like
    unheaded_size = 0
    position = 0
    for line_no, (line, size) in enumerate(lines, start=1):
        if bar is not None:
            now = raw.tell() if raw is not None else position + size
            bar.update(now - position)
            position = now
        if HEADER.match(line):
            if head_line is not None or extra:
                yield _finish(head_line, head_no, extra, stats)
            head_line, head_no, extra, cut, in_fragment, seen_header = line, line_no, [], False, False, True
            continue
        kind = _markup(line)
        if kind is not None:
            _count(stats, kind + "s")
            if head_line is not None or extra:
                yield _finish(head_line, head_no, extra, stats)
            head_line, extra, cut, in_fragment = None, [], True, False
            continue
        if cut:
            if line.strip():
                _count(stats, "fragment_lines")
                if not in_fragment:
                    _count(stats, "fragments")
                in_fragment = True
        elif head_line is None and not extra:
            head_no = line_no
        if not cut:
            extra.append(line)
        if not seen_header and unheaded_size <= sniff.HEAD_BYTES:
            unheaded.append(line)
            unheaded_size += len(line) + 1
    if not seen_header and any(line.strip() for line in unheaded):
        text = "\n".join(unheaded)
        looks = sniff.describe_bytes(text[:sniff.HEAD_BYTES].encode("utf-8"), complete=len(text) <= sniff.HEAD_BYTES)
        raise InputFormatError(f"{name} has no Laravel log entry ('[YYYY-MM-DD HH:MM:SS] env.LEVEL: message'): "
                               f"it looks like {looks}", hint=_LOG_HINT)
    if head_line is not None or extra:
        yield _finish(head_line, head_no, extra, stats)


def _closed_at(text: str) -> int | None:
    """Where an entry whose JSON context closed ends: the end of the line its context (and Monolog's
    extra) closes on, when more text follows; None if no context closes before the end."""
    for tried, match in enumerate(re.finditer(r"(?:^|\s)([{\[])", text)):
        if tried >= _MAX_CONTEXT_CANDIDATES:
            break
        pos = match.start(1)
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):
            continue
        line_end = text.find("\n", end)
        if line_end < 0:
            return None  # closes on the last line: the whole text is the entry
        if _is_extra(text[end:line_end]) and _shallow(value):
            return line_end if text[line_end:].strip() else None
    return None


def _finish(head_line: str | None, line_no: int, extra: list[str], stats: dict | None = None) -> dict:
    if head_line is None:
        return {"line_no": line_no, "ts_raw": None, "ts_placeholder": False, "ts_zoned": False, "env": None,
                "level": None, "message": "\n".join(extra), "context": None, "context_parsed": False,
                "exception_class": None, "sqlstate": None, "errno": None, "unknown_column": None,
                "truncated": False, "n_lines": len(extra), "continuation": None, "orphan": True}
    text = head_line if not extra else head_line + "\n" + "\n".join(extra)
    record = parse_laravel_line(text, line_no)
    whole = record["context_parsed"] or (record["context"] is not None and not record["truncated"])
    # A "context" right after a JSON closer (a fragment's '"} []') is the extra of an entry not in the text.
    after_closer = whole and record["message"].rsplit("\n", 1)[-1].rstrip().endswith(("}", "]", '"'))
    if extra and (not whole or after_closer):
        closed = _closed_at(text)  # a complete context, then lines of something else: they are fragments
        if closed is not None:
            rest = [line for line in text[closed + 1:].split("\n") if line.strip()]
            _count(stats, "fragments", 1 if rest else 0)
            _count(stats, "fragment_lines", len(rest))
            record = parse_laravel_line(text[:closed], line_no)
    record["orphan"] = False
    return record


def records_to_frame(records: Iterable[dict], *, source_tz: str | None = None) -> pd.DataFrame:
    """Typed frame from parsed records: ``ts`` in UTC, DST repeats/gaps flagged, never guessed; naive
    times are wall time in ``source_tz`` (default the setting, :func:`rca_toolkit.rules.timeutil.source_tz`)."""
    source_tz = source_tz or timeutil.source_tz()
    frame = pd.DataFrame.from_records(list(records), columns=COLUMNS[:2] + ["ts_zoned"] + COLUMNS[2:] + ["orphan"])
    frame = frame.drop(columns=["ts"])
    raw = frame["ts_raw"].where(~frame["ts_placeholder"].fillna(False).astype(bool))
    zoned = frame["ts_zoned"].fillna(False).astype(bool)
    local = localize_naive(raw.where(~zoned), source_tz)
    ts = local["ts"]
    if zoned.any():
        ts = ts.where(~zoned, pd.to_datetime(raw.where(zoned), utc=True, errors="coerce", format="ISO8601"))
    frame.insert(1, "ts", ts)
    frame["ts_ambiguous"] = local["ts_ambiguous"].astype(bool)
    frame["ts_nonexistent"] = local["ts_nonexistent"].astype(bool)
    frame["errno"] = pd.array(frame["errno"], dtype="Int64")
    for flag in ("ts_placeholder", "context_parsed", "truncated", "orphan"):
        frame[flag] = frame[flag].fillna(False).astype(bool)
    frame["n_lines"] = frame["n_lines"].astype("int64")
    frame = frame[COLUMNS + ["orphan"]]
    frame.attrs.update(
        source_tz=source_tz,
        n_placeholder_ts=int(frame["ts_placeholder"].sum()),
        n_truncated=int(frame["truncated"].sum()),
        n_ambiguous_ts=int(frame["ts_ambiguous"].sum()),
        n_nonexistent_ts=int(frame["ts_nonexistent"].sum()),
    )
    return frame


def read_laravel_log(path, *, source_tz: str | None = None, progress: bool | None = None,
                     levels: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a Laravel log into a frame (one row per entry); ``levels`` keeps only those levels."""
    wanted = {lvl.upper() for lvl in levels} if levels else None
    stats: dict = {}
    records = (r for r in iter_laravel_log(path, progress=progress, stats=stats) if wanted is None or r["level"] in wanted)
    frame = records_to_frame(records, source_tz=source_tz)
    frame.attrs["source"] = _name(path)
    frame.attrs["n_invalid_utf8_lines"] = stats.get("invalid_utf8_lines", 0)
    frame.attrs["skipped"] = {key: stats.get(key, 0) for key in SKIPPED_KEYS}
    return frame


_MASKED_COLUMNS = ("message", "context", "continuation", "last_error_raw")


def mask_log_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose entry text carries no personal data: ``message``, ``context`` (every string of a
    decoded context, or the raw text), ``continuation`` and error-monitor's ``last_error_raw``, masked by
    the one rule (rules/personal_data) with the names each entry's own context and text name."""
    out = frame.copy()
    columns = [c for c in _MASKED_COLUMNS if c in out.columns]
    for column in columns:
        out[column] = out[column].astype(object)
    for index in out.index:
        values = [out.at[index, c] for c in columns]
        names = masking.names_of(*[v for v in values if isinstance(v, (str, dict, list))])
        for column, value in zip(columns, values):
            if isinstance(value, (str, dict, list)):
                out.at[index, column] = masking.mask_value(value, names)
    return out


_SESSION_ID_SQL = re.compile(r"(`?sessions`?\s+where\s+`?id`?\s*=\s*)'?[A-Za-z0-9]+'?", re.IGNORECASE)
_SESSION_COOKIE = re.compile(r"((?:laravel_session|XSRF-TOKEN|session_id)[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9%=+/._-]{8,}")
_DB_USER = re.compile(r"(for user\s+')[^']*(')", re.IGNORECASE)
_DB_USER_JSON = re.compile(r'("(?:username|db_user|user)"\s*:\s*")[^"]*(")')


def redact_log_text(text: str | None) -> str | None:
    """Mask web-session ids, DB user names and URL passwords before log text is displayed."""
    if text is None:
        return None
    from rca_toolkit.sources.db import redact_text

    text = _SESSION_ID_SQL.sub(r"\1[SESSION_ID]", text)
    text = _SESSION_COOKIE.sub(r"\1[SESSION_ID]", text)
    text = _DB_USER.sub(r"\1[DB_USER]\2", text)
    text = _DB_USER_JSON.sub(r"\1[DB_USER]\2", text)
    return redact_text(text)


# ---------------------------------------------------------------------------------------
# error-monitor.log: "====== Error Monitor: Di 23. Sep 22:15:31 CEST 2025 ======" blocks
# ---------------------------------------------------------------------------------------

_MONITOR_HEADER = re.compile(
    r"^=+ Error Monitor: (?P<wd>\w+)\.? (?P<day>\d{1,2})\. (?P<mon>\w+)\.? (?P<time>\d{2}:\d{2}:\d{2}) "
    r"(?P<zone>[A-Z]{3,4}) (?P<year>\d{4}) =+$"
)
_GERMAN_MONTHS = {"jan": 1, "feb": 2, "mär": 3, "mrz": 3, "apr": 4, "mai": 5, "jun": 6, "jul": 7, "aug": 8,
                  "sep": 9, "okt": 10, "nov": 11, "dez": 12}
_GERMAN_WEEKDAYS = {"mo": 0, "di": 1, "mi": 2, "do": 3, "fr": 4, "sa": 5, "so": 6}
_ZONE_OFFSETS = {"CEST": "+02:00", "CET": "+01:00", "UTC": "+00:00", "GMT": "+00:00", "MESZ": "+02:00", "MEZ": "+01:00"}
_COUNTER = re.compile(r"^(?P<kind>Errors|Warnings) \(15 min\): (?P<n>\d+)\s*$")
MONITOR_CUT_AT = 200  # the cron script keeps 200 characters of the last error line


def _monitor_time(match: re.Match, line_no: int) -> pd.Timestamp:
    month = _GERMAN_MONTHS.get(match.group("mon").lower()[:3])
    offset = _ZONE_OFFSETS.get(match.group("zone"))
    if month is None or offset is None:
        raise InputFormatError(
            f"error-monitor line {line_no}: unknown month {match.group('mon')!r} or zone {match.group('zone')!r}",
            hint="expected a German-locale `date` header such as 'Di 23. Sep 22:15:31 CEST 2025'",
        )
    stamp = pd.Timestamp(f"{match.group('year')}-{month:02d}-{int(match.group('day')):02d}T{match.group('time')}{offset}")
    return stamp.tz_convert("UTC")


def _counter_delta(counter: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Rate from a cumulative counter: the difference, or the new value after a reset (a drop)."""
    previous = counter.shift(1)
    reset = (counter < previous).fillna(False).astype(bool)
    delta = (counter - previous).astype("Int64")
    delta[reset] = counter[reset]
    return delta, reset


def read_error_monitor(path, *, source_tz: str | None = None) -> pd.DataFrame:
    """One row per cron block: check time (UTC, from the zoned header), counters and deltas,
    and the ``Last error:`` line parsed as a Laravel line (``truncated`` set for cut lines).

    ``Errors (15 min)`` is cumulative despite its label (data-contract §5); ``error_delta``
    is the per-interval rate, with a drop read as a reset.
    """
    source_tz = source_tz or timeutil.source_tz()
    blocks: list[dict] = []
    current: dict | None = None
    with _opened(path) as stream:
        lines = list(_lines(stream, _name(path)))  # a cron log is small (one block per 15 minutes)
    for line_no, (line, _) in enumerate(lines, start=1):
        header = _MONITOR_HEADER.match(line.strip())
        if header:
            checked_at = _monitor_time(header, line_no)
            weekday = _GERMAN_WEEKDAYS.get(header.group("wd").lower()[:2])
            current = {"line_no": line_no, "checked_at": checked_at, "header_raw": line.strip("= ").strip(),
                       "weekday_mismatch": weekday is not None and weekday != checked_at.tz_convert(source_tz).weekday(),
                       "errors_counter": None, "warnings_counter": None, "last_error_raw": None}
            blocks.append(current)
            continue
        if current is None or not line.strip():
            continue
        counter = _COUNTER.match(line)
        if counter:
            current[f"{counter.group('kind').lower()}_counter"] = int(counter.group("n"))
        elif line.startswith("Last error: "):
            current["last_error_raw"] = line[len("Last error: "):]
        elif current["last_error_raw"] is not None:
            current["last_error_raw"] += "\n" + line
    if not blocks:
        raise InputFormatError(f"{path} has no '====== Error Monitor: ... ======' blocks",
                               hint="is this the cron output of scripts/monitoring/error-monitor-cron.sh?")
    frame = pd.DataFrame.from_records(blocks)
    for kind in ("errors", "warnings"):
        frame[f"{kind}_counter"] = pd.array(frame[f"{kind}_counter"], dtype="Int64")
    frame["error_delta"], frame["counter_reset"] = _counter_delta(frame["errors_counter"])
    frame["warning_delta"], _ = _counter_delta(frame["warnings_counter"])
    parsed = [_parse_last_error(text if isinstance(text, str) else None) for text in frame["last_error_raw"]]  # NaN: none
    errors = records_to_frame(parsed, source_tz=source_tz).drop(columns=["line_no", "n_lines", "orphan"])
    errors = errors.rename(columns={"ts": "error_ts", "ts_raw": "error_ts_raw"})
    frame = pd.concat([frame.reset_index(drop=True), errors.reset_index(drop=True)], axis=1)
    frame.attrs.update(source=str(path), source_tz=source_tz, n_blocks=len(frame),
                       n_truncated=int(frame["truncated"].sum()), n_resets=int(frame["counter_reset"].sum()),
                       cut_at=MONITOR_CUT_AT)
    return frame


def _parse_last_error(text: str | None) -> dict:
    """A ``Last error:`` value as a Laravel record; a line of exactly 200 characters was cut."""
    empty = {"ts_raw": None, "ts_placeholder": False, "ts_zoned": False, "env": None, "level": None,
             "message": text, "context": None, "context_parsed": False, "exception_class": None,
             "sqlstate": None, "errno": None, "unknown_column": None, "truncated": False,
             "n_lines": 1, "continuation": None, "orphan": False, "line_no": None}
    if not text:
        return empty
    record = parse_laravel_line(text) or empty
    record["truncated"] = bool(record["truncated"] or len(text) >= MONITOR_CUT_AT)
    record.setdefault("orphan", False)
    return record
