"""What the server tests share: a database holding sagas in every kind of state, made by real
engine runs with the participants of ``sample_services``, and the app of ``sagas serve`` on it.

``seeded_engine(database, clock)`` runs the order and travel sagas until the database holds

* completed: three orders and one trip;
* compensated: an order out of stock and an order whose card was declined;
* failed: a trip whose ``send_itinerary`` (after the pivot) gave up, and an order whose
  shipment failed and whose refund then gave up;
* running: an order whose shipment nobody answers (waiting for the reply, a timeout armed)
  and an order whose payment waits for its retry's back-off (``waitingTimer``).

The completed, compensated and failed ones start at ``Seeded.phase_one`` and end before
``Seeded.phase_two``, when the running ones start; the clock does not move after that.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI
from sample_services import (
    Participants,
    order_created,
    order_definition,
    travel_definition,
    trip_requested,
)

from sagas import SagaDefinition
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.runtime.engine import Engine
from sagas.server import create_app
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

__all__ = ["TOKEN", "Seeded", "open_app", "seeded_engine", "serving"]

TOKEN = "s3cret-operator-token-0123456789"
"""The bearer token of the apps these tests make."""


@dataclass
class Seeded:
    """The ids of the seeded instances by kind, and when the two phases started."""

    completed: list[str]
    compensated: list[str]
    failed: list[str]
    running: list[str]
    travel_failed: str
    order_failed: str
    waiting_retry: str
    stuck: str
    phase_one: datetime
    phase_two: datetime
    keys: dict[str, str]
    """Correlation key -> saga id."""

    @property
    def all(self) -> list[str]:
        return [*self.completed, *self.compensated, *self.failed, *self.running]

    def by_status(self) -> dict[InstanceStatus, list[str]]:
        return {
            InstanceStatus.COMPLETED: self.completed,
            InstanceStatus.COMPENSATED: self.compensated,
            InstanceStatus.FAILED: self.failed,
            InstanceStatus.RUNNING: self.running,
        }


def _run_out_timers(engine: Engine, clock: ManualClock, limit: int = 500) -> None:
    """Run, moving the clock from timer to timer, until no timer is left."""
    engine.run_until_idle()
    for _ in range(limit):
        due = engine.store.next_due()
        if due is None:
            return
        if due > clock.now():
            clock.advance(due - clock.now())
        engine.run_until_idle()
    raise AssertionError(f"timers still pending after {limit} rounds")


def seed(engine: Engine, clock: ManualClock) -> Seeded:
    """Register the sagas and run them until the database holds what the module says."""
    orders = engine.register(order_definition())
    trips = engine.register(travel_definition())

    def saga_id(definition: SagaDefinition, key: str) -> str:
        return saga_id_for(definition.name, key)

    keys: dict[str, str] = {}
    phase_one = clock.now()
    for key in ("ok-1", "ok-2", "ok-3", "nostock-1", "declined-1", "noship-1"):
        assert engine.publish(order_created(key, clock.now()))
        keys[key] = saga_id(orders, key)
    for key in ("trip-ok-1", "nomail-1"):
        assert engine.publish(trip_requested(key, clock.now()))
        keys[key] = saga_id(trips, key)
    _run_out_timers(engine, clock)

    clock.advance(timedelta(minutes=1))
    phase_two = clock.now()
    for key in ("stuck-1", "flaky-1"):
        assert engine.publish(order_created(key, clock.now()))
        keys[key] = saga_id(orders, key)
    engine.run_until_idle()  # the clock stays: the running ones keep waiting

    seeded = Seeded(
        completed=[keys["ok-1"], keys["ok-2"], keys["ok-3"], keys["trip-ok-1"]],
        compensated=[keys["nostock-1"], keys["declined-1"]],
        failed=[keys["nomail-1"], keys["noship-1"]],
        running=[keys["stuck-1"], keys["flaky-1"]],
        travel_failed=keys["nomail-1"],
        order_failed=keys["noship-1"],
        waiting_retry=keys["flaky-1"],
        stuck=keys["stuck-1"],
        phase_one=phase_one,
        phase_two=phase_two,
        keys=keys,
    )
    for status, ids in seeded.by_status().items():
        for one in ids:
            found = engine.store.instance(one).state
            assert found.status == status, (found.correlation_key, found.status, found.reason)
    return seeded


@contextmanager
def seeded_engine(
    database: str, clock: ManualClock
) -> Iterator[tuple[Engine, Participants, Seeded]]:
    """An engine on ``database`` with the participants attached, after :func:`seed`; the mail
    server (for ``nomail-*`` trips) and the refunds are down until a test brings them back."""
    engine = Engine(SQLStore(database), clock=clock)
    try:
        participants = Participants(mail_down=True, refund_down=True)
        participants.attach(engine)
        yield engine, participants, seed(engine, clock)
    finally:
        engine.close()


@contextmanager
def open_app(database: str, clock: ManualClock | None = None, **options: Any) -> Iterator[FastAPI]:
    """``create_app`` on a store of its own on ``database`` (closed on exit); the token is
    :data:`TOKEN` unless ``token=`` says otherwise."""
    store = SQLStore(database)
    try:
        yield create_app(
            store, **({"token": TOKEN, "clock": clock, "database": database} | options)
        )
    finally:
        store.close()


@contextmanager
def serving(app: FastAPI) -> Iterator[tuple[str, int]]:
    """``app`` served by uvicorn in a thread on a free port; yields ``(host, port)``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="sagas-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start within 20s"
            time.sleep(0.01)
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive(), "uvicorn did not stop"
