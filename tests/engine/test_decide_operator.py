"""Operator actions through the pure state machine: retry, compensate, cancel, resume, skip.

An action is an event (``sagas.RetryRequested``...) decided by ``decide`` like any other, so
each scenario drives one instance (the ``Instance`` helper of ``test_decide``) to where an
operator steps in, then checks the status, the step statuses, the effects in order (timers
scheduled and cancelled, commands published and handlers invoked under their new attempt ids)
and the note; a refused action is an ignored decision that leaves the state as it was and says
why, naming the step and its status.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_decide import (
    ORDER,
    ORDER_DATA,
    T0,
    TRAVEL,
    TRIP_DATA,
    Instance,
    assert_ignored,
    completed_order,
    effects_of,
    order_waiting_for_shipment,
    statuses,
)
from test_decide_properties import definitions

from sagas.definitions import parse_definition
from sagas.definitions.model import Command, Delay, HandlerCall, SagaDefinition, Wait
from sagas.engine.decide import Decision, decide
from sagas.engine.effects import Finish, InvokeHandler, PublishCommand, ScheduleTimer
from sagas.engine.internal import handler_failed, handler_succeeded, timer_fired
from sagas.engine.operator import OperatorAction, operator_event
from sagas.engine.state import InstanceStatus, SagaState, StepStatus
from sagas.engine.transition import after_pivot
from sagas.events import Event

RETRY = OperatorAction.RETRY
COMPENSATE = OperatorAction.COMPENSATE
CANCEL = OperatorAction.CANCEL
RESUME = OperatorAction.RESUME
SKIP = OperatorAction.SKIP

SHIPPING = parse_definition(
    """
name: charge_then_ship
trigger: Go
correlation: id
deadline: 1h
steps:
  - name: reserve
    command: {type: Reserve, success: Reserved}
    compensation: {command: {type: Release, success: Released}}
  - name: charge
    pivot: true
    handler: charge
  - name: ship
    command:
      type: ShipOrder
      data: {id: id}
      success: OrderShipped
      failure: ShipmentFailed
    timeout: 5m
    retry: {attempts: 2, initial_delay: 1m, jitter: 0}
"""
)
"""A step after the pivot (``ship``): in the order saga ``ship`` *is* the pivot, and its failure
compensates; here it comes after the pivot, so when it gives up the saga is ``failed``."""


def act(
    instance: Instance,
    action: OperatorAction,
    *,
    step: str | None = None,
    data: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Decision:
    """Alice asks ``instance`` for ``action``, now."""
    event = operator_event(
        action,
        instance.saga_id,
        actor="alice",
        at=instance.now,
        reason=reason,
        step=step,
        data=data,
    )
    return instance.deliver(event)


def refused(instance: Instance, action: OperatorAction, why: str, **kwargs: Any) -> None:
    """``action`` is refused: an ignored decision, the state as it was, ``why`` in the note."""
    before = instance.state
    assert_ignored(act(instance, action, **kwargs), before, why)
    assert instance.state == before


def order_with_failed_refund() -> Instance:
    """The shipment failed, then the refund gave up after its 5 attempts: the saga failed."""
    order = order_waiting_for_shipment()
    order.reply("ShipmentFailed", "ship")
    for attempt in range(1, 5):
        order.handler_raises(
            "take_payment", "bank down", retryable=True, undo=True, attempt=attempt
        )
        order.fire(f"take_payment/undo/{attempt + 1}/retry")
    order.handler_raises("take_payment", "bank down", retryable=True, undo=True, attempt=5)
    assert order.state.status == InstanceStatus.FAILED
    assert order.state.reason == "compensation of 'take_payment' gave up: bank down"
    return order


def paying_order() -> Instance:
    """Inventory reserved; the payment handler is in flight (with its 10s timeout)."""
    order = Instance(ORDER, ORDER_DATA)
    order.reply("InventoryReserved", "reserve_inventory", data={"reservationId": "r-9"})
    assert effects_of(order)[-1] == "invoke take_payment take_payment/1"
    return order


def order_waiting_for_payment_retry() -> Instance:
    """The payment handler crashed (retryable): attempt 2 waits for its back-off timer."""
    order = paying_order()
    order.now += timedelta(seconds=4)
    order.handler_raises("take_payment", "connection reset", retryable=True)
    assert effects_of(order) == ["cancel take_payment/1/timeout", "schedule take_payment/2/retry"]
    return order


def shipping_failed() -> Instance:
    """The step after the pivot gave up (a failure reply is not retried): the saga failed."""
    saga = Instance(SHIPPING, {"id": "x-1"})
    saga.reply("Reserved", "reserve")
    saga.handler_returns("charge")
    saga.reply("ShipmentFailed", "ship", data={"reason": "no driver"})
    assert effects_of(saga) == ["cancel ship/1/timeout", "cancel deadline", "finish failed"]
    assert saga.state.status == InstanceStatus.FAILED
    return saga


def status_of(instance: Instance) -> InstanceStatus:
    """The instance's status now (a call, so that mypy does not narrow it across events)."""
    return instance.state.status


def published(instance: Instance, command_id: str) -> PublishCommand:
    full = f"{instance.saga_id}/{command_id}"
    [effect] = [
        e for e in instance.effects if isinstance(e, PublishCommand) and e.command.event_id == full
    ]
    return effect


# -- retry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [None, "take_payment"])
def test_retry_of_a_failed_compensation_runs_it_again_then_compensation_goes_on(
    step: str | None,
) -> None:
    order = order_with_failed_refund()

    decision = act(order, RETRY, step=step, reason="bank is back")

    assert not decision.ignored
    assert effects_of(order) == ["invoke refund_payment take_payment/undo/6"]
    assert order.state.status == InstanceStatus.COMPENSATING
    # Still compensating for the same reason: the retry does not rewrite why.
    assert order.state.reason == "compensation of 'take_payment' gave up: bank down"
    assert statuses(order.state) == {
        "reserve_inventory": "succeeded",
        "take_payment": "compensating",
        "ship": "failed",
    }
    assert order.state.step("take_payment").undo_attempt == 6
    assert decision.note.startswith("retry by alice (bank is back)")
    assert "compensation of take_payment: handler refund_payment (attempt 6)" in decision.note

    order.handler_returns("take_payment", {"refundId": "f-1"}, attempt=6, undo=True)

    assert effects_of(order) == ["publish ReleaseInventory reserve_inventory/undo/1"]
    assert order.state.step("take_payment").status == StepStatus.COMPENSATED
    order.reply("InventoryReleased", "reserve_inventory", undo=True)
    # The deadline timer went when the saga failed; ending cancels it again (a no-op).
    assert effects_of(order) == ["cancel deadline", "finish compensated"]
    assert status_of(order) == InstanceStatus.COMPENSATED
    assert order.state.data["refundId"] == "f-1"
    assert statuses(order.state) == {
        "reserve_inventory": "compensated",
        "take_payment": "compensated",
        "ship": "failed",
    }


def test_a_retried_compensation_that_fails_again_fails_the_saga_at_once() -> None:
    order = order_with_failed_refund()
    act(order, RETRY)

    # The operator's try is past the policy's 5 attempts: no back-off, the saga fails again.
    order.handler_raises("take_payment", "still down", retryable=True, undo=True, attempt=6)

    assert effects_of(order) == ["cancel deadline", "finish failed"]
    assert order.state.status == InstanceStatus.FAILED
    assert order.state.reason == "compensation of 'take_payment' gave up: still down"
    assert order.state.step("take_payment").status == StepStatus.FAILED


def test_retry_of_a_failed_step_after_the_pivot_runs_it_again_and_completes() -> None:
    saga = shipping_failed()
    assert saga.state.reason == "step 'ship' after the pivot gave up: ShipmentFailed: no driver"
    saga.now += timedelta(minutes=30)

    decision = act(saga, RETRY, reason="address fixed")

    assert not decision.ignored
    assert effects_of(saga) == [
        "schedule deadline/1",
        "schedule ship/2/timeout",
        "publish ShipOrder ship/2",
    ]
    assert saga.timer("ship/2/timeout").due_at == saga.now + timedelta(minutes=5)
    assert published(saga, "ship/2").command.data == {"id": "x-1"}
    assert saga.state.status == InstanceStatus.RUNNING
    assert saga.state.reason is None
    assert statuses(saga.state) == {
        "reserve": "succeeded",
        "charge": "succeeded",
        "ship": "running",
    }
    assert saga.state.step("ship").attempt == 2
    # The deadline is re-armed, from the retry on, under a new timer id.
    deadlines = [e for e in saga.effects if isinstance(e, ScheduleTimer) and e.kind == "deadline"]
    assert [d.due_at for d in deadlines] == [T0 + timedelta(hours=1), saga.now + timedelta(hours=1)]
    assert saga.state.deadline_armed == 1

    before = saga.state
    late = saga.reply("ShipmentFailed", "ship", attempt=1)
    assert_ignored(late, before, "step 'ship' awaits")

    saga.reply("OrderShipped", "ship", attempt=2, data={"trackingNumber": "z-3"})

    assert effects_of(saga) == ["cancel ship/2/timeout", "cancel deadline/1", "finish completed"]
    assert saga.state.status == InstanceStatus.COMPLETED
    assert saga.state.data["trackingNumber"] == "z-3"


def test_the_order_pivot_failing_compensates_so_it_has_nothing_to_retry() -> None:
    # `ship` is the order saga's pivot: its failure compensates, it is not retried by hand.
    order = order_waiting_for_shipment()
    order.reply("ShipmentFailed", "ship")
    assert order.state.status == InstanceStatus.COMPENSATING

    refused(
        order,
        RETRY,
        "nothing to retry in step 'ship' (it is failed; the saga is compensating)",
        step="ship",
    )


@pytest.mark.parametrize("step", [None, "take_payment"])
def test_retry_of_a_step_waiting_for_its_back_off_starts_the_next_attempt_now(
    step: str | None,
) -> None:
    order = order_waiting_for_payment_retry()
    retry_timer = order.timer("take_payment/2/retry")
    order.now += timedelta(milliseconds=100)
    assert order.now < retry_timer.due_at

    decision = act(order, RETRY, step=step)

    assert not decision.ignored
    assert effects_of(order) == [
        "cancel take_payment/2/retry",
        "schedule take_payment/2/timeout",
        "invoke take_payment take_payment/2",
    ]
    assert order.timer("take_payment/2/timeout").due_at == order.now + timedelta(seconds=10)
    payment = order.state.step("take_payment")
    assert (payment.status, payment.attempt, payment.retry_due) == (StepStatus.RUNNING, 2, None)
    assert order.state.status == InstanceStatus.RUNNING

    # The old retry timer, should it fire anyway, starts nothing.
    before = order.state
    stale = order.fire("take_payment/2/retry")
    assert_ignored(stale, before, "stale retry timer for attempt 2 of step 'take_payment'")

    order.handler_returns("take_payment", {"paymentId": "p-7"}, attempt=2)
    assert effects_of(order) == [
        "cancel take_payment/2/timeout",
        "schedule ship/1/timeout",
        "publish ShipOrder ship/1",
    ]


def test_retry_of_a_compensation_waiting_for_its_back_off_starts_it_now() -> None:
    order = order_waiting_for_shipment()
    order.reply("ShipmentFailed", "ship")
    order.handler_raises("take_payment", "bank down", retryable=True, undo=True)
    assert effects_of(order) == ["schedule take_payment/undo/2/retry"]

    act(order, RETRY)

    assert effects_of(order) == [
        "cancel take_payment/undo/2/retry",
        "invoke refund_payment take_payment/undo/2",
    ]
    assert order.state.status == InstanceStatus.COMPENSATING
    assert order.state.step("take_payment").undo_attempt == 2
    assert order.state.step("take_payment").retry_due is None


def test_retry_refusals_name_the_step_and_its_status() -> None:
    order = paying_order()

    refused(
        order,
        RETRY,
        "nothing to retry in step 'take_payment' (it is running; the saga is running)",
        step="take_payment",
    )
    refused(
        order,
        RETRY,
        "nothing to retry in step 'ship' (it is pending; the saga is running)",
        step="ship",
    )
    refused(
        order,
        RETRY,
        "nothing to retry in step 'reserve_inventory' (it is succeeded; the saga is running)",
        step="reserve_inventory",
    )
    refused(order, RETRY, "nothing to retry: the saga is running and no step failed or waits")
    refused(
        order,
        RETRY,
        "no step 'refund' (steps: reserve_inventory, take_payment, ship)",
        step="refund",
    )


def test_retry_names_a_waiting_step_in_a_refusal_of_another() -> None:
    order = order_waiting_for_payment_retry()

    refused(
        order,
        RETRY,
        "nothing to retry in step 'reserve_inventory' (it is succeeded; the saga is running)",
        step="reserve_inventory",
    )


@pytest.mark.parametrize("step", [None, "ship"])
def test_retry_of_a_completed_saga_is_refused(step: str | None) -> None:
    order = completed_order()

    why = "the saga is completed"
    refused(order, RETRY, why, step=step)


def test_operator_events_have_the_types_of_their_actions() -> None:
    assert {action: action.event_type for action in OperatorAction} == {
        OperatorAction.RETRY: "sagas.RetryRequested",
        OperatorAction.COMPENSATE: "sagas.CompensationRequested",
        OperatorAction.CANCEL: "sagas.CancelRequested",
        OperatorAction.RESUME: "sagas.ResumeRequested",
        OperatorAction.SKIP: "sagas.SkipRequested",
    }
    order = paying_order()
    before = order.state
    event = Event.create(
        "sagas.PauseRequested", {"actor": "alice"}, at=order.now, saga_id=order.saga_id
    )

    assert_ignored(order.deliver(event), before, "no step is waiting for sagas.PauseRequested")


# -- compensate ----------------------------------------------------------------------------


def test_compensate_a_running_saga_interrupts_the_step_in_flight_and_undoes_it_first() -> None:
    order = paying_order()

    decision = act(order, COMPENSATE, reason="customer cancelled")

    # The payment handler is in flight: compensation does not wait for it. It may have taken
    # the money, so it is refunded first, then the inventory released.
    assert not decision.ignored
    assert effects_of(order) == [
        "cancel take_payment/1/timeout",
        "invoke refund_payment take_payment/undo/1",
    ]
    assert order.state.status == InstanceStatus.COMPENSATING
    assert order.state.reason == "compensation requested by alice (customer cancelled)"
    assert statuses(order.state) == {
        "reserve_inventory": "succeeded",
        "take_payment": "compensating",
        "ship": "not_run",
    }
    assert "compensate by alice (customer cancelled)" in decision.note
    assert "take_payment: interrupted" in decision.note

    order.handler_returns("take_payment", undo=True)
    assert effects_of(order) == ["publish ReleaseInventory reserve_inventory/undo/1"]
    order.reply("InventoryReleased", "reserve_inventory", undo=True)
    assert effects_of(order) == ["cancel deadline", "finish compensated"]
    assert order.state.reason == "compensation requested by alice (customer cancelled)"
    assert statuses(order.state) == {
        "reserve_inventory": "compensated",
        "take_payment": "compensated",
        "ship": "not_run",
    }
    assert not any(isinstance(e, PublishCommand) and e.step == "ship" for e in order.effects)


def test_compensate_while_a_step_waits_for_its_retry_drops_the_retry() -> None:
    order = order_waiting_for_payment_retry()

    act(order, COMPENSATE)

    assert effects_of(order) == [
        "cancel take_payment/2/retry",
        "publish ReleaseInventory reserve_inventory/undo/1",
    ]
    assert order.state.reason == "compensation requested by alice"
    # The payment's one attempt failed (known): nothing to refund.
    assert statuses(order.state) == {
        "reserve_inventory": "compensating",
        "take_payment": "interrupted",
        "ship": "not_run",
    }


def test_compensate_past_the_pivot_is_refused() -> None:
    order = order_waiting_for_shipment()  # ShipOrder is out: the pivot is in flight

    refused(order, COMPENSATE, "past its pivot: it can only go forward")


@pytest.mark.parametrize("where", ["compensating", "completed", "cancelled", "failed"])
def test_compensate_a_saga_that_is_not_running_is_refused(where: str) -> None:
    if where == "compensating":
        order = paying_order()
        act(order, COMPENSATE)
    elif where == "completed":
        order = completed_order()
    elif where == "cancelled":
        order = paying_order()
        act(order, CANCEL)
    else:
        order = order_with_failed_refund()
    assert order.state.status.value == where

    refused(order, COMPENSATE, f"the saga is {where}: only a running saga can be compensated")


def test_compensate_parallel_bookings_interrupts_all_in_flight_and_undoes_each() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.reply("FlightBooked", "book_flight")

    act(trip, COMPENSATE, reason="trip called off")

    # Hotel and car are in flight: both interrupted, both may have been booked.
    assert effects_of(trip) == [
        "cancel book_hotel/1/timeout",
        "cancel book_car/1/timeout",
        "invoke cancel_car book_car/undo/1",
    ]
    assert trip.state.status == InstanceStatus.COMPENSATING
    trip.handler_returns("book_car", undo=True)
    assert effects_of(trip) == ["publish CancelHotel book_hotel/undo/1"]
    trip.reply("HotelCancelled", "book_hotel", undo=True)
    assert effects_of(trip) == ["publish CancelFlight book_flight/undo/1"]
    trip.reply("FlightCancelled", "book_flight", undo=True)
    assert effects_of(trip) == ["cancel deadline", "finish compensated"]
    assert trip.state.reason == "compensation requested by alice (trip called off)"
    assert trip.state.step("manager_approval").status == StepStatus.NOT_RUN


# -- cancel --------------------------------------------------------------------------------


def test_cancel_a_running_saga_drops_its_timers_and_ignores_late_outcomes() -> None:
    order = paying_order()

    decision = act(order, CANCEL, reason="fraud suspected")

    assert not decision.ignored
    assert effects_of(order) == [
        "cancel take_payment/1/timeout",
        "cancel deadline",
        "finish cancelled",
    ]
    assert isinstance(decision.effects[-1], Finish)
    assert order.state.status == InstanceStatus.CANCELLED
    assert order.state.interrupted == InstanceStatus.RUNNING
    assert order.state.reason == "cancelled by alice (fraud suspected)"
    # Nothing is compensated: the steps stay where they stood.
    assert statuses(order.state) == {
        "reserve_inventory": "succeeded",
        "take_payment": "running",
        "ship": "pending",
    }
    assert "cancel by alice (fraud suspected)" in decision.note
    assert "saga cancelled" in decision.note

    before = order.state
    assert_ignored(order.handler_returns("take_payment"), before, "saga already cancelled")
    assert_ignored(order.fire("take_payment/1/timeout"), before, "saga already cancelled")
    assert_ignored(order.fire("deadline"), before, "saga already cancelled")
    refused(order, CANCEL, "the saga is already cancelled")


def test_cancel_drops_deadline_timeout_and_retry_timers_of_parallel_steps() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.fire("book_flight/1/timeout")  # the flight waits for its retry
    assert effects_of(trip) == ["schedule book_flight/2/retry"]

    act(trip, CANCEL)

    assert effects_of(trip) == [
        "cancel book_flight/2/retry",
        "cancel book_hotel/1/timeout",
        "cancel book_car/1/timeout",
        "cancel deadline",
        "finish cancelled",
    ]
    assert trip.state.reason == "cancelled by alice"
    assert trip.state.step("book_flight").retry_due is None
    before = trip.state
    assert_ignored(trip.reply("HotelBooked", "book_hotel"), before, "saga already cancelled")
    assert_ignored(trip.fire("book_flight/2/retry"), before, "saga already cancelled")


@pytest.mark.parametrize("ended", ["completed", "compensated"])
def test_cancel_an_ended_saga_is_refused(ended: str) -> None:
    if ended == "compensated":
        order = Instance(ORDER, ORDER_DATA)
        order.reply("InventoryReservationFailed", "reserve_inventory")
    else:
        order = completed_order()
    assert order.state.status.value == ended

    refused(order, CANCEL, f"the saga already ended {ended}")


# -- resume --------------------------------------------------------------------------------


def test_resume_a_cancelled_saga_runs_the_handler_in_flight_again_as_a_new_attempt() -> None:
    order = paying_order()
    act(order, CANCEL)
    order.now += timedelta(minutes=5)

    decision = act(order, RESUME)

    assert not decision.ignored
    assert effects_of(order) == [
        "schedule deadline/1",
        "schedule take_payment/2/timeout",
        "invoke take_payment take_payment/2",
    ]
    assert order.state.status == InstanceStatus.RUNNING
    assert order.state.interrupted is None
    assert order.state.reason is None
    assert order.state.step("take_payment").attempt == 2
    assert order.invocation("take_payment", 2).idempotency_key.endswith("/take_payment/2")

    before = order.state
    late = order.handler_returns("take_payment", attempt=1)
    assert_ignored(late, before, "outcome of attempt 1, step 'take_payment' is past it")

    order.handler_returns("take_payment", {"paymentId": "p-8"}, attempt=2)
    assert effects_of(order) == [
        "cancel take_payment/2/timeout",
        "schedule ship/1/timeout",
        "publish ShipOrder ship/1",
    ]
    order.reply("OrderShipped", "ship")
    assert status_of(order) == InstanceStatus.COMPLETED


def test_resume_a_cancelled_saga_publishes_the_command_in_flight_under_a_new_id() -> None:
    order = Instance(ORDER, ORDER_DATA)
    act(order, CANCEL)

    act(order, RESUME)

    assert effects_of(order) == [
        "schedule deadline/1",
        "schedule reserve_inventory/2/timeout",
        "publish ReserveInventory reserve_inventory/2",
    ]
    assert published(order, "reserve_inventory/2").command.data == {
        "orderId": "o-1",
        "items": [{"sku": "A-1", "qty": 2}],
    }
    before = order.state
    late = order.reply("InventoryReserved", "reserve_inventory", attempt=1)
    assert_ignored(late, before, "step 'reserve_inventory' awaits")


def test_resume_a_cancelled_compensation_runs_the_compensation_in_flight_again() -> None:
    order = paying_order()
    order.handler_raises("take_payment", "card declined", retryable=False)
    assert effects_of(order) == [
        "cancel take_payment/1/timeout",
        "publish ReleaseInventory reserve_inventory/undo/1",
    ]
    act(order, CANCEL)
    assert effects_of(order) == ["cancel deadline", "finish cancelled"]
    assert order.state.interrupted == InstanceStatus.COMPENSATING

    act(order, RESUME)

    assert effects_of(order) == ["publish ReleaseInventory reserve_inventory/undo/2"]
    assert order.state.status == InstanceStatus.COMPENSATING
    assert order.state.interrupted is None
    order.reply("InventoryReleased", "reserve_inventory", attempt=2, undo=True)
    assert order.state.status == InstanceStatus.COMPENSATED


def test_resume_parallel_bookings_restarts_each_of_them() -> None:
    trip = Instance(TRAVEL, TRIP_DATA)
    trip.fire("book_flight/1/timeout")  # waits for its retry
    trip.reply("HotelBooked", "book_hotel")
    act(trip, CANCEL)

    act(trip, RESUME)

    # The hotel is booked; the flight's retry and the car, in flight, start again.
    assert effects_of(trip) == [
        "schedule deadline/1",
        "schedule book_flight/2/timeout",
        "publish BookFlight book_flight/2",
        "schedule book_car/2/timeout",
        "invoke book_car book_car/2",
    ]
    trip.reply("FlightBooked", "book_flight", attempt=2)
    trip.handler_returns("book_car", attempt=2)
    assert effects_of(trip)[-1] == "schedule manager_approval/1/timeout"
    assert trip.state.step("manager_approval").status == StepStatus.RUNNING


@pytest.mark.parametrize("make", [paying_order, completed_order])
def test_resume_a_saga_that_is_neither_cancelled_nor_failed_is_refused(make: Any) -> None:
    order = make()
    status = order.state.status.value

    refused(order, RESUME, f"the saga is {status}: only a cancelled or failed saga resumes")


def retry_event(instance: Instance) -> Event:
    return operator_event(RETRY, instance.saga_id, actor="alice", at=instance.now)


def test_resume_a_failed_saga_retries_it() -> None:
    order = order_with_failed_refund()
    via_retry = decide(ORDER, order.state, retry_event(order), order.now)

    decision = act(order, RESUME)

    assert not decision.ignored
    assert decision.state == via_retry.state
    assert decision.effects == via_retry.effects
    assert effects_of(order) == ["invoke refund_payment take_payment/undo/6"]
    assert decision.note.startswith("resume by alice")


def test_resume_a_cancelled_failed_saga_retries_it() -> None:
    order = order_with_failed_refund()
    act(order, CANCEL, reason="look at it tomorrow")
    assert order.state.interrupted == InstanceStatus.FAILED

    act(order, RESUME)

    assert effects_of(order) == ["invoke refund_payment take_payment/undo/6"]
    assert order.state.status == InstanceStatus.COMPENSATING
    assert order.state.interrupted is None


# -- skip ----------------------------------------------------------------------------------


def test_skip_a_running_step_merges_its_data_and_starts_the_next() -> None:
    order = paying_order()

    decision = act(order, SKIP, step="take_payment", data={"paymentId": "paid-by-phone"})

    assert not decision.ignored
    assert effects_of(order) == [
        "cancel take_payment/1/timeout",
        "schedule ship/1/timeout",
        "publish ShipOrder ship/1",
    ]
    assert order.state.data["paymentId"] == "paid-by-phone"
    assert order.state.completed == ("reserve_inventory", "take_payment")
    assert statuses(order.state) == {
        "reserve_inventory": "succeeded",
        "take_payment": "succeeded",
        "ship": "running",
    }
    assert "take_payment: done by hand" in decision.note
    before = order.state
    late = order.handler_returns("take_payment")
    assert_ignored(late, before, "no handler of step 'take_payment' is running")


def test_skip_a_step_waiting_for_its_retry_drops_the_retry() -> None:
    order = order_waiting_for_payment_retry()

    act(order, SKIP, step="take_payment")

    # The failed attempt's timeout went when it failed: only the retry timer is left to drop.
    assert effects_of(order) == [
        "cancel take_payment/2/retry",
        "schedule ship/1/timeout",
        "publish ShipOrder ship/1",
    ]
    payment = order.state.step("take_payment")
    assert (payment.status, payment.retry_due, payment.error) == (StepStatus.SUCCEEDED, None, None)


def test_skip_a_failed_step_after_the_pivot_completes_a_failed_saga() -> None:
    saga = shipping_failed()

    decision = act(saga, SKIP, step="ship", data={"trackingNumber": "by-hand"})

    # Revived and completed at once: the deadline re-armed by the revival is never scheduled.
    assert not decision.ignored
    assert effects_of(saga) == ["finish completed"]
    assert saga.state.status == InstanceStatus.COMPLETED
    assert saga.state.reason is None
    assert saga.state.data["trackingNumber"] == "by-hand"
    assert statuses(saga.state) == {
        "reserve": "succeeded",
        "charge": "succeeded",
        "ship": "succeeded",
    }


def test_skip_a_failed_compensation_lets_compensation_go_on() -> None:
    order = order_with_failed_refund()

    decision = act(order, SKIP, step="take_payment", reason="refunded by bank transfer")

    assert not decision.ignored
    assert effects_of(order) == ["publish ReleaseInventory reserve_inventory/undo/1"]
    assert order.state.status == InstanceStatus.COMPENSATING
    assert order.state.reason == "compensation of 'take_payment' gave up: bank down"
    assert order.state.step("take_payment").status == StepStatus.COMPENSATED
    assert "take_payment: compensation done by hand" in decision.note
    order.reply("InventoryReleased", "reserve_inventory", undo=True)
    assert status_of(order) == InstanceStatus.COMPENSATED


def test_skip_a_compensation_in_flight_starts_the_next_one() -> None:
    order = order_waiting_for_shipment()
    order.reply("ShipmentFailed", "ship")  # the refund is in flight

    act(order, SKIP, step="take_payment")

    assert effects_of(order) == ["publish ReleaseInventory reserve_inventory/undo/1"]
    assert order.state.step("take_payment").status == StepStatus.COMPENSATED
    before = order.state
    late = order.handler_returns("take_payment", undo=True)
    assert_ignored(late, before, "no handler of step 'take_payment' is running")


def test_skip_a_step_that_has_not_started_is_refused() -> None:
    order = Instance(ORDER, ORDER_DATA)

    decision = act(order, SKIP, step="take_payment", data={"paymentId": "prepaid"})

    assert decision.ignored
    assert "step 'take_payment' has not started: skip it once it runs or fails" in decision.note
    assert order.state.step("take_payment").status == StepStatus.PENDING
    assert "paymentId" not in order.state.data
    assert effects_of(order) == []  # ShipOrder waits for the inventory, as before


def test_skip_refusals_name_the_step_and_its_status() -> None:
    order = paying_order()

    refused(order, SKIP, "skip needs the step to mark done")
    refused(
        order,
        SKIP,
        "step 'reserve_inventory' cannot be skipped (it is succeeded; the saga is running)",
        step="reserve_inventory",
    )
    refused(
        order, SKIP, "no step 'nope' (steps: reserve_inventory, take_payment, ship)", step="nope"
    )

    act(order, CANCEL)
    refused(
        order,
        SKIP,
        "step 'take_payment' cannot be skipped (it is running; the saga is cancelled)",
        step="take_payment",
    )


def test_skip_the_failed_pivot_of_a_failed_saga_is_refused() -> None:
    # The refund gave up after the shipment failed. Marking the shipment done would send the
    # saga forward with the payment half refunded and nothing left to run: refused.
    order = order_with_failed_refund()

    refused(
        order,
        SKIP,
        "step 'ship' cannot be skipped (it is failed; the saga is failed)",
        step="ship",
    )


FORK_AFTER_PIVOT = parse_definition(
    """
name: fork_after_pivot
trigger: Go
correlation: id
steps:
  - name: charge
    pivot: true
    handler: charge
  - name: mail
    after: [charge]
    command: {type: Mail, success: Mailed, failure: MailFailed}
  - name: deliver
    after: [charge]
    command: {type: Deliver, success: Delivered}
    timeout: 1m
    retry: {attempts: 3, initial_delay: 10s, jitter: 0}
"""
)
"""Two parallel steps after the pivot: when one gives up, the other one settles (its reply,
its retries) before the saga fails; nothing is left in flight in a failed saga."""


def mail_failed_after_pivot(deliver: str) -> Instance:
    saga = Instance(FORK_AFTER_PIVOT, {"id": "f-1"})
    saga.handler_returns("charge")
    if deliver == "waits for its retry":
        saga.fire("deliver/1/timeout")
    saga.reply("MailFailed", "mail")
    assert saga.state.status == InstanceStatus.RUNNING  # the delivery is still going on
    assert saga.state.reason == "step 'mail' after the pivot gave up: MailFailed"
    assert saga.state.step("deliver").status == StepStatus.RUNNING
    return saga


@pytest.mark.parametrize("deliver", ["in flight", "waits for its retry"])
def test_a_parallel_step_after_the_pivot_settles_before_the_saga_fails(deliver: str) -> None:
    saga = mail_failed_after_pivot(deliver)
    attempt = 1
    if deliver == "waits for its retry":
        saga.fire("deliver/2/retry")
        attempt = 2

    saga.reply("Delivered", "deliver", attempt=attempt)

    assert saga.state.status == InstanceStatus.FAILED
    assert effects_of(saga)[-1] == "finish failed"
    assert saga.state.reason == "step 'mail' after the pivot gave up: MailFailed"
    assert statuses(saga.state) == {"charge": "succeeded", "mail": "failed", "deliver": "succeeded"}

    act(saga, RETRY, step="mail")

    assert effects_of(saga) == ["publish Mail mail/2"]  # the delivery is not sent again
    saga.reply("Mailed", "mail", attempt=2)
    assert status_of(saga) == InstanceStatus.COMPLETED


def test_skip_the_parallel_step_still_running_fails_the_saga_by_the_other() -> None:
    saga = mail_failed_after_pivot("in flight")

    decision = act(saga, SKIP, step="deliver")

    # Nothing else is in flight: the mail failed the saga, and the operator is not done yet.
    assert not decision.ignored
    assert effects_of(saga) == ["cancel deliver/1/timeout", "finish failed"]
    assert saga.state.status == InstanceStatus.FAILED
    assert saga.state.reason == "step 'mail' after the pivot gave up: MailFailed"
    assert saga.state.step("deliver").status == StepStatus.SUCCEEDED

    act(saga, SKIP, step="mail")

    assert status_of(saga) == InstanceStatus.COMPLETED


def both_failed_after_pivot() -> Instance:
    saga = mail_failed_after_pivot("in flight")
    for attempt in (1, 2, 3):
        saga.fire(f"deliver/{attempt}/timeout")
        if attempt < 3:
            saga.fire(f"deliver/{attempt + 1}/retry")
    assert saga.state.status == InstanceStatus.FAILED
    assert statuses(saga.state) == {"charge": "succeeded", "mail": "failed", "deliver": "failed"}
    return saga


def test_retry_of_one_of_two_failed_steps_after_the_pivot_is_refused() -> None:
    saga = both_failed_after_pivot()

    refused(
        saga,
        RETRY,
        "step 'deliver' failed too: retry without a step, or skip the others first",
        step="mail",
    )
    act(saga, RETRY)
    assert effects_of(saga) == [
        "publish Mail mail/2",
        "schedule deliver/4/timeout",
        "publish Deliver deliver/4",
    ]
    assert status_of(saga) == InstanceStatus.RUNNING


def test_resume_a_cancelled_saga_after_the_pivot_runs_again_the_step_in_flight() -> None:
    saga = mail_failed_after_pivot("in flight")
    act(saga, CANCEL)
    assert effects_of(saga) == ["cancel deliver/1/timeout", "finish cancelled"]

    act(saga, RESUME)

    assert effects_of(saga) == [
        "schedule deliver/2/timeout",
        "publish Deliver deliver/2",
    ]
    assert saga.state.status == InstanceStatus.RUNNING
    saga.reply("Delivered", "deliver", attempt=2)
    assert status_of(saga) == InstanceStatus.FAILED  # by the mail, as before the cancel


def ship_timed_out() -> Instance:
    order = order_waiting_for_shipment()
    order.fire("ship/1/timeout")
    assert order.state.status == InstanceStatus.FAILED  # the pivot's outcome is unknown
    return order


def test_retry_of_a_pivot_whose_outcome_is_unknown_asks_again_under_the_same_key() -> None:
    order = ship_timed_out()

    act(order, RETRY, step="ship")

    assert effects_of(order) == [
        "schedule deadline/1",
        "schedule ship/2/timeout",
        "publish ShipOrder ship/2",
    ]
    first, second = published(order, "ship/1").command, published(order, "ship/2").command
    assert first.idempotency_key == second.idempotency_key == f"{order.saga_id}/ship"
    assert (first.attempt, second.attempt) == (1, 2)
    order.reply("OrderShipped", "ship", attempt=2)  # the shipper had sent it: it says so again
    assert status_of(order) == InstanceStatus.COMPLETED


def test_skip_a_pivot_whose_outcome_is_unknown_when_it_was_done() -> None:
    order = ship_timed_out()

    act(order, SKIP, step="ship", data={"trackingNumber": "seen-by-phone"})

    assert status_of(order) == InstanceStatus.COMPLETED
    assert order.state.data["trackingNumber"] == "seen-by-phone"


def test_skip_a_failed_step_of_a_compensating_saga_is_refused() -> None:
    order = paying_order()
    order.handler_raises("take_payment", "card declined", retryable=False)

    refused(
        order,
        SKIP,
        "step 'take_payment' cannot be skipped (it is failed; the saga is compensating)",
        step="take_payment",
    )


# -- random operator actions ---------------------------------------------------------------

BUSY = (StepStatus.RUNNING, StepStatus.COMPENSATING)
BUSY_SAGA = (InstanceStatus.RUNNING, InstanceStatus.COMPENSATING)
ACTIONS = list(OperatorAction)


def check_consistent(definition: SagaDefinition, state: SagaState) -> None:
    """What holds for any state, whatever operators did."""
    cancelled = state.status == InstanceStatus.CANCELLED
    assert (state.interrupted is not None) == cancelled, state
    if cancelled:
        assert state.interrupted != InstanceStatus.CANCELLED
    busy = [name for name, step in state.steps.items() if step.status in BUSY]
    if state.status == InstanceStatus.FAILED:
        # The engine leaves the parallel steps after the pivot as they stand when one of them
        # gives up (see test_a_failed_saga_going_on_runs_again_the_parallel_step_it_left).
        assert set(busy) <= after_pivot(definition), f"failed with {busy} in flight"
    elif state.status.terminal and not cancelled:
        assert busy == [], f"{state.status.value} with {busy} in flight"
    if not state.status.terminal:
        # A live instance always waits for something: nothing is left stuck.
        assert busy, f"{state.status.value} and nothing in flight: {statuses(state)}"
    for name, step in state.steps.items():
        if step.retry_due is not None:
            assert state.status in (*BUSY_SAGA, InstanceStatus.FAILED), name
            assert step.status in BUSY, name
    undoing = [name for name, step in state.steps.items() if step.status == BUSY[1]]
    assert len(undoing) <= 1, undoing
    if undoing:
        assert state.status in (InstanceStatus.COMPENSATING, InstanceStatus.CANCELLED)


class Driver:
    """One instance fed random answers, timer firings and operator actions."""

    def __init__(self, definition: SagaDefinition, data: dict[str, Any]) -> None:
        self.instance = Instance(definition, data)
        self.log: list[tuple[Event, Any]] = [(self.instance.trigger, self.instance.now)]
        self.decisions: list[Decision] = [self.instance.decision]
        check_consistent(definition, self.instance.state)

    @property
    def state(self) -> SagaState:
        return self.instance.state

    def deliver(self, event: Event) -> Decision:
        instance = self.instance
        before = instance.state
        decision = instance.deliver(event)
        self.log.append((event, instance.now))
        self.decisions.append(decision)
        if decision.ignored:
            assert decision.effects == ()
            assert decision.state == before
            assert decision.note.startswith("ignored: ")
        else:
            assert decision.state.updated_at == instance.now
        finishes = [e for e in decision.effects if isinstance(e, Finish)]
        if finishes:
            assert [decision.effects[-1]] == finishes
            assert finishes[0].status == decision.state.status
        after = decision.state.status
        if after.terminal and (not before.status.terminal or before.status != after):
            assert finishes, f"ended {after.value} without Finish"
        if not decision.state.status.terminal:
            assert not finishes
        check_consistent(instance.definition, decision.state)
        return decision

    def operator(self, action: OperatorAction, step: str | None, values: Any) -> Decision:
        instance = self.instance
        event = operator_event(
            action, instance.saga_id, actor="bob", at=instance.now, step=step, data=values
        )
        return self.deliver(event)

    def candidates(self) -> list[Event]:
        """Replies to every command, outcomes of every handler call, every timer, and the
        events of the waits: current, late and stale alike."""
        instance = self.instance
        definition, saga_id, now = instance.definition, instance.saga_id, instance.now
        events: list[Event] = []
        for effect in instance.effects:
            if isinstance(effect, PublishCommand):
                spec = definition.step(effect.step)
                action = spec.compensation if effect.compensating else spec
                assert action is not None
                command = action.action
                assert isinstance(command, Command)
                for reply in (*command.success, *command.failure):
                    events.append(instance.event(reply, {}, causation_id=effect.command.event_id))
            elif isinstance(effect, InvokeHandler):
                events.append(handler_succeeded(effect, saga_id, {}, now))
                events.append(handler_failed(effect, saga_id, "broke", True, now))
                events.append(handler_failed(effect, saga_id, "refused", False, now))
            elif isinstance(effect, ScheduleTimer):
                events.append(timer_fired(effect, saga_id, max(now, effect.due_at)))
        for step in definition.steps:
            if isinstance(step.action, Wait):
                for event_type in (*step.action.event, *step.action.failure):
                    events.append(instance.event(event_type, {}))
        return events

    def answer(self, name: str) -> None:
        """Answer what step ``name`` waits for with a success."""
        instance = self.instance
        step = instance.state.step(name)
        undo = step.status == StepStatus.COMPENSATING
        attempt = step.undo_attempt if undo else step.attempt
        spec = instance.definition.step(name)
        action = spec.compensation.action if undo and spec.compensation else spec.action
        if step.retry_due is not None:
            decision = self.fire(
                instance.timer(f"{name}/{'undo/' if undo else ''}{attempt + 1}/retry")
            )
        elif isinstance(action, Command):
            key = instance.action_id(name, attempt, undo)
            decision = self.deliver(instance.event(action.success[0], {}, causation_id=key))
        elif isinstance(action, HandlerCall):
            invoked = instance.invocation(name, attempt, undo)
            decision = self.deliver(handler_succeeded(invoked, instance.saga_id, {}, instance.now))
        elif isinstance(action, Wait):
            decision = self.deliver(instance.event(action.event[0], {}))
        else:
            assert isinstance(action, Delay)
            key = f"{name}/{'undo/' if undo else ''}{attempt}/delay"
            decision = self.fire(instance.timer(key))
        assert not decision.ignored, decision.note

    def fire(self, timer: ScheduleTimer) -> Decision:
        self.instance.now = max(self.instance.now, timer.due_at)
        return self.deliver(timer_fired(timer, self.instance.saga_id, self.instance.now))

    def rescue(self, data: st.DataObject) -> None:
        """An operator brings whatever is left to an end: resume what was cancelled, retry
        (then skip) what failed, answer what is in flight."""
        for _ in range(200):
            state = self.state
            if state.status in (InstanceStatus.COMPLETED, InstanceStatus.COMPENSATED):
                return
            if state.status == InstanceStatus.CANCELLED:
                decision = self.operator(RESUME, None, None)
                assert not decision.ignored, decision.note
            elif state.status == InstanceStatus.FAILED:
                decision = self.operator(RETRY, None, None)
                assert not decision.ignored, decision.note
                if self.state.status == InstanceStatus.FAILED:  # failed again at once
                    failed = self.state.failed_step
                    assert failed is not None, statuses(self.state)
                    decision = self.operator(SKIP, failed, None)
                    assert not decision.ignored, decision.note
            else:
                self.instance.now += timedelta(seconds=1)
                busy = [name for name, step in state.steps.items() if step.status in BUSY]
                self.answer(data.draw(st.sampled_from(busy), label="answer"))
        raise AssertionError(f"still {self.state.status.value} after 200 answers")


FIXED = [ORDER, TRAVEL, SHIPPING]
FIXED_DATA = {ORDER.name: ORDER_DATA, TRAVEL.name: TRIP_DATA, SHIPPING.name: {"id": "x-1"}}


def play(data: st.DataObject, definition: SagaDefinition, events: int) -> Driver:
    trigger_data = FIXED_DATA.get(definition.name)
    if trigger_data is None or definition not in FIXED:
        flags = {f"f{index}": data.draw(st.booleans()) for index in range(len(definition.steps))}
        trigger_data = {"id": "k-1", **flags}
    driver = Driver(definition, trigger_data)
    steps = [step.name for step in definition.steps]
    for _ in range(events):
        driver.instance.now += timedelta(seconds=data.draw(st.integers(0, 120), label="wait"))
        if data.draw(st.integers(0, 2), label="operator?") == 0:
            action = data.draw(st.sampled_from(ACTIONS), label="action")
            step = data.draw(st.none() | st.sampled_from([*steps, "nope"]), label="step")
            values = data.draw(st.none() | st.just({"byHand": True}), label="data")
            driver.operator(action, step, values)
        else:
            candidates = driver.candidates()
            if candidates:
                driver.deliver(data.draw(st.sampled_from(candidates), label="event"))
    return driver


OPERATED = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@OPERATED
@given(
    events=st.integers(0, 40),
    definition=st.sampled_from(FIXED) | definitions(),
    data=st.data(),
)
def test_random_operator_actions_keep_the_instance_consistent_and_replayable(
    events: int, definition: SagaDefinition, data: st.DataObject
) -> None:
    driver = play(data, definition, events)

    # The log, operator actions included, replays to the same decisions.
    state: SagaState | None = None
    for (event, at), recorded in zip(driver.log, driver.decisions, strict=True):
        replayed = decide(definition, state, event, at)
        assert replayed == recorded
        state = replayed.state
    assert state == driver.state

    # Whatever happened, an operator can still bring the instance to an end.
    driver.rescue(data)
    assert driver.state.status in (InstanceStatus.COMPLETED, InstanceStatus.COMPENSATED)
