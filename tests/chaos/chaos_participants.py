"""The order saga's participants for the PostgreSQL chaos test, with durable side effects.

Worker processes import this module (``--handlers chaos_participants``, with this folder on
``PYTHONPATH``). Inventory and shipping are bus subscribers answering ``ReserveInventory``,
``ReleaseInventory`` and ``ShipOrder`` with ``bus.reply``; payment is the ``take_payment`` and
``refund_payment`` handlers, as ``definitions/order_fulfillment.yaml`` names them.

Every side effect is written to the test's PostgreSQL database (its URL is in
``SAGAS_CHAOS_DB``), in two tables of its own:

* ``chaos_calls``: one row per delivery or call, without any unique key, so the test sees every
  repeat that at-least-once delivery made;
* ``chaos_effects``: the effect itself, keyed by the command's ``eventId`` or the handler's
  ``idempotency_key`` and written with ``INSERT … ON CONFLICT DO NOTHING``: the way a real
  participant uses the idempotency key to apply an effect once however often it is asked.

Both rows are committed before the participant answers, so an answer the engine recorded
implies a durable effect. A payment fails (``StepFailed``) for :data:`PAYMENT_FAIL_RATE` of the
orders, picked by a hash of the order id (the test computes the same set).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from typing import Any

import psycopg

from sagas.events import Event
from sagas.handlers import HandlerRegistry, StepContext, StepFailed
from sagas.runtime.bus import EventBus

__all__ = [
    "CREATE_TABLES",
    "DATABASE_ENV",
    "LATENCY",
    "PAYMENT_FAIL_RATE",
    "handlers",
    "payment_fails",
    "subscribe",
]

DATABASE_ENV = "SAGAS_CHAOS_DB"
"""The environment variable with the (psycopg) URL of the database the effects go to."""

PAYMENT_FAIL_RATE = 0.1
LATENCY = (0.001, 0.008)
"""How long a participant takes to act, in seconds (uniformly drawn)."""

CREATE_TABLES = (
    """
    CREATE TABLE chaos_effects (
        key text PRIMARY KEY,
        kind text NOT NULL,
        saga_id text NOT NULL,
        order_id text NOT NULL,
        pid integer NOT NULL,
        at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE TABLE chaos_calls (
        id bigserial PRIMARY KEY,
        key text NOT NULL,
        kind text NOT NULL,
        saga_id text NOT NULL,
        order_id text NOT NULL,
        outcome text NOT NULL,
        pid integer NOT NULL,
        at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
)
"""The participants' tables (the test creates them before any worker starts)."""

_RECORD_CALL = (
    "INSERT INTO chaos_calls (key, kind, saga_id, order_id, outcome, pid) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_APPLY_EFFECT = (
    "INSERT INTO chaos_effects (key, kind, saga_id, order_id, pid) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING"
)


def payment_fails(order_id: str) -> bool:
    """Whether the card of ``order_id`` is declined (deterministic: a hash of the id)."""
    digest = hashlib.blake2b(f"chaos/card/{order_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64 < PAYMENT_FAIL_RATE


class _Connections(threading.local):
    """One autocommit connection per thread of this process, opened on first use.

    Subscribers and handlers run in the worker's threads (``--concurrency``); a psycopg
    connection is not shared between them. The process id guards against a connection
    inherited through ``fork``.
    """

    conn: psycopg.Connection[Any] | None = None
    pid: int = 0

    def get(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.pid != os.getpid():
            url = os.environ.get(DATABASE_ENV)
            if not url:
                raise RuntimeError(f"{DATABASE_ENV} is not set: where do the effects go?")
            self.conn = psycopg.connect(url, autocommit=True)
            self.pid = os.getpid()
        return self.conn


_connections = _Connections()


def _record(kind: str, key: str, saga_id: str | None, order: object, apply: bool) -> bool:
    """Record one call and, when ``apply``, its effect (once per ``key``); returns whether the
    effect was new. Both are committed together before the caller answers.

    A call takes a few milliseconds first, like a remote service: a worker spends a good part
    of its time carrying out effects, and a kill often lands in the middle of that."""
    time.sleep(random.uniform(*LATENCY))
    conn = _connections.get()
    row = (key, kind, saga_id or "", str(order))
    with conn.transaction():
        conn.execute(_RECORD_CALL, (*row, "applied" if apply else "declined", os.getpid()))
        if not apply:
            return False
        return conn.execute(_APPLY_EFFECT, (*row, os.getpid())).rowcount == 1


# -- inventory and shipping: bus subscribers ------------------------------------------------

_bus: EventBus | None = None


def _reply(command: Event, event_type: str, data: dict[str, Any]) -> None:
    assert _bus is not None, "subscribe(bus) was not called"
    _bus.reply(command, event_type, data)


def reserve_inventory(command: Event) -> None:
    """Reserve the order's stock (always in stock here)."""
    _record("reserve", command.event_id, command.saga_id, command.data.get("orderId"), True)
    _reply(command, "InventoryReserved", {"reservationId": command.event_id})


def release_inventory(command: Event) -> None:
    """Put the reserved stock back."""
    _record("release", command.event_id, command.saga_id, command.data.get("orderId"), True)
    _reply(command, "InventoryReleased", {})


def ship_order(command: Event) -> None:
    """Ship the order (always deliverable here)."""
    order = command.data.get("orderId")
    _record("ship", command.event_id, command.saga_id, order, True)
    _reply(command, "OrderShipped", {"trackingId": f"trk-{order}"})


def subscribe(bus: EventBus) -> None:
    """Subscribe inventory and shipping to their commands."""
    global _bus
    _bus = bus
    bus.subscribe("ReserveInventory", reserve_inventory)
    bus.subscribe("ReleaseInventory", release_inventory)
    bus.subscribe("ShipOrder", ship_order)


# -- payment: handlers ----------------------------------------------------------------------

handlers = HandlerRegistry()


@handlers.handler(name="take_payment")
def take_payment(context: StepContext) -> dict[str, Any]:
    """Charge the order, or decline the card for the orders :func:`payment_fails` picks."""
    order = str(context.data.get("orderId"))
    declined = payment_fails(order)
    _record("payment", context.idempotency_key, context.saga_id, order, not declined)
    if declined:
        raise StepFailed(f"card declined for order {order}")
    return {"paymentId": f"pay-{order}"}


@handlers.handler(name="refund_payment")
def refund_payment(context: StepContext) -> dict[str, Any]:
    """Give the money back."""
    order = context.data.get("orderId")
    _record("refund", context.idempotency_key, context.saga_id, order, True)
    return {"refunded": context.data.get("paymentId")}
