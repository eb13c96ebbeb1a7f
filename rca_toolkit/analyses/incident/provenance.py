"""Provenance of an incident report: how each number was computed (function and window), what was
read, and the fingerprint of the data it came from.

Why: "0 % before, ~100 % after" could not be checked because nothing said how it was computed or on
what data. Every field of the JSON names its function and window here, and the fingerprint (row
count and largest id per table read, :func:`rca_toolkit.sources.fingerprint.table_fingerprint`) lets a
later reader tell whether the data changed since.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from rca_toolkit import __version__
from rca_toolkit.analyses.incident import detection
from rca_toolkit.analyses.incident.causes import iso, span
from rca_toolkit.analyses.incident.report import IncidentReport
from rca_toolkit.analyses.incident.signature import SignatureQuery


def provenance(report: IncidentReport, query: SignatureQuery, matched: list[str], basis: str, load_window,
               attempts: pd.DataFrame, source: str, fingerprint: dict, deployments_file, claims_file, bound,
               detect: bool) -> dict:
    """The ``provenance`` mapping of the JSON (pure: everything read is passed in)."""
    window = f"[{iso(report.since)}, {iso(report.until)})"
    attempts_fn = "rca_toolkit.analyses.bookings.outcomes.booking_attempts (real call ids)"
    errors_fn = "rca_toolkit.sources.loaders.errors (real call ids)"
    match_fn = "rca_toolkit.analyses.incident.signature.SignatureQuery.matches"
    return {
        "function": "rca_toolkit.analyses.incident.build.incident",
        "source": source,
        "synthetic": report.synthetic,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "toolkit_version": __version__,
        "window": {"since": iso(report.since), "until": iso(report.until), "basis": basis},
        "loaded": {"since": iso(load_window[0]), "until": iso(load_window[1]),
                   "note": "the incident window joined with the claims' windows (None = open)"},
        "by": report.by,
        "signature": {"query": query.text, "normalised": query.normalised, "matched": matched, "rule": match_fn,
                      "pasted_log_line": query.pasted},
        "numbers": {
            "errors": f"retell_error_log rows carrying the signature ({errors_fn}; {match_fn}), grouped by {report.by} "
                      f"through their attempt (function_trace_id) else their own column; window {window}",
            "first_error": f"earliest occurred_at of those rows per group; window {window}",
            "last_error": f"latest occurred_at of those rows per group; window {window}",
            "failed_attempts": f"booking attempts whose error text carries the signature ({attempts_fn}; {match_fn}); "
                               f"attempt started_at in {window}",
            "orphaned": f"those attempts with outcome 'orphaned' (Cal.com booked, no local appointment; {attempts_fn}); {window}",
            "rescued": f"those attempts with rescued_by_webhook (the Cal.com webhook created the row; {attempts_fn}); {window}",
            "onset_cause": f"rca_toolkit.analyses.incident.causes.onset_cause: changes in (last successful attempt, first "
                           f"failure], bound {span(bound)}; deployments from {deployments_file}, migrations from the "
                           f"migrations table; none for a group failing from a given window start (limited_by_window)",
            "recovery": "rca_toolkit.analyses.incident.causes.recovery_cause: first successful attempt after the last "
                        "failure (the later of the last failing attempt and the last error row); changes in "
                        "(that last failure, that success]",
            "first_act_day": (detection.FUNCTION + " per source-zone day with the signature, until the first ACT"
                              if detect else "not computed (detect=False)"),
            "claims": ("rca_toolkit.analyses.incident.claims.judge (rates: "
                       "rca_toolkit.analyses.compare.stats.rate_metric, Wilson 95 %), each claim on its own window"),
            "timeline": "rca_toolkit.analyses.incident.timeline.events",
        },
        "groups": {g.group: {"attempts": g.attempts, "first_bad": iso(g.first_bad), "last_bad": iso(g.last_bad),
                             "last_clean": iso(g.last_clean), "recovery_from": iso(g.recovery_from),
                             "limited_by_window": g.limited_by_window, "code_paths": g.code_paths,
                             "onset": attribution(report.onsets.get(g.group)),
                             "recovery": attribution(report.recoveries.get(g.group))} for g in report.groups},
        "detected": report.detection.to_dict(),
        "claims_file": claims_file,
        "deployments_file": deployments_file,
        "excluded_test_attempts": int(attempts.attrs.get("excluded_test_attempts", 0) or 0),
        "fingerprint": fingerprint,
        "open_questions": report.open_questions,
    }


def attribution(a) -> dict | None:
    """An :class:`~rca_toolkit.analyses.incident.causes.Attribution` with its runners-up, for the JSON."""
    if a is None:
        return None
    return {"commit": a.commit, "at": iso(a.at), "kind": a.kind, "gap_s": a.gap_s, "relevant": a.relevant,
            "inside_interval": a.inside, "alternatives": a.alternatives}


__all__ = ["attribution", "provenance"]
