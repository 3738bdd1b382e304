"""The JSON Schema of an event type's data, from what the saga definitions say about it.

The ``events:`` catalogue of a definition declares event types and their descriptions, not
the shape of their data, so every payload is an open JSON object that says so. What the
definitions do fix is named: the keys a command's ``data:`` mapping sends (always all of
them, ``null`` where the expression finds nothing), and the field a trigger or an awaited
event must carry when its correlation expression is a plain field name.
"""

from __future__ import annotations

import re
from typing import Any

from sagas.asyncapi.usage import Role, Use

__all__ = ["payload_schema"]

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY: dict[str, Any] = {
    "anyOf": [{"type": "string", "minLength": 1}, {"type": "number"}],
}


def payload_schema(event_type: str, uses: list[Use]) -> dict[str, Any]:
    """The schema of the data of ``event_type``, used as ``uses`` say."""
    properties: dict[str, dict[str, Any]] = {}

    def name(key: str, schema: dict[str, Any], why: str) -> None:
        found = properties.setdefault(key, dict(schema))
        if found.get("description"):
            if why not in found["description"]:
                found["description"] += f"; {why}"
        else:
            found["description"] = why

    mapped: list[dict[str, str] | None] = []
    for use in uses:
        if use.role is Role.COMMAND and use.command is not None:
            mapped.append(use.command.data)
            for key, expression in (use.command.data or {}).items():
                name(key, {}, f"`{expression}` over the saga data of {use.saga} (null if none)")
    for use in uses:
        if use.correlation is not None and _FIELD.fullmatch(use.correlation):
            name(use.correlation, _KEY, f"the correlation key of {use.saga}")
    closed = len(mapped) == len(uses) and all(data is not None for data in mapped)
    undeclared = (
        f"The data of `{event_type}`. No data schema is declared for it (the `events:` "
        "catalogue of a definition lists event types, not their data)"
    )
    schema: dict[str, Any] = {
        "type": "object",
        "description": (
            f"{undeclared}; the engine sends exactly the keys of the command's `data:` mapping."
            if closed
            else f"{undeclared}: any JSON object; the properties named are the ones the saga "
            "definitions use."
        ),
    }
    if properties:
        schema["properties"] = properties
    if closed:
        # The engine alone publishes commands, and it sends exactly the mapped keys.
        shared = set.intersection(*(set(data or {}) for data in mapped))
        if shared:
            schema["required"] = sorted(shared)
        schema["additionalProperties"] = False
    return schema
