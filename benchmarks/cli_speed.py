"""How long people wait for the CLI: today's code against a baseline commit, as ratios, in one run.

Why: ``rca list`` and ``rca --help`` should answer in under a second (they only read notebook
parameters, so they must not import pandas, nbformat's schema validator or the analysis stack), and
``make demo`` should not run its notebooks one after the other. Timed tests would be flaky on shared
CI machines, so the numbers are measured here, both sides on the same machine in the same run,
interleaved, and kept in ``benchmarks/results/cli_speed-<date>.json``.

The baseline is the package at a git commit (default ``HEAD``), unpacked with ``git archive`` into a
temporary folder (the checkout is only read); each side runs in a fresh ``python -P`` process with
``PYTHONPATH`` pointing at its package, from its own tree (the baseline's ``notebooks/`` and ``runbooks/``
come from the same commit, so each side runs the notebooks written for it)::

    .venv/bin/python -m benchmarks.cli_speed                   # --help and list, 7 runs each side
    .venv/bin/python -m benchmarks.cli_speed --baseline 0fdbf78 --repeat 11
    .venv/bin/python -m benchmarks.cli_speed --demo             # also `rca demo-reports` once per side (minutes)
    .venv/bin/python -m benchmarks.cli_speed --runbook          # also `rca runbook RB001`, 3 runs per side
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "nbformat", "jsonschema", "sqlalchemy", "scipy", "matplotlib")
COMMANDS = {"rca --help": ["--help"], "rca list": ["list"]}
# runs main() and reports, after it, which heavy modules the command imported and which package answered
PROBE = ("import json, sys, time\n"
         "t = time.perf_counter()\n"
         "from rca_toolkit import cli\n"
         "try:\n"
         "    cli.main(sys.argv[1:])\n"
         "except SystemExit:\n"
         "    pass\n"
         "print('CLI-SPEED ' + json.dumps({'seconds': time.perf_counter() - t, 'package': cli.__file__,\n"
         f"    'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}), file=sys.stderr)\n")


def baseline_package(ref: str, folder: Path) -> Path:
    """``rca_toolkit`` and its notebooks as of git ``ref``, unpacked into ``folder`` (``git archive``: the checkout
    is not touched)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "rca_toolkit", "notebooks",
                              "runbooks"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _run(package_root: Path, args: list[str], *, timeout: float = 600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(package_root), "RCA_PROGRESS": "0"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-P", "-c", PROBE, *args], cwd=package_root, env=env, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - started
    probe = next((json.loads(line[len("CLI-SPEED "):]) for line in done.stderr.splitlines()
                  if line.startswith("CLI-SPEED ")), {})
    if not str(probe.get("package", "")).startswith(str(package_root)):
        raise RuntimeError(f"{args} ran {probe.get('package')}, not the package under {package_root}: {done.stderr[-500:]}")
    return {"wall_s": wall, "heavy": probe.get("heavy", []), "exit": done.returncode}


def measure(sides: dict[str, Path], commands: dict[str, list[str]], repeat: int) -> list[dict]:
    """Median wall time of each command on each side; runs interleaved so load drifts hit both alike."""
    rows = []
    for name, args in commands.items():
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for _ in range(repeat):
            for side, package in sides.items():
                runs[side].append(_run(package, args))
        row = {"command": name, "repeat": repeat}
        for side in sides:
            walls = [r["wall_s"] for r in runs[side]]
            row[side] = {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
                         "max_s": round(max(walls), 3), "heavy_modules": runs[side][-1]["heavy"],
                         "exit": runs[side][-1]["exit"]}
        row["ratio"] = round(row["current"]["median_s"] / row["baseline"]["median_s"], 3)
        rows.append(row)
    return rows


def measure_demo(sides: dict[str, Path], db: str) -> dict:
    """``rca demo-reports`` once per side into throwaway folders (the baseline runs one notebook at a time)."""
    row = {"command": "rca demo-reports", "repeat": 1}
    for side, package in sides.items():
        with tempfile.TemporaryDirectory(prefix=f"cli-speed-{side}-") as out:
            result = _run(package, ["demo-reports", "--db", db, "--out", out], timeout=1800)
        row[side] = {"median_s": round(result["wall_s"], 1), "exit": result["exit"]}
    row["ratio"] = round(row["current"]["median_s"] / row["baseline"]["median_s"], 3)
    return row


def report(rows: list[dict], ref: str) -> str:
    lines = [f"{'command':<18} {'baseline ' + ref[:10]:>20} {'current':>10} {'ratio':>7}  imports then -> now"]
    for r in rows:
        then, now = r["baseline"].get("heavy_modules", []), r["current"].get("heavy_modules", [])
        lines.append(f"{r['command']:<18} {r['baseline']['median_s']:>18.3f} s {r['current']['median_s']:>8.3f} s "
                     f"{r['ratio']:>7.2f}  {','.join(then) or '-'} -> {','.join(now) or '-'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git commit of today's numbers (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=7, help="runs per command and side (default: %(default)s)")
    parser.add_argument("--demo", action="store_true", help="also time `rca demo-reports` once per side")
    parser.add_argument("--runbook", action="store_true", help="also time `rca runbook RB001` (3 runs per side)")
    parser.add_argument("--db", default=f"sqlite:///{ROOT / 'data' / 'demo.sqlite'}", help="database of --demo")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder of the results JSON")
    args = parser.parse_args(argv)
    ref = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.baseline], capture_output=True, text=True,
                         check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="cli-speed-baseline-") as tmp:
        sides = {"baseline": baseline_package(ref, Path(tmp)), "current": ROOT}
        rows = measure(sides, COMMANDS, args.repeat)
        if args.runbook:
            with tempfile.TemporaryDirectory(prefix="cli-speed-runbook-") as out:
                rows += measure(sides, {"rca runbook RB001": ["runbook", "RB001", "--db", args.db, "--out", out]}, 3)
        if args.demo:
            rows.append(measure_demo(sides, args.db))
    result = {"date": date.today().isoformat(), "baseline": ref, "python": sys.version.split()[0],
              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows,
              "goal": "rca list and rca --help under 1 s; a runbook on the demo database under 8 s; "
                      "make demo under 60 s on 2 cores"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cli_speed-{result['date']}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(report(rows, ref))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
