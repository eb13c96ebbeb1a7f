"""``rca run``, ``rca runbook``, ``rca list`` and ``rca demo-reports``: notebooks from the shell.

Notebooks are looked up by path, file name or stem in ``notebooks/`` and ``runbooks/`` of the
working directory (then of the project checkout); runbooks also by number (``RB001``).
Exit codes (README "Exit codes"): ``run`` 0 every cell ran, 2 bad input or a cell that failed on an
``RcaError`` (the toolkit named a wrong input), 3 a cell that failed otherwise (a bug, a dead kernel);
``runbook`` 0 PASS or WARN, 1 FAIL, 2 ERROR from the input (a missing table or column, an unreachable
database), 3 ERROR from a check that crashed, a notebook that failed as for ``run``, or a runbook that
recorded no verdict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rca_toolkit.cli import MAX_JOBS, add_db_option, add_format_option, add_personal_data_option, emit, int_in
from rca_toolkit.outcome import Outcome
from rca_toolkit.runs.catalog import all_notebooks, declared_parameters, find_notebook

DEMO_JOBS = 2  # notebooks `rca demo-reports` runs at once (one kernel each; 2 cores)

def _params(args: argparse.Namespace) -> dict:
    from rca_toolkit.runs.parameters import load_params_file

    values = load_params_file(args.params_file) if args.params_file else {}
    for name, value in args.param or []:
        values[name] = value
    return values


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"), help="set a parameter")
    parser.add_argument("-f", "--params-file", metavar="YAML", help="parameters from a YAML mapping")
    add_db_option(parser)
    parser.add_argument("--out", metavar="DIR", default=None, help="reports folder (default: reports/ or $RCA_REPORTS_DIR)")
    add_personal_data_option(parser)


def cmd_run(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.analyses import tables
    from rca_toolkit.runs import output
    from rca_toolkit.runs.runner import run_notebook
    from rca_toolkit.runs.summary import NOTHING_SAID, summary_lines

    result = run_notebook(find_notebook(args.notebook), _params(args), db=args.db, out_dir=args.out,
                          show_personal_data=args.show_personal_data)
    policy = output.policy(args.show_personal_data, secrets_of=[args.db])  # printed lines: the writer's too
    output.echo(f"{result.status}: {result.run_dir}", policy)
    if result.status == "ok" and result.metrics:  # what the report's block says: its verdict line, else what it found
        verdict_line = result.metrics.get("verdict_line")
        said = [str(verdict_line)] if verdict_line else [x for x in summary_lines(result.metrics) if x != NOTHING_SAID]
        if said:
            output.echo(tables.wrap_lines(said), policy)
    output.echo(f"report: {result.run_dir / 'report.html'}", policy)
    output.echo(f"index: {_refresh_index(args.out)}", policy)
    if result.error:
        output.echo(f"rca run: {result.notebook.name} failed: {result.error} (executed notebook kept in the run folder)",
                    policy, file=sys.stderr)
    return result.outcome


def _refresh_index(out: str | None):
    """Rebuild ``index.html`` of the reports folder a run wrote into; its path."""
    from rca_toolkit.config import load_settings
    from rca_toolkit.runs import index

    return index.write_index(out or load_settings().reports_dir)[1]


def cmd_runbook(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.runs.runner import run_notebook
    from rca_toolkit.runbooks.framework import Status

    result = run_notebook(find_notebook(args.name, runbook=True), _params(args), db=args.db, out_dir=args.out,
                          show_personal_data=args.show_personal_data)
    verdict = result.metrics.get("verdict")
    index_path = _refresh_index(args.out)
    if result.status != "ok" or verdict not in Status.__members__:
        why = result.error or "the notebook recorded no verdict (Runbook.record() was not called)"
        print(f"ERROR: {result.run_dir}\nrca runbook: {why}", file=sys.stderr)
        return result.outcome if result.status != "ok" else Outcome.INTERNAL_ERROR
    from rca_toolkit.analyses import tables
    from rca_toolkit.runs import output

    # the verdict and why first (what a CI log or a cron mail is read for), wrapped; then where to read more.
    # Through the one writer: a check's summary quotes data, so personal data is masked as in the report
    line = str(result.metrics.get("verdict_line") or verdict)
    counts = {k: v for k, v in (result.metrics.get("counts") or {}).items() if v}
    lines = [tables.wrap_lines([line if line.startswith(verdict) else f"{verdict}: {line}"]),
             "checks: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none ran"),
             f"report: {result.run_dir / 'report.html'}", f"sign-off: {result.run_dir / 'signoff.md'}", f"index: {index_path}"]
    output.echo("\n".join(lines), output.policy(args.show_personal_data, secrets_of=[args.db]))
    recorded = result.metrics.get("outcome")  # Runbook.record(): tells an ERROR from input and from a crash apart
    return Outcome(recorded) if recorded in {o.value for o in Outcome} else Status[verdict].outcome


def cmd_list(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.analyses import tables  # lazily, as every command's heavier imports: `rca --help` stays light

    rows = [{"notebook": str(p), "parameters": [q.to_dict() for q in declared_parameters(p)]} for p in all_notebooks()]
    if args.format == "json":
        emit(rows, "json")
        return Outcome.CLEAR
    if not rows:
        print("no notebooks found in notebooks/ or runbooks/")
    for row in rows:
        print(row["notebook"])
        for q in row["parameters"]:
            kind = f", {q['kind']}" if q["kind"] != "value" else ""
            line = f"{q['name']}: {q['type']} = {q['default']!r}{kind}  # {q['help']}"  # a long help wraps as comments
            print(tables.wrap_lines([line], indent="    ", hang="    # "))
    return Outcome.CLEAR


def cmd_demo_reports(args: argparse.Namespace) -> Outcome:
    """Run every notebook with its defaults, ``--jobs`` at a time (one kernel each), one line per finished
    notebook, then a summary table and the index; the worst run's outcome (a failed execution), verdicts do
    not count."""
    import time

    from rca_toolkit.analyses import tables
    from rca_toolkit.runs.batch import run_all
    from rca_toolkit.sources.db import check_reachable

    check_reachable(args.db)  # a wrong --db is one line before any kernel starts, not after the first ones finish
    paths = all_notebooks()
    jobs = max(1, min(int(args.jobs), len(paths) or 1))
    started = time.monotonic()
    print(f"running {len(paths)} notebooks, {jobs} at a time", flush=True)
    done: dict[str, dict] = {}
    for run in run_all(paths, args.db, args.out, jobs):
        done[run["notebook"]] = run
        verdict = f" {run['verdict']}" if run["verdict"] else ""
        print(f"[{len(done)}/{len(paths)}] {run['status']:6} {run['notebook']}{verdict} ({run['seconds']:.1f} s)",
              flush=True)
        if run["error"]:
            print(f"       {run['error']}", flush=True)
    runs = [done[str(p)] for p in paths]
    index_path = _refresh_index(args.out)
    root = index_path.parent
    for run in runs:
        folder = Path(run["run_dir"])
        run["stem"], run["folder"] = Path(run["notebook"]).stem, folder.relative_to(root) if folder.is_relative_to(root) else folder
    summary = tables.Table(runs, [tables.col("stem", "notebook"), tables.col("status"), tables.col("verdict"),
                                  tables.col("seconds", "time (s)", tables.seconds, numeric=True),
                                  tables.col("folder", f"run folder (report.html inside, under {root})")])
    print(f"\n{summary.to_text()}\n")
    print(f"{sum(r['status'] == 'ok' for r in runs)} of {len(runs)} notebooks ran in {time.monotonic() - started:.0f} s")
    print(f"open the index: {index_path}")
    return Outcome.worst(Outcome(r["outcome"]) for r in runs)


def register(sub) -> None:
    p = sub.add_parser("run", help="run a notebook with validated parameters into reports/<notebook>/<run-id>/")
    p.add_argument("notebook", help="path, file name or stem of a notebook in notebooks/ or runbooks/")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("runbook", help="run a runbook; exit 0 PASS/WARN, 1 FAIL, 2 ERROR (input), 3 ERROR (internal)")
    p.add_argument("name", help="runbook number (RB001) or stem")
    _add_run_options(p)
    p.set_defaults(func=cmd_runbook)

    p = sub.add_parser("list", help="list notebooks and runbooks with their parameters")
    add_format_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("demo-reports", help="run every notebook and runbook with its defaults and print the reports")
    add_db_option(p)
    p.add_argument("--out", metavar="DIR", default=None, help="reports folder (default: reports/)")
    p.add_argument("--jobs", type=int_in(1, MAX_JOBS), default=DEMO_JOBS, metavar="N",
                   help="notebooks run at once, one kernel each (default: %(default)s)")
    p.set_defaults(func=cmd_demo_reports)
