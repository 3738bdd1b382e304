"""Races are decided by when the engine received each event: a reply queued before its step's
timeout (or the saga's deadline) was due wins even when the worker only gets to it after the
timer came due; a reply received after the due time loses; a round holds a due timer back while
an event received by its due time still waits in the queue; handler outcomes count from when
the handler returned."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from rich.console import Console
from runtime_checks import assert_replays

from sagas import parse_definition
from sagas.cli.timeline import render_timeline
from sagas.engine.decide import saga_id_for
from sagas.engine.internal import TIMER_FIRED
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.operations.documents import instance_json
from sagas.runtime.engine import Engine
from sagas.store.records import LogEntry
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

# One command, answered only when the test says so; its attempt times out after 10s, then it is
# retried after 1s.
BOOKING = """
name: booking
trigger: TripBooked
correlation: id
steps:
  - name: book
    command: {type: BookHotel, success: HotelBooked, failure: HotelRefused}
    timeout: 10s
    retry: {attempts: 2, initial_delay: 1s, jitter: 0}
    pivot: true
"""
# The same without a step timeout, but the whole saga must end within 10s.
BOOKING_WITH_DEADLINE = """
name: booking
trigger: TripBooked
correlation: id
deadline: 10s
steps:
  - name: book
    command: {type: BookHotel, success: HotelBooked, failure: HotelRefused}
    compensation:
      command: {type: CancelHotel, success: HotelCancelled}
"""
# Two handlers in parallel, each with a timeout of 10s; how long they take is up to the test.
PARALLEL = """
name: parallel
trigger: Go
correlation: id
steps:
  - name: quick
    handler: quick
    timeout: 10s
    compensation: {handler: undo}
  - name: slow
    handler: slow
    after: []
    timeout: 10s
    compensation: {handler: undo}
"""
SAGA_ID = saga_id_for("booking", "t-1")


class Trip:
    """An engine on the booking saga that keeps the BookHotel commands it publishes."""

    def __init__(self, database: str, clock: ManualClock, text: str, batch_size: int) -> None:
        self.clock = clock
        self.started = clock.now()
        self.engine = Engine(SQLStore(database), clock=clock, batch_size=batch_size)
        self.engine.register(parse_definition(text))
        self.commands: list[Event] = []
        self.engine.bus.subscribe("BookHotel", self.commands.append)

    def start(self) -> None:
        """Book the trip and let the engine publish BookHotel."""
        self.engine.publish(Event.create("TripBooked", {"id": "t-1"}, at=self.clock.now()))
        self.engine.run_until_idle()
        assert len(self.commands) == 1

    def reply_at(self, offset: float, event_type: str = "HotelBooked") -> Event:
        """Move the clock to ``offset`` seconds after the start and queue the hotel's answer to
        the last command there (the engine does not run)."""
        self.clock.advance(self.started + timedelta(seconds=offset) - self.clock.now())
        return self.engine.bus.reply(self.commands[-1], event_type, {"room": "12"})

    def run_at(self, offset: float) -> None:
        """Move the clock to ``offset`` seconds after the start and run the engine until idle."""
        self.clock.advance(self.started + timedelta(seconds=offset) - self.clock.now())
        self.engine.run_until_idle()

    def log(self) -> list[LogEntry]:
        return self.engine.store.log(SAGA_ID)


@pytest.fixture
def trip(database: str, clock: ManualClock) -> Iterator[Trip]:
    trip = Trip(database, clock, BOOKING, batch_size=200)
    try:
        yield trip
    finally:
        trip.engine.close()


def entry_of(log: list[LogEntry], event: Event) -> LogEntry:
    (entry,) = [entry for entry in log if entry.event.event_id == event.event_id]
    return entry


def timer_entries(log: list[LogEntry]) -> list[LogEntry]:
    return [entry for entry in log if entry.event.event_type == TIMER_FIRED]


@pytest.mark.parametrize("received", [5.0, 10.0], ids=["before-due", "at-due"])
def test_a_reply_queued_before_its_timeout_was_due_wins_when_decided_after(
    trip: Trip, received: float
) -> None:
    trip.start()
    reply = trip.reply_at(received)  # queued; the worker is busy elsewhere

    trip.run_at(12)  # the timeout (due at 10s) and the reply are decided in one round

    state = trip.engine.store.instance(SAGA_ID).state
    assert state.steps["book"].status == StepStatus.SUCCEEDED
    assert state.steps["book"].attempt == 1
    assert state.status == InstanceStatus.COMPLETED
    assert state.data["room"] == "12"
    log = trip.log()
    entry = entry_of(log, reply)
    assert not entry.ignored
    assert entry.received_at == trip.started + timedelta(seconds=received)
    assert entry.recorded_at == trip.started + timedelta(seconds=12)
    # The timeout came after the reply: stale, it changes nothing.
    assert all(e.ignored and e.seq > entry.seq for e in timer_entries(log))
    assert len(trip.commands) == 1, "no retry was published"
    assert trip.engine.store.timers(SAGA_ID) == []
    assert_replays(trip.engine.store, SAGA_ID)


def test_a_reply_received_after_its_timeout_was_due_loses(trip: Trip) -> None:
    trip.start()
    reply = trip.reply_at(11)  # after the timeout was due at 10s

    trip.run_at(12)

    log = trip.log()
    (timeout,) = timer_entries(log)
    entry = entry_of(log, reply)
    assert not timeout.ignored, "the timeout was acted on"
    assert entry.ignored, "the reply to the timed-out attempt changes nothing"
    assert timeout.seq < entry.seq
    assert entry.received_at == trip.started + timedelta(seconds=11)
    state = trip.engine.store.instance(SAGA_ID).state
    assert state.steps["book"].status != StepStatus.SUCCEEDED
    assert "room" not in state.data
    assert_replays(trip.engine.store, SAGA_ID)


def test_the_last_reply_queued_before_the_deadline_completes_the_saga(
    database: str, clock: ManualClock
) -> None:
    trip = Trip(database, clock, BOOKING_WITH_DEADLINE, batch_size=200)
    try:
        trip.start()
        reply = trip.reply_at(5)

        trip.run_at(12)  # the deadline (due at 10s) and the reply in one round

        state = trip.engine.store.instance(SAGA_ID).state
        assert state.status == InstanceStatus.COMPLETED
        assert state.steps["book"].status == StepStatus.SUCCEEDED
        log = trip.log()
        assert not entry_of(log, reply).ignored
        assert all(entry.ignored for entry in timer_entries(log))
        assert trip.engine.store.timers(SAGA_ID) == []
    finally:
        trip.engine.close()


def test_a_deadline_due_before_the_last_reply_was_received_wins(
    database: str, clock: ManualClock
) -> None:
    trip = Trip(database, clock, BOOKING_WITH_DEADLINE, batch_size=200)
    try:
        trip.start()
        reply = trip.reply_at(11)

        trip.run_at(12)

        state = trip.engine.store.instance(SAGA_ID).state
        assert state.status != InstanceStatus.COMPLETED
        log = trip.log()
        (deadline,) = timer_entries(log)
        assert not deadline.ignored
        assert deadline.seq < entry_of(log, reply).seq
    finally:
        trip.engine.close()


def test_a_timer_waits_while_an_event_received_before_it_was_due_is_left_queued(
    database: str, clock: ManualClock
) -> None:
    # One event per round: an older unrelated event takes the round's place, the reply is left
    # in the queue. The timeout, due after the reply came in, must wait for it.
    trip = Trip(database, clock, BOOKING, batch_size=1)
    try:
        trip.start()
        trip.clock.advance("4s")
        unrelated = Event.create("NewsletterSent", {}, at=clock.now())
        assert trip.engine.publish(unrelated)
        reply = trip.reply_at(5)
        trip.clock.advance(trip.started + timedelta(seconds=12) - clock.now())

        trip.engine.run_once()  # decides the unrelated event only

        assert trip.engine.store.queue_depth() == 1, "the reply is still queued"
        assert timer_entries(trip.log()) == [], "the timeout was held back"
        assert [r.timer.kind.value for r in trip.engine.store.timers(SAGA_ID)] == ["timeout"]

        trip.engine.run_until_idle()

        state = trip.engine.store.instance(SAGA_ID).state
        assert state.steps["book"].status == StepStatus.SUCCEEDED
        assert state.status == InstanceStatus.COMPLETED
        assert not entry_of(trip.log(), reply).ignored
        assert len(trip.commands) == 1
        assert trip.engine.store.timers(SAGA_ID) == []
    finally:
        trip.engine.close()


def test_a_timer_due_before_every_queued_event_is_not_held_back(
    database: str, clock: ManualClock
) -> None:
    trip = Trip(database, clock, BOOKING, batch_size=1)
    try:
        trip.start()
        trip.clock.advance("12s")  # the timeout was due at 10s; both events came after it
        for name in ("NewsletterSent", "NewsletterOpened"):
            assert trip.engine.publish(Event.create(name, {}, at=clock.now()))

        trip.engine.run_once()

        (timeout,) = timer_entries(trip.log())
        assert not timeout.ignored
        assert trip.engine.store.queue_depth() == 1
    finally:
        trip.engine.close()


def test_a_handler_outcome_counts_from_when_the_handler_returned(
    database: str, clock: ManualClock
) -> None:
    # Both handlers run in one relay: `quick` returns after 5s, `slow` after 13s, so the round
    # that decides their outcomes runs at 13s, after both timeouts (10s) were due.
    def quick(context: StepContext) -> dict[str, str]:
        clock.advance("5s")
        return {"quick": "done"}

    def slow(context: StepContext) -> dict[str, str]:
        clock.advance("8s")
        return {"slow": "done"}

    handlers = {"quick": quick, "slow": slow, "undo": lambda context: None}
    engine = Engine(SQLStore(database), clock=clock, handlers=handlers)
    try:
        engine.register(parse_definition(PARALLEL))
        t0 = clock.now()
        engine.publish(Event.create("Go", {"id": "p-1"}, at=t0))

        engine.run_until_idle()

        saga_id = saga_id_for("parallel", "p-1")
        log = engine.store.log(saga_id)
        quick_done, slow_done = (
            next(e for e in log if e.event.event_id == f"{saga_id}/{step}/1/outcome")
            for step in ("quick", "slow")
        )
        timeouts = {e.event.data["step"]: e for e in timer_entries(log)}
        # `quick` returned before its timeout was due: it succeeded, its timeout is stale.
        assert quick_done.received_at == t0 + timedelta(seconds=5)
        assert not quick_done.ignored
        assert "quick: succeeded" in quick_done.note
        assert timeouts["quick"].ignored
        assert quick_done.seq < timeouts["quick"].seq
        # `slow` returned after its timeout was due: the timeout was decided first.
        assert slow_done.received_at == t0 + timedelta(seconds=13)
        assert not timeouts["slow"].ignored
        assert timeouts["slow"].seq < slow_done.seq
        assert "slow: failed" in timeouts["slow"].note
    finally:
        engine.close()


def test_the_timeline_shows_when_an_event_was_received_where_it_was_decided_later(
    trip: Trip,
) -> None:
    trip.start()
    reply = trip.reply_at(5)
    trip.run_at(12)
    record = trip.engine.store.instance(SAGA_ID)
    log = trip.log()

    console = Console(width=200, record=True)
    console.print(render_timeline(log))
    text = console.export_text()

    assert "00:00:12.000" in text
    assert "received 00:00:05.000" in text  # the reply
    assert "received 00:00:10.000" in text  # the timeout, at its due time
    assert text.count("received ") == 2, "only where receipt and decision differ"
    document = instance_json(record, log, [])
    times = {entry["event"]["eventId"]: entry["receivedAt"] for entry in document["timeline"]}
    assert times[reply.event_id] == (trip.started + timedelta(seconds=5)).isoformat()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_timer_waits_while_another_worker_holds_an_event_received_before_it_was_due(
    database: str, clock: ManualClock
) -> None:
    # PostgreSQL only: on SQLite a round holds the database's write lock, so no two rounds
    # overlap.
    trip = Trip(database, clock, BOOKING, batch_size=200)
    other = SQLStore(database)
    try:
        trip.start()
        reply = trip.reply_at(5)
        trip.clock.advance(trip.started + timedelta(seconds=12) - clock.now())

        with other.round() as tx:
            assert [item.event.event_id for item in tx.queued(10)] == [reply.event_id]
            trip.engine.run_once()  # the reply is locked by the other round: skipped
            assert timer_entries(trip.log()) == [], "the timeout was held back"

        trip.engine.run_until_idle()  # the other worker let go without deciding it

        state = trip.engine.store.instance(SAGA_ID).state
        assert state.steps["book"].status == StepStatus.SUCCEEDED
        assert not entry_of(trip.log(), reply).ignored
        assert all(entry.ignored for entry in timer_entries(trip.log()))
    finally:
        other.close()
        trip.engine.close()
