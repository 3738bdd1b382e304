"""Events: immutable records of something that happened; commands are events too.

On the wire an event is JSON with exactly the keys ``eventId``, ``eventType``, ``timestamp``,
``data``, ``correlationId``, ``causationId``, ``sagaId`` and ``schemaVersion``; a command also
carries ``idempotencyKey`` and ``attempt`` (left out of the JSON of events without them).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from sagas.definitions.model import EVENT_TYPE_PATTERN, pattern_problem
from sagas.errors import SagaError
from sagas.jsontext import (
    DEFAULT_MAX_BYTES,
    MAX_INTEGER_DIGITS,
    JSONDepthError,
    JSONTextError,
    parse_json,
)

__all__ = [
    "MAX_DATA_DEPTH",
    "TEXT_DEPTH",
    "Event",
    "EventError",
    "brackets",
    "data_problem",
    "new_event_id",
]

MAX_DATA_DEPTH = 64
"""How deeply event data may nest. Saga data is stored inside its instance's state, and the
store's JSON reader stops at 200 levels: deeper data would leave an instance unreadable."""


TEXT_DEPTH = MAX_DATA_DEPTH * 2
"""How deeply an event's JSON text may nest to be parsed at all. Deeper than the data may, so
that data nested a little too deeply is refused naming the event and where (by
:func:`data_problem`); far deeper text is refused before it is parsed."""

_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}
"""What a JSON value parsed into a Python one was, in JSON's words."""


def data_problem(data: Any, name: str = "data") -> str | None:
    """Why ``data`` cannot be kept (nested deeper than :data:`MAX_DATA_DEPTH`, a NaN or
    infinite number, which JSON has not, a string with a lone surrogate, which UTF-8 has
    not, or an integer of more than :data:`~sagas.jsontext.MAX_INTEGER_DIGITS` digits, which
    JSON readers refuse), naming where (from ``name``); ``None`` when it can."""
    pending: list[tuple[str, int, Any]] = [(name, 0, data)]
    while pending:
        where, depth, value = pending.pop()
        if isinstance(value, str):
            if not value.isascii() and not _utf8(value):
                return f"{where}: a string with a lone surrogate, which UTF-8 cannot hold"
        elif isinstance(value, dict):
            if depth >= MAX_DATA_DEPTH:
                return f"{where}: nested deeper than {MAX_DATA_DEPTH} levels"
            for key, item in value.items():
                if isinstance(key, str) and not key.isascii() and not _utf8(key):
                    return f"{where}: a key with a lone surrogate, which UTF-8 cannot hold"
                pending.append((f"{where}.{key}", depth + 1, item))
        elif isinstance(value, list | tuple):
            if depth >= MAX_DATA_DEPTH:
                return f"{where}: nested deeper than {MAX_DATA_DEPTH} levels"
            pending.extend(
                (f"{where}.{index}", depth + 1, item) for index, item in enumerate(value)
            )
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{where}: {value} is not a JSON number"
        elif isinstance(value, int) and abs(value) >= _INTEGER_LIMIT:
            return f"{where}: an integer of more than {MAX_INTEGER_DIGITS:,} digits"
    return None


_INTEGER_LIMIT = 10**MAX_INTEGER_DIGITS


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def new_event_id() -> str:
    """A fresh, unique event id, laid out as a UUIDv7 (RFC 9562): ordered by creation time, so
    ids written together sit together in the database's indexes."""
    millis = time.time_ns() // 1_000_000 & (1 << 48) - 1
    rand = int.from_bytes(os.urandom(10))
    value = millis << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62
    return uuid.UUID(int=value | rand & (1 << 62) - 1).hex


class EventError(SagaError, ValueError):
    """An event that cannot be accepted; ``event_id`` is set when the input had one."""

    def __init__(self, message: str, event_id: str | None = None, *, where: str = "") -> None:
        # An id that is no string (a caller's mistake the message reports) is not quoted.
        event_id = event_id if isinstance(event_id, str) else None
        self.event_id = event_id
        self.where = where
        """Where the input came from (``events.jsonl:3``), when it came from a file."""
        self.reason = message
        """The message without the event and where."""
        what = f"event {event_id!r}: " if event_id else "event: "
        super().__init__(f"{where}: {what}{message}" if where else what + message)


def _is_none(value: object) -> bool:
    return value is None


class Event(BaseModel):
    """An immutable event (or command) with its metadata."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    event_id: str = Field(min_length=1, max_length=200)
    event_type: str = Field(pattern=EVENT_TYPE_PATTERN, max_length=200)
    timestamp: AwareDatetime
    data: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None
    causation_id: str | None = None
    saga_id: str | None = None
    schema_version: int = Field(1, ge=1)
    idempotency_key: str | None = Field(None, min_length=1, max_length=300, exclude_if=_is_none)
    """On a command: the key every attempt of its step shares, to deduplicate on (absent from
    the JSON when not set, as on every other event)."""
    attempt: int | None = Field(None, ge=1, exclude_if=_is_none)
    """On a command: which attempt of its step it is (1, 2, …; absent when not set)."""

    @classmethod
    def create(
        cls,
        event_type: str,
        data: dict[str, Any] | None = None,
        *,
        at: datetime,
        event_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        saga_id: str | None = None,
        schema_version: int = 1,
        idempotency_key: str | None = None,
        attempt: int | None = None,
    ) -> Event:
        """A new event of ``event_type`` stamped ``at`` (the caller's clock).

        :raises EventError: when a field is invalid.
        """
        try:
            return cls(
                event_id=event_id or new_event_id(),
                event_type=event_type,
                timestamp=at,
                data=data or {},
                correlation_id=correlation_id,
                causation_id=causation_id,
                saga_id=saga_id,
                schema_version=schema_version,
                idempotency_key=idempotency_key,
                attempt=attempt,
            )
        except ValidationError as exc:
            raise EventError(_describe(exc), event_id) from None

    @classmethod
    def from_json(cls, text: str | bytes, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> Event:
        """Parse one event from its JSON form, strictly (see :func:`sagas.jsontext.parse_json`).

        Events from outside go through :class:`sagas.intake.Intake`, which also refuses the
        engine's own event types.

        :raises EventError: naming the event id (when there is one) and every bad field.
        """
        try:
            raw = parse_json(text, max_bytes=max_bytes, max_depth=TEXT_DEPTH)
        except JSONDepthError as exc:
            raise EventError(f"{exc}; event data may nest {MAX_DATA_DEPTH} levels") from None
        except JSONTextError as exc:
            raise EventError(str(exc)) from None
        event = cls._validated(raw)
        # The parser refused NaN and lone surrogates; the data can only nest too deeply when
        # the text has brackets enough (most events have few: then the data is not walked).
        if brackets(text) > MAX_DATA_DEPTH + 1:
            event.check_data()
        return event

    @classmethod
    def from_dict(cls, raw: Any) -> Event:
        """Validate one event from its JSON-like dict form.

        :raises EventError: naming the event id (when there is one) and every bad field.
        """
        event = cls._validated(raw)
        event.check_data()
        return event

    @classmethod
    def _validated(cls, raw: Any) -> Event:
        if not isinstance(raw, dict):
            what = _JSON_TYPE_NAMES.get(type(raw), type(raw).__name__)
            raise EventError(f"must be a JSON object, not {what}")
        event_id = raw.get("eventId")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise EventError(
                _describe(exc), event_id if isinstance(event_id, str) else None
            ) from None

    def check_data(self) -> None:
        """Refuse data that could not be kept (see :func:`data_problem`).

        :raises EventError: naming the event and where in its data the problem is.
        """
        problem = data_problem(self.data)
        if problem is not None:
            raise EventError(problem, self.event_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict with the camelCase wire keys."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        """The JSON wire form."""
        return self.model_dump_json(by_alias=True)


def brackets(text: str | bytes) -> int:
    """How many objects and arrays JSON ``text`` opens at most (an upper bound of its depth)."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(event)"
        message = error["msg"]
        if error["type"] == "string_pattern_mismatch":  # the rule in words, not a regex
            message = pattern_problem(error["input"], error.get("ctx", {}).get("pattern", ""))
        parts.append(f"{field}: {message}")
    return "; ".join(parts)
