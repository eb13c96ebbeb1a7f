"""Several notebooks with their defaults, a few at a time: what ``rca demo-reports`` runs.

Why here and not in the command: starting kernels in worker processes and deciding what a failed
worker means is running notebooks (this layer); the command only prints what comes back. Each
notebook runs in a process of its own because the runner sets the run folder through a process-wide
environment variable, which threads would share.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Iterator

from rca_toolkit import errors
from rca_toolkit.runs.catalog import declared_parameters


def run_one(path: str, db: str | None, out: str | None) -> dict:
    """One notebook with its defaults (in a worker process): how it ended, as plain values. A wrong input
    comes back as ``error_class``/``message``/``hint``; :func:`run_all` raises it again."""
    from rca_toolkit.runs.runner import run_notebook

    started = time.monotonic()
    try:
        takes_db = any(p.name == "db_url" for p in declared_parameters(path))
        result = run_notebook(path, {}, db=db if takes_db else None, out_dir=out)
    except errors.RcaError as exc:
        return {"notebook": str(path), "error_class": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    return {"notebook": str(path), "status": result.status, "outcome": result.outcome.value, "error": result.error,
            "verdict": result.metrics.get("verdict"), "run_dir": str(result.run_dir),
            "seconds": round(time.monotonic() - started, 1)}


def run_all(paths, db: str | None, out: str | None, jobs: int) -> Iterator[dict]:
    """Run ``paths`` ``jobs`` at a time and yield each run as it finishes (:func:`run_one`'s values). A wrong
    input (a notebook, its parameters) is raised as its ``RcaError`` once it comes back: nothing new starts,
    the kernels already running finish."""
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_one, str(p), db, out) for p in paths]
        for future in as_completed(futures):
            run = future.result()
            if "error_class" in run:
                pool.shutdown(wait=False, cancel_futures=True)
                cls = getattr(errors, run["error_class"], errors.ConfigError)
                raise cls(f"{run['notebook']}: {run['message']}", hint=run["hint"])
            yield run


__all__ = ["run_all", "run_one"]
