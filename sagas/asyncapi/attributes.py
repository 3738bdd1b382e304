"""The CloudEvents 1.0 attributes of the engine's events, as JSON Schemas for AsyncAPI message
headers: the context attributes of the CloudEvents specification and the engine's extension
attributes, with the engine's own JSON keys they stand for."""

from __future__ import annotations

from typing import Any

from sagas.definitions.model import EVENT_TYPE_PATTERN, MAX_NAME_LENGTH
from sagas.intake import MAX_SAGA_ID_LENGTH

__all__ = [
    "ATTRIBUTES",
    "COMMAND_ATTRIBUTES",
    "CONTENT_TYPE",
    "REPLY_ATTRIBUTES",
    "REQUIRED_ATTRIBUTES",
    "attributes_schema",
]

CONTENT_TYPE = "application/json"
"""The content type of an event's data."""

_STRING: dict[str, Any] = {"type": "string", "minLength": 1}

ATTRIBUTES: dict[str, dict[str, Any]] = {
    "id": _STRING
    | {
        "maxLength": 200,
        "description": "The event's id (`eventId`): unique per source; an id received twice "
        "is taken once.",
    },
    "source": _STRING
    | {
        "format": "uri-reference",
        "description": "Who produced the event (a URI reference).",
    },
    "specversion": {"type": "string", "const": "1.0", "description": "CloudEvents version."},
    "type": {
        "type": "string",
        "pattern": EVENT_TYPE_PATTERN,
        "maxLength": MAX_NAME_LENGTH,
        "description": "The event type (`eventType`). Types starting with `sagas.` belong to "
        "the engine and are refused from outside.",
    },
    "time": {
        "type": "string",
        "format": "date-time",
        "description": "When the event happened, by its producer's clock (`timestamp`, RFC "
        "3339); absent, the time the engine received it. The engine orders events by when it "
        "received them, not by this.",
    },
    "subject": _STRING
    | {
        "description": "On what the engine publishes: the correlation key of the saga "
        "instance. Not read from what it receives.",
    },
    "datacontenttype": {
        "type": "string",
        "default": CONTENT_TYPE,
        "description": "A JSON media type: the data is a JSON object. In binary mode the "
        "data's type is the message's content type instead.",
    },
    "sagaid": _STRING
    | {
        "maxLength": MAX_SAGA_ID_LENGTH,
        "description": "Extension (`sagaId`): the saga instance the event is addressed to. "
        "An event that carries it goes to that instance only: a reply echoes its command's; "
        "a trigger carries none.",
    },
    "correlationid": _STRING
    | {"description": "Extension (`correlationId`): the saga's correlation key."},
    "causationid": _STRING
    | {
        "description": "Extension (`causationId`): the id of the event that caused this one; "
        "a reply names the command it answers.",
    },
    "idempotencykey": _STRING
    | {
        "maxLength": 300,
        "description": "Extension (`idempotencyKey`), on commands: the same for every attempt "
        "of a step; what a participant deduplicates its work on.",
    },
    "attempt": {
        "type": "integer",
        "minimum": 1,
        "description": "Extension (`attempt`), on commands: which attempt of its step this is "
        "(1, 2, …).",
    },
    "schemaversion": {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "Extension (`schemaVersion`): the version of the data's shape.",
    },
}
"""Each CloudEvents attribute: its schema, saying which key of the engine's JSON it stands for."""

REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
"""The attributes CloudEvents requires of every event."""

COMMAND_ATTRIBUTES = ("sagaid", "correlationid", "causationid", "idempotencykey", "attempt")
"""What the engine puts on every command it publishes, beside the required attributes."""

REPLY_ATTRIBUTES = ("sagaid", "causationid")
"""What a reply must echo from its command: the command's ``sagaid``, and its ``id`` as the
reply's ``causationid``."""


def attributes_schema(*, required: tuple[str, ...] = REQUIRED_ATTRIBUTES) -> dict[str, Any]:
    """The JSON Schema of the attributes of an event (``required`` ones must be there)."""
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes: in binary mode the message's headers "
        "(`ce-` prefixed in HTTP), in structured mode members of the JSON envelope beside "
        "`data`. Each description names the key of the engine's own JSON format it stands for.",
        "required": list(required),
        "properties": {name: dict(schema) for name, schema in ATTRIBUTES.items()},
    }
