"""Known deployments (and migration batches with known times) as candidate causes of a change.

Why a file and not the database: production has no deployment table; the commit times come
from git (``../shared/docs/incidents.md``). The default is the package resource
``resources/deployments_askproai.csv``; a CSV or YAML file with the same columns can replace it.
Every time must carry an explicit offset: a naive deploy time would silently shift by one or
two hours (P1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rca_toolkit.errors import InputFormatError, NotFound
from rca_toolkit.rules.timeutil import EARLIEST_INSTANT, LATEST_INSTANT

COLUMNS = ["deployed_at", "commit", "description", "source"]
DEFAULT_RESOURCE = "deployments_askproai.csv"


def default_path() -> Path:
    """Path of the packaged askproai deployment list."""
    # In the package's resources folder, not importlib.resources: editable installs can expose the package as a
    # namespace whose resource reader rejects it.
    return Path(__file__).resolve().parents[1] / "resources" / DEFAULT_RESOURCE


def load_deployments(path: str | Path | None = None) -> pd.DataFrame:
    """Read deployments: ``deployed_at`` (UTC), ``commit``, ``description``, ``source``; sorted by time."""
    file = Path(path) if path else default_path()
    expected = f"give a CSV/YAML with columns {', '.join(COLUMNS)} and one row per deployment"
    if not file.exists():
        raise NotFound(f"deployment list {file} does not exist", hint=expected)
    if file.is_dir():
        raise InputFormatError(f"deployment list {file} is a directory", hint=expected)
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or []
            if isinstance(data, dict):
                data = data.get("deployments", [])
            if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
                raise InputFormatError(f"deployment list {file} is not a list of deployments",
                                       hint="write deployments: [{deployed_at: ..., commit: ..., description: ..., source: ...}]")
            raw = pd.DataFrame(data)
        else:
            raw = pd.read_csv(file, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputFormatError(f"deployment list {file} is empty", hint=expected) from None
    except (yaml.YAMLError, pd.errors.ParserError, UnicodeDecodeError, OSError, RecursionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputFormatError(f"cannot parse deployment list {file}: {first}", hint="write a CSV or YAML list") from None
    if raw.empty:
        raise InputFormatError(f"deployment list {file} holds no deployments (a header at most)",
                               hint="add one row per deployment, or leave --deployments out for the packaged list")
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise InputFormatError(f"deployment list {file} lacks columns {', '.join(missing)}",
                               hint=f"expected columns: {', '.join(COLUMNS)}")
    return _typed(raw, file)


def _typed(raw: pd.DataFrame, file: Path) -> pd.DataFrame:
    times = []
    for i, text in enumerate(raw["deployed_at"].astype(str)):
        try:
            ts = pd.Timestamp(text.strip())
        except (ValueError, OverflowError):
            raise InputFormatError(f"{file} row {i + 2}: deployed_at={text!r} is not ISO-8601",
                                   hint="write it like 2025-10-18T13:20:08+02:00") from None
        if ts is pd.NaT or ts.tzinfo is None:
            raise InputFormatError(f"{file} row {i + 2}: deployed_at={text!r} has no offset",
                                   hint="add the offset, e.g. +02:00 (CEST) or +01:00 (CET)")
        if not EARLIEST_INSTANT <= ts < LATEST_INSTANT:
            raise InputFormatError(f"{file} row {i + 2}: deployed_at={text!r} is outside the years 1970-2199",
                                   hint="write the deployment's real time, e.g. 2025-10-18T13:20:08+02:00")
        times.append(ts.tz_convert("UTC"))
    out = raw[COLUMNS].copy()
    out["deployed_at"] = pd.to_datetime(pd.Series(times, index=raw.index, dtype="datetime64[ns, UTC]"))
    for col in ("commit", "description", "source"):
        out[col] = out[col].astype("string")
    out = out.sort_values("deployed_at", kind="stable").reset_index(drop=True)
    out.attrs["source_file"] = str(file)
    return out


def rank_candidates(deployments: pd.DataFrame, at: pd.Timestamp, *, first_new: pd.Timestamp | None = None,
                    within: pd.Timedelta = pd.Timedelta(days=3), top: int = 3) -> list[dict]:
    """Deployments near a change, causes before the change first, then by time distance.

    ``first_new`` (the first observation of the new regime) is the latest moment a cause can
    have happened; a deployment after it can only be a coincidence and is ranked last.
    """
    if deployments is None or deployments.empty:
        return []
    limit = first_new if first_new is not None else at
    # integers (ns) and plain arrays, no pandas operation: called for each of a thousand changes at 1M calls
    when = pd.DatetimeIndex(deployments["deployed_at"]).as_unit("ns")
    ns, known = when.asi8, ~when.isna()
    offset = ns - pd.Timestamp(at).value
    near = np.flatnonzero(known & (np.abs(offset) <= within.value))
    before = known & (ns <= pd.Timestamp(limit).value)
    distance_s = offset / 1e9
    ranked = sorted(near, key=lambda i: (not before[i], abs(distance_s[i])))[:top]  # stable: ties keep the list's order
    text = {col: deployments[col].to_numpy(dtype=object) for col in ("commit", "description", "source")}
    return [{"deployed_at": when[i].isoformat(), "commit": str(text["commit"][i]), "description": str(text["description"][i]),
             "source": str(text["source"][i]), "distance_hours": round(float(distance_s[i]) / 3600, 2),
             "before_change": bool(before[i])} for i in ranked]
