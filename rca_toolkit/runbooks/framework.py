"""Runbook framework: checks whose status is computed from data, a verdict, a sign-off.

* :class:`Status` is ordered ``PASS < WARN < FAIL < ERROR``; the runbook verdict is the worst
  status of its checks (no check at all is ERROR, never PASS). WARN is also "no verdict": a check
  with nothing to judge ("0 of 0") says "not enough data" (``check_helpers.not_enough_data``).
* A check is a function returning a :class:`CheckResult` (name, status, summary, evidence with
  the numbers, window, threshold and denominator, and a remedy). It raises
  :class:`NotApplicable` when it does not apply (e.g. no Redis configured): shown as skipped,
  never counted as a pass.
* :func:`run_check` turns every exception into ERROR with its message: a missing table or
  column (``SchemaError``), an unreachable database (``ConnectionFailed``), any other
  ``RcaError`` or database error, and unexpected bugs (type, message and the last traceback
  lines in the evidence). Nothing is swallowed and nothing becomes PASS by accident.
* :class:`Runbook` collects results and renders the sign-off (checklist with evidence, metrics
  before/after, what to do on failure) to Markdown, HTML and JSON; the HTML, shown at the end of the
  notebook below every check's own output, leaves the checklist out (it appears once). In a papermill
  run, :meth:`Runbook.record` stores the verdict, its one-line reasons (``verdict_line``, ``reasons``:
  the report's verdict block and the index) in ``metrics.json`` (``rca runbook`` reads it) and writes
  ``signoff.md`` / ``signoff.json``.

Outcome of a runbook (``rca runbook`` exits with it, README "Exit codes"): PASS/WARN nothing to
act on, FAIL found something, ERROR bad input (a missing table or column, an unreachable database,
any ``RcaError`` or database error) unless a check crashed on a bug (``CheckResult.internal``):
then an internal error.
"""

from __future__ import annotations

import html
import json
import logging
import re
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum
from typing import Any, Callable

import pandas as pd

from rca_toolkit.rules.jsonutil import json_default
from rca_toolkit.errors import RcaError
from rca_toolkit.analyses import tables
from rca_toolkit.analyses.markdown import md_table, md_text
from rca_toolkit.outcome import Outcome

log = logging.getLogger(__name__)


class Status(IntEnum):
    PASS = 0
    WARN = 1
    FAIL = 2
    ERROR = 3

    @property
    def outcome(self) -> Outcome:
        """PASS/WARN nothing to act on, FAIL found something, ERROR bad input (see :attr:`Runbook.outcome`)."""
        return {Status.PASS: Outcome.CLEAR, Status.WARN: Outcome.CLEAR, Status.FAIL: Outcome.FOUND,
                Status.ERROR: Outcome.BAD_INPUT}[self]

    def __str__(self) -> str:
        return self.name


_ICON = {Status.PASS: "[x]", Status.WARN: "[~]", Status.FAIL: "[ ]", Status.ERROR: "[!]"}


class NotApplicable(Exception):
    """Raised by a check that does not apply to this run (reason in the message)."""


@dataclass
class CheckResult:
    """The outcome of one check; ``status`` must be derived from ``evidence``.

    ``internal`` marks an ERROR caused by a crash inside the check (a bug), not by its input."""

    name: str
    status: Status
    summary: str
    evidence: dict = field(default_factory=dict)
    remedy: str = ""
    internal: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status.name, "summary": self.summary,
                "evidence": _plain(self.evidence), "remedy": self.remedy}

    def to_markdown(self) -> str:
        lines = [f"- {_ICON[self.status]} **{self.status.name}** {md_text(self.name)}: {md_text(self.summary)}"]
        lines += ["  " + line for line in _evidence_md(self.evidence)]
        if self.status != Status.PASS and self.remedy:
            lines.append(f"  - *If this is not PASS:* {md_text(self.remedy)}")
        return "\n".join(lines)

    def to_html(self) -> str:
        remedy = (f"<p><em>If this is not PASS:</em> {html.escape(self.remedy)}</p>"
                  if self.status != Status.PASS and self.remedy else "")
        return (f"<li><span class=\"rca-status-{self.status.name}\">{self.status.name}</span> "
                f"<strong>{html.escape(self.name)}</strong>: {html.escape(self.summary)}"
                f"{_evidence_html(self.evidence)}{remedy}</li>")

    def _repr_html_(self) -> str:
        return f"<ul>{self.to_html()}</ul>"

    def _repr_markdown_(self) -> str:  # what the Markdown report shows (runs.render)
        return self.to_markdown()


@dataclass
class Skipped:
    """A check that did not apply (never counted as PASS)."""

    name: str
    reason: str

    def to_dict(self) -> dict:
        return {"name": self.name, "status": "SKIPPED", "reason": self.reason}

    def _repr_html_(self) -> str:
        return f"<ul><li>SKIPPED <strong>{html.escape(self.name)}</strong>: {html.escape(self.reason)}</li></ul>"

    def _repr_markdown_(self) -> str:
        return f"- SKIPPED **{md_text(self.name)}**: {md_text(self.reason)}"


def run_check(name: str | None, fn: Callable[..., CheckResult], *args, remedy: str = "", **kwargs) -> CheckResult | Skipped:
    """Run one check; every exception becomes ERROR with its message (see module docstring)."""
    label = name or getattr(fn, "__name__", "check")
    try:
        result = fn(*args, **kwargs)
    except NotApplicable as exc:
        return Skipped(label, str(exc))
    except RcaError as exc:
        kind = type(exc).__name__
        return CheckResult(label, Status.ERROR, f"{kind}: {exc}", {"error": kind},
                           remedy or "Fix the cause named above and re-run; the check could not compute a status.")
    except Exception as exc:  # noqa: BLE001 - reported as ERROR with type, message and traceback tail
        from rca_toolkit.sources.db import redact_text

        kind = f"{type(exc).__module__}.{type(exc).__name__}"
        first = redact_text(str(exc).splitlines()[0] if str(exc) else "")
        tail = redact_text("".join(traceback.format_exception(exc)[-3:]))
        is_db = type(exc).__module__.startswith(("sqlalchemy", "pymysql", "sqlite3"))
        summary = f"database error {kind}: {first}" if is_db else f"unexpected {kind}: {first} (a bug in the check)"
        return CheckResult(label, Status.ERROR, summary, {"error": kind, "traceback_tail": tail},
                           remedy or "Report this with the run folder; the check could not compute a status.",
                           internal=not is_db)
    if not isinstance(result, CheckResult) or not isinstance(result.status, Status):
        return CheckResult(label, Status.ERROR, f"check returned {type(result).__name__}, not a CheckResult",
                           {"error": "bad return"}, "Fix the check function.", internal=True)
    if name:
        result.name = name
    if remedy:
        result.remedy = remedy
    return result


@dataclass
class Runbook:
    """Collects check results; ``verdict`` is the worst status (ERROR when nothing ran)."""

    id: str
    title: str
    phase: str = ""
    parameters: dict = field(default_factory=dict)
    database: str | None = None
    synthetic: bool | None = None
    on_failure: str = ""
    results: list[CheckResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    db: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """With ``db`` (an Engine), record its redacted URL and whether it is the synthetic demo."""
        if self.db is None:
            return
        from rca_toolkit.sources import loaders
        from rca_toolkit.runs.kernel import db_label

        self.database = self.database or db_label(self.db)
        try:
            self.synthetic = loaders.is_synthetic(self.db)
        except RcaError:  # unreachable or unreadable: the checks will say so as ERROR
            self.synthetic = None

    def run(self, name: str | None, fn: Callable[..., CheckResult], *args, remedy: str = "", **kwargs):
        """Run a check through :func:`run_check` and keep its result."""
        return self.add(run_check(name, fn, *args, remedy=remedy, **kwargs))

    def add(self, result: CheckResult | Skipped):
        (self.skipped if isinstance(result, Skipped) else self.results).append(result)
        if isinstance(result, Skipped):
            log.info("%s check %r: SKIPPED: %s", self.id, result.name, result.reason)
        else:
            log.info("%s check %r: %s%s: %s", self.id, result.name, result.status.name,
                     " (internal)" if result.internal else "", result.summary)
        return result

    def add_metric(self, name: str, before: Any, after: Any, *, unit: str = "", note: str = "") -> None:
        """A before/after row for the sign-off (e.g. booking success before vs after the deploy)."""
        self.metrics.append({"metric": name, "before": before, "after": after, "unit": unit, "note": note})

    def collect_metrics(self, fn: Callable[..., list[dict]], *args, **kwargs) -> None:
        """Add before/after rows from ``fn``; a failure becomes a visible 'could not compute' row."""
        try:
            rows = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown in the sign-off, the checks report the cause as ERROR
            from rca_toolkit.sources.db import redact_text

            rows = [{"metric": getattr(fn, "__name__", "metrics"), "before": "n/a", "after": "n/a", "unit": "",
                     "note": f"could not compute: {type(exc).__name__}: {redact_text(str(exc))}"}]
        self.metrics.extend(rows)

    def metrics_frame(self):
        """The before/after rows as a table for display in a notebook (no row numbers, one mark for no value)."""
        return tables.show(pd.DataFrame(self.metrics, columns=["metric", "before", "after", "unit", "note"]))

    @property
    def verdict(self) -> Status:
        return max((r.status for r in self.results), default=Status.ERROR)

    @property
    def outcome(self) -> Outcome:
        """The verdict's outcome; an ERROR is an internal error when a check crashed on a bug, else bad input."""
        if self.verdict == Status.ERROR and any(r.internal for r in self.results if r.status == Status.ERROR):
            return Outcome.INTERNAL_ERROR
        return self.verdict.outcome

    def counts(self) -> dict[str, int]:
        out = {s.name: sum(r.status == s for r in self.results) for s in Status}
        out["SKIPPED"] = len(self.skipped)
        return out

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "phase": self.phase, "verdict": self.verdict.name,
                "outcome": self.outcome.value, "counts": self.counts(), "created_at": self.created_at,
                "database": self.database, "synthetic": self.synthetic, "parameters": _plain(self.parameters),
                "checks": [r.to_dict() for r in self.results], "skipped": [s.to_dict() for s in self.skipped],
                "metrics": _plain(self.metrics), "on_failure": self.on_failure}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, **kwargs)

    def _failing(self) -> list[CheckResult]:
        return sorted((r for r in self.results if r.status != Status.PASS), key=lambda r: -r.status)

    def to_markdown(self, *, checklist: bool = True) -> str:
        """The sign-off (``signoff.md``); without ``checklist`` as a report's last section, whose checks and their
        evidence are each shown above it (as :meth:`to_html`)."""
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        out = [f"# {self.id} {self.title}: sign-off", "",
               f"**Verdict: {self.verdict.name}** (worst of {len(self.results)} checks: {counts})", ""]
        if self.phase:
            out.append(f"- Phase: {self.phase}")
        out.append(f"- Database: {self.database or 'not recorded'}"
                   + (" (SYNTHETIC demo data)" if self.synthetic else ""))
        out.append(f"- Generated: {self.created_at}")
        if self.parameters:
            out.append("- Parameters: " + ", ".join(f"`{k}={v}`" for k, v in self.parameters.items()))
        if checklist:
            out += ["", "## Checklist", ""] + [r.to_markdown() for r in self.results]
            out += ["- no check ran: the verdict is ERROR"] if not self.results else []
            out += [f"- [-] SKIPPED {s.name}: {s.reason}" for s in self.skipped]
        if self.metrics:
            out += ["", "## Metrics before / after", "", _rows_table(self.metrics)]
        failing = self._failing()
        out += ["", "## What to do on failure", ""]
        if failing:
            out += [f"1. **{r.name}** ({r.status.name}): {r.remedy or 'no remedy recorded'}" for r in failing]
        else:
            out.append("Nothing failed.")
        if self.on_failure:
            out += ["", self.on_failure]
        out += ["", "Statuses are computed from the evidence above. Signed off by: ________  date: ________", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        meta = [f"Phase: {self.phase}"] if self.phase else []
        meta.append(f"Database: {self.database or 'not recorded'}" + (" (SYNTHETIC demo data)" if self.synthetic else ""))
        meta.append(f"Generated: {self.created_at}")
        counts = ", ".join(f"{v} {k}" for k, v in self.counts().items() if v)
        # the checklist with its evidence is each check's own output above: shown once, not repeated here
        parts = [f"<h2>{html.escape(self.id)} {html.escape(self.title)}: sign-off</h2>",
                 f"<p><strong>Verdict: <span class=\"rca-status-{self.verdict.name}\">{self.verdict.name}</span></strong>"
                 f" (worst of {len(self.results)} checks: {html.escape(counts or 'none ran')}; each check's evidence "
                 "is shown with the check above)</p>",
                 "<p>" + "<br>".join(html.escape(m) for m in meta) + "</p>"]
        if not self.results:
            parts.append("<p>No check ran: the verdict is ERROR.</p>")
        if self.metrics:
            parts += ["<h3>Metrics before / after</h3>", _html_table(self.metrics)]
        failing = self._failing()
        parts.append("<h3>What to do on failure</h3>")
        parts.append("<ol>" + "".join(f"<li><strong>{html.escape(r.name)}</strong> ({r.status.name}): "
                                      f"{html.escape(r.remedy or 'no remedy recorded')}</li>" for r in failing) + "</ol>"
                     if failing else "<p>Nothing failed.</p>")
        if self.on_failure:
            parts.append(f"<p>{html.escape(self.on_failure)}</p>")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_markdown_(self) -> str:  # in a report the sign-off is a section, its headings one level down
        return "\n".join("#" + line if line.startswith("#") else line for line in self.to_markdown(checklist=False).splitlines())

    def record(self) -> None:
        """Store verdict and checks in the run's metrics.json and write signoff.md/.json."""
        from rca_toolkit.runs import kernel

        failing = self._failing()
        line = "; ".join(("" if r.status == self.verdict else f"{r.status.name} ") + f"{r.name}: {r.summary}"
                         for r in failing) if failing else (
            f"all {len(self.results)} checks passed" if self.results else "no check ran")
        kernel.record_metrics({"runbook": self.id, "verdict": self.verdict.name, "outcome": self.outcome.value,
                               "counts": self.counts(), "checks": {r.name: r.status.name for r in self.results},
                               "key_numbers": {f"checks {k}": n for k, n in self.counts().items() if n},  # the index's
                               "verdict_line": f"{self.verdict.name}: {line}",  # the report's verdict block and the index
                               "reasons": [{"status": r.status.name, "name": r.name, "summary": r.summary} for r in failing],
                               "synthetic": self.synthetic})
        kernel.save_text("signoff.md", self.to_markdown())
        kernel.save_text("signoff.json", self.to_json() + "\n")


def window_after(start, duration: str = "", end: str = "") -> tuple:
    """(start, end) as UTC Timestamps: ``end`` if given, else ``start + duration`` capped at now."""
    import pandas as pd

    from rca_toolkit.rules.timeutil import parse_duration, parse_instant

    begin = parse_instant(start, name="start")
    if end:
        stop = parse_instant(end, name="end")
    elif duration:
        stop = min(begin + parse_duration(duration, name="window"), pd.Timestamp.now(tz="UTC"))
    else:
        stop = pd.Timestamp.now(tz="UTC")
    if stop <= begin:
        from rca_toolkit.errors import ConfigError

        raise ConfigError(f"window end {stop} is not after its start {begin}", hint="check the start, window and as_of")
    return begin, stop


# --------------------------------------------------------------------------- rendering helpers
def _plain(value):
    return json.loads(json.dumps(value, default=json_default))


def _fmt(value) -> str:
    if isinstance(value, (list, tuple, dict)) and not value:
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return " to ".join(str(v) for v in value) if len(value) == 2 else ", ".join(str(v) for v in value)
    return str(value)


def _is_table(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _label(key: str) -> str:
    """An evidence key as a reader's words (``sessions_reached`` -> "sessions reached"); JSON keeps the key."""
    return str(key).replace("_", " ")


def _cell(key: str, value) -> str:
    """One evidence value as shown: a rate (a key that is or ends in ``rate``) as a percentage; an instant, and a
    window of two, in the report's zone (the JSON keeps them in UTC); else :func:`_fmt`."""
    is_rate = str(key) == "rate" or str(key).endswith("_rate")
    if is_rate and isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return tables.percent(value)
    if _is_instant(value):
        return tables.when(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_instant, value)):
        return tables.between(*value)
    return _fmt(value)


_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d|Z)")


def _is_instant(value) -> bool:
    """An ISO instant with its offset, as the checks write times into their evidence."""
    return isinstance(value, str) and _INSTANT.fullmatch(value) is not None


def _rows_table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for row in rows for k in row))
    return md_table(pd.DataFrame([[_cell(c, row.get(c, "")) for c in cols] for row in rows], columns=[_label(c) for c in cols]))


def _html_table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c, row.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _evidence_md(evidence: dict) -> list[str]:
    lines = []
    for key, value in evidence.items():
        if key == "traceback_tail":
            lines.append(f"- {_label(key)}:\n\n```\n{value}\n```")
        elif _is_table(value):
            lines.append(f"- {_label(key)}:\n\n" + "\n".join("    " + row for row in _rows_table(value).splitlines()) + "\n")
        else:
            lines.append(f"- {_label(key)}: {md_text(_cell(key, value))}")
    return lines


def _evidence_html(evidence: dict) -> str:
    if not evidence:
        return ""
    items = []
    for key, value in evidence.items():
        if _is_table(value):
            items.append(f"<li>{html.escape(_label(key))}:{_html_table(value)}</li>")
        elif key == "traceback_tail":
            items.append(f"<li>{html.escape(_label(key))}:<pre>{html.escape(str(value))}</pre></li>")
        else:
            items.append(f"<li>{html.escape(_label(key))}: {html.escape(_cell(key, value))}</li>")
    return "<ul>" + "".join(items) + "</ul>"


__all__ = ["CheckResult", "NotApplicable", "Runbook", "Skipped", "Status", "run_check", "window_after"]
