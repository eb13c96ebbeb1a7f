"""The incident result: per-group impact, causes, detection, claims, timeline and provenance, rendered
as JSON (the shape ``rca incident --format json`` prints and other tools read), text, Markdown and HTML.

Why one object: the CLI and the notebook show the same numbers because they render the same object;
every number's provenance (function and window) travels with it under ``provenance``.

The JSON keeps the shape of issue 23, with two keys that appear only when true: a group's
``"limited_by_window": true`` (a ``--since`` was given and the group was already failing when the
window opened: no successful attempt before its first failure inside it, so ``first_error`` is the
first in the window, not the onset, and ``onset_cause`` is null: widen ``--since``), and
``detected.limited_by_window: true`` (the daily reports were checked only from the window start
on, so ``first_act_day`` is the first ACT from there, not necessarily the incident's first).
Instants are full ISO-8601 in the JSON; the text, Markdown and HTML show local time to the second
(:func:`rca_toolkit.analyses.tables.when`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

import pandas as pd

from rca_toolkit.analyses.incident.causes import Attribution, iso
from rca_toolkit.analyses.incident.claims import METRIC_LABELS, METRICS, STATUSES, ClaimResult
from rca_toolkit.analyses.incident.detection import Detection
from rca_toolkit.analyses.incident.groups import GroupImpact
from rca_toolkit.analyses.markdown import md_items, md_table, md_text
from rca_toolkit.analyses.tables import (VERDICT_REPEAT, Table, percent, percent_interval, show as show_table, when,
                                         wrap_lines)

BEFORE_WINDOW = "onset before the window start: widen --since"


@dataclass
class IncidentReport:
    """Everything ``rca incident`` prints and ``notebooks/incident_report.ipynb`` shows."""

    signature: str
    since: pd.Timestamp
    until: pd.Timestamp
    by: str
    groups: list[GroupImpact]
    onsets: dict[str, Attribution | None]
    recoveries: dict[str, Attribution | None]
    detection: Detection
    claims: list[ClaimResult]
    timeline: list[dict]
    daily: pd.DataFrame  # error rows carrying the signature per Berlin day and group
    changes: pd.DataFrame  # deployments and migrations considered (``causes.changes_frame``)
    open_questions: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    synthetic: bool = False

    # ------------------------------------------------------------------ verdict
    @property
    def has_errors(self) -> bool:
        """Any error row or failed attempt carried the signature in the window."""
        return any(g.errors or g.failed_attempts for g in self.groups)

    @property
    def contradicted(self) -> list[ClaimResult]:
        return [c for c in self.claims if c.status == "contradicted"]

    @property
    def found(self) -> bool:
        """What ``rca incident`` exits 1 on: the incident is in the window, or a claim is contradicted."""
        return self.has_errors or bool(self.contradicted)

    # ------------------------------------------------------------------ JSON
    def group_dict(self, g: GroupImpact) -> dict:
        onset, fix = self.onsets.get(g.group), self.recoveries.get(g.group)
        limited = {"limited_by_window": True} if g.limited_by_window else {}
        return {
            "group": g.group, "errors": g.errors, "first_error": iso(g.first_error), "last_error": iso(g.last_error),
            "failed_attempts": g.failed_attempts, "orphaned": g.orphaned, "rescued": g.rescued,
            "onset_cause": None if onset is None else {"commit": onset.commit, "at": iso(onset.at),
                                                       "gap_s": None if onset.gap_s is None else round(onset.gap_s, 3),
                                                       "description": onset.description},
            "recovery": None if g.recovered_at is None else {
                "at": iso(g.recovered_at), "commit": None if fix is None else fix.commit,
                "description": "" if fix is None else fix.description},
            **limited,
        }

    def to_dict(self) -> dict:
        return {"signature": self.signature, "window": {"since": iso(self.since), "until": iso(self.until)},
                "groups": [self.group_dict(g) for g in self.groups],
                "detected": {"first_act_day": self.detection.first_act_day,
                             **({"limited_by_window": True} if self.detection.limited_by_window else {})},
                "claims": [c.to_dict() for c in self.claims], "timeline": self.timeline, "provenance": self.provenance}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, ensure_ascii=False, **kwargs)

    @property
    def verdict(self) -> str:
        """FOUND (what ``rca incident`` exits 1 on) or CLEAR."""
        return "FOUND" if self.found else "CLEAR"

    @property
    def why(self) -> str:
        """What the verdict rests on: the first line of every view, after the word."""
        why = (["the signature occurs in the window"] if self.has_errors else []) + (
            [f"{len(self.contradicted)} of {len(self.claims)} claims contradicted"] if self.contradicted else [])
        return "; ".join(why) or "the signature is absent from the window and no claim is contradicted"

    @property
    def verdict_line(self) -> str:
        return f"{self.verdict}: {self.why}"

    def metrics(self) -> dict:
        """What a notebook run records in metrics.json: the JSON shape, the outcome, and the verdict the report's
        block and the index show (:attr:`verdict_line`), its reasons the summary lines."""
        return {**self.to_dict(), "found": self.found, "synthetic": self.synthetic, "verdict": self.verdict,
                "verdict_line": self.verdict_line,
                "key_numbers": {k.replace("_", " "): sum(getattr(g, k) for g in self.groups)  # the index's: the impact
                                for k in ("errors", "failed_attempts", "orphaned", "rescued")},
                "reasons": [{"text": x.removeprefix("- ")} for x in self.summary_lines() if not x.startswith("SYNTHETIC")]}

    # ------------------------------------------------------------------ tables
    def impact_table(self) -> pd.DataFrame:
        """One row per group: counts, first/last error, cause of the onset, recovery and its change."""
        rows = []
        for g in self.groups:
            d = self.group_dict(g)
            onset, rec = d["onset_cause"], d["recovery"]
            rows.append({self.by: g.group, "errors": g.errors, "failed attempts": g.failed_attempts,
                         "of attempts": g.attempts, "orphaned (lost)": g.orphaned, "rescued by webhook": g.rescued,
                         "first error": _short(d["first_error"]), "last error": _short(d["last_error"]),
                         "onset cause": (BEFORE_WINDOW if g.limited_by_window else "" if onset is None
                                         else f"{_commit(onset['commit'])} ({_gap(onset['gap_s'])} before)"),
                         "recovered": "unresolved" if rec is None else _short(rec["at"]),
                         "recovered by": "" if rec is None else _commit(rec["commit"]) or "no known change"})
        return pd.DataFrame(rows)

    def impact_text(self) -> str:
        """The impact table as one block per group: eleven columns do not fit a terminal's 100."""
        lines = []
        for row in self.impact_table().to_dict(orient="records"):
            lines += [f"  {row[self.by]}",
                      f"    {row['errors']:,} errors, {row['failed attempts']:,} failed of {row['of attempts']:,} attempts, "
                      f"{row['orphaned (lost)']:,} orphaned (lost), {row['rescued by webhook']:,} rescued by webhook",
                      f"    first error {row['first error']}, last error {row['last error']}",
                      f"    {_onset_words(row['onset cause'])}; recovered {row['recovered']}"
                      + (f" by {row['recovered by']}" if row["recovered by"] else "")]
        return wrap_lines(lines, hang="    ")

    def claims_table(self) -> pd.DataFrame:
        """One row per claim; ``metric`` says what is counted, ``n`` (attempts behind a rate) is ``-`` for a count."""
        cols = ["claim", "metric", "status", "value", "95 % CI", "n", "evidence"]
        return pd.DataFrame([{"claim": c.claim.claim, "metric": METRIC_LABELS[c.claim.metric], "status": c.status,
                              "value": _value(c), "95 % CI": "" if c.ci is None else percent_interval(*c.ci),
                              "n": "-" if METRICS[c.claim.metric] == "count" else c.n,
                              "evidence": c.evidence} for c in self.claims], columns=cols)

    def timeline_table(self) -> pd.DataFrame:
        """The timeline with ``at`` in local time to the second (the JSON keeps full ISO)."""
        frame = pd.DataFrame(self.timeline, columns=["at", "kind", "text"])
        return frame.assign(at=[_short(a) for a in frame["at"]])

    def provenance_table(self) -> pd.DataFrame:
        """How each number was computed (function and window), then the data fingerprint per table."""
        rows = [{"what": k, "how": v} for k, v in self.provenance.get("numbers", {}).items()]
        rows += [{"what": f"fingerprint {t}", "how": "table absent" if v.get("missing") else f"{v['rows']:,} rows, max id {v['max_id']}"}
                 for t, v in self.provenance.get("fingerprint", {}).items()]
        return pd.DataFrame(rows, columns=["what", "how"])

    def section(self, name: str) -> Table:
        """One table, untruncated and without the index: ``impact``, ``timeline``, ``claims`` or ``provenance`` (what
        the notebook shows: HTML in JupyterLab and the HTML report, Markdown in the Markdown report)."""
        tables = {"impact": self.impact_table, "timeline": self.timeline_table, "claims": self.claims_table,
                  "provenance": self.provenance_table}
        if name not in tables:
            raise KeyError(f"no section {name!r}; use one of {', '.join(tables)}")
        empty = {"impact": "No group: the signature is absent from the window.", "claims": "No claim was judged."}
        return show_table(tables[name](), empty=empty.get(name, "(none)"))

    def section_html(self, name: str) -> str:
        return self.section(name).to_html()

    def open_questions_markdown(self) -> str:
        return "\n".join(md_items(self.open_questions)) or "(none)"

    # ------------------------------------------------------------------ words
    def summary_lines(self) -> list[str]:
        window = f"[{when(self.since)}, {when(self.until)})"
        if not self.has_errors:
            lines = [f"No error row and no failed booking attempt carries the signature {self.signature!r} in {window}."]
        else:
            total = {k: sum(getattr(g, k) for g in self.groups) for k in ("errors", "failed_attempts", "orphaned", "rescued")}
            lines = [f"Signature {self.signature!r} in {window}, by {self.by}: {total['errors']:,} error rows, "
                     f"{total['failed_attempts']:,} failed booking attempts, {total['orphaned']:,} bookings lost "
                     f"(orphaned: booked in Cal.com, no local appointment), {total['rescued']:,} rescued by the Cal.com webhook."]
            for g in self.groups:
                d = self.group_dict(g)
                onset = d["onset_cause"]
                cause = (f"failing from the window start on, {BEFORE_WINDOW}" if g.limited_by_window
                         else f"cause {_commit(onset['commit'])} {_short(onset['at'])} ({_gap(onset['gap_s'])} before): "
                              f"{onset['description']}"
                         if onset else "no change in the lists explains the onset")
                first = "first error in the window" if g.limited_by_window else "first error"
                rec = d["recovery"]
                recovered = (f"recovered {_short(rec['at'])} by {_commit(rec['commit']) or 'no known change'}"
                             + (f": {rec['description']}" if rec["commit"] else "")
                             if rec else f"unresolved in the window (last error {_short(d['last_error'])})")
                lines.append(f"- {g.group}: {first} {_short(d['first_error'])}, {cause}; {recovered}.")
        if self.detection.first_act_day and self.detection.limited_by_window:
            lines.append(f"Detected: checked only days from {self.detection.limited_from} (the window start) on, the "
                         f"incident began earlier: the report of {self.detection.first_act_day} would have said ACT, "
                         f"an earlier one may have; widen --since.")
        elif self.detection.first_act_day:
            lines.append(f"Detected: the daily health report of {self.detection.first_act_day} would have said ACT.")
        elif self.detection.checked:
            lines.append(f"Detected: none of the {len(self.detection.checked)} daily health reports checked says ACT.")
        if self.claims:
            counts = {s: sum(c.status == s for c in self.claims) for s in STATUSES}
            lines.append("Claims: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
        if self.synthetic:
            lines.append("SYNTHETIC DEMO DATA")
        return lines

    def to_text(self) -> str:
        """The terminal view, within 100 columns (tables.TEXT_WIDTH): long lines wrap, times to the second."""
        parts = [wrap_lines([self.verdict_line, *self.summary_lines()]), ""]
        if self.has_errors:
            parts += ["Impact per " + self.by, self.impact_text(), ""]
        if self.timeline:
            parts += ["Timeline", wrap_lines([f"  {_short(e['at']):<24}  {e['kind']:<10} {e['text']}" for e in self.timeline],
                                             hang=" " * 37), ""]
        if self.claims:
            parts += ["Claims", wrap_lines([line for c in self.claims
                                            for line in (f"  [{c.status}] {c.claim.claim} (metric: {METRIC_LABELS[c.claim.metric]})",
                                                         f"      {c.evidence}")],
                                           hang="    "), ""]
        if self.open_questions:
            parts += ["Open questions the data cannot answer", wrap_lines([f"  - {q}" for q in self.open_questions]), ""]
        parts.append(wrap_lines([f"Data fingerprint: {_fingerprint(self.provenance.get('fingerprint', {}))}"]))
        return "\n".join(parts)

    def to_markdown(self) -> str:
        code = f"`` {self.signature} ``" if "`" in self.signature else f"`{self.signature}`"  # the signature as written
        parts = [f"# Incident: {code}", "", f"**{self.verdict}**: {md_text(self.why)}", ""] + [
            md_text(line) if line.startswith("- ") else f"{md_text(line)}  " for line in self.summary_lines()]
        if self.has_errors:
            parts += ["", f"## Impact per {self.by}", "", md_table(self.impact_table())]
        if self.timeline:
            parts += ["", "## Timeline", "", md_table(self.timeline_table())]
        parts += ["", "## Detection", "", md_text(self.detection_text())]
        if self.claims:
            parts += ["", "## Claims vs evidence", "", md_table(self.claims_table())]
        if self.open_questions:
            parts += ["", "## Open questions the data cannot answer", "", self.open_questions_markdown()]
        parts += ["", f"*Data fingerprint: {_fingerprint(self.provenance.get('fingerprint', {}))}*", ""]
        return "\n".join(parts)

    def detection_text(self) -> str:
        d = self.detection
        if d.first_act_day and d.limited_by_window:
            return (f"Checked only days from {d.limited_from} (the window start) on: the incident began before the "
                    f"window, so earlier days were not checked (widen --since). The first of the checked daily health "
                    f"reports to say ACT is {d.first_act_day}'s: {d.verdict_line}")
        if d.limited_by_window:
            return (f"Checked only days from {d.limited_from} (the window start) on: none of the {len(d.checked)} says ACT; "
                    f"the incident began before the window (widen --since).")
        if d.first_act_day:
            return f"The daily health report of {d.first_act_day} would have said: {d.verdict_line}"
        if d.checked:
            return f"No daily health report of the {len(d.checked)} days with the signature says ACT."
        if d.skipped:
            return "Not computed: detection was switched off (--no-detection)."
        return "No day was checked: the signature is absent from the window."

    def summary_html(self) -> str:
        colour = "#cf222e" if self.found else "#1a7f37"
        items = "".join(f"<li>{html.escape(line[2:])}</li>" for line in self.summary_lines() if line.startswith("- "))
        head = "".join(f"<p>{html.escape(line)}</p>" for line in self.summary_lines() if not line.startswith("- "))
        # the class tells the rendered report that its verdict block (metrics) says this already
        return (f'<div class="{VERDICT_REPEAT}" style="border-left:6px solid {colour};padding:.4em .8em">{head}'
                f'{"<ul>" + items + "</ul>" if items else ""}</div>')

    def _repr_html_(self) -> str:
        body = [f"<h3>Incident: <code>{html.escape(self.signature)}</code></h3>", self.summary_html()]
        if self.has_errors:
            body += [f"<h4>Impact per {html.escape(self.by)}</h4>", self.section_html("impact")]
        if self.timeline:
            body += ["<h4>Timeline</h4>", self.section_html("timeline")]
        body += ["<h4>Detection</h4>", f"<p>{html.escape(self.detection_text())}</p>"]
        if self.claims:
            body += ["<h4>Claims vs evidence</h4>", self.section_html("claims")]
        if self.open_questions:
            body += ["<h4>Open questions</h4><ul>" + "".join(f"<li>{html.escape(q)}</li>" for q in self.open_questions) + "</ul>"]
        return "".join(body)


def _short(text: str | None) -> str:
    """An ISO instant of the JSON as local time to the second with its zone (``2025-10-13 11:22:34 CEST``)."""
    return "" if not text else when(text)


def _onset_words(cell: str) -> str:
    return cell if cell == BEFORE_WINDOW else f"onset cause {cell or 'none found'}"


def _commit(commit: str | None) -> str:
    return "" if not commit else commit[:12] if all(c in "0123456789abcdef" for c in commit) else commit


def _gap(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _value(c: ClaimResult) -> str:
    if c.value is None:
        return "n/a"
    return percent(c.value) if c.claim.metric == "booking_success_rate" else f"{c.value:g}"


def _fingerprint(fp: dict) -> str:
    return ", ".join(f"{t} {v['rows']:,} rows (max id {v['max_id']})" for t, v in fp.items() if v.get("rows") is not None) or "none"


__all__ = ["IncidentReport"]
