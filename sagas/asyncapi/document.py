"""The AsyncAPI 3.0 document of saga definitions: every channel, message and operation of the
events the engine consumes (``receive``) and publishes (``send``) for them.

One channel per event type (its address is the event type, as a broker routes by it), one
message per event type (in ``components.messages``, shared by every saga that uses the type),
and one operation per saga, direction and event type, describing each use (trigger, command,
reply, awaited event) and, for commands, the reply contract.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sagas.asyncapi.attributes import (
    COMMAND_ATTRIBUTES,
    CONTENT_TYPE,
    REPLY_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    attributes_schema,
)
from sagas.asyncapi.payloads import payload_schema
from sagas.asyncapi.usage import Role, Use, event_uses
from sagas.definitions.model import SagaDefinition

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
"""The AsyncAPI version of the documents made here."""

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_SCHEMAS = "#/components/schemas/"
_CORRELATION_IDS = "#/components/correlationIds/"
_ANY_ATTRIBUTES = "CloudEventAttributes"
_COMMAND_ATTRIBUTES = "CommandAttributes"
_REPLY_ATTRIBUTES = "ReplyAttributes"
_REPLY_ECHO = (
    "A reply carries the command's `sagaid` and names the command's `id` as its "
    "`causationid`: every attempt of a step is a new command with its own `id` (they share "
    "the `idempotencykey`), and a reply naming another attempt's `id` is ignored."
)


class _Keys:
    """Keys for the document's maps (``[A-Za-z0-9_.-]``, as AsyncAPI component keys must be),
    unique per map: a name that becomes the key of another is given a ``_2``, ``_3`` suffix."""

    def __init__(self) -> None:
        self._given: dict[object, str] = {}
        self._taken: set[str] = set()

    def __call__(self, name: str, identity: object = None) -> str:
        """The key of ``name``; what ``identity`` tells apart (default: the name) gets
        different keys even when the names are equal."""
        identity = name if identity is None else identity
        if identity in self._given:
            return self._given[identity]
        base = _KEY_UNSAFE.sub("_", name) or "_"
        key, n = base, 1
        while key in self._taken:
            n += 1
            key = f"{base}_{n}"
        self._given[identity] = key
        self._taken.add(key)
        return key


def asyncapi_document(
    definitions: Iterable[SagaDefinition], *, title: str = "sagas event contract"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``definitions`` (every version given), as JSON data.

    The same definitions give the same document; ``info.version`` is a digest of the rest, so
    it changes exactly when the contract does. No definitions give a valid, empty document.
    """
    given = list(definitions)
    uses = event_uses(given)
    keys = _Keys()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, found in uses.items():
        key = keys(event_type)
        messages[key] = _message(event_type, found)
        channels[key] = {
            "address": event_type,
            "title": event_type,
            "description": f"Events of type `{event_type}`.",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
        }
    operations = _operations(uses, keys)
    body: dict[str, Any] = {
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {
                _ANY_ATTRIBUTES: attributes_schema(),
                _COMMAND_ATTRIBUTES: attributes_schema(
                    required=REQUIRED_ATTRIBUTES + COMMAND_ATTRIBUTES
                ),
                _REPLY_ATTRIBUTES: attributes_schema(
                    required=REQUIRED_ATTRIBUTES + REPLY_ATTRIBUTES
                ),
            },
            "messages": messages,
            "correlationIds": {
                "command": {
                    "description": "A command's id: its replies name it as their `causationid`.",
                    "location": "$message.header#/id",
                },
                "reply": {
                    "description": "The id of the command a reply answers.",
                    "location": "$message.header#/causationid",
                },
            },
        },
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": f"0.0.0+{digest}",
            "description": _info(given),
        },
        "defaultContentType": CONTENT_TYPE,
        **body,
    }


def _info(definitions: list[SagaDefinition]) -> str:
    sagas = sorted({(d.name, d.version) for d in definitions})
    listed = ", ".join(f"`{name}` v{version}" for name, version in sagas) or "none"
    return (
        "The events the saga engine consumes (`receive` operations: triggers, replies, awaited "
        "events) and publishes (`send` operations: commands) for its saga definitions: "
        f"{listed}.\n\n"
        "Every event is a CloudEvents 1.0 event whose `data` is a JSON object: its attributes "
        "are the message's headers (binary mode) or the members of its JSON envelope beside "
        "`data` (structured mode); the engine's own JSON format (`eventId`, `eventType`, "
        "`timestamp`, `data`, `correlationId`, `causationId`, `sagaId`, `schemaVersion`) is "
        "accepted too. Each channel's address is an event type.\n\n"
        "No servers are listed: which way events travel (the in-process bus, `sagas publish`, "
        "the HTTP API, a broker) is the engine's configuration, not part of this contract."
    )


def _message(event_type: str, uses: list[Use]) -> dict[str, Any]:
    roles = {use.role for use in uses}
    correlation: str | None
    if all(role.sent for role in roles):
        headers_schema, correlation = _COMMAND_ATTRIBUTES, "command"
    elif all(role.reply for role in roles):
        headers_schema, correlation = _REPLY_ATTRIBUTES, "reply"
    else:
        headers_schema = _ANY_ATTRIBUTES
        correlation = "reply" if any(role.reply for role in roles) else None
    described = list(dict.fromkeys(use.description for use in uses if use.description))
    used = "\n".join(["Used by:", *(f"- {_use_line(use)}" for use in uses)])
    message: dict[str, Any] = {
        "name": event_type,
        "title": event_type,
        "summary": described[0] if described else _summary(uses),
        "description": "\n\n".join([*described, used]),
        "contentType": CONTENT_TYPE,
        "headers": {
            "allOf": [
                {"$ref": _SCHEMAS + headers_schema},
                {"properties": {"type": {"const": event_type}}},
            ]
        },
        "payload": payload_schema(event_type, uses),
    }
    if correlation is not None:
        message["correlationId"] = {"$ref": _CORRELATION_IDS + correlation}
    return message


def _summary(uses: list[Use]) -> str:
    roles = list(dict.fromkeys(use.role.value for use in uses))
    sagas = list(dict.fromkeys(use.saga for use in uses))
    return f"{' and '.join(roles).capitalize()} of {', '.join(sagas)}."


def _use_line(use: Use) -> str:
    """One use in words, with the reply contract of a command."""
    command = use.command
    if use.role is Role.COMMAND and command is not None:
        if not command.success:
            return f"command of {use.where}, published; no reply is awaited."
        replies = "success " + ", ".join(f"`{t}`" for t in command.success)
        if command.failure:
            replies += "; failure " + ", ".join(f"`{t}`" for t in command.failure)
        return f"command of {use.where}, published; replies: {replies}."
    if use.role.reply and command is not None:
        return f"{use.role.value} to `{command.type}` of {use.where}."
    if use.role is Role.TRIGGER:
        return f"trigger of {use.where}; correlation key: `{use.correlation}`."
    return f"{use.role.value} of {use.where}; correlation key: `{use.correlation}`."


def _operations(uses: dict[str, list[Use]], event_keys: _Keys) -> dict[str, Any]:
    grouped: defaultdict[tuple[str, str, str], list[Use]] = defaultdict(list)
    for event_type, found in uses.items():
        for use in found:
            action = "send" if use.role.sent else "receive"
            grouped[(use.saga, action, event_type)].append(use)
    keys = _Keys()
    operations: dict[str, Any] = {}
    for (saga, action, event_type), found in sorted(grouped.items()):
        channel = event_keys(event_type)
        key = keys(f"{saga}.{action}.{event_type}", (saga, action, event_type))
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{channel}"}],
            "title": f"{saga}: {action} {event_type}",
            "summary": _operation_summary(saga, action, event_type, found),
            "description": "\n\n".join(_explain(use) for use in found),
            "tags": [{"name": saga}],
        }
        replies = _replies(found)
        if replies:
            operation["x-sagas-replies"] = replies
        operations[key] = operation
    return operations


def _operation_summary(saga: str, action: str, event_type: str, uses: list[Use]) -> str:
    roles = " and ".join(dict.fromkeys(use.role.value for use in uses))
    verb = "publishes" if action == "send" else "consumes"
    return f"{saga} {verb} {event_type} ({roles})."


def _replies(uses: list[Use]) -> dict[str, list[str]]:
    """The reply types a command operation awaits (none for other operations)."""
    success: dict[str, None] = {}
    failure: dict[str, None] = {}
    for use in uses:
        if use.role is Role.COMMAND and use.command is not None:
            success |= dict.fromkeys(use.command.success)
            failure |= dict.fromkeys(use.command.failure)
    if not success:
        return {}
    return {"success": list(success), "failure": list(failure)}


def _explain(use: Use) -> str:
    """What one use means for whoever sends or receives the event."""
    command = use.command
    if use.role is Role.TRIGGER:
        return (
            f"Starts an instance of {use.where}, keyed by the correlation expression "
            f"`{use.correlation}` over the event's data: one instance per key (a second trigger "
            "with the same key reaches the same instance and is ignored). A trigger carries no "
            "`sagaid`; one whose data gives no key becomes a dead letter."
        )
    if use.role is Role.COMMAND and command is not None:
        if not command.success:
            return (
                f"The command of {use.where}; no reply is awaited: the step is done once the "
                "command is published."
            )
        text = (
            f"The command of {use.where}. A participant answers with one reply: success "
            + ", ".join(f"`{t}`" for t in command.success)
        )
        if command.failure:
            text += (
                "; failure "
                + ", ".join(f"`{t}`" for t in command.failure)
                + " (its `data.reason` or `data.error` says why)"
            )
        return f"{text}. {_REPLY_ECHO}"
    if use.role.reply and command is not None:
        return (
            f"The {use.role.value} to `{command.type}` of {use.where}. It must carry "
            + " and ".join(f"`{name}`" for name in REPLY_ATTRIBUTES)
            + f" (see `{command.type}`). {_REPLY_ECHO}"
        )
    outcome = "completes" if use.role is Role.AWAITED else "fails"
    return (
        f"An outside event that {outcome} the wait of {use.where}: addressed by `sagaid` when "
        f"it carries one, else by the correlation expression `{use.correlation}` over its data."
    )
