"""Claims about an incident, read from YAML and judged against the data: verified, contradicted or not measurable.

Why: the seed sign-off's numbers ("0 % before", "~100 % after") were assertions. A claim file makes
each one testable: ``claim`` (the words), ``metric``, optional ``group`` (a value of the ``--by``
column; absent or ``all`` = every group), ``window: {from, to}`` (ISO-8601 with offsets),
``expected`` and ``tolerance``, optional ``source``. The packaged example is the seed's own claims
(``resources/claims_phase1.yaml``).

Metrics: ``booking_success_rate`` (successful / all booking attempts of
:func:`rca_toolkit.analyses.bookings.outcomes.booking_attempts`, 95 % Wilson interval from
:func:`rca_toolkit.analyses.compare.stats.rate_metric`) and ``signature_errors`` (error-log rows
carrying the incident's signature; a count, no interval). A rate claim is

* ``not measurable`` with fewer than :data:`rca_toolkit.rules.bookings.MIN_ATTEMPTS` attempts, or when the
  interval overlaps the claimed band ``expected ± tolerance`` without lying inside it;
* ``verified`` when the whole interval lies inside the band, ``contradicted`` when it lies wholly outside.

A count claim is verified when the count is within the tolerance, contradicted otherwise, and not
measurable when the window holds no attempt and no error row at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from rca_toolkit.analyses import tables
from rca_toolkit.analyses.compare.stats import rate_metric
from rca_toolkit.analyses.incident.groups import attempt_groups, error_groups, in_window
from rca_toolkit.analyses.incident.signature import SignatureQuery
from rca_toolkit.errors import ConfigError, NotFound
from rca_toolkit.rules.bookings import MIN_ATTEMPTS
from rca_toolkit.rules.timeutil import parse_instant

METRICS = {"booking_success_rate": "rate", "signature_errors": "count"}
# what each metric counts, in the words a claims table shows next to the claim
METRIC_LABELS = {"booking_success_rate": "booking success rate (successful / all booking attempts)",
                 "signature_errors": "signature errors (error rows carrying the signature only)"}
REQUIRED = ("claim", "metric", "window", "expected", "tolerance")
OPTIONAL = ("group", "source")
STATUSES = ("verified", "contradicted", "not measurable")
DEFAULT_RESOURCE = "claims_phase1.yaml"
ALL_GROUPS = "all"


def default_path() -> Path:
    """The packaged example: the Phase 1 sign-off's claims."""
    return Path(__file__).resolve().parents[2] / "resources" / DEFAULT_RESOURCE


@dataclass(frozen=True)
class Claim:
    """One validated claim."""

    claim: str
    metric: str
    start: pd.Timestamp
    end: pd.Timestamp
    window_text: tuple[str, str]
    expected: float
    tolerance: float
    group: str | None = None
    source: str | None = None


@dataclass
class ClaimResult:
    """A claim with its computed value, interval, sample size, status and the evidence in words."""

    claim: Claim
    status: str
    value: float | None
    ci: tuple[float, float] | None
    n: int
    evidence: str

    def to_dict(self) -> dict:
        return {"claim": self.claim.claim, "status": self.status, "value": self.value,
                "ci": list(self.ci) if self.ci is not None else None, "n": self.n, "evidence": self.evidence}


# --------------------------------------------------------------------------- reading
def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Read and validate a claims file (default: the packaged seed claims); one-line errors name the file, claim and key."""
    file = Path(path) if path else default_path()
    if not file.is_file():
        raise NotFound(f"claims file {file} does not exist", hint="give a YAML list of claims, e.g. the packaged claims_phase1.yaml")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"claims file {file} cannot be read: {first}", hint="write a YAML list of claims") from None
    return parse_claims(data, where=f"claims file {file}")


def parse_claims(data, *, where: str = "claims") -> list[Claim]:
    """Validate claims given as a list of mappings (or ``{"claims": [...]}``)."""
    if isinstance(data, dict) and set(data) == {"claims"}:
        data = data["claims"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{where} holds no list of claims", hint="write `- claim: ...` entries (a YAML list)")
    return [_claim(entry, where, i, len(data)) for i, entry in enumerate(data, start=1)]


def _claim(entry, where: str, index: int, total: int) -> Claim:
    at = f"{where}: claim {index} of {total}"

    def bad(key: str, what: str, hint: str) -> ConfigError:
        return ConfigError(f"{at}: key {key!r} {what}", hint=hint)

    if not isinstance(entry, dict):
        raise ConfigError(f"{at} is not a mapping", hint="write `claim:`, `metric:`, `window:`, `expected:`, `tolerance:` keys")
    for key in REQUIRED:
        if key not in entry:
            raise bad(key, "is missing", f"every claim needs {', '.join(REQUIRED)}")
    unknown = sorted(set(map(str, entry)) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise bad(unknown[0], "is not a claim key", f"known keys: {', '.join(REQUIRED + OPTIONAL)}")
    if not isinstance(entry["claim"], str) or not entry["claim"].strip():
        raise bad("claim", "must be the claim's words (text)", "e.g. claim: \"After Phase 1: ~100 %\"")
    metric = entry["metric"]
    if metric not in METRICS:
        raise bad("metric", f"is {metric!r}, not a known metric", f"use one of {', '.join(METRICS)}")
    window = entry["window"]
    if not isinstance(window, dict) or set(window) != {"from", "to"}:
        raise bad("window", "must be a mapping with exactly `from` and `to`", "e.g. window: {from: 2025-10-18T13:20:08+02:00, to: ...}")
    bounds = []
    for side in ("from", "to"):
        text = window[side].isoformat() if hasattr(window[side], "isoformat") else str(window[side])
        try:
            bounds.append(parse_instant(text, name=f"window.{side}"))
        except ConfigError as exc:
            raise bad(f"window.{side}", f"is {text!r}: {exc.message}", exc.hint or "write ISO-8601 with an offset") from None
    if bounds[1] <= bounds[0]:
        raise bad("window.to", "is not after window.from", "swap the bounds")
    numbers = {}
    for key in ("expected", "tolerance"):
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(key, f"is {value!r}, not a number", "write a rate as a share (1.0 for 100 %), a count as a whole number")
        numbers[key] = float(value)
    if numbers["tolerance"] < 0:
        raise bad("tolerance", "is negative", "give the allowed distance from `expected`, e.g. 0.05")
    if METRICS[metric] == "rate" and not 0.0 <= numbers["expected"] <= 1.0:
        raise bad("expected", f"is {entry['expected']!r}, outside 0..1 for a rate", "write 100 % as 1.0 and 0 % as 0.0")
    group = entry.get("group")
    if group is not None and not isinstance(group, (str, int)):
        raise bad("group", "must be one value of the --by column", "e.g. group: book_appointment")
    source = entry.get("source")
    return Claim(entry["claim"].strip(), metric, bounds[0], bounds[1],
                 tuple(b.isoformat() if hasattr(b, "isoformat") else str(b) for b in (window["from"], window["to"])),
                 numbers["expected"], numbers["tolerance"], None if group is None else str(group),
                 None if source is None else str(source))


# --------------------------------------------------------------------------- judging
def judge(claim: Claim, attempts: pd.DataFrame, errors: pd.DataFrame, query: SignatureQuery, by: str,
          error_times: pd.Series | None = None) -> ClaimResult:
    """Compute the claim's metric on its window (and group) and judge it (see the module docstring).

    ``error_times``: the time of every error row read, when ``errors`` holds only those carrying the signature
    (they say whether the window had any error row at all)."""
    att = in_window(attempts, "at", claim.start, claim.end)
    err = in_window(errors, "occurred_at", claim.start, claim.end)
    scoped = claim.group is not None and claim.group != ALL_GROUPS
    where = (f"{'group ' + by + '=' + claim.group if scoped else 'every ' + by} in "
             f"[{claim.window_text[0]}, {claim.window_text[1]})")
    if scoped:
        att = att[attempt_groups(att, by) == claim.group]
    if METRICS[claim.metric] == "rate":
        return _judge_rate(claim, att, where)
    carrying = err[query.matches(err["error_message"])] if len(err) else err
    if scoped and len(carrying):
        carrying = carrying[error_groups(carrying, attempts, by) == claim.group]
    count = int(len(carrying))
    source = ("error-log rows carrying the signature (rca_toolkit.sources.loaders.errors, real call ids; "
              "rca_toolkit.analyses.incident.signature)")
    seen = err if error_times is None else in_window(error_times.to_frame("occurred_at"), "occurred_at", claim.start, claim.end)
    if att.empty and seen.empty:
        return ClaimResult(claim, "not measurable", None, None, 0,
                           f"no booking attempt and no error row at all for {where}: the data says nothing about it")
    status = "verified" if abs(count - claim.expected) <= claim.tolerance else "contradicted"
    return ClaimResult(claim, status, float(count), None, count,
                       f"{count:,} {source} for {where}; claimed {claim.expected:g} ± {claim.tolerance:g}")


def _judge_rate(claim: Claim, att: pd.DataFrame, where: str) -> ClaimResult:
    n = int(len(att))
    k = int((att["outcome"].astype(str) == "success").sum()) if n else 0
    side = rate_metric(claim.metric, claim.group or ALL_GROUPS, (0, 0), (k, n)).after
    value, ci = side.value, side.ci
    lo_band, hi_band = max(0.0, claim.expected - claim.tolerance), min(1.0, claim.expected + claim.tolerance)
    measured = (f"{k:,}/{n:,} successful booking attempts" + (f" = {tables.percent(value)} (95 % Wilson {tables.percent_interval(*ci)})" if n else "")
                + f" for {where} (rca_toolkit.analyses.bookings.outcomes.booking_attempts, real call ids; "
                  f"rca_toolkit.analyses.compare.stats.rate_metric); claimed {tables.percent(claim.expected, 0)} ± "
                  f"{tables.percent(claim.tolerance, 0)}")
    if n < MIN_ATTEMPTS:
        return ClaimResult(claim, "not measurable", value, ci, n,
                           f"{measured}: fewer than {MIN_ATTEMPTS} attempts (rules.bookings.MIN_ATTEMPTS), no rate is judged")
    if ci[1] < lo_band or ci[0] > hi_band:
        return ClaimResult(claim, "contradicted", value, ci, n, f"{measured}: the whole interval lies outside the claimed band")
    if lo_band <= ci[0] and ci[1] <= hi_band:
        return ClaimResult(claim, "verified", value, ci, n, f"{measured}: the whole interval lies inside the claimed band")
    return ClaimResult(claim, "not measurable", value, ci, n,
                       f"{measured}: the interval overlaps the claimed band without lying inside it; more attempts are needed")


__all__ = ["ALL_GROUPS", "Claim", "ClaimResult", "METRICS", "METRIC_LABELS", "STATUSES", "default_path", "judge", "load_claims", "parse_claims"]
