"""The engine's events as CloudEvents 1.0, and CloudEvents as the engine's events.

The article's event maps onto the CloudEvents attributes; the engine's metadata rides in
extension attributes (names of lowercase letters and digits only, as the specification says):

============================  =================================================================
engine (JSON key)             CloudEvents attribute
============================  =================================================================
``eventId``                   ``id`` (required)
``eventType``                 ``type`` (required)
``timestamp``                 ``time`` (RFC 3339; when absent: the time the engine received it)
``data``                      ``data`` (a JSON object; absent or ``null``: ``{}``)
``sagaId``                    ``sagaid``
``correlationId``             ``correlationid``
``causationId``               ``causationid``
``idempotencyKey``            ``idempotencykey``
``attempt``                   ``attempt`` (an integer)
``schemaVersion``             ``schemaversion`` (an integer; absent: 1)
(not kept)                    ``source`` (required), ``subject``, ``dataschema``, other
                              extensions (checked, then left out: the event has no place for them)
============================  =================================================================

Outbound, ``subject`` is the saga's correlation key when the caller knows it, ``source`` says
who sent the event, and ``datacontenttype`` is ``application/json``.

What is taken from the CloudEvents SDK (``cloudevents`` on PyPI): its event class
(:class:`cloudevents.core.v1.event.CloudEvent`), which checks the attributes' types, the
specification version and the extension names, and its HTTP binding to write events
(:func:`to_http`). What is not: its readers. They parse with :func:`json.loads` (the last of two
equal keys wins silently; ``NaN`` is taken), read ``time`` with a lenient ISO 8601 parser
(``2024-01-01`` or ``20240101T000000`` pass), fill a missing ``id`` with a random one (which would
defeat deduplication) and keep only one of two equal headers. Here bodies are parsed by
:mod:`sagas.jsontext`, ``time`` must be RFC 3339, and missing required attributes and repeated
headers are refused. Binary mode takes JSON data only (the engine's data is a JSON object).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote

from cloudevents.core.bindings.http import HTTPMessage, to_binary, to_structured
from cloudevents.core.exceptions import (
    CloudEventValidationError,
    InvalidAttributeTypeError,
    MissingRequiredAttributeError,
)
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from sagas.events import TEXT_DEPTH, Event, EventError
from sagas.jsontext import JSONTextError, parse_json

__all__ = [
    "BATCH_CONTENT_TYPE",
    "EXTENSIONS",
    "REQUIRED",
    "STRUCTURED_CONTENT_TYPE",
    "from_binary",
    "from_structured",
    "is_json_type",
    "to_cloudevent",
    "to_http",
]

STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"
SPEC_VERSION: Final = "1.0"
REQUIRED: Final = ("id", "source", "specversion", "type")
"""The attributes every CloudEvent must carry."""

EXTENSIONS: Final = {
    "sagaid": "sagaId",
    "correlationid": "correlationId",
    "causationid": "causationId",
    "idempotencykey": "idempotencyKey",
    "attempt": "attempt",
    "schemaversion": "schemaVersion",
}
"""The extension attributes that carry the engine's metadata, and their engine JSON keys."""

_INTEGERS = frozenset({"attempt", "schemaversion"})
_DIGITS = re.compile(r"-?[0-9]{1,18}")
# RFC 3339 section 5.6: full-date "T" full-time, the T and Z of either case.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_JSON_TYPE = re.compile(r"(application|text)/([A-Za-z0-9.!#$&^_-]+\+)?json", re.IGNORECASE)
_MAX_SHOWN = 60


def from_structured(value: Any, *, received_at: datetime) -> dict[str, Any]:
    """The engine's JSON form (a dict for :meth:`sagas.intake.Intake.from_dict`) of one
    structured-mode CloudEvent, already parsed strictly; ``received_at`` is its ``timestamp``
    when it has no ``time``.

    :raises EventError: naming the event id (when it has one) and every bad attribute.
    """
    if not isinstance(value, dict):
        raise EventError(f"a CloudEvent must be a JSON object, not {_json_name(value)}")
    attributes = dict(value)
    event_id = attributes.get("id") if isinstance(attributes.get("id"), str) else None
    data = attributes.pop("data", None)
    if "data_base64" in attributes:
        raise EventError(
            "data_base64: binary data is not taken; the engine's event data is a JSON object",
            event_id,
        )
    for name in [name for name, item in attributes.items() if item is None]:
        if name not in REQUIRED:  # an optional attribute that is null is absent
            del attributes[name]
    problems = _missing(attributes)
    for name, item in attributes.items():
        if isinstance(item, dict | list):
            problems.append(
                f"{_shown(name)}: an attribute is a string, an integer or a boolean, "
                f"not {_json_name(item)}"
            )
    content_type = attributes.get("datacontenttype")
    if isinstance(content_type, str) and not is_json_type(content_type):
        problems.append(
            f"datacontenttype: {_shown(content_type)} is not JSON; the engine's event data is "
            "a JSON object (application/json)"
        )
    if problems:
        raise EventError("; ".join(problems), event_id)
    return _to_engine(attributes, data, received_at)


def from_binary(
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    content_type: str | None,
    received_at: datetime,
) -> dict[str, Any]:
    """The engine's JSON form of one binary-mode CloudEvent: its attributes in ``ce-`` headers
    (percent-encoded), its data the ``body``, JSON whose type is ``content_type`` (parsed
    strictly; an empty body is no data).

    :raises EventError: naming the event id (when known) and what is wrong: a required
        attribute missing, a header given twice, data that is not a JSON object.
    """
    attributes: dict[str, Any] = {}
    problems: list[str] = []
    for name, raw in headers:
        lowered = name.lower()
        if not lowered.startswith("ce-"):
            continue
        attribute = lowered[3:]
        if not raw.isascii():
            problems.append(f"header {_shown(name)}: not ASCII (percent-encode the rest)")
            continue
        if attribute in attributes:
            problems.append(f"header {_shown(name)} is given more than once")
            continue
        try:
            attributes[attribute] = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            problems.append(f"header {_shown(name)}: its percent-encoding is not UTF-8")
            attributes[attribute] = ""
    event_id = attributes.get("id") or None
    if "datacontenttype" in attributes:
        problems.append(
            "header 'ce-datacontenttype': in binary mode the data's type is the Content-Type header"
        )
    problems += _missing(attributes)
    if problems:
        raise EventError("; ".join(problems), event_id)
    data: Any = None
    if body:
        if content_type is None or not is_json_type(content_type):
            raise EventError(
                f"binary mode takes JSON data only, not {_shown(content_type or 'untyped')}",
                event_id,
            )
        try:
            data = parse_json(body, max_bytes=None, max_depth=TEXT_DEPTH)
        except JSONTextError as exc:
            raise EventError(f"data: {exc}", event_id) from None
        attributes["datacontenttype"] = content_type
    return _to_engine(attributes, data, received_at)


def _missing(attributes: Mapping[str, Any]) -> list[str]:
    """The required attributes ``attributes`` lacks (checked before the SDK's event class,
    which would fill a missing ``id`` and ``specversion`` in)."""
    missing = [name for name in REQUIRED if name not in attributes]
    if not missing:
        return []
    return [f"required attribute(s) missing: {', '.join(missing)}"]


def _to_engine(attributes: dict[str, Any], data: Any, received_at: datetime) -> dict[str, Any]:
    event_id = attributes["id"] if isinstance(attributes["id"], str) else None
    problems: list[str] = []
    time = attributes.get("time")
    if time is None:
        attributes["time"] = received_at
    elif not isinstance(time, str) or _RFC3339.fullmatch(time) is None:
        problems.append(f"time: {_shown(time)} is not an RFC 3339 timestamp")
    else:
        try:
            attributes["time"] = datetime.fromisoformat(time.upper())
        except ValueError as exc:  # e.g. a 30th of February
            problems.append(f"time: {_shown(time)} is not a valid date and time ({exc})")
    for name in _INTEGERS & attributes.keys():
        number = attributes[name]
        if isinstance(number, str) and _DIGITS.fullmatch(number):
            attributes[name] = int(number)
        elif not isinstance(number, int) or isinstance(number, bool):
            problems.append(f"{name}: must be an integer, not {_shown(number)}")
    if data is not None and not isinstance(data, dict):
        problems.append(f"data: must be a JSON object, not {_json_name(data)}")
    if problems:
        raise EventError("; ".join(problems), event_id)
    try:
        event = CloudEvent(attributes, data)
    except CloudEventValidationError as exc:
        raise EventError(_describe(exc), event_id) from None
    mapped: dict[str, Any] = {
        "eventId": event.get_id(),
        "eventType": event.get_type(),
        "timestamp": event.get_time(),
        "data": data if data is not None else {},
    }
    for extension, key in EXTENSIONS.items():
        if extension in attributes:
            mapped[key] = attributes[extension]
    return mapped


def _describe(exc: CloudEventValidationError) -> str:
    """The SDK's errors in this project's words: ``name: what is wrong``."""
    parts: list[str] = []
    for name, errors in exc.errors.items():
        for error in errors:
            if isinstance(error, MissingRequiredAttributeError):
                parts.append(f"{_shown(name)}: required")
            elif isinstance(error, InvalidAttributeTypeError):
                parts.append(f"{_shown(name)}: must be a string")
            else:
                parts.append(f"{_shown(name)}: {error}")
    return "; ".join(dict.fromkeys(parts))


def to_cloudevent(event: Event, *, source: str, subject: str | None = None) -> CloudEvent:
    """``event`` as a CloudEvent sent by ``source``; ``subject`` is the saga's correlation key
    when known."""
    attributes: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event.event_id,
        "type": event.event_type,
        "source": source,
        "time": event.timestamp,
        "datacontenttype": "application/json",
    }
    if subject:
        attributes["subject"] = subject
    wire = event.to_dict()
    for extension, key in EXTENSIONS.items():
        if wire.get(key) is not None:
            attributes[extension] = wire[key]
    return CloudEvent(attributes, dict(event.data))


def to_http(
    event: Event, *, source: str, subject: str | None = None, binary: bool = False
) -> HTTPMessage:
    """``event`` as an HTTP message of the CloudEvents binding: structured mode (one JSON
    document, ``application/cloudevents+json``), or with ``binary`` the attributes in ``ce-``
    headers and the data as the body."""
    cloud = to_cloudevent(event, source=source, subject=subject)
    return to_binary(cloud, JSONFormat()) if binary else to_structured(cloud, JSONFormat())


def is_json_type(content_type: str) -> bool:
    """Whether a media type (with parameters) is JSON: ``application/json``, ``*/*+json``
    (``text/json`` too); a ``charset`` other than UTF-8 is not."""
    kind, _, parameters = content_type.partition(";")
    if _JSON_TYPE.fullmatch(kind.strip()) is None:
        return False
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _json_name(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true or false"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _shown(value: Any) -> str:
    """``value`` quoted, cut to a readable length (a hostile input may be megabytes)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"
