"""Data that could not be kept — nested deeper than the store reads back, or NaN — is refused
where it comes in (the wire, the bus, a handler's result, an operator's ``--data``), naming
where it is, and the instances stay readable."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runtime_checks import assert_replays, order_created

from sagas import SagaDefinition
from sagas.cli import cli
from sagas.definitions.durations import parse_duration
from sagas.demo.participants import Participants
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import MAX_DATA_DEPTH, Event, EventError, data_problem
from sagas.operations.stats import MAX_WINDOW, parse_window
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine


def nested(levels: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}``, ``levels`` objects deep."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        yield engine


def test_data_problem_names_where_the_data_cannot_be_kept() -> None:
    assert data_problem({"items": [{"sku": "A", "qty": 2.5}]}) is None
    assert data_problem(nested(MAX_DATA_DEPTH)) is None
    deep = data_problem(nested(MAX_DATA_DEPTH + 1))
    assert deep == f"data{'.a' * MAX_DATA_DEPTH}: nested deeper than {MAX_DATA_DEPTH} levels"
    assert data_problem({"total": math.nan}) == "data.total: nan is not a JSON number"
    assert data_problem({"x": [1, math.inf]}) == "data.x.1: inf is not a JSON number"


def test_the_wire_refuses_an_event_nested_too_deeply_naming_it() -> None:
    raw = {
        "eventId": "e-deep",
        "eventType": "OrderCreated",
        "timestamp": "2026-11-26T10:00:00Z",
        "data": {"orderId": "o-1", "extra": nested(100)},  # deeper text: not parsed at all
    }
    with pytest.raises(EventError, match=r"event 'e-deep': data\.extra(\.a)+: nested deeper"):
        Event.from_json(json.dumps(raw))


def test_publishing_unkeepable_data_raises_and_queues_nothing(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    engine.register(order_definition)
    with pytest.raises(EventError, match=r"data\.amount: nan is not a JSON number"):
        engine.bus.publish("OrderCreated", {"orderId": "o-1", "amount": math.nan})
    with pytest.raises(EventError, match="nested deeper than"):
        engine.publish(order_created("o-2", clock.now()).model_copy(update={"data": nested(99)}))
    assert engine.store.queue_depth() == 0
    assert engine.run_until_idle() == 0


def test_a_handler_returning_unkeepable_data_fails_its_step_and_the_saga_compensates(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    participants = Participants(fail_rate=0.0)
    participants.subscribe(engine.bus)  # inventory and shipping
    engine.handlers.register(lambda context: {"receipt": nested(200)}, "take_payment")
    engine.handlers.register(participants.refund_payment, "refund_payment")
    engine.register(order_definition)

    engine.publish(order_created("o-1", clock.now()))
    engine.run_until_idle()

    saga_id = saga_id_for("order_fulfillment", "o-1")
    state = engine.store.instance(saga_id).state  # still readable
    assert state.status == InstanceStatus.COMPENSATED
    step = state.steps["take_payment"]
    assert step.status == StepStatus.FAILED
    assert step.attempt == 1, "not retried: the same handler would return the same"
    assert step.error is not None
    assert "handler 'take_payment' returned what cannot be kept: data.receipt" in step.error
    assert_replays(engine.store, saga_id)


def test_skip_data_that_cannot_be_kept_is_refused_by_the_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["skip", "some-saga", "--step", "ship", "--data", json.dumps(nested(70))],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert "Invalid value for '--data'" in result.output
    assert "nested deeper than 64 levels" in result.output


def test_durations_too_long_for_a_timedelta_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="too long a duration"):
        parse_duration("99999999999d")
    with pytest.raises(ValueError, match="too long a duration"):
        parse_duration(1e300)


def test_a_statistics_window_is_longer_than_zero_and_at_most_a_century() -> None:
    assert parse_window("15m") == timedelta(minutes=15)
    assert parse_window(f"{MAX_WINDOW.days}d") == MAX_WINDOW
    with pytest.raises(ValueError, match="must be longer than zero"):
        parse_window("0s")
    with pytest.raises(ValueError, match=f"at most {MAX_WINDOW.days}d"):
        parse_window("99999d")
    with pytest.raises(ValueError, match="not a duration"):
        parse_window("soon")
