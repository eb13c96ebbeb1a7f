"""What a run amounts to, as one of four outcomes; only ``rca_toolkit.cli.main`` turns it into an exit code.

Why: the exit code is a contract with schedulers and scripts (README, "Exit codes"). Commands,
runs, runbooks and scheduled reports say *what happened* (an :class:`Outcome`) and never pick a
number, so the table lives in one place and a new command cannot drift from it.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable

from rca_toolkit.errors import RcaError


class Outcome(Enum):
    """Ordered from best to worst: the outcome of several runs is the worst of theirs."""

    CLEAR = "clear"  # ran, nothing to act on (PASS / WARN / OK / WATCH)
    FOUND = "found"  # ran and found something (FAIL, ACT, a phantom write, a missing index)
    BAD_INPUT = "bad_input"  # the user's input is wrong (a missing table, an unreachable database, a bad value)
    INTERNAL_ERROR = "internal_error"  # the toolkit failed (a bug, a crashed kernel)

    @property
    def rank(self) -> int:
        """Severity: CLEAR 0 < FOUND 1 < BAD_INPUT 2 < INTERNAL_ERROR 3."""
        return list(Outcome).index(self)

    @classmethod
    def worst(cls, outcomes: Iterable[Outcome], default: Outcome | None = None) -> Outcome:
        """The most severe of ``outcomes``; ``default`` (CLEAR unless given) when there are none."""
        return max(outcomes, key=lambda o: o.rank, default=default or cls.CLEAR)

    @classmethod
    def of_failure(cls, exception_name: str | None) -> Outcome:
        """BAD_INPUT when a run failed on an ``RcaError`` (a kernel reports only the class name), else INTERNAL_ERROR."""
        return cls.BAD_INPUT if exception_name in rca_error_names() else cls.INTERNAL_ERROR


def rca_error_names() -> set[str]:
    """Class names of ``RcaError`` and every subclass imported so far (all of ``rca_toolkit.errors`` at least)."""
    names, todo = set(), [RcaError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


__all__ = ["Outcome", "rca_error_names"]
