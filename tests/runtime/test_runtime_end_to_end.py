"""The engine end to end on every backend: orders flow, compensate, replay and dedupe."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from runtime_checks import (
    assert_compensated_in_reverse,
    assert_replays,
    order_created,
)
from sqlalchemy import Connection

from sagas import SagaDefinition
from sagas.demo.participants import Participants
from sagas.engine.decide import saga_id_for
from sagas.engine.internal import HANDLER_FAILED
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.store.records import Changes
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock, saga_engine

ORDERS = 200


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        yield engine


def with_participants(engine: Engine, fail_rate: float, seed: int = 7) -> Participants:
    participants = Participants(fail_rate=fail_rate, seed=seed)
    participants.subscribe(engine.bus)
    participants.register(engine.handlers)
    return participants


def failures_replied(engine: Engine, saga_id: str) -> list[str]:
    """The failure answers the participants gave this instance, as its log recorded them."""
    failures = {"InventoryReservationFailed", "ShipmentFailed", HANDLER_FAILED}
    return [e.event.event_type for e in engine.store.log(saga_id) if e.event.event_type in failures]


def test_orders_reach_the_outcome_the_participants_decided(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    participants = with_participants(engine, fail_rate=0.3)
    engine.register(order_definition)
    for n in range(ORDERS):
        assert engine.publish(order_created(f"order-{n}", clock.now()))

    engine.run_until_idle()

    records = engine.store.list_instances(limit=10 * ORDERS)
    assert len(records) == ORDERS
    statuses = Counter(record.state.status for record in records)
    assert set(statuses) <= {InstanceStatus.COMPLETED, InstanceStatus.COMPENSATED}, statuses
    for record in records:
        failed = bool(failures_replied(engine, record.saga_id))
        expected = InstanceStatus.COMPENSATED if failed else InstanceStatus.COMPLETED
        assert record.state.status == expected, record.state.correlation_key
    # Every order is reserved once; payment runs for the reserved ones, shipping for the paid
    # ones; a refund is due exactly for each failed shipment.
    counts = participants.counts
    assert counts["reserve"] == ORDERS
    assert statuses[InstanceStatus.COMPLETED] == counts["ship"] - counts.get("refund", 0)
    assert statuses[InstanceStatus.COMPENSATED] == (
        counts["reserve"] - counts["ship"] + counts.get("refund", 0)
    )
    assert 0 < statuses[InstanceStatus.COMPENSATED] < ORDERS
    # Compensations ran exactly once per compensated step.
    compensated = Counter(
        name
        for record in records
        for name, step in record.state.steps.items()
        if step.status == StepStatus.COMPENSATED
    )
    assert counts.get("release", 0) == compensated["reserve_inventory"] > 0
    assert counts.get("refund", 0) == compensated["take_payment"] > 0
    for record in records:
        assert_replays(engine.store, record.saga_id)
        if record.state.status == InstanceStatus.COMPENSATED:
            assert_compensated_in_reverse(engine.store, record.saga_id)
    assert engine.store.queue_depth() == 0
    assert engine.store.pending_outbox(10) == []
    assert engine.store.timers() == []
    assert engine.store.dead_letters() == []


def test_finished_listeners_hear_each_instance_once(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    with_participants(engine, fail_rate=0.3)
    engine.register(order_definition)
    finished: list[str] = []
    engine.on_finish.append(lambda state: finished.append(state.saga_id))
    for n in range(20):
        engine.publish(order_created(f"order-{n}", clock.now()))

    engine.run_until_idle()

    assert sorted(finished) == sorted(r.saga_id for r in engine.store.list_instances())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_every_order_ends_whatever_the_concurrency(
    database: str, clock: ManualClock, order_definition: SagaDefinition, concurrency: int
) -> None:
    engine = Engine(SQLStore(database), clock=clock, concurrency=concurrency, batch_size=7)
    try:
        with_participants(engine, fail_rate=0.3)
        engine.register(order_definition)
        for n in range(40):
            engine.publish(order_created(f"order-{n}", clock.now()))

        engine.run_until_idle()

        records = engine.store.list_instances()
        assert len(records) == 40
        unfinished = [r.state.correlation_key for r in records if not r.state.status.terminal]
        assert unfinished == []
        for record in records:
            assert_replays(engine.store, record.saga_id)
    finally:
        engine.close()


def test_replies_published_by_async_subscribers_are_not_lost(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    async def reserve_inventory(command: Event) -> None:
        engine.bus.reply(command, "InventoryReserved", {})

    async def ship_order(command: Event) -> None:
        engine.bus.reply(command, "OrderShipped", {"trackingId": "async"})

    engine.bus.subscribe("ReserveInventory", reserve_inventory)
    engine.bus.subscribe("ShipOrder", ship_order)
    engine.handlers.register(lambda context: {"paymentId": "p"}, "take_payment")
    engine.register(order_definition)

    for n in range(3):  # one at a time: each delivery in a round of its own
        engine.publish(order_created(f"order-{n}", clock.now()))
        engine.run_until_idle()

    statuses = [r.state.status for r in engine.store.list_instances()]
    assert statuses == [InstanceStatus.COMPLETED] * 3


def test_the_worker_loop_picks_up_new_events_until_it_is_stopped(
    engine: Engine,
    clock: ManualClock,
    order_definition: SagaDefinition,
    eventually: Callable[..., None],
) -> None:
    with_participants(engine, fail_rate=0.3)
    engine.register(order_definition)
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop, 0.01), daemon=True)
    loop.start()
    try:
        for n in range(10):
            engine.publish(order_created(f"order-{n}", clock.now()))

        def all_ended() -> bool:
            records = engine.store.list_instances()
            return len(records) == 10 and all(r.state.status.terminal for r in records)

        eventually(all_ended, timeout=20)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()


class TickingClock(ManualClock):
    """A clock that moves a millisecond each time it is read, like a real one."""

    def now(self) -> datetime:
        return self.advance(timedelta(milliseconds=1))


def test_logs_replay_to_the_stored_state_when_the_clock_moves_during_a_decision(
    database: str, order_definition: SagaDefinition
) -> None:
    clock = TickingClock()
    with saga_engine(database, clock=clock) as engine:
        with_participants(engine, fail_rate=0.5)
        engine.register(order_definition)
        for n in range(10):
            engine.publish(order_created(f"order-{n}", clock.now()))

        engine.run_until_idle()

        for record in engine.store.list_instances():
            assert record.state.status.terminal
            assert_replays(engine.store, record.saga_id)


def test_an_event_id_is_decided_once_however_often_it_is_published(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    participants = with_participants(engine, fail_rate=0.0)
    engine.register(order_definition)
    event = order_created("order-1", clock.now(), event_id="evt-1")

    assert engine.publish(event) is True
    assert engine.publish(event) is False
    engine.run_until_idle()
    assert engine.publish(event) is False  # still known once processed
    engine.run_until_idle()

    [record] = engine.store.list_instances()
    assert record.state.status == InstanceStatus.COMPLETED
    log = engine.store.log(record.saga_id)
    assert [e.event.event_id for e in log].count("evt-1") == 1
    assert participants.counts["reserve"] == 1


def test_a_second_trigger_for_the_same_order_is_recorded_as_ignored(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    with_participants(engine, fail_rate=0.0)
    engine.register(order_definition)
    engine.publish(order_created("order-1", clock.now(), event_id="first"))
    engine.run_until_idle()
    saga_id = saga_id_for("order_fulfillment", "order-1")
    before = engine.store.instance(saga_id)

    assert engine.publish(order_created("order-1", clock.now(), event_id="second"))
    engine.run_until_idle()

    assert len(engine.store.list_instances()) == 1
    after = engine.store.instance(saga_id)
    assert after.state == before.state
    last = engine.store.log(saga_id)[-1]
    assert (last.event.event_id, last.ignored) == ("second", True)
    assert "already" in last.note
    assert last.effects == ()


class CrashingStore(SQLStore):
    """A store that dies once, inside the transaction of the first ``apply`` that
    ``crash_when`` picks: after writing everything, before the commit."""

    crash_when: Callable[[Changes], bool] | None = None

    def _apply(self, conn: Connection, changes: Changes) -> None:
        super()._apply(conn, changes)
        if self.crash_when is not None and self.crash_when(changes):
            self.crash_when = None
            raise RuntimeError("power cut before the commit")


def stored_rows(store: SQLStore) -> dict[str, int]:
    return {
        "instances": len(store.list_instances()),
        "log": len(store.log_from(0, 1000)),
        "queued": store.queue_depth(),
        "outbox": len(store.pending_outbox(1000)),
        "timers": len(store.timers()),
    }


def run_until_crash(engine: Engine, rounds: int = 10) -> None:
    for _ in range(rounds):
        engine.run_once()


def test_a_crash_inside_the_commit_of_a_decision_writes_none_of_it(
    database: str, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    store = CrashingStore(database)
    engine = Engine(store, clock=clock)
    try:
        with_participants(engine, fail_rate=0.0)
        engine.register(order_definition)
        engine.publish(order_created("order-1", clock.now()))
        before = stored_rows(store)
        store.crash_when = lambda changes: bool(changes.created)

        with pytest.raises(RuntimeError, match="power cut"):
            engine.run_once()

        assert (
            stored_rows(store)
            == before
            == {"instances": 0, "log": 0, "queued": 1, "outbox": 0, "timers": 0}
        )
        engine.run_until_idle()
        [record] = store.list_instances()
        assert record.state.status == InstanceStatus.COMPLETED
        assert_replays(store, record.saga_id)
    finally:
        engine.close()


def test_a_crash_before_a_delivery_is_committed_redelivers_and_absorbs_the_repeat(
    database: str, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    store = CrashingStore(database)
    engine = Engine(store, clock=clock)
    participants = with_participants(engine, fail_rate=0.0)
    engine.register(order_definition)
    engine.publish(order_created("order-1", clock.now()))
    store.crash_when = lambda changes: bool(changes.outbox_done)
    try:
        with pytest.raises(RuntimeError, match="power cut"):
            run_until_crash(engine)  # the inventory service answers; recording that is lost
    finally:
        engine.close()
    saga_id = saga_id_for("order_fulfillment", "order-1")
    assert participants.counts == {"reserve": 1}

    with saga_engine(database, clock=clock) as restarted:
        participants.subscribe(restarted.bus)
        participants.register(restarted.handlers)
        restarted.register(order_definition)
        assert [i.effect.effect for i in restarted.store.pending_outbox(10)] == ["publish"]
        restarted.run_until_idle()
        assert participants.counts["reserve"] == 1  # the dead worker's lease still holds
        clock.advance(restarted.lease)
        restarted.run_until_idle()

        assert participants.counts["reserve"] == 2  # at least once ...
        log = restarted.store.log(saga_id)
        replies = [e.event.event_type for e in log].count("InventoryReserved")
        assert replies == 1  # ... and the repeated answer is absorbed
        assert restarted.store.instance(saga_id).state.status == InstanceStatus.COMPLETED
        assert_replays(restarted.store, saga_id)
