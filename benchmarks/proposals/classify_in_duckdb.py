"""A cost spike, not the product: the shape of compare's booking counts as one DuckDB statement on the store.

Why it is here: "compare warm >= 50x" (issue 20) needs the warm job near 2.3 s on a 2-core machine, and the way
named since the fifteenth session is to classify the attempts in DuckDB instead of pandas. Before anyone rewrites
``attempt_inputs`` and ``outcomes`` for it, this measures what such a statement costs in a new process on the
1M-call store. It does the same kind of work the rules do (the window's booking traces, the first error of each
trace and the fallback by call within 10 minutes, each success's own appointment, Cal.com webhooks linked by
company and time within 60 s, one attempt per uid), but it is **not** the rules: no two-step bookings, no
trace-blob or payload links, no error signatures, names not folded into families. Its counts are close to the
toolkit's, not equal (it prints both sides' totals).

    .venv/bin/python -m benchmarks.proposals.classify_in_duckdb <store folder> [memory MiB]

The store folder is a benchmark store (``benchmarks.queries.store_folder``) of the scale-29 x 26 world.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd

from benchmarks import queries

NAMES = ("collect_appointment_data", "collect_appointment", "book_appointment_v17", "book_appointment", "start_booking",
         "confirm_booking")
SQL = """
WITH t AS (
  SELECT id, session_call_id AS call_id, session_company_id AS company_id, started_at, function_name,
         status = 'success' AS ok, CASE WHEN started_at < $mid THEN 0 ELSE 1 END AS side,
         row_number() OVER (ORDER BY started_at, id) AS pos
  FROM retell_function_traces
  WHERE started_at >= $lo AND started_at < $hi AND function_name IN ({names}) AND session_real_call),
pad AS (SELECT min(started_at) - INTERVAL 5 MINUTE AS plo, max(started_at) + INTERVAL 6 HOUR AS phi FROM t),
e1 AS (SELECT function_trace_id, arg_min(error_message, occurred_at) AS msg FROM retell_error_log, pad
       WHERE occurred_at >= plo AND occurred_at < phi AND function_trace_id IS NOT NULL GROUP BY 1),
e2 AS (SELECT session_call_id AS call_id, occurred_at, error_message FROM retell_error_log, pad
       WHERE occurred_at >= plo AND occurred_at < phi AND function_trace_id IS NULL AND affected_function IS NOT NULL),
wh AS (SELECT event_id AS uid, created_at, company_id FROM webhook_events, pad
       WHERE provider = 'calcom' AND event_type = 'BOOKING_CREATED' AND created_at >= plo AND created_at < phi),
ap AS (SELECT calcom_v2_booking_id AS uid, metadata_retell_call_id AS call_id, source, id FROM appointments, pad
       WHERE created_at >= plo AND created_at < phi AND deleted_at IS NULL),
own AS (SELECT call_id, arg_min(uid, id) AS uid FROM ap WHERE call_id IS NOT NULL GROUP BY 1),
loc AS (SELECT uid, arg_min(source, id) AS source FROM ap WHERE uid IS NOT NULL GROUP BY 1),
claim_own AS (SELECT t.pos, o.uid FROM t JOIN own o ON o.call_id = t.call_id
              JOIN (SELECT DISTINCT uid FROM wh) k ON k.uid = o.uid WHERE t.ok
              QUALIFY row_number() OVER (PARTITION BY o.uid ORDER BY t.pos) = 1),
todo AS (SELECT t.* FROM t ANTI JOIN claim_own c ON c.pos = t.pos),
timed AS (SELECT todo.pos, wh.uid, wh.created_at - date_trunc('second', todo.started_at) AS gap
          FROM todo ASOF JOIN wh ON todo.company_id = wh.company_id AND wh.created_at >= date_trunc('second', todo.started_at)
          WHERE wh.uid NOT IN (SELECT uid FROM claim_own) AND wh.created_at - date_trunc('second', todo.started_at) <= INTERVAL 60 SECOND
          QUALIFY row_number() OVER (PARTITION BY wh.uid ORDER BY gap, todo.pos) = 1),
linked AS (SELECT pos, uid FROM claim_own UNION ALL SELECT pos, uid FROM timed),
fb AS (SELECT t.pos, e2.error_message AS msg FROM t ASOF JOIN e2 ON t.call_id = e2.call_id AND e2.occurred_at >= t.started_at
       WHERE NOT t.ok AND e2.occurred_at - t.started_at <= INTERVAL 10 MINUTE),
att AS (SELECT t.side, t.function_name, t.ok, l.uid, loc.source, coalesce(e1.msg, fb.msg) AS msg
        FROM t LEFT JOIN e1 ON e1.function_trace_id = t.id LEFT JOIN fb ON fb.pos = t.pos
        LEFT JOIN linked l ON l.pos = t.pos LEFT JOIN loc ON loc.uid = l.uid)
SELECT side, function_name,
       CASE WHEN ok THEN 'success' WHEN uid IS NOT NULL AND source IS NULL THEN 'orphaned' ELSE 'failed' END AS outcome,
       (NOT ok AND source = 'cal.com') AS rescued, CASE WHEN ok THEN NULL ELSE msg END AS msg, count(*) AS n
FROM att GROUP BY ALL
"""


def main(folder: str, memory_mib: int = 128) -> None:
    started = time.perf_counter()
    con = duckdb.connect(str(Path(folder) / "store.duckdb"), read_only=True)
    con.execute(f"SET memory_limit = '{memory_mib}MiB'")
    (zone,), = con.execute("SELECT value FROM _rca_store_info WHERE key = 'storage_zone'").fetchall()
    w = queries.compare_windows()
    lo, mid, hi = (pd.Timestamp(x).tz_convert(zone).tz_localize(None).to_pydatetime() for x in (w.before[0], w.before[1], w.after[1]))
    opened = time.perf_counter()
    counts = con.execute(SQL.format(names=", ".join(f"'{n}'" for n in NAMES)), {"lo": lo, "mid": mid, "hi": hi}).df()
    done = time.perf_counter()
    per_side = counts.groupby(["side", "outcome"])["n"].sum()
    print(per_side.to_string())
    print(f"{int(counts['n'].sum()):,} attempts in {len(counts)} groups; open {opened - started:.2f} s, statement "
          f"{done - opened:.2f} s at {memory_mib} MiB; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10} MiB")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
