"""Benchmark the toolkit on a scaled demo world: ``python -m benchmarks.run [--scale K] [--db URL]``.

Builds the synthetic world (:mod:`benchmarks.world`: a demo world multiplied inside MariaDB;
unless ``--reuse`` finds one at that scale), then runs every job
in its variants (the toolkit's direct SQL, its own SQL replayed, the SQL floor, the toolkit on its local
store cold / warm / incremental, naive pandas), each in a fresh subprocess, at the server's settings as
they are (recorded), and writes ``benchmarks/results/<date>.json`` and ``.md`` (medians, spread, ratios,
rows read, peak RSS, the plan of every loader query, targets met or missed). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import sqlalchemy as sa

from rca_toolkit.sources import indexes, store

from . import queries, world
from .measure import RESULT_PREFIX

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "mysql+pymysql://root@127.0.0.1:3306/rca_bench"
TARGETS = {"trace_ms": 50, "compare_vs_floor": 1.5, "naive_vs_compare": 10, "peak_mib": 1024, "build_s": 300,
           "naive_vs_cold_compare": 2, "naive_vs_warm_compare": 50, "naive_vs_incremental_health": 20,
           "incremental_read_share_health": 0.05, "store_gib": 1.5}
SERVER_SETTINGS = ("version", "innodb_buffer_pool_size", "innodb_log_file_size", "innodb_io_capacity", "innodb_flush_method")


# --------------------------------------------------------------------------- subprocesses
def spawn(args: list[str], *, timeout: float, rss_cap_mib: float, statement_timeout: float) -> dict:
    """Run ``benchmarks.measure`` in a child; kill it past ``timeout`` s or ``rss_cap_mib``; report honestly."""
    env = dict(os.environ, RCA_PROGRESS="0", RCA_STATEMENT_TIMEOUT_S=str(statement_timeout), PYTHONWARNINGS="ignore")
    # files, not pipes: the parent only polls until the child ends, and a result with the EXPLAIN
    # of many statements (> 64 KiB) would block the child on a full pipe
    out_file, err_file = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.measure", *args], cwd=ROOT, env=env,
                            stdout=out_file, stderr=err_file, text=True)
    watch, high, started, why = psutil.Process(proc.pid), 0.0, time.monotonic(), None
    while proc.poll() is None:
        try:
            high = max(high, watch.memory_info().rss / 2**20)
        except psutil.Error:
            pass
        elapsed = time.monotonic() - started
        if elapsed > timeout or high > rss_cap_mib:
            why = (f"did not finish within {timeout:.0f} s" if elapsed > timeout
                   else f"stopped at {high:.0f} MiB RSS (cap {rss_cap_mib:.0f} MiB)")
            proc.kill()
            break
        time.sleep(0.1)
    proc.wait()
    out_file.seek(0), err_file.seek(0)
    out, err = out_file.read(), err_file.read()
    out_file.close(), err_file.close()
    wall = time.monotonic() - started
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_PREFIX)]
    if why is None and (proc.returncode != 0 or not lines):
        why = f"failed (exit {proc.returncode}): {(err.strip().splitlines() or ['no output'])[-1][:300]}"
    if why:
        return {"error": why, "wall_s": round(wall, 1), "rss_polled_mib": round(high, 1)}
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["rss_polled_mib"] = round(high, 1)
    return result


def measure_store(args: argparse.Namespace, job: str, variant: str, store_root: Path, repeat: int) -> list[dict]:
    """A store variant, ``repeat`` times (at least once, until ``--budget`` is spent): each time one process
    prepares the store (untimed: dropped, filled, or filled with its last day deleted), then a new process runs
    what ``rca`` does on it (refresh + the toolkit's function), timed. Returns the runs; a failure is the last one."""
    runs, started = [], time.monotonic()
    for _ in range(repeat):
        prep = spawn(["prepare", args.db, variant, str(store_root)], timeout=args.timeout, rss_cap_mib=args.rss_cap,
                     statement_timeout=args.timeout)
        if "error" in prep:
            return runs + [{"error": f"preparing the store: {prep['error']}", "rss_polled_mib": prep["rss_polled_mib"]}]
        res = spawn(["work", args.db, job, variant, "1", str(args.budget), "0", str(store_root)], timeout=args.timeout,
                    rss_cap_mib=args.rss_cap, statement_timeout=args.timeout)
        if "error" in res:
            return runs + [res]
        res["prepared"] = {k: v for k, v in prep.items() if k not in ("job", "variant")}
        runs.append(res)
        if time.monotonic() - started > args.budget:
            break
    return runs


def store_result(runs: list[dict]) -> dict:
    """The runs of one store variant as one result: each run's times, the peaks, and the digest when all agree."""
    if "error" in runs[-1]:
        return runs[-1]
    out = dict(runs[-1])
    for key in ("seconds", "refresh_s", "job_s"):
        out[key] = [r[key][0] for r in runs]
    out["rss_peak_mib"] = max(r["rss_peak_mib"] for r in runs)
    out["rss_polled_mib"] = max(r["rss_polled_mib"] for r in runs)
    out["total_read_each"] = [r["total_read"] for r in runs]
    if len({json.dumps(r["digest"], sort_keys=True) for r in runs}) > 1:
        out["digest"] = {"runs_disagree": [r["digest"] for r in runs]}
    return out


def schedule(jobs: list[str], variants: list[str], repeat: int, naive_repeat: int) -> list[tuple[str, str, int]]:
    """(variant, job, runs) in the order a run measures them: the direct variants, each store variant's first half of
    its runs, the naive variant last, then the store variants' second half. Why: this machine's speed drifts by tens
    of percent within an hour, and naive runs once at scale, for minutes: store runs before and after it put both
    sides of a ratio in the same hour."""
    first = (repeat + 1) // 2 if "naive" in variants else repeat
    steps = [(variant, job, first if variant in queries.STORE_VARIANTS else naive_repeat if variant == "naive" else repeat)
             for variant in queries.VARIANTS if variant in variants  # queries.VARIANTS ends with naive
             for job in jobs if queries.has_variant(job, variant)]
    return steps + [(variant, job, repeat - first) for variant, job, _ in steps
                    if variant in queries.STORE_VARIANTS and repeat > first]


def drop_stores(store_root: Path, made_root: bool) -> None:
    """Delete the benchmark's stores (and the scratch folder when this run made it)."""
    if store_root.exists():
        for folder in store_root.iterdir():
            if folder.is_dir():
                store.drop(folder)
        if made_root:
            shutil.rmtree(store_root, ignore_errors=True)


def spread(seconds: list[float]) -> dict:
    """Median, quartiles and extremes of the repeated timings (seconds)."""
    s = sorted(seconds)
    q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0], s[0], s[0]]
    return {"n": len(s), "median_s": statistics.median(s), "q1_s": q[0], "q3_s": q[2], "min_s": s[0], "max_s": s[-1]}


# --------------------------------------------------------------------------- database facts
def row_counts(url: str) -> dict[str, int]:
    from rca_toolkit.demo.load import count_rows
    from rca_toolkit.sources.loaders import engine_for

    engine = engine_for(url)
    try:
        return count_rows(engine)
    finally:
        engine.dispose()


def machine(url: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "mem_total_gib": round(psutil.virtual_memory().total / 2**30, 1), "load_avg_at_start": os.getloadavg()}
    try:
        info["cpu_model"] = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import pandas as pd

    info["pandas"], info["sqlalchemy"] = pd.__version__, sa.__version__
    if not url.startswith("sqlite"):
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            info["server"] = conn.execute(sa.text("SELECT VERSION()")).scalar_one()
            info["innodb_buffer_pool_mib"] = int(conn.execute(sa.text("SELECT @@innodb_buffer_pool_size")).scalar_one()) // 2**20
        engine.dispose()
        info["server_settings"] = server_settings(url)
    return info


def server_settings(url: str) -> dict[str, str]:
    """The server's settings as they are during the run (``SHOW GLOBAL VARIABLES``; never changed here)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = ", ".join(f"'{n}'" for n in SERVER_SETTINGS)
            rows = conn.execute(sa.text(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")).fetchall()
    finally:
        engine.dispose()
    return {n: v for n, v in sorted(rows, key=lambda r: SERVER_SETTINGS.index(r[0]))}


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = [ln[3:] for ln in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"sha": git("rev-parse", "HEAD").strip(), "dirty_files": dirty}


def previous_build(url: str, found: dict) -> dict | None:
    """Build time of the world being reused: the world builder's record, else the demo builder's truth file."""
    from rca_toolkit.demo.world import default_truth_path

    from . import world

    if found["copies"]:
        path = world.record_path(url)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if (record.get("base_scale"), record.get("copies")) != (found["scale"], found["copies"]):
            return None
        return {"seconds": [record["seconds"]], "rss_peak_mib": record.get("rss_peak_mib"), "world": record,
                "from_record_file": str(path)}
    path = ROOT / default_truth_path(url)
    try:
        truth = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if truth.get("scale") != found["scale"] or "build_seconds" not in truth:
        return None
    return {"seconds": [truth["build_seconds"]], "rss_peak_mib": None, "from_truth_file": str(path)}


def other_builds() -> list[str]:
    """Other demo builds running now (2 cores: timings would be meaningless beside one)."""
    mine = os.getpid()
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["pid"] != mine and any(k in cmd for k in ("demo-data", "demo.build", "demo.generate", "benchmarks.measure build")):
            found.append(f"{p.info['pid']}: {cmd[:120]}")
    return found


# --------------------------------------------------------------------------- the run
def summarise(job: str, runs: dict, counts: dict | None = None) -> dict:
    """Timings, rows read, agreement of the digests and the ratios of one job (``counts``: the source's row
    counts, which give the naive variant's rows read: the whole tables it reads)."""
    row = {"job": job, "what": queries.JOBS[job]["what"]}
    digests, details = {}, {}
    for variant, res in runs.items():
        if "error" in res:
            row[variant] = {"error": res["error"], "rss_polled_mib": res["rss_polled_mib"]}
            continue
        row[variant] = {**spread(res["seconds"]), "rss_peak_mib": res["rss_peak_mib"], "rss_base_mib": res.get("rss_base_mib"),
                        "seconds": [round(s, 4) for s in res["seconds"]], "server": res.get("server")}
        if variant in queries.STORE_VARIANTS:
            row[variant].update({"refresh": spread(res["refresh_s"]), "job": spread(res["job_s"]),
                                 "refresh_s": [round(s, 4) for s in res["refresh_s"]], "job_s": [round(s, 4) for s in res["job_s"]],
                                 "rows_read": res["total_read"], "rows_read_by_table": res["rows_read"],
                                 "rows_read_each_run": res.get("total_read_each"), "keys_read_by_table": res.get("keys_read"),
                                 "built_whole": res.get("built"), "store_bytes": res["store_bytes"], "prepared": res.get("prepared")})
        if variant == "naive" and counts:
            by_table = {t: counts.get(t, 0) for t in queries.NAIVE_TABLES[job]}
            row[variant].update({"rows_read": sum(by_table.values()), "rows_read_by_table": by_table})
        digests[variant] = json.dumps(queries.counts_only(res["digest"]), sort_keys=True)
        if queries.DETAIL in res["digest"]:  # the toolkit's variants: their whole results must agree too
            details[variant] = json.dumps(res["digest"][queries.DETAIL], sort_keys=True)
    row["digests"] = {v: json.loads(d) for v, d in digests.items()}
    row["details_agree"] = len(set(details.values())) <= 1 if details else None
    if details:  # one copy when they agree, each variant's when not
        row["detail"] = json.loads(next(iter(details.values()))) if row["details_agree"] else \
            {v: json.loads(d) for v, d in details.items()}
    row["agree"] = (len(set(digests.values())) <= 1 and row["details_agree"] is not False) if digests else None
    med = {v: row[v]["median_s"] for v in runs if "median_s" in row.get(v, {})}
    if "toolkit" in med and "floor" in med:
        row["toolkit_over_floor"] = med["toolkit"] / med["floor"]
    if "toolkit" in med and "sql" in med:
        row["toolkit_over_own_sql"] = med["toolkit"] / med["sql"]
    if "toolkit" in med and "naive" in med:
        row["naive_over_toolkit"] = med["naive"] / med["toolkit"]
    for variant in queries.STORE_VARIANTS:
        if variant in med and "naive" in med:
            row[f"naive_over_{variant}"] = med["naive"] / med[variant]
        naive_read = row.get("naive", {}).get("rows_read") if isinstance(row.get("naive"), dict) else None
        if naive_read and "rows_read" in row.get(variant, {}):
            row[f"{variant}_read_share"] = row[variant]["rows_read"] / naive_read
        server = {v: (row.get(v) or {}).get("server") for v in (variant, "naive")}
        if all(server.values()) and server["naive"]["rows_read"]:
            row[f"{variant}_server_read_share"] = server[variant]["rows_read"] / server["naive"]["rows_read"]
    return row


def targets(rows: dict, build: dict | None) -> list[dict]:
    out = []
    tr = rows.get("trace", {}).get("toolkit", {})
    if "median_s" in tr:
        out.append({"target": f"one call's trace < {TARGETS['trace_ms']} ms", "value": f"{tr['median_s'] * 1000:.0f} ms",
                    "met": tr["median_s"] * 1000 < TARGETS["trace_ms"]})
    out += store_targets(rows)
    cmp_ = rows.get("compare", {})
    if "toolkit_over_floor" in cmp_:
        out.append({"target": "before/after within 1.5x of the floor (the minimal aggregate SQL)", "value": f"{cmp_['toolkit_over_floor']:.1f}x",
                    "met": cmp_["toolkit_over_floor"] <= TARGETS["compare_vs_floor"]})
    if "toolkit_over_own_sql" in cmp_:
        out.append({"target": "before/after within 1.5x of its own SQL executed alone", "value": f"{cmp_['toolkit_over_own_sql']:.1f}x",
                    "met": cmp_["toolkit_over_own_sql"] <= TARGETS["compare_vs_floor"]})
    if "toolkit" in cmp_ and "median_s" in cmp_["toolkit"]:
        naive = cmp_.get("naive", {})
        if "naive_over_toolkit" in cmp_:
            out.append({"target": "before/after >= 10x faster than naive", "value": f"{cmp_['naive_over_toolkit']:.1f}x",
                        "met": cmp_["naive_over_toolkit"] >= TARGETS["naive_vs_compare"]})
        elif "error" in naive:
            out.append({"target": "before/after >= 10x faster than naive", "value": f"naive {naive['error']}", "met": None})
    peaks = {f"{j}/{v}": r[v].get("rss_peak_mib") for j, r in rows.items() for v in ("toolkit", "sql", "floor", *queries.STORE_VARIANTS)
             if isinstance(r.get(v), dict) and r[v].get("rss_peak_mib")}
    if peaks:
        worst = max(peaks, key=peaks.get)
        out.append({"target": "peak RSS < 1 GiB for every job but naive (store variants: the extraction included)",
                    "value": f"max {peaks[worst]:.0f} MiB ({worst})", "met": peaks[worst] < TARGETS["peak_mib"]})
    if build and "seconds" in build:
        peak = f", peak {build['rss_peak_mib']:.0f} MiB" if build.get("rss_peak_mib") else " (earlier build, peak RSS not measured here)"
        rec = build.get("world") or {}
        fulltext = rec.get("phases_s", {}).get("fulltext")
        split = f" ({rec['seconds_without_fulltext']:.0f} s without the FULLTEXT index, which took {fulltext:.0f} s)" if fulltext else ""
        out.append({"target": "build the world < 5 min", "value": f"{build['seconds'][0]:.0f} s{split}{peak}",
                    "met": build["seconds"][0] < TARGETS["build_s"]})
    return out


def store_targets(rows: dict) -> list[dict]:
    """The local store's targets (issue 20): against naive, rows read, and the store's size on disk."""
    out = []

    def speedup(job: str, variant: str, target: float, what: str) -> None:
        row = rows.get(job, {})
        res, naive = row.get(variant), row.get("naive")
        name = f"{what} >= {target:g}x faster than naive"
        if f"naive_over_{variant}" in row:
            out.append({"target": name, "value": f"{row[f'naive_over_{variant}']:.1f}x ({naive['median_s']:.1f} s / "
                        f"{res['median_s']:.2f} s: refresh {res['refresh']['median_s']:.2f} s + job {res['job']['median_s']:.2f} s)",
                        "met": row[f"naive_over_{variant}"] >= target})
        elif isinstance(res, dict) and "error" in res or isinstance(naive, dict) and "error" in naive:
            why = res.get("error") if isinstance(res, dict) and "error" in res else f"naive {naive['error']}"
            out.append({"target": name, "value": why, "met": None if "error" in (naive or {}) else False})

    speedup("compare", "cold", TARGETS["naive_vs_cold_compare"], "before/after on the store, cold (empty store: the extraction included)")
    speedup("compare", "warm", TARGETS["naive_vs_warm_compare"], "before/after on the store, warm")
    speedup("health", "incremental", TARGETS["naive_vs_incremental_health"], "health report on the store, incremental (one new day)")
    health = rows.get("health", {})
    if "incremental_read_share" in health:
        share = health["incremental_read_share"]
        out.append({"target": f"health incremental reads <= {TARGETS['incremental_read_share_health']:.0%} of the rows naive reads",
                    "value": f"{share:.1%} ({health['incremental']['rows_read']:,} of {health['naive']['rows_read']:,})",
                    "met": share <= TARGETS["incremental_read_share_health"]})
    if "incremental_server_read_share" in health:
        share, mine, naive = (health["incremental_server_read_share"], health["incremental"]["server"],
                              health["naive"]["server"])
        out.append({"target": f"health incremental reads <= {TARGETS['incremental_read_share_health']:.0%} of the rows naive reads, "
                              "as the server counts them (its handlers' rows, scans included)",
                    "value": f"{share:.1%} ({mine['rows_read']:,} of {naive['rows_read']:,}; from disk "
                             f"{mine['bytes_from_disk'] / 2**20:,.0f} MiB against {naive['bytes_from_disk'] / 2**20:,.0f} MiB)",
                    "met": share <= TARGETS["incremental_read_share_health"]})
    sizes = {f"{j}/{v}": r[v]["store_bytes"] for j, r in rows.items() for v in queries.STORE_VARIANTS
             if isinstance(r.get(v), dict) and "store_bytes" in r[v]}
    if sizes:
        worst = max(sizes, key=sizes.get)
        out.append({"target": f"the store < {TARGETS['store_gib']} GiB on disk", "value": f"{sizes[worst] / 2**30:.2f} GiB ({worst})",
                    "met": sizes[worst] / 2**30 < TARGETS["store_gib"]})
    return out


def index_report(rows_explain: dict) -> list[dict]:
    """Per job and statement: the key each table is read with; full scans flagged."""
    out = []
    for job, plans in rows_explain.items():
        for plan in plans:
            out.append({"job": job, "sql": plan["sql"][:240],
                        "access": [{k: t.get(k) for k in ("table", "type", "key", "rows", "full_scan")} for t in plan["tables"]]})
    return out


def markdown(result: dict) -> str:
    def ms(v: dict | None) -> str:
        if not isinstance(v, dict):
            return "-"
        if "error" in v:
            return v["error"]
        return f"{v['median_s'] * 1000:,.0f} ms [{v['min_s'] * 1000:,.0f}-{v['max_s'] * 1000:,.0f}] n={v['n']}"

    def mib(v: dict | None) -> str:
        return f"{v['rss_peak_mib']:,.0f}" if isinstance(v, dict) and "rss_peak_mib" in v else "-"

    def split(v: dict | None) -> str:
        if not isinstance(v, dict) or "error" in v:
            return ms(v)
        return f"{ms(v)} (refresh {v['refresh']['median_s'] * 1000:,.0f} + job {v['job']['median_s'] * 1000:,.0f} ms)"

    lines = [f"# Benchmark {result['started_utc']} (scale {result['scale']}, {result['row_counts'].get('retell_call_sessions', 0):,} calls)", "",
             f"commit `{result['git']['sha'][:12]}`{' (dirty: ' + ', '.join(result['git']['dirty_files']) + ')' if result['git']['dirty_files'] else ''}, "
             f"{result['machine'].get('cpus')} CPUs, {result['machine'].get('server', result['db'])}, "
             f"InnoDB buffer pool {result['machine'].get('innodb_buffer_pool_mib', '-')} MiB, "
             f"load average {result['machine']['load_avg_at_start'][0]:.1f} at start / {result['load_avg_at_end'][0]:.1f} at end"]
    if result["machine"].get("server_settings"):
        lines += ["", "Server settings as they were (`SHOW GLOBAL VARIABLES`; "
                  + ("changed for the build: " + str(result["server_settings_changed"]) if result.get("server_settings_changed")
                     else "not changed by this run") + "): "
                  + ", ".join(f"{k}={v}" for k, v in result["machine"]["server_settings"].items())]
    lines += ["", "| job | direct SQL median [min-max] | its own SQL alone | floor (minimal SQL) | naive | direct/own SQL | direct/floor | naive/direct | peak RSS MiB direct/floor/naive | agree |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for job, r in result["jobs"].items():
        ratio = lambda k: f"{r[k]:.1f}x" if k in r else "-"  # noqa: E731
        lines.append(f"| {job} | {ms(r.get('toolkit'))} | {ms(r.get('sql'))} | {ms(r.get('floor'))} | {ms(r.get('naive'))} | "
                     f"{ratio('toolkit_over_own_sql')} | {ratio('toolkit_over_floor')} | "
                     f"{ratio('naive_over_toolkit')} | {mib(r.get('toolkit'))} / {mib(r.get('floor'))} / {mib(r.get('naive'))} | {r.get('agree')} |")
    stored = {job: r for job, r in result["jobs"].items() if any(v in r for v in queries.STORE_VARIANTS)}
    if stored:
        lines += ["", "The toolkit on its local store (DuckDB; each run: a new process's refresh when `rca` would make one, then the "
                  "toolkit's function on the store; warm = refreshed moments ago, within `cache_max_age_s`: no refresh; "
                  "incremental = a day old with its last day missing):", "",
                  "| job | store cold (refresh + job) | store warm | store incremental (one new day) | direct SQL | naive | "
                  "naive/cold | naive/warm | naive/incremental | rows read cold / warm / incremental / naive | store on disk | "
                  "peak RSS MiB cold/warm/incremental | agree |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for job, r in stored.items():
            ratio = lambda k: f"{r[k]:.1f}x" if k in r else "-"  # noqa: E731
            read = " / ".join(f"{r[v]['rows_read']:,}" if isinstance(r.get(v), dict) and "rows_read" in r[v] else "-"
                              for v in (*queries.STORE_VARIANTS, "naive"))
            share = f" ({r['incremental_read_share']:.1%} of naive)" if "incremental_read_share" in r else ""
            size = max((r[v]["store_bytes"] for v in queries.STORE_VARIANTS if isinstance(r.get(v), dict) and "store_bytes" in r[v]),
                       default=None)
            lines.append(f"| {job} | {split(r.get('cold'))} | {split(r.get('warm'))} | {split(r.get('incremental'))} | "
                         f"{ms(r.get('toolkit'))} | {ms(r.get('naive'))} | {ratio('naive_over_cold')} | {ratio('naive_over_warm')} | "
                         f"{ratio('naive_over_incremental')} | {read}{share} | "
                         f"{'-' if size is None else f'{size / 2**20:,.0f} MiB'} | "
                         f"{' / '.join(mib(r.get(v)) for v in queries.STORE_VARIANTS)} | {r.get('agree')} |")
    server = [(job, v, r[v]["server"]) for job, r in result["jobs"].items() for v in (*queries.STORE_VARIANTS, "toolkit", "naive")
              if isinstance(r.get(v), dict) and r[v].get("server")]
    if server:
        lines += ["", "What the server did in one run of each (`SHOW GLOBAL STATUS` before and after: `Rows_read`, the rows its "
                  "storage engines read, scans included; `Innodb_data_read`, from disk):", "",
                  "| job | variant | rows the server read | MiB from disk |", "|---|---|---|---|"]
        lines += [f"| {job} | {v} | {c['rows_read']:,} | {c['bytes_from_disk'] / 2**20:,.0f} |" for job, v, c in server]
    noop = {job: r["warm"]["prepared"]["noop_refresh_s"] for job, r in stored.items()
            if isinstance(r.get("warm"), dict) and "noop_refresh_s" in (r["warm"].get("prepared") or {})}
    if noop:
        checked = {job: r["warm"]["prepared"].get("noop_server") for job, r in stored.items() if job in noop}
        naive = {job: (r.get("naive") or {}).get("server") for job, r in stored.items()}
        lines += ["", "A refresh that finds nothing new and checks the rows older than its trailing window (what `rca cache "
                  "refresh` pays every time, and an analysis's refresh once every `cache_check_every_s`; untimed in warm): "
                  + ", ".join(f"{job} {s:.1f} s" + (f", {checked[job]['rows_read']:,} rows the server read" if checked.get(job) else "")
                              + (f" ({checked[job]['rows_read'] / naive[job]['rows_read']:.0%} of naive's)"
                                 if checked.get(job) and naive.get(job) else "")
                              for job, s in noop.items())]
    if result.get("build") or result.get("reused_build"):
        b = result.get("build") or result["reused_build"]
        built = b.get("error") or "{:.0f} s, peak RSS {}".format(
            b["seconds"][0], f"{b['rss_peak_mib']:,.0f} MiB" if b.get("rss_peak_mib") else "not measured (reused world)")
        lines += ["", f"Build: {built}"]
        rec = b.get("world")
        if rec:
            phases = ", ".join(f"{k} {v:.0f} s" for k, v in rec["phases_s"].items())
            lines += [f"(demo world scale {rec['base_scale']} + {rec['copies']} copies shifted by {rec['step_ms']} ms each; "
                      f"phases: {phases}; server settings changed: {rec['server_settings_changed'] or 'none'})"]
    lines += ["", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'no' if t['met'] is False else 'n/a'} |" for t in result["targets"]]
    scans = sorted({f"{a['table']} ({r['job']})" for r in result["indexes"] for a in r["access"] if a["full_scan"]})
    lines += ["", "Full scans in toolkit queries: " + (", ".join(scans) if scans else "none")]
    if result.get("index_check"):
        check = result["index_check"]
        required = [i for i in check["indexes"] if not i.get("optional")]
        optional = [i for i in check["indexes"] if i.get("optional")]
        lines += [f"Indexes the loaders rely on (`rca indexes`): {len(required) - check['missing']} of "
                  f"{len(required)} present" + "".join(f"; missing {i['table']}({', '.join(i['columns'])})"
                                                       for i in required if i["status"] != "present")
                  + (f"; optional (production has none): {sum(i['status'] == 'present' for i in optional)} of {len(optional)}"
                     if optional else "")]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--db", default=DEFAULT_DB, help="database to build into and measure (default: %(default)s)")
    p.add_argument("--scale", type=int, default=world.BASE_SCALE,
                   help="demo scale of the base world (default: %(default)s; with the default copies 1,031,194 calls)")
    p.add_argument("--copies", type=int, default=None,
                   help=f"copies of the base world's real calls (building: default {world.COPIES}; 0 = the plain demo "
                        "builder; --reuse: any, unless given)")
    p.add_argument("--step-ms", type=int, default=world.STEP_MS, help="time shift between copies (default: %(default)s)")
    p.add_argument("--no-fulltext", action="store_true", help="build without the FULLTEXT index on transcript segments")
    p.add_argument("--tune-server", action="store_true",
                   help="raise innodb_buffer_pool_size/log_file_size/io_capacity for the build (SET GLOBAL, restored after; "
                        "recorded in the results)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=5, help="runs per toolkit/floor measurement (default: %(default)s)")
    p.add_argument("--naive-repeat", type=int, default=None, help="runs of the naive variant (default: 1 above scale 50, else --repeat)")
    p.add_argument("--budget", type=float, default=120, help="stop repeating a measurement after this many seconds")
    p.add_argument("--timeout", type=float, default=900, help="kill a measurement after this many seconds")
    p.add_argument("--naive-timeout", type=float, default=600)
    p.add_argument("--rss-cap", type=float, default=8192, help="kill a measurement above this RSS (MiB)")
    p.add_argument("--reuse", action="store_true", help="skip the build when the database already holds this scale")
    p.add_argument("--jobs", default=",".join(queries.JOBS), help="comma-separated subset of: " + ", ".join(queries.JOBS))
    p.add_argument("--variants", default=",".join(queries.VARIANTS),
                   help="comma-separated subset of: %(default)s (toolkit = the direct SQL path; cold/warm/incremental = on the "
                        "local store; trace has no store variants)")
    p.add_argument("--store-dir", default=None,
                   help="scratch folder for the benchmark's stores (default: a new temporary folder); the stores are dropped at the end")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for <date>.json and <date>.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs, variants = args.jobs.split(","), args.variants.split(",")
    unknown = [j for j in jobs if j not in queries.JOBS] + [v for v in variants if v not in queries.VARIANTS]
    if unknown:
        print(f"unknown job/variant {', '.join(unknown)}; choose from {', '.join(queries.JOBS)} / {', '.join(queries.VARIANTS)}",
              file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc)
    result = {"started_utc": started.isoformat(timespec="seconds"), "db": args.db.split("@")[-1], "scale": args.scale,
              "seed": args.seed, "git": git_state(), "machine": machine(args.db), "concurrent_builds": other_builds()}
    build = None
    found = world.marker(args.db)
    if args.reuse and found and found["scale"] == args.scale and args.copies in (None, found["copies"]) and found["current"]:
        result["reused_build"] = previous_build(args.db, found)
        result["copies"] = found["copies"]
    else:
        copies = world.COPIES if args.copies is None else args.copies
        print(f"building the demo world at scale {args.scale} (+ {copies} copies) into {result['db']} ...", file=sys.stderr, flush=True)
        build = spawn(["build", args.db, str(args.scale), str(args.seed), str(copies), str(args.step_ms),
                       "0" if args.no_fulltext else "1", "1" if args.tune_server else "0"],
                      timeout=3600, rss_cap_mib=args.rss_cap * 2, statement_timeout=3600)
        if "error" in build:
            print(f"build failed: {build['error']}", file=sys.stderr)
            return 1
        result["copies"] = copies
    result["build"] = build
    result["row_counts"] = row_counts(args.db)
    result["index_check"] = indexes.to_dict(indexes.check(args.db))  # what `rca indexes` reports
    result["server_settings_changed"] = (build or {}).get("world", {}).get("server_settings_changed")  # --tune-server, this run's build
    naive_repeat = args.naive_repeat or (1 if args.scale * (1 + result["copies"]) > 50 else args.repeat)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%dT%H%M%SZ") + f"-scale{args.scale}" + (f"x{result['copies'] + 1}" if result["copies"] else "")
    runs: dict = {job: {} for job in jobs}
    plans: dict = {}
    made_root = args.store_dir is None
    store_root = Path(tempfile.mkdtemp(prefix="rca-bench-store-") if made_root else args.store_dir)
    result["store_root"] = str(store_root)
    rows: dict = {}
    try:
        store_runs: dict = {}
        for variant, job, n in schedule(jobs, variants, args.repeat, naive_repeat):
            naive = variant == "naive"
            print(f"{job}/{variant} ...", file=sys.stderr, flush=True)
            if variant in queries.STORE_VARIANTS:
                earlier = store_runs.get((job, variant), [])
                if earlier and "error" in earlier[-1]:
                    continue  # a variant that failed is not measured again
                store_runs[job, variant] = earlier + measure_store(args, job, variant, store_root, n)
                runs[job][variant] = store_result(store_runs[job, variant])
            else:
                runs[job][variant] = spawn(["work", args.db, job, variant, str(n),
                                            str(args.budget), "1" if variant == "toolkit" else "0"],
                                           timeout=args.naive_timeout if naive else args.timeout, rss_cap_mib=args.rss_cap,
                                           statement_timeout=args.naive_timeout if naive else args.timeout)
            if "explain" in runs[job][variant]:
                plans[job] = runs[job][variant].pop("explain")
            rows = {j: summarise(j, r, result["row_counts"]) for j, r in runs.items() if r}
            result["jobs"], result["indexes"] = rows, index_report(plans)
            result["targets"] = targets(rows, build or result.get("reused_build"))
            result["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            result["load_avg_at_end"] = os.getloadavg()  # other work on the 2 cores inflates every timing
            (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str))  # partial results survive
    finally:
        drop_stores(store_root, made_root)
    text = markdown(result)
    (out / f"{stem}.md").write_text(text)
    print(text)
    print(f"written: {out / stem}.json and .md", file=sys.stderr)
    return 0 if all(r.get("agree") is not False for r in rows.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
