"""One door for every definition, YAML or Python: field rules (pydantic) and graph rules together,
every problem reported at once with its place."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sagas.definitions import model
from sagas.definitions.graph import Path, graph_problems
from sagas.definitions.schedule import Schedule
from sagas.errors import DefinitionError, Problem, format_path

__all__ = ["MAX_PROBLEMS", "Locate", "validate_definition"]

MAX_PROBLEMS = 100
"""The most problems reported for one definition (a count of the others follows them)."""

Locate = Callable[[Path], int | None]
"""Maps a field path to the line that holds it (``None`` when unknown)."""


def validate_definition(
    raw: Any,
    *,
    source: str = "<python>",
    locate: Locate | None = None,
    handlers: Collection[str] | None = None,
) -> model.SagaDefinition:
    """Validate a raw definition (a YAML document or the builder's dump) into a model.

    ``handlers``: registered handler names to check references against (``None``: not checked).

    :raises DefinitionError: listing every problem as ``source:line: field: message``.
    """

    def problem(path: Path, message: str) -> Problem:
        return Problem(source, locate(path) if locate else None, format_path(path), message)

    if raw is None:
        raise DefinitionError([problem((), "empty; a saga definition is a mapping of fields")])
    if not isinstance(raw, Mapping):
        raise DefinitionError([problem((), "a saga definition must be a mapping of fields")])
    found: list[tuple[Path, str]] = []
    definition: model.SagaDefinition | None = None
    try:
        definition = model.SagaDefinition.model_validate(raw)
    except ValidationError as exc:
        found += [
            (_path(error), _message(error))
            for error in exc.errors(include_url=False)
            if not _counts_only_invalid_items(error)
        ]
    found += graph_problems(raw, handlers)
    if found or definition is None:
        # Placing a problem on its line costs a walk of the document: only the problems shown.
        problems = sorted({problem(path, message) for path, message in found[:MAX_PROBLEMS]})
        problems.sort(key=_reading_order)
        if len(found) > MAX_PROBLEMS:
            more = len(found) - MAX_PROBLEMS
            problems.append(problem((), f"and {more:,} more problems not shown"))
        raise DefinitionError(problems)
    return definition


def _reading_order(problem: Problem) -> tuple[int, str, str]:
    return (problem.line or 0, problem.field, problem.message)


def _path(error: ErrorDetails) -> Path:
    # Keys of dicts and indices of lists stay; pydantic's own markers ("[key]") go.
    return tuple(part for part in error["loc"] if part != "[key]")


def _counts_only_invalid_items(error: ErrorDetails) -> bool:
    # pydantic counts only the items that validated, so a list whose every item is invalid is
    # also reported as too short; its items are reported one by one already.
    given = error.get("input")
    return (
        error["type"] == "too_short"
        and isinstance(given, list)
        and len(given) >= error.get("ctx", {}).get("min_length", 0)
    )


_TYPE_MESSAGES = {
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping of fields",
}


def _message(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        if name in _field_names():
            return "is not allowed here"
        close = difflib.get_close_matches(name, _field_names(), n=1)
        return f"unknown field{f' (did you mean {close[0]!r}?)' if close else ''}"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "too_short":
        return f"needs at least {ctx['min_length']} item{'s' if ctx['min_length'] != 1 else ''}"
    if kind == "string_pattern_mismatch":
        return model.pattern_problem(error["input"], ctx["pattern"])
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "value_error":
        return str(ctx["error"])
    message = error["msg"]
    return message.replace("Input should be", "must be", 1) if message else kind


@cache
def _field_names() -> tuple[str, ...]:
    classes: list[type[BaseModel]] = [
        model.SagaDefinition,
        model.Step,
        model.Command,
        model.Wait,
        model.RetryPolicy,
        model.EventSpec,
        Schedule,
    ]
    return tuple(sorted({name for cls in classes for name in cls.model_fields}))
