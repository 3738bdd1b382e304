"""What the operations tests share: participants of the order and travel sagas whose answers a
test controls, driving an engine from timer to timer, and the runtime tests' replay check."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sagas import SagaDefinition, StepFailed, load_definition, parse_definition
from sagas.definitions.durations import parse_duration
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

# The runtime tests' checks are reused, not copied: pytest puts only the folder of the tests it
# collects on sys.path, so that one is added here (as tests/timers/timer_checks.py does).
_RUNTIME_TESTS = str(Path(__file__).resolve().parents[1] / "runtime")
if _RUNTIME_TESTS not in sys.path:
    sys.path.insert(0, _RUNTIME_TESTS)

from runtime_checks import ROOT, assert_replays, order_created  # noqa: E402

__all__ = [
    "FLEET",
    "ROOT",
    "Orders",
    "Trips",
    "assert_replays",
    "build_fleet",
    "order_created",
    "order_id",
    "run_timers_until",
    "status_is",
    "travel_definition",
    "trip_id",
]


def order_id(key: str) -> str:
    return saga_id_for("order_fulfillment", key)


def trip_id(key: str) -> str:
    return saga_id_for("travel_booking", key)


def run_timers_until(
    engine: Engine, clock: ManualClock, done: Callable[[], bool], limit: int = 50
) -> None:
    """Run until idle, then from timer to timer (moving the clock to each) until ``done``."""
    engine.run_until_idle()
    for _ in range(limit):
        if done():
            return
        due = engine.store.next_due()
        assert due is not None, "no timer left and still not done"
        if due > clock.now():
            clock.advance(due - clock.now())
        engine.run_until_idle()
    raise AssertionError(f"not done after {limit} timers")


def status_is(engine: Engine, saga_id: str, status: InstanceStatus) -> Callable[[], bool]:
    return lambda: engine.store.instance(saga_id).state.status == status


class Orders:
    """The order saga's participants. Per order key: ``silent_inventory`` never answers the
    reservation, ``failing_shipments`` answers ShipmentFailed, ``silent_shipments`` never
    answers; the refund raises while ``refund_down``; ``payment_hook`` runs inside the payment
    handler (an operator acting while it is in flight)."""

    def __init__(self, engine: Engine, clock: ManualClock) -> None:
        self.engine, self.clock = engine, clock
        self.silent_inventory: set[str] = set()
        self.failing_shipments: set[str] = set()
        self.silent_shipments: set[str] = set()
        self.declined_payments: set[str] = set()
        self.crashing_payments: set[str] = set()
        self.refund_down = False
        self.payment_seconds = 0.0
        self.payment_hook: Callable[[StepContext], None] | None = None
        self.counts: Counter[str] = Counter()
        self.payments: list[tuple[str, int, dict[str, Any]]] = []
        self.refund_attempts: list[int] = []
        self.commands: list[Event] = []
        self._lock = threading.Lock()
        engine.bus.subscribe("ReserveInventory", self.reserve)
        engine.bus.subscribe("ReleaseInventory", self.release)
        engine.bus.subscribe("ShipOrder", self.ship)
        engine.handlers.register(self.take_payment, "take_payment")
        engine.handlers.register(self.refund_payment, "refund_payment")

    def _count(self, what: str, command: Event | None = None) -> None:
        with self._lock:
            self.counts[what] += 1
            if command is not None:
                self.commands.append(command)

    def reserve(self, command: Event) -> None:
        self._count("reserve", command)
        if command.data.get("orderId") not in self.silent_inventory:
            self.engine.bus.reply(command, "InventoryReserved", {"reservationId": "r-1"})

    def release(self, command: Event) -> None:
        self._count("release", command)
        self.engine.bus.reply(command, "InventoryReleased", {})

    def ship(self, command: Event) -> None:
        self._count("ship", command)
        order = command.data.get("orderId")
        if order in self.failing_shipments:
            self.engine.bus.reply(command, "ShipmentFailed", {"error": "no such street"})
        elif order not in self.silent_shipments:
            self.engine.bus.reply(command, "OrderShipped", {"trackingId": f"t-{order}"})

    def take_payment(self, context: StepContext) -> dict[str, Any]:
        self._count("payment")
        order = str(context.data.get("orderId"))
        with self._lock:
            self.payments.append((order, context.attempt, dict(context.data)))
        if self.payment_hook is not None:
            self.payment_hook(context)
        if self.payment_seconds:
            self.clock.advance(self.payment_seconds)
        if order in self.declined_payments:
            raise StepFailed("card declined")
        if order in self.crashing_payments:
            raise RuntimeError("payment service unreachable")
        return {"paymentId": f"pay-{order}"}

    def refund_payment(self, context: StepContext) -> dict[str, Any]:
        assert context.compensating
        with self._lock:
            self.refund_attempts.append(context.attempt)
        if self.refund_down:
            raise RuntimeError("bank down")
        self._count("refund")
        return {"refunded": True}

    def start(self, key: str) -> str:
        assert self.engine.publish(order_created(key, self.clock.now()))
        return order_id(key)

    def fail_with_refund_down(self, keys: list[str]) -> list[str]:
        """Orders whose shipment fails and whose refund then gives up: ``failed``."""
        self.failing_shipments.update(keys)
        self.refund_down = True
        ids = [self.start(key) for key in keys]

        def all_failed() -> bool:
            states = self.engine.store.instances(ids).values()
            return all(r.state.status == InstanceStatus.FAILED for r in states)

        run_timers_until(self.engine, self.clock, all_failed)
        return ids


def travel_definition(itinerary_attempts: int = 2) -> SagaDefinition:
    """The shipped travel saga, whose ``send_itinerary`` is given a 30s timeout and
    ``itinerary_attempts`` tries: as shipped it has neither a failure reply nor a timeout, so
    it can never give up (it waits for ever)."""
    raw = yaml.safe_load((ROOT / "definitions" / "travel_booking.yaml").read_text())
    for step in raw["steps"]:
        if step["name"] == "send_itinerary":
            step["timeout"] = "30s"
            step["retry"] = {"attempts": itinerary_attempts, "initial_delay": "10s", "jitter": 0}
    definition = parse_definition(yaml.safe_dump(raw))
    shipped = load_definition(ROOT / "definitions" / "travel_booking.yaml")
    assert [s.name for s in definition.steps] == [s.name for s in shipped.steps]
    return definition


class Trips:
    """The travel saga's participants; the itinerary mailer is silent while ``mailer_down``."""

    def __init__(self, engine: Engine, clock: ManualClock) -> None:
        self.engine, self.clock = engine, clock
        self.mailer_down = False
        self.sent: list[Event] = []
        bus = engine.bus
        for command, reply, data in (
            ("BookFlight", "FlightBooked", {"flightRef": "F1"}),
            ("BookHotel", "HotelBooked", {"hotelRef": "H1"}),
            ("CancelFlight", "FlightCancelled", {}),
            ("CancelHotel", "HotelCancelled", {}),
        ):
            bus.subscribe(command, self.answer(reply, data))
        bus.subscribe("SendItinerary", self.send_itinerary)
        engine.handlers.register(lambda context: {"carRef": "C1"}, "book_car")
        engine.handlers.register(lambda context: None, "cancel_car")
        engine.handlers.register(lambda context: {"charged": True}, "charge_customer")

    def answer(self, reply: str, data: dict[str, Any]) -> Callable[[Event], None]:
        def subscriber(command: Event) -> None:
            self.engine.bus.reply(command, reply, data)

        return subscriber

    def send_itinerary(self, command: Event) -> None:
        self.sent.append(command)
        if not self.mailer_down:
            self.engine.bus.reply(command, "ItinerarySent", {})

    def start(self, key: str, total: int = 500) -> str:
        data = {
            "tripId": key,
            "flight": "LH123",
            "hotel": "Ritz",
            "nights": 2,
            "car": "compact",
            "total": total,
            "email": "a@example.com",
        }
        assert self.engine.publish(Event.create("TripRequested", data, at=self.clock.now()))
        return trip_id(key)


FLEET = ("c-1", "p-1", "f-1", "c-2", "x-1", "r-1", "w-1")
"""The order keys of :func:`build_fleet`, oldest first."""


def build_fleet(url: str, clock: ManualClock, order: SagaDefinition) -> dict[str, str]:
    """Seven orders at known times (T is the clock's time on entry); their ids by key:

    ======  =========================================  =======  ===========  ==============
    key     what                                       version  started      updated
    ======  =========================================  =======  ===========  ==============
    c-1     completed                                  1        T            T
    p-1     compensated (the shipment failed)          1        T+2h         T+2h
    f-1     failed (the refund gave up), retried at     1        T+4h         T+9h
            T+9h and failed again; failed_step
            take_payment
    c-2     completed                                  2        T+6h         T+6h
    x-1     cancelled while reserving                  2        T+7h30m      T+7h30m10s
    r-1     running, shipment in flight                2        T+9h30m      T+9h30m
    w-1     running, payment waiting for its retry     2        T+9h30m1s    T+9h30m1s
    ======  =========================================  =======  ===========  ==============

    The clock is left at T+9h30m1s; nothing is run after that (the retry of w-1 is due 1s
    later, give or take its jitter)."""
    from sagas.engine.operator import OperatorAction
    from sagas.operations import ActionRequest, Operations

    with saga_engine(url, clock=clock) as engine:
        engine.register(order)
        orders = Orders(engine, clock)
        operations = Operations(engine.store, clock)
        ids = {key: order_id(key) for key in FLEET}

        start = clock.now()

        def is_(key: str, status: InstanceStatus) -> Callable[[], bool]:
            return status_is(engine, ids[key], status)

        def at(offset: str) -> None:
            moment = start + parse_duration(offset)
            assert moment >= clock.now(), (offset, clock.now() - start)
            clock.advance(moment - clock.now())

        orders.start("c-1")
        engine.run_until_idle()
        at("2h")
        orders.failing_shipments.add("p-1")
        orders.start("p-1")
        run_timers_until(engine, clock, is_("p-1", InstanceStatus.COMPENSATED))
        at("4h")
        orders.fail_with_refund_down(["f-1"])
        at("6h")
        assert engine.register(order.model_copy(update={"description": "v2"})).version == 2
        orders.start("c-2")
        engine.run_until_idle()
        at("7h30m")
        orders.silent_inventory.add("x-1")
        orders.start("x-1")
        engine.run_until_idle()
        clock.advance("10s")
        cancel = ActionRequest(OperatorAction.CANCEL, "fleet")
        assert operations.act(ids["x-1"], cancel).status_after == InstanceStatus.CANCELLED
        at("9h")
        retried = operations.act(ids["f-1"], ActionRequest(OperatorAction.RETRY, "fleet"))
        assert retried.status_after == InstanceStatus.COMPENSATING
        run_timers_until(engine, clock, is_("f-1", InstanceStatus.FAILED))
        at("9h30m")
        orders.silent_shipments.add("r-1")
        orders.start("r-1")
        engine.run_until_idle()
        clock.advance("1s")
        orders.crashing_payments.add("w-1")
        orders.start("w-1")
        engine.run_until_idle()
    return ids
