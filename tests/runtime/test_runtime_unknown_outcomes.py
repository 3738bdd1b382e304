"""What comes back late or never, end to end on every backend: compensation never waits for a
participant, and nothing a participant may have done stays without its undo."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from runtime_checks import assert_replays

from sagas.definitions import parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

TRIP_YAML = """
name: trip
trigger: TripRequested
correlation: tripId
steps:
  - name: book_flight
    after: []
    command: {type: BookFlight, success: FlightBooked, failure: FlightUnavailable}
    compensation: {command: {type: CancelFlight, success: FlightCancelled}}
  - name: book_hotel
    after: []
    command: {type: BookHotel, success: HotelBooked}
    timeout: 1m
    compensation: {command: {type: CancelHotel, success: HotelCancelled}}
"""
TRIP = parse_definition(TRIP_YAML)
"""Flight and hotel booked in parallel. The hotel answers late or never; the flight may fail."""


class Participants:
    """The airline and the hotel in process: every command they get is kept; cancellations are
    answered at once, bookings only when the test says so."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.received: defaultdict[str, list[Event]] = defaultdict(list)
        cancels = (("CancelFlight", "FlightCancelled"), ("CancelHotel", "HotelCancelled"))
        for command, reply in cancels:
            engine.bus.subscribe(command, self._answering(reply))
        for command in ("BookFlight", "BookHotel"):
            engine.bus.subscribe(command, self.received[command].append)

    def _answering(self, reply: str) -> Callable[[Event], None]:
        def answer(command: Event) -> None:
            self.received[command.event_type].append(command)
            self.engine.bus.reply(command, reply)

        return answer

    def reply(self, command_type: str, reply: str) -> None:
        """Answer the last ``command_type`` received with ``reply``."""
        self.engine.bus.reply(self.received[command_type][-1], reply)


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        engine.register(TRIP)
        yield engine


def start(engine: Engine, clock: ManualClock) -> str:
    engine.publish(Event.create("TripRequested", {"tripId": "t-1"}, at=clock.now()))
    engine.run_until_idle()
    return saga_id_for("trip", "t-1")


def test_a_hotel_that_answers_after_its_timeout_is_cancelled_even_after_the_saga_ended(
    engine: Engine, clock: ManualClock
) -> None:
    participants = Participants(engine)
    saga_id = start(engine, clock)
    participants.reply("BookFlight", "FlightBooked")
    engine.run_until_idle()

    clock.advance(timedelta(minutes=2))  # the hotel never answered: its step times out
    engine.run_until_idle()

    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPENSATED
    # Its outcome is unknown, so the booking is cancelled too, not only the flight.
    assert [c.attempt for c in participants.received["CancelHotel"]] == [1]
    assert len(participants.received["CancelFlight"]) == 1

    participants.reply("BookHotel", "HotelBooked")  # the hotel booked it after all
    engine.run_until_idle()

    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPENSATED
    assert state.step("book_hotel").status == StepStatus.COMPENSATED
    cancels = participants.received["CancelHotel"]
    assert [c.attempt for c in cancels] == [1, 2]  # the late booking is cancelled again
    # The same idempotency key on both: the hotel can tell they undo the same booking.
    assert cancels[0].idempotency_key == cancels[1].idempotency_key == f"{saga_id}/book_hotel/undo"
    assert cancels[0].event_id != cancels[1].event_id
    notes = [entry.note for entry in engine.store.log(saga_id)]
    assert any("late success of step 'book_hotel' (compensated)" in note for note in notes)
    assert_replays(engine.store, saga_id)


def test_compensation_does_not_wait_for_a_step_whose_participant_never_answers(
    engine: Engine, clock: ManualClock
) -> None:
    engine.register(parse_definition(TRIP_YAML.replace("    timeout: 1m\n", "")))
    assert engine.store.definitions("trip")[-1].step("book_hotel").timeout is None
    participants = Participants(engine)
    saga_id = start(engine, clock)

    participants.reply("BookFlight", "FlightUnavailable")
    engine.run_until_idle()

    state = engine.store.instance(saga_id).state
    assert state.status == InstanceStatus.COMPENSATED
    assert state.step("book_hotel").status == StepStatus.COMPENSATED  # interrupted, then undone
    assert len(participants.received["CancelHotel"]) == 1
    assert participants.received["CancelFlight"] == []  # the flight was never booked
    log = engine.store.log(saga_id)
    assert any("book_hotel: interrupted" in entry.note for entry in log)

    participants.reply("BookHotel", "HotelBooked")  # it answers long after
    engine.run_until_idle()

    assert len(participants.received["CancelHotel"]) == 2
    assert engine.store.instance(saga_id).state.status == InstanceStatus.COMPENSATED
    assert_replays(engine.store, saga_id)
