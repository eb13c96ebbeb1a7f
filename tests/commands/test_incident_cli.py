"""``rca incident``: exit codes, the three formats, one-line errors, and the JSON on SQLite and MariaDB."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from rca_toolkit import cli
from rca_toolkit.analyses.bookings.outcomes import CODE_PATHS

SIGNATURE = "Unknown column 'created_by'"


def _rca(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _ts(text):
    return pd.Timestamp(text).tz_convert("UTC")


def _expected_groups(truth: dict) -> dict:
    """Per path, from the ground truth: 1054 error rows of real calls and the lost/rescued bookings of its window."""
    out = {}
    for path, frame in CODE_PATHS.items():
        entry = truth["incidents"]["A_phantom_columns"]["frames"][frame]
        window = next(w for w in truth["booking_attempts"][path].values()
                      if _ts(w["start"]) == _ts(entry["window"]["start"]) and _ts(w["end"]) == _ts(entry["window"]["end"]))
        out[path] = {"errors": entry["errors_real_ids"], "orphaned": window["orphaned"], "rescued": window["rescued"]}
    return out


def _fixes(truth: dict) -> dict:
    """The deployment at the end of each path's phantom window (collect: the partial fix, book: the full fix)."""
    frames = truth["incidents"]["A_phantom_columns"]["frames"]
    return {path: next(d["commit"] for d in truth["deployments"]
                       if _ts(d["deployed_at"]) == _ts(frames[frame]["window"]["end"])) for path, frame in CODE_PATHS.items()}


def _check_payload(payload: dict, truth: dict) -> None:
    groups = {g["group"]: g for g in payload["groups"]}
    expected = _expected_groups(truth)
    assert {p: {k: groups[p][k] for k in ("errors", "orphaned", "rescued")} for p in groups} == expected
    assert {p: groups[p]["recovery"]["commit"] for p in groups} == _fixes(truth)
    assert payload["detected"]["first_act_day"] in {"2025-10-13", "2025-10-14"}
    statuses = {c["claim"]: c["status"] for c in payload["claims"]}
    assert [s for c, s in statuses.items() if "~100 %" in c] == ["contradicted"]
    assert [s for c, s in statuses.items() if "0 % (100 % SQL errors)" in c] == ["verified"]


def test_json_matches_the_ground_truth_and_exits_1(demo_sqlite, capsys):
    url, truth = demo_sqlite
    code, out, err = _rca(["incident", "--signature", SIGNATURE, "--db", url, "--format", "json"], capsys)
    assert code == 1, err
    _check_payload(json.loads(out), truth)


@pytest.mark.mariadb
def test_json_on_mariadb_matches_the_ground_truth(demo_mariadb, capsys):
    url, truth = demo_mariadb
    code, out, err = _rca(["incident", "--signature", SIGNATURE, "--db", url, "--format", "json"], capsys)
    assert code == 1, err
    payload = json.loads(out)
    _check_payload(payload, truth)
    assert payload["provenance"]["fingerprint"]["retell_error_log"]["rows"] == truth["row_counts"]["retell_error_log"]


def test_text_and_markdown_formats(demo_sqlite, capsys):
    url, truth = demo_sqlite
    code, out, _ = _rca(["incident", "--signature", SIGNATURE, "--db", url, "--no-detection"], capsys)
    assert code == 1
    assert out.startswith(f"FOUND: the signature occurs in the window; 2 of 3 claims contradicted\nSignature {SIGNATURE!r}")
    assert "Impact per path" in out and "Open questions" in out
    assert max(len(line) for line in out.splitlines()) <= 100  # a terminal's width, as every command's text
    for path, fix in _fixes(truth).items():
        assert path in out and fix[:12] in out
    code, md, _ = _rca(["incident", "--signature", SIGNATURE, "--db", url, "--format", "markdown", "--no-claims",
                        "--no-detection"], capsys)
    assert code == 1 and md.startswith(f"# Incident: `{SIGNATURE}`\n\n**FOUND**: the signature occurs in the window\n")
    assert "## Impact per path" in md and "## Claims" not in md
    assert "Not computed: detection was switched off" in md


def test_absent_signature_without_claims_is_clear_and_says_so(demo_sqlite, capsys):
    url, _ = demo_sqlite
    code, out, err = _rca(["incident", "--signature", "Unknown column 'nowhere'", "--db", url, "--no-claims"], capsys)
    assert code == 0, err
    assert out.startswith("CLEAR: the signature is absent from the window and no claim is contradicted\n"
                          "No error row and no failed booking attempt carries the signature")
    pasted = "Unknown column '<img src=x>' in `appointments`"  # HTML and a backtick, as pasted from a log
    code, md, err = _rca(["incident", "--signature", pasted, "--db", url, "--no-claims", "--format", "markdown"], capsys)
    assert code == 0, err
    assert md.startswith(f"# Incident: `` {pasted} ``\n") and "<img" not in md.split("\n", 1)[1]
    assert "carries the signature \"Unknown column '&lt;img src=x>' in `appointments`\"" in md


def test_a_contradicted_claim_alone_is_found(demo_sqlite, capsys):
    url, _ = demo_sqlite
    code, out, _ = _rca(["incident", "--signature", "Unknown column 'nowhere'", "--db", url, "--no-detection"], capsys)
    assert code == 1 and "[contradicted]" in out
    assert out.splitlines()[0] == "FOUND: 1 of 3 claims contradicted"  # says why it exits 1 with no error row


@pytest.mark.parametrize("extra, fragment", [
    (["--by", "nope"], "--by 'nope'"),
    (["--since", "2025-10-13T00:00:00"], "--since=.* has no time zone"),
    (["--until", "9999-12-31T00:00:00Z"], "--until=.* is outside the years 1970-2199"),
    (["--since", "2025-10-14T00:00:00+02:00", "--until", "2025-10-13T00:00:00+02:00"], "is not after"),
    (["--claims", "/nonexistent/claims.yaml"], "does not exist"),
    (["--deployments", "/nonexistent/deploys.csv"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(demo_sqlite, capsys, extra, fragment):
    url, _ = demo_sqlite
    code, out, err = _rca(["incident", "--signature", SIGNATURE, "--db", url, *extra], capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and re.search(fragment, err) and err.startswith("rca incident: error: ")


def test_a_bad_claims_file_names_the_file_the_claim_and_the_key(demo_sqlite, capsys, tmp_path):
    url, _ = demo_sqlite
    path = tmp_path / "claims.yaml"
    path.write_text("- claim: x\n  metric: booking_success_rate\n  window: {from: 2025-10-13T00:00:00+02:00, "
                    "to: 2025-10-14T00:00:00+02:00}\n  expected: 0.5\n", encoding="utf-8")
    code, out, err = _rca(["incident", "--signature", SIGNATURE, "--db", url, "--claims", str(path)], capsys)
    assert code == 2 and out == "" and err.strip().count("\n") == 0
    assert str(path) in err and "claim 1 of 1" in err and "'tolerance'" in err


def test_signature_is_required(capsys):
    assert cli.main(["incident"]) == 2  # argparse's mistakes are one line through cli.main, not SystemExit
    err = capsys.readouterr().err
    assert "--signature" in err and err.count("\n") == 1


def test_since_inside_the_incident_says_the_onset_is_before_the_window(demo_sqlite, capsys):
    url, truth = demo_sqlite
    onset = _ts(truth["incidents"]["A_phantom_columns"]["frames"][CODE_PATHS["collect_appointment"]]["window"]["start"])
    since = (onset.tz_convert("Europe/Berlin").normalize() + pd.Timedelta(days=2)).isoformat()  # 2025-10-15T00:00+02:00
    code, out, err = _rca(["incident", "--signature", SIGNATURE, "--db", url, "--since", since, "--no-claims",
                           "--format", "json"], capsys)
    assert code == 1, err
    payload = json.loads(out)
    assert {g["group"]: (g["onset_cause"], g.get("limited_by_window")) for g in payload["groups"]} == {
        path: (None, True) for path in CODE_PATHS}
    assert payload["detected"] == {"first_act_day": since[:10], "limited_by_window": True}
    assert re.search(r"T\d{2}:\d{2}:\d{2}\.\d{6}", out)  # the JSON keeps full ISO
    code, text, _ = _rca(["incident", "--signature", SIGNATURE, "--db", url, "--since", since, "--no-claims"], capsys)
    assert code == 1 and "onset before the window start: widen --since" in text
    assert f"Detected: checked only days from {since[:10]}" in text and "cause fb310a80" not in text
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{3,6}", text)  # local time to the second
    assert max(len(line) for line in text.splitlines()) <= 100
