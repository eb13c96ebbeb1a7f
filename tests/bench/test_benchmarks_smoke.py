"""Smoke test of the benchmark harness at scale 1: the variants agree with each other and with the demo
ground truth (the store variants too, from an empty, a filled and a one-day-behind store), and end-to-end
runs write their results (no timing asserted)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import queries, run
from rca_toolkit.demo.load import count_rows
from rca_toolkit.sources import loaders, store
from rca_toolkit.sources.store import tables as store_tables


def _truth_attempts(truth: dict) -> pd.DataFrame:
    att = pd.DataFrame(truth["attempts"])
    att["at"] = pd.to_datetime(att["at_utc"], utc=True)
    return att[att["is_real"]]


def _counts(att: pd.DataFrame) -> dict:
    return {p: [int((att["path"] == p).sum()), int(((att["path"] == p) & (att["outcome"] == "success")).sum())]
            for p in queries.PATHS}


@pytest.mark.parametrize("job", list(queries.JOBS))
def test_variants_agree(demo_db, job):
    url, _truth = demo_db
    engine = loaders.engine_for(url)
    digests = {v: queries.run(job, v, engine) for v in queries.DIRECT_VARIANTS}
    assert queries.counts_only(digests["toolkit"]) == digests["floor"] == digests["naive"]
    assert (queries.DETAIL in digests["toolkit"]) is (job != "trace")  # the toolkit's whole result, beside the counts


@pytest.mark.mariadb
def test_health_floor_asks_what_the_report_counts(demo_mariadb):
    """The floor's attempts statement counts every attempt of the report and at least its successes (a success
    by trace status can still be a refused validation step), on the server itself."""
    from rca_toolkit.analyses.health import report as health

    url, _ = demo_mariadb
    engine = loaders.engine_for(url)
    floor = queries.health_floor_statements(engine, "2025-10-13", "1d", 1)
    assert [name for name, _, _ in floor][-1] == "attempts"
    rows = loaders.query(engine, floor[-1][1], floor[-1][2])
    booked = health.health(url, "2025-10-13", "1d", 1).booking.set_index("path").loc["all"]
    assert int(rows["n"].sum()) == booked["attempts"] + booked["baseline_attempts"] > 0
    assert int(rows.loc[rows["success"] == 1, "n"].sum()) >= booked["success"]


@pytest.mark.parametrize("job", queries.STORE_JOBS)
def test_store_variants_agree_with_the_direct_path(demo_db, job, tmp_path):
    """cold, warm and incremental give the direct path's digest, and read what each should: everything,
    nothing (refreshed moments ago: read as it is), the trailing window plus the deleted day."""
    url, _truth = demo_db
    engine = loaders.engine_for(url)
    expected = queries.run(job, "toolkit", engine)
    assert queries.counts_only(expected) == queries.run(job, "naive", engine)
    folder = queries.store_folder(tmp_path, engine)
    read, got = {}, {}
    for variant in queries.STORE_VARIANTS:
        prepared = queries.prepare(variant, engine, folder)
        if variant == "warm":  # the refresh that finds nothing new, timed apart
            noop = prepared["noop_rows_read"]
        stored, done = queries.on_store(engine, folder)
        assert store.is_store(stored)
        got[variant], read[variant] = queries.JOBS[job]["toolkit"](stored), done
        if variant == "incremental":
            deleted = prepared["deleted"]
            assert set(deleted) == {"retell_call_sessions", "retell_function_traces", "retell_error_log", "calls",
                                    "appointments", "webhook_events"}
            assert deleted["retell_call_sessions"] > 0 and deleted["retell_function_traces"] > 0
            assert all(done.rows_read[t] >= n for t, n in deleted.items())  # the deleted day is read back
            assert not done.checked_old and done.rows_checked == {}  # checked a day ago: not due (cache_check_every_s)
    assert got == {v: expected for v in queries.STORE_VARIANTS}
    whole = {t.name for t in store_tables.TABLES if t.whole}  # small tables read whole on every refresh
    assert set(read["cold"].built) == {t.name for t in store_tables.TABLES}
    assert read["warm"] is None  # refreshed moments ago (prepare): a second command reads the store as it is
    assert set(read["incremental"].built) == whole
    assert read["cold"].rows_read == {t: n for t, n in count_rows(engine).items() if t in read["cold"].rows_read}
    assert 0 < noop < read["incremental"].total_read < read["cold"].total_read
    assert queries.store_bytes(folder) > 0
    store.close(folder)


def test_store_variants_refuse_the_trace_job(tmp_path, demo_sqlite):
    """One call's trace is never stored: the harness skips it, and asking for it is a one-line error."""
    assert not any(queries.has_variant("trace", v) for v in queries.STORE_VARIANTS)
    with pytest.raises(ValueError, match="the cold variant needs a job of day, compare, health"):
        queries.run("trace", "cold", loaders.engine_for(demo_sqlite[0]), tmp_path)


def test_digests_match_ground_truth(demo_db):
    url, truth = demo_db
    engine = loaders.engine_for(url)
    att = _truth_attempts(truth)
    windows = queries.compare_windows()
    expected = {side: _counts(att[(att["at"] >= lo) & (att["at"] < hi)])
                for side, (lo, hi) in (("before", windows.before), ("after", windows.after))}
    assert queries.run("compare", "floor", engine) == expected
    lo, hi = (pd.Timestamp(x) for x in queries.DAY)
    day = queries.run("day", "floor", engine)
    assert day["attempts"] == _counts(att[(att["at"] >= lo) & (att["at"] < hi)])
    assert day["attempts"]["book_appointment"][1] == 0  # 2025-10-14 lies in the phantom-column outage of both paths
    trace = queries.run("trace", "floor", engine)
    assert trace["retell_function_traces"] == 10 and trace["retell_transcript_segments"] == 26


def test_run_writes_results(demo_sqlite, tmp_path):
    url, truth = demo_sqlite
    code = run.main(["--db", url, "--scale", str(truth["scale"]), "--reuse", "--repeat", "2", "--jobs", "trace",
                     "--out", str(tmp_path)])
    assert code == 0
    (result_file,) = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    assert result["build"] is None and result["row_counts"]["retell_call_sessions"] == truth["calls_total"]
    row = result["jobs"]["trace"]
    assert row["agree"] is True and row["toolkit"]["n"] == 2 and row["naive"]["n"] == 2 and row["sql"]["n"] == 2
    assert row["toolkit_over_floor"] > 0 and row["toolkit_over_own_sql"] > 0 and row["toolkit"]["rss_peak_mib"] > 0
    check = result["index_check"]  # SQLite makes no index for the error log's foreign key
    assert check["missing"] == 1 and len(check["indexes"]) == 14  # 10 relied on, 4 optional (none in production)
    tables = {a["table"] for r in result["indexes"] for a in r["access"]}
    assert {"retell_call_sessions", "retell_call_events", "retell_transcript_segments"} <= tables
    text = (tmp_path / result_file.name.replace(".json", ".md")).read_text()
    assert text.startswith("# Benchmark")
    assert ("Indexes the loaders rely on (`rca indexes`): 9 of 10 present; missing retell_error_log(call_session_id); "
            "optional (production has none): 0 of 4") in text


def test_run_measures_the_store_variants(demo_sqlite, tmp_path):
    """cold/warm/incremental beside direct SQL and naive in one run: digests agree, refresh and job timed apart,
    rows read against the naive rows read, the store targets reported, the scratch stores dropped."""
    url, truth = demo_sqlite
    stores = tmp_path / "stores"
    code = run.main(["--db", url, "--scale", str(truth["scale"]), "--reuse", "--repeat", "1", "--jobs", "health",
                     "--variants", "toolkit,cold,warm,incremental,naive", "--out", str(tmp_path), "--store-dir", str(stores)])
    assert code == 0
    (result_file,) = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    row = result["jobs"]["health"]
    assert row["agree"] is True and set(row["digests"]) == {"toolkit", "cold", "warm", "incremental", "naive"}
    counts = result["row_counts"]
    assert row["naive"]["rows_read"] == counts["retell_call_sessions"] + counts["retell_function_traces"]
    for variant in queries.STORE_VARIANTS:
        r = row[variant]
        assert r["n"] == 1 and len(r["refresh_s"]) == len(r["job_s"]) == 1
        assert r["seconds"][0] == pytest.approx(r["refresh_s"][0] + r["job_s"][0], abs=1e-3)
        assert r["store_bytes"] > 0 and r["rss_peak_mib"] > 0
    assert row["cold"]["rows_read_by_table"]["retell_call_sessions"] == counts["retell_call_sessions"]
    assert "retell_function_traces" in row["cold"]["built_whole"] and row["warm"]["built_whole"] == []
    assert row["warm"]["rows_read"] == 0 < row["incremental"]["rows_read"] < row["cold"]["rows_read"]  # warm: no refresh
    assert 0 < row["warm"]["prepared"]["noop_rows_read"] < row["incremental"]["rows_read"]
    assert row["incremental_read_share"] == row["incremental"]["rows_read"] / row["naive"]["rows_read"]
    assert row["naive_over_incremental"] == row["naive"]["median_s"] / row["incremental"]["median_s"]
    names = [t["target"] for t in result["targets"]]
    assert "health incremental reads <= 5% of the rows naive reads" in names
    assert row["naive"]["server"] is None and not any("as the server counts them" in n for n in names)  # SQLite: no server
    assert any(n.startswith("the store < 1.5 GiB") for n in names)
    assert list(stores.iterdir()) == []  # the benchmark's stores are dropped
    text = (tmp_path / result_file.name.replace(".json", ".md")).read_text()
    assert "| health | " in text.split("local store")[1] and "naive/incremental" in text
    assert ("A refresh that finds nothing new and checks the rows older than its trailing window (what `rca cache refresh` "
            "pays every time, and an analysis's refresh once every `cache_check_every_s`; untimed in warm): health ") in text


def test_store_runs_are_split_around_the_naive_run(demo_sqlite, tmp_path):
    """The machine's speed drifts within an hour: a store variant's runs go half before the naive run and half after
    it (the direct variants before both), and are reported as one measurement."""
    assert run.schedule(["compare", "health"], ["toolkit", "warm", "naive"], 3, 1) == [
        ("toolkit", "compare", 3), ("toolkit", "health", 3), ("warm", "compare", 2), ("warm", "health", 2),
        ("naive", "compare", 1), ("naive", "health", 1), ("warm", "compare", 1), ("warm", "health", 1)]
    assert run.schedule(["health"], ["warm", "incremental"], 3, 1) == [("warm", "health", 3), ("incremental", "health", 3)]
    assert run.schedule(["trace", "health"], ["cold", "naive"], 1, 1) == [("cold", "health", 1), ("naive", "trace", 1),
                                                                          ("naive", "health", 1)]
    url, truth = demo_sqlite
    code = run.main(["--db", url, "--scale", str(truth["scale"]), "--reuse", "--repeat", "2", "--jobs", "health",
                     "--variants", "warm,naive", "--out", str(tmp_path), "--store-dir", str(tmp_path / "stores")])
    assert code == 0
    (result_file,) = tmp_path.glob("*.json")
    row = json.loads(result_file.read_text())["jobs"]["health"]
    assert row["agree"] is True and row["warm"]["n"] == 2 and len(row["warm"]["job_s"]) == 2 and row["naive"]["n"] == 2


@pytest.mark.mariadb
def test_run_counts_what_the_server_read(demo_mariadb, tmp_path):
    """On MariaDB each run records the rows the server's storage engines read, scans included (global status before
    and after): naive reads its two tables whole, so at least their rows; the incremental store variant's share of
    that is reported beside the share of the rows it was sent. On SQLite there is no server to ask."""
    url, truth = demo_mariadb
    code = run.main(["--db", url, "--scale", str(truth["scale"]), "--reuse", "--repeat", "1", "--jobs", "health",
                     "--variants", "warm,incremental,naive", "--out", str(tmp_path), "--store-dir", str(tmp_path / "stores")])
    assert code == 0
    (result_file,) = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    row, counts = result["jobs"]["health"], result["row_counts"]
    naive, incremental = row["naive"]["server"], row["incremental"]["server"]
    assert naive["rows_read"] >= counts["retell_call_sessions"] + counts["retell_function_traces"]
    assert incremental["rows_read"] > 0 and row["incremental"]["rows_read"] > 0
    data_rows = sum(n for t, n in counts.items() if t in {s.name for s in store_tables.TABLES if not s.whole})
    checked = row["warm"]["prepared"]["noop_server"]  # the refresh that checks the older rows scans every table
    assert checked["rows_read"] >= data_rows > incremental["rows_read"]
    assert naive["bytes_from_disk"] >= 0 and incremental["bytes_from_disk"] >= 0
    assert row["incremental_server_read_share"] == incremental["rows_read"] / naive["rows_read"]
    target = next(t for t in result["targets"] if "as the server counts them" in t["target"])
    assert target["value"].startswith(f"{row['incremental_server_read_share']:.1%} ({incremental['rows_read']:,} of ")
    text = (tmp_path / result_file.name.replace(".json", ".md")).read_text()
    assert f"| health | naive | {naive['rows_read']:,} |" in text
    assert (f"untimed in warm): health {row['warm']['prepared']['noop_refresh_s']:.1f} s, {checked['rows_read']:,} rows the "
            f"server read ({checked['rows_read'] / naive['rows_read']:.0%} of naive's)") in text


def test_the_toolkits_variants_must_agree_on_their_whole_result_not_only_the_counts(demo_sqlite):
    """Two toolkit variants with the same counts per path but another outcome for one attempt (the detail) do not
    agree; naive and floor give counts alone and are held to those."""
    engine = loaders.engine_for(demo_sqlite[0])
    digest = queries.run("health", "toolkit", engine)
    booking = digest[queries.DETAIL]["booking"]
    assert booking and {"orphaned", "failed", "top_failure_signature"} <= set(booking[0])  # outcomes are in the detail
    moved = json.loads(json.dumps(digest))
    moved[queries.DETAIL]["booking"][0]["orphaned"] += 1  # an attempt classified otherwise, same counts per path
    run_of = lambda d: {"seconds": [1.0], "rss_peak_mib": 1.0, "digest": d}  # noqa: E731
    naive = queries.counts_only(digest)
    same = run.summarise("health", {"toolkit": run_of(digest), "sql": run_of(digest), "naive": run_of(naive)})
    assert same["agree"] is True and same["details_agree"] is True and same["detail"] == digest[queries.DETAIL]
    other = run.summarise("health", {"toolkit": run_of(digest), "sql": run_of(moved), "naive": run_of(naive)})
    assert other["agree"] is False and other["details_agree"] is False
    assert other["detail"]["sql"]["booking"][0]["orphaned"] == booking[0]["orphaned"] + 1


def test_unknown_job_is_refused(capsys):
    assert run.main(["--jobs", "nope", "--db", "sqlite:///unused.sqlite"]) == 2
    assert "unknown job/variant nope" in capsys.readouterr().err
