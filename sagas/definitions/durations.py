"""Durations as users write them: ``30s``, ``5m``, ``2h``, ``1d``, ``1h30m``, ``PT30S``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, TypeAdapter, WithJsonSchema

__all__ = ["Duration", "format_duration", "parse_duration"]

_UNITS = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
    "us": timedelta(microseconds=1),
}
_PART = r"(\d+(?:\.\d+)?)(d|h|ms|m|s|us)"
_COMPACT = re.compile(rf"^(?:{_PART})+$")
_PARTS = re.compile(_PART)
_ISO_PATTERN = r"P(?=\d|T\d)(?:\d+(?:\.\d+)?[YMWD])*(?:T(?:\d+(?:\.\d+)?[HMS])+)?"
_PATTERN = rf"^(?:(?:\d+(?:\.\d+)?(?:d|h|ms|m|s|us))+|{_ISO_PATTERN})$"
_ISO = TypeAdapter(timedelta)


def parse_duration(value: object) -> timedelta:
    """Parse ``30s``/``5m``/``2h``/``1d`` (and sums like ``1h30m``), ISO-8601 ``PT30S``,
    a number of seconds, or a ``timedelta``.

    :raises ValueError: with a message that shows the accepted forms.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is expected, e.g. 30s, 5m, 2h, 1d or PT30S")
    try:
        if isinstance(value, int | float):
            return timedelta(seconds=value)
        if isinstance(value, str):
            text = value.strip()
            if _COMPACT.match(text):
                return sum(
                    (float(amount) * _UNITS[unit] for amount, unit in _PARTS.findall(text)),
                    timedelta(),
                )
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration") from None
    if isinstance(value, str) and value.strip().startswith("P"):
        try:
            return _ISO.validate_python(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 2h, 1d, 1h30m or PT30S")


def format_duration(value: timedelta) -> str:
    """The compact form of a duration (``1h30m``, ``250ms``); ``parse_duration`` reads it back."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms", "us"):
        size = _UNITS[unit] // timedelta(microseconds=1)
        amount, micros = divmod(micros, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _check(value: Any) -> timedelta:
    duration = parse_duration(value)
    if duration < timedelta():
        raise ValueError("a duration cannot be negative")
    return duration


Duration = Annotated[
    timedelta,
    BeforeValidator(_check),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": _PATTERN}, {"type": "number", "minimum": 0}],
            "description": "A duration: 30s, 5m, 2h, 1d, sums like 1h30m, ISO-8601 (PT30S), "
            "or a number of seconds.",
        }
    ),
]
"""A non-negative ``timedelta`` field that reads and writes the compact duration syntax."""
