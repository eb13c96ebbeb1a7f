"""The CLI front door: every command is listed, each module registers what the table says."""

import argparse
import importlib
from datetime import date
import subprocess
import sys

import pytest

from rca_toolkit import cli


def test_every_listed_command_is_registered_by_its_module():
    for name, (module, summary) in cli.COMMANDS.items():
        parser = cli.build_parser([name])
        sub = next(a for a in parser._actions if a.dest == "command")
        assert name in sub.choices
        assert sub.choices[name].format_usage().startswith(f"usage: rca {name}")
        assert summary


def test_help_lists_every_command_without_importing_command_modules():
    code = ("import sys; from rca_toolkit import cli; cli.build_parser([]); "
            "print(sorted(m for m in sys.modules if m.startswith(('rca_toolkit.commands.', 'nbformat', 'scipy', 'statsmodels'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    help_text = cli.build_parser([]).format_help()
    for name in cli.COMMANDS:
        assert name in help_text


def _every_parser(parser):
    yield parser
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its subcommands only there
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in action.choices.values():
                yield from _every_parser(child)


def test_every_help_reads_as_text_within_a_100_column_terminal(monkeypatch):
    """What ``rca <command> --help`` prints comes from the modules' docstrings: no double backticks, no roles, and
    their paragraphs wrapped to the terminal (their lines are up to 115 characters)."""
    monkeypatch.setenv("COLUMNS", "100")
    helps = {parser.prog: parser.format_help() for parser in _every_parser(cli.build_parser())}
    assert len(helps) > len(cli.COMMANDS)  # the commands and their actions (cache status, report health, ...)
    marked = {prog: line for prog, text in helps.items() for line in text.splitlines() if "``" in line or ":func:" in line}
    assert marked == {}
    wide = {prog: line for prog, text in helps.items() for line in text.splitlines() if len(line) > 100}
    assert wide == {}
    assert "`rca timeline CALL_ID`: where every second of one call went" in helps["rca timeline"]


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "demo-data" in capsys.readouterr().out


@pytest.mark.parametrize("module", sorted({m for m, _ in cli.COMMANDS.values()}))
def test_command_modules_import(module):
    assert hasattr(importlib.import_module(f"rca_toolkit.commands.{module}"), "register")


def test_parser_without_argv_registers_every_command_in_full():
    parser = cli.build_parser()
    args = parser.parse_args(["report", "health", "--date", "2025-10-25"])
    assert (args.command, args.report_command, args.date) == ("report", "health", date(2025, 10, 25))  # parsed, range-checked


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_every_printed_result_goes_through_the_one_writer(fmt, capsys):
    """cli.emit is how commands print: credentials redacted and personal data masked there, for every command."""
    from rca_toolkit.cli import emit

    result = {"message": "Rückruf an 0151 23456789, hans@example.org", "db": "mysql+pymysql://u:pw-XYZ1@h/db"}
    emit(result if fmt == "json" else str(result), fmt)
    out = capsys.readouterr().out
    assert "0151 23456789" not in out and "hans@example.org" not in out and "pw-XYZ1" not in out
    assert "[PHONE]" in out and "[EMAIL]" in out


def test_log_lines_go_through_the_one_writer():
    """`-v` lines: the formatter cli.main puts on its stderr handler redacts and masks like every other output."""
    import logging

    from rca_toolkit.cli import LOG_FORMAT, WriterFormatter

    record = logging.LogRecord("rca_toolkit.test", logging.INFO, __file__, 1,
                               "connecting to mysql+pymysql://u:pw-XYZ2@h/db for 0151 23456789", None, None)
    line = WriterFormatter(LOG_FORMAT).format(record)
    assert "pw-XYZ2" not in line and "0151 23456789" not in line and "[PHONE]" in line


def test_list_fits_100_columns_and_a_long_help_goes_on_as_comment_lines(capsys):
    """`rca list` printed parameter lines of up to 136 characters, which a 100-column terminal broke mid-word."""
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 100
    at = lines.index("    signature: str = \"Unknown column 'created_by'\"  # error text or normalised signature the")
    assert lines[at + 1] == "        # incident carries (substring match)"


@pytest.mark.parametrize("argv, light", [(["--help"], ("sqlalchemy", "pandas", "nbformat")),
                                         (["list"], ("sqlalchemy", "nbformat", "matplotlib"))])
def test_help_and_list_stay_light(argv, light):
    """People wait for these: they must not import the database or analysis stack (issue 21's speed goal is
    measured in benchmarks/cli_speed.py; this keeps the cause from coming back)."""
    import subprocess
    import sys

    probe = ("import sys, contextlib, io\nfrom rca_toolkit import cli\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        cli.main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
             f"print([m for m in {light!r} if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
