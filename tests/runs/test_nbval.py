"""CI validation: ``pytest --nbval-lax runbooks/ notebooks/`` against a demo database.

nbval starts each kernel in the notebook's folder and runs the committed defaults, so the
database comes from ``RCA_DATABASE_URL`` (here the session's demo SQLite file). The same
command works by hand after ``make demo``::

    RCA_DATABASE_URL=sqlite:///$PWD/data/demo.sqlite RCA_PROGRESS=0 \\
        .venv/bin/python -m pytest --nbval-lax -p no:cacheprovider runbooks/ notebooks/
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL_NOT_STARTED = "Kernel died before replying to kernel_info"


@pytest.mark.slow
def test_nbval_lax_runs_every_runbook_and_report_notebook(demo_sqlite):
    url, _ = demo_sqlite
    env = {**os.environ, "RCA_DATABASE_URL": url, "RCA_PROGRESS": "0", "MPLBACKEND": "Agg"}
    env.pop("RCA_RUN_DIR", None)
    folders = [f for f in ("runbooks", "notebooks") if any((ROOT / f).glob("*.ipynb"))]
    for _ in range(2):  # once more only when a kernel did not start (below); a failing cell fails at once
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--no-header",
             "-o", "addopts=", *folders],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )
        # jupyter_client picks a kernel's ports before the kernel binds them: beside the other tests' kernels (xdist)
        # one can be taken in between, and the kernel dies at start (jupyter/jupyter_client#154; seen once in CI)
        if done.returncode == 0 or KERNEL_NOT_STARTED not in done.stdout:
            break
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    cells = sum(1 for f in folders for p in (ROOT / f).glob("*.ipynb")
                for c in nbformat.read(str(p), as_version=4).cells if c.cell_type == "code")
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    assert passed == cells and "failed" not in done.stdout.splitlines()[-1]
