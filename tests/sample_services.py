"""Simulated participants of the shipped order and travel sagas, shared by the server and the
browser tests (``from sample_services import ...``: pytest puts the folder of the top
``conftest.py``, ``tests/``, on ``sys.path``).

* :class:`Participants`: inventory, payment, shipping, flights, hotels, cars and mail, whose
  behaviour an order's or trip's key and two plain flags decide;
* :func:`order_definition` and :func:`travel_definition`: the shipped sagas, the travel one
  with ``send_itinerary`` run by a handler;
* :func:`order_created` and :func:`trip_requested`: the events that start them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sagas import SagaDefinition, StepFailed, load_definition, parse_definition
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine

__all__ = [
    "Participants",
    "order_created",
    "order_definition",
    "travel_definition",
    "trip_requested",
]

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (where `definitions/` lives)."""

_SHIPPED_ITINERARY = (
    "    command: {type: SendItinerary, data: {tripId: tripId, email: email}, "
    "success: ItinerarySent}\n"
)
_SHIPPED_RETRY = "    retry: {attempts: 20, initial_delay: 10s, factor: 2, max_delay: 1h}\n"
_QUICK_RETRY = "    retry: {attempts: 2, initial_delay: 10ms}\n"


def order_definition() -> SagaDefinition:
    """The shipped order saga."""
    return load_definition(ROOT / "definitions" / "order_fulfillment.yaml")


def travel_definition(quick_retry: bool = False) -> SagaDefinition:
    """The shipped travel saga, whose ``send_itinerary`` runs a handler instead of publishing a
    command (same step, same place after the pivot): a handler can give up on its own, where
    the shipped command has neither a failure reply nor a timeout.

    The retry policy stays the shipped one unless ``quick_retry``: then the step is retried
    once after 10 ms, so a real clock gets through it at once."""
    text = (ROOT / "definitions" / "travel_booking.yaml").read_text(encoding="utf-8")
    shipped = _SHIPPED_ITINERARY + _SHIPPED_RETRY
    assert shipped in text, "definitions/travel_booking.yaml changed: update this"
    retry = _QUICK_RETRY if quick_retry else _SHIPPED_RETRY
    return parse_definition(text.replace(shipped, "    handler: send_itinerary\n" + retry))


@dataclass
class Participants:
    """The services the sagas talk to; an order's or trip's key says how it behaves:

    * orders ``nostock-*``: no stock; ``declined-*``: card declined; ``noship-*``: shipment
      fails; ``stuck-*``: shipping never answers; ``flaky-*``: the first payment attempt raises;
    * trips ``nomail-*``: the itinerary cannot be sent while ``mail_down``;
    * every refund fails while ``refund_down``.

    Both flags are plain booleans, off unless set: a test flips them (even while a worker runs
    in another thread) to take a service down or bring it back.
    """

    mail_down: bool = False
    refund_down: bool = False
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
        self.calls.append(("refund_payment", str(context.data.get("orderId"))))
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


def order_created(order_id: str, at: datetime) -> Event:
    """An ``OrderCreated`` trigger of the order saga: one item, one address."""
    data = {"orderId": order_id, "items": [{"sku": "sku-1", "quantity": 1}], "address": "1 Road"}
    return Event.create("OrderCreated", data, at=at)


def trip_requested(trip_id: str, at: datetime) -> Event:
    """A ``TripRequested`` trigger of the travel saga: no car (``book_car`` is skipped) and a
    total that needs no manager approval."""
    data = {
        "tripId": trip_id,
        "flight": "LH 400",
        "hotel": "Ritz",
        "nights": 3,
        "car": None,
        "total": 800,
        "email": "traveller@example.com",
    }
    return Event.create("TripRequested", data, at=at)
