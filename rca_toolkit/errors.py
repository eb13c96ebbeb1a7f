"""One exception family with a hint, so every user mistake becomes one clear line.

The CLI prints ``str(error)`` (message plus hint) as one line and exits 2 (the user's input is
wrong, see README "Exit codes"); it never shows a traceback for an ``RcaError``.
"""

from __future__ import annotations


class RcaError(Exception):
    """Base error: ``message`` says what happened with which input, ``hint`` what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(RcaError):
    """A setting, parameter or command-line value is invalid."""


class ConnectionFailed(RcaError):
    """The database (or Redis) cannot be reached or the URL is malformed."""


class SchemaError(RcaError):
    """A table or column the analysis needs is missing from the live schema."""


class NotFound(RcaError):
    """A call id, file or notebook does not exist."""


class EmptyResult(RcaError):
    """A window or filter selected no rows, so no verdict is possible."""


class InputFormatError(RcaError):
    """A file could not be parsed as the format it was given as."""


class WriteRefused(RcaError):
    """A statement would write to, or lift the read-only state of, a database the toolkit only reads."""
