"""Bad input gets a clear error or a recorded, harmless outcome, and never corrupts state."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from runtime_checks import assert_replays, order_created

from sagas import SagaDefinition, parse_definition
from sagas.cli import cli
from sagas.demo.participants import Participants
from sagas.engine.decide import saga_id_for
from sagas.engine.effects import PublishCommand
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        yield engine


@pytest.fixture
def orders(engine: Engine, order_definition: SagaDefinition) -> Participants:
    """The order saga with participants that always succeed."""
    participants = Participants(fail_rate=0.0)
    participants.subscribe(engine.bus)
    participants.register(engine.handlers)
    engine.register(order_definition)
    return participants


def snapshot(engine: Engine) -> dict[str, object]:
    """Everything an event could change, to compare before and after."""
    store = engine.store
    return {
        "instances": {r.saga_id: (r.version, r.state) for r in store.list_instances(limit=1000)},
        "log": [(e.saga_id, e.seq) for e in store.log_from(0, 10_000)],
        "timers": store.timers(),
        "outbox": store.pending_outbox(1000),
    }


def complete_one_order(engine: Engine, clock: ManualClock, order_id: str) -> str:
    engine.publish(order_created(order_id, clock.now()))
    engine.run_until_idle()
    saga_id = saga_id_for("order_fulfillment", order_id)
    assert engine.store.instance(saga_id).state.status == InstanceStatus.COMPLETED
    return saga_id


# -- the CLI refuses malformed events ------------------------------------------------------


def publish(database: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["publish", *args, "--db", database])
    return result.exit_code, result.output


def test_publish_refuses_text_that_is_not_json(database: str) -> None:
    code, output = publish(database, "{this is not json")

    assert code == 1
    assert "not valid JSON" in output
    assert "Traceback" not in output


def test_publish_refuses_an_event_with_bad_fields_naming_its_id_and_the_fields(
    database: str,
) -> None:
    event = {"eventId": "evt-42", "eventType": "has spaces", "timestamp": "yesterday", "data": []}

    code, output = publish(database, json.dumps(event))

    assert code == 1
    assert "evt-42" in output
    for field in ("eventType", "timestamp", "data"):
        assert field in output


def test_publish_refuses_data_that_is_not_a_json_object(database: str) -> None:
    code, output = publish(database, "--type", "OrderCreated", "--data", "[1, 2]")

    assert code != 0
    assert "--data" in output
    assert "JSON object" in output


def test_a_refused_event_is_not_queued(database: str, clock: ManualClock) -> None:
    good = order_created("order-1", clock.now(), event_id="good-1")
    assert publish(database, good.to_json())[0] == 0
    bad = good.to_dict() | {"eventId": "bad-1", "timestamp": "not a time"}

    code, output = publish(database, json.dumps(bad))

    assert code == 1
    assert "bad-1" in output
    with saga_engine(database, clock=clock) as engine:
        assert [q.event.event_id for q in engine.store.queued(10)] == ["good-1"]


# -- events the engine cannot use become dead letters --------------------------------------


def test_an_event_for_an_unknown_saga_id_is_a_dead_letter_and_changes_nothing(
    engine: Engine, clock: ManualClock, orders: Participants
) -> None:
    complete_one_order(engine, clock, "order-1")
    before = snapshot(engine)
    stray = Event.create(
        "InventoryReserved", {}, at=clock.now(), event_id="stray-1", saga_id="no-such-saga"
    )

    engine.publish(stray)
    engine.run_until_idle()

    assert snapshot(engine) == before
    [letter] = engine.store.dead_letters()
    assert (letter.event_id, letter.saga_id) == ("stray-1", "no-such-saga")
    assert "no-such-saga" in letter.reason
    assert Event.from_json(letter.payload) == stray
    assert engine.store.queue_depth() == 0


def test_a_trigger_without_the_correlation_key_is_a_dead_letter_naming_saga_and_expression(
    engine: Engine, clock: ManualClock, orders: Participants
) -> None:
    before = snapshot(engine)

    engine.publish(Event.create("OrderCreated", {"items": []}, at=clock.now(), event_id="e-9"))
    engine.run_until_idle()

    assert snapshot(engine) == before
    [letter] = engine.store.dead_letters()
    assert letter.event_id == "e-9"
    assert "order_fulfillment" in letter.reason
    assert "orderId" in letter.reason


def test_a_step_whose_handler_is_not_registered_fails_naming_it_and_the_saga_compensates(
    engine: Engine, clock: ManualClock
) -> None:
    definition = parse_definition(
        """
name: unregistered
trigger: Start
correlation: id
steps:
  - name: book
    handler: book
    compensation: {handler: cancel}
  - name: charge
    handler: charge_card_v2
    pivot: true
"""
    )
    calls: list[str] = []

    def book(context: StepContext) -> dict[str, str]:
        calls.append("book")
        return {"booking": "b-1"}

    def cancel(context: StepContext) -> None:
        calls.append("cancel")

    engine.handlers.register(book)
    engine.handlers.register(cancel)
    engine.register(definition)

    engine.publish(Event.create("Start", {"id": "1"}, at=clock.now()))
    engine.run_until_idle()

    state = engine.store.instance(saga_id_for("unregistered", "1")).state
    assert state.status == InstanceStatus.COMPENSATED
    assert state.steps["charge"].status == StepStatus.FAILED
    assert "charge_card_v2" in (state.steps["charge"].error or "")
    assert "charge_card_v2" in (state.reason or "")
    assert state.steps["book"].status == StepStatus.COMPENSATED
    assert calls == ["book", "cancel"]
    assert_replays(engine.store, state.saga_id)


# -- late and repeated replies are recorded as ignored -------------------------------------


def test_a_reply_that_arrives_twice_is_recorded_as_ignored_the_second_time(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    # Only payment answers on its own: the inventory replies come from the test.
    payments = Participants(fail_rate=0.0)
    payments.register(engine.handlers)
    engine.register(order_definition)
    engine.publish(order_created("order-1", clock.now()))
    engine.run_until_idle()
    saga_id = saga_id_for("order_fulfillment", "order-1")
    [command] = [
        e.command for e in engine.store.log(saga_id)[0].effects if isinstance(e, PublishCommand)
    ]
    reply = {"saga_id": saga_id, "causation_id": command.event_id}
    engine.publish(Event.create("InventoryReserved", {"r": 1}, at=clock.now(), **reply))
    engine.run_until_idle()
    before = engine.store.instance(saga_id)
    assert before.state.steps["reserve_inventory"].status == StepStatus.SUCCEEDED

    engine.publish(Event.create("InventoryReserved", {"r": 2}, at=clock.now(), **reply))
    engine.run_until_idle()

    after = engine.store.instance(saga_id)
    assert after.state == before.state
    last = engine.store.log(saga_id)[-1]
    assert (last.event.event_type, last.ignored, last.effects) == ("InventoryReserved", True, ())
    assert after.state.data.get("r") == 1
    assert_replays(engine.store, saga_id)


def test_a_reply_after_the_saga_ended_is_recorded_as_ignored(
    engine: Engine, clock: ManualClock, orders: Participants
) -> None:
    saga_id = complete_one_order(engine, clock, "order-1")
    before = engine.store.instance(saga_id)

    late = Event.create("OrderShipped", {"trackingId": "late"}, at=clock.now(), saga_id=saga_id)
    engine.publish(late)
    engine.run_until_idle()

    after = engine.store.instance(saga_id)
    assert after.state == before.state
    last = engine.store.log(saga_id)[-1]
    assert last.event.event_id == late.event_id
    assert last.ignored
    assert "completed" in last.note
    assert engine.store.dead_letters() == []
    assert_replays(engine.store, saga_id)


# -- a failing subscriber does not stop the engine -----------------------------------------


def test_a_subscriber_that_raises_becomes_a_dead_letter_and_the_engine_carries_on(
    engine: Engine, clock: ManualClock, orders: Participants
) -> None:
    seen: list[str] = []

    def audit(event: Event) -> None:
        seen.append(event.data["orderId"])
        if event.data["orderId"] == "order-2":
            raise RuntimeError("audit log is full")

    engine.bus.subscribe("OrderCreated", audit)
    for n in range(4):
        engine.publish(order_created(f"order-{n}", clock.now(), event_id=f"created-{n}"))

    engine.run_until_idle()

    assert sorted(seen) == [f"order-{n}" for n in range(4)]
    statuses = {r.state.correlation_key: r.state.status for r in engine.store.list_instances()}
    assert statuses == {f"order-{n}": InstanceStatus.COMPLETED for n in range(4)}
    [letter] = engine.store.dead_letters()
    assert letter.event_id == "created-2"
    assert "audit" in letter.reason
    assert "audit log is full" in letter.reason


def test_a_correlation_key_too_long_to_keep_is_a_dead_letter_and_blocks_nothing(
    engine: Engine, clock: ManualClock, orders: Participants
) -> None:
    # PostgreSQL keeps keys of at most 500 characters: a longer one made every round fail.
    engine.publish(order_created("o" * 501, clock.now(), event_id="too-long"))
    engine.publish(order_created("fine", clock.now()))

    engine.run_until_idle()

    [letter] = engine.store.dead_letters()
    assert letter.event_id == "too-long"
    assert "gives a key of 501 characters (at most 500)" in letter.reason
    fine = saga_id_for("order_fulfillment", "fine")
    assert engine.store.instance(fine).state.status == InstanceStatus.COMPLETED
    assert engine.store.queue_depth() == 0
