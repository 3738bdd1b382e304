"""Strict JSON text: what every way in parses outside input with.

Python's ``json`` module lets the last of two equal keys win silently, accepts ``NaN`` and
``Infinity`` (which JSON has not) and turns ``1e400`` into an infinite float, turns
``"\\ud800"`` into a string no database can store, and recurses once per nesting level, so a few
kilobytes of ``[[[[…`` raise ``RecursionError``. :func:`parse_json` refuses each of these with a
clear message, and measures the nesting depth *before* parsing, without recursion, so that no
input can exhaust the stack.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sagas.errors import SagaError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_INTEGER_DIGITS",
    "MAX_JSON_DEPTH",
    "JSONDepthError",
    "JSONTextError",
    "json_depth",
    "parse_json",
]

DEFAULT_MAX_BYTES = 1024 * 1024
"""The default largest JSON text taken from outside (1 MiB)."""

MAX_JSON_DEPTH = 64
"""How deeply JSON text from outside may nest (objects and arrays)."""

MAX_INTEGER_DIGITS = 4300
"""The longest integer taken (Python's own default limit, enforced here whatever the process
set with ``sys.set_int_max_str_digits``: converting longer ones takes quadratic time)."""

# A JSON string (escapes included) or a bracket: strings are skipped so that brackets inside
# them do not count; everything else between tokens is irrelevant to the depth.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
# An escape that can produce a surrogate: only then are the parsed strings looked at.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A lone one: a high surrogate not followed by a low one, or a low one not after a high one.
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
# Strings, skipped, or a literal outside them: to say where a refused literal is.
_LITERALS = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN|-?[0-9][0-9.eE+-]*)')


class JSONTextError(SagaError, ValueError):
    """JSON text that is refused; the message says what is wrong and where."""


class JSONDepthError(JSONTextError):
    """JSON text nested too deeply (refused before it was parsed)."""


class _LiteralError(JSONTextError):
    """A literal refused while parsing; ``parse_json`` adds where it is."""

    def __init__(self, message: str, literal: str) -> None:
        super().__init__(message)
        self.literal = literal


def json_depth(text: str, limit: int) -> int:
    """The nesting depth of JSON ``text``, counting at most up to ``limit + 1`` (enough to
    know it is too deep). Iterative: any input is measured without recursion."""
    return _measure(text, limit)[0]


def _measure(text: str, limit: int) -> tuple[int, int]:
    """The depth (as :func:`json_depth`) and the offset of the first bracket past ``limit``
    (-1 when none is)."""
    brackets = text.count("[") + text.count("{")
    if brackets <= limit:
        return brackets, -1
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest, match.start()
        elif token in "]}":
            depth -= 1
    return deepest, -1


def parse_json(
    text: str | bytes,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse JSON ``text`` strictly.

    :raises JSONTextError: when the text is larger than ``max_bytes`` (``None``: no limit), not
        UTF-8, nested deeper than ``max_depth``, not valid JSON, holds an object with a key
        twice, ``NaN`` or ``Infinity`` (also a number too large for a float, e.g. ``1e400``),
        a string with a lone surrogate, or an integer of more than
        :data:`MAX_INTEGER_DIGITS` digits.
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
    elif not text.isascii():
        _encodable(text, "text")  # a str can hold what UTF-8 cannot (e.g. surrogateescape)
    text = text.removeprefix("\ufeff")
    depth, offset = _measure(text, max_depth)
    if depth > max_depth:
        line, column = _position(text, offset)
        raise JSONDepthError(
            f"nested deeper than {max_depth} levels (line {line}, column {column})"
        )
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except _LiteralError as exc:
        raise JSONTextError(f"{exc}{_where(text, exc.literal)}") from None
    except JSONTextError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONTextError(
            f"not valid JSON: {exc.msg.removesuffix(' at')} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # not expected after the checks above
        raise JSONTextError(f"not usable JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            _check_strings(value)
        except JSONTextError as exc:
            lone = _LONE_SURROGATE.search(text)
            if lone is None:  # found by the walk only (behind an escaped backslash): as is
                raise
            line, column = _position(text, lone.start())
            escape = lone.group().lower()
            raise JSONTextError(
                f"a string with a lone surrogate ({escape}), which UTF-8 cannot hold "
                f"(line {line}, column {column})"
            ) from exc
    return value


def _where(text: str, literal: str) -> str:
    """`` (line L, column C)`` of the first ``literal`` outside strings; "" if not found."""
    for match in _LITERALS.finditer(text):
        if match.group(1) == literal:
            line, column = _position(text, match.start())
            return f" (line {line}, column {column})"
    return ""


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # rare: only then look for which key it is
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONTextError(f"key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise _LiteralError(f"{name} is not a JSON number", name)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        shown = literal if len(literal) <= 40 else literal[:37] + "..."
        raise _LiteralError(f"{shown} is too large for a number (it would be infinite)", literal)
    return value


def _bounded_int(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INTEGER_DIGITS:
        raise _LiteralError(
            f"an integer of {digits:,} digits is longer than the limit of "
            f"{MAX_INTEGER_DIGITS:,} digits",
            literal,
        )
    return int(literal)


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


def _encodable(text: str, what: str = "string") -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        snippet = text[max(exc.start - 10, 0) : exc.start].encode("unicode_escape").decode()
        raise JSONTextError(
            f"{what} with a lone surrogate (\\u{ord(text[exc.start]):04x}) after {snippet!r}"
        ) from None
