"""A saga deadline compensates a saga stuck waiting; a delay step resumes exactly when due."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from timer_checks import (
    assert_compensated_in_reverse,
    assert_replays,
    assert_timers_fired_once,
    fired_timers,
)

from sagas import parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.effects import TimerKind
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

# Stock is reserved and the card charged, then a person must approve within the hour.
APPROVAL = """
name: approval
trigger: Requested
correlation: id
deadline: 1h
steps:
  - name: reserve
    handler: reserve
    compensation: {handler: release}
  - name: charge
    handler: charge
    compensation: {handler: refund}
  - name: approve
    wait: {event: Approved}
    timeout: 2h
  - name: ship
    handler: ship
    pivot: true
"""
APPROVAL_ID = saga_id_for("approval", "a1")


class Calls:
    """Handlers that only record that they ran."""

    def __init__(self, engine: Engine, *names: str) -> None:
        self.names: list[str] = []
        for name in names:
            engine.handlers.register(self._recorder(name), name)

    def _recorder(self, name: str) -> Callable[[StepContext], None]:
        def record(context: StepContext) -> None:
            self.names.append(name)

        return record


@pytest.fixture
def approval(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        engine.register(parse_definition(APPROVAL))
        yield engine


def test_the_deadline_compensates_a_saga_stuck_in_a_wait_step(
    approval: Engine, clock: ManualClock
) -> None:
    engine = approval
    calls = Calls(engine, "reserve", "charge", "release", "refund", "ship")
    t0 = clock.now()
    engine.publish(Event.create("Requested", {"id": "a1"}, at=t0))
    engine.run_until_idle()
    assert engine.store.instance(APPROVAL_ID).state.steps["approve"].status == StepStatus.RUNNING
    pending = {r.timer.kind: r.timer.due_at for r in engine.store.timers(APPROVAL_ID)}
    assert pending == {
        TimerKind.DEADLINE: t0 + timedelta(hours=1),
        TimerKind.TIMEOUT: t0 + timedelta(hours=2),
    }

    clock.advance(timedelta(hours=1) - timedelta(microseconds=1))
    assert engine.run_until_idle() == 0
    assert engine.store.instance(APPROVAL_ID).state.status == InstanceStatus.RUNNING

    clock.advance(timedelta(microseconds=1))
    engine.run_until_idle()

    state = engine.store.instance(APPROVAL_ID).state
    assert state.status == InstanceStatus.COMPENSATED
    assert state.reason == "deadline of 1h passed"
    assert state.steps["approve"].status == StepStatus.INTERRUPTED  # the wait is cancelled
    assert state.steps["ship"].status == StepStatus.NOT_RUN
    assert calls.names == ["reserve", "charge", "refund", "release"]
    assert_compensated_in_reverse(engine.store, APPROVAL_ID)
    assert engine.store.timers() == [], "the wait's timeout is cancelled with it"
    log = engine.store.log(APPROVAL_ID)
    assert fired_timers(log) == [f"{APPROVAL_ID}/deadline"]
    assert_timers_fired_once(engine.store, APPROVAL_ID)
    assert_replays(engine.store, APPROVAL_ID)

    # The approval that comes too late starts nothing.
    engine.publish(Event.create("Approved", {"id": "a1"}, at=clock.now()))
    engine.run_until_idle()
    clock.advance("3h")
    engine.run_until_idle()
    last = engine.store.log(APPROVAL_ID)[-1]
    assert (last.event.event_type, last.ignored) == ("Approved", True)
    assert engine.store.instance(APPROVAL_ID).state.status == InstanceStatus.COMPENSATED
    assert "ship" not in calls.names


def test_an_approval_before_the_deadline_cancels_it(approval: Engine, clock: ManualClock) -> None:
    engine = approval
    calls = Calls(engine, "reserve", "charge", "release", "refund", "ship")
    engine.publish(Event.create("Requested", {"id": "a1"}, at=clock.now()))
    engine.run_until_idle()

    clock.advance(timedelta(minutes=59))
    engine.publish(Event.create("Approved", {"id": "a1"}, at=clock.now()))
    engine.run_until_idle()
    clock.advance("1d")
    engine.run_until_idle()

    assert engine.store.instance(APPROVAL_ID).state.status == InstanceStatus.COMPLETED
    assert calls.names == ["reserve", "charge", "ship"]
    assert engine.store.timers() == []
    assert fired_timers(engine.store.log(APPROVAL_ID)) == []


COOLING_OFF = """
name: cooling_off
trigger: Ordered
correlation: id
steps:
  - name: cool
    delay: 10m
  - name: confirm
    handler: confirm
    pivot: true
"""
COOLING_ID = saga_id_for("cooling_off", "c1")


def test_a_delay_step_resumes_exactly_when_due_not_a_microsecond_before(
    database: str, clock: ManualClock
) -> None:
    confirmed: list[object] = []
    handlers = {"confirm": lambda context: confirmed.append(clock.now())}
    with saga_engine(database, clock=clock, handlers=handlers) as engine:
        engine.register(parse_definition(COOLING_OFF))
        t0 = clock.now()
        engine.publish(Event.create("Ordered", {"id": "c1"}, at=t0))
        engine.run_until_idle()
        [delay] = engine.store.timers(COOLING_ID)
        assert (delay.timer.kind, delay.timer.due_at) == (
            TimerKind.DELAY,
            t0 + timedelta(minutes=10),
        )

        clock.advance(timedelta(minutes=10) - timedelta(microseconds=1))
        assert engine.run_until_idle() == 0
        state = engine.store.instance(COOLING_ID).state
        assert state.steps["cool"].status == StepStatus.RUNNING
        assert engine.store.timers(COOLING_ID) == [delay]
        assert confirmed == []

        clock.advance(timedelta(microseconds=1))
        engine.run_until_idle()

        state = engine.store.instance(COOLING_ID).state
        assert state.status == InstanceStatus.COMPLETED
        assert state.steps["cool"].finished_at == delay.timer.due_at
        assert confirmed == [delay.timer.due_at]
        assert engine.store.timers() == []
        assert fired_timers(engine.store.log(COOLING_ID)) == [delay.timer.timer_id]
        assert_replays(engine.store, COOLING_ID)


def test_a_delay_survives_a_restart_and_fires_once(database: str, clock: ManualClock) -> None:
    confirmed: list[object] = []
    handlers = {"confirm": confirmed.append}
    with saga_engine(database, clock=clock, handlers=handlers) as first:
        first.register(parse_definition(COOLING_OFF))
        first.publish(Event.create("Ordered", {"id": "c1"}, at=clock.now()))
        first.run_until_idle()
        [delay] = first.store.timers(COOLING_ID)

    clock.advance("1h")  # the engine was down when the delay came due
    with saga_engine(database, clock=clock, handlers=handlers) as second:
        second.register(parse_definition(COOLING_OFF))
        second.run_until_idle()
        second.run_until_idle()

        assert second.store.instance(COOLING_ID).state.status == InstanceStatus.COMPLETED
        assert len(confirmed) == 1
        assert fired_timers(second.store.log(COOLING_ID)) == [delay.timer.timer_id]
        assert second.store.timers() == []
        assert_replays(second.store, COOLING_ID)


def test_a_definition_with_a_delay_step_reads_back_from_the_store(
    database: str, clock: ManualClock
) -> None:
    definition = parse_definition(COOLING_OFF)
    with saga_engine(database, clock=clock) as engine:
        stored = engine.register(definition)

        assert engine.store.definition("cooling_off", stored.version) == stored


def test_an_instance_sleeping_on_a_delay_finishes_after_a_new_version_and_a_restart(
    database: str, clock: ManualClock
) -> None:
    confirmed: list[object] = []
    handlers = {"confirm": confirmed.append}
    with saga_engine(database, clock=clock, handlers=handlers) as first:
        first.register(parse_definition(COOLING_OFF))
        first.publish(Event.create("Ordered", {"id": "c1"}, at=clock.now()))
        first.run_until_idle()

    shorter = parse_definition(COOLING_OFF.replace("delay: 10m", "delay: 5m"))
    clock.advance("10m")
    with saga_engine(database, clock=clock, handlers=handlers) as second:
        assert second.register(shorter).version == 2
        second.run_until_idle()  # the instance stays on version 1, read from the store

        state = second.store.instance(COOLING_ID).state
        assert (state.definition_version, state.status) == (1, InstanceStatus.COMPLETED)
        assert len(confirmed) == 1
