"""Strict JSON text: what every way in parses outside input with.

Python's ``json`` module lets the last of two equal keys win silently, accepts ``NaN`` and
``Infinity`` (which JSON has not), turns ``"\\ud800"`` into a string no database can store, and
recurses once per nesting level, so a few kilobytes of ``[[[[…`` raise ``RecursionError``.
:func:`parse_json` refuses each of these with a clear message, and measures the nesting depth
*before* parsing, without recursion, so that no input can exhaust the stack.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sagas.errors import SagaError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_JSON_DEPTH",
    "JSONTextError",
    "json_depth",
    "parse_json",
]

DEFAULT_MAX_BYTES = 1024 * 1024
"""The default largest JSON text taken from outside (1 MiB)."""

MAX_JSON_DEPTH = 64
"""How deeply JSON text from outside may nest (objects and arrays)."""

# A JSON string (escapes included) or a bracket: strings are skipped so that brackets inside
# them do not count; everything else between tokens is irrelevant to the depth.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class JSONTextError(SagaError, ValueError):
    """JSON text that is refused; the message says what is wrong and where."""


def json_depth(text: str, limit: int) -> int:
    """The nesting depth of JSON ``text``, counting at most up to ``limit + 1`` (enough to
    know it is too deep). Iterative: any input is measured without recursion."""
    if text.count("[") + text.count("{") <= limit:
        return min(text.count("[") + text.count("{"), limit)
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def parse_json(
    text: str | bytes,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse JSON ``text`` strictly.

    :raises JSONTextError: when the text is larger than ``max_bytes`` (``None``: no limit), not
        UTF-8, nested deeper than ``max_depth``, not valid JSON, holds an object with a key
        twice, ``NaN`` or ``Infinity``, a string with a lone surrogate, or a number too long.
    """
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if max_bytes is not None and size > max_bytes:
        raise JSONTextError(f"{size:,} bytes is more than the limit of {max_bytes:,} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONTextError(
                f"not UTF-8: byte 0x{text[exc.start]:02x} at offset {exc.start}"
            ) from None
    text = text.removeprefix("\ufeff")
    if json_depth(text, max_depth) > max_depth:
        raise JSONTextError(f"nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except JSONTextError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONTextError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
        raise JSONTextError(f"not usable JSON: {exc}") from None
    _check_strings(value)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONTextError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise JSONTextError(f"{name} is not a JSON number")


def _check_strings(value: Any) -> None:
    """Refuse strings (keys too) that cannot be written as UTF-8: lone surrogates."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _encodable(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _encodable(key)
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        snippet = text[max(exc.start - 10, 0) : exc.start].encode("unicode_escape").decode()
        raise JSONTextError(
            f"string with a lone surrogate (\\u{ord(text[exc.start]):04x}) after {snippet!r}"
        ) from None
