"""The pure state machine, one scenario at a time: ``decide(definition, state, event, now)``.

Each test drives one saga instance with hand-made replies, handler outcomes and fired timers and
checks the effects ``decide`` asks for, in order. Effects are summarised as short strings with
the saga id left out (``publish ReserveInventory reserve_inventory/1``) so a scenario reads like
its timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sagas.definitions import load_definition, parse_definition
from sagas.definitions.model import SagaDefinition
from sagas.engine.decide import CorrelationError, Decision, correlation_key, decide, saga_id_for
from sagas.engine.effects import (
    CancelTimer,
    Effect,
    Finish,
    InvokeHandler,
    PublishCommand,
    ScheduleTimer,
    TimerKind,
)
from sagas.engine.internal import handler_failed, handler_succeeded, timer_fired
from sagas.engine.state import InstanceStatus, SagaState, StepStatus
from sagas.errors import SagaError
from sagas.events import Event

ROOT = Path(__file__).resolve().parents[2]
ORDER = load_definition(ROOT / "definitions" / "order_fulfillment.yaml")
TRAVEL = load_definition(ROOT / "definitions" / "travel_booking.yaml")
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

ORDER_DATA: dict[str, Any] = {
    "orderId": "o-1",
    "items": [{"sku": "A-1", "qty": 2}],
    "address": "1 Main St",
}
TRIP_DATA: dict[str, Any] = {
    "tripId": "t-1",
    "flight": "LH 400",
    "hotel": "Ritz",
    "nights": 3,
    "car": "compact",
    "total": 5000,
    "email": "a@example.com",
}


class Instance:
    """One saga instance driven event by event; keeps every effect asked for so far."""

    def __init__(self, definition: SagaDefinition, data: dict[str, Any], at: datetime = T0) -> None:
        self.definition = definition
        self.now = at
        self.trigger = Event.create(definition.trigger, data, at=at, event_id="trigger-1")
        self.decision = decide(definition, None, self.trigger, at)
        self.state: SagaState = self.decision.state
        self.effects: list[Effect] = list(self.decision.effects)
        self._count = 0

    @property
    def saga_id(self) -> str:
        return self.state.saga_id

    def deliver(self, event: Event) -> Decision:
        """Decide ``event`` at the current time and keep the outcome."""
        self.decision = decide(self.definition, self.state, event, self.now)
        self.state = self.decision.state
        self.effects += self.decision.effects
        return self.decision

    def event(self, event_type: str, data: dict[str, Any] | None = None, **meta: Any) -> Event:
        """An outside event for this instance (a unique id, the current time)."""
        self._count += 1
        return Event.create(
            event_type, data, at=self.now, event_id=f"e-{self._count}", saga_id=self.saga_id, **meta
        )

    def action_id(self, step: str, attempt: int = 1, undo: bool = False) -> str:
        return f"{self.saga_id}/{step}/{'undo/' if undo else ''}{attempt}"

    def reply(
        self,
        event_type: str,
        step: str,
        attempt: int = 1,
        data: dict[str, Any] | None = None,
        undo: bool = False,
    ) -> Decision:
        """A participant's reply to the command of ``step`` (its try number ``attempt``)."""
        command = self.action_id(step, attempt, undo)
        assert any(
            isinstance(e, PublishCommand) and e.command.event_id == command for e in self.effects
        ), f"{command} was never published"
        return self.deliver(self.event(event_type, data, causation_id=command))

    def invocation(self, step: str, attempt: int = 1, undo: bool = False) -> InvokeHandler:
        key = self.action_id(step, attempt, undo)
        matching = [
            e for e in self.effects if isinstance(e, InvokeHandler) and e.idempotency_key == key
        ]
        assert matching, f"no handler was invoked as {key}"
        return matching[0]

    def handler_returns(
        self,
        step: str,
        result: dict[str, Any] | None = None,
        attempt: int = 1,
        undo: bool = False,
    ) -> Decision:
        invocation = self.invocation(step, attempt, undo)
        return self.deliver(handler_succeeded(invocation, self.saga_id, result or {}, self.now))

    def handler_raises(
        self,
        step: str,
        error: str,
        retryable: bool,
        attempt: int = 1,
        undo: bool = False,
    ) -> Decision:
        invocation = self.invocation(step, attempt, undo)
        return self.deliver(handler_failed(invocation, self.saga_id, error, retryable, self.now))

    def timer(self, timer_id: str) -> ScheduleTimer:
        """The timer scheduled as ``timer_id`` (written without the saga id)."""
        full = f"{self.saga_id}/{timer_id}"
        matching = [e for e in self.effects if isinstance(e, ScheduleTimer) and e.timer_id == full]
        assert matching, f"timer {timer_id} was never scheduled"
        return matching[-1]

    def fire(self, timer_id: str) -> Decision:
        """Move the clock to the timer's due time (if later) and fire it."""
        timer = self.timer(timer_id)
        self.now = max(self.now, timer.due_at)
        return self.deliver(timer_fired(timer, self.saga_id, self.now))


def summary(effects: Sequence[Effect], saga_id: str) -> list[str]:
    """Effects as short strings, ids written without the saga id."""

    def short(text: str) -> str:
        return text.removeprefix(f"{saga_id}/")

    lines = []
    for effect in effects:
        match effect:
            case ScheduleTimer():
                lines.append(f"schedule {short(effect.timer_id)}")
            case CancelTimer():
                lines.append(f"cancel {short(effect.timer_id)}")
            case PublishCommand():
                lines.append(
                    f"publish {effect.command.event_type} {short(effect.command.event_id)}"
                )
            case InvokeHandler():
                lines.append(f"invoke {effect.handler} {short(effect.idempotency_key)}")
            case Finish():
                lines.append(f"finish {effect.status.value}")
    return lines


def effects_of(instance: Instance) -> list[str]:
    return summary(instance.decision.effects, instance.saga_id)


def statuses(state: SagaState) -> dict[str, str]:
    return {name: step.status.value for name, step in state.steps.items()}


def assert_ignored(decision: Decision, before: SagaState, why: str) -> None:
    assert decision.ignored
    assert decision.effects == ()
    assert decision.state == before
    assert decision.note.startswith("ignored: ")
    assert why in decision.note


def assert_back_off(waited: timedelta, base: timedelta, jitter: float) -> None:
    """``waited`` is the back-off ``base`` spread by at most ``±jitter`` of it."""
    assert base * (1 - jitter) <= waited <= base * (1 + jitter)


def order_waiting_for_shipment() -> Instance:
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory", data={"reservationId": "r-9"})
    order.handler_returns("take_payment", {"paymentId": "p-7"})
    return order


def completed_order() -> Instance:
    order = order_waiting_for_shipment()
    order.reply("OrderShipped", "ship", data={"trackingNumber": "z-3"})
    assert order.state.status == InstanceStatus.COMPLETED
    return order


# -- starting ------------------------------------------------------------------------------


def test_an_order_trigger_starts_the_saga_with_its_deadline_and_reserves_inventory() -> None:
    order = Instance(ORDER, ORDER_DATA)

    assert effects_of(order) == [
        "schedule deadline",
        "schedule reserve_inventory/1/timeout",
        "publish ReserveInventory reserve_inventory/1",
    ]
    deadline, timeout, publish = order.decision.effects
    assert isinstance(deadline, ScheduleTimer)
    assert deadline.kind == TimerKind.DEADLINE
    assert deadline.due_at == T0 + timedelta(hours=1)
    assert isinstance(timeout, ScheduleTimer)
    assert timeout.due_at == T0 + timedelta(seconds=30)
    assert isinstance(publish, PublishCommand)
    command = publish.command
    assert command.data == {"orderId": "o-1", "items": [{"sku": "A-1", "qty": 2}]}
    assert command.saga_id == order.saga_id
    assert command.correlation_id == "o-1"
    assert command.causation_id == "trigger-1"
    assert order.state.status == InstanceStatus.RUNNING
    assert order.state.correlation_key == "o-1"
    assert statuses(order.state) == {
        "reserve_inventory": "running",
        "take_payment": "pending",
        "ship": "pending",
    }


def test_a_trigger_without_the_correlation_key_raises_correlation_error() -> None:
    trigger = Event.create("OrderCreated", {"items": []}, at=T0)

    with pytest.raises(CorrelationError, match="orderId"):
        decide(ORDER, None, trigger, T0)


@pytest.mark.parametrize("key", [None, "", {"nested": 1}, ["a"], True])
def test_a_correlation_key_must_be_a_non_empty_scalar(key: object) -> None:
    with pytest.raises(CorrelationError):
        correlation_key("orderId", {"orderId": key})


def test_an_event_of_another_type_does_not_start_the_saga() -> None:
    with pytest.raises(SagaError, match="does not start saga 'order_fulfillment'"):
        decide(ORDER, None, Event.create("OrderShipped", {"orderId": "o-1"}, at=T0), T0)


def test_saga_ids_are_derived_from_the_saga_name_and_the_correlation_key() -> None:
    order = Instance(ORDER, ORDER_DATA)
    again = Instance(ORDER, ORDER_DATA, at=T0 + timedelta(days=1))

    assert order.saga_id == again.saga_id == saga_id_for("order_fulfillment", "o-1")
    assert saga_id_for("order_fulfillment", "o-2") != order.saga_id
    assert saga_id_for("travel_booking", "o-1") != order.saga_id
    assert correlation_key("orderId", {"orderId": 42}) == "42"
    assert saga_id_for("order_fulfillment", "42") == saga_id_for("order_fulfillment", "42")


def test_a_second_trigger_with_the_same_key_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    before = order.state
    again = Event.create("OrderCreated", ORDER_DATA, at=T0, event_id="trigger-2")

    decision = order.deliver(again)

    assert_ignored(decision, before, "already started")


# -- the happy path ------------------------------------------------------------------------


def test_the_order_happy_path_completes_and_merges_replies_and_handler_results() -> None:
    order = Instance(ORDER, ORDER_DATA)

    order.reply("InventoryReserved", "reserve_inventory", data={"reservationId": "r-9"})
    assert effects_of(order) == [
        "cancel reserve_inventory/1/timeout",
        "schedule take_payment/1/timeout",
        "invoke take_payment take_payment/1",
    ]

    order.handler_returns("take_payment", {"paymentId": "p-7"})
    assert effects_of(order) == [
        "cancel take_payment/1/timeout",
        "schedule ship/1/timeout",
        "publish ShipOrder ship/1",
    ]
    [ship] = [e for e in order.decision.effects if isinstance(e, PublishCommand)]
    assert ship.command.data == {"orderId": "o-1", "address": "1 Main St"}

    order.reply("OrderShipped", "ship", data={"trackingNumber": "z-3"})
    assert effects_of(order) == ["cancel ship/1/timeout", "cancel deadline", "finish completed"]

    state = order.state
    assert state.status == InstanceStatus.COMPLETED
    assert state.reason is None
    assert state.completed == ("reserve_inventory", "take_payment", "ship")
    assert set(statuses(state).values()) == {"succeeded"}
    assert state.data == ORDER_DATA | {
        "reservationId": "r-9",
        "paymentId": "p-7",
        "trackingNumber": "z-3",
    }


def test_a_fire_and_forget_command_succeeds_once_published() -> None:
    notify = parse_definition(
        """
        name: notify
        trigger: Go
        correlation: id
        steps:
          - name: announce
            pivot: true
            command: {type: Announce}
          - name: record
            command: {type: Record, success: Recorded}
        """
    )
    instance = Instance(notify, {"id": "n-1"})

    assert effects_of(instance) == ["publish Announce announce/1", "publish Record record/1"]
    assert statuses(instance.state) == {"announce": "succeeded", "record": "running"}


# -- failures and compensation -------------------------------------------------------------


def test_a_declined_payment_releases_the_inventory_only() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory")

    order.handler_raises("take_payment", "card declined", retryable=False)

    assert effects_of(order) == [
        "cancel take_payment/1/timeout",
        "publish ReleaseInventory reserve_inventory/undo/1",
    ]
    assert order.state.status == InstanceStatus.COMPENSATING
    assert order.state.reason == "step 'take_payment' failed: card declined"
    assert order.state.step("take_payment").status == StepStatus.FAILED

    released = order.reply("InventoryReleased", "reserve_inventory", undo=True)

    assert effects_of(order) == ["cancel deadline", "finish compensated"]
    assert released.state.status == InstanceStatus.COMPENSATED
    assert released.state.reason == "step 'take_payment' failed: card declined"
    assert statuses(order.state) == {
        "reserve_inventory": "compensated",
        "take_payment": "failed",
        "ship": "not_run",  # never ran: compensation cut the saga short
    }
    assert not any(isinstance(e, InvokeHandler) and e.compensating for e in order.effects)


def test_a_failed_shipment_refunds_the_payment_then_releases_the_inventory() -> None:
    order = order_waiting_for_shipment()

    order.reply("ShipmentFailed", "ship", data={"reason": "unknown address"})

    assert order.state.reason == "step 'ship' failed: ShipmentFailed: unknown address"
    assert effects_of(order) == [
        "cancel ship/1/timeout",
        "invoke refund_payment take_payment/undo/1",
    ]
    order.handler_returns("take_payment", {"refundId": "f-1"}, undo=True)
    assert effects_of(order) == ["publish ReleaseInventory reserve_inventory/undo/1"]
    order.reply("InventoryReleased", "reserve_inventory", undo=True)
    assert effects_of(order) == ["cancel deadline", "finish compensated"]
    assert statuses(order.state) == {
        "reserve_inventory": "compensated",
        "take_payment": "compensated",
        "ship": "failed",
    }
    assert order.state.data["refundId"] == "f-1"


def test_a_pivot_that_times_out_for_good_fails_the_saga_for_an_operator() -> None:
    # The parcel may have left: refunding and releasing now could undo what it relies on.
    order = order_waiting_for_shipment()

    order.fire("ship/1/timeout")

    assert effects_of(order) == ["cancel deadline", "finish failed"]
    assert order.state.status == InstanceStatus.FAILED
    assert order.state.reason == (
        "the pivot 'ship' gave up with its outcome unknown (timed out after 5m): "
        "retry it, or skip it if it was done"
    )
    assert statuses(order.state) == {
        "reserve_inventory": "succeeded",
        "take_payment": "succeeded",
        "ship": "failed",
    }
    assert order.state.step("ship").outcome_unknown


def test_compensations_run_in_reverse_order_of_completion_not_of_definition() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("HotelBooked", "book_hotel")
    trip.handler_returns("book_car")
    trip.reply("FlightBooked", "book_flight")
    assert trip.state.completed == ("book_hotel", "book_car", "book_flight")

    trip.deliver(trip.event("TripRejected", {"reason": "too dear"}))

    assert effects_of(trip) == [
        "cancel manager_approval/1/timeout",
        "publish CancelFlight book_flight/undo/1",
    ]
    assert trip.state.reason == "step 'manager_approval' failed: TripRejected: too dear"
    trip.reply("FlightCancelled", "book_flight", undo=True)
    assert effects_of(trip) == ["invoke cancel_car book_car/undo/1"]
    trip.handler_returns("book_car", undo=True)
    assert effects_of(trip) == ["publish CancelHotel book_hotel/undo/1"]
    trip.reply("HotelCancelled", "book_hotel", undo=True)
    assert effects_of(trip) == ["cancel deadline", "finish compensated"]


def test_a_compensation_that_gives_up_fails_the_saga_with_a_reason() -> None:
    order = order_waiting_for_shipment()
    order.reply("ShipmentFailed", "ship")

    for attempt in range(1, 5):
        order.handler_raises(
            "take_payment", "bank down", retryable=True, undo=True, attempt=attempt
        )
        assert effects_of(order) == [f"schedule take_payment/undo/{attempt + 1}/retry"]
        order.fire(f"take_payment/undo/{attempt + 1}/retry")
        assert effects_of(order) == [f"invoke refund_payment take_payment/undo/{attempt + 1}"]
    order.handler_raises("take_payment", "bank down", retryable=True, undo=True, attempt=5)

    assert effects_of(order) == ["cancel deadline", "finish failed"]
    assert order.state.status == InstanceStatus.FAILED
    assert order.state.reason == "compensation of 'take_payment' gave up: bank down"
    assert order.state.step("take_payment").status == StepStatus.FAILED
    # The inventory is still reserved: an operator decides, nothing runs behind their back.
    assert order.state.step("reserve_inventory").status == StepStatus.SUCCEEDED
    assert not any(
        isinstance(e, PublishCommand) and e.command.event_type == "ReleaseInventory"
        for e in order.effects
    )


AFTER_PIVOT = """
name: after_pivot
trigger: Go
correlation: id
steps:
  - name: reserve
    command: {type: Reserve, success: Reserved}
    compensation: {command: {type: Release, success: Released}}
  - name: charge
    pivot: true
    command: {type: Charge, success: Charged, failure: ChargeFailed}
  - name: deliver
    command: {type: Deliver, success: Delivered, failure: DeliveryFailed}
    retry: {attempts: 2, initial_delay: 1m, jitter: 0}
"""


def test_a_step_after_the_pivot_that_gives_up_fails_the_saga_and_is_never_compensated() -> None:
    saga = Instance(parse_definition(AFTER_PIVOT), {"id": "x-1"})
    saga.reply("Reserved", "reserve")
    saga.reply("Charged", "charge")

    saga.reply("DeliveryFailed", "deliver", data={"error": "no driver"})

    assert effects_of(saga) == ["finish failed"]
    assert saga.state.status == InstanceStatus.FAILED
    assert saga.state.reason == "step 'deliver' after the pivot gave up: DeliveryFailed: no driver"
    assert statuses(saga.state) == {
        "reserve": "succeeded",
        "charge": "succeeded",
        "deliver": "failed",
    }
    assert not any(isinstance(e, PublishCommand) and e.compensating for e in saga.effects)


def test_the_pivot_failing_compensates_the_steps_before_it() -> None:
    saga = Instance(parse_definition(AFTER_PIVOT), {"id": "x-1"})
    saga.reply("Reserved", "reserve")

    saga.reply("ChargeFailed", "charge")

    assert effects_of(saga) == ["publish Release reserve/undo/1"]
    assert saga.state.status == InstanceStatus.COMPENSATING


# -- retries, timeouts and late replies ----------------------------------------------------


def test_a_crashing_payment_handler_is_retried_after_the_policy_back_off() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory")
    order.now += timedelta(seconds=4)

    order.handler_raises("take_payment", "connection reset", retryable=True)

    assert effects_of(order) == ["cancel take_payment/1/timeout", "schedule take_payment/2/retry"]
    retry = order.timer("take_payment/2/retry")
    assert retry.kind == TimerKind.RETRY
    assert retry.attempt == 2
    policy = ORDER.step("take_payment").retry  # 1s, ±10 %
    assert_back_off(retry.due_at - order.now, policy.initial_delay, policy.jitter)
    payment = order.state.step("take_payment")
    assert payment.retry_due == retry.due_at
    assert payment.error == "connection reset"
    assert payment.status == StepStatus.RUNNING

    order.fire("take_payment/2/retry")

    assert effects_of(order) == [
        "schedule take_payment/2/timeout",
        "invoke take_payment take_payment/2",
    ]
    assert order.timer("take_payment/2/timeout").due_at == retry.due_at + timedelta(seconds=10)
    assert order.state.step("take_payment").attempt == 2
    assert order.state.step("take_payment").retry_due is None


def test_a_handler_whose_retries_are_spent_fails_its_step() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory")
    order.handler_raises("take_payment", "connection reset", retryable=True)
    order.fire("take_payment/2/retry")

    order.handler_raises("take_payment", "connection reset", retryable=True, attempt=2)

    assert effects_of(order) == [
        "cancel take_payment/2/timeout",
        "publish ReleaseInventory reserve_inventory/undo/1",
    ]
    assert order.state.reason == "step 'take_payment' failed: connection reset"


def test_a_command_that_times_out_is_retried_with_growing_back_off_then_undone() -> None:
    order = Instance(ORDER, ORDER_DATA)
    policy = ORDER.step("reserve_inventory").retry  # 3 attempts, 1s then 2s, ±10 %

    for attempt, base in ((1, timedelta(seconds=1)), (2, timedelta(seconds=2))):
        order.fire(f"reserve_inventory/{attempt}/timeout")
        # The timeout timer that fired is gone already: nothing to cancel.
        assert effects_of(order) == [f"schedule reserve_inventory/{attempt + 1}/retry"]
        due = order.timer(f"reserve_inventory/{attempt + 1}/retry").due_at
        assert_back_off(due - order.now, base, policy.jitter)
        order.fire(f"reserve_inventory/{attempt + 1}/retry")
        assert effects_of(order) == [
            f"schedule reserve_inventory/{attempt + 1}/timeout",
            f"publish ReserveInventory reserve_inventory/{attempt + 1}",
        ]

    order.fire("reserve_inventory/3/timeout")

    # No answer is no proof that nothing was reserved: the reservation is released too.
    assert effects_of(order) == ["publish ReleaseInventory reserve_inventory/undo/1"]
    assert order.state.reason == "step 'reserve_inventory' failed: timed out after 30s"
    assert order.state.step("reserve_inventory").outcome_unknown
    order.reply("InventoryReleased", "reserve_inventory", undo=True)
    assert order.state.status == InstanceStatus.COMPENSATED


def test_the_retry_back_off_is_the_same_when_the_decision_is_replayed() -> None:
    first = Instance(ORDER, ORDER_DATA)
    second = Instance(ORDER, ORDER_DATA)
    first.fire("reserve_inventory/1/timeout")
    second.fire("reserve_inventory/1/timeout")

    assert first.decision == second.decision
    # ... while another instance gets its own jitter, so retries do not arrive in lockstep.
    other = Instance(ORDER, ORDER_DATA | {"orderId": "o-2"})
    other.fire("reserve_inventory/1/timeout")
    assert (
        other.timer("reserve_inventory/2/retry").due_at
        != first.timer("reserve_inventory/2/retry").due_at
    )


def test_a_reply_that_arrives_after_its_timeout_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.fire("reserve_inventory/1/timeout")
    order.fire("reserve_inventory/2/retry")
    before = order.state

    late = order.reply("InventoryReserved", "reserve_inventory", attempt=1)

    assert_ignored(
        late,
        before,
        f"reply to '{order.action_id('reserve_inventory', 1)}', step 'reserve_inventory' "
        f"awaits '{order.action_id('reserve_inventory', 2)}'",
    )
    order.reply("InventoryReserved", "reserve_inventory", attempt=2)
    assert order.state.step("reserve_inventory").status == StepStatus.SUCCEEDED


def test_a_reply_while_the_step_waits_for_its_retry_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.fire("reserve_inventory/1/timeout")
    before = order.state

    late = order.reply("InventoryReserved", "reserve_inventory", attempt=1)

    assert_ignored(late, before, "no step is waiting for InventoryReserved")


def test_a_handler_outcome_of_an_earlier_attempt_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory")
    order.fire("take_payment/1/timeout")
    order.fire("take_payment/2/retry")
    before = order.state

    late = order.handler_returns("take_payment", attempt=1)

    assert_ignored(late, before, "outcome of attempt 1, step 'take_payment' is past it")


def test_a_duplicate_reply_after_the_step_succeeded_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    reply = order.event(
        "InventoryReserved",
        {"reservationId": "r-9"},
        causation_id=order.action_id("reserve_inventory"),
    )
    order.deliver(reply)
    before = order.state

    duplicate = order.deliver(reply)

    assert_ignored(duplicate, before, "no step is waiting for InventoryReserved")


def test_a_duplicate_handler_outcome_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory")
    outcome = handler_succeeded(order.invocation("take_payment"), order.saga_id, {}, T0)
    order.deliver(outcome)
    before = order.state

    duplicate = order.deliver(outcome)

    assert_ignored(duplicate, before, "no handler of step 'take_payment' is running")


def test_a_stale_timeout_of_an_earlier_attempt_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.fire("reserve_inventory/1/timeout")
    order.fire("reserve_inventory/2/retry")
    before = order.state

    stale = order.fire("reserve_inventory/1/timeout")

    assert_ignored(stale, before, "stale timeout timer for attempt 1")


def test_a_timeout_after_the_step_succeeded_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory")
    before = order.state

    stale = order.fire("reserve_inventory/1/timeout")

    assert_ignored(stale, before, "step 'reserve_inventory' is succeeded")


def test_a_retry_timer_that_fires_twice_starts_one_attempt() -> None:
    order = Instance(ORDER, ORDER_DATA)
    order.fire("reserve_inventory/1/timeout")
    order.fire("reserve_inventory/2/retry")
    before = order.state

    again = order.fire("reserve_inventory/2/retry")

    assert_ignored(again, before, "stale retry timer for attempt 2")


# -- when, fork and join, wait, delay ------------------------------------------------------


def test_a_step_whose_when_is_false_is_skipped() -> None:
    trip = Instance(TRAVEL, TRIP_DATA | {"car": None, "total": 800})

    assert effects_of(trip) == [
        "schedule deadline",
        "schedule book_flight/1/timeout",
        "publish BookFlight book_flight/1",
        "schedule book_hotel/1/timeout",
        "publish BookHotel book_hotel/1",
    ]
    assert trip.state.step("book_car").status == StepStatus.SKIPPED
    assert "book_car: skipped (when: car != null)" in trip.decision.note

    trip.reply("FlightBooked", "book_flight")
    trip.reply("HotelBooked", "book_hotel")

    # The approval is skipped too (a cheap trip), so the charge follows the two bookings.
    assert effects_of(trip) == [
        "cancel book_hotel/1/timeout",
        "schedule charge_customer/1/timeout",
        "invoke charge_customer charge_customer/1",
    ]
    assert trip.state.step("manager_approval").status == StepStatus.SKIPPED


def test_parallel_bookings_start_together_and_the_join_waits_for_all_three() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)

    assert effects_of(trip) == [
        "schedule deadline",
        "schedule book_flight/1/timeout",
        "publish BookFlight book_flight/1",
        "schedule book_hotel/1/timeout",
        "publish BookHotel book_hotel/1",
        "schedule book_car/1/timeout",
        "invoke book_car book_car/1",
    ]
    trip.reply("FlightBooked", "book_flight")
    assert effects_of(trip) == ["cancel book_flight/1/timeout"]
    trip.handler_returns("book_car", {"carRef": "c-5"})
    assert effects_of(trip) == ["cancel book_car/1/timeout"]
    assert trip.state.step("manager_approval").status == StepStatus.PENDING

    trip.reply("HotelBooked", "book_hotel")

    assert effects_of(trip) == [
        "cancel book_hotel/1/timeout",
        "schedule manager_approval/1/timeout",
    ]
    assert trip.state.step("manager_approval").status == StepStatus.RUNNING
    assert "manager_approval: waiting for TripApproved" in trip.decision.note


def test_a_wait_step_completes_when_its_event_arrives() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("FlightBooked", "book_flight")
    trip.reply("HotelBooked", "book_hotel")
    trip.handler_returns("book_car")

    trip.deliver(trip.event("TripApproved", {"approver": "m-1"}))

    assert effects_of(trip) == [
        "cancel manager_approval/1/timeout",
        "schedule charge_customer/1/timeout",
        "invoke charge_customer charge_customer/1",
    ]
    assert trip.state.step("manager_approval").status == StepStatus.SUCCEEDED
    assert trip.state.data["approver"] == "m-1"


def test_a_wait_step_fails_when_its_failure_event_arrives() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("FlightBooked", "book_flight")
    trip.reply("HotelBooked", "book_hotel")
    trip.handler_returns("book_car")

    trip.deliver(trip.event("TripRejected"))

    assert trip.state.status == InstanceStatus.COMPENSATING
    assert trip.state.step("manager_approval").status == StepStatus.FAILED
    assert trip.state.reason == "step 'manager_approval' failed: TripRejected"
    assert effects_of(trip) == [
        "cancel manager_approval/1/timeout",
        "invoke cancel_car book_car/undo/1",
    ]


COOL_OFF = """
name: cool_off
trigger: Go
correlation: id
steps:
  - name: wait_a_bit
    delay: 10m
  - name: notify
    pivot: true
    command: {type: Notify, success: Notified}
"""


def test_a_delay_step_completes_when_its_delay_timer_fires() -> None:
    saga = Instance(parse_definition(COOL_OFF), {"id": "c-1"})

    assert effects_of(saga) == ["schedule wait_a_bit/1/delay"]
    delay = saga.timer("wait_a_bit/1/delay")
    assert delay.kind == TimerKind.DELAY
    assert delay.due_at == T0 + timedelta(minutes=10)

    saga.fire("wait_a_bit/1/delay")

    assert effects_of(saga) == ["publish Notify notify/1"]
    assert saga.state.step("wait_a_bit").status == StepStatus.SUCCEEDED
    assert saga.now == T0 + timedelta(minutes=10)


def test_the_saga_deadline_while_waiting_compensates() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("FlightBooked", "book_flight")
    trip.reply("HotelBooked", "book_hotel")
    trip.handler_returns("book_car")

    trip.fire("deadline")

    assert trip.now == T0 + timedelta(days=3)
    assert trip.state.status == InstanceStatus.COMPENSATING
    assert trip.state.reason is not None
    assert trip.state.reason.startswith("deadline of")
    assert trip.state.step("manager_approval").status == StepStatus.INTERRUPTED
    decided = effects_of(trip)
    assert "cancel manager_approval/1/timeout" in decided
    assert decided[-1] == "invoke cancel_car book_car/undo/1"
    assert not any(line.startswith(("publish", "invoke")) for line in decided[:-1])


def test_compensation_interrupts_a_step_in_flight_and_undoes_it_first() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("FlightBooked", "book_flight")

    trip.reply("HotelUnavailable", "book_hotel")

    # The car is still being booked: compensation does not wait for it. It may have been
    # booked, so it is cancelled too, first (it started last).
    assert trip.state.status == InstanceStatus.COMPENSATING
    assert trip.state.step("book_car").outcome_unknown
    assert effects_of(trip) == [
        "cancel book_hotel/1/timeout",
        "cancel book_car/1/timeout",
        "invoke cancel_car book_car/undo/1",
    ]
    assert "book_car: interrupted (its outcome is unknown: compensated too)" in trip.decision.note
    assert_ignored(trip.fire("deadline"), trip.state, "while compensating")


def test_a_late_success_during_its_compensation_undoes_the_step_once_more() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("FlightBooked", "book_flight")
    trip.reply("HotelUnavailable", "book_hotel")  # interrupts the car booking, cancels it

    # The car was booked after all, and the rental firm may have seen the cancellation first.
    late = trip.handler_returns("book_car", {"carRef": "c-9"})

    assert "its compensation will run once more" in late.note
    assert "carRef" not in trip.state.data  # a late reply never moves the saga forward
    assert effects_of(trip) == []
    trip.handler_returns("book_car", undo=True)
    assert effects_of(trip) == ["invoke cancel_car book_car/undo/2"]
    trip.handler_returns("book_car", undo=True, attempt=2)
    assert effects_of(trip) == ["publish CancelFlight book_flight/undo/1"]
    trip.reply("FlightCancelled", "book_flight", undo=True)
    assert trip.state.status == InstanceStatus.COMPENSATED
    assert statuses(trip.state) == {
        "book_flight": "compensated",
        "book_hotel": "failed",
        "book_car": "compensated",
        "manager_approval": "not_run",
        "charge_customer": "not_run",
        "send_itinerary": "not_run",
    }


def test_a_success_after_the_saga_ended_compensated_undoes_the_step_it_reports() -> None:
    # The hotel answered after its step had timed out: the saga compensated the flight and,
    # not knowing, the hotel too; the late "booked" may have crossed the cancellation.
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("FlightBooked", "book_flight")
    trip.handler_returns("book_car")
    trip.fire("book_hotel/1/timeout")
    assert effects_of(trip) == ["publish CancelHotel book_hotel/undo/1"]
    trip.reply("HotelCancelled", "book_hotel", undo=True)
    trip.handler_returns("book_car", undo=True)
    trip.reply("FlightCancelled", "book_flight", undo=True)
    assert trip.state.status == InstanceStatus.COMPENSATED

    late = trip.reply("HotelBooked", "book_hotel")

    assert not late.ignored
    assert "late success of step 'book_hotel' (compensated): it will be compensated" in late.note
    assert trip.state.status == InstanceStatus.COMPENSATING
    assert effects_of(trip) == ["publish CancelHotel book_hotel/undo/2"]
    trip.reply("HotelCancelled", "book_hotel", undo=True, attempt=2)
    assert trip.state.status == InstanceStatus.COMPENSATED
    assert effects_of(trip)[-1] == "finish compensated"
    again = trip.state
    assert_ignored(trip.reply("HotelBooked", "book_hotel"), again, "known already")


# -- after the end -------------------------------------------------------------------------


def ended_events(order: Instance) -> dict[str, Event]:
    """Events that could still arrive for ``order`` after it ended, by description."""
    deadline = order.timer("deadline")
    return {
        "a duplicate reply": order.event("OrderShipped", causation_id=order.action_id("ship")),
        "a handler outcome": handler_failed(
            order.invocation("take_payment"), order.saga_id, "late", False, order.now
        ),
        "the deadline": timer_fired(deadline, order.saga_id, deadline.due_at),
        "a stale timeout": timer_fired(order.timer("ship/1/timeout"), order.saga_id, order.now),
        "the trigger": Event.create("OrderCreated", ORDER_DATA, at=order.now),
        "an unrelated event": order.event("SomethingElse"),
    }


@pytest.mark.parametrize("which", list(ended_events(completed_order())))
def test_every_event_after_the_saga_ended_is_ignored(which: str) -> None:
    order = completed_order()
    before = order.state

    decision = order.deliver(ended_events(order)[which])

    assert_ignored(decision, before, "saga already completed")


def test_an_event_no_step_waits_for_is_ignored() -> None:
    order = Instance(ORDER, ORDER_DATA)
    before = order.state

    decision = order.deliver(order.event("OrderShipped", causation_id="someone-else"))

    assert_ignored(decision, before, "no step is waiting for OrderShipped")


# -- regressions ---------------------------------------------------------------------------
# Five of these failed before decide.py was fixed: a reply for the second of two parallel
# commands sharing a reply type was refused; the deadline fired twice abandoned the steps in
# flight; the deadline compensated after the pivot succeeded or while it was in flight; a `when:`
# that failed after the pivot compensated. The others pin the behaviour next to each fix.

SHARED_REPLY = """
name: shared_reply
trigger: Go
correlation: id
steps:
  - name: left
    after: []
    command: {type: DoLeft, success: Ack, failure: Nack}
    compensation: {command: {type: UndoLeft}}
  - name: right
    after: []
    command: {type: DoRight, success: Ack, failure: Nack}
    compensation: {command: {type: UndoRight}}
"""


def test_parallel_command_steps_sharing_a_reply_type_each_take_their_own_reply() -> None:
    saga = Instance(parse_definition(SHARED_REPLY), {"id": "s-1"})

    saga.reply("Ack", "right")

    assert not saga.decision.ignored, saga.decision.note
    assert statuses(saga.state) == {"left": "running", "right": "succeeded"}
    saga.reply("Ack", "left")
    assert saga.state.status == InstanceStatus.COMPLETED


def test_a_reply_caused_by_no_awaited_command_names_what_each_step_awaits() -> None:
    saga = Instance(parse_definition(SHARED_REPLY), {"id": "s-1"})
    before = saga.state

    decision = saga.deliver(saga.event("Ack", causation_id="elsewhere/1"))

    assert_ignored(decision, before, "reply to 'elsewhere/1', step 'left' awaits")


def test_the_deadline_delivered_twice_changes_nothing_the_second_time() -> None:
    # The deadline starts compensation, which interrupts the payment handler in flight.
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory")
    deadline = order.fire("deadline")
    assert not deadline.ignored
    assert order.state.step("take_payment").outcome_unknown  # and its refund started
    before = order.state

    again = order.fire("deadline")

    assert_ignored(again, before, "deadline")


def test_the_deadline_does_not_compensate_after_the_pivot_succeeded() -> None:
    trip = Instance(TRAVEL, TRIP_DATA | {"total": 100})
    trip.reply("FlightBooked", "book_flight")
    trip.reply("HotelBooked", "book_hotel")
    trip.handler_returns("book_car")
    trip.handler_returns("charge_customer")  # the pivot: the customer paid
    assert trip.state.step("send_itinerary").status == StepStatus.RUNNING
    before = trip.state

    decision = trip.fire("deadline")

    assert_ignored(decision, before, "pivot")
    trip.reply("ItinerarySent", "send_itinerary")
    assert trip.state.status == InstanceStatus.COMPLETED
    assert not any(
        isinstance(e, PublishCommand | InvokeHandler) and e.compensating for e in trip.effects
    )


def test_the_deadline_does_not_compensate_while_the_pivot_is_in_flight() -> None:
    order = order_waiting_for_shipment()
    before = order.state

    decision = order.fire("deadline")

    # Whether the parcel left is not known yet: the pivot's own outcome decides.
    assert_ignored(decision, before, "pivot")
    order.reply("OrderShipped", "ship")
    assert order.state.status == InstanceStatus.COMPLETED
    assert effects_of(order) == ["cancel ship/1/timeout", "cancel deadline", "finish completed"]


WHEN_AFTER_PIVOT = """
name: when_after_pivot
trigger: Go
correlation: id
steps:
  - name: reserve
    command: {type: Reserve, success: Reserved}
    compensation: {command: {type: Release, success: Released}}
  - name: charge
    pivot: true
    command: {type: Charge, success: Charged}
  - name: gift
    when: length(points) > `10`
    command: {type: SendGift, success: GiftSent}
"""


def test_a_failing_when_after_the_pivot_fails_the_saga_without_compensating() -> None:
    saga = Instance(parse_definition(WHEN_AFTER_PIVOT), {"id": "w-1", "points": 12})
    saga.reply("Reserved", "reserve")

    saga.reply("Charged", "charge")

    assert saga.state.status == InstanceStatus.FAILED
    assert saga.state.reason is not None
    assert saga.state.reason.startswith("step 'gift' after the pivot gave up: when:")
    assert effects_of(saga) == ["finish failed"]


WHEN_BEFORE_PIVOT = """
name: when_before_pivot
trigger: Go
correlation: id
steps:
  - name: reserve
    command: {type: Reserve, success: Reserved}
    compensation: {command: {type: Release, success: Released}}
  - name: gift
    when: length(points) > `10`
    command: {type: SendGift, success: GiftSent}
    compensation: {command: {type: TakeGiftBack, success: GiftReturned}}
  - name: charge
    pivot: true
    command: {type: Charge, success: Charged}
"""


def test_a_failing_when_before_the_pivot_compensates() -> None:
    saga = Instance(parse_definition(WHEN_BEFORE_PIVOT), {"id": "w-1", "points": 12})

    saga.reply("Reserved", "reserve")

    assert saga.state.status == InstanceStatus.COMPENSATING
    assert saga.state.step("gift").status == StepStatus.FAILED
    assert saga.state.step("charge").status == StepStatus.NOT_RUN
    assert saga.state.reason is not None
    assert saga.state.reason.startswith("step 'gift': when:")
    assert effects_of(saga) == ["publish Release reserve/undo/1"]


TWO_WAITS = """
name: two_waits
trigger: Go
correlation: id
steps:
  - name: first_signature
    after: []
    wait: {event: Signed}
  - name: second_signature
    after: []
    wait: {event: Signed}
  - name: file
    after: [first_signature, second_signature]
    command: {type: File, success: Filed}
    pivot: true
"""


def test_one_event_completes_one_of_two_waits_for_its_type_the_first_in_the_file() -> None:
    saga = Instance(parse_definition(TWO_WAITS), {"id": "w-1"})

    saga.deliver(saga.event("Signed", {"by": "ann"}))

    assert statuses(saga.state)["first_signature"] == "succeeded"
    assert statuses(saga.state)["second_signature"] == "running"
    saga.deliver(saga.event("Signed", {"by": "bob"}))
    assert statuses(saga.state)["second_signature"] == "succeeded"
    assert effects_of(saga) == ["publish File file/1"]


def test_a_step_cut_short_by_compensation_is_not_run_unlike_one_skipped_by_when() -> None:
    trip = Instance(TRAVEL, {**TRIP_DATA, "car": None})  # the car is skipped by its `when:`

    trip.reply("FlightUnavailable", "book_flight")

    assert trip.state.step("book_car").status == StepStatus.SKIPPED
    assert trip.state.step("charge_customer").status == StepStatus.NOT_RUN
    assert trip.state.step("send_itinerary").status == StepStatus.NOT_RUN
    assert trip.state.step("book_hotel").status == StepStatus.COMPENSATING  # interrupted
