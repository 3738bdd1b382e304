"""What the server tests share: a database holding sagas in every kind of state, made by real
engine runs with the participants below, and the app of ``sagas serve`` on it.

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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sagas import SagaDefinition, StepFailed, load_definition, parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.server import create_app
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

__all__ = [
    "TOKEN",
    "Participants",
    "Seeded",
    "open_app",
    "order_definition",
    "seeded_engine",
    "travel_definition",
]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-operator-token-0123456789"
"""The bearer token of the apps these tests make."""

_SHIPPED_ITINERARY = (
    "    command: {type: SendItinerary, data: {tripId: tripId, email: email}, "
    "success: ItinerarySent}\n"
)


def order_definition() -> SagaDefinition:
    """The shipped order saga."""
    return load_definition(ROOT / "definitions" / "order_fulfillment.yaml")


def travel_definition() -> SagaDefinition:
    """The shipped travel saga, whose ``send_itinerary`` runs a handler instead of publishing a
    command (same step, same place after the pivot, same retry policy): a handler can give up
    on its own, where the shipped command has neither a failure reply nor a timeout."""
    text = (ROOT / "definitions" / "travel_booking.yaml").read_text(encoding="utf-8")
    assert _SHIPPED_ITINERARY in text, "definitions/travel_booking.yaml changed: update this"
    return parse_definition(text.replace(_SHIPPED_ITINERARY, "    handler: send_itinerary\n"))


@dataclass
class Participants:
    """The services the sagas talk to; an order's or trip's key says how it behaves:

    * orders ``nostock-*``: no stock; ``declined-*``: card declined; ``noship-*``: shipment
      fails; ``stuck-*``: shipping never answers; ``flaky-*``: the first payment attempt raises;
    * trips ``nomail-*``: the itinerary cannot be sent;
    * ``refund_down`` / ``mail_down``: refunds / itineraries fail (for every key).
    """

    refund_down: bool = True
    mail_down: bool = True
    calls: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, engine: Engine) -> None:
        """Subscribe the services to ``engine``'s bus and register the handlers."""
        self.bus = engine.bus
        for command in ("ReserveInventory", "ReleaseInventory", "ShipOrder"):
            engine.bus.subscribe(command, self.on_order_command)
        for command in ("BookFlight", "BookHotel", "CancelFlight", "CancelHotel"):
            engine.bus.subscribe(command, self.on_trip_command)
        for name in ("take_payment", "refund_payment", "charge_customer", "send_itinerary"):
            engine.handlers.register(getattr(self, name), name)
        for name in ("book_car", "cancel_car"):
            engine.handlers.register(self.car, name)

    def on_order_command(self, command: Event) -> None:
        order = str(command.data.get("orderId"))
        self.calls.append((command.event_type, order))
        if command.event_type == "ReserveInventory":
            if order.startswith("nostock-"):
                self.bus.reply(command, "InventoryReservationFailed", {"reason": "out of stock"})
            else:
                self.bus.reply(command, "InventoryReserved", {"reservationId": f"r-{order}"})
        elif command.event_type == "ReleaseInventory":
            self.bus.reply(command, "InventoryReleased", {})
        elif order.startswith("noship-"):
            self.bus.reply(command, "ShipmentFailed", {"reason": "address undeliverable"})
        elif not order.startswith("stuck-"):
            self.bus.reply(command, "OrderShipped", {"trackingId": f"trk-{order}"})

    def on_trip_command(self, command: Event) -> None:
        self.calls.append((command.event_type, str(command.data.get("tripId"))))
        replies = {
            "BookFlight": "FlightBooked",
            "BookHotel": "HotelBooked",
            "CancelFlight": "FlightCancelled",
            "CancelHotel": "HotelCancelled",
        }
        self.bus.reply(command, replies[command.event_type], {})

    def take_payment(self, context: StepContext) -> dict[str, Any]:
        order = str(context.data.get("orderId"))
        self.calls.append(("take_payment", order))
        if order.startswith("declined-"):
            raise StepFailed(f"card declined for order {order}")
        if order.startswith("flaky-") and context.attempt == 1:
            raise ConnectionError("payment gateway unreachable")
        return {"paymentId": f"pay-{order}"}

    def refund_payment(self, context: StepContext) -> dict[str, Any]:
        order = str(context.data.get("orderId"))
        self.calls.append(("refund_payment", order))
        if self.refund_down:
            raise ConnectionError("payment gateway unreachable")
        return {"refunded": context.data.get("paymentId")}

    def charge_customer(self, context: StepContext) -> dict[str, Any]:
        self.calls.append(("charge_customer", str(context.data.get("tripId"))))
        return {"charged": context.data.get("total")}

    def send_itinerary(self, context: StepContext) -> dict[str, Any]:
        trip = str(context.data.get("tripId"))
        self.calls.append(("send_itinerary", trip))
        if self.mail_down and trip.startswith("nomail-"):
            raise ConnectionError("mail server down")
        return {"itinerarySent": True}

    def car(self, context: StepContext) -> None:
        self.calls.append((context.step, str(context.data.get("tripId"))))


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


def order_created(order_id: str, at: datetime) -> Event:
    return Event.create(
        "OrderCreated",
        {"orderId": order_id, "items": [{"sku": "sku-1", "quantity": 1}], "address": "1 Road"},
        at=at,
    )


def trip_requested(trip_id: str, at: datetime) -> Event:
    data = {
        "tripId": trip_id,
        "flight": "LH 400",
        "hotel": "Ritz",
        "nights": 3,
        "car": None,  # book_car is skipped
        "total": 800,  # no manager approval
        "email": "traveller@example.com",
    }
    return Event.create("TripRequested", data, at=at)


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
    """An engine on ``database`` with the participants attached, after :func:`seed`."""
    engine = Engine(SQLStore(database), clock=clock)
    try:
        participants = Participants()
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
