"""Quoting for the command lines the toolkit prints into crontabs, systemd units and Airflow DAGs.

Why: a printed schedule is pasted into files that a shell (and cron, and systemd) interprets
later, as another user. A value such as ``--db 'prod; rm -rf ~'`` or a URL with ``&`` must come
back as exactly one argument, and a password must never be stored there at all. Each layer of
interpretation gets its own escape, applied in order: the shell (:func:`shlex.quote`), cron's
``%`` (:func:`cron_escape`), systemd's quoting, ``$`` and ``%`` specifiers (:func:`systemd_word`).
"""

from __future__ import annotations

import re

from rca_toolkit.errors import ConfigError
from rca_toolkit.sources.credentials import carries_credentials

ENV_FILE = "/etc/rca/rca-health.env"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # also what splitlines() breaks at
_ENV_FILE_PATH = re.compile(r"/[A-Za-z0-9_.@+/-]+")


def refuse_credentials(db: str | None, *, option: str = "--db") -> None:
    """One line (exit 2) instead of a password stored in a crontab, a unit file or a DAG."""
    if carries_credentials(db):
        raise ConfigError(f"{option} carries credentials and would be stored in a crontab/unit file",
                          hint=f"pass a profile name (rca.yaml, password_env) or put RCA_DATABASE_URL into the "
                               f"EnvironmentFile {ENV_FILE} and drop {option}")


def one_line(value: str, *, name: str) -> str:
    """``value`` unchanged, or one line naming ``name`` when it holds a control character (a newline
    would end the crontab line or the unit's directive early)."""
    if _CONTROL.search(value):
        raise ConfigError(f"{name}={value!r} contains a control character",
                          hint="a scheduled command must fit on one line: remove it")
    return value


def cron_escape(command: str) -> str:
    """Shell text -> crontab command text: cron turns an unescaped ``%`` into a newline (and stdin).

    Cron drops the backslash of ``\\%`` only; a shell text with a backslash right before ``%`` cannot be
    written in a crontab at all, so it is refused rather than silently changed.
    """
    if "\\%" in command:
        raise ConfigError(f"{command!r} holds a backslash before %, which cron cannot express",
                          hint="remove the backslash or use the systemd units")
    return command.replace("%", "\\%")


def systemd_word(text: str) -> str:
    """``text`` as one double-quoted word of an ``ExecStart=`` line (C escapes, ``$$``, ``%%``)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%")
    return f'"{escaped}"'


def check_env_file(path: str) -> str:
    """An absolute path of plain characters (``EnvironmentFile=`` takes no quoting)."""
    if not _ENV_FILE_PATH.fullmatch(path or ""):
        raise ConfigError(f"--env-file={path!r} is not an absolute path of letters, digits and ._@+-/",
                          hint=f"e.g. {ENV_FILE}")
    return path


__all__ = ["ENV_FILE", "carries_credentials", "check_env_file", "cron_escape", "one_line", "refuse_credentials",
           "systemd_word"]
