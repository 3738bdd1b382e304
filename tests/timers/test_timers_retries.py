"""Retries on a manual clock: an unanswered command is retried with its back-off; when it is the
pivot, whose outcome is then unknown, the instance fails for an operator and a success that
comes after all lets it go on; replies to attempts past change nothing; a compensation that
keeps failing follows its own back-off and leaves the instance ``failed`` for an operator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from timer_checks import (
    assert_backoff,
    assert_replays,
    assert_timers_fired_once,
    run_to_next_timer,
    sagas_cli,
    scheduled_timers,
)

from sagas import SagaDefinition, StepFailed, parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.effects import TimerKind
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

# Nobody answers Confirm unless the test does: each attempt times out after 30s; the retries
# wait 10s, 30s, then 60s (90s capped by max_delay), each spread by up to ±25%.
CONFIRMATION = """
name: confirmation
trigger: Start
correlation: id
steps:
  - name: book
    handler: book
    compensation: {handler: cancel}
  - name: confirm
    command: {type: Confirm, success: Confirmed, failure: Rejected}
    timeout: 30s
    retry: {attempts: 4, initial_delay: 10s, factor: 3, max_delay: 60s, jitter: 0.25}
    pivot: true
"""
SAGA_ID = saga_id_for("confirmation", "1")


class Booking:
    """The saga's handlers, and the Confirm commands it sent (with the clock time)."""

    def __init__(self, engine: Engine, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, datetime]] = []
        self.confirms: list[Event] = []
        engine.handlers.register(self.book, "book")
        engine.handlers.register(self.cancel, "cancel")
        engine.bus.subscribe("Confirm", self.confirms.append)

    def book(self, context: StepContext) -> None:
        self.calls.append(("book", self.clock.now()))

    def cancel(self, context: StepContext) -> None:
        self.calls.append(("cancel", self.clock.now()))


@pytest.fixture
def definition() -> SagaDefinition:
    return parse_definition(CONFIRMATION)


@pytest.fixture
def engine(database: str, clock: ManualClock, definition: SagaDefinition) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        engine.register(definition)
        yield engine


@pytest.fixture
def booking(engine: Engine, clock: ManualClock) -> Booking:
    return Booking(engine, clock)


def start(engine: Engine, clock: ManualClock) -> datetime:
    engine.publish(Event.create("Start", {"id": "1"}, at=clock.now()))
    engine.run_until_idle()
    return clock.now()


def reply(engine: Engine, clock: ManualClock, command: Event, data: dict[str, str]) -> Event:
    """Answer ``command`` with ``Confirmed`` now, the way a participant does."""
    event = Event.create(
        "Confirmed",
        data,
        at=clock.now(),
        event_id=f"{command.event_id}/Confirmed",
        saga_id=SAGA_ID,
        causation_id=command.event_id,
    )
    assert engine.publish(event)
    engine.run_until_idle()
    return event


def test_an_unanswered_pivot_is_retried_with_its_back_off_then_fails_for_an_operator(
    engine: Engine, clock: ManualClock, booking: Booking, definition: SagaDefinition
) -> None:
    t0 = start(engine, clock)
    pending_kinds: list[list[TimerKind]] = []
    while (due := run_to_next_timer(engine, clock)) is not None:
        assert clock.now() == due
        pending_kinds.append([r.timer.kind for r in engine.store.timers(SAGA_ID)])
        assert len(pending_kinds) < 20, "the saga never ends"

    # The timeout of each attempt, then the back-off before the next: they alternate.
    retry, timeout = TimerKind.RETRY, TimerKind.TIMEOUT
    assert pending_kinds == [[retry], [timeout], [retry], [timeout], [retry], [timeout], []]
    log = engine.store.log(SAGA_ID)
    retries = scheduled_timers(log, TimerKind.RETRY)
    assert [timer.attempt for _, timer in retries] == [2, 3, 4]
    policy = definition.step("confirm").retry
    waits = [
        assert_backoff(policy, timer.attempt, entry.recorded_at, timer.due_at)
        for entry, timer in retries
    ]
    assert waits != [policy.delay_before(a) for a in (2, 3, 4)], "the jitter spreads them"
    # Each retry is decided when the attempt before it timed out, and sent exactly when due.
    sent = [command.timestamp for command in booking.confirms]
    assert len({command.event_id for command in booking.confirms}) == 4
    assert sent[0] == t0
    for attempt, (entry, timer) in enumerate(retries, start=1):
        assert entry.recorded_at == sent[attempt - 1] + timedelta(seconds=30)
        assert sent[attempt] == timer.due_at

    # It may have been confirmed, and nothing undoes a pivot: the booking is not cancelled
    # behind its back; an operator retries it (same idempotency key) or marks it done.
    state = engine.store.instance(SAGA_ID).state
    assert state.status == InstanceStatus.FAILED
    assert state.reason is not None
    assert state.reason.startswith("the pivot 'confirm' gave up with its outcome unknown")
    confirm = state.steps["confirm"]
    assert (confirm.status, confirm.attempt) == (StepStatus.FAILED, 4)
    assert "timed out after" in (confirm.error or "")
    assert booking.calls == [("book", t0)]
    assert len({command.idempotency_key for command in booking.confirms}) == 1
    assert engine.store.timers() == []
    assert_timers_fired_once(engine.store, SAGA_ID)
    assert_replays(engine.store, SAGA_ID)


def to_second_attempt(engine: Engine, clock: ManualClock, booking: Booking) -> None:
    """Attempt 1 times out; its retry sends attempt 2, which is now in flight."""
    start(engine, clock)
    run_to_next_timer(engine, clock)  # the timeout of attempt 1
    run_to_next_timer(engine, clock)  # the retry: attempt 2
    assert len(booking.confirms) == 2
    step = engine.store.instance(SAGA_ID).state.steps["confirm"]
    assert (step.status, step.attempt, step.retry_due) == (StepStatus.RUNNING, 2, None)


def assert_ignored_without_effect(engine: Engine, late: Event, why: str) -> None:
    """The last log entry is ``late``, recorded as ignored with ``why`` in its note."""
    last = engine.store.log(SAGA_ID)[-1]
    assert last.event.event_id == late.event_id
    assert last.ignored
    assert last.effects == ()
    assert why in last.note, last.note


def test_a_reply_to_attempt_1_while_attempt_2_is_in_flight_is_ignored(
    engine: Engine, clock: ManualClock, booking: Booking
) -> None:
    to_second_attempt(engine, clock, booking)
    first, second = booking.confirms
    before = engine.store.instance(SAGA_ID).state
    timers = engine.store.timers(SAGA_ID)

    clock.advance("5s")
    late = reply(engine, clock, first, {"confirmation": "late"})

    assert_ignored_without_effect(engine, late, f"reply to {first.event_id!r}")
    assert engine.store.instance(SAGA_ID).state == before
    assert engine.store.timers(SAGA_ID) == timers
    assert len(booking.confirms) == 2

    # The reply to the attempt in flight is the one that counts.
    reply(engine, clock, second, {"confirmation": "on time"})
    state = engine.store.instance(SAGA_ID).state
    assert state.status == InstanceStatus.COMPLETED
    assert state.data["confirmation"] == "on time"
    assert engine.store.timers() == []
    assert_replays(engine.store, SAGA_ID)


def test_a_reply_that_comes_during_the_back_off_is_ignored(
    engine: Engine, clock: ManualClock, booking: Booking
) -> None:
    start(engine, clock)
    run_to_next_timer(engine, clock)  # attempt 1 timed out: waiting to retry
    [first] = booking.confirms
    before = engine.store.instance(SAGA_ID).state
    [retry] = engine.store.timers(SAGA_ID)
    assert retry.timer.kind == TimerKind.RETRY

    late = reply(engine, clock, first, {"confirmation": "late"})

    assert_ignored_without_effect(engine, late, "no step is waiting for Confirmed")
    assert engine.store.instance(SAGA_ID).state == before
    assert engine.store.timers(SAGA_ID) == [retry]
    run_to_next_timer(engine, clock)
    assert len(booking.confirms) == 2, "the retry is still sent"


def test_a_success_after_the_pivot_gave_up_lets_the_saga_go_on(
    engine: Engine, clock: ManualClock, booking: Booking
) -> None:
    start(engine, clock)
    while run_to_next_timer(engine, clock) is not None:
        pass
    assert engine.store.instance(SAGA_ID).state.status == InstanceStatus.FAILED

    clock.advance("1m")
    late = reply(engine, clock, booking.confirms[-1], {"confirmation": "late"})

    last = engine.store.log(SAGA_ID)[-1]
    assert last.event.event_id == late.event_id
    assert "late success of step 'confirm': it was done after all" in last.note
    state = engine.store.instance(SAGA_ID).state
    assert state.status == InstanceStatus.COMPLETED
    assert state.data["confirmation"] == "late"
    assert engine.store.timers() == []
    assert [name for name, _ in booking.calls] == ["book"]
    assert_replays(engine.store, SAGA_ID)


# The charge is declined, so the reservation is released; the release keeps failing: it is
# tried three times, 5s then 20s apart (±20%), then the instance waits for an operator.
STUBBORN = """
name: stubborn
trigger: Go
correlation: id
steps:
  - name: reserve
    handler: reserve
    compensation:
      handler: release
      retry: {attempts: 3, initial_delay: 5s, factor: 4, jitter: 0.2}
  - name: charge
    handler: charge
    pivot: true
"""
STUBBORN_ID = saga_id_for("stubborn", "s1")


def test_a_compensation_that_keeps_failing_follows_its_policy_then_the_saga_is_failed(
    database: str, clock: ManualClock
) -> None:
    definition = parse_definition(STUBBORN)
    releases: list[tuple[int, datetime]] = []

    def release(context: StepContext) -> None:
        assert context.compensating
        releases.append((context.attempt, clock.now()))
        raise RuntimeError("warehouse unreachable")

    def charge(context: StepContext) -> None:
        raise StepFailed("card declined")

    handlers = {"reserve": lambda context: None, "release": release, "charge": charge}
    with saga_engine(database, clock=clock, handlers=handlers) as engine:
        engine.register(definition)
        engine.publish(Event.create("Go", {"id": "s1"}, at=clock.now()))
        engine.run_until_idle()
        t0 = clock.now()
        while run_to_next_timer(engine, clock) is not None:
            assert clock.now() - t0 < timedelta(hours=1), "the saga never ends"

        log = engine.store.log(STUBBORN_ID)
        retries = scheduled_timers(log, TimerKind.RETRY)
        assert [(t.step, t.attempt, t.compensating) for _, t in retries] == [
            ("reserve", 2, True),
            ("reserve", 3, True),
        ]
        compensation = definition.step("reserve").compensation
        assert compensation is not None
        for entry, timer in retries:
            assert_backoff(compensation.retry, timer.attempt, entry.recorded_at, timer.due_at)
        assert releases == [(1, t0)] + [(t.attempt, t.due_at) for _, t in retries]

        state = engine.store.instance(STUBBORN_ID).state
        assert state.status == InstanceStatus.FAILED
        assert state.reason is not None
        assert "compensation of 'reserve' gave up" in state.reason
        assert "warehouse unreachable" in state.reason
        assert state.steps["reserve"].undo_attempt == 3
        assert engine.store.timers() == []
        assert_timers_fired_once(engine.store, STUBBORN_ID)
        assert_replays(engine.store, STUBBORN_ID)

        # Never dropped: a month later it is still there, failed, untouched.
        clock.advance("30d")
        assert engine.run_until_idle() == 0
        assert engine.store.instance(STUBBORN_ID).state == state
        assert len(releases) == 3

    listed = json.loads(sagas_cli("list", "--status", "failed", "--json", "--db", database))[
        "items"
    ]
    assert [(row["sagaId"], row["status"]) for row in listed] == [(STUBBORN_ID, "failed")]
    assert listed[0]["reason"] == state.reason
    table = sagas_cli("list", "--status", "failed", "--db", database)
    assert STUBBORN_ID in table
    none = json.loads(sagas_cli("list", "--status", "compensated", "--json", "--db", database))
    assert none == {"total": 0, "limit": 50, "offset": 0, "items": []}
