"""Timers on a manual clock: timeouts, retries with back-off, compensation, restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from runtime_checks import assert_replays

from sagas import SagaDefinition, parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.internal import TIMER_FIRED
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

# Confirmation is a command nobody answers in these tests: each attempt times out after 30s,
# the retries wait 10s then 20s (no jitter), and after the third attempt the booking is undone.
UNANSWERED = """
name: unanswered
trigger: Start
correlation: id
steps:
  - name: book
    handler: book
    compensation: {handler: cancel}
  - name: confirm
    command: {type: Confirm, success: Confirmed, failure: Rejected}
    timeout: 30s
    retry: {attempts: 3, initial_delay: 10s, factor: 2, jitter: 0}
    pivot: true
"""
SAGA_ID = saga_id_for("unanswered", "1")


@pytest.fixture
def definition() -> SagaDefinition:
    return parse_definition(UNANSWERED)


class Booking:
    """The handlers of the saga and the commands it sent, with the time they were sent."""

    def __init__(self, engine: Engine) -> None:
        self.calls: list[str] = []
        self.confirms: list[tuple[str, datetime]] = []
        engine.handlers.register(self.book, "book")
        engine.handlers.register(self.cancel, "cancel")
        engine.bus.subscribe("Confirm", self.confirm)

    def book(self, context: StepContext) -> None:
        self.calls.append("book")

    def cancel(self, context: StepContext) -> None:
        self.calls.append("cancel")

    def confirm(self, command: Event) -> None:
        self.confirms.append((command.event_id, command.timestamp))


@pytest.fixture
def engine(database: str, clock: ManualClock, definition: SagaDefinition) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        engine.register(definition)
        yield engine


def start(engine: Engine, clock: ManualClock) -> datetime:
    started = clock.now()
    engine.publish(Event.create("Start", {"id": "1"}, at=started))
    engine.run_until_idle()
    return started


def fired_timers(engine: Engine) -> list[str]:
    return [
        e.event.data["timerId"]
        for e in engine.store.log(SAGA_ID)
        if e.event.event_type == TIMER_FIRED
    ]


def test_an_unanswered_pivot_is_retried_per_its_policy_then_waits_for_an_operator(
    engine: Engine, clock: ManualClock
) -> None:
    booking = Booking(engine)
    t0 = start(engine, clock)
    assert booking.calls == ["book"]

    for _ in range(10):
        due = engine.store.next_due()
        if due is None:
            break
        clock.advance(due - clock.now())
        engine.run_until_idle()

    # The confirmation may have gone through, and nothing undoes a pivot: the booking is
    # kept, and the instance fails for an operator (retry or skip the confirmation).
    state = engine.store.instance(SAGA_ID).state
    assert state.status == InstanceStatus.FAILED
    assert state.steps["confirm"].status == StepStatus.FAILED
    assert (state.steps["confirm"].attempt, state.steps["book"].status) == (
        3,
        StepStatus.SUCCEEDED,
    )
    assert "timed out" in (state.steps["confirm"].error or "")
    assert booking.calls == ["book"]
    # Attempts at t0, after 30s timeout + 10s back-off, then after 30s + 20s.
    sent = [at - t0 for _, at in booking.confirms]
    assert sent == [timedelta(0), timedelta(seconds=40), timedelta(seconds=90)]
    assert len({event_id for event_id, _ in booking.confirms}) == 3
    assert engine.store.timers() == []
    assert_replays(engine.store, SAGA_ID)


def test_run_until_idle_does_not_fire_timers_before_they_are_due(
    engine: Engine, clock: ManualClock
) -> None:
    booking = Booking(engine)
    start(engine, clock)
    [timeout] = engine.store.timers(SAGA_ID)

    clock.advance(timedelta(seconds=29, microseconds=999_999))
    assert engine.run_until_idle() == 0

    assert fired_timers(engine) == []
    assert engine.store.timers(SAGA_ID) == [timeout]
    assert len(booking.confirms) == 1
    state = engine.store.instance(SAGA_ID).state
    assert (state.steps["confirm"].status, state.steps["confirm"].attempt) == (
        StepStatus.RUNNING,
        1,
    )

    clock.advance(timedelta(microseconds=1))  # now exactly due
    engine.run_until_idle()

    assert fired_timers(engine) == [timeout.timer.timer_id]
    assert engine.store.instance(SAGA_ID).state.steps["confirm"].retry_due is not None
    assert len(booking.confirms) == 1  # the retry waits for its own back-off timer


def test_a_timer_survives_a_restart_and_fires_once(
    database: str, clock: ManualClock, definition: SagaDefinition
) -> None:
    with saga_engine(database, clock=clock) as first:
        first.register(definition)
        Booking(first)
        start(first, clock)
        [timeout] = first.store.timers(SAGA_ID)

    clock.advance(timedelta(minutes=1))
    with saga_engine(database, clock=clock) as second:
        second.register(definition)
        Booking(second)
        second.run_until_idle()
        second.run_until_idle()

        assert fired_timers(second) == [timeout.timer.timer_id]
        assert_replays(second.store, SAGA_ID)


def test_a_reply_in_time_cancels_the_timeout(engine: Engine, clock: ManualClock) -> None:
    booking = Booking(engine)
    start(engine, clock)
    [(command_id, _)] = booking.confirms

    clock.advance(timedelta(seconds=5))
    engine.publish(
        Event.create("Confirmed", {}, at=clock.now(), saga_id=SAGA_ID, causation_id=command_id)
    )
    engine.run_until_idle()
    clock.advance(timedelta(hours=1))
    engine.run_until_idle()

    assert engine.store.instance(SAGA_ID).state.status == InstanceStatus.COMPLETED
    assert engine.store.timers() == []
    assert fired_timers(engine) == []
    assert booking.calls == ["book"]
