"""Acting on dead letters in bulk: filters, ``dry_run`` that writes nothing, a report per
message (queued, duplicate, refused), and hostile input kept and shown safely; through
:class:`DeadLetters`, the CLI and the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from dead_letter_support import shop, shop_id
from pydantic import ValidationError

from sagas.cli import cli
from sagas.events import Event
from sagas.intake import Intake
from sagas.operations.dead_letters import DeadLetters, Fate
from sagas.runtime.engine import Engine
from sagas.store.dead_letters import DeadLetterFilter, dead_letter_of
from sagas.testing import ManualClock, saga_engine


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        yield engine


def cli_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def keep(engine: Engine, raw: bytes | str, reason: str, source: str, at_offset: int = 0) -> int:
    clock_now = engine.clock.now() + timedelta(minutes=at_offset)
    return engine.store.record_dead_letter(dead_letter_of(raw, reason, source=source, at=clock_now))


def placed(order: str, clock: ManualClock) -> Event:
    return Event.create("OrderPlaced", {"orderId": order}, at=clock.now(), event_id=order)


def snapshot(engine: Engine) -> tuple[object, ...]:
    letters = engine.store.find_dead_letters(limit=1000)
    return tuple(letters), engine.store.queue_depth()


def test_filters_select_by_reason_type_saga_source_and_time(
    engine: Engine, clock: ManualClock
) -> None:
    a = keep(engine, placed("o-1", clock).to_json(), "Redelivered 6 TIMES", "rabbitmq", 0)
    b = keep(engine, b"\xff", "not UTF-8 (100%_sure)", "nats", 10)
    reply = Event.create("Booked", {}, at=clock.now(), event_id="r-1", saga_id=shop_id("o-9"))
    engine.publish(reply)
    engine.run_until_idle()  # no saga instance: the runtime keeps it
    [c] = [letter.id for letter in engine.store.find_dead_letters() if letter.source == "runtime"]
    letters = DeadLetters(engine.store)

    def ids(**where: object) -> list[int]:
        return [letter.id for letter in letters.find(DeadLetterFilter.model_validate(where))]

    assert ids() == [c, b, a]  # the most recent first
    assert ids(reason="times") == [a]  # any case
    assert ids(reason="100%_") == [b]  # % and _ are text, not patterns
    assert ids(reason="%") == [b]
    assert ids(event_type="Booked") == [c]
    assert ids(saga_id=shop_id("o-9")) == [c]
    assert ids(source="nats") == [b]
    start = clock.now()
    assert ids(since=start + timedelta(minutes=5)) == [b]
    assert ids(until=start + timedelta(minutes=5)) == [c, a]
    assert letters.count(DeadLetterFilter(source="rabbitmq")) == 1
    assert ids(source="nobody") == []


def test_a_dry_run_reports_each_fate_and_writes_nothing(engine: Engine, clock: ManualClock) -> None:
    engine.register(shop())
    engine.publish(placed("o-1", clock))
    engine.run_until_idle()
    # The same event again (a broker gave up on a copy it had delivered before): a duplicate.
    duplicate = keep(engine, placed("o-1", clock).to_json(), "redelivered too often", "nats")
    fresh = keep(engine, placed("o-2", clock).to_json(), "redelivered too often", "nats")
    garbled = keep(engine, b'{"eventId": "x", "eventType": \xff}', "not UTF-8", "nats")
    before = snapshot(engine)
    letters = DeadLetters(engine.store, clock=clock)

    reports = letters.replay_many(DeadLetterFilter(source="nats"), dry_run=True)

    assert [(r.id, r.fate) for r in reports] == [
        (duplicate, Fate.WOULD_BE_DUPLICATE),
        (fresh, Fate.WOULD_QUEUE),
        (garbled, Fate.REFUSED),
    ]
    assert "UTF-8" in reports[2].note
    dropped = letters.drop_many(DeadLetterFilter(source="nats"), dry_run=True)
    assert {r.fate for r in dropped} == {Fate.WOULD_DROP}
    assert snapshot(engine) == before

    reports = letters.replay_many(DeadLetterFilter(source="nats"))

    assert [r.fate for r in reports] == [Fate.DUPLICATE, Fate.QUEUED, Fate.REFUSED]
    assert [letter.id for letter in engine.store.find_dead_letters()] == [garbled]
    assert engine.store.queue_depth() == 1  # o-2 only: o-1 was decided already
    engine.run_until_idle()
    assert engine.store.instance(shop_id("o-2")).version == 1
    assert [e.event.event_id for e in engine.store.log(shop_id("o-1"))] == ["o-1"]


def test_a_replayed_event_that_is_dead_lettered_again_is_a_new_dead_letter(
    engine: Engine, clock: ManualClock
) -> None:
    engine.publish(placed("o-1", clock))
    engine.run_until_idle()
    [first] = engine.store.find_dead_letters()

    [report] = DeadLetters(engine.store, clock=clock).replay_many(DeadLetterFilter())
    assert report.fate == Fate.QUEUED  # the intake took it: the cause (no saga) is not fixed
    engine.run_until_idle()

    [again] = engine.store.find_dead_letters()
    assert (again.event_id, again.reason) == ("o-1", first.reason)
    assert again.id != first.id


def test_replaying_or_dropping_what_is_gone_says_not_found(engine: Engine) -> None:
    letters = DeadLetters(engine.store)
    assert letters.replay(12345).fate == Fate.NOT_FOUND
    assert [r.fate for r in letters.drop([12345])] == [Fate.NOT_FOUND]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" * 10,
        b"\xff\xfe\xfd",
        "\u202e\x1b[31mred \ud800 lone surrogate".encode("utf-8", "surrogatepass"),
        b"[" * 100_000,
        b'{"eventId": "a", "eventId": "b"}',
        json.dumps({"eventId": "x" * 1000, "eventType": "\x00", "data": {}}).encode(),
    ],
    ids=["empty", "nul", "not-utf8", "controls", "deep", "duplicate-key", "long-id"],
)
def test_hostile_messages_are_kept_byte_for_byte_and_refused_again_on_replay(
    engine: Engine, raw: bytes, database: str
) -> None:
    letter_id = keep(engine, raw, "refused by the intake", "nats")
    letter = engine.store.dead_letter(letter_id)
    assert letter.raw == raw
    report = DeadLetters(engine.store).replay(letter_id)
    assert report.fate == Fate.REFUSED
    assert engine.store.dead_letter(letter_id).raw == raw

    code, output = cli_run("dead-letters", "show", str(letter_id), "--db", database)
    assert code == 0, output
    assert "\x1b" not in output  # escaped, not run by the terminal
    assert "\u202e" not in output
    code, output = cli_run("dead-letters", "list", "--db", database)
    assert code == 0, output
    assert "refused by the intake" in output


def test_a_dead_letter_keeps_ids_it_can_hold_and_never_a_nul(engine: Engine) -> None:
    letter = dead_letter_of(
        b"{}",
        "bad \x00 reason",
        source="s" * 300,
        at=engine.clock.now(),
        event_id="e" * 201,
        event_type="T\x00",
        saga_id="ok",
    )
    stored = engine.store.dead_letter(engine.store.record_dead_letter(letter))
    assert (stored.event_id, stored.event_type, stored.saga_id) == (None, None, "ok")
    assert stored.reason == "bad \\u0000 reason"
    assert stored.source == "s" * 50


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"reason": ""}, "at least 1 character"),
        ({"reason": "x" * 501}, "at most 500"),
        ({"source": "a\x00b"}, "NUL"),
        ({"since": "2026-01-01T00:00:00"}, "timezone"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_a_malformed_filter_says_what_is_wrong(where: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeadLetterFilter.model_validate(where)


def test_the_cli_refuses_a_selection_it_cannot_understand_before_writing(
    engine: Engine, database: str, clock: ManualClock
) -> None:
    keep(engine, placed("o-1", clock).to_json(), "kept", "nats")
    before = snapshot(engine)
    for args, message in [
        (["replay"], "give dead-letter ids, filters"),
        (["drop", "1", "--all"], "give dead-letter ids, filters"),
        (["drop", "--since", "yesterday-ish"], "neither a time"),
        (["drop", "--reason", "a\x00b"], "NUL"),
        (["drop", "--source", "x" * 51], "at most 50"),
        (["replay", "0"], "0 is not in the range"),
        (["show", "-5"], "No such option"),
    ]:
        code, output = cli_run("dead-letters", *args, "--db", database)
        assert code == 2, (args, output)
        assert message in output, (args, output)
        assert "Traceback" not in output
    assert snapshot(engine) == before


def test_the_cli_drops_every_dead_letter_with_all_and_reports_each(
    engine: Engine, database: str, clock: ManualClock
) -> None:
    ids = [keep(engine, placed(f"o-{n}", clock).to_json(), "kept", "nats") for n in range(3)]

    code, output = cli_run("dead-letters", "drop", "--all", "--dry-run", "--json", "--db", database)
    assert code == 0, output
    document = json.loads(output)
    assert (document["dryRun"], document["summary"]) == (True, {"would drop": 3})
    assert engine.store.count_dead_letters() == 3

    code, output = cli_run("dead-letters", "drop", "--all", "--db", database)
    assert code == 0, output
    assert "drop: 3 dropped" in output
    assert engine.store.count_dead_letters() == 0
    code, output = cli_run("dead-letters", "drop", str(ids[0]), "--db", database)
    assert code == 1, output
    assert "not found" in output


def test_the_cli_shows_one_dead_letter_with_its_payload(
    engine: Engine, database: str, clock: ManualClock
) -> None:
    letter_id = keep(engine, b"\xff\x00garbage", "not UTF-8", "nats")
    code, output = cli_run("dead-letters", "show", str(letter_id), "--json", "--db", database)
    assert code == 0, output
    document = json.loads(output)
    assert (document["encoding"], document["payload"], document["size"]) == (
        "base64",
        "/wBnYXJiYWdl",
        9,
    )
    code, output = cli_run("dead-letters", "show", "999", "--db", database)
    assert code == 1, output
    assert "no dead letter 999" in output


def test_replaying_with_a_larger_intake_limit_takes_a_message_refused_as_too_large(
    engine: Engine, clock: ManualClock
) -> None:
    engine.register(shop())
    raw = Event.create(
        "OrderPlaced", {"orderId": "o-1", "pad": "x" * 5000}, at=clock.now(), event_id="big"
    ).to_json()
    letter_id = keep(engine, raw, "too large", "nats")
    small = DeadLetters(engine.store, Intake(max_event_bytes=4096), clock)
    assert small.replay(letter_id).fate == Fate.REFUSED
    assert DeadLetters(engine.store, Intake(), clock).replay(letter_id).fate == Fate.QUEUED


def test_the_same_message_kept_twice_is_queued_once_by_one_bulk_replay(
    engine: Engine, clock: ManualClock
) -> None:
    engine.register(shop())
    raw = placed("o-1", clock).to_json()
    first = keep(engine, raw, "redelivered too often", "nats")
    second = keep(engine, raw, "redelivered too often", "redis")

    reports = DeadLetters(engine.store, clock=clock).replay_many(DeadLetterFilter())

    assert [(r.id, r.fate) for r in reports] == [(first, Fate.QUEUED), (second, Fate.DUPLICATE)]
    assert engine.store.queue_depth() == 1
    assert engine.store.count_dead_letters() == 0
