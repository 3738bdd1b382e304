"""Data mapping expressions: JMESPath (https://jmespath.org), evaluated safely, never ``eval``.

A correlation expression (``orderId``), a command's data mapping (``{orderId: orderId}``) and a
step's ``when:`` condition (``amount > `100```) are all JMESPath expressions over JSON data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError
from jmespath.functions import Functions
from jmespath.parser import ParsedResult
from pydantic import AfterValidator, WithJsonSchema

from sagas.errors import SagaError

__all__ = ["Expression", "ExpressionError", "compile_expression", "evaluate", "is_truthy"]


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> ParsedResult:
    """Compile (and cache) a JMESPath expression.

    :raises ValueError: naming the expression and the position of the syntax error.
    """
    try:
        parsed = jmespath.compile(text)
    except JMESPathError as exc:
        raise ValueError(f"invalid expression {text!r}: {_describe(exc)}") from None
    unknown = sorted(_function_names(parsed.parsed) - _KNOWN_FUNCTIONS)
    if unknown:
        # Found now rather than when a saga instance first evaluates the expression.
        names = ", ".join(f"{name}()" for name in unknown)
        raise ValueError(f"invalid expression {text!r}: unknown function {names}")
    return parsed


class ExpressionError(SagaError, ValueError):
    """An expression failed on the data it was given (a type mismatch, a bad function call)."""


def evaluate(text: str, data: Any) -> Any:
    """Evaluate the expression ``text`` against ``data`` (a JSON-like value).

    :raises ExpressionError: naming the expression and what went wrong.
    """
    try:
        return compile_expression(text).search(data)
    except (JMESPathError, TypeError, ValueError) as exc:
        raise ExpressionError(f"expression {text!r} failed: {exc}") from None


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty strings, lists and objects are false."""
    if value is None or value is False:
        return False
    # Not `value in (False, ...)`: 0 == False in Python, yet 0 is true in JMESPath.
    return not isinstance(value, str | list | dict) or len(value) > 0


_KNOWN_FUNCTIONS = frozenset(Functions().FUNCTION_TABLE)


def _function_names(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    names = {str(node["value"])} if node.get("type") == "function_expression" else set()
    for child in node.get("children", ()):
        names |= _function_names(child)
    return names


def _describe(exc: JMESPathError) -> str:
    if isinstance(exc, IncompleteExpressionError):
        message = "the expression ends too early"
    elif isinstance(exc, LexerError):
        message = exc.message
    else:
        message = getattr(exc, "msg", None) or str(exc).splitlines()[0]
    position = getattr(exc, "lex_position", None)
    return f"{message} at column {position + 1}" if isinstance(position, int) else str(message)


def _check(text: str) -> str:
    if not text.strip():
        raise ValueError("an expression cannot be empty")
    compile_expression(text)
    return text


Expression = Annotated[
    str,
    AfterValidator(_check),
    WithJsonSchema({"type": "string", "minLength": 1, "description": "A JMESPath expression."}),
]
"""A string field holding a JMESPath expression, checked for syntax when the model is built."""
