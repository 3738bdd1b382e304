"""Random and mutated events: valid events of the shipped order saga, then broken the ways a
sender can break them (keys, types, sizes, depth, NaN, duplicate keys, bad UTF-8, surrogates,
huge numbers, the engine's own event types), as JSON text and as Python values."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

from sagas import HANDLER_FAILED, HANDLER_SUCCEEDED, OPERATOR_EVENT_TYPES, TIMER_FIRED

__all__ = ["EventInput", "hostile_value", "make_input", "valid_event"]

ORDER_TYPES = (
    "OrderCreated",
    "InventoryReserved",
    "InventoryReservationFailed",
    "InventoryReleased",
    "OrderShipped",
    "ShipmentFailed",
)
ENGINE_TYPES = (
    HANDLER_SUCCEEDED,
    HANDLER_FAILED,
    TIMER_FIRED,
    *OPERATOR_EVENT_TYPES,
    "sagas.Anything",
    "SAGAS.HandlerSucceeded",
    "Sagas.TimerFired",
)
BAD_TYPES = (
    "",
    "1Order",
    "Order Created",
    "Orderé",
    "Order\x00",
    "Order\n",
    "a" * 201,
    "-x",
    "ok:x",
    "\u202eOrder",
    "Ｏrder",
    "[red]x[/red]",
)
TIMESTAMPS = (
    "2030-01-01T00:00:00+00:00",
    "2030-01-01T00:00:00Z",
    "2030-01-01T00:00:00",
    "2030-13-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "yesterday",
    "",
    0,
    1e300,
    -1,
    None,
    "2030-01-01T00:00:00.123456789+00:00",
)


@dataclass
class EventInput:
    """One input: the JSON text a sender sends (``text``; ``None`` when only a Python value
    exists, e.g. with NaN), the parsed value (``value``), the id it carries when that id is a
    plain string (a refusal must name it), and how it was made."""

    text: bytes | None
    value: Any
    event_id: str | None
    kind: str


def valid_event(rng: random.Random, number: int) -> dict[str, Any]:
    """A valid event of the order saga in its JSON form (a trigger or a reply)."""
    order = f"o-{number}"
    event_type = rng.choice(ORDER_TYPES)
    event: dict[str, Any] = {
        "eventId": f"fuzz-{number}-{rng.randrange(1 << 30):x}",
        "eventType": event_type,
        "timestamp": "2030-01-01T00:00:00+00:00",
        "data": {
            "orderId": order,
            "items": [
                {"sku": f"sku-{n}", "qty": rng.randrange(1, 5)} for n in range(rng.randrange(3))
            ],
            "address": "1 Main St",
            "amount": rng.randrange(1, 10_000) / 100,
        },
    }
    if event_type != "OrderCreated":
        event["sagaId"] = f"saga-{rng.randrange(50)}"
        event["correlationId"] = order
    return event


def _deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for n in range(depth):
        value = [value] if n % 2 else {"d": value}
    return value


def hostile_value(rng: random.Random) -> Any:
    """A value a field should not hold, or a data value hard to keep."""
    return rng.choice(
        [
            lambda: None,
            lambda: True,
            lambda: 0,
            lambda: -1,
            lambda: 1.5,
            lambda: "",
            lambda: [],
            lambda: {},
            lambda: "x" * rng.choice([201, 10_000, 1_100_000]),
            lambda: math.nan,
            lambda: math.inf,
            lambda: -math.inf,
            lambda: 10 ** rng.choice([20, 400, 4301, 5000]),
            lambda: 1e308,
            lambda: "\ud800",
            lambda: "a\udfffb",
            lambda: "\x00",
            lambda: {"\x00": 1},
            lambda: _deep(rng.choice([10, 63, 64, 65, 100, 1000, 3000])),
            lambda: {"k": "\u202e\x1b[31m"},
            lambda: [1] * rng.choice([10, 100_000]),
            lambda: {str(n): n for n in range(rng.choice([5, 30_000]))},
        ]
    )()


def _mutate_value(rng: random.Random, event: dict[str, Any]) -> str:
    """Change the event as a value; returns what was done."""
    choice = rng.randrange(9)
    keys = list(event)
    if choice == 0:
        key = rng.choice(keys)
        del event[key]
        return f"drop {key}"
    if choice == 1:
        event[rng.choice(["extra", "EventId", "event_id", "data ", "sagaid"])] = hostile_value(rng)
        return "unknown key"
    if choice == 2:
        key = rng.choice(
            [
                *keys,
                "sagaId",
                "correlationId",
                "causationId",
                "schemaVersion",
                "idempotencyKey",
                "attempt",
            ]
        )
        event[key] = hostile_value(rng)
        return f"bad {key}"
    if choice == 3:
        event["eventType"] = rng.choice(ENGINE_TYPES)
        return "engine event type"
    if choice == 4:
        event["eventType"] = rng.choice(BAD_TYPES)
        return "bad event type"
    if choice == 5:
        event["timestamp"] = rng.choice(TIMESTAMPS)
        return "timestamp"
    if choice == 6:
        event.setdefault("data", {})
        if isinstance(event["data"], dict):
            event["data"][rng.choice(["orderId", "items", "x", "", "\x00", "\ud800"])] = (
                hostile_value(rng)
            )
        return "data value"
    if choice == 7:
        event["data"] = hostile_value(rng)
        return "data replaced"
    event["sagaId"] = rng.choice(["x" * 65, "", "\x00", "s" * 64, "\ud800", 7])
    return "saga id"


def _encode(value: Any) -> bytes | None:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True).encode(
            "utf-8", "surrogatepass"
        )
    except (ValueError, RecursionError):
        return None  # e.g. integers past Python's digit limit, nesting past the recursion limit


_TEXT_MUTATIONS = (
    "duplicate key",
    "NaN literal",
    "Infinity literal",
    "invalid UTF-8",
    "lone surrogate escape",
    "truncated",
    "byte flip",
    "trailing garbage",
    "deep brackets",
    "huge integer literal",
    "BOM",
    "two documents",
    "not an object",
    "control characters",
    "huge number literal",
)


def _mutate_text(rng: random.Random, text: bytes, event_id: str) -> tuple[bytes, str]:
    what = rng.choice(_TEXT_MUTATIONS)
    if what == "duplicate key":
        key = rng.choice([b"eventId", b"eventType", b"data", b"orderId", b"sagaId"])
        return text.replace(
            b"{", b'{"' + key + b'": "dup", ', 1
        ) if key != b"orderId" else text.replace(
            b'"orderId"', b'"orderId": "dup", "orderId"', 1
        ), what
    if what == "NaN literal":
        return text.replace(b'"amount": ', b'"amount": NaN, "x": ', 1), what
    if what == "Infinity literal":
        return text.replace(b'"amount": ', b'"amount": -Infinity, "x": ', 1), what
    if what == "invalid UTF-8":
        at = rng.randrange(len(text))
        return text[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + text[
            at:
        ], what
    if what == "lone surrogate escape":
        return text.replace(
            b'"1 Main St"', rng.choice([b'"\\ud800"', b'"\\udc00x"', b'"\\ud83d\\ud83d"']), 1
        ), what
    if what == "truncated":
        return text[: rng.randrange(len(text))], what
    if what == "byte flip":
        at = rng.randrange(len(text))
        return text[:at] + bytes([rng.randrange(256)]) + text[at + 1 :], what
    if what == "trailing garbage":
        return text + rng.choice([b"x", b"}", b" {}", b"\x00", b"\n\n{"]), what
    if what == "deep brackets":
        depth = rng.choice([65, 1000, 100_000, 500_000])
        return text.replace(
            b'"data": ', b'"data": {"d": ' + b"[" * depth + b"]" * depth + b'}, "x": ', 1
        ), what
    if what == "huge integer literal":
        return text.replace(
            b'"amount": ', b'"amount": ' + b"9" * rng.choice([4300, 4301, 100_000]) + b', "x": ', 1
        ), what
    if what == "huge number literal":
        return text.replace(
            b'"amount": ',
            b'"amount": '
            + rng.choice([b"1e400", b"-1e999", b"1" + b"0" * 400 + b".5"])
            + b', "x": ',
            1,
        ), what
    if what == "BOM":
        return b"\xef\xbb\xbf" + text, what
    if what == "two documents":
        return text + b"\n" + text, what
    if what == "not an object":
        return rng.choice([b"[]", b"null", b"1", b'"event"', b"", b"   ", b"[" + text + b"]"]), what
    return text.replace(b"1 Main St", b"\x1b[2J\x07\r\x00", 1), what


def make_input(rng: random.Random, number: int) -> EventInput:
    """One input: a valid event (1 in 8), one mutated as a value, or one mutated as text."""
    event = valid_event(rng, number)
    event_id = event["eventId"]
    roll = rng.randrange(8)
    if roll == 0:
        return EventInput(_encode(event), event, event_id, "valid")
    if roll <= 4:
        kinds = [_mutate_value(rng, event) for _ in range(rng.choice([1, 1, 2]))]
        kept = event.get("eventId")
        plain = (
            isinstance(kept, str)
            and 0 < len(kept) <= 200
            and "\x00" not in kept
            and kept.isprintable()
        )
        return EventInput(_encode(event), event, kept if plain else None, "value: " + kinds[0])
    text = _encode(event)
    assert text is not None
    mutated, what = _mutate_text(rng, text, event_id)
    # The id is still there, readable, unless the mutation may have broken it.
    intact = f'"eventId": "{event_id}"'.encode() in mutated and what in (
        "NaN literal",
        "Infinity literal",
        "lone surrogate escape",
        "huge number literal",
        "control characters",
        "deep brackets",
        "huge integer literal",
    )
    return EventInput(mutated, None, event_id if intact else None, "text: " + what)
