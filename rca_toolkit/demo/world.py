"""Deterministic synthetic demo world with ground truth (spec: docs/demo-world.md).

``build(url, seed=7, scale=1)`` writes the production tables of the data contract into an
empty SQLite file or MariaDB database, injects the documented incidents at their times, and
returns (and writes as JSON) the ground truth the analyses must reproduce. Everything in it
is **synthetic**; the marker table ``rca_demo_world`` says so.

Generation is vectorised numpy/pandas from one ``numpy.random.Generator(seed)``, so the
same seed gives the same rows on every backend; only the rendering of times differs
(SQLite: Berlin wall time; MariaDB: UTC instants in a ``+00:00`` session).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from rca_toolkit.demo import background as B
from rca_toolkit.demo import fastload as F
from rca_toolkit.demo import injected as I
from rca_toolkit.demo import load as L
from rca_toolkit.demo import rows as R
from rca_toolkit.demo import spec as S
from rca_toolkit.demo import tables as T
from rca_toolkit.demo import migrations as demo_migrations, truth as demo_truth, two_step
from rca_toolkit.demo.retell import call_object, start_ms_of
from rca_toolkit.rules import call_ids
from rca_toolkit.sources import schema
from rca_toolkit.config import progress_enabled
from rca_toolkit.sources.db import check_connection, make_engine
from rca_toolkit.errors import ConfigError

GENERATOR = S.GENERATOR
NOTE = S.NOTE

__all__ = ["build", "generate", "default_truth_path", "DemoRefused"]
DemoRefused = L.DemoRefused


def default_truth_path(url: str | sa.URL) -> Path:
    """``<sqlite path minus .sqlite>.truth.json`` or ``data/demo-<dbname>.truth.json``."""
    parsed = sa.make_url(str(url)) if not isinstance(url, sa.URL) else url
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        return path.with_name(path.name.removesuffix(".sqlite") + ".truth.json")
    return Path("data") / f"demo-{parsed.database or 'memory'}.truth.json"


# --------------------------------------------------------------------------- generation
def _business_instants(rng: np.random.Generator, lo_us: int, hi_us: int, n: int) -> np.ndarray:
    """``n`` instants in [lo, hi) inside business hours (weekday 08-19, weekend 09-17 Berlin)."""
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    while sum(len(o) for o in out) < n:
        cand = rng.integers(lo_us, hi_us, size=max(4 * n, 16))
        wall = cand + np.where(cand < S.DST_END, 2, 1) * S.HOUR_US
        hour = (wall % S.DAY_US) / S.HOUR_US
        weekday = ((wall // S.DAY_US) + 3) % 7 < 5  # 1970-01-01 was a Thursday
        ok = np.where(weekday, (hour >= 8) & (hour < 19), (hour >= 9) & (hour < 17))
        out.append(cand[ok])
    return np.concatenate(out)[:n]


def _booking_times(calls: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    b = traces[traces["path"] != ""]
    return pd.DataFrame({"path": b["path"].to_numpy(),
                         "at": calls["start_us"].to_numpy()[b["cidx"].to_numpy()] + (b["offset_ms"].to_numpy() * S.MS)})


def _topups(rng, calls: pd.DataFrame, traces: pd.DataFrame) -> tuple[list, dict]:
    """Targets (instant, path) for extra booking calls so every tested window is well populated."""
    bt = _booking_times(calls[calls["is_real"]], traces[traces["cidx"].isin(np.flatnonzero(calls["is_real"]))])
    targets, report = [], {}
    for window in ("before_phantom_5d", "phantom_collect", "before_partial_fix_5d", "after_partial_fix_5d",
                   "after_full_fix_5d"):
        lo, hi = {**S.BOOKING_WINDOWS, **S.EXTRA_WINDOWS}[window]
        for path in ("collect_appointment", "book_appointment"):
            have = int(((bt["path"] == path) & (bt["at"] >= lo) & (bt["at"] < hi)).sum())
            need = max(0, S.MIN_ATTEMPTS_PER_PATH - have)
            targets += [(int(x), path) for x in _business_instants(rng, lo, hi, need)]
            report[f"{window}/{path}"] = need
    for label, (at, paths) in S.GUARANTEED_HOURS.items():
        for path in paths:
            for h in (-2, -1, 0, 1):
                lo, hi = at + h * S.HOUR_US, at + (h + 1) * S.HOUR_US
                have = int(((bt["path"] == path) & (bt["at"] >= lo) & (bt["at"] < hi)).sum())
                have += sum(1 for x, p in targets if p == path and lo <= x < hi)
                need = max(0, S.ATTEMPTS_PER_GUARANTEED_HOUR - have)
                targets += [(int(x), path) for x in np.sort(rng.integers(lo + 60 * S.US, hi - 60 * S.US, need))]
                report[f"{label}{h:+d}h/{path}"] = need
    return targets, report


def _concat(parts: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]]):
    calls, traces, segs, base = [], [], [], 0
    for c, t, g in parts:
        calls.append(c)
        for frame, out in ((t, traces), (g, segs)):
            if frame is not None and len(frame):
                frame = frame.copy()
                frame["cidx"] = frame.pop("local") + base
                out.append(frame)
        base += len(c)
    return (pd.concat(calls, ignore_index=True), pd.concat(traces, ignore_index=True),
            pd.concat(segs, ignore_index=True))


def generate(seed: int = 7, scale: int = 1) -> tuple[dict[str, pd.DataFrame], dict]:
    """All table frames (times in UTC microseconds) and the ground truth (without row counts)."""
    rng = np.random.default_rng(seed)
    bg_c, bg_t = B.plan_calls(rng, B.sample_starts(rng, scale))
    dst_sessions = np.array([S.berlin("2025-10-26 02:15:00"), S.berlin("2025-10-26 02:40:00", fold=1)])
    dst_c, dst_t = B.plan_calls(rng, dst_sessions - 800 * S.MS, booking=np.zeros(2, bool), kind="dst")
    dst_c["sess_offset_us"] = 800 * S.MS
    scripts = I.scripts()
    inj_c, inj_t, inj_g = I.plans(scripts)
    test_c, test_t = I.test_plans()
    fixed_ids = set(inj_c["call_id"]) | set(test_c["call_id"])
    for frame in (bg_c, dst_c):
        frame["call_id"] = B.retell_ids(rng, len(frame), fixed_ids)
        fixed_ids |= set(frame["call_id"])
        frame["agent_version"] = B.agent_version(frame["start_us"].to_numpy()).astype(float)
    pre_c, pre_t, _ = _concat([(bg_c, bg_t, None), (dst_c, dst_t, None), (inj_c, inj_t, inj_g), (test_c, test_t, None)])
    pre_c["is_real"] = pre_c["call_id"].map(call_ids.is_real_call_id)
    targets, topup_report = _topups(rng, pre_c, pre_t)
    up_c, up_t = B.plan_calls(rng, np.array([x for x, _ in targets], dtype=np.int64),
                              booking=np.ones(len(targets), bool), path=np.array([p for _, p in targets], dtype=object),
                              kind="topup")
    if len(up_c):
        book_offset = up_t[up_t["seq"] == 3].set_index("local")["offset_ms"].reindex(range(len(up_c))).to_numpy()
        up_c["start_us"] = up_c["start_us"] - (book_offset * S.MS).astype(np.int64)
        up_c["call_id"] = B.retell_ids(rng, len(up_c), fixed_ids)
        up_c["agent_version"] = B.agent_version(up_c["start_us"].to_numpy()).astype(float)
    plain_c = pd.concat([bg_c, dst_c, up_c], ignore_index=True)
    plain_t = pd.concat([bg_t, dst_t.assign(local=dst_t["local"] + len(bg_c)), up_t.assign(local=up_t["local"] + len(bg_c) + len(dst_c))], ignore_index=True)
    plain_g = B.plan_segments(rng, plain_c, plain_t)
    c, t, g = _concat([(plain_c, plain_t, plain_g), (inj_c, inj_t, inj_g), (test_c, test_t, None)])
    c = _call_flags(rng, c)
    t = R.classify_traces(t, c, rng)
    att = R.attempts(t, c)
    c["raw"] = None
    for k, sc in enumerate(scripts):
        cidx = int(np.flatnonzero(c["call_id"].to_numpy() == sc["call_id"])[0])
        kinds = t[t["cidx"] == cidx].sort_values("seq")["error_kind"].tolist()
        agent = S.AGENT_ID_OLD if c.at[cidx, "start_us"] < S.AGENT_SWITCH else S.AGENT_ID_NEW
        c.at[cidx, "raw"] = call_object(sc, start_ms=start_ms_of(sc), agent_id=agent, tool_outcomes=kinds)
    errs = pd.concat([R.error_rows(t), R.duplicate_rows(c)], ignore_index=True)
    traces, events, key_to_event = T.traces_and_events(c, t, errs, rng)
    trace_ids = traces["id"]
    hooks, appts, appt_of_call, _uids = T.bookings(c, att, t, rng)
    att_cidx = t.loc[att["trace_key"], "cidx"].to_numpy()
    tried = np.bincount(att_cidx, minlength=len(c))
    won = np.bincount(att_cidx, weights=(att["outcome"] == "success").to_numpy(), minlength=len(c))
    outcome = pd.Series(np.where(tried == 0, "none", np.where(won > 0, "success", "failed")))
    tables = {
        "retell_call_sessions": T.sessions(c, t, g, errs, events),
        "retell_call_events": events,
        "retell_function_traces": traces,
        "retell_transcript_segments": T.segments(c, g),
        "retell_error_log": T.errors(c, errs, trace_ids, key_to_event),
        "calls": T.calls(c, rng, outcome, appt_of_call),
        "appointments": appts.drop(columns=["_double", "_cidx"]),
        "webhook_events": hooks,
        "migrations": pd.DataFrame(demo_migrations.rows()),
    }
    truth = demo_truth.compute(seed=seed, scale=scale, c=c, t=t, att=att, tables=tables, appts=appts,
                               topups=topup_report)
    two_step.extend(tables, truth, seed=seed)  # after everything else: the world above stays as it was
    return tables, truth


def _call_flags(rng: np.random.Generator, c: pd.DataFrame) -> pd.DataFrame:
    """Session ids, local call ids, stuck sessions (P5) and cleanup-closed calls (P20)."""
    c = c.copy()
    c["is_real"] = c["call_id"].map(call_ids.is_real_call_id)
    if "forced_status" not in c:
        c["forced_status"] = None
    c["session_id"] = B.uuids(rng, len(c))
    start = c["start_us"].to_numpy()
    session = start + c["sess_offset_us"].to_numpy()
    plain = c["kind"].isin(["background", "topup", "dst"]).to_numpy()
    stuck_day = (session >= S.berlin("2025-10-24 00:00:00")) & (session < S.berlin("2025-10-25 00:00:00"))
    later = (session >= S.berlin("2025-10-25 00:00:00")) & (session < S.BUG5_FIX) & (rng.random(len(c)) < 0.2)
    c["stuck"] = plain & (stuck_day | later)
    candidates = np.flatnonzero(plain & ~c["stuck"].to_numpy())
    n_cleanup = max(3, int(round(0.004 * len(candidates))))
    c["cleanup"] = False
    c.loc[rng.choice(candidates, size=n_cleanup, replace=False), "cleanup"] = True
    has_row = (c["call_id"] != S.TYPO_ID).to_numpy()
    order = np.lexsort((np.arange(len(c)), start))
    local = np.zeros(len(c), dtype=np.int64)
    ranked = order[has_row[order]]
    local[ranked] = np.arange(1, len(ranked) + 1)
    race = int(np.flatnonzero(c["call_id"].to_numpy() == I.RACE_CALL)[0])
    holder = np.flatnonzero(local == I.RACE_CALL_LOCAL_ID)
    if len(holder):  # "Call 569" is the race call (incidents.md C)
        local[holder[0]], local[race] = local[race], I.RACE_CALL_LOCAL_ID
    c["local_id"] = local
    return c


# --------------------------------------------------------------------------- build
def build(url: str, *, seed: int = 7, scale: int = 1, truth_path: str | Path | None = None,
          replace: bool = False, progress: bool | None = None) -> dict:
    """Build the demo world into ``url``; returns the ground truth (also written as JSON)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not a non-negative integer", hint="use e.g. --seed 7")
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or not 1 <= scale <= 5000:
        raise ConfigError(f"scale={scale!r} is not an integer between 1 and 5000", hint="use e.g. --scale 1")
    progress = progress_enabled() if progress is None else progress
    started = time.monotonic()
    engine = make_engine(url, writable=True)
    try:
        check_connection(engine)
        L.check_target(engine, replace)
        tables, truth = generate(int(seed), int(scale))
        fast = False
        if engine.dialect.name != "sqlite":
            sa.event.listen(engine, "do_connect", _allow_local_infile)
            sa.event.listen(engine, "connect", _no_statement_limit)
            engine.dispose()
            fast = _server_allows_infile(engine)
        L.create_schema(engine, replace, bare=fast)
        counted = _write(engine, tables, seed=int(seed), scale=int(scale), progress=progress, fast=fast)
        if fast:
            L.add_deferred_keys(engine)
    except DBAPIError as exc:
        raise L.translate(exc, engine) from None
    finally:
        engine.dispose()
    truth["row_counts"] = counted
    truth["backend"] = engine.dialect.name
    truth["build_seconds"] = round(time.monotonic() - started, 2)
    path = Path(truth_path) if truth_path else default_truth_path(engine.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, indent=1, ensure_ascii=False, default=_json_default))
    truth["truth_path"] = str(path)
    return truth


def _no_statement_limit(dbapi_conn, _record) -> None:  # noqa: ANN001
    """Bulk loads and index builds of a large world may exceed the analysis statement limit."""
    with dbapi_conn.cursor() as cur:
        cur.execute("SET SESSION max_statement_time = 0")


def _allow_local_infile(dialect, conn_rec, cargs, cparams) -> None:  # noqa: ANN001
    """Let pymysql stream LOAD DATA LOCAL INFILE files (the demo's bulk path)."""
    cparams["local_infile"] = True


def _write(engine: sa.Engine, tables: dict[str, pd.DataFrame], *, seed: int, scale: int, progress: bool,
           fast: bool) -> dict[str, int]:
    """Insert the marker row first (a half-built world can be replaced), then every table in key order.

    Returns the rows stored per table (the server's affected-row counts on the bulk path)."""
    from rca_toolkit.config import progress_bar as tqdm  # a terminal bar, or plain lines in a log

    wall = engine.dialect.name == "sqlite"
    quote = engine.dialect.identifier_preparer.quote
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if wall:
            cur.execute("PRAGMA foreign_keys = OFF")
            cur.execute("PRAGMA synchronous = OFF")
            cur.execute("PRAGMA journal_mode = MEMORY")
        else:
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute("SET SESSION unique_checks = 0")
        cur.close()
        cur = raw.cursor()
        dbapi = raw.driver_connection
        marker = pd.DataFrame([{"id": 1, "seed": seed, "scale": scale, "generator": GENERATOR, "note": NOTE,
                                "built_at_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}])
        counts = {}
        L.load_table(engine, dbapi, schema.rca_demo_world, marker.astype(object))
        raw.commit()
        for name, frame in tables.items():
            table = schema.metadata.tables[name]
            frame = frame.sort_values("id", kind="stable") if "id" in frame else frame
            with tqdm(total=len(frame), desc=name, unit="rows", disable=not progress, leave=False) as bar:
                if fast:
                    counts[name] = F.load(cur, quote, table, frame, bar)
                else:
                    counts[name] = L.load_table(engine, dbapi, table, L.prepare_frame(table, frame, wall=wall), bar)
            raw.commit()
        cur.close()
        counts["rca_demo_world"] = 1
        return counts
    finally:
        raw.close()


def _server_allows_infile(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT @@local_infile")).scalar_one())


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
