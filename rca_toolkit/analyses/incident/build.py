"""``incident()``: the one function behind ``rca incident`` and ``notebooks/incident_report.ipynb``.

It reads once (booking attempts, error rows, deployments, migrations, a data fingerprint) over the
incident window joined with the claims' windows, then composes the parts: impact per group
(:mod:`.groups`), the change behind each onset and recovery (:mod:`.causes`), the first ACT day of
the daily health report (:mod:`.detection`), the claims (:mod:`.claims`), the timeline and the open
questions. Nothing here computes a number of its own: each comes from the module named in
``provenance["numbers"]``.
"""

from __future__ import annotations

import logging

import pandas as pd

from rca_toolkit.analyses.bookings import outcomes
from rca_toolkit.analyses.health import report as health_report
from rca_toolkit.analyses.incident import causes, claims as claims_mod, detection, groups, questions, timeline
from rca_toolkit.analyses.incident.provenance import provenance
from rca_toolkit.analyses.incident.report import IncidentReport
from rca_toolkit.analyses.incident.signature import SignatureQuery
from rca_toolkit.analyses.tables import when
from rca_toolkit.errors import ConfigError, EmptyResult
from rca_toolkit.rules.signatures import signatures
from rca_toolkit.rules.timeutil import midnight, parse_instant, source_tz
from rca_toolkit.sources import loaders, requirements
from rca_toolkit.sources.deployments import load_deployments
from rca_toolkit.sources.fingerprint import table_fingerprint

log = logging.getLogger(__name__)
TABLES_READ = ("retell_call_sessions", "retell_function_traces", "retell_error_log", "appointments", "webhook_events",
               "calls", "migrations")
MIGRATIONS_READ = requirements.Requirement(
    "migrations", (), "the change list of rca incident", optional=("id", "migration", "batch"),
    if_absent="migrations are left out of the candidate causes and the timeline")
REQUIRES = {"incident": (outcomes.REQUIRES["booking_attempts"], loaders.REQUIRES["errors"], MIGRATIONS_READ),
            "detection": health_report.REQUIRES["health"]}


def incident(db=None, signature: str = "", *, since=None, until=None, by: str = "path", claims=None,
             with_claims: bool = True, deployments_path=None, detect: bool = True,
             bound=causes.BOUND) -> IncidentReport:
    """The life of the incident that carries ``signature`` in ``[since, until)`` (ISO-8601 with offsets;
    either may be None for the whole database), grouped by ``by`` (an attempt column).

    ``claims``: a YAML claims file (None: the packaged seed claims; ``with_claims=False`` judges none).
    ``deployments_path``: the change list (None: the packaged askproai list). ``detect=False`` skips the
    daily health reports. Bad input raises an ``RcaError`` (ConfigError, NotFound, ...).
    """
    query = SignatureQuery.of(signature)
    groups.check_by(by)
    start = parse_instant(since, name="since") if since else None
    end = parse_instant(until, name="until") if until else None
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"until={until!r} is not after since={since!r}", hint="swap the two instants")
    claim_list = claims_mod.load_claims(claims) if with_claims else []
    deployments = load_deployments(deployments_path)
    engine = loaders.engine_for(db, cached=True)
    absent = requirements.check(engine, *REQUIRES["incident"], *(REQUIRES["detection"] if detect else ()))
    load_start, load_end = _load_window(start, end, claim_list)
    attempts = outcomes.booking_attempts(engine, start=load_start, end=load_end)
    seen: list = []  # the time of every error row read: where the data lies, whether a claim's window had any

    def carries(rows: pd.DataFrame):  # only the rows carrying the signature are kept (a few percent at 1M calls)
        seen.append(rows["occurred_at"])
        return query.matches(rows["error_message"])

    errors = loaders.errors(engine, start=load_start, end=load_end, keep=carries)
    error_times = pd.concat(seen, ignore_index=True)
    migrations = None if "migrations" in absent else loaders.migrations(engine)
    since_ts, until_ts, basis = _window(start, end, attempts, error_times)
    impacts, daily = groups.impacts(attempts, errors, query, by, since_ts, until_ts, since_given=start is not None)
    changes = causes.changes_frame(deployments, migrations, deployments.attrs.get("source_file"))
    failing = _failing(attempts, errors, query, since_ts, until_ts)  # judged once: 2M carried rows took 1.5 s a time
    carried = _carried_texts(*failing)
    parts = signatures(carried) if len(carried) else pd.DataFrame(columns=["signature", "column", "table"])
    column_words = sorted(set(parts["column"].dropna().astype(str)) | set(parts["table"].dropna().astype(str)))
    bound = pd.Timedelta(bound)
    onsets, recoveries = causes.attribute(impacts, changes, column_words, bound=bound)
    days = detection.days_seen(pd.concat([pd.Series([g.first_bad for g in impacts], dtype="datetime64[ns, UTC]"),
                                          failing[0]["at"], failing[1]["occurred_at"]]), source_tz())
    found = detection.first_act_day(engine, days) if detect and days else detection.Detection(None, skipped=not detect)
    if detect and days and any(g.limited_by_window for g in impacts):
        found.limited_from = days[0]  # the scan began at the window start, not at the onset
    judged = [claims_mod.judge(c, attempts, errors, query, by, error_times) for c in claim_list]
    events = timeline.events(changes, impacts, onsets, recoveries, found, since_ts, until_ts)
    attrs = loaders.base_attrs(engine)
    report = IncidentReport(query.text, since_ts, until_ts, by, impacts, onsets, recoveries, found, judged, events, daily,
                            changes, questions.open_questions(impacts, onsets, recoveries, bound, found),
                            synthetic=bool(attrs["synthetic"]))
    report.open_questions += requirements.absent_notes(absent, *REQUIRES["incident"])
    matched = sorted(set(parts["signature"].dropna().astype(str))) if len(carried) else []
    report.provenance = provenance(report, query, matched, basis, (load_start, load_end), attempts, attrs["source"],
                                   table_fingerprint(engine, TABLES_READ), deployments.attrs.get("source_file"),
                                   str(claims or claims_mod.default_path()) if with_claims else None, bound, detect)
    log.info("incident %r: %d groups, first ACT day %s, %d claims", query.text, len(impacts), found.first_act_day, len(judged))
    return report


def _load_window(start, end, claim_list) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The incident window joined with every claim's window (None = open on that side)."""
    if not claim_list:
        return start, end
    lo = min(c.start for c in claim_list)
    hi = max(c.end for c in claim_list)
    return (None if start is None else min(start, lo)), (None if end is None else max(end, hi))


def _window(start, end, attempts: pd.DataFrame, error_times: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    """The incident window; an open side becomes the source-zone midnight around the data read."""
    if start is not None and end is not None:
        return start, end, "given"
    instants = pd.concat([attempts["at"], error_times]).dropna()
    if instants.empty:  # a side given: the read was of that side only, not of the whole database
        read = "in the database" if start is None and end is None else (
            f"since {when(start)}" if end is None else f"until {when(end)}")
        raise EmptyResult(f"no booking attempt and no error row {read} to place the incident in",
                          hint="check --db, or give --since and --until" if start is None and end is None else
                               "check --since/--until and --db")
    tz = source_tz()
    first = midnight(instants.min().tz_convert(tz).date())
    last = midnight(instants.max().tz_convert(tz).date() + pd.Timedelta(days=1))
    return (start if start is not None else first), (end if end is not None else last), (
        "given" if start is not None and end is not None else "open side(s) set to the source-zone days of the data read")


def _failing(attempts: pd.DataFrame, errors: pd.DataFrame, query: SignatureQuery, since, until):
    att = groups.in_window(attempts, "at", since, until)
    err = groups.in_window(errors, "occurred_at", since, until)
    return (att[query.matches(att["error_message"])] if len(att) else att,
            err[query.matches(err["error_message"])] if len(err) else err)


def _carried_texts(att: pd.DataFrame, err: pd.DataFrame) -> pd.Series:
    """The distinct texts of the failing attempts and error rows (:func:`_failing`)."""
    texts = pd.concat([att["error_message"].astype("object"), err["error_message"].astype("object")]).dropna()
    return pd.Series(texts.unique(), dtype="object")


__all__ = ["REQUIRES", "TABLES_READ", "incident"]
