"""Operator actions on stored instances, on every backend: ``Operations.act`` decides at once
in a transaction of its own and leaves the effects to the workers; ``act_many`` reports per
instance. Each scenario then lets an engine carry on and checks where the instance ends, that
effects ran once, and that the log still replays to the stored state."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest
from operations_support import (
    Orders,
    Trips,
    assert_replays,
    run_timers_until,
    status_is,
    travel_definition,
)

from sagas import SagaDefinition
from sagas.engine.effects import TimerKind
from sagas.engine.internal import HANDLER_SUCCEEDED
from sagas.engine.operator import OPERATOR_EVENT_TYPES, OperatorAction
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.handlers import StepContext
from sagas.operations import ActionRequest, ActionResult, Operations, Outcome
from sagas.runtime.engine import Engine
from sagas.store.base import UnknownSagaError
from sagas.store.filters import InstanceFilter
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock, saga_engine

RETRY = OperatorAction.RETRY
COMPENSATE = OperatorAction.COMPENSATE
CANCEL = OperatorAction.CANCEL
RESUME = OperatorAction.RESUME
SKIP = OperatorAction.SKIP


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        yield engine


@pytest.fixture
def orders(engine: Engine, clock: ManualClock, order_definition: SagaDefinition) -> Orders:
    engine.register(order_definition)
    return Orders(engine, clock)


@pytest.fixture
def operations(database: str, clock: ManualClock) -> Iterator[Operations]:
    """Operations on a store of their own (as the CLI or the HTTP API has), same clock."""
    store = SQLStore(database)
    try:
        yield Operations(store, clock)
    finally:
        store.close()


def request(
    action: OperatorAction,
    reason: str | None = None,
    step: str | None = None,
    data: dict[str, object] | None = None,
) -> ActionRequest:
    return ActionRequest(action, "alice", reason, step, data or {})


def assert_applied(result: ActionResult, before: InstanceStatus, after: InstanceStatus) -> None:
    assert result.outcome == Outcome.APPLIED, result
    assert (result.status_before, result.status_after) == (before, after), result
    assert result.event_id is not None


# -- one instance ---------------------------------------------------------------------------


def test_retrying_a_compensation_that_gave_up_compensates_the_order(
    engine: Engine, orders: Orders, operations: Operations
) -> None:
    [saga_id] = orders.fail_with_refund_down(["o-1"])
    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.FAILED
    assert state.failed_step == "take_payment"
    assert "compensation of 'take_payment' gave up" in (state.reason or "")
    assert orders.refund_attempts == [1, 2, 3, 4, 5]
    assert orders.counts["release"] == 0, "the release waits for the refund"

    result = operations.act(saga_id, request(RETRY, reason="the bank is back"))

    assert_applied(result, InstanceStatus.FAILED, InstanceStatus.COMPENSATING)
    assert "retry by alice (the bank is back)" in result.note
    stored = engine.store.instance(saga_id).state
    assert stored.status == InstanceStatus.COMPENSATING
    last = engine.store.log(saga_id)[-1]
    assert last.event.event_type == "sagas.RetryRequested"
    assert last.event.event_id == result.event_id
    assert last.event.data == {"actor": "alice", "reason": "the bank is back"}
    assert not last.ignored
    # Decided, not carried out: the refund waits in the outbox for a worker.
    assert orders.refund_attempts == [1, 2, 3, 4, 5]
    assert [item.saga_id for item in engine.store.pending_outbox(10)] == [saga_id]

    orders.refund_down = False
    engine.run_until_idle()

    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPENSATED
    assert state.steps["take_payment"].status == StepStatus.COMPENSATED
    assert state.steps["reserve_inventory"].status == StepStatus.COMPENSATED
    assert orders.refund_attempts == [1, 2, 3, 4, 5, 6]
    assert orders.counts["refund"] == 1
    assert orders.counts["release"] == 1
    assert engine.store.pending_outbox(10) == []
    assert engine.store.timers(saga_id) == []
    assert_replays(engine.store, saga_id)


def test_retrying_a_trip_failed_after_the_pivot_completes_it(
    engine: Engine, clock: ManualClock, operations: Operations
) -> None:
    engine.register(travel_definition())
    trips = Trips(engine, clock)
    trips.mailer_down = True
    saga_id = trips.start("trip-1")
    run_timers_until(engine, clock, status_is(engine, saga_id, InstanceStatus.FAILED))
    state = engine.store.instance(saga_id).state
    assert state.failed_step == "send_itinerary"
    assert "after the pivot gave up" in (state.reason or "")
    assert state.steps["charge_customer"].status == StepStatus.SUCCEEDED
    assert len(trips.sent) == 2

    result = operations.act(saga_id, request(RETRY, step="send_itinerary"))

    assert_applied(result, InstanceStatus.FAILED, InstanceStatus.RUNNING)
    trips.mailer_down = False
    engine.run_until_idle()
    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPLETED
    assert state.reason is None
    assert len(trips.sent) == 3
    assert trips.sent[-1].event_id.endswith("/send_itinerary/3")
    # Past the pivot: nothing was ever compensated.
    assert all(step.undo_attempt == 0 for step in state.steps.values())
    assert_replays(engine.store, saga_id)


def test_skipping_a_step_merges_its_data_into_what_the_next_handler_sees(
    engine: Engine, orders: Orders, operations: Operations
) -> None:
    orders.silent_inventory.add("o-1")
    saga_id = orders.start("o-1")
    engine.run_until_idle()
    [reserve] = [c for c in orders.commands if c.event_type == "ReserveInventory"]
    kinds = {record.timer.kind for record in engine.store.timers(saga_id)}
    assert kinds == {TimerKind.TIMEOUT, TimerKind.DEADLINE}

    result = operations.act(
        saga_id,
        request(SKIP, step="reserve_inventory", data={"reservationId": "by-hand", "n": 2}),
    )

    assert_applied(result, InstanceStatus.RUNNING, InstanceStatus.RUNNING)
    state = engine.store.instance(saga_id).state
    assert state.steps["reserve_inventory"].status == StepStatus.SUCCEEDED
    assert state.data["reservationId"] == "by-hand"
    assert state.data["orderId"] == "o-1", "merged, not replaced"
    timers = {(r.timer.kind, r.timer.step) for r in engine.store.timers(saga_id)}
    assert (TimerKind.TIMEOUT, "reserve_inventory") not in timers, "its timeout is gone"
    assert (TimerKind.TIMEOUT, "take_payment") in timers, "the next step started"
    engine.run_until_idle()

    [(_, attempt, seen)] = orders.payments
    assert attempt == 1
    assert seen["reservationId"] == "by-hand"
    assert seen["n"] == 2
    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPLETED
    # The inventory service answering late changes nothing.
    engine.bus.reply(reserve, "InventoryReserved", {"reservationId": "late"})
    engine.run_until_idle()
    assert engine.store.log(saga_id)[-1].ignored
    assert engine.store.instance(saga_id).state == state
    assert_replays(engine.store, saga_id)


def test_a_saga_cancelled_while_its_handler_runs_ignores_the_outcome_and_resumes(
    engine: Engine, orders: Orders, operations: Operations
) -> None:
    cancelled: list[ActionResult] = []

    def cancel_while_in_flight(context: StepContext) -> None:
        if context.attempt == 1:
            cancelled.append(
                operations.act(context.saga_id, request(CANCEL, reason="customer called"))
            )

    orders.payment_hook = cancel_while_in_flight
    saga_id = orders.start("o-1")
    engine.run_until_idle()

    [result] = cancelled
    assert_applied(result, InstanceStatus.RUNNING, InstanceStatus.CANCELLED)
    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.CANCELLED
    assert state.reason == "cancelled by alice (customer called)"
    assert state.steps["take_payment"].status == StepStatus.RUNNING
    assert engine.store.timers(saga_id) == [], "the deadline and the payment timeout went"
    log = engine.store.log(saga_id)
    assert log[-2].event.event_id == result.event_id
    late = log[-1]
    assert late.event.event_type == HANDLER_SUCCEEDED
    assert late.ignored
    assert "paymentId" not in state.data
    assert orders.counts["ship"] == 0

    resumed = operations.act(saga_id, request(RESUME))

    assert_applied(resumed, InstanceStatus.CANCELLED, InstanceStatus.RUNNING)
    engine.run_until_idle()
    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPLETED
    assert [attempt for _, attempt, _ in orders.payments] == [1, 2]
    assert state.data["paymentId"] == "pay-o-1"
    assert orders.counts["ship"] == 1
    assert engine.store.timers(saga_id) == []
    assert_replays(engine.store, saga_id)


def test_compensating_a_running_order_undoes_what_it_completed(
    engine: Engine, orders: Orders, operations: Operations
) -> None:
    orders.crashing_payments.add("o-1")  # the payment waits for its retry's back-off
    saga_id = orders.start("o-1")
    engine.run_until_idle()
    step = engine.store.instance(saga_id).state.steps["take_payment"]
    assert step.retry_due is not None

    result = operations.act(saga_id, request(COMPENSATE, reason="fraud"))

    assert_applied(result, InstanceStatus.RUNNING, InstanceStatus.COMPENSATING)
    assert not any(r.timer.kind == TimerKind.RETRY for r in engine.store.timers(saga_id))
    engine.run_until_idle()
    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPENSATED
    assert "fraud" in (state.reason or "")
    assert state.steps["reserve_inventory"].status == StepStatus.COMPENSATED
    assert orders.counts["release"] == 1
    assert orders.counts["refund"] == 0
    assert orders.counts["payment"] == 1
    assert engine.store.timers(saga_id) == []
    assert_replays(engine.store, saga_id)


def test_compensating_past_the_pivot_is_refused_and_changes_nothing(
    engine: Engine, orders: Orders, operations: Operations
) -> None:
    orders.silent_shipments.add("o-1")
    saga_id = orders.start("o-1")
    engine.run_until_idle()
    before = engine.store.instance(saga_id).state

    result = operations.act(saga_id, request(COMPENSATE))

    assert result.outcome == Outcome.REFUSED
    assert "past its pivot" in result.note
    assert not result.note.startswith("ignored")
    assert result.status_before == result.status_after == InstanceStatus.RUNNING
    assert engine.store.instance(saga_id).state.model_dump(
        exclude={"updated_at"}
    ) == before.model_dump(exclude={"updated_at"})
    assert engine.store.pending_outbox(10) == []
    assert_replays(engine.store, saga_id)


def test_an_unknown_saga_id_raises_unknown_saga_error(operations: Operations) -> None:
    for dry_run in (False, True):
        with pytest.raises(UnknownSagaError) as raised:
            operations.act("no-such-saga", request(RETRY), dry_run=dry_run)
        assert raised.value.saga_id == "no-such-saga"


def test_a_dry_run_writes_nothing_but_says_what_would_happen(
    engine: Engine, orders: Orders, operations: Operations
) -> None:
    [failed] = orders.fail_with_refund_down(["o-1"])
    completed = orders.start("o-2")
    engine.run_until_idle()
    store = engine.store

    def snapshot(saga_id: str) -> tuple[int, int, int]:
        record = store.instance(saga_id)
        return record.version, len(store.log(saga_id)), len(store.timers(saga_id))

    before = {saga_id: snapshot(saga_id) for saga_id in (failed, completed)}
    outbox, queued = store.pending_outbox(100), store.queue_depth()

    would = operations.act(failed, request(RETRY), dry_run=True)
    refused = operations.act(completed, request(CANCEL), dry_run=True)
    skip = operations.act(failed, request(SKIP, step="take_payment"), dry_run=True)

    assert (would.outcome, would.status_before, would.status_after) == (
        Outcome.WOULD_APPLY,
        InstanceStatus.FAILED,
        InstanceStatus.COMPENSATING,
    )
    assert would.event_id is None
    assert (refused.outcome, refused.status_after) == (Outcome.REFUSED, InstanceStatus.COMPLETED)
    assert "already ended completed" in refused.note
    assert skip.outcome == Outcome.WOULD_APPLY
    assert {saga_id: snapshot(saga_id) for saga_id in before} == before
    assert store.pending_outbox(100) == outbox
    assert store.queue_depth() == queued
    assert store.instance(failed).state.status == InstanceStatus.FAILED


# -- in bulk --------------------------------------------------------------------------------


def test_bulk_actions_act_on_exactly_what_the_filter_selects_and_report_each(
    engine: Engine, orders: Orders, operations: Operations
) -> None:
    failed = orders.fail_with_refund_down(["f-1", "f-2", "f-3"])
    orders.refund_down = False
    completed = [orders.start(f"c-{n}") for n in range(3)]
    orders.silent_inventory.add("x-1")
    stopped = orders.start("x-1")
    engine.run_until_idle()
    assert operations.act(stopped, request(CANCEL)).outcome == Outcome.APPLIED
    stopped_log = len(engine.store.log(stopped))

    retried = operations.act_many(InstanceFilter(status=(InstanceStatus.FAILED,)), request(RETRY))

    assert sorted(r.saga_id for r in retried) == sorted(failed)
    for result in retried:
        assert_applied(result, InstanceStatus.FAILED, InstanceStatus.COMPENSATING)
    assert len({r.event_id for r in retried}) == 3
    engine.run_until_idle()
    for saga_id in failed:
        assert engine.store.instance(saga_id).state.status == InstanceStatus.COMPENSATED
        assert_replays(engine.store, saga_id)
    assert orders.counts["refund"] == 3
    assert orders.counts["release"] == 3

    where = InstanceFilter(saga="order_fulfillment", status=(InstanceStatus.COMPLETED,))
    assert engine.store.count_matching(where) == 3
    states = {saga_id: engine.store.instance(saga_id).state for saga_id in completed}
    refused = operations.act_many(where, request(CANCEL))

    assert sorted(r.saga_id for r in refused) == sorted(completed)
    for result in refused:
        assert result.outcome == Outcome.REFUSED
        assert "already ended" in result.note
        assert result.status_before == result.status_after == InstanceStatus.COMPLETED
        assert result.to_dict()["outcome"] == "refused"
        # Untouched, to its update time (a refusal does not make it look recently ended).
        assert engine.store.instance(result.saga_id).state == states[result.saga_id]
        for entry in engine.store.log(result.saga_id):
            if entry.event.event_type in OPERATOR_EVENT_TYPES:
                assert entry.ignored, "a refusal is never a decision that did something"
    assert engine.store.instance(stopped).state.status == InstanceStatus.CANCELLED
    assert len(engine.store.log(stopped)) == stopped_log

    # A dry run over every instance: honest per instance, nothing changes.
    everything = operations.act_many(InstanceFilter(), request(RESUME), dry_run=True)
    outcomes = {r.saga_id: r.outcome for r in everything}
    assert len(outcomes) == 7
    assert outcomes[stopped] == Outcome.WOULD_APPLY
    assert {outcomes[saga_id] for saga_id in failed + completed} == {Outcome.REFUSED}
    assert engine.store.instance(stopped).state.status == InstanceStatus.CANCELLED
    assert operations.act_many(InstanceFilter(key="nobody"), request(RETRY)) == []


def test_a_bulk_selection_larger_than_a_page_is_taken_whole(
    engine: Engine, orders: Orders, operations: Operations, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sagas.operations.actions as actions

    monkeypatch.setattr(actions, "BULK_PAGE", 2)
    orders.silent_inventory.update(f"o-{n}" for n in range(5))
    ids = [orders.start(f"o-{n}") for n in range(5)]
    engine.run_until_idle()

    # Cancelling moves each instance out of the selection while it is being acted on.
    results = operations.act_many(InstanceFilter(status=(InstanceStatus.RUNNING,)), request(CANCEL))

    assert sorted(r.saga_id for r in results) == sorted(ids)
    assert {r.outcome for r in results} == {Outcome.APPLIED}
    assert engine.store.count_matching(InstanceFilter(status=(InstanceStatus.CANCELLED,))) == 5


# -- alongside a worker ---------------------------------------------------------------------


def test_actions_while_a_worker_runs_never_lose_a_write(
    database: str,
    clock: ManualClock,
    order_definition: SagaDefinition,
    eventually: Callable[..., None],
) -> None:
    engine = Engine(SQLStore(database), clock=clock, concurrency=4, batch_size=5)
    store = SQLStore(database)
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop, 0.005), daemon=True)
    try:
        engine.register(order_definition)
        orders = Orders(engine, clock)
        keys = [f"o-{n}" for n in range(30)]
        orders.silent_shipments.update(keys[::3])  # those wait for the shipment
        operations = Operations(store, clock)
        loop.start()
        ids: list[str] = []
        results: list[ActionResult] = []
        for key in keys:
            saga_id = orders.start(key)
            ids.append(saga_id)
            eventually(lambda s=saga_id: store.instances([s]), timeout=30, interval=0.001)
            results.append(operations.act(saga_id, request(CANCEL, reason="race")))

        def settled() -> bool:
            records = store.list_instances(limit=100)
            return (
                len(records) == len(ids)
                and all(r.state.status.terminal for r in records)
                and store.queue_depth() == 0
                and store.pending_outbox(1) == []
            )

        eventually(settled, timeout=30)
    finally:
        stop.set()
        loop.join(timeout=10)
        engine.close()
    try:
        assert not loop.is_alive()
        assert {r.outcome for r in results} <= {Outcome.APPLIED, Outcome.REFUSED}
        for saga_id, result in zip(ids, results, strict=True):
            record = store.instance(saga_id)
            log = store.log(saga_id)
            # No decision overwrote another: one log entry per version, in order.
            assert [entry.seq for entry in log] == list(range(1, record.version + 1))
            operator = [e for e in log if e.event.event_id == result.event_id]
            assert len(operator) == 1, "the action is in the log exactly once"
            assert_replays(store, saga_id)
            if result.outcome == Outcome.APPLIED:
                assert not operator[0].ignored
                assert record.state.status == InstanceStatus.CANCELLED
                assert store.timers(saga_id) == []
            else:
                assert operator[0].ignored
                assert result.status_before in (
                    InstanceStatus.COMPLETED,
                    InstanceStatus.COMPENSATED,
                ), result
                assert record.state.status == result.status_before
        applied = sum(r.outcome == Outcome.APPLIED for r in results)
        assert applied >= 1
    finally:
        store.close()


def test_every_action_is_logged_with_the_actor_the_outcome_and_the_ids(
    engine: Engine,
    orders: Orders,
    operations: Operations,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [saga_id] = orders.fail_with_refund_down(["o-1"])
    caplog.set_level(logging.INFO, logger="sagas.operations")

    applied = operations.act(saga_id, request(RETRY, reason="the bank is back"))
    refused = operations.act(saga_id, request(RETRY))

    lines = [r for r in caplog.records if r.name == "sagas.operations"]
    assert [(r.levelname, r.outcome, r.event_id) for r in lines] == [  # type: ignore[attr-defined]
        ("INFO", "applied", applied.event_id),
        ("INFO", "refused", refused.event_id),
    ]
    for record in lines:
        assert record.saga_id == saga_id  # type: ignore[attr-defined]
        assert record.actor == "alice"  # type: ignore[attr-defined]
        assert record.action == "retry"  # type: ignore[attr-defined]
    assert lines[0].getMessage().startswith(f"operator alice retry on saga {saga_id}: applied")
    assert "nothing to retry" in lines[1].getMessage()
