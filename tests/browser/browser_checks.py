"""What the dashboard's browser tests share: participants that answer the order and travel sagas,
a database seeded by real engine runs, ``sagas serve``'s app served by uvicorn in a thread, a
worker loop in another, and Debian's Chromium driven by Playwright (never a downloaded browser).

Seeded, one instance after the other (so the list, newest first, always shows the same order):

* completed: orders ``order-1001``..``order-1003`` and trip ``trip-2001``;
* compensated: order ``nostock-1004`` (out of stock) and ``declined-1005`` (card declined);
* failed: trips ``nomail-2002`` and ``nomail-2003``, whose ``send_itinerary`` (after the pivot
  ``charge_customer``) gave up while the mail server was down.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from sagas import SagaDefinition, StepFailed, load_definition, parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.server import create_app
from sagas.store.sql import SQLStore

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
TOKEN = "browser-test-operator-token-42"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT = 20.0
"""Seconds any wait for the worker or the server may take before the test fails."""

_SHIPPED_ITINERARY = (
    "    command: {type: SendItinerary, data: {tripId: tripId, email: email}, "
    "success: ItinerarySent}\n"
    "    retry: {attempts: 20, initial_delay: 10s, factor: 2, max_delay: 1h}\n"
)
_QUICK_ITINERARY = "    handler: send_itinerary\n    retry: {attempts: 2, initial_delay: 10ms}\n"

COMPLETED_ORDERS = ("order-1001", "order-1002", "order-1003")
COMPENSATED_ORDERS = ("nostock-1004", "declined-1005")
COMPLETED_TRIPS = ("trip-2001",)
FAILED_TRIPS = ("nomail-2002", "nomail-2003")


def order_definition() -> SagaDefinition:
    """The shipped order saga."""
    return load_definition(ROOT / "definitions" / "order_fulfillment.yaml")


def travel_definition() -> SagaDefinition:
    """The shipped travel saga with ``send_itinerary`` run by a handler (which can give up on
    its own) that is retried once after 10 ms, so a real clock gets through it at once."""
    text = (ROOT / "definitions" / "travel_booking.yaml").read_text(encoding="utf-8")
    assert _SHIPPED_ITINERARY in text, "definitions/travel_booking.yaml changed: update this"
    return parse_definition(text.replace(_SHIPPED_ITINERARY, _QUICK_ITINERARY))


@dataclass
class Participants:
    """Inventory, payment, shipping, flights, hotels and mail; a key says how it behaves:
    ``nostock-*`` orders find no stock, ``declined-*`` cards are declined, and while
    ``mail_down`` is set the itineraries of ``nomail-*`` trips cannot be sent."""

    mail_down: threading.Event = field(default_factory=threading.Event)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, engine: Engine) -> None:
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
        else:
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
        return {"paymentId": f"pay-{order}"}

    def refund_payment(self, context: StepContext) -> dict[str, Any]:
        self.calls.append(("refund_payment", str(context.data.get("orderId"))))
        return {"refunded": context.data.get("paymentId")}

    def charge_customer(self, context: StepContext) -> dict[str, Any]:
        self.calls.append(("charge_customer", str(context.data.get("tripId"))))
        return {"charged": context.data.get("total")}

    def send_itinerary(self, context: StepContext) -> dict[str, Any]:
        trip = str(context.data.get("tripId"))
        self.calls.append(("send_itinerary", trip))
        if self.mail_down.is_set() and trip.startswith("nomail-"):
            raise ConnectionError("mail server down")
        return {"itinerarySent": True}

    def car(self, context: StepContext) -> None:
        self.calls.append((context.step, str(context.data.get("tripId"))))


@dataclass
class Seeded:
    """The seeded saga ids by correlation key and by status."""

    keys: dict[str, str]
    by_status: dict[InstanceStatus, list[str]]


def _order_created(order_id: str) -> Event:
    data = {"orderId": order_id, "items": [{"sku": "sku-1", "quantity": 2}], "address": "1 Road"}
    return Event.create("OrderCreated", data, at=datetime.now(UTC))


def _trip_requested(trip_id: str) -> Event:
    data = {
        "tripId": trip_id,
        "flight": "LH 400",
        "hotel": "Ritz",
        "nights": 3,
        "car": None,  # book_car is skipped
        "total": 800,  # no manager approval
        "email": "traveller@example.com",
    }
    return Event.create("TripRequested", data, at=datetime.now(UTC))


def _run_until(engine: Engine, saga_id: str, status: InstanceStatus) -> None:
    """Drive ``engine`` (on the system clock: retries wait for real) until the instance
    ends with ``status``."""
    deadline = time.monotonic() + WAIT
    while True:
        engine.run_until_idle()
        record = engine.store.instances([saga_id]).get(saga_id)
        found = record.state if record is not None else None
        if found is not None and found.status not in (
            InstanceStatus.RUNNING,
            InstanceStatus.COMPENSATING,
        ):
            assert found.status == status, (found.correlation_key, found.status, found.reason)
            return
        assert time.monotonic() < deadline, f"{saga_id} did not end within {WAIT}s"
        time.sleep(0.005)


def seed(engine: Engine, participants: Participants) -> Seeded:
    """Register the sagas and run the instances one after the other to their end."""
    orders = engine.register(order_definition())
    trips = engine.register(travel_definition())
    participants.mail_down.set()
    plan: list[tuple[SagaDefinition, str, InstanceStatus]] = [
        *((orders, key, InstanceStatus.COMPLETED) for key in COMPLETED_ORDERS),
        *((orders, key, InstanceStatus.COMPENSATED) for key in COMPENSATED_ORDERS),
        *((trips, key, InstanceStatus.COMPLETED) for key in COMPLETED_TRIPS),
        *((trips, key, InstanceStatus.FAILED) for key in FAILED_TRIPS),
    ]
    keys: dict[str, str] = {}
    by_status: dict[InstanceStatus, list[str]] = {}
    for definition, key, status in plan:
        event = _order_created(key) if definition is orders else _trip_requested(key)
        assert engine.publish(event)
        saga_id = keys[key] = saga_id_for(definition.name, key)
        _run_until(engine, saga_id, status)
        by_status.setdefault(status, []).append(saga_id)
        time.sleep(0.01)  # distinct update times: a stable order in the list
    return Seeded(keys, by_status)


@contextmanager
def running_worker(engine: Engine) -> Iterator[None]:
    """``engine.run(stop)`` in a thread of its own until the block ends."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            engine.run(stop, poll_interval=0.02)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)
            raise

    thread = threading.Thread(target=work, name="sagas-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=WAIT)
        assert not thread.is_alive(), "the worker did not stop"
    assert not failure, f"the worker failed: {failure[0]!r}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="sagas-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, f"uvicorn did not start within {WAIT}s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT)
        assert not thread.is_alive(), "uvicorn did not stop"


@dataclass
class Dashboard:
    """A seeded database, its worker running and ``sagas serve`` on it."""

    url: str
    store: SQLStore
    """The test's own view of the database (neither the worker's nor the server's)."""
    participants: Participants
    seeded: Seeded


@contextmanager
def dashboard(db_path: Path) -> Iterator[Dashboard]:
    """Seed ``db_path``, then run a worker and the server on it until the block ends."""
    database = f"sqlite:///{db_path}"
    engine = Engine(SQLStore(database))
    server_store = SQLStore(database)
    store = SQLStore(database)
    try:
        participants = Participants()
        participants.attach(engine)
        seeded = seed(engine, participants)
        # The header shows the database; the test's temporary path would clutter screenshots.
        app = create_app(server_store, token=TOKEN, database="sqlite:///sagas.db")
        with running_worker(engine), serving(app) as url:
            yield Dashboard(url, store, participants, seeded)
    finally:
        store.close()
        server_store.close()
        engine.close()
