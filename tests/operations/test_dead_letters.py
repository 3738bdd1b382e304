"""Dead letters people can act on, one test per cause: each ends with a replay (through the CLI
or the HTTP API) that succeeds once the cause is fixed, and a drop that removes a dead letter.

Causes: an event of no known type; a reply for an unknown instance; a reply for an ended
instance that cannot be absorbed (its definition is gone); a message a transport could not
decode or found too large; a message redelivered past a transport's limit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dead_letter_support import VIAS, act, listed, shop, shop_id
from sqlalchemy import delete

from sagas.engine.state import InstanceStatus
from sagas.events import Event, EventError
from sagas.intake import Intake
from sagas.runtime.engine import Engine
from sagas.store import schema as t
from sagas.store.dead_letters import dead_letter_of
from sagas.testing import ManualClock, saga_engine


@pytest.fixture(params=VIAS)
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        yield engine


def placed(order: str, clock: ManualClock, **data: object) -> Event:
    return Event.create("OrderPlaced", {"orderId": order, **data}, at=clock.now(), event_id=order)


def booked(order: str, clock: ManualClock, event_id: str) -> Event:
    return Event.create("Booked", {}, at=clock.now(), event_id=event_id, saga_id=shop_id(order))


def letter_ids(engine: Engine) -> dict[str | None, int]:
    """The dead letters by event id."""
    return {letter.event_id: letter.id for letter in engine.store.find_dead_letters()}


def test_an_event_of_no_known_type_is_kept_until_a_saga_is_registered_for_it(
    engine: Engine, clock: ManualClock, database: str, via: str
) -> None:
    engine.publish(placed("o-1", clock))
    engine.publish(placed("o-2", clock))
    engine.run_until_idle()

    letters = engine.store.find_dead_letters()
    assert {letter.event_id for letter in letters} == {"o-1", "o-2"}
    assert all("no registered saga" in letter.reason for letter in letters)
    assert all(letter.source == "runtime" for letter in letters)
    assert {item["eventId"] for item in listed(via, database, source="runtime")} == {"o-1", "o-2"}
    ids = letter_ids(engine)

    engine.register(shop())  # the fix: a saga now starts on OrderPlaced
    report = act(via, database, "replay", ids["o-1"], clock=clock)
    assert (report["fate"], report["removed"]) == ("queued", True)
    engine.notice()
    engine.run_until_idle()

    assert engine.store.instance(shop_id("o-1")).state.status == InstanceStatus.RUNNING
    assert set(letter_ids(engine)) == {"o-2"}
    assert act(via, database, "drop", ids["o-2"], clock=clock)["fate"] == "dropped"
    assert engine.store.count_dead_letters() == 0


def test_an_event_with_subscribers_or_of_an_awaited_type_is_no_dead_letter(
    engine: Engine, clock: ManualClock
) -> None:
    seen: list[str] = []
    engine.bus.subscribe("OrderAudited", lambda event: seen.append(event.event_id))
    engine.register(shop())
    engine.publish(Event.create("OrderAudited", {}, at=clock.now(), event_id="audit-1"))
    # A reply type of the saga without a saga id, and an unknown type for a live instance.
    engine.publish(Event.create("Booked", {"orderId": "x"}, at=clock.now(), event_id="b-0"))
    engine.publish(placed("o-1", clock))
    engine.run_until_idle()
    stray = Event.create("Whatever", {}, at=clock.now(), event_id="w-1", saga_id=shop_id("o-1"))
    engine.publish(stray)
    engine.run_until_idle()

    assert seen == ["audit-1"]
    assert engine.store.count_dead_letters() == 0
    [entry] = [e for e in engine.store.log(shop_id("o-1")) if e.event.event_id == "w-1"]
    assert entry.ignored  # absorbed by the instance: its log says why


def test_a_reply_for_an_unknown_instance_is_kept_until_the_instance_exists(
    engine: Engine, clock: ManualClock, database: str, via: str
) -> None:
    engine.register(shop())
    engine.publish(booked("o-1", clock, "r-1"))  # the reply overtook the order
    engine.publish(booked("o-2", clock, "r-2"))
    engine.run_until_idle()

    ids = letter_ids(engine)
    assert set(ids) == {"r-1", "r-2"}
    letter = engine.store.dead_letter(ids["r-1"])
    assert "no saga instance" in letter.reason
    assert letter.saga_id == shop_id("o-1")

    engine.publish(placed("o-1", clock))  # the fix: the order arrives
    engine.run_until_idle()
    assert act(via, database, "replay", ids["r-1"], clock=clock)["fate"] == "queued"
    engine.notice()
    engine.run_until_idle()

    assert engine.store.instance(shop_id("o-1")).state.status == InstanceStatus.COMPLETED
    assert act(via, database, "drop", ids["r-2"], clock=clock)["fate"] == "dropped"
    assert engine.store.count_dead_letters() == 0


def test_a_reply_for_an_ended_instance_is_absorbed_unless_its_definition_is_gone(
    database: str, clock: ManualClock, via: str
) -> None:
    with saga_engine(database, clock=clock) as engine:
        engine.register(shop())
        engine.publish(placed("o-1", clock))
        engine.run_until_idle()
        engine.publish(booked("o-1", clock, "r-1"))
        engine.run_until_idle()
        assert engine.store.instance(shop_id("o-1")).state.status == InstanceStatus.COMPLETED
        engine.publish(booked("o-1", clock, "late-1"))  # late: the ended instance absorbs it
        engine.run_until_idle()
        assert engine.store.count_dead_letters() == 0
        assert engine.store.log(shop_id("o-1"))[-1].ignored
        with engine.store.engine.begin() as conn:  # a database whose definitions were lost
            conn.execute(delete(t.definitions))

    with saga_engine(database, clock=clock) as engine:
        engine.publish(booked("o-1", clock, "late-2"))
        engine.publish(booked("o-1", clock, "late-3"))
        engine.run_until_idle()
        ids = letter_ids(engine)
        assert set(ids) == {"late-2", "late-3"}
        assert "not registered" in engine.store.dead_letter(ids["late-2"]).reason
        entries = len(engine.store.log(shop_id("o-1")))

        engine.register(shop())  # the fix: the definition registered again
        assert act(via, database, "replay", ids["late-2"], clock=clock)["fate"] == "queued"
        engine.notice()
        engine.run_until_idle()

        log = engine.store.log(shop_id("o-1"))
        assert len(log) == entries + 1
        assert (log[-1].event.event_id, log[-1].ignored) == ("late-2", True)
        assert act(via, database, "drop", ids["late-3"], clock=clock)["fate"] == "dropped"
        assert engine.store.count_dead_letters() == 0


def refused_by(intake: Intake, raw: bytes) -> EventError:
    with pytest.raises(EventError) as caught:
        intake.from_json(raw)
    return caught.value


def test_messages_a_transport_could_not_decode_or_found_too_large_are_kept_as_received(
    engine: Engine, clock: ManualClock, database: str, via: str
) -> None:
    engine.register(shop())
    small = Intake(max_event_bytes=2048)
    big = placed("o-big", clock, note="x" * 3000).to_json().encode()
    garbled = b'{"eventId": "g-1", "eventType": "OrderPlaced", \xff\xfe\x00 "data": {'
    # What a broker's consumer does with what the intake refuses: it cannot answer the sender.
    for raw in (big, garbled):
        refusal = refused_by(small, raw)
        letter = dead_letter_of(raw, refusal.reason, source="nats", at=clock.now())
        engine.store.record_dead_letter(letter)
    by_size = {len(letter.raw): letter for letter in engine.store.find_dead_letters()}
    assert set(by_size) == {len(big), len(garbled)}
    assert by_size[len(garbled)].encoding == "base64"
    assert by_size[len(garbled)].raw == garbled  # kept byte for byte, though not UTF-8
    assert "more than the limit of 2,048 bytes" in by_size[len(big)].reason
    big_id, garbled_id = by_size[len(big)].id, by_size[len(garbled)].id

    refused = act(via, database, "replay", big_id, clock=clock, max_event_bytes=2048)
    assert (refused["fate"], refused["removed"]) == ("refused", False)
    assert "2,048" in refused["note"]
    assert engine.store.dead_letter(big_id).id == big_id  # it stays

    # The fix: the limit raised (the server's or the CLI's --max-event-bytes).
    assert act(via, database, "replay", big_id, clock=clock)["fate"] == "queued"
    engine.notice()
    engine.run_until_idle()
    assert engine.store.instance(shop_id("o-big")).state.data["note"] == "x" * 3000

    # Garbled bytes stay refused, whatever the limit: the operator can only drop them.
    assert act(via, database, "replay", garbled_id, clock=clock)["fate"] == "refused"
    assert act(via, database, "drop", garbled_id, clock=clock)["fate"] == "dropped"
    assert engine.store.count_dead_letters() == 0


def test_a_message_redelivered_past_the_transport_limit_is_kept_with_its_attempts(
    engine: Engine, clock: ManualClock, database: str, via: str
) -> None:
    for order in ("o-1", "o-2"):
        raw = placed(order, clock).to_json()
        letter = dead_letter_of(
            raw,
            "redelivered 6 times, more than the limit of 5",
            source="rabbitmq",
            at=clock.now(),
            attempts=6,
            event_id=order,
            event_type="OrderPlaced",
        )
        engine.store.record_dead_letter(letter)
    [item, _] = listed(via, database, source="rabbitmq")
    assert (item["attempts"], item["source"], item["eventType"]) == (6, "rabbitmq", "OrderPlaced")
    ids = letter_ids(engine)

    engine.register(shop())  # the fix: the consumer that kept failing can take it now
    assert act(via, database, "replay", ids["o-1"], clock=clock)["fate"] == "queued"
    engine.notice()
    engine.run_until_idle()

    assert engine.store.instance(shop_id("o-1")).state.status == InstanceStatus.RUNNING
    assert act(via, database, "drop", ids["o-2"], clock=clock)["fate"] == "dropped"
    assert engine.store.count_dead_letters() == 0
