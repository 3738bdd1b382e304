"""OpenTelemetry: a span per decision and per step call, once a tracer provider is set up."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sagas import SagaDefinition, SagaState
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.observability import tracing
from sagas.runtime.engine import Engine
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

Publish = Callable[[int], list[str]]
Answer = Callable[[Engine, dict[str, str]], None]
DeclinedOrder = Callable[[], tuple[SagaState, list[str]]]


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_every_decision_has_a_span_with_its_saga_and_event(
    engine: Engine, publish: Publish, spans: InMemorySpanExporter
) -> None:
    publish(3)

    engine.run_until_idle()

    decided = named(spans, "saga.decide")
    traced = Counter((attributes(s)["saga.id"], attributes(s)["event.id"]) for s in decided)
    logged = Counter(
        (record.saga_id, entry.event.event_id)
        for record in engine.store.list_instances()
        for entry in engine.store.log(record.saga_id)
    )
    assert traced == logged
    notes = {
        entry.event.event_id: entry.note
        for saga_id, _ in logged
        for entry in engine.store.log(saga_id)
    }
    for span in decided:
        found = attributes(span)
        assert found["saga.name"] == "order_fulfillment"
        assert found["saga.decision"] == notes[found["event.id"]]
        assert found["saga.ignored"] is False
        assert found["event.type"]
    assert {attributes(s)["event.type"] for s in decided} == {
        "OrderCreated",
        "InventoryReserved",
        "sagas.HandlerSucceeded",
        "OrderShipped",
    }


def test_every_handler_call_and_command_delivery_has_a_step_span(
    engine: Engine, publish: Publish, spans: InMemorySpanExporter
) -> None:
    (order_id,) = publish(1)

    engine.run_until_idle()

    (record,) = engine.store.list_instances()
    steps = {attributes(span)["saga.step"]: attributes(span) for span in named(spans, "saga.step")}
    assert steps["take_payment"] == {
        "saga.id": record.saga_id,
        "saga.name": "order_fulfillment",
        "saga.step": "take_payment",
        "saga.handler": "take_payment",
        "saga.attempt": 1,
        "saga.compensating": False,
        "saga.outcome": "succeeded",
    }
    assert steps["reserve_inventory"] == {
        "saga.id": record.saga_id,
        "saga.step": "reserve_inventory",
        "saga.attempt": 1,
        "saga.compensating": False,
        "command.type": "ReserveInventory",
        "command.id": f"{record.saga_id}/reserve_inventory/1",
        "saga.outcome": "delivered",
    }
    assert set(steps) == {"reserve_inventory", "take_payment", "ship"}
    assert order_id == record.state.correlation_key


def test_a_failed_handler_makes_a_failed_span_and_its_compensation_one_of_its_own(
    declined_order: DeclinedOrder, spans: InMemorySpanExporter
) -> None:
    state, _ = declined_order()
    assert state.status == InstanceStatus.COMPENSATED
    by_step = {
        (attributes(s)["saga.step"], attributes(s)["saga.compensating"]): s
        for s in named(spans, "saga.step")
    }
    payment = by_step[("take_payment", False)]
    assert attributes(payment)["saga.outcome"] == "failed"
    assert payment.status.status_code == StatusCode.ERROR
    assert [event.name for event in payment.events] == ["exception"]
    release = by_step[("reserve_inventory", True)]
    assert attributes(release)["command.type"] == "ReleaseInventory"
    assert attributes(release)["saga.outcome"] == "delivered"


@pytest.mark.parametrize("concurrency", [1, 4])
def test_spans_a_handler_makes_are_children_of_its_step_span(
    database: str,
    clock: ManualClock,
    order_definition: SagaDefinition,
    spans: InMemorySpanExporter,
    answer: Answer,
    concurrency: int,
) -> None:
    def take_payment(context: StepContext) -> None:
        with trace.get_tracer("shop").start_as_current_span("charge card"):
            pass

    async def refund_payment(context: StepContext) -> None:
        with trace.get_tracer("shop").start_as_current_span("refund card"):
            pass

    handlers = {"take_payment": take_payment, "refund_payment": refund_payment}
    engine = Engine(SQLStore(database), clock=clock, handlers=handlers, concurrency=concurrency)
    try:
        answer(
            engine,
            {
                "ReserveInventory": "InventoryReserved",
                "ReleaseInventory": "InventoryReleased",
                "ShipOrder": "ShipmentFailed",
            },
        )
        engine.register(order_definition)
        for n in range(3):
            data = {"orderId": f"o-{n}", "items": ["pen"], "address": "1 Main St"}
            engine.publish(Event.create("OrderCreated", data, at=clock.now()))

        engine.run_until_idle()
    finally:
        engine.close()

    steps = {span.context.span_id: span for span in named(spans, "saga.step")}
    for name, step in (("charge card", "take_payment"), ("refund card", "take_payment")):
        children = named(spans, name)
        assert len(children) == 3
        for child in children:
            assert child.parent is not None
            parent = steps[child.parent.span_id]
            assert attributes(parent)["saga.step"] == step
            assert parent.context.trace_id == child.context.trace_id


def test_nothing_is_traced_without_a_tracer_provider(engine: Engine, publish: Publish) -> None:
    assert tracing.tracer() is None  # the default provider drops every span

    publish(1)
    engine.run_until_idle()

    assert [r.state.status for r in engine.store.list_instances()] == [InstanceStatus.COMPLETED]


def test_nothing_is_traced_or_fails_without_opentelemetry(
    engine: Engine, publish: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import fails as if not installed
    monkeypatch.setattr(tracing, "_api", None)

    publish(1)
    engine.run_until_idle()

    assert tracing.tracer() is None
    assert tracing._api is False
    assert [r.state.status for r in engine.store.list_instances()] == [InstanceStatus.COMPLETED]
