"""The CLI front door: every command is listed, each module registers what the table says."""

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
            "print(sorted(m for m in sys.modules if m.startswith(('rca_toolkit.commands.', 'nbformat', 'scipy', 'ruptures'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    help_text = cli.build_parser([]).format_help()
    for name in cli.COMMANDS:
        assert name in help_text


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
