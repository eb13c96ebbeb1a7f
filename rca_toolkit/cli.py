"""The ``rca`` command: one subcommand module per job under ``rca_toolkit.commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func``; the function returns an :class:`~rca_toolkit.outcome.Outcome` or raises. :func:`main`
is the one place that turns that into the process exit code (``EXIT_CODES``, the README's
"Exit codes" table): user mistakes arrive as ``RcaError`` (one line on stderr, exit 2), any other
exception is an internal error (one line, exit 3; the traceback only under ``-v``). The boundary
holds for what argparse refuses too (one line, not the usage block), for arguments that are not
text (a NUL, bytes that are not UTF-8), and for a database that went away or timed out in a read
no layer translated (``db_errors.untranslated``: one line, exit 2, as the loaders' own errors).

Logging: the package only creates module loggers; :func:`main` attaches the one handler (stderr)
to the ``rca_toolkit`` logger: ``-v`` shows the decisions (INFO), ``-vv`` also every statement (DEBUG).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
import textwrap
import traceback
from contextlib import contextmanager
from typing import Callable

from rca_toolkit.errors import ConfigError, RcaError
from rca_toolkit.outcome import Outcome

# The exit-code contract (README "Exit codes"); nothing else in the package picks an exit code.
EXIT_CODES = {
    Outcome.CLEAR: 0,  # ran, nothing to act on (PASS / WARN / OK / WATCH)
    Outcome.FOUND: 1,  # ran and found something (FAIL, ACT, a phantom write, a missing index)
    Outcome.BAD_INPUT: 2,  # the user's input is wrong (RcaError; argparse usage errors exit 2 too)
    Outcome.INTERNAL_ERROR: 3,  # an internal error (any other exception, a crashed notebook)
}
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

# command -> (module under rca_toolkit.commands, one-line help). Only the module of the command
# being run is imported, so `rca --help` and every command start without loading the others'
# heavy dependencies (nbformat, scipy, statsmodels). Add a row when you add a command.
COMMANDS = {
    "demo-data": ("demo_data", "build the synthetic demo database and its ground truth"),
    "timeline": ("timeline", "reproduce one call: attribution, loops, dead air, what-if"),
    "compare": ("compare", "before/after statistics around a change (booking success, durations, latencies)"),
    "incident": ("incident", "the life of an incident: onset, cause, recovery per path, bookings lost, detection, claims"),
    "drift": ("drift", "find phantom columns: code writes vs the live schema"),
    "migrations": ("migrations_cmd", "migration history: pending, missing, suspicious names, batches"),
    "indexes": ("indexes", "check the indexes the toolkit's queries rely on"),
    "run": ("run", "run a notebook with validated parameters into reports/<notebook>/<run-id>/"),
    "runbook": ("run", "run a runbook; exit 0 PASS/WARN, 1 FAIL, 2 ERROR (input), 3 ERROR (internal)"),
    "list": ("run", "list notebooks and runbooks with their parameters"),
    "demo-reports": ("run", "run every notebook and runbook with its defaults and print the reports"),
    "import": ("import_cmd", "import Retell objects, Laravel logs, exports or Cal.com webhooks into a scratch db"),
    "quality": ("quality", "data-quality report of an export file or a database's sessions"),
    "report": ("report", "scheduled reports: daily/weekly health, retention"),
    "schedule": ("report", "print crontab/systemd entries that run a scheduled report"),
    "cache": ("cache_cmd", "show, refresh or drop the local store the analyses read"),
}
COMMAND_MODULES = sorted({module for module, _ in COMMANDS.values()})


def help_text(doc: str) -> str:
    """A command module's docstring as its ``--help`` text: the double backticks of its markup shown as the single
    ones the hints use, and what it says to developers (from its first ``:func:`` line on) left out."""
    return doc.split("\n:func:")[0].strip().replace("``", "`")


class HelpFormatter(argparse.HelpFormatter):
    """A description wrapped to the terminal paragraph by paragraph: argparse's own joins its paragraphs into one,
    and its raw one keeps the docstring's lines, wider than a 100-column terminal."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(textwrap.fill(" ".join(part.split()), width, initial_indent=indent, subsequent_indent=indent)
                           for part in text.split("\n\n"))


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL or profile name (default: $RCA_DATABASE_URL or the demo SQLite database)",
    )
    parser.add_argument("--no-cache", action="store_true",
                        help="read the database directly instead of its local store (a one-off look; "
                             "the same as RCA_CACHE=off)")


MAX_ID = 2**63 - 1  # the largest id or seed SQLite and MariaDB's BIGINT hold
MAX_JOBS = 32  # --jobs: each job is a kernel process; more only exhausts the host


def int_in(low: int, high: int = MAX_ID, *, what: str = "an integer") -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high`` (argparse names the option in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is outside {low}-{high}")
        return value
    return parse


def seconds_option(text: str) -> float:
    """An argparse ``type``: seconds as every seconds setting takes them (``config.seconds_setting``: finite,
    in ``SECONDS_RANGE``); argparse names the option in the error."""
    from rca_toolkit.config import SECONDS_RANGE, seconds_setting

    try:
        return seconds_setting("value", text)
    except ConfigError:
        low, high = SECONDS_RANGE
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds in ({low:g}, {high:g}]") from None


def add_format_option(parser: argparse.ArgumentParser, choices=("text", "json")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0], help="output format (default: %(default)s)")


def add_personal_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-personal-data", action="store_true",
                        help="do not mask phone numbers, e-mail addresses and customer names (a local investigation; "
                             "a run records it in run.json and on its report)")


def emit(text_or_obj, fmt: str, *, show_personal_data: bool = False) -> None:
    """Print a result (JSON objects pretty-printed, text as is) through the one writer, ``runs/output``:
    credentials redacted, personal data masked unless the command was asked to show it."""
    from rca_toolkit.runs import output  # lazily: `rca --help` and `rca list` stay light

    if fmt == "json" and not isinstance(text_or_obj, str):
        text_or_obj = json.dumps(text_or_obj, indent=2, default=str, ensure_ascii=False)
    output.echo(text_or_obj, output.policy(show_personal_data))


def _requested_command(argv: list[str]) -> str | None:
    """The first argument that names a command (options before it are global)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


@contextmanager
def _cache_off(off: bool):
    """``--no-cache``: this command and the kernels it starts read the database directly (``RCA_CACHE=off``),
    set for the command alone (an in-process caller's environment is given back)."""
    if not off:
        yield
        return
    before = os.environ.get("RCA_CACHE")
    os.environ["RCA_CACHE"] = "off"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RCA_CACHE", None)
        else:
            os.environ["RCA_CACHE"] = before


class OneLineParser(argparse.ArgumentParser):
    """argparse's usage mistakes as an ``RcaError``: :func:`main` prints one line and exits 2 (argparse
    alone prints the usage block and exits through ``SystemExit``). Subparsers inherit the class."""

    def error(self, message: str):
        raise ConfigError(message, hint=f"see `{self.prog} --help`")


def check_arguments(argv: list[str]) -> None:
    """Every argument must be text: a NUL or bytes that are not UTF-8 (``surrogateescape``) would fail
    deep inside a driver or a path call; refused here, naming the argument's position."""
    for number, arg in enumerate(argv, 1):
        if "\x00" in arg:
            raise ConfigError(f"argument {number} holds a NUL character", hint="remove it")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"argument {number} is not UTF-8 text", hint="pass UTF-8 text (file names included)") from None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``rca`` parser.

    With ``argv`` (what :func:`main` does) only the requested command's module is imported and
    the others get one-line stubs; without it every command is registered in full.
    """
    parser = OneLineParser(
        prog="rca",
        description="Incident analysis and runbooks for the Retell -> Laravel -> Cal.com booking platform.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log the decisions taken to stderr (-vv: also every statement with rows and seconds)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if argv is None:
        modules = COMMAND_MODULES
    else:
        wanted = _requested_command(argv)
        modules = [COMMANDS[wanted][0]] if wanted else []
    for module in modules:
        importlib.import_module(f"rca_toolkit.commands.{module}").register(sub)
    registered = set(sub.choices)
    for name, (_, summary) in COMMANDS.items():
        if name not in registered:
            sub.add_parser(name, help=summary)
    return parser


_TIME_OF_DAY = re.compile(r"\d{1,2}:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:?\d\d|Z)?")


def _extra_hint(argv: list[str], extra: list[str], label: str) -> str:
    """What to do with arguments a command does not take: a time of day after a date was a date and time pasted
    without quotes (``--at 2025-10-18 13:20:08+02:00``), else the command's own help."""
    at = argv.index(extra[0]) if extra[0] in argv else -1
    if at > 0 and _TIME_OF_DAY.fullmatch(extra[0]) and re.fullmatch(r"\d{4}-\d\d-\d\d", argv[at - 1]):
        if len(extra) > 1 and re.fullmatch(r"[A-Z]{2,5}", extra[1]):  # a time copied from a report: "... 13:20:08 CEST"
            return f"quote a date and time that holds a space: '{argv[at - 1]} {extra[0]} {extra[1]}'"
        return f"quote a date and time that holds a space, '{argv[at - 1]} {extra[0]}', or write it {argv[at - 1]}T{extra[0]}"
    return f"see `{label} --help`"


_NO_VALUE = re.compile(r"argument ((?:-\w|--[\w-]+)(?:/(?:-\w|--[\w-]+))*): expected (one|2) arguments?")


def _dash_value_error(argv: list[str], exc: ConfigError) -> ConfigError | None:
    """What argparse's "expected one argument" meant: a value that starts with '-' (``--before -3d``), read as
    another option; and "expected 2 arguments" of ``-p NAME VALUE`` given as ``-p since=2025-...``: each is named
    with how to write it."""
    found = _NO_VALUE.match(exc.message)
    if not found:
        return None
    for name in found.group(1).split("/"):
        at = argv.index(name) if name in argv else -1
        value = argv[at + 1] if 0 <= at < len(argv) - 1 else ""
        if found.group(2) == "2" and "=" in value and not value.startswith("-"):
            key, _, given = value.partition("=")
            return ConfigError(f"{name} takes a name and a value as two words, not {value!r}",
                               hint=f"write {name} {key} {given}")
        if found.group(2) == "one" and value.startswith("-"):
            return ConfigError(f"{name} has no value: {value!r} was read as an option",
                               hint=f"write {name}={value} if that is its value")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command and map its outcome to the exit code (``EXIT_CODES``): the one place that does."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command, verbose = _requested_command(argv) or "", _verbosity(argv)
    label = f"rca {command}" if command else "rca"
    secrets: list[str] = []
    with _logging_to_stderr(verbose):
        try:
            check_arguments(argv)  # first: a byte that is not UTF-8 would break the secret search below
            secrets = _argv_secrets(argv)
            parser = build_parser(argv)  # imports the command's module: a broken one is an internal error too
            try:
                args, extra = parser.parse_known_args(argv)  # usage errors: ConfigError (OneLineParser); --help exits 0
            except ConfigError as exc:
                raise _dash_value_error(argv, exc) or exc from None
            if extra:  # argparse would name the top level's help; the command's own lists what it takes
                raise ConfigError(f"unrecognized arguments: {' '.join(extra)}", hint=_extra_hint(argv, extra, label))
            func: Callable[[argparse.Namespace], Outcome] | None = getattr(args, "func", None)
            if func is None:
                parser.print_help()
                return EXIT_CODES[Outcome.BAD_INPUT]
            with _cache_off(getattr(args, "no_cache", False)):
                outcome = func(args)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"{func.__module__}.{func.__name__} returned {outcome!r}, not an Outcome")
        except RcaError as exc:
            print(f"{label}: error: {one_line(str(exc), secrets)}", file=sys.stderr)
            outcome = Outcome.BAD_INPUT
        except KeyboardInterrupt:
            print("rca: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            return EXIT_CODES[Outcome.CLEAR]
        except Exception as exc:  # noqa: BLE001 - the contract: one line, exit 3, the traceback only under -v
            from rca_toolkit.sources.db_errors import untranslated

            user_error = untranslated(exc)
            if user_error is not None:  # the server or file failed, not the toolkit: as the loaders report it
                logging.getLogger(__name__).info("untranslated database error %s reached the CLI", type(exc).__name__)
                print(f"{label}: error: {one_line(str(user_error), secrets)}", file=sys.stderr)
                outcome = Outcome.BAD_INPUT
            else:
                _report_internal_error(command, exc, verbose=verbose > 0, secrets=secrets)
                outcome = Outcome.INTERNAL_ERROR
    return EXIT_CODES[outcome]


def _argv_secrets(argv: list[str]) -> list[str]:
    """Every password the arguments carry in a URL, as typed and URL-encoded: an error line may quote an
    argument changed (a URL read as a file path loses a ``/``), where the URL patterns no longer match."""
    if not any("://" in arg for arg in argv):
        return []  # nothing to find, and `rca --help`/`rca list` stay free of sqlalchemy
    from rca_toolkit.sources.credentials import secret_forms

    return sorted({form for arg in argv for form in secret_forms(arg)}, key=len, reverse=True)


def one_line(text: str, secrets: list[str] = ()) -> str:
    """``text`` as one printable line: line breaks become spaces and every other control character (a
    record separator, a terminal escape) its escape (an error message may quote a file name or a value
    as typed), every URL password masked (argparse quotes a refused value: a URL given to the wrong option)
    and each of ``secrets`` (the passwords of the arguments) replaced wherever it appears."""
    from rca_toolkit.sources.db import redact_text

    flat = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), " ".join(text.split("\n")))
    for secret in secrets:
        flat = flat.replace(secret, "***")
    return redact_text(flat)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _verbosity(argv: list[str]) -> int:
    """How many ``-v`` precede the command (``-v`` is a global option, so none can follow it)."""
    count = 0
    for arg in argv:
        if not arg.startswith("-"):
            break
        count += 1 if arg == "--verbose" else len(arg) - 1 if set(arg[1:]) == {"v"} else 0
    return count


def _report_internal_error(command: str, exc: Exception, *, verbose: bool, secrets: list[str] = ()) -> None:
    """One line naming what failed (passwords redacted); the traceback before it under ``-v``."""
    from rca_toolkit.sources.db import redact_text

    first = (str(exc).splitlines() or [""])[0]
    what = one_line(f"{type(exc).__name__}: {first}" if first else type(exc).__name__, secrets)
    label = f"rca {command}" if command else "rca"
    if verbose:
        shown = "".join(traceback.format_exception(exc))
        for secret in secrets:
            shown = shown.replace(secret, "***")
        print(redact_text(shown), end="", file=sys.stderr)
        print(f"{label}: internal error: {what}", file=sys.stderr)
    else:
        print(f"{label}: internal error: {what} (run with -v for details)", file=sys.stderr)


class WriterFormatter(logging.Formatter):
    """Log lines pass the one writer too (``runs/output``): a statement or a URL in a ``-v`` line shows no
    password and no caller's phone number."""

    def format(self, record: logging.LogRecord) -> str:
        from rca_toolkit.runs import output  # lazily: only when a line is logged

        return output.policy().text(super().format(record))


@contextmanager
def _logging_to_stderr(verbose: int):
    """One stderr handler on the ``rca_toolkit`` logger for one :func:`main` call, removed afterwards
    (in-process callers such as tests call ``main`` repeatedly and swap ``sys.stderr``)."""
    logger = logging.getLogger("rca_toolkit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(WriterFormatter(LOG_FORMAT))
    previous = logger.level
    logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
