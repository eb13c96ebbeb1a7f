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

import json
import re
from pathlib import Path

import pandas as pd

from rca_toolkit.rules import call_ids, functions, sessions, timeutil
from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules.timeutil import localize_naive

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
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFormatError(f"{path} is not valid JSON: {exc}", hint="is this the call-history .json export?") from None
    rows = document.get("calls") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "call_id" in r for r in rows):
        raise InputFormatError(f"{path} has no calls[] list of rows with call_id", hint="expected the call-history export")
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
    out = _finish(frame)
    out.attrs.update(
        source=str(path), format="call_history_json", duration_precision_ms=1, n_naive_times=int((~zoned).sum()),
        generated_at=str(pd.Timestamp(metadata["generated_at"]).tz_convert("UTC")) if metadata.get("generated_at") else None,
        declared_total=metadata.get("total_calls"),
        summary=document.get("summary") if isinstance(document, dict) else None,
    )
    return out


def read_call_history_csv(path, *, source_tz: str | None = None) -> pd.DataFrame:
    """The CSV export: naive wall time in ``source_tz``, ``N/A`` nulls, seconds to 0.1."""
    path = Path(path)
    source_tz = source_tz or timeutil.source_tz()
    _require_file(path)
    try:
        raw = pd.read_csv(path, dtype=str, na_values=["N/A"], keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"{path} is not a readable CSV: {exc}", hint="is this the call-history .csv export?") from None
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise InputFormatError(f"{path} lacks columns {', '.join(missing)}", hint="expected the call-history CSV header")
    frame = raw.rename(columns=CSV_COLUMNS)[list(CSV_COLUMNS.values())]
    local = localize_naive(frame["started_at"], source_tz)
    _no_unparsed(path, frame["started_at"], local["ts"])
    seconds = pd.to_numeric(frame["duration_s"], errors="coerce")
    frame["duration_ms"] = (seconds * 1000).round()
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
    bad = raw[parsed.isna() & raw.notna()]
    if len(bad):
        raise InputFormatError(f"{path}: started_at {bad.iloc[0]!r} is not a timestamp ({len(bad)} rows)",
                               hint="expected ISO 8601 (JSON) or 'YYYY-MM-DD HH:MM:SS' (CSV)")


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
    frame["id_kind"] = frame["call_id"].map(call_ids.id_kind).astype("category")
    frame["is_test"] = frame["id_kind"] != "retell"
    frame["closed_by_cleanup"] = sessions.closed_by_cleanup(frame["disconnection_reason"])
    frame = frame[SESSION_FRAME_COLUMNS].sort_values(["started_at", "call_id"], kind="stable").reset_index(drop=True)
    frame.attrs.update(n_rows=len(frame), n_test_ids=int(frame["is_test"].sum()),
                       ended_at_note="exports carry no ended_at; stuck = in_progress with no end")
    return frame


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
