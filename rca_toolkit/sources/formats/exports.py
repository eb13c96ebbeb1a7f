"""Call-history exports (``retell_call_sessions`` dumps, JSON or CSV) -> the session frame.

The frame has the column names and dtypes of :func:`rca_toolkit.sources.loaders.calls`
(``call_id``, ``started_at`` UTC with ``started_at_ambiguous``, ``duration_ms`` Int64,
``call_status``/``disconnection_reason`` categories, ``agent_version`` Int64, counters,
``id_kind``, ``is_test``), so quality checks and reconciliation take either source.

Dirt handled (data/askproai/README.md): ``N/A`` nulls and naive Berlin wall time in the CSV,
``+02:00`` offsets in the JSON, durations the CSV rounds to 0.1 s (so CSV ``duration_ms`` is
approximate, recorded in ``attrs["duration_precision_ms"]``), test/demo/temp/typo ids (kept and
flagged, never merged), and the always-``No`` ``Has check_availability`` column (an exact-name
matching artefact, P3; dropped).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from rca_toolkit.rules import call_ids, functions, sessions, timeutil
from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules.jsonutil import load_document
from rca_toolkit.rules.timeutil import localize_naive
from rca_toolkit.sources.formats import masking, sniff

CSV_COLUMNS = {
    "Call ID": "call_id",
    "Agent Version": "agent_version",
    "Started At": "started_at",
    "Duration (s)": "duration_s",
    "Status": "call_status",
    "Disconnect Reason": "disconnection_reason",
    "Function Calls": "function_call_count",
    "Errors": "error_count",
}
SESSION_FRAME_COLUMNS = [
    "call_id", "agent_version", "started_at", "started_at_ambiguous", "started_at_nonexistent", "ended_at",
    "call_status", "disconnection_reason", "duration_ms", "function_call_count", "error_count", "functions",
    "id_kind", "is_test", "closed_by_cleanup",
]
_ZONE_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"
_STAMP_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{2})(\d{2})(\d{2})")
_WHAT = "call-history export"
# Export times outside these years are garbage (the sessions table starts in 2025).
EARLIEST, LATEST = pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC")
_ROW_TEXT = ("call_id", "started_at", "call_status", "disconnection_reason")
_ROW_NUMBERS = ("agent_version", "duration_ms", "function_call_count", "error_count")
_MAX_COUNT = 10**12  # no counter or duration of one call comes near this


def read_call_history(path, *, source_tz: str | None = None) -> pd.DataFrame:
    """Read an export by its suffix (``.json`` or ``.csv``); naive times are wall time in ``source_tz``
    (default the setting, :func:`rca_toolkit.rules.timeutil.source_tz`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_call_history_json(path, source_tz=source_tz)
    if suffix == ".csv":
        return read_call_history_csv(path, source_tz=source_tz)
    raise InputFormatError(f"{path} is neither .json nor .csv", hint="give the call-history export file")


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise NotFound(f"export file {path} does not exist", hint="check the path")


def read_call_history_json(path, *, source_tz: str | None = None) -> pd.DataFrame:
    """The JSON export: ``{metadata, calls[], summary}`` (or a bare list of call rows).

    Its times carry ``+02:00``; a time without an offset is read as ``source_tz`` wall time
    and flagged when it falls in a DST repeat or gap.
    """
    path = Path(path)
    source_tz = source_tz or timeutil.source_tz()
    _require_file(path)
    document = load_document(sniff.read_text(path, _WHAT), str(path), _WHAT)
    rows = document.get("calls") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "call_id" in r for r in rows):
        raise InputFormatError(f"{path} has no calls[] list of rows with call_id: it looks like {sniff.describe_json(document)}",
                               hint="expected the call-history export")
    for number, row in enumerate(rows, start=1):
        _check_row(path, number, row)
    if not rows:
        raise InputFormatError(f"{path} has an empty calls[] list", hint="expected the call-history export")
    frame = pd.DataFrame.from_records(rows)
    for col in ("agent_version", "duration_ms", "call_status", "disconnection_reason", "function_call_count",
                "error_count", "functions"):
        if col not in frame:
            frame[col] = None
    text = frame["started_at"].astype("string")
    zoned = text.str.contains(_ZONE_SUFFIX, regex=True).fillna(False).astype(bool)
    local = localize_naive(text.where(~zoned), source_tz)  # offsets are used as given; naive ones flagged
    started = pd.to_datetime(text.where(zoned), utc=True, errors="coerce", format="ISO8601")
    started = started.where(zoned, local["ts"])
    _no_unparsed(path, frame["started_at"], started)
    frame["started_at"] = started
    frame["started_at_ambiguous"] = local["ts_ambiguous"] & ~zoned
    frame["started_at_nonexistent"] = local["ts_nonexistent"] & ~zoned
    frame["functions"] = frame["functions"].map(lambda v: list(v) if isinstance(v, list) else [])
    metadata = document.get("metadata", {}) if isinstance(document, dict) else {}
    metadata = metadata if isinstance(metadata, dict) else {}
    out = _finish(frame)
    out.attrs.update(
        source=str(path), format="call_history_json", duration_precision_ms=1, n_naive_times=int((~zoned).sum()),
        generated_at=_generated_at(path, metadata.get("generated_at")),
        declared_total=metadata.get("total_calls"),
        summary=document.get("summary") if isinstance(document, dict) else None,
    )
    return out


def read_call_history_csv(path, *, source_tz: str | None = None) -> pd.DataFrame:
    """The CSV export: naive wall time in ``source_tz``, ``N/A`` nulls, seconds to 0.1."""
    path = Path(path)
    source_tz = source_tz or timeutil.source_tz()
    _require_file(path)
    with path.open("rb") as handle:
        kind = sniff.binary_kind(handle.read(sniff.HEAD_BYTES), complete=False)
    if kind:
        raise InputFormatError(f"{path} is {kind}, not a {_WHAT} CSV", hint="is this the call-history .csv export?")
    try:
        raw = pd.read_csv(path, dtype=str, na_values=["N/A"], keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputFormatError(f"{path} is not a readable CSV: {' '.join(str(exc).split())[:200]}",
                               hint="is this the call-history .csv export?") from None
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise InputFormatError(f"{path} lacks columns {', '.join(missing)}: it looks like {sniff.describe_file(path)}",
                               hint="expected the call-history CSV header")
    frame = raw.rename(columns=CSV_COLUMNS)[list(CSV_COLUMNS.values())]
    local = localize_naive(frame["started_at"], source_tz)
    _no_unparsed(path, frame["started_at"], local["ts"])
    seconds = pd.to_numeric(frame["duration_s"], errors="coerce")
    frame["duration_ms"] = (seconds * 1000).round()
    for column in ("agent_version", "duration_ms", "function_call_count", "error_count"):
        values = pd.to_numeric(frame[column], errors="coerce")
        outside = frame[column][values.notna() & ~values.between(0, _MAX_COUNT)]
        if len(outside):
            header = next((k for k, v in CSV_COLUMNS.items() if v == column), "Duration (s)")
            raise InputFormatError(f"{path}: {header} {str(outside.iloc[0])[:30]!r} is not a count or duration "
                                   f"({len(outside)} rows)", hint="is this the call-history .csv export?")
    frame["started_at"] = local["ts"]
    frame["started_at_ambiguous"] = local["ts_ambiguous"]
    frame["started_at_nonexistent"] = local["ts_nonexistent"]
    frame["functions"] = None  # the CSV does not list functions: unknown, not empty
    out = _finish(frame)
    out.attrs.update(
        source=str(path), format="call_history_csv", source_tz=source_tz, duration_precision_ms=100,
        duration_note="CSV durations are seconds rounded to 0.1 s; duration_ms is approximate (±50 ms)",
        generated_at=_stamp_from_name(path, source_tz), declared_total=None, summary=None,
    )
    return out


def _no_unparsed(path: Path, raw: pd.Series, parsed: pd.Series) -> None:
    hint = "expected ISO 8601 (JSON) or 'YYYY-MM-DD HH:MM:SS' (CSV)"
    bad = raw[parsed.isna() & raw.notna()]
    if len(bad):
        raise InputFormatError(f"{path}: started_at {str(bad.iloc[0])[:60]!r} is not a timestamp ({len(bad)} rows)",
                               hint=hint)
    outside = raw[parsed.notna() & ((parsed < EARLIEST) | (parsed >= LATEST))]
    if len(outside):
        raise InputFormatError(f"{path}: started_at {str(outside.iloc[0])[:60]!r} is outside the years 2000-2099 "
                               f"({len(outside)} rows)", hint=hint)


def _check_row(path: Path, number: int, row: dict) -> None:
    """One JSON export row: the fields the frame reads have the export's types (strings, integers, a list)."""
    def bad(key: str, expected: str) -> InputFormatError:
        return InputFormatError(f"{path}: calls[{number - 1}].{key} is {sniff.describe_json(row[key])}, expected {expected}",
                                hint="expected the call-history export (extract_call_history.php)")

    if not isinstance(row.get("call_id"), str) or not row["call_id"].strip():
        raise bad("call_id", "a call id string")
    if "started_at" not in row:
        raise InputFormatError(f"{path}: calls[{number - 1}] has no started_at",
                               hint="expected the call-history export (extract_call_history.php)")
    for key in _ROW_TEXT[1:]:
        if row.get(key) is not None and not isinstance(row[key], str):
            raise bad(key, "a string")
    for key in _ROW_NUMBERS:
        value = row.get(key)
        if value is None or (isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) < 13):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 < value < _MAX_COUNT:
            raise bad(key, f"a non-negative number below {_MAX_COUNT}")
    functions_value = row.get("functions")
    if functions_value is not None and not (isinstance(functions_value, list)
                                            and all(isinstance(f, dict) for f in functions_value)):
        raise bad("functions", "a list of {name, status, duration_ms} objects")


def _generated_at(path: Path, value) -> str | None:
    """``metadata.generated_at`` as a UTC string; a value that is not a zoned time is refused."""
    if not value:
        return None
    try:
        return str(pd.Timestamp(str(value)).tz_convert("UTC"))
    except (ValueError, TypeError, OverflowError):
        raise InputFormatError(f"{path}: metadata.generated_at {str(value)[:60]!r} is not a zoned ISO 8601 time",
                               hint="expected e.g. 2025-10-24T18:40:34+02:00") from None


def _stamp_from_name(path: Path, source_tz: str) -> str | None:
    """``call_history_2025-10-24_184034.csv`` -> export time (wall time in ``source_tz``) as UTC."""
    match = _STAMP_IN_NAME.search(path.name)
    if not match:
        return None
    local = localize_naive(pd.Series([f"{match.group(1)} {match.group(2)}:{match.group(3)}:{match.group(4)}"]), source_tz)
    return str(local["ts"].iloc[0])


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Dtypes and derived flags shared by both formats (same as the loaders' calls frame)."""
    frame = frame.copy()
    frame["call_id"] = frame["call_id"].astype("string").str.strip()
    for col in ("agent_version", "duration_ms", "function_call_count", "error_count"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").round().astype("Int64")
    for col in ("call_status", "disconnection_reason"):
        frame[col] = frame[col].astype("string").astype("category")
    frame["ended_at"] = pd.Series(pd.NaT, index=frame.index, dtype=frame["started_at"].dtype)
    frame["id_kind"] = call_ids.id_kinds(frame["call_id"]).astype("category")
    frame["is_test"] = frame["id_kind"] != "retell"
    frame["closed_by_cleanup"] = sessions.closed_by_cleanup(frame["disconnection_reason"])
    frame = frame[SESSION_FRAME_COLUMNS].sort_values(["started_at", "call_id"], kind="stable").reset_index(drop=True)
    frame.attrs.update(n_rows=len(frame), n_test_ids=int(frame["is_test"].sum()),
                       ended_at_note="exports carry no ended_at; stuck = in_progress with no end")
    return frame


def mask_personal_data(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of an export frame for storing: the traced ``functions`` (names, statuses, and whatever
    arguments or results an export adds) and the status texts masked by the one rule
    (rules/personal_data); call ids, times and numbers are kept, they key the rows."""
    out = frame.copy()
    names = masking.names_of(out["functions"].tolist()) if "functions" in out else []
    if "functions" in out:
        out["functions"] = out["functions"].map(lambda v: masking.mask_value(v, names) if isinstance(v, list) else v)
    for column in ("call_status", "disconnection_reason"):
        if column in out:
            text = out[column].astype("string")
            out[column] = text.map(lambda v: masking.mask_text(v, names), na_action="ignore").astype("string") \
                .astype("category")
    out.attrs.update(frame.attrs, personal_data_masked=True)
    return out


def export_functions(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per traced function of a JSON export: call_id, function_name, family, status, duration_ms."""
    rows = [
        {"call_id": call_id, "sequence": i, "function_name": fn.get("name"), "status": fn.get("status"),
         "duration_ms": fn.get("duration_ms")}
        for call_id, functions in zip(frame["call_id"], frame["functions"])
        if isinstance(functions, list)
        for i, fn in enumerate(functions, start=1)
    ]
    out = pd.DataFrame.from_records(rows, columns=["call_id", "sequence", "function_name", "status", "duration_ms"])
    out["family"] = out["function_name"].map(functions.function_family)
    out["duration_ms"] = pd.to_numeric(out["duration_ms"], errors="coerce").astype("Int64")
    return out
