"""Idempotency keys a participant can deduplicate on: every attempt of a step's action shares one
key (``<saga id>/<step>``), every attempt of its compensation another (``<saga id>/<step>/undo``),
with the attempt number and a per-attempt id beside it; effects written before the shared key
existed give the same key; commands carry ``idempotencyKey`` and ``attempt`` on the wire only
when set."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sagas import SagaDefinition, StepFailed, parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.effects import InvokeHandler, outbox_adapter, step_key_of
from sagas.engine.state import InstanceStatus
from sagas.events import Event, EventError
from sagas.handlers import StepContext
from sagas.runtime.bus import EventBus
from sagas.runtime.calls import Caller
from sagas.runtime.engine import Engine
from sagas.runtime.relay import calls_for
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock, saga_engine

FLAKY = """
name: flaky
trigger: Go
correlation: id
steps:
  - name: reserve
    handler: reserve
    retry: {attempts: 3, initial_delay: 1s, jitter: 0}
    compensation:
      handler: release
      retry: {attempts: 3, initial_delay: 1s, jitter: 0}
  - name: charge
    handler: charge
    compensation: {handler: refund}
"""
SAGA_ID = saga_id_for("flaky", "f-1")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def run_through_timers(engine: Engine, clock: ManualClock) -> None:
    """Run until idle, moving the clock to each pending timer until none is left."""
    engine.run_until_idle()
    while (due := engine.store.next_due()) is not None:
        clock.advance(max(due - clock.now(), timedelta()))
        engine.run_until_idle()


def failing(
    times: int, seen: list[StepContext], error: Callable[[], Exception]
) -> Callable[[StepContext], None]:
    """A handler that records its contexts and raises ``error()`` the first ``times`` calls."""

    def handler(context: StepContext) -> None:
        seen.append(context)
        if len(seen) <= times:
            raise error()

    return handler


def test_every_attempt_of_a_step_and_of_its_compensation_shares_one_key(
    database: str, clock: ManualClock
) -> None:
    reserves: list[StepContext] = []
    releases: list[StepContext] = []
    charges: list[StepContext] = []
    handlers = {
        "reserve": failing(2, reserves, lambda: RuntimeError("stock service down")),
        "release": failing(2, releases, lambda: RuntimeError("stock service down")),
        "charge": failing(1, charges, lambda: StepFailed("card declined")),
        "refund": lambda context: None,
    }
    with saga_engine(database, clock=clock, handlers=handlers) as engine:
        engine.register(parse_definition(FLAKY))
        engine.publish(Event.create("Go", {"id": "f-1"}, at=clock.now()))

        run_through_timers(engine, clock)

        assert engine.store.instance(SAGA_ID).state.status == InstanceStatus.COMPENSATED
    assert [c.attempt for c in reserves] == [1, 2, 3]
    assert {c.idempotency_key for c in reserves} == {f"{SAGA_ID}/reserve"}
    assert [c.attempt_id for c in reserves] == [f"{SAGA_ID}/reserve/{n}" for n in (1, 2, 3)]
    assert [c.attempt for c in releases] == [1, 2, 3]
    assert {c.idempotency_key for c in releases} == {f"{SAGA_ID}/reserve/undo"}
    assert [c.attempt_id for c in releases] == [f"{SAGA_ID}/reserve/undo/{n}" for n in (1, 2, 3)]
    assert all(c.compensating for c in releases)
    assert [c.idempotency_key for c in charges] == [f"{SAGA_ID}/charge"]


@pytest.mark.parametrize(
    ("attempt_id", "undo", "shared"),
    [
        ("s-1/reserve/2", False, "s-1/reserve"),
        ("s-1/reserve/undo/3", True, "s-1/reserve/undo"),
        ("s-1/a/b/c/10", False, "s-1/a/b/c"),
        ("no-attempt-number", False, "no-attempt-number"),
        ("s-1/reserve/", False, "s-1/reserve/"),
    ],
)
def test_an_effect_written_before_step_keys_gets_its_key_from_the_attempt_id(
    tmp_path: Path, attempt_id: str, undo: bool, shared: str
) -> None:
    # As an older engine wrote it into the outbox: no step_key.
    stored = json.dumps(
        {
            "effect": "invoke",
            "step": "reserve",
            "handler": "reserve",
            "attempt": 2,
            "compensating": undo,
            "idempotency_key": attempt_id,
        }
    )
    effect = outbox_adapter.validate_json(stored)
    assert isinstance(effect, InvokeHandler)
    assert effect.step_key is None
    assert step_key_of(effect) == shared
    seen: list[StepContext] = []
    clock = ManualClock(T0)
    store = SQLStore(f"sqlite:///{tmp_path / 'legacy.db'}")
    try:
        bus = EventBus(store, clock)
        (call,) = calls_for("s-1", effect, bus, {"reserve": seen.append}, {}, clock)
        Caller().run([call.fn])
    finally:
        store.close()
    (context,) = seen
    assert (context.idempotency_key, context.attempt_id, context.attempt) == (shared, attempt_id, 2)
    assert call.ended_at == T0


def test_a_step_key_given_wins_and_is_left_out_of_the_json_when_unset() -> None:
    effect = InvokeHandler(
        step="reserve", handler="reserve", attempt=4, idempotency_key="s-1/reserve/4"
    )
    assert "step_key" not in effect.model_dump_json()
    keyed = effect.model_copy(update={"step_key": "s-1/reserve"})
    assert json.loads(keyed.model_dump_json())["step_key"] == "s-1/reserve"
    assert step_key_of(keyed) == "s-1/reserve"
    assert outbox_adapter.validate_json(keyed.model_dump_json()) == keyed


def test_an_event_without_the_command_fields_keeps_its_json() -> None:
    event = Event.create("OrderCreated", {"orderId": "o-1"}, at=T0, event_id="e-1")
    assert list(json.loads(event.to_json())) == [
        "eventId",
        "eventType",
        "timestamp",
        "data",
        "correlationId",
        "causationId",
        "sagaId",
        "schemaVersion",
    ]
    assert "idempotencyKey" not in event.to_dict()
    # An explicit null on the wire is the same as leaving the field out.
    raw = json.loads(event.to_json()) | {"idempotencyKey": None, "attempt": None}
    assert Event.from_json(json.dumps(raw)) == event


def test_a_command_carries_its_idempotency_key_and_attempt_on_the_wire() -> None:
    command = Event.create(
        "ReserveInventory",
        {"orderId": "o-1"},
        at=T0,
        event_id="s-1/reserve/2",
        idempotency_key="s-1/reserve",
        attempt=2,
    )
    wire = json.loads(command.to_json())
    assert (wire["idempotencyKey"], wire["attempt"]) == ("s-1/reserve", 2)
    assert Event.from_json(command.to_json()) == command
    assert command.to_dict()["idempotencyKey"] == "s-1/reserve"


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("attempt", 0, "attempt"),
        ("attempt", -3, "attempt"),
        ("attempt", "two", "attempt"),
        ("attempt", 1.5, "attempt"),
        ("idempotencyKey", "", "idempotencyKey"),
        ("idempotencyKey", "k" * 301, "idempotencyKey"),
        ("idempotencyKey", 7, "idempotencyKey"),
        ("idempotencyKey", {"nested": ["key"]}, "idempotencyKey"),
    ],
)
def test_bad_command_fields_are_refused_naming_the_field(
    field: str, value: object, why: str
) -> None:
    raw = {
        "eventId": "e-bad",
        "eventType": "ReserveInventory",
        "timestamp": "2030-01-01T00:00:00Z",
        "data": {},
        field: value,
    }
    with pytest.raises(EventError, match=rf"event 'e-bad': .*{why}"):
        Event.from_json(json.dumps(raw))


def test_every_retry_of_a_command_carries_the_same_idempotency_key(
    database: str, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    commands: list[Event] = []
    with saga_engine(database, clock=clock) as engine:
        engine.register(order_definition)
        engine.bus.subscribe("ReserveInventory", commands.append)  # never answers
        engine.bus.subscribe("ReleaseInventory", lambda c: engine.bus.reply(c, "InventoryReleased"))
        engine.publish(
            Event.create("OrderCreated", {"orderId": "o-1", "items": []}, at=clock.now())
        )

        run_through_timers(engine, clock)

    saga_id = saga_id_for("order_fulfillment", "o-1")
    assert [c.attempt for c in commands] == [1, 2, 3]
    assert {c.idempotency_key for c in commands} == {f"{saga_id}/reserve_inventory"}
    assert [c.event_id for c in commands] == [f"{saga_id}/reserve_inventory/{n}" for n in (1, 2, 3)]
    wire = json.loads(commands[-1].to_json())
    assert (wire["idempotencyKey"], wire["attempt"]) == (f"{saga_id}/reserve_inventory", 3)
