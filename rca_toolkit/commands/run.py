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

from rca_toolkit.cli import add_db_option, add_format_option, emit
from rca_toolkit.outcome import Outcome
from rca_toolkit.runs.catalog import all_notebooks, find_notebook

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


def cmd_run(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.runs.runner import run_notebook

    result = run_notebook(find_notebook(args.notebook), _params(args), db=args.db, out_dir=args.out)
    print(f"{result.status}: {result.run_dir}")
    print(f"report: {result.run_dir / 'report.html'}")
    if result.error:
        print(f"rca run: {result.notebook.name} failed: {result.error} (executed notebook kept in the run folder)",
              file=sys.stderr)
    return result.outcome


def cmd_runbook(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.runs.runner import run_notebook
    from rca_toolkit.runbooks.framework import Status

    result = run_notebook(find_notebook(args.name, runbook=True), _params(args), db=args.db, out_dir=args.out)
    verdict = result.metrics.get("verdict")
    if result.status != "ok" or verdict not in Status.__members__:
        why = result.error or "the notebook recorded no verdict (Runbook.record() was not called)"
        print(f"ERROR: {result.run_dir}\nrca runbook: {why}", file=sys.stderr)
        return result.outcome if result.status != "ok" else Outcome.INTERNAL_ERROR
    print(f"{verdict}: {result.run_dir}")
    counts = result.metrics.get("counts", {})
    if counts:
        print("checks: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"sign-off: {result.run_dir / 'signoff.md'}")
    recorded = result.metrics.get("outcome")  # Runbook.record(): tells an ERROR from input and from a crash apart
    return Outcome(recorded) if recorded in {o.value for o in Outcome} else Status[verdict].outcome


def cmd_list(args: argparse.Namespace) -> Outcome:
    from rca_toolkit.runs.parameters import read_parameters

    rows = [{"notebook": str(p), "parameters": [q.to_dict() for q in read_parameters(p)]} for p in all_notebooks()]
    if args.format == "json":
        emit(rows, "json")
        return Outcome.CLEAR
    if not rows:
        print("no notebooks found in notebooks/ or runbooks/")
    for row in rows:
        print(row["notebook"])
        for q in row["parameters"]:
            kind = f", {q['kind']}" if q["kind"] != "value" else ""
            print(f"    {q['name']}: {q['type']} = {q['default']!r}{kind}  # {q['help']}")
    return Outcome.CLEAR


def cmd_demo_reports(args: argparse.Namespace) -> Outcome:
    """Run every notebook with its defaults; the worst run's outcome (a failed execution), verdicts do not count."""
    from rca_toolkit.runs.parameters import read_parameters
    from rca_toolkit.runs.runner import run_notebook

    outcomes = []
    for path in all_notebooks():
        takes_db = any(p.name == "db_url" for p in read_parameters(path))
        result = run_notebook(path, {}, db=args.db if takes_db else None, out_dir=args.out)
        verdict = result.metrics.get("verdict")
        extra = f" verdict {verdict}" if verdict else ""
        print(f"{result.status:6} {path}{extra}: {result.run_dir / 'report.html'}")
        if result.error:
            print(f"       {result.error}")
        outcomes.append(result.outcome)
    return Outcome.worst(outcomes)


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
    p.set_defaults(func=cmd_demo_reports)
