"""The one intake: every event from outside comes in through :class:`Intake`.

Whatever way an event comes — ``sagas publish`` (an argument, ``--data``, a file, standard
input), the in-process bus (a program or a participant's subscriber publishing), the HTTP API
or a broker — it is checked here, the same way, before anything is stored:

* **size**: its JSON text (as received), or the compact JSON form of an event made in process
  (:func:`event_size`), is at most ``max_event_bytes`` (1 MiB unless configured:
  ``[engine] max_event_bytes``);
* **depth**: its data nests at most :data:`~sagas.events.MAX_DATA_DEPTH` levels, and text far
  deeper is refused before it is parsed, so no input can exhaust the stack;
* **JSON**: strictly (:mod:`sagas.jsontext`): UTF-8, no key twice, no NaN or Infinity, no lone
  surrogate, no integer of thousands of digits;
* **schema**: the :class:`~sagas.events.Event` model, a saga id that fits the store, and no NUL
  character in any string (PostgreSQL cannot hold one);
* **type**: the engine's own event types (the reserved ``sagas.`` prefix: handler outcomes,
  fired timers, operator requests) are refused. Operator actions have their own ways in
  (``sagas retry|compensate|cancel|resume|skip``, or the HTTP API with a token), which record
  who acted; the engine writes its own events itself, never through the intake.

Every refusal is an :class:`~sagas.events.EventError` that names the event id when the input
had one, and where the input came from when it was read from a file or a stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any

from pydantic_core import PydanticSerializationError, to_json

from sagas.errors import SagaError
from sagas.events import (
    MAX_DATA_DEPTH,
    TEXT_DEPTH,
    Event,
    EventError,
    data_problem,
)
from sagas.jsontext import (
    DEFAULT_MAX_BYTES,
    MAX_INTEGER_DIGITS,
    JSONTextError,
    json_depth,
    parse_json,
)

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "ENGINE_TYPE_PREFIX",
    "MAX_SAGA_ID_LENGTH",
    "Intake",
    "RefusedEventsError",
    "event_size",
    "parse_data",
]

DEFAULT_MAX_EVENT_BYTES = DEFAULT_MAX_BYTES
"""The largest event taken from outside unless configured (1 MiB)."""

ENGINE_TYPE_PREFIX = "sagas."
"""Event types the engine keeps for itself (any case): never accepted from outside."""

MAX_SAGA_ID_LENGTH = 64
"""The longest ``sagaId`` the store can hold (the engine's own are 36 characters)."""

MAX_REPORTED = 20
"""How many refused events of one input are reported (the count says how many there were)."""

_ENGINE_TYPE_HINT = (
    "the 'sagas.' prefix is reserved for the engine's own events; operator actions go "
    "through `sagas retry|compensate|cancel|resume|skip` or the HTTP API with an operator token"
)
# The most an event's fields other than its data add to its JSON form: the keys (150 bytes),
# the timestamp (40), the type (200), the two numbers when below _SMALL_NUMBER, and each id at
# most 6 bytes a character (``\\u001f``). Only an event this close to the limit (or with
# larger numbers) is serialised whole to be measured.
_FIXED_OVERHEAD = 450
_SMALL_NUMBER = 10**6
_BYTES_PER_CHAR = 6
# What the serialised data must contain for the slow, naming walk to be worth it.
_SUSPECT = (b"NaN", b"Infinity", b"\\u0000")
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % (MAX_INTEGER_DIGITS + 1))


class RefusedEventsError(SagaError, ValueError):
    """Events of one input (a file, standard input) that were refused: nothing of the input
    was accepted. ``errors`` holds each refusal (the message lists the first ones)."""

    def __init__(self, source: str, errors: list[EventError], total: int) -> None:
        self.source = source
        self.errors = errors
        shown = "\n".join(f"  {error}" for error in errors[:MAX_REPORTED])
        more = (
            f"\n  ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        )
        super().__init__(
            f"{source}: {len(errors)} of {total} event(s) refused, none accepted:\n{shown}{more}"
        )


@dataclass(frozen=True)
class Intake:
    """Checks events from outside (see the module's documentation); cheap enough for the bus.

    ``max_event_bytes``: the largest event taken, in bytes of its JSON text.
    """

    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES

    def from_json(self, text: str | bytes, *, where: str = "") -> Event:
        """The event in JSON ``text``, checked.

        :raises EventError: naming the event id when known and ``where`` (a file and line).
        """
        try:
            event = Event.from_json(text, max_bytes=self.max_event_bytes)
            _check_fields(event)
            if _has_nul_escape(text):  # else no string of the event can hold a NUL
                _refuse_nul(event)
        except EventError as exc:
            raise _located(exc, where) from None
        return event

    def from_dict(self, raw: Any, *, where: str = "") -> Event:
        """The event in ``raw`` (a JSON-like dict parsed elsewhere), checked.

        :raises EventError: naming the event id when known and ``where``.
        """
        try:
            return self.check(Event.from_dict(raw))
        except EventError as exc:
            raise _located(exc, where) from None

    def create(self, event_type: str, data: dict[str, Any] | None = None, **fields: Any) -> Event:
        """A new event (see :meth:`Event.create`; ``at`` is required), checked."""
        return self.check(Event.create(event_type, data, **fields))

    def check(self, event: Event) -> Event:
        """Check a ready-made event (the bus): its type, fields, data and size.

        Cheap for an ordinary event: its data is serialised once, in Rust, and walked in Python
        only when the serialised form shows a problem may be there (to say where).

        :raises EventError: naming the event and what is wrong.
        """
        ids = _check_fields(event)
        try:
            raw = to_json(event.data)
        except (PydanticSerializationError, ValueError) as exc:
            # a lone surrogate, an unknown type, depth, an integer of thousands of digits
            problem = data_problem(event.data)
            message = problem or f"data: cannot be written as JSON: {_short(exc)}"
            raise EventError(message, event.event_id) from None
        if (
            any(suspect in raw for suspect in _SUSPECT)
            or (len(raw) > MAX_INTEGER_DIGITS and _LONG_DIGITS.search(raw) is not None)
            or (
                raw.count(b"[") + raw.count(b"{") > MAX_DATA_DEPTH
                and json_depth(raw.decode(), MAX_DATA_DEPTH) > MAX_DATA_DEPTH
            )
        ):
            event.check_data()
            _refuse_nul(event)
        if (
            len(raw) + _FIXED_OVERHEAD + _BYTES_PER_CHAR * ids > self.max_event_bytes
            or event.schema_version >= _SMALL_NUMBER
            or (event.attempt or 0) >= _SMALL_NUMBER
        ):
            size = event_size(event)
            if size > self.max_event_bytes:
                raise EventError(
                    f"{size:,} bytes is more than the limit of {self.max_event_bytes:,} bytes",
                    event.event_id,
                )
        return event

    def read(self, stream: IO[bytes], source: str) -> list[Event]:
        """Every event of ``stream``: one JSON event (which may span lines), or JSON Lines (one
        event per line, blank lines skipped), told apart by the first line. Holds at most
        ``max_event_bytes`` (and a line end) of one event in memory, whatever the input.

        :raises RefusedEventsError: when any event is refused, naming each by ``source:line``;
            then none is returned.
        """
        events: list[Event] = []
        errors: list[EventError] = []
        total = 0
        for line, text, size in self._documents(stream):
            total += 1
            where = f"{source}:{line}"
            try:
                if size < 0 or size > self.max_event_bytes:
                    raise EventError(self._too_large(size), where=where)
                events.append(self.from_json(text, where=where))
            except EventError as exc:
                errors.append(exc)
        if errors:
            raise RefusedEventsError(source, errors, total)
        return events

    def _too_large(self, size: int) -> str:
        if size < 0:
            return f"larger than the limit of {self.max_event_bytes:,} bytes"
        return f"{size:,} bytes is more than the limit of {self.max_event_bytes:,} bytes"

    def _documents(self, stream: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
        """The JSON texts of ``stream`` (without their line end), each with the line it
        starts on and its size (-1: too large, not read to its end)."""
        limit = self.max_event_bytes + 2  # one byte more than allowed, and a line end
        number, first = 0, b""
        while not first.strip():
            first = stream.readline(limit)
            number += 1
            if not first:  # nothing at all: refused as not JSON, on the last line
                yield max(number - 1, 1), b"", 0
                return
        stripped = first.strip()
        too_long = len(first) >= limit and not first.endswith(b"\n")
        if too_long or not (stripped.startswith(b"{") and stripped.endswith(b"}")):
            body = first + stream.read(limit - len(first))
            text = body.rstrip(b"\r\n")
            yield number, text, -1 if len(body) >= limit else len(text)
            return
        for text in chain([first], iter(lambda: stream.readline(limit), b"")):
            if len(text) >= limit and not text.endswith(b"\n"):
                size = len(text)
                while chunk := stream.readline(limit):  # the rest of a line too long: skipped
                    size += len(chunk.rstrip(b"\r\n"))
                    if chunk.endswith(b"\n"):
                        break
                yield number, b"", size
            elif text.strip():
                text = text.rstrip(b"\r\n")
                yield number, text, len(text)
            number += 1


def _check_fields(event: Event) -> int:
    """Refuse the engine's own types, a saga id too long and a NUL in an id; returns the
    length of the ids (for the size)."""
    if event.event_type[:6].lower() == ENGINE_TYPE_PREFIX:
        raise EventError(
            f"event type {event.event_type!r} is not accepted from outside: " + _ENGINE_TYPE_HINT,
            event.event_id,
        )
    saga_id = event.saga_id
    if saga_id is not None and len(saga_id) > MAX_SAGA_ID_LENGTH:
        raise EventError(
            f"sagaId: at most {MAX_SAGA_ID_LENGTH} characters, not {len(saga_id):,}",
            event.event_id,
        )
    ids = event.event_id + (saga_id or "") + (event.correlation_id or "")
    ids += (event.causation_id or "") + (event.idempotency_key or "")
    if "\x00" in ids:
        for name, value in _named_ids(event):
            if "\x00" in value:
                shown = None if name == "eventId" else event.event_id
                raise EventError(f"{name}: must not contain NUL characters (\\u0000)", shown)
    if not ids.isascii():
        for name, value in _named_ids(event):
            try:
                value.encode()
            except UnicodeEncodeError as exc:
                shown = None if name == "eventId" else event.event_id
                char = f"\\u{ord(value[exc.start]):04x}"
                raise EventError(f"{name}: a lone surrogate ({char}) is not text", shown) from None
    return len(ids)


def event_size(event: Event) -> int:
    """The size of an event made in process, as the intake measures it: the bytes of its
    compact JSON form without the fields left unset (as a sender would write it)."""
    try:
        compact = event.model_dump_json(by_alias=True, exclude_none=True, exclude_defaults=True)
    except (PydanticSerializationError, ValueError) as exc:  # e.g. a lone surrogate in an id
        raise EventError(f"cannot be written as JSON: {_short(exc)}", event.event_id) from None
    return len(compact.encode())


def _short(exc: Exception) -> str:
    """The last line of a serialisation error (pydantic prefixes its own words)."""
    return str(exc).strip().splitlines()[-1].removeprefix("Error serializing to JSON: ")


def parse_data(text: str | bytes, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> dict[str, Any]:
    """A JSON object given by hand (``--data``), parsed as strictly as an event's data.

    :raises ValueError: saying what is wrong (no event yet to name).
    """
    try:
        value = parse_json(text, max_bytes=max_bytes, max_depth=TEXT_DEPTH)
    except JSONTextError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object, e.g. \'{"orderId": "o-1"}\'')
    problem = data_problem(value) or _nul_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _named_ids(event: Event) -> Iterator[tuple[str, str]]:
    yield "eventId", event.event_id
    for name, value in (
        ("sagaId", event.saga_id),
        ("correlationId", event.correlation_id),
        ("causationId", event.causation_id),
        ("idempotencyKey", event.idempotency_key),
    ):
        if value is not None:
            yield name, value


def _has_nul_escape(text: str | bytes) -> bool:
    return (b"\\u0000" in text) if isinstance(text, bytes) else ("\\u0000" in text)


def _refuse_nul(event: Event) -> None:
    problem = _nul_problem(event.data)
    if problem is not None:
        raise EventError(problem, event.event_id)


def _nul_problem(data: Any, name: str = "data") -> str | None:
    """Where a NUL character is in ``data`` (strings and keys); ``None`` when nowhere."""
    pending: list[tuple[str, Any]] = [(name, data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return f"{where}: must not contain NUL characters (\\u0000)"
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"{where}: a key must not contain NUL characters (\\u0000)"
                pending.append((f"{where}.{key}", item))
        elif isinstance(value, list | tuple):
            pending.extend((f"{where}.{n}", item) for n, item in enumerate(value))
    return None


def _located(exc: EventError, where: str) -> EventError:
    if not where or exc.where:
        return exc
    return EventError(exc.reason, exc.event_id, where=where)
