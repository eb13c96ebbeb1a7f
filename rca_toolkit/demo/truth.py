"""Ground truth of the demo world, computed from the generated frames (never hand-typed).

Private helper of :mod:`rca_toolkit.demo`. Keys are described in docs/demo-world.md.
Per-row lists (attempts, stuck ids, negative traces) are included up to ``LIST_LIMIT_SCALE``;
above that only counts are given, to keep the JSON small.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rca_toolkit.demo import injected as I
from rca_toolkit.demo import migrations as demo_migrations
from rca_toolkit.demo import spec as S

LIST_LIMIT_SCALE = 10


def _window(lo: int, hi: int) -> dict:
    return {"start": S.iso_berlin(lo), "end": S.iso_berlin(hi)}


def booking_windows(att: pd.DataFrame, windows: dict = S.BOOKING_WINDOWS) -> dict:
    """``{path: {window: {attempts, success, failed, orphaned, rescued}}}`` over real call ids."""
    real = att[att["is_real"]]
    out: dict = {}
    for path in ("collect_appointment", "book_appointment"):
        p = real[real["path"] == path]
        out[path] = {}
        for window, (lo, hi) in windows.items():
            w = p[(p["at_us"] >= lo) & (p["at_us"] < hi)]
            out[path][window] = {"attempts": int(len(w)), "success": int((w["outcome"] == "success").sum()),
                                 "failed": int((w["outcome"] == "failed").sum()), "orphaned": int(w["orphaned"].sum()),
                                 "rescued": int(w["rescued"].sum()), **_window(lo, hi)}
    return out


def _hourly(att: pd.DataFrame, at: int, path: str) -> list[dict]:
    p = att[att["is_real"] & (att["path"] == path)]
    rows = []
    for h in (-2, -1, 0, 1):
        lo, hi = at + h * S.HOUR_US, at + (h + 1) * S.HOUR_US
        w = p[(p["at_us"] >= lo) & (p["at_us"] < hi)]
        rows.append({"hour": h, "start": S.iso_berlin(lo), "attempts": int(len(w)),
                     "success": int((w["outcome"] == "success").sum())})
    return rows


def compute(*, seed: int, scale: int, c: pd.DataFrame, t: pd.DataFrame, att: pd.DataFrame, tables: dict,
            appts: pd.DataFrame, topups: dict) -> dict:
    small = scale <= LIST_LIMIT_SCALE
    sessions = tables["retell_call_sessions"]
    traces = tables["retell_function_traces"]
    errors = tables["retell_error_log"]
    call_ids = c["call_id"].to_numpy()
    real = c["is_real"].to_numpy()
    excluded = sorted(set(call_ids[~real]))
    stuck = sorted(call_ids[c["stuck"].to_numpy()])
    neg = traces[traces["duration_ms"] < 0]
    zero_after = traces[(traces["duration_ms"] == 0) & (traces["started_at"] >= S.BUG6_FIX)]
    dup = errors[errors["error_code"] == "23000"]
    phantom = _phantom(errors, sessions, c)
    attempts_list = None
    if small:
        a = att.sort_values("at_us")
        attempts_list = {"call_id": a["call_id"].tolist(), "path": a["path"].tolist(), "function": a["function"].tolist(),
                         "at_utc": [S.iso_utc(int(x)) for x in a["at_us"]], "outcome": a["outcome"].tolist(),
                         "error_kind": a["error_kind"].tolist(), "orphaned": a["orphaned"].astype(bool).tolist(),
                         "is_real": a["is_real"].astype(bool).tolist()}
    d2 = t[t["error_kind"] == "d2"]
    d4 = t[t["error_kind"] == "d4"]
    mig = demo_migrations.defects(tables["migrations"].to_dict("records"))
    refs = I.reference_truth()
    for cid, ref in refs.items():
        row = c[c["call_id"] == cid].iloc[0]
        ref["started_at_utc"] = S.iso_utc(int(row["start_us"] + row["sess_offset_us"]))
        ref["retell_start_utc"] = S.iso_utc(int(row["start_us"]))
        ref["local_calls_id"] = int(row["local_id"])
    dst_rows = c[c["kind"] == "dst"]
    return {
        "synthetic": True,
        "note": "SYNTHETIC DEMO DATA - every row is generated; nothing here is production data",
        "seed": seed, "scale": scale,
        "window": _window(S.WINDOW_START, S.WINDOW_END),
        "calls_total": int(len(c)), "calls_real": int(real.sum()),
        "companies": {str(k): int(v) for k, v in c.loc[real, "company_id"].value_counts().sort_index().items()},
        "test_ids": list(S.TEST_IDS), "excluded_ids": excluded,
        "stuck_session_call_ids": stuck if small else None, "stuck_sessions": len(stuck),
        "stuck_on_2025_10_24": int((c["stuck"] & (sessions["started_at"].to_numpy() < S.berlin("2025-10-25 00:00:00"))).sum()),
        "cleanup_call_ids": sorted(call_ids[c["cleanup"].to_numpy()]),
        "negative_duration_traces": {
            "count": int(len(neg)), "exact": {str(int(v)): int(neg.loc[neg["duration_ms"] == v, "id"].iloc[0])
                                              for v in (-714, -943)},
            "ids": sorted(neg["id"].astype(int).tolist()) if small else None},
        "zero_duration_traces_after_fix": {"count": int(len(zero_after)),
                                           "ids": sorted(zero_after["id"].astype(int).tolist()) if small else None},
        "initialize_call_1000ms_share": round(float(
            (traces.loc[traces["function_name"] == "initialize_call", "duration_ms"] == 1000).mean()), 4),
        "duplicate_key_errors": {"count": int(len(dup)), "per_real_call": 2,
                                 "message_prefix": "SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry"},
        "dst": {"ambiguous_call_ids": {
            cid: {"session_wall_time": wall, "session_started_at_utc": S.iso_utc(int(st)), "fold": fold}
            for cid, st, wall, fold in zip(dst_rows["call_id"], dst_rows["start_us"] + dst_rows["sess_offset_us"],
                                           ("2025-10-26 02:15:00", "2025-10-26 02:40:00"), (0, 1))}},
        "incidents": {
            "A_phantom_columns": phantom,
            "D2_function_name": {**_window(S.D2_START, S.D2_FIX), "failed_traces": int(len(d2)),
                                 "error_message": S.D2_ERROR,
                                 "error_log_rows": int((errors["error_message"] == S.D2_ERROR).sum())},
            "D4_versioned_names": {**_window(S.AGENT_SWITCH, S.D4_FIX), "failed_traces": int(len(d4)),
                                   "by_function": {k: int(v) for k, v in d4["function_name"].value_counts().sort_index().items()}},
            "P5_stuck_sessions": {"day": "2025-10-24", "from": "2025-10-25", "until": S.iso_berlin(S.BUG5_FIX),
                                  "share_after_day": 0.2},
            "P15_double_encoded_metadata": {"count": int(appts["_double"].sum()), "appointments": int(len(appts))},
            "B_loop_call": I.LOOP_CALL, "C_dead_air_call": I.DEAD_AIR_CALL, "D8_call": I.D8_CALL,
        },
        "booking_attempts": booking_windows(att),
        "booking_attempts_extra": booking_windows(att, S.EXTRA_WINDOWS),
        "booking_attempts_note": ("real Retell ids only; success = local appointment written by the call, "
                                  "failed = trace error; orphaned = Cal.com booked but no local row at all "
                                  "(webhook rejected); rescued = failed but the Cal.com webhook upsert created the row"),
        "change_point_hours": {
            "phantom_start/collect_appointment": _hourly(att, S.PHANTOM_START, "collect_appointment"),
            "phantom_start/book_appointment": _hourly(att, S.PHANTOM_START, "book_appointment"),
            "partial_fix/collect_appointment": _hourly(att, S.PARTIAL_FIX, "collect_appointment"),
            "full_fix/book_appointment": _hourly(att, S.FULL_FIX, "book_appointment")},
        "topup_calls": {k: v for k, v in topups.items() if v},
        "attempts": attempts_list,
        "deployments": [{"deployed_at": at, "commit": commit, "description": desc, "source": src}
                        for at, commit, desc, src in S.DEPLOYMENTS],
        "migrations": mig,
        "reference_calls": refs,
    }


def _phantom(errors: pd.DataFrame, sessions: pd.DataFrame, c: pd.DataFrame) -> dict:
    """1054 error-log rows per calling frame and window (what analysis A.1 must find)."""
    e = errors[errors["error_code"] == "42S22"]
    frame = np.where(e["error_context"].str.contains("AppointmentCreationService", regex=False),
                     S.COLLECT_FRAME, S.BOOK_FRAME)
    session_real = pd.Series(c["is_real"].to_numpy(), index=c["session_id"].to_numpy())
    is_real = session_real.reindex(e["call_session_id"].to_numpy()).to_numpy()
    out = {"error_message": S.PHANTOM_ERROR, "column": "created_by", "frames": {}}
    for label, f, (lo, hi) in (("collect", S.COLLECT_FRAME, S.BOOKING_WINDOWS["phantom_collect"]),
                               ("book", S.BOOK_FRAME, S.BOOKING_WINDOWS["phantom_book"])):
        sel = frame == f
        at = e.loc[sel, "occurred_at"].to_numpy()
        out["frames"][f] = {
            "window": _window(lo, hi), "errors": int(sel.sum()), "errors_real_ids": int((sel & is_real).sum()),
            "first": S.iso_berlin(int(at.min())) if len(at) else None,
            "last": S.iso_berlin(int(at.max())) if len(at) else None,
            "outside_window": int(((at < lo) | (at >= hi + 10 * S.US)).sum())}
    return out
