"""Function families (data-contract P3): ``check_availability_v17`` and its aliases are one function.

Why: the agent calls the same server function under versioned names and aliases; matching exact
names produced the false "missing_check_availability 100 %". :func:`function_family` folds a
name in Python; :func:`family_in_sql` is its SQL twin, which selects the traces of some families
by the stored names that fold into them (``tests/rules/test_rules_functions.py`` runs both on
the same rows).

Two-step bookings (``start_booking`` validates, ``confirm_booking`` books): :func:`booking_steps` decides from
each response, or per agent version from the ``booking_steps`` setting, which trace is an attempt; its SQL
twin :func:`validation_steps_in_sql` names the traces whose response must be read for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from rca_toolkit.distinct import per_distinct, per_object

VERSION_SUFFIX = re.compile(r"_v\d+$")

# Aliases the agent used for the same server-side function (data-contract P3). ``start_booking`` and
# ``confirm_booking`` are the two steps of the same booking (see "two-step bookings" below).
FUNCTION_ALIASES = {
    "start_booking": "book_appointment",
    "confirm_booking": "book_appointment",
    "get_current_context": "initialize_call",
    "collect_appointment_data": "collect_appointment",
}

BOOKING_FAMILIES = ("collect_appointment", "book_appointment")


def base_name(name: str | None) -> str | None:
    """The stored name without spaces and version suffix, aliases *not* folded (``start_booking_v3`` -> ``start_booking``)."""
    if name is None or (isinstance(name, float) and name != name) or name is pd.NA:
        return None
    return VERSION_SUFFIX.sub("", str(name).strip())


def function_family(name: str | None) -> str | None:
    """``check_availability_v17`` -> ``check_availability``; aliases folded; None stays None."""
    base = base_name(name)
    return None if base is None else FUNCTION_ALIASES.get(base, base)


def family_series(names: pd.Series) -> pd.Series:
    """Vectorised :func:`function_family` returning a categorical series (once per distinct name;
    a categorical's codes are mapped without a string per row)."""
    if not isinstance(names.dtype, pd.CategoricalDtype):
        return pd.Series(per_distinct(names, function_family), index=names.index, dtype="string").astype("category")
    names = names.cat.remove_unused_categories()
    families = [function_family(name) for name in names.cat.categories]
    categories = sorted({f for f in families if f is not None})
    lookup = np.array([categories.index(f) if f is not None else -1 for f in families] + [-1])  # code -1: missing
    codes = lookup[names.cat.codes.to_numpy()]
    return pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(categories, dtype="string"))),
                     index=names.index)


def wanted_families(families: str | Iterable[str]) -> set[str]:
    """One family name or several, as a set."""
    return {families} if isinstance(families, str) else set(families)


def names_of_families(stored: Iterable, families: str | Iterable[str]) -> list[str]:
    """The stored function names (sorted, missing ones skipped) that fold into ``families``."""
    wanted = wanted_families(families)
    return sorted(n for n in (str(s) for s in stored if s is not None and not pd.isna(s)) if function_family(n) in wanted)


def family_in_sql(col: str, stored: Iterable, families: str | Iterable[str], params: dict) -> list[str]:
    """SQL twin of ``family_series(col).isin(families)``: ``[col IN (:fam0, …)]``, names bound into ``params``.

    ``stored`` are the function names the table holds (``SELECT DISTINCT function_name``): they
    are folded here in Python, so the query compares plain names and MariaDB range-scans the
    ``(function_name, started_at)`` index per name; ``= x OR LIKE 'x_v%'`` could not, and read
    every trace (2.5M rows instead of 15k at 1M calls, benchmarks/FINDINGS.md). No family at all
    gives no condition; families without a stored name give ``1 = 0``.
    """
    if not families:
        return []
    matching = names_of_families(stored, families)
    if not matching:
        return ["1 = 0"]
    for i, name in enumerate(matching):
        params[f"fam{i}"] = name
    return [f"{col} IN ({', '.join(f':fam{i}' for i in range(len(matching)))})"]


# --------------------------------------------------------------------------- two-step bookings
# Agents that book in two steps call ``start_booking``, which only validates the data and answers so
# (``{"success": true, "data": {"status": "validating", "next_action": "confirm_booking"}}``), and then
# ``confirm_booking``, which makes the booking. Which function makes the booking is decided per trace:
# from its response (a ``next_action`` naming a booking function: a validation step), or per agent version
# by the ``booking_steps`` setting (rca.yaml), which overrides the response:
#   auto             the response decides (the default);
#   confirm_booking  the agent books in two steps: a successful start_booking only validated;
#   start_booking    the agent books in one step: start_booking makes the booking, whatever next step it names.
# Either way a start_booking that answers ``"success": false`` (HTTP 200, data refused) is a failed attempt.
VALIDATION_STEPS = ("start_booking",)  # stored base names that may only validate (two-step agents)
NEXT_ACTION = "next_action"  # the response key a validation step names the booking function with
# What each booking-family trace is (booking_steps): an attempt on its own ("booking": its status decides),
# a validation the agent's data failed ("rejected": a failed attempt), a validation a later booking trace of
# its call completes ("validated": no attempt of its own), a validation nothing followed ("unconfirmed": a
# failed attempt, the booking was never made).
FAILED_STEPS = ("rejected", "unconfirmed")


def next_action(response) -> str | None:
    """The booking function a response names as the next step (``next_action`` at the top level or under
    ``data``), else None: a response naming ``end_call`` or ``ask_name`` is no validation step."""
    holders = (response, response.get("data")) if isinstance(response, dict) else ()
    for holder in holders:
        value = holder.get(NEXT_ACTION) if isinstance(holder, dict) else None
        if isinstance(value, str) and function_family(value) in BOOKING_FAMILIES:
            return value.strip()
    return None


def response_refused(response) -> bool:
    """The response says ``"success": false`` (an HTTP 200 answer that refused the request)."""
    return isinstance(response, dict) and response.get("success") is False


def response_error(response) -> str | None:
    """The error text a refusing response gives (``error``, else ``message``)."""
    if not isinstance(response, dict):
        return None
    for key in ("error", "message"):
        if isinstance(response.get(key), str) and response[key].strip():
            return response[key].strip()
    return None


def is_validation_step(names: pd.Series) -> pd.Series:
    """Whether each stored name is one of :data:`VALIDATION_STEPS` (versions and spaces ignored, aliases not folded)."""
    return pd.Series(per_distinct(names, lambda n: base_name(n) in VALIDATION_STEPS, missing=False),
                     index=names.index, dtype=bool)


def validation_steps_in_sql(col: str, stored: Iterable, params: dict) -> str:
    """SQL twin of :func:`is_validation_step`: ``col IN (:vs0, …)`` over the stored names it holds true for
    (bound into ``params``), ``1 = 0`` when none is stored."""
    names = sorted({str(s) for s in stored if s is not None and not pd.isna(s) and base_name(s) in VALIDATION_STEPS})
    if not names:
        return "1 = 0"
    params.update({f"vs{i}": name for i, name in enumerate(names)})
    return f"{col} IN ({', '.join(f':vs{i}' for i in range(len(names)))})"


def booking_steps_setting() -> dict:
    """The ``booking_steps`` setting (rca.yaml): agent version key -> one of ``config.BOOKING_STEP_CHOICES``."""
    from rca_toolkit.config import load_settings

    return dict(load_settings().booking_steps)


def _version_key(agent_version) -> str | None:
    """``25``, ``25.0`` and ``"25"`` are version 25; text that is no number (SQLite keeps what it is given)
    matches no version key, so the agent-only key or ``auto`` applies."""
    if agent_version is None or pd.isna(agent_version):
        return None
    try:
        return str(int(float(agent_version)))
    except (TypeError, ValueError, OverflowError):
        return None


def booking_function_of(agent_id, agent_version, setting: dict) -> str:
    """The setting for one agent version: ``"<agent_id>:<version>"``, then ``"<agent_id>"``, then ``"<version>"``
    (any agent), else ``auto``."""
    if not setting:
        return "auto"
    agent = None if agent_id is None or pd.isna(agent_id) else str(agent_id).strip()
    version = _version_key(agent_version)
    for key in (f"{agent}:{version}" if agent and version else None, agent, version):
        if key is not None and key in setting:
            return setting[key]
    return "auto"


def _modes(frame: pd.DataFrame, setting: dict) -> np.ndarray:
    if not setting or "agent_version" not in frame and "agent_id" not in frame:
        return np.full(len(frame), "auto", dtype=object)
    ids = frame["agent_id"].astype("object") if "agent_id" in frame else pd.Series(None, index=frame.index, dtype="object")
    versions = frame["agent_version"].astype("object") if "agent_version" in frame else pd.Series(None, index=frame.index,
                                                                                               dtype="object")
    pairs = pd.Series(list(zip(ids.where(ids.notna(), None), versions.where(versions.notna(), None))), index=frame.index,
                      dtype="object")
    return per_distinct(pairs, lambda pair: booking_function_of(pair[0], pair[1], setting))


def booking_steps(frame: pd.DataFrame, ok, setting: dict | None = None) -> pd.DataFrame:
    """Each booking-family trace's ``step`` (``booking``, ``rejected``, ``validated``, ``unconfirmed``) and, for
    the failed ones, the ``step_error`` that explains them.

    ``frame``: ``call_id``, ``started_at``, ``trace_id``, ``function_name``, ``output_result`` (decoded) and,
    for a per-version ``setting``, ``agent_id`` / ``agent_version``; ``ok``: the trace status says success.
    A validation is completed by whatever booking trace of its call comes next (a confirmation, a new
    validation, a one-step booking): only the last validation of a call with nothing after it is
    ``unconfirmed``; the caller checks beyond the frame's end (a call may go on after the window).
    ``setting`` None reads :func:`booking_steps_setting`.
    """
    setting = booking_steps_setting() if setting is None else setting
    steps = np.full(len(frame), "booking", dtype=object)
    errors = np.full(len(frame), None, dtype=object)
    out = pd.DataFrame({"step": steps, "step_error": errors}, index=frame.index)
    if not len(frame):
        return out
    ok = np.asarray(ok, dtype=bool)
    responses = frame["output_result"]
    names = frame["function_name"]
    candidate = is_validation_step(names).to_numpy()
    follow = per_object(responses, next_action)
    refused = per_object(responses, response_refused).astype(bool)
    mode = _modes(frame, setting)
    says = np.not_equal(follow, None)  # elementwise, in C
    validated = ok & ~refused & ((candidate & (mode == "confirm_booking")) | (says & (mode != "start_booking")))
    rejected = candidate & ok & refused
    steps[rejected] = "rejected"
    steps[validated] = "validated"
    if validated.any():
        order = frame.assign(_row=np.arange(len(frame))).sort_values(["started_at", "trace_id", "_row"], kind="stable")
        last = np.zeros(len(frame), dtype=bool)
        last[order.loc[~order["call_id"].astype("object").duplicated(keep="last"), "_row"].to_numpy()] = True
        steps[validated & last] = "unconfirmed"
    for i in np.flatnonzero(rejected):
        errors[i] = response_error(responses.iloc[i]) or f"{base_name(names.iloc[i])} refused the booking data"
    for i in np.flatnonzero(steps == "unconfirmed"):
        then = follow[i] or (mode[i] if mode[i] == "confirm_booking" else "the booking step")
        errors[i] = f"{base_name(names.iloc[i])} only validated the booking; {then} never followed"
    out["step"], out["step_error"] = steps, errors
    return out
