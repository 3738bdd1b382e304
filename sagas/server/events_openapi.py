"""How ``POST /events`` is described in the OpenAPI document: the four body forms, the
binary-mode headers and the answers. The route reads its body itself (after the publish
token), so FastAPI cannot derive this from a model."""

from __future__ import annotations

from typing import Any

from sagas.cloudevents import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE
from sagas.events import Event
from sagas.server.problems import problem

__all__ = ["CLOUDEVENT_SCHEMA", "REQUEST_BODY", "RESPONSES"]

_STRING = {"type": "string", "minLength": 1}
CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvent 1.0 in structured mode (JSON format).",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {**_STRING, "description": "The engine's eventId (deduplicated on)."},
        "source": _STRING,
        "type": {**_STRING, "description": "The engine's eventType (not sagas.*)."},
        "time": {"type": "string", "format": "date-time", "description": "RFC 3339."},
        "subject": _STRING,
        "datacontenttype": {"type": "string", "enum": ["application/json"]},
        "data": {"type": "object"},
        "sagaid": _STRING,
        "correlationid": _STRING,
        "causationid": _STRING,
        "idempotencykey": _STRING,
        "attempt": {"type": "integer", "minimum": 1},
        "schemaversion": {"type": "integer", "minimum": 1},
    },
}
_ENGINE_EVENT = Event.model_json_schema(by_alias=True)
_EXAMPLE_CLOUDEVENT = {
    "specversion": "1.0",
    "id": "3f1c6a52-order-1001",
    "source": "/shop/checkout",
    "type": "OrderCreated",
    "time": "2026-05-01T11:00:00Z",
    "subject": "order-1001",
    "datacontenttype": "application/json",
    "data": {"orderId": "order-1001", "items": [{"sku": "sku-1", "quantity": 1}]},
}
_EXAMPLE_EVENT = {
    "eventId": "3f1c6a52-order-1002",
    "eventType": "OrderCreated",
    "timestamp": "2026-05-01T11:00:00Z",
    "data": {"orderId": "order-1002", "items": [{"sku": "sku-1", "quantity": 1}]},
}

REQUEST_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": f"ce-{name}",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Binary mode: the CloudEvent attribute, percent-encoded.",
        }
        for name in ("specversion", "id", "source", "type", "time", "sagaid")
    ],
    "requestBody": {
        "required": True,
        "content": {
            STRUCTURED_CONTENT_TYPE: {
                "schema": CLOUDEVENT_SCHEMA,
                "example": _EXAMPLE_CLOUDEVENT,
            },
            BATCH_CONTENT_TYPE: {
                "schema": {"type": "array", "minItems": 1, "items": CLOUDEVENT_SCHEMA},
                "example": [_EXAMPLE_CLOUDEVENT | {"id": "3f1c6a52-order-1003"}],
            },
            "application/json": {
                "schema": {
                    "description": "The engine's event JSON, one or an array; or, with ce- "
                    "headers, a binary-mode CloudEvent's data.",
                    "anyOf": [
                        _ENGINE_EVENT,
                        {"type": "array", "minItems": 1, "items": _ENGINE_EVENT},
                    ],
                },
                "example": _EXAMPLE_EVENT,
            },
        },
    },
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem("Missing or wrong bearer token (the publish token)."),
    403: problem(
        "The server takes no events (read-only, or no publish token), or the token is the "
        "operator token."
    ),
    413: problem(
        "The body, an event or a batch is larger than the server's limits; names the event."
    ),
    415: problem("A content type that is not one of the four forms (binary mode: JSON only)."),
    422: problem(
        "An event was refused (malformed, not strict JSON, an engine type): ``errors`` names "
        "each by its place (``events[3]``) and id; nothing of the request was queued."
    ),
}
