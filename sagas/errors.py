"""The one root of every error the engine raises, and the errors that carry ids and places."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DefinitionError", "Problem", "SagaError", "format_path"]


class SagaError(Exception):
    """Root of every error raised by the saga engine."""


def format_path(path: Sequence[str | int]) -> str:
    """Render a field path the way users write it: ``steps[1].retry.attempts``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(definition)"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a saga definition, and where it is.

    ``source`` is the file (or ``<python>`` with the builder's call site in ``line``),
    ``field`` the dotted path of the offending field.
    """

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


class DefinitionError(SagaError):
    """A saga definition is invalid; ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        header = f"invalid saga definition ({count} problem{'s' if count != 1 else ''})"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))
