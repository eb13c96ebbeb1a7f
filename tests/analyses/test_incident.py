"""The life of an incident (issue 23) on the demo world, checked against its ground truth JSON.

Every expected number is derived from the truth the demo builder computed from its own rows
(``incidents.A_phantom_columns``, ``booking_attempts``, ``attempts``, ``deployments``): nothing
is copied from a run of the analysis.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from rca_toolkit.analyses.bookings.outcomes import CODE_PATHS
from rca_toolkit.analyses.incident import causes, claims as claims_mod
from rca_toolkit.analyses.incident.build import incident
from rca_toolkit.analyses.incident.signature import SignatureQuery
from rca_toolkit.rules.signatures import signature_of
from rca_toolkit.errors import ConfigError, EmptyResult, NotFound
from rca_toolkit.runs import plots
from rca_toolkit.sources.fingerprint import table_fingerprint
from rca_toolkit.sources.store import engine as store_engine

PATHS = ("collect_appointment", "book_appointment")
SIGNATURE = "Unknown column 'created_by'"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def phantom(truth: dict) -> dict:
    return truth["incidents"]["A_phantom_columns"]


def frame_of(truth: dict, path: str) -> dict:
    """The truth's 1054 entry of the calling frame a path reaches."""
    return phantom(truth)["frames"][CODE_PATHS[path]]


def window_name(truth: dict, path: str) -> str:
    """The booking_attempts window whose bounds are the path's phantom window (collect: to the partial fix)."""
    window = frame_of(truth, path)["window"]
    names = [n for n, w in truth["booking_attempts"][path].items()
             if ts(w["start"]) == ts(window["start"]) and ts(w["end"]) == ts(window["end"])]
    assert len(names) == 1
    return names[0]


def commit_at(truth: dict, instant: str) -> str:
    """The deployment of the truth's list that happened at ``instant``."""
    found = [d["commit"] for d in truth["deployments"] if ts(d["deployed_at"]) == ts(instant)]
    assert len(found) == 1
    return found[0]


def phantom_attempts(truth: dict, path: str) -> int:
    a = truth["attempts"]
    return sum(1 for p, kind, real in zip(a["path"], a["error_kind"], a["is_real"]) if p == path and kind == "phantom" and real)


@pytest.fixture(scope="module")
def result(demo_sqlite):
    url, _ = demo_sqlite
    return incident(url, SIGNATURE)


@pytest.fixture(scope="module")
def groups(result):
    return {g["group"]: g for g in result.to_dict()["groups"]}


# --------------------------------------------------------------------------- the issue's "done when"
@pytest.mark.parametrize("path", PATHS)
def test_counts_per_path_equal_the_ground_truth(groups, demo_sqlite, path):
    _, truth = demo_sqlite
    g, frame = groups[path], frame_of(truth, path)
    window = truth["booking_attempts"][path][window_name(truth, path)]
    assert g["errors"] == frame["errors_real_ids"]
    assert g["failed_attempts"] == phantom_attempts(truth, path)
    assert (g["orphaned"], g["rescued"]) == (window["orphaned"], window["rescued"])
    # the truth prints milliseconds (truncated): ours is the stored instant, within the same millisecond
    for ours, theirs in ((g["first_error"], frame["first"]), (g["last_error"], frame["last"])):
        assert pd.Timedelta(0) <= ts(ours) - ts(theirs) < pd.Timedelta(milliseconds=1)
        assert ours.endswith(("+02:00", "+01:00")), "ISO with the Berlin offset"


def test_only_the_two_phantom_paths_are_groups(groups):
    assert set(groups) == set(PATHS)


@pytest.mark.parametrize("path", PATHS)
def test_onset_cause_is_the_phantom_column_deploy(groups, demo_sqlite, path):
    _, truth = demo_sqlite
    onset = groups[path]["onset_cause"]
    start = frame_of(truth, path)["window"]["start"]
    assert onset["commit"] == commit_at(truth, start)
    assert ts(onset["at"]) == ts(start)
    assert onset["gap_s"] == pytest.approx((ts(groups[path]["first_error"]) - ts(start)).total_seconds(), abs=60)
    assert onset["gap_s"] > 0


@pytest.mark.parametrize("path", PATHS)
def test_recovery_is_the_partial_fix_for_collect_and_the_full_fix_for_book(groups, demo_sqlite, path):
    _, truth = demo_sqlite
    end = frame_of(truth, path)["window"]["end"]  # collect: the partial fix, book: the full fix
    recovery = groups[path]["recovery"]
    assert recovery["commit"] == commit_at(truth, end)
    assert ts(recovery["at"]) > ts(end) > ts(groups[path]["last_error"])
    first_after = min(ts(at) for at, p, o, real in zip(truth["attempts"]["at_utc"], truth["attempts"]["path"],
                                                       truth["attempts"]["outcome"], truth["attempts"]["is_real"])
                      if p == path and o == "success" and real and ts(at) > ts(groups[path]["last_error"]))
    assert abs(ts(recovery["at"]) - first_after) < pd.Timedelta(milliseconds=1)


def test_the_two_fixes_are_different_changes(groups):
    assert groups["collect_appointment"]["recovery"]["commit"] != groups["book_appointment"]["recovery"]["commit"]


def test_first_act_day_is_the_day_failures_began_or_the_next(result, demo_sqlite):
    _, truth = demo_sqlite
    began = ts(phantom(truth)["frames"][CODE_PATHS["collect_appointment"]]["window"]["start"]).tz_convert("Europe/Berlin").date()
    assert result.detection.first_act_day in {began.isoformat(), (began + timedelta(days=1)).isoformat()}
    assert result.detection.checked[-1] == {"day": result.detection.first_act_day, "verdict": "ACT"}
    assert result.detection.checked[0]["day"] == began.isoformat()


def test_seed_claims_before_verified_after_contradicted(result):
    by_expected = {(c.claim.metric, c.claim.expected): c for c in result.claims}
    before = by_expected[("booking_success_rate", 0.0)]
    after = by_expected[("booking_success_rate", 1.0)]
    assert before.status == "verified" and before.value == 0.0 and before.n >= 10
    assert after.status == "contradicted" and after.ci[1] < 1.0 - after.claim.tolerance
    assert by_expected[("signature_errors", 0.0)].status == "contradicted"


def test_after_claim_value_is_the_demo_success_share(result, demo_sqlite):
    _, truth = demo_sqlite
    after = next(c for c in result.claims if c.claim.expected == 1.0)
    w = {p: truth["booking_attempts"][p]["after_partial_fix_5d"] for p in PATHS}
    assert ts(w["book_appointment"]["start"]) == after.claim.start and ts(w["book_appointment"]["end"]) == after.claim.end
    assert after.n == sum(x["attempts"] for x in w.values())
    assert after.value == pytest.approx(sum(x["success"] for x in w.values()) / after.n)


# --------------------------------------------------------------------------- the JSON shape and provenance
def test_json_shape_is_exactly_the_issues(result):
    payload = result.to_dict()
    assert list(payload) == ["signature", "window", "groups", "detected", "claims", "timeline", "provenance"]
    assert set(payload["window"]) == {"since", "until"} and set(payload["detected"]) == {"first_act_day"}
    for g in payload["groups"]:
        assert list(g) == ["group", "errors", "first_error", "last_error", "failed_attempts", "orphaned", "rescued",
                           "onset_cause", "recovery"]
        assert list(g["onset_cause"]) == ["commit", "at", "gap_s", "description"]
        assert list(g["recovery"]) == ["at", "commit", "description"]
    for c in payload["claims"]:
        assert list(c) == ["claim", "status", "value", "ci", "n", "evidence"]
        assert c["status"] in claims_mod.STATUSES
    assert all(list(e) == ["at", "kind", "text"] for e in payload["timeline"])
    instants = [ts(e["at"]) for e in payload["timeline"]]
    assert instants == sorted(instants)
    assert result.to_json()  # serialisable


def test_every_number_names_its_function_and_window(result, demo_sqlite):
    _, truth = demo_sqlite
    numbers = result.provenance["numbers"]
    fields = {"errors", "first_error", "last_error", "failed_attempts", "orphaned", "rescued", "onset_cause", "recovery",
              "first_act_day", "claims"}
    assert fields <= set(numbers)
    window = f"[{result.to_dict()['window']['since']}, {result.to_dict()['window']['until']})"
    for key in ("errors", "first_error", "last_error", "failed_attempts", "orphaned", "rescued"):
        assert window in numbers[key] and ("rca_toolkit." in numbers[key] or "occurred_at" in numbers[key])
    assert all(c.claim.window_text[0] in c.evidence and "rca_toolkit." in c.evidence for c in result.claims)
    fingerprint = result.provenance["fingerprint"]
    for table in ("retell_error_log", "retell_function_traces", "appointments", "webhook_events", "calls"):
        assert fingerprint[table]["rows"] == truth["row_counts"][table]
    assert fingerprint["retell_error_log"]["max_id"] >= truth["row_counts"]["retell_error_log"]
    assert result.provenance["synthetic"] is True and "SYNTHETIC DEMO DATA" in result.to_text()


def test_fingerprint_lists_a_missing_table(demo_sqlite):
    url, truth = demo_sqlite
    fp = table_fingerprint(url, ["migrations", "no_such_table"])
    assert fp["migrations"]["rows"] == truth["row_counts"]["migrations"]
    assert fp["no_such_table"] == {"rows": None, "max_id": None, "missing": True}


def test_timeline_names_onsets_fixes_detection_and_recoveries(result, groups):
    kinds = [e["kind"] for e in result.timeline]
    assert {"deploy", "onset", "detected", "fix", "last_error", "recovery"} <= set(kinds)
    fixes = [e for e in result.timeline if e["kind"] == "fix"]
    assert {g["recovery"]["commit"][:12] for g in groups.values()} == {e["text"].split("recovered by ")[1][:12] for e in fixes}


def test_renderers_show_the_same_numbers(result, groups):
    md, text, page = result.to_markdown(), result.to_text(), result._repr_html_()
    for g in groups.values():
        for rendered in (md, text, page):
            assert g["group"] in rendered and str(g["errors"]) in rendered
    assert "## Claims vs evidence" in md and "contradicted" in page and "Open questions" in text
    table = result.impact_table()
    assert list(table["path"]) == [g for g in groups] and list(table["errors"]) == [groups[g]["errors"] for g in groups]


def test_plot_marks_deploys_onsets_and_recoveries(result):
    fig = plots.plot_incident(result)
    ax = fig.axes[0]
    gids = {a.get_gid() for a in ax.get_children() if a.get_gid()}
    for g in PATHS:
        assert f"onset:{g}" in gids and f"recovery:{g}" in gids and f"errors:{g}" in gids
    assert any(gid.startswith("deploy:fb310a80") for gid in gids)
    heights = {}
    for bar in ax.patches:
        if (bar.get_gid() or "").startswith("errors:"):
            heights[bar.get_gid()] = heights.get(bar.get_gid(), 0) + bar.get_height()
    assert heights == {f"errors:{g.group}": g.errors for g in result.groups}


# --------------------------------------------------------------------------- other inputs
def test_full_message_and_normalised_signature_select_the_same_rows(result, demo_sqlite):
    url, truth = demo_sqlite
    expected = {g.group: (g.errors, g.failed_attempts) for g in result.groups}
    # and the whole Laravel log line, as pasted from the log (before, its head matched no stored error: CLEAR-looking)
    line = f"[2025-10-13 11:22:35] production.ERROR: {phantom(truth)['error_message']} {{\"exception\":\"[object] (x)\"}}"
    for text in (phantom(truth)["error_message"], result.provenance["signature"]["matched"][0], line):
        other = incident(url, text, with_claims=False, detect=False)
        assert {g.group: (g.errors, g.failed_attempts) for g in other.groups} == expected
    assert other.provenance["signature"]["pasted_log_line"] == line and not other.signature.startswith("[2025")


def test_by_code_path_groups_by_the_truths_frames(demo_sqlite):
    url, truth = demo_sqlite
    other = incident(url, SIGNATURE, by="code_path", with_claims=False, detect=False)
    got = {g.group: g.errors for g in other.groups}
    assert got == {frame: v["errors_real_ids"] for frame, v in phantom(truth)["frames"].items()}


def test_window_before_the_full_fix_leaves_book_unresolved(demo_sqlite):
    url, truth = demo_sqlite
    collect = frame_of(truth, "collect_appointment")["window"]
    until = (ts(collect["end"]) + pd.Timedelta(days=1)).tz_convert("Europe/Berlin").isoformat()
    other = incident(url, SIGNATURE, since=collect["start"], until=until, with_claims=False, detect=False)
    by = {g["group"]: g for g in other.to_dict()["groups"]}
    assert by["book_appointment"]["recovery"] is None
    assert by["collect_appointment"]["errors"] == frame_of(truth, "collect_appointment")["errors_real_ids"]
    assert 0 < by["book_appointment"]["errors"] < frame_of(truth, "book_appointment")["errors_real_ids"]
    assert ts(other.to_dict()["window"]["since"]) == ts(collect["start"])
    assert any("book_appointment: no successful attempt after the last failure" in q for q in other.open_questions)


def test_a_signature_absent_from_the_window_is_said_so(demo_sqlite):
    url, _ = demo_sqlite
    other = incident(url, "Unknown column 'no_such_column_anywhere'", with_claims=False)
    assert other.groups == [] and not other.found and other.detection.first_act_day is None
    assert other.to_text().startswith("CLEAR: the signature is absent from the window and no claim is contradicted\n"
                                      "No error row and no failed booking attempt carries the signature")
    assert "No group: the signature is absent from the window." in other.section_html("impact")
    assert "Impact per" not in other.to_markdown()
    metrics = other.metrics()  # what the report's verdict block and the index show
    assert (metrics["verdict"], metrics["verdict_line"]) == (
        "CLEAR", "CLEAR: the signature is absent from the window and no claim is contradicted")
    assert metrics["key_numbers"] == {"errors": 0, "failed attempts": 0, "orphaned": 0, "rescued": 0}


def test_the_verdict_is_what_rca_incident_exits_on_and_its_reasons_are_the_summary(result):
    metrics = result.metrics()
    assert result.found and metrics["verdict"] == "FOUND"
    assert metrics["verdict_line"] == "FOUND: the signature occurs in the window; 2 of 3 claims contradicted"
    assert [r["text"] for r in metrics["reasons"]] == [
        x.removeprefix("- ") for x in result.summary_lines() if not x.startswith("SYNTHETIC")]
    assert result.to_text().startswith(metrics["verdict_line"] + "\nSignature ")  # the terminal's first line
    assert "\n\n**FOUND**: the signature occurs in the window; 2 of 3 claims contradicted\n" in result.to_markdown()
    impact = result.impact_table()  # the index's key numbers: the impact table's totals
    assert metrics["key_numbers"] == {"errors": impact["errors"].sum(), "failed attempts": impact["failed attempts"].sum(),
                                      "orphaned": impact["orphaned (lost)"].sum(), "rescued": impact["rescued by webhook"].sum()}
    assert metrics["key_numbers"]["errors"] > 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"signature": "  "}, "--signature is empty"),
    ({"by": "nope"}, "--by 'nope'"),
    ({"since": "2025-10-13"}, "has no time zone"),
    ({"since": "2025-10-14T00:00:00+02:00", "until": "2025-10-13T00:00:00+02:00"}, "is not after"),
])
def test_bad_input_is_one_config_error(demo_sqlite, kwargs, fragment):
    url, _ = demo_sqlite
    with pytest.raises(ConfigError, match=fragment):
        incident(url, **{"signature": SIGNATURE, **kwargs})


@pytest.mark.parametrize("side, fragment", [
    ({"since": "2030-01-01T00:00:00Z"}, "no booking attempt and no error row since 2030-01-01 01:00:00 CET to place the incident in"),
    ({"until": "2020-01-01T00:00:00Z"}, "no booking attempt and no error row until 2020-01-01 01:00:00 CET to place"),
])
def test_an_open_window_without_data_names_the_side_read_not_the_database(demo_sqlite, side, fragment):
    """It said "the database holds no booking attempt and no error row" for a --since past the data: the database does."""
    with pytest.raises(EmptyResult, match=re.escape(fragment)):
        incident(demo_sqlite[0], SIGNATURE, with_claims=False, detect=False, **side)


# --------------------------------------------------------------------------- claims
def write(tmp_path, text: str):
    path = tmp_path / "claims.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """- claim: "first"
  metric: booking_success_rate
  window: {from: "2025-10-13T11:16:08+02:00", to: "2025-10-18T13:20:08+02:00"}
  expected: 0.0
  tolerance: 0.05
"""


@pytest.mark.parametrize("second, key", [
    ("- claim: x\n  metric: booking_success_rate\n  window: {from: 2025-10-13T00:00:00+02:00, to: 2025-10-14T00:00:00+02:00}\n"
     "  expected: 0.5\n", "'tolerance'"),
    ("- claim: x\n  metric: success\n  window: {from: 2025-10-13T00:00:00+02:00, to: 2025-10-14T00:00:00+02:00}\n"
     "  expected: 0.5\n  tolerance: 0\n", "'metric'"),
    ("- claim: x\n  metric: booking_success_rate\n  window: {from: '2025-10-13 00:00:00', to: 2025-10-14T00:00:00+02:00}\n"
     "  expected: 0.5\n  tolerance: 0\n", "'window.from'"),
    ("- claim: x\n  metric: booking_success_rate\n  window: {from: 2025-10-13T00:00:00+02:00, to: 2025-10-14T00:00:00+02:00}\n"
     "  expected: 100\n  tolerance: 0\n", "'expected'"),
    ("- claim: x\n  metric: booking_success_rate\n  window: {from: 2025-10-13T00:00:00+02:00, to: 2025-10-12T00:00:00+02:00}\n"
     "  expected: 0.5\n  tolerance: 0\n", "'window.to'"),
    ("- claim: x\n  metric: booking_success_rate\n  window: {from: 2025-10-13T00:00:00+02:00, to: 2025-10-14T00:00:00+02:00}\n"
     "  expected: 0.5\n  tolerance: 0\n  groupp: book_appointment\n", "'groupp'"),
    ("- claim: x\n  metric: booking_success_rate\n  window: [1, 2]\n  expected: 0.5\n  tolerance: 0\n", "'window'"),
])
def test_a_bad_claims_file_is_one_line_naming_file_claim_and_key(tmp_path, second, key):
    path = write(tmp_path, GOOD + second)
    with pytest.raises(ConfigError) as err:
        claims_mod.load_claims(path)
    message = str(err.value)
    assert str(path) in message and "claim 2 of 2" in message and key in message and "\n" not in message


@pytest.mark.parametrize("text, fragment", [("claim: [", "cannot be read"), ("{}", "holds no list"), ("- 3", "is not a mapping")])
def test_unreadable_or_shapeless_claims_files(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        claims_mod.load_claims(write(tmp_path, text))
    with pytest.raises(NotFound):
        claims_mod.load_claims(tmp_path / "absent.yaml")


def test_the_packaged_claims_are_the_seeds(result):
    loaded = claims_mod.load_claims()
    assert [c.claim for c in loaded] == [c.claim.claim for c in result.claims]
    assert any("0 %" in c.claim and c.expected == 0.0 for c in loaded) and any("~100 %" in c.claim and c.expected == 1.0 for c in loaded)


def test_too_few_attempts_or_a_straddling_interval_is_not_measurable(demo_sqlite, result, tmp_path):
    url, truth = demo_sqlite
    start = ts(frame_of(truth, "book_appointment")["window"]["end"])  # the full fix
    hour = [(start + pd.Timedelta(minutes=m)).tz_convert("Europe/Berlin").isoformat() for m in (0, 60)]
    after = next(c for c in result.claims if c.claim.expected == 1.0)
    path = write(tmp_path, f"""- claim: "one hour of one path"
  metric: booking_success_rate
  group: book_appointment
  window: {{from: "{hour[0]}", to: "{hour[1]}"}}
  expected: 1.0
  tolerance: 0.05
- claim: "exactly the measured share, no room"
  metric: booking_success_rate
  window: {{from: "{after.claim.window_text[0]}", to: "{after.claim.window_text[1]}"}}
  expected: {after.value}
  tolerance: 0.01
""")
    judged = incident(url, SIGNATURE, claims=path, detect=False).claims
    few, straddle = judged
    a = truth["attempts"]
    n_hour = sum(1 for at, p, real in zip(a["at_utc"], a["path"], a["is_real"])
                 if p == "book_appointment" and real and ts(hour[0]) <= ts(at) < ts(hour[1]))
    assert few.status == "not measurable" and few.n == n_hour < 10 and "fewer than 10" in few.evidence
    assert straddle.status == "not measurable" and straddle.n == after.n and "overlaps" in straddle.evidence


def test_a_count_claim_over_a_second_of_other_errors_alone_is_verified(demo_sqlite, tmp_path):
    """The incident keeps only the error rows carrying the signature; a claim's window that holds no attempt but other
    error rows still had error rows: zero carrying rows is a count (verified), not "no error row at all"."""
    from rca_toolkit.analyses.bookings import outcomes
    from rca_toolkit.sources import loaders

    url, _ = demo_sqlite
    attempts = outcomes.booking_attempts(url)
    errors = loaders.errors(url)
    other = errors[~SignatureQuery.of(SIGNATURE).matches(errors["error_message"])]
    quiet = next(t for t in other["occurred_at"].dt.floor("s")
                 if not ((attempts["at"] >= t) & (attempts["at"] < t + pd.Timedelta(seconds=1))).any())
    window = [(quiet + pd.Timedelta(seconds=s)).tz_convert("Europe/Berlin").isoformat() for s in (0, 1)]
    path = write(tmp_path, f"""- claim: "no phantom-column error in this second"
  metric: signature_errors
  window: {{from: "{window[0]}", to: "{window[1]}"}}
  expected: 0
  tolerance: 0
""")
    judged, = incident(url, SIGNATURE, claims=path, detect=False).claims
    assert judged.status == "verified" and judged.value == 0, judged.evidence


# --------------------------------------------------------------------------- pure parts
def test_signature_query_matching():
    q = SignatureQuery.of("unknown COLUMN 'created_by'")
    messages = pd.Series(["SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in 'field list'", None,
                          "Unknown column 'price' in 'field list'", "[1054] Unknown column 'created_by' in field list"])
    assert q.matches(messages).tolist() == [True, False, False, True]
    exact = SignatureQuery.of("SQLSTATE[42S22]: 1054 Unknown column 'created_by' in field list")
    assert exact.matches(messages).tolist() == [True, False, False, True]  # same normalised signature
    assert q.matches(pd.Series([], dtype="object")).tolist() == []


MESSAGES = ["SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in 'field list'",
            "[1054] Unknown column 'created_by' in field list", "Unknown column 'price' in 'field list'",
            "SQLSTATE[23000]: Integrity constraint violation: 1062 Duplicate entry 'call_x' for key 'k'",
            "Cal.com API error: HTTP 409 - Booking slot is no longer available", "unknown column", "created_by",
            "Duplicate entry 'call_a1a1a1a1a1a1a1a1a1a1a1a1a1f' for key 'k'", "Duplicate entry 'call_0b0b0b0b0b0b0b0b0b0b0b0b0b9' "
            "for key 'k'", "Straße 'call_a1a1a1a1a1a1a1a1a1a1a1a1a1f' unbekannt", "STRASSE unbekannt", "Kelvin \u212a",
            "Duplicate entry 'Straße' for key 'k'", "Duplicate entry '\u0130' for key 'k'"]  # casefolded: 'strasse', 'i\u0307'


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["unknown COLUMN 'created_by'", "[1054] Unknown column 'created_by' in 'field list'",
                        "Duplicate entry '?' for key", "409", "field list", "price", "straße", "strasse", "k", "\u0130", "none",
                        "Duplicate entry 'call_a1a1a1a1a1a1a1a1a1a1a1a1a1f' for key 'k'"]),
       st.lists(st.lists(st.one_of(st.sampled_from(MESSAGES), st.text(max_size=40), st.none(), st.integers(0, 500)),
                         max_size=8), min_size=1, max_size=4),
       st.sampled_from(["object", "string", pd.StringDtype("pyarrow", na_value=np.nan), "arrow-chunks"]))
def test_a_query_asked_again_judges_every_text_as_the_rule_does(query, batches, dtype):
    """The rule (module docstring): the normalised signatures are equal, or the query occurs case-insensitively in
    the raw text or in its signature. Asked of several frames in turn (each text shape judged once, remembered), each answer
    is the rule's, whatever holds the texts (Python objects, pandas' text, the store's Arrow text) and whatever
    they are (letters outside ASCII, which casefold differently, call ids renumbered in Arrow). ``arrow-chunks``: the
    store's text as DuckDB streams it out of a statement without an order, in several Arrow chunks."""
    q = SignatureQuery.of(query)
    needle = q.text.casefold()

    def rule(message) -> bool:
        if message is None:
            return False
        sig = signature_of(str(message)) or ""
        return needle in str(message).casefold() or needle in sig.casefold() or (q.normalised is not None and sig == q.normalised)

    for batch in batches:
        assert q.matches(_texts(batch, dtype)).tolist() == [rule(m) for m in batch]


def _texts(batch: list, dtype) -> pd.Series:
    if dtype != "arrow-chunks":
        return pd.Series(batch, dtype=dtype)
    texts = [m if m is None or isinstance(m, str) else str(m) for m in batch]
    chunks = pa.chunked_array([pa.array(texts[:len(texts) // 2], pa.string()), pa.array(texts[len(texts) // 2:], pa.string())])
    return chunks.to_pandas(types_mapper=lambda _: store_engine.ARROW_TEXT)  # as store.engine hands texts over


def _changes(*rows):
    frame = pd.DataFrame([{"at": ts(at), "commit": c, "description": d, "kind": "deploy", "basis": "test"} for at, c, d in rows])
    return frame.sort_values("at").reset_index(drop=True)


def test_a_burst_of_changes_picks_the_one_naming_the_code_then_the_earliest():
    changes = _changes(("2025-10-18T13:20:08+02:00", "fix", "remove keys from createLocalRecord"),
                       ("2025-10-18T13:20:35+02:00", "mig", "migration added"),
                       ("2025-10-18T13:32:00+02:00", "idx", "idempotency columns"))
    words = causes.hint_words([r"App\Services\Retell\AppointmentCreationService::createLocalRecord"])
    got = causes.recovery_cause(changes, ts("2025-10-18T13:10:00+02:00"), ts("2025-10-18T13:40:00+02:00"), words)
    assert got.commit == "fix" and got.relevant and [a["commit"] for a in got.alternatives] == ["mig", "idx"]
    plain = causes.recovery_cause(changes.iloc[1:], ts("2025-10-18T13:10:00+02:00"), ts("2025-10-18T13:40:00+02:00"), words)
    assert plain.commit == "mig" and not plain.relevant  # no description names the code: the earliest
    none = causes.recovery_cause(changes, ts("2025-10-18T13:40:00+02:00"), ts("2025-10-18T14:00:00+02:00"), words)
    assert none.commit is None and "no known change" in none.description


def test_onset_outside_the_attempts_interval_is_flagged_and_bounded():
    changes = _changes(("2025-10-10T09:00:00+02:00", "old", "something"), ("2025-10-13T11:16:08+02:00", "bad", "phantom columns"))
    first_bad = ts("2025-10-13T11:22:00+02:00")
    inside = causes.onset_cause(changes, first_bad, ts("2025-10-13T10:00:00+02:00"), [])
    assert inside.commit == "bad" and inside.inside and inside.gap_s == pytest.approx(352)
    late_clean = causes.onset_cause(changes, first_bad, ts("2025-10-13T11:20:00+02:00"), [])
    assert late_clean.commit == "bad" and not late_clean.inside and "successful attempts came after it" in late_clean.description
    assert causes.onset_cause(changes.iloc[:1], first_bad, None, [], bound=pd.Timedelta(days=1)) is None
    assert causes.onset_cause(changes.iloc[:1], first_bad, None, [], bound=pd.Timedelta(days=4)).commit == "old"


def test_detection_days_are_source_zone_days():
    from rca_toolkit.analyses.incident.detection import days_seen

    instants = pd.Series([ts("2025-10-13T22:30:00Z"), ts("2025-10-13T21:59:59Z")])
    assert days_seen(instants, "Europe/Berlin") == ["2025-10-13", "2025-10-14"]
    assert date.fromisoformat(days_seen(instants, "UTC")[0]) == date(2025, 10, 13)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4 * 366 * 86400), max_size=30),
       st.sampled_from(["Europe/Berlin", "America/Havana", "Australia/Lord_Howe", "UTC"]))
def test_detection_days_are_each_instants_own_day(seconds, tz):
    """Written once per day, the days are those of each instant written as a date in the zone (DST midnights too)."""
    from rca_toolkit.analyses.incident.detection import days_seen

    instants = pd.Series([pd.Timestamp("2024-01-01T00:00:00Z") + pd.Timedelta(seconds=s) for s in seconds],
                         dtype="datetime64[ns, UTC]")
    assert days_seen(instants, tz) == sorted({t.tz_convert(tz).strftime("%Y-%m-%d") for t in instants})


# --------------------------------------------------------------------------- the notebook
@pytest.mark.slow
def test_report_notebook_runs_with_non_default_parameters(demo_sqlite, tmp_path):
    from rca_toolkit.runs.runner import run_notebook

    url, truth = demo_sqlite
    collect = frame_of(truth, "collect_appointment")["window"]
    until = (ts(collect["end"]) + pd.Timedelta(days=2)).tz_convert("Europe/Berlin").isoformat()
    run = run_notebook("notebooks/incident_report.ipynb", {"by": "code_path", "since": collect["start"], "until": until},
                       db=url, out_dir=tmp_path)
    assert run.status == "ok", run.error
    groups = {g["group"]: g for g in run.metrics["groups"]}
    assert set(groups) == set(phantom(truth)["frames"])  # grouped by the calling frame: the parameter took effect
    collect_frame = CODE_PATHS["collect_appointment"]
    assert groups[collect_frame]["errors"] == phantom(truth)["frames"][collect_frame]["errors_real_ids"]
    assert groups[CODE_PATHS["book_appointment"]]["recovery"] is None  # the window ends before the full fix
    assert ts(run.metrics["window"]["since"]) == ts(collect["start"]) and run.metrics["found"] is True
    assert sorted(p.name for p in (run.run_dir / "figures").iterdir()) == ["errors_per_day.png"]
    page = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "SYNTHETIC DEMO DATA" in page and "Claims vs evidence" in page and "incident(" not in page
    # the verdict block says FOUND with the summary; the notebook's own summary box (JupyterLab's) is not repeated
    assert run.metrics["verdict"] == "FOUND" and 'class="rca-v-FOUND"' in page
    assert "rca-verdict-repeat" not in page and page.count(", by code_path: ") == 1


# --------------------------------------------------------------------------- review fixes
def _world(error_rows_at, successes_at):
    """A failing book_appointment attempt at 11:00 (its own error row 1 s later), error rows without an
    attempt at ``error_rows_at``, and successful attempts at ``successes_at`` (one at 09:00 before)."""
    msg = "SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in 'field list'"
    code_path = CODE_PATHS["book_appointment"]
    rows = [(1, "2025-10-18T09:00:00+02:00", None, "success")] + [(2, "2025-10-18T11:00:00+02:00", msg, "failed")]
    rows += [(3 + i, at, None, "success") for i, at in enumerate(successes_at)]
    attempts = pd.DataFrame({"trace_id": [r[0] for r in rows], "at": [ts(r[1]) for r in rows],
                             "path": "book_appointment", "code_path": code_path, "error_message": [r[2] for r in rows],
                             "outcome": [r[3] for r in rows], "rescued_by_webhook": False})
    errors = pd.DataFrame({"occurred_at": [ts("2025-10-18T11:00:01+02:00")] + [ts(at) for at in error_rows_at],
                           "error_message": msg, "function_trace_id": pd.array([2] + [None] * len(error_rows_at), dtype="Int64"),
                           "family": "book_appointment", "frame": code_path})
    return attempts, errors


def test_recovery_search_starts_after_the_last_error_row_not_the_last_failing_attempt():
    from rca_toolkit.analyses.incident import groups as groups_mod, questions

    attempts, errors = _world(["2025-10-18T13:00:00+02:00"], ["2025-10-18T15:00:00+02:00"])
    window = (ts("2025-10-18T00:00:00+02:00"), ts("2025-10-19T00:00:00+02:00"))
    (g,), _ = groups_mod.impacts(attempts, errors, SignatureQuery.of(SIGNATURE), "path", *window)
    changes = _changes(("2025-10-18T12:00:00+02:00", "early", "deploy while the error rows still came"),
                       ("2025-10-18T14:00:00+02:00", "late", "the real fix"))
    _, fixes = causes.attribute([g], changes, [])
    assert fixes["book_appointment"].commit == "late" and fixes["book_appointment"].alternatives == []
    assert g.last_bad == ts("2025-10-18T11:00:00+02:00") and g.recovery_from == ts("2025-10-18T13:00:00+02:00")
    assert g.recovered_at == ts("2025-10-18T15:00:00+02:00") and not g.limited_by_window
    _, fixes = causes.attribute([g], changes.iloc[:1], [])
    assert fixes["book_appointment"].commit is None
    assert "2025-10-18 13:00:00 CEST" in fixes["book_appointment"].description  # the last failure named is 13:00
    # unresolved: the open question names the last error row (13:00), not the last failing attempt (11:00)
    attempts, errors = _world(["2025-10-18T13:00:00+02:00"], [])
    (g,), _ = groups_mod.impacts(attempts, errors, SignatureQuery.of(SIGNATURE), "path", *window)
    text = "\n".join(questions.open_questions([g], {"book_appointment": None}, {"book_appointment": None}, causes.BOUND))
    assert "after the last failure (2025-10-18 13:00:00 CEST)" in text


def test_provenance_says_the_recovery_starts_after_the_last_error_row(result):
    assert "the later of the last failing attempt and the last error row" in result.provenance["numbers"]["recovery"]
    for name, g in result.provenance["groups"].items():
        assert ts(g["recovery_from"]) == max(ts(g["last_bad"]), ts(next(x for x in result.to_dict()["groups"]
                                                                        if x["group"] == name)["last_error"]))


LATE_SINCE = "2025-10-15T00:00:00+02:00"


@pytest.fixture(scope="module")
def late(demo_sqlite):
    """The incident seen from a window that opens while both paths are failing (two days after the onset)."""
    url, truth = demo_sqlite
    onset_day = ts(frame_of(truth, "collect_appointment")["window"]["start"]).tz_convert("Europe/Berlin").date()
    assert LATE_SINCE.startswith((onset_day + timedelta(days=2)).isoformat())
    for path in PATHS:  # both paths still fail after the window start
        assert ts(frame_of(truth, path)["window"]["end"]) > ts(LATE_SINCE)
    return incident(url, SIGNATURE, since=LATE_SINCE, with_claims=False)


def test_a_window_opening_inside_the_incident_says_the_onset_is_before_it(late, groups):
    payload = late.to_dict()
    for g in payload["groups"]:
        assert g["onset_cause"] is None and g.get("limited_by_window") is True  # not the deploy 45 h before
        assert list(g)[-1] == "limited_by_window" and ts(g["first_error"]) >= ts(LATE_SINCE)
        assert ts(g["first_error"]) > ts(groups[g["group"]]["first_error"])  # the full run's onset is earlier
        assert any(q.startswith(f"{g['group']}: failing from the window start on") and "widen --since" in q
                   for q in late.open_questions)
    assert not any(q for q in late.open_questions if "onset interval" in q)
    kinds = {e["kind"] for e in late.timeline}
    assert "onset" not in kinds and "first_seen" in kinds
    table = late.impact_table()
    assert set(table["onset cause"]) == {"onset before the window start: widen --since"}
    md = late.to_markdown()
    assert "cause fb310a80" not in md and "onset before the window start: widen --since" in md
    gids = {a.get_gid() for a in plots.plot_incident(late).axes[0].get_children() if a.get_gid()}
    assert {f"first_seen:{p}" for p in PATHS} <= gids and not any(gid.startswith("onset:") for gid in gids)


def test_detection_from_a_late_window_says_it_checked_only_days_from_since(late, result):
    d = late.detection
    assert late.to_dict()["detected"] == {"first_act_day": d.first_act_day, "limited_by_window": True}
    assert d.checked[0]["day"] == LATE_SINCE[:10] and d.limited_from == LATE_SINCE[:10]
    assert result.detection.first_act_day < LATE_SINCE[:10] and not result.detection.limited_by_window
    assert late.provenance["detected"]["limited_from"] == LATE_SINCE[:10]
    for text in (late.detection_text(), late.to_text(), late.to_markdown()):
        assert f"only days from {LATE_SINCE[:10]}" in text.replace("\n  ", " ")
    detected_line = next(line for line in late.summary_lines() if line.startswith("Detected:"))
    assert detected_line.startswith(f"Detected: checked only days from {LATE_SINCE[:10]}") and "widen --since" in detected_line
    assert any(q.startswith("When monitoring would first have said ACT: only days from") for q in late.open_questions)
    detected = next(e for e in late.timeline if e["kind"] == "detected")
    assert "earlier days were not checked" in detected["text"]


def test_a_window_with_clean_attempts_before_the_first_failure_is_not_limited(demo_sqlite, groups):
    url, truth = demo_sqlite
    start = ts(frame_of(truth, "collect_appointment")["window"]["start"]) - pd.Timedelta(days=1)
    other = incident(url, SIGNATURE, since=start.tz_convert("Europe/Berlin").isoformat(), with_claims=False, detect=False)
    for g in other.to_dict()["groups"]:
        assert "limited_by_window" not in g and g["onset_cause"] == groups[g["group"]]["onset_cause"]


MICROSECONDS = r"\d{2}:\d{2}:\d{2}\.\d{3,6}"


def test_renderings_show_local_time_to_the_second_and_the_json_keeps_full_iso(result):
    import re

    from rca_toolkit.analyses.tables import when

    assert any(re.search(MICROSECONDS, e["at"]) for e in result.timeline)  # the JSON: full ISO
    assert re.search(MICROSECONDS, result.to_json())
    table = result.timeline_table()
    assert list(table["at"]) == [when(e["at"]) for e in result.timeline]
    for rendered in (result.to_markdown(), result.to_text(), result._repr_html_()):
        assert not re.search(MICROSECONDS, rendered)
    onset = next(e for e in result.timeline if e["kind"] == "onset")
    first = next(g for g in result.groups if onset["text"].startswith(g.group))
    assert f"first error row {when(first.first_error)}" in onset["text"]


def test_durations_read_as_words(result):
    from rca_toolkit.analyses.incident import groups as groups_mod, questions

    assert "bound 3 days;" in result.provenance["numbers"]["onset_cause"]
    assert "00:00:00" not in result.provenance["numbers"]["onset_cause"]
    g = groups_mod.GroupImpact("book_appointment", 1, ts("2025-10-13T11:22:00+02:00"), ts("2025-10-13T11:22:00+02:00"), 0, 0, 0,
                               5, ts("2025-10-13T11:22:00+02:00"), ts("2025-10-13T11:22:00+02:00"), None, None, [])
    text = questions.open_questions([g], {}, {}, pd.Timedelta(days=3))[0]
    assert "within 3 days before the first failure" in text
    assert [causes.span(pd.Timedelta(x)) for x in ("3D", "1D", "36h", "90min", "30s")] == ["3 days", "1 day", "36 h",
                                                                                          "90 min", "30 s"]


def test_counts_at_production_volume_read_with_thousands_separators(result):
    """At 1M calls the incident said '149942 error rows, 149942 failed booking attempts' beside '7,826.0/day'."""
    from dataclasses import replace

    big = replace(result, groups=[replace(g, errors=g.errors * 1000, failed_attempts=g.failed_attempts * 1000,
                                          attempts=g.attempts * 1000, orphaned=g.orphaned * 1000,
                                          rescued=g.rescued * 1000) for g in result.groups])
    total = sum(g.errors for g in big.groups)
    assert total >= 1000 and f"{total:,} error rows" in " ".join(big.summary_lines())
    g = big.groups[0]
    assert (f"{g.errors:,} errors, {g.failed_attempts:,} failed of {g.attempts:,} attempts, {g.orphaned:,} orphaned (lost)"
            in " ".join(big.impact_text().split()))
    sessions = result.provenance["fingerprint"]["retell_call_sessions"]["rows"]
    assert sessions >= 1000 and f"retell_call_sessions {sessions:,} rows" in " ".join(result.to_text().split())


def test_count_claims_name_their_metric_and_have_no_n(result):
    table = result.claims_table().set_index("claim")
    count = next(c for c in result.claims if c.claim.metric == "signature_errors")
    rate = next(c for c in result.claims if c.claim.metric == "booking_success_rate")
    assert count.value > 0 and table.loc[count.claim.claim, "value"] == f"{count.value:g}"
    assert table.loc[count.claim.claim, "n"] == "-"  # not the count again
    assert "signature errors" in table.loc[count.claim.claim, "metric"]
    assert table.loc[rate.claim.claim, "n"] == rate.n and "booking success rate" in table.loc[rate.claim.claim, "metric"]
    assert "| signature errors (error rows carrying the signature only) |" in result.to_markdown()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-3 * 3600, 3 * 3600), st.sampled_from(["a", "b", "(unattributed)"])), min_size=1,
                max_size=12),
       st.sampled_from(["2025-10-25T22:00:00Z", "2025-10-26T00:30:00Z", "2025-03-30T01:00:00Z", "2025-10-13T22:00:00Z"]))
def test_errors_per_day_are_each_rows_local_date(offsets, around):
    """``daily_errors`` writes each day once: its days and counts are those of each row's date in the source zone
    (Europe/Berlin) written one by one, near midnight and the DST changes too (the plain rule written here)."""
    from rca_toolkit.analyses.incident.groups import daily_errors

    at = pd.Timestamp(around)
    rows = pd.DataFrame({"occurred_at": [at + pd.Timedelta(seconds=s) for s, _ in offsets], "group": [g for _, g in offsets]})
    rows["occurred_at"] = rows["occurred_at"].astype("datetime64[us, UTC]")
    day = rows["occurred_at"].dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d")
    want = rows.assign(day=day).groupby(["day", "group"]).size().rename("errors").reset_index()
    pd.testing.assert_frame_equal(daily_errors(rows), want.sort_values(["day", "group"], kind="stable").reset_index(drop=True))
