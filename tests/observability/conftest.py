"""Fixtures of the observability tests: an engine with the demo's participants, orders, the JSON
lines the engine logs, and the spans it makes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sagas import SagaDefinition, SagaState, StepContext, StepFailed
from sagas.demo.participants import Participants
from sagas.events import Event
from sagas.observability.logs import log_handler
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

Publish = Callable[[int], list[str]]
"""``publish(n)``: queue ``n`` new orders; returns their order ids."""


@pytest.fixture
def engine(database: str, clock: ManualClock, order_definition: SagaDefinition) -> Iterator[Engine]:
    """An engine running the order saga, its participants failing no order."""
    with saga_engine(database, clock=clock) as engine:
        participants = Participants(fail_rate=0.0)
        participants.subscribe(engine.bus)
        participants.register(engine.handlers)
        engine.register(order_definition)
        yield engine


DeclinedOrder = Callable[[], tuple[SagaState, list[str]]]
"""``declined_order()``: run one order whose payment is declined (a business failure) to its
end; returns its final state and the ids of the events in its log."""


@pytest.fixture
def declined_order(
    database: str, clock: ManualClock, order_definition: SagaDefinition
) -> DeclinedOrder:
    """Runs one order on an engine of its own whose ``take_payment`` declines the card."""

    def run() -> tuple[SagaState, list[str]]:
        def decline(context: StepContext) -> None:
            raise StepFailed("card declined")

        handlers = {"take_payment": decline, "refund_payment": lambda context: None}
        with saga_engine(database, clock=clock, handlers=handlers) as engine:
            Participants(fail_rate=0.0).subscribe(engine.bus)
            engine.register(order_definition)
            data = {"orderId": "o-1", "items": ["pen"], "address": "1 Main St"}
            engine.publish(Event.create("OrderCreated", data, at=clock.now()))
            engine.run_until_idle()
            (record,) = engine.store.list_instances()
            return record.state, [e.event.event_id for e in engine.store.log(record.saga_id)]

    return run


@pytest.fixture
def publish(engine: Engine, clock: ManualClock) -> Publish:
    """Queue new orders on ``engine``."""
    count = 0

    def publish(n: int) -> list[str]:
        nonlocal count
        orders = [f"order-{number}" for number in range(count, count + n)]
        count += n
        for order in orders:
            data = {"orderId": order, "items": [{"sku": "s", "quantity": 1}], "address": "1 Rd"}
            engine.publish(Event.create("OrderCreated", data, at=clock.now()))
        return orders

    return publish


Answer = Callable[[Engine, dict[str, str]], None]
"""``answer(engine, {command type: reply type})``: participants that answer each command so."""


@pytest.fixture
def answer() -> Answer:
    """Subscribe participants that answer commands with the reply given for their type."""

    def answer(engine: Engine, replies: dict[str, str]) -> None:
        for command_type, reply_type in replies.items():

            def participant(command: Event, reply_type: str = reply_type) -> None:
                engine.bus.reply(command, reply_type)

            engine.bus.subscribe(command_type, participant)

    return answer


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every line the ``sagas`` loggers write, at DEBUG and above, as JSON objects."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    logger = logging.getLogger("sagas")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """The spans ended while the test runs, through a tracer provider of the test's own.

    The global provider can be set once per process only; the engine asks for it through
    ``get_tracer_provider``, so the test hands it this one instead.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return exporter
