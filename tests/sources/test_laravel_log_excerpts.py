"""Laravel log excerpts as people paste them (issue 22, item 5).

The forms: ``grep -B1 -A2 ... storage/logs/laravel.log`` output (``--`` between groups, the lines
before a match being the tail of another entry), section headings (markdown ``## ...``,
``=== ... ===``, code fences) and fragments of other entries under a complete one. Separators,
headings and fragments must never cost an entry its context; an entry whose JSON context is
complete is always parsed; what was skipped is counted (and reported by ``rca import``).
"""

from __future__ import annotations

import io
import json
import sqlite3
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rca_toolkit.sources import importer
from rca_toolkit.sources.formats.laravel_log import iter_laravel_log, read_laravel_log

QUERY = {"sql": "select * from `appointments` where `calcom_v2_booking_id` = ? limit 1", "bindings": ["bk_7f3a9c"],
         "time": 3.41}
QUERY_LINE = f"[2025-10-18 12:14:40] production.DEBUG: query {json.dumps(QUERY)} "
CUT_ERROR = (
    "[2025-10-18 12:11:02] production.ERROR: SQLSTATE[42S22]: Column not found: 1054 Unknown column 'created_by' in "
    "'field list' (Connection: mysql, SQL: insert into `appointments` (`created_by`) values (7)) {\"userId\":12,"
    "\"exception\":\"[object] (Illuminate\\\\Database\\\\QueryException(code: 42S22): SQLSTATE[42S22]: Column not "
    "found: 1054 Unknown column 'created_by' in 'field list' at /var/www/api-gateway/vendor/laravel/framework/src/"
    "Illuminate/Database/Connection.php:825)\n"
    "[stacktrace]\n"
    "#0 /var/www/api-gateway/vendor/laravel/framework/src/Illuminate/Database/Connection.php(779): "
    "Illuminate\\\\Database\\\\Connection->runQueryCallback()")
TAIL = ("#57 /var/www/api-gateway/public/index.php(51): Illuminate\\\\Foundation\\\\Http\\\\Kernel->handle()\n"
        "#58 {main}\n"
        "\"} ")
GREP = "\n".join([
    "#58 {main}",  # grep -B1 of the first match: the tail of an entry whose header is not in the excerpt
    "\"} ",
    CUT_ERROR,  # grep -A2 cut this entry's trace: its context never closes
    "--",
    TAIL,  # -B lines of the next match: the end of another request's trace
    QUERY_LINE,
    "--",
    "[2025-10-18 12:15:00] production.INFO: job done {\"job\":\"SyncAppointment\",\"time\":812.5} ",
]) + "\n"


def _records(text: str, stats: dict | None = None) -> list[dict]:
    return list(iter_laravel_log(io.BytesIO(text.encode("utf-8")), stats=stats))


def test_grep_groups_never_glue_another_entry_to_a_cut_one():
    stats: dict = {}
    records = _records(GREP, stats)
    assert [(r["orphan"], r["level"]) for r in records] == [(True, None), (False, "ERROR"), (False, "DEBUG"),
                                                           (False, "INFO")]
    cut = records[1]
    assert cut["truncated"] and not cut["context_parsed"] and cut["n_lines"] == 3
    assert "#57" not in cut["context"] and "#58" not in cut["context"]  # before: the next trace closed its JSON
    assert (cut["sqlstate"], cut["errno"], cut["unknown_column"]) == ("42S22", 1054, "created_by")
    query = records[2]
    assert (query["message"], query["context"], query["continuation"]) == ("query", QUERY, None)
    assert records[3]["context"] == {"job": "SyncAppointment", "time": 812.5}
    assert stats == {"separators": 2, "fragments": 1, "fragment_lines": 3}


def test_headings_and_fragments_under_a_complete_entry():
    paste = "\n".join([
        "## Fehler beim Buchen (18.10.)",
        "",
        QUERY_LINE,
        "#12 /var/www/api-gateway/app/Http/Controllers/CalcomWebhookController.php(88): "
        "App\\\\Services\\\\AppointmentService->sync()",  # pasted from another entry, right under this one
        "#13 {main}",
        "\"} ",
        "",
        "=== Queue worker ===",
        "```log",
        "[2025-10-18 12:15:00] production.INFO: job done {\"job\":\"SyncAppointment\",\"time\":812.5} ",
        "```",
        "Danach kam nichts mehr.",
    ]) + "\n"
    stats: dict = {}
    records = _records(paste, stats)
    assert [r["message"] for r in records] == ["query", "job done"]
    query = records[0]
    assert query["context"] == QUERY and query["context_parsed"] and query["n_lines"] == 1
    assert query["continuation"] is None
    assert stats == {"headings": 4, "fragments": 2, "fragment_lines": 4}


def test_real_multi_line_entries_keep_their_continuation():
    """A trace inside the JSON context and a message over several lines are the entry, not fragments."""
    entry = CUT_ERROR + "\n" + TAIL
    stats: dict = {}
    records = _records(entry + "\n" + QUERY_LINE + "\n", stats)
    assert records[0]["context_parsed"] and "#58 {main}" in records[0]["context"]["exception"]
    assert records[0]["n_lines"] == 6 and stats == {}
    multi = "[2025-10-18 12:00:00] local.INFO: Payload [1] received\nsecond line {\"a\":1} \n"
    record = _records(multi)[0]
    assert (record["message"], record["context"]) == ("Payload [1] received\nsecond line", {"a": 1})


def test_read_laravel_log_reports_what_it_skipped(tmp_path):
    path = tmp_path / "paste.log"
    path.write_text(GREP, encoding="utf-8")
    frame = read_laravel_log(path)
    assert frame.attrs["skipped"] == {"separators": 2, "headings": 0, "fragments": 1, "fragment_lines": 3}
    assert frame["context"].iloc[2] == QUERY


def test_import_summary_and_stored_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("RCA_DATABASE_URL", f"sqlite:///{tmp_path / 'analysed.sqlite'}")
    monkeypatch.setenv("RCA_PROGRESS", "0")
    personal = ("[2025-10-18 12:16:00] production.INFO: Rückruf an 0151 12345678 für Hans Müller "
                "{\"customer_name\":\"Hans Müller\",\"phone\":\"+49 151 1234 5678\",\"email\":\"hans@example.org\","
                "\"sql\":\"update `customers` set `phone` = ? where `id` = ?\",\"bindings\":[\"+49 151 1234 5678\",7],"
                "\"time\":1.5} ")
    path = tmp_path / "paste.log"
    path.write_text("## Auszug\n" + GREP + personal + "\n", encoding="utf-8")
    scratch = f"sqlite:///{tmp_path / 'scratch.sqlite'}"
    engine = importer.open_scratch(scratch)
    try:
        result = importer.import_file(engine, "laravel-log", str(path))
    finally:
        engine.dispose()
    # under a heading, the lines before the first entry are a fragment too (no orphan row)
    assert result["rows"] == 4 and result["skipped"] == {"separators": 2, "headings": 1, "fragments": 2,
                                                         "fragment_lines": 5}
    with sqlite3.connect(tmp_path / "scratch.sqlite") as conn:
        rows = conn.execute("SELECT message, context, continuation FROM laravel_log ORDER BY line_no").fetchall()
    stored = json.dumps(rows, ensure_ascii=False)
    for secret in ("0151 12345678", "+49 151 1234 5678", "Hans", "Müller", "hans@example.org"):
        assert secret not in stored, secret
    last = json.loads(rows[-1][1])
    assert last["sql"] == "update `customers` set `phone` = ? where `id` = ?" and last["time"] == 1.5
    assert last["bindings"] == ["[PHONE]", 7] and rows[-1][0] == "Rückruf an [PHONE] für [NAME] [NAME]"
    assert json.loads(rows[1][1]) == QUERY  # the query entry of the grep excerpt, context whole


# --------------------------------------------------------------------------- any paste
WORDS = st.text(alphabet=string.ascii_letters + string.digits + " .,:;!?'_-", min_size=1, max_size=30).map(str.strip) \
    .filter(bool)
CONTEXTS = st.fixed_dictionaries({
    "sql": st.text(max_size=60),
    "bindings": st.lists(st.one_of(st.integers(), st.text(max_size=12)), max_size=4),
    "time": st.floats(min_value=0, max_value=1e6, allow_nan=False),
})
FRAGMENTS = st.one_of(
    st.sampled_from(["#58 {main}", "\"} ", "[stacktrace]", "\"} []",
                     "[previous exception] [object] (PDOException(code: 2002): Connection refused at /var/www/x.php:70)"]),
    st.builds(lambda n, t: f"#{n} /var/www/api-gateway/{t}", st.integers(0, 99), WORDS),
)
MARKUP = st.sampled_from(["--", "## Abschnitt", "### 2", "=== worker ===", "==========", "```", "```log", "---"])


@st.composite
def pastes(draw):
    """(text, expected complete entries, separators, headings): entries, cut entries, markup, fragments."""
    lines: list[str] = []
    expected: list[tuple[str, dict]] = []
    separators = headings = 0
    last = "start"
    for _ in range(draw(st.integers(1, 8))):
        choices = ["entry", "cut", "markup"] + (["fragment"] if last in ("entry", "markup", "fragment") else [])
        kind = draw(st.sampled_from(choices))
        if kind == "entry":
            message, context = draw(WORDS), draw(CONTEXTS)
            lines.append(f"[2025-10-18 12:00:00] production.DEBUG: {message} {json.dumps(context, ensure_ascii=False)} ")
            expected.append((message, context))
        elif kind == "cut":
            lines.append('[2025-10-18 12:00:00] production.ERROR: cut {"exception":"[object] (E(code: 0): x')
            lines.append("[stacktrace]")
            expected.append(("cut", None))
            kind = "markup"  # a cut entry is followed by a separator or heading in a paste (grep puts "--")
            line = draw(MARKUP)
            lines.append(line)
            separators += line == "--"
            headings += line != "--"
        elif kind == "markup":
            line = draw(MARKUP)
            lines.append(line)
            separators += line == "--"
            headings += line != "--"
        else:
            lines += draw(st.lists(FRAGMENTS, min_size=1, max_size=3))
            if draw(st.booleans()):
                lines.append("")
        last = kind
    if not expected:  # a paste without any entry is refused (test_markup_alone_is_not_a_log)
        lines.append("[2025-10-18 12:00:00] production.INFO: end {\"n\":1} ")
        expected.append(("end", {"n": 1}))
    return "\n".join(lines) + "\n", expected, separators, headings


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pastes())
def test_any_paste_keeps_every_complete_entry_whole(paste):
    text, expected, separators, headings = paste
    stats: dict = {}
    entries = [r for r in _records(text, stats) if not r["orphan"]]
    assert [r["message"] for r in entries] == [m for m, _ in expected]
    for record, (_, context) in zip(entries, expected):
        if context is None:
            assert record["truncated"] and not record["context_parsed"]
        else:
            assert record["context"] == context and record["context_parsed"] and record["continuation"] is None
    assert (stats.get("separators", 0), stats.get("headings", 0)) == (separators, headings)


@pytest.mark.parametrize("line", ["--", "## x", "=== x ==="])
def test_markup_alone_is_not_a_log(tmp_path, line):
    from rca_toolkit.errors import InputFormatError

    path = tmp_path / "notes.log"
    path.write_text(f"{line}\nnur Text\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match="no Laravel log entry"):
        read_laravel_log(path)


def test_the_printed_import_summary_says_what_was_skipped(tmp_path, capsys):
    from rca_toolkit.cli import main

    path = tmp_path / "paste.log"
    path.write_text(GREP, encoding="utf-8")
    scratch = f"sqlite:///{tmp_path / 'scratch.sqlite'}"
    assert main(["import", "laravel-log", str(path), "--db", scratch]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 separators, 1 fragments, 3 fragment lines" in out
