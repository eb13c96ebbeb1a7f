"""Worker side of the benchmark: run one job variant in this (fresh) process and report JSON.

A fresh subprocess per measurement is the honest way to get a per-job peak RSS
(``resource.getrusage`` high-water mark); the parent also polls the child's RSS so a run
killed for time or memory still has a number. Statements the job sends are captured with
SQLAlchemy's ``before_cursor_execute`` event so the parent can report the plan of each.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import sqlalchemy as sa

RESULT_PREFIX = "BENCH-RESULT "
# What the server did for one run (MariaDB's global counters, before and after it): rows its storage engines read,
# scanned ones included, and bytes InnoDB read from disk. Why: "rows read" counts the rows a variant was sent; a scan
# that returns one count reads the whole table all the same, and that is what production notices.
SERVER_COUNTERS = {"Rows_read": "rows_read", "Innodb_data_read": "bytes_from_disk"}


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def capture(engine: sa.Engine) -> list[tuple[str, object]]:
    """Record every SELECT the engine sends (statement text and its bound parameters) until ``stop``."""
    seen: _Captured = _Captured()

    def _grab(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("SELECT") and "information_schema" not in statement.lower():
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", _grab)
    seen.stop = lambda: sa.event.remove(engine, "before_cursor_execute", _grab)  # type: ignore[attr-defined]
    return seen


class _Captured(list):
    """A list that can carry its ``stop`` callback."""


def server_counters(engine: sa.Engine) -> dict | None:
    """The server's ``SERVER_COUNTERS`` now (global: the benchmark's machine has no other client), None off MariaDB."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return None
    names = ", ".join(f"'{n}'" for n in SERVER_COUNTERS)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")).all()
    return {SERVER_COUNTERS[name]: int(value) for name, value in rows}


def server_delta(before: dict | None, after: dict | None) -> dict | None:
    return None if before is None or after is None else {k: after[k] - before[k] for k in before}


def explain(engine: sa.Engine, statements: list[tuple[str, object]]) -> list[dict]:
    """Plan of each distinct statement: per table the access type, key used and estimated rows."""
    plans, done = [], set()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, params in statements:
            if statement in done:
                continue
            done.add(statement)
            sqlite = engine.dialect.name == "sqlite"
            cur.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
            plans.append({"sql": " ".join(statement.split()), "tables": [_access(r, sqlite) for r in rows]})
        cur.close()
    finally:
        raw.close()
    return plans


def _access(row: dict, sqlite: bool) -> dict:
    if sqlite:
        detail = str(row.get("detail", ""))
        return {"table": detail.split()[1] if len(detail.split()) > 1 else "", "type": detail.split()[0] if detail else "",
                "key": detail.split("USING ")[-1] if "USING" in detail else None, "rows": None,
                "full_scan": detail.startswith("SCAN") and "USING" not in detail, "detail": detail}
    kind = row.get("type")
    return {"table": row.get("table"), "type": kind, "key": row.get("key"), "rows": row.get("rows"),
            "extra": row.get("Extra"), "full_scan": kind in ("ALL", "index")}


def work(url: str, job: str, variant: str, repeat: int, budget_s: float, want_explain: bool, store_root: str | None = None) -> dict:
    """Run ``job/variant`` up to ``repeat`` times (at least once, stop when ``budget_s`` is spent); a store
    variant runs once (its store was prepared by ``prepare`` in another process, as a new ``rca`` finds it)."""
    from rca_toolkit.sources import loaders

    from . import queries

    engine = loaders.engine_for(url)
    t0 = time.perf_counter()
    loaders.schema_of(engine)  # one catalogue read per engine, as in a notebook session
    introspect_s = time.perf_counter() - t0
    base = _rss_mib()
    if variant == "sql":
        return _replay(engine, job, repeat, budget_s, introspect_s, base)
    if variant in queries.STORE_VARIANTS:
        return _on_store(engine, job, variant, store_root, introspect_s, base)
    statements = capture(engine) if want_explain else None
    counted = server_counters(engine)  # around the first run only
    seconds, digest, server, started = [], None, None, time.perf_counter()
    for i in range(repeat):
        t = time.perf_counter()
        digest = queries.run(job, variant, engine)
        seconds.append(time.perf_counter() - t)
        if i == 0:
            server = server_delta(counted, server_counters(engine))
            if statements is not None:
                statements.stop()
        if time.perf_counter() - started > budget_s:
            break
    out = {"job": job, "variant": variant, "seconds": seconds, "digest": digest, "introspect_s": introspect_s,
           "server": server, "rss_base_mib": round(base, 1), "rss_peak_mib": round(_peak_mib(), 1)}
    if statements:
        out["explain"] = explain(engine, statements)
    engine.dispose()
    return out


def _on_store(engine: sa.Engine, job: str, variant: str, store_root: str | None, introspect_s: float, base: float) -> dict:
    """A store variant, timed once: the refresh a new process's ``store.fresh_store`` does (if any), then the toolkit's
    function on the store engine (``refresh_s`` and ``job_s`` apart); what the refresh read and the store's size."""
    from . import queries

    if store_root is None:
        raise SystemExit(f"the {variant} variant needs a store folder (argument 7)")
    folder = queries.store_folder(store_root, engine)
    counted = server_counters(engine)
    t = time.perf_counter()
    stored, done = queries.on_store(engine, folder)
    refreshed = time.perf_counter()
    digest = queries.JOBS[job]["toolkit"](stored)
    finished = time.perf_counter()
    server = server_delta(counted, server_counters(engine))
    read = {"rows_read": done.rows_read, "total_read": done.total_read, "keys_read": done.keys_read, "built": done.built} if done \
        else {"rows_read": {}, "total_read": 0, "keys_read": {}, "built": []}  # read as it was (refreshed moments ago)
    out = {"job": job, "variant": variant, "seconds": [finished - t], "refresh_s": [refreshed - t], "job_s": [finished - refreshed],
           "digest": digest, "introspect_s": introspect_s, **read, "server": server, "store_bytes": queries.store_bytes(folder),
           "rss_base_mib": round(base, 1), "rss_peak_mib": round(_peak_mib(), 1)}
    engine.dispose()
    return out


def prepare(url: str, variant: str, store_root: str) -> dict:
    """Untimed, in its own process (so the measured one's peak RSS is its own): the store a variant starts from."""
    from rca_toolkit.sources import loaders

    from . import queries

    engine = loaders.engine_for(url)
    t = time.perf_counter()
    out = queries.prepare(variant, engine, queries.store_folder(store_root, engine))
    engine.dispose()
    seconds = time.perf_counter() - t
    # the store's writes reach the disk here, untimed: left to the kernel, they were written back during the measured
    # run (a day-old store has none pending; health incremental at 1M calls: 0.4 s of its 4.3 s)
    os.sync()
    return {"job": "prepare", "variant": variant, "seconds": [seconds], "rss_peak_mib": round(_peak_mib(), 1), **out}


def _replay(engine: sa.Engine, job: str, repeat: int, budget_s: float, introspect_s: float, base: float) -> dict:
    """The ``sql`` variant: the toolkit's own statements, replayed alone on a raw cursor, rows fetched.

    One untimed toolkit run records every SELECT it sends (its digest is this variant's); each
    timed run then executes exactly those statements with the same parameters and fetches all
    rows, with no pandas and no Python analysis: what the toolkit costs the database and driver.
    """
    from . import queries

    statements = capture(engine)
    digest = queries.run(job, "toolkit", engine)
    statements.stop()
    seconds, started = [], time.perf_counter()
    for _ in range(repeat):
        t = time.perf_counter()
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            for statement, params in statements:
                cur.execute(statement, params)
                cur.fetchall()
            cur.close()
        finally:
            raw.close()
        seconds.append(time.perf_counter() - t)
        if time.perf_counter() - started > budget_s:
            break
    out = {"job": job, "variant": "sql", "seconds": seconds, "digest": digest, "introspect_s": introspect_s,
           "statements": len(statements), "rss_base_mib": round(base, 1), "rss_peak_mib": round(_peak_mib(), 1)}
    engine.dispose()
    return out


def build(url: str, scale: int, seed: int, copies: int = 0, step_ms: int = 3000, fulltext: bool = True,
          tune_server: bool = False) -> dict:
    """Build the world and report time, per-phase times and peak RSS.

    ``copies`` 0: the demo builder at ``scale`` (writable engine, --replace); otherwise
    :mod:`benchmarks.world` (the demo world at ``scale`` multiplied inside MariaDB)."""
    from rca_toolkit import demo

    from . import world

    t = time.perf_counter()
    if copies == 0:
        truth = demo.build(url, seed=seed, scale=scale, replace=True, progress=False)
        return {"job": "build", "seconds": [time.perf_counter() - t], "rss_peak_mib": round(_peak_mib(), 1),
                "row_counts": truth.get("row_counts", {}), "builder_seconds": truth.get("build_seconds")}
    record = world.build(url, base_scale=scale, copies=copies, seed=seed, step_ms=step_ms, fulltext=fulltext,
                         tune_server=tune_server)
    return {"job": "build", "seconds": [time.perf_counter() - t], "rss_peak_mib": round(_peak_mib(), 1),
            "row_counts": record["row_counts"], "world": record}


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "build":
        copies, step_ms, fulltext, tune = (int(argv[4]), int(argv[5]), argv[6] == "1", argv[7] == "1") if len(argv) > 4 else (0, 0, True, False)
        out = build(argv[1], int(argv[2]), int(argv[3]), copies, step_ms, fulltext, tune)
    elif kind == "prepare":
        out = prepare(argv[1], argv[2], argv[3])
    else:
        url, job, variant, repeat, budget, want = argv[1], argv[2], argv[3], int(argv[4]), float(argv[5]), argv[6] == "1"
        out = work(url, job, variant, repeat, budget, want, argv[7] if len(argv) > 7 else None)
    sys.stdout.write(RESULT_PREFIX + json.dumps(out, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
