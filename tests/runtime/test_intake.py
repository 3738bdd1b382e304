"""One intake for every way in: each hostile input is tried on each path (``Intake`` and
``Event.from_json``, ``sagas publish`` with an argument, standard input and a file, the bus),
gets the same clear message naming the event (and the file and line), and queues nothing."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_checks import ROOT, order_created

from sagas import SagaDefinition
from sagas.cli import cli
from sagas.config import EngineConfig, load_config
from sagas.demo.participants import Participants
from sagas.engine.decide import saga_id_for
from sagas.engine.operator import OperatorAction
from sagas.engine.state import InstanceStatus
from sagas.events import Event, EventError
from sagas.intake import (
    DEFAULT_MAX_EVENT_BYTES,
    Intake,
    RefusedEventsError,
    event_size,
    parse_data,
)
from sagas.operations import ActionRequest, Operations, Outcome
from sagas.runtime.engine import Engine
from sagas.runtime.setup import build_engine
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock, saga_engine

MIB = 1024 * 1024
AT = "2026-11-26T10:00:00Z"
ENGINE_TYPE_HINT = (
    "is not accepted from outside: the 'sagas.' prefix is reserved for the engine's own "
    "events; operator actions go through `sagas retry|compensate|cancel|resume|skip` or the "
    "HTTP API with an operator token"
)


def event_text(data: str = "{}", **fields: Any) -> str:
    """An event's compact JSON with ``data`` spliced in as given (it may be invalid JSON)."""
    head = {"eventId": "e-1", "eventType": "OrderCreated", "timestamp": AT} | fields
    return json.dumps(head, separators=(",", ":"))[:-1] + f',"data":{data}}}'


def deep_data(levels: int) -> str:
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


def padded(size: int) -> str:
    """An event whose JSON text is exactly ``size`` bytes."""
    empty = event_text('{"pad":""}')
    return event_text('{"pad":"' + "x" * (size - len(empty)) + '"}')


def column_of_bracket(text: str, number: int) -> int:
    """The column of the ``number``-th opening bracket of a one-line ``text``."""
    seen = 0
    for index, char in enumerate(text):
        if char in "[{":
            seen += 1
            if seen == number:
                return index + 1
    raise AssertionError("not that many brackets")


DEEPEST = event_text(deep_data(100_000))
D = len(event_text(""))  # the column at which the data of an event_text starts
# (name, JSON text, the whole message of the refusal)
REFUSED: list[tuple[str, bytes, str]] = [
    (
        "not JSON",
        b"{this is not json",
        "event: not valid JSON: Expecting property name "
        "enclosed in double quotes (line 1, column 2)",
    ),
    ("empty", b"", "event: not valid JSON: Expecting value (line 1, column 1)"),
    (
        "a key twice",
        b'{"eventId":"e-1","eventId":"e-2","eventType":"X","timestamp":"' + AT.encode() + b'"}',
        "event: key 'eventId' appears twice in one object",
    ),
    (
        "a data key twice",
        event_text('{"x":1,"x":2}').encode(),
        "event: key 'x' appears twice in one object",
    ),
    (
        "NaN",
        event_text('{"x":NaN}').encode(),
        f"event: NaN is not a JSON number (line 1, column {D + 5})",
    ),
    (
        "Infinity",
        event_text('{"x":Infinity}').encode(),
        f"event: Infinity is not a JSON number (line 1, column {D + 5})",
    ),
    (
        "-Infinity",
        event_text('{"x":[1,-Infinity]}').encode(),
        f"event: -Infinity is not a JSON number (line 1, column {D + 8})",
    ),
    (
        "a float too large",
        event_text('{"x":1e400}').encode(),
        f"event: 1e400 is too large for a number (it would be infinite) (line 1, column {D + 5})",
    ),
    (
        "a huge integer",
        event_text('{"n":' + "7" * 5000 + "}").encode(),
        "event: an integer of 5,000 digits is longer than the limit of 4,300 digits "
        f"(line 1, column {D + 5})",
    ),
    (
        "bytes not UTF-8",
        event_text('{"x":"\xff"}').encode("latin-1"),
        f"event: not UTF-8: byte 0xff at offset {D + 5}",
    ),
    (
        "a lone surrogate",
        event_text('{"x":"\\ud800"}').encode(),
        "event: a string with a lone surrogate (\\ud800), which UTF-8 cannot hold "
        f"(line 1, column {D + 6})",
    ),
    (
        "a lone surrogate in a key",
        event_text('{"\\udc00":1}').encode(),
        "event: a string with a lone surrogate (\\udc00), which UTF-8 cannot hold "
        f"(line 1, column {D + 2})",
    ),
    (
        "an escaped NUL",
        event_text('{"x":["a\\u0000"]}').encode(),
        "event 'e-1': data.x.0: must not contain NUL characters (\\u0000)",
    ),
    (
        "a NUL in the event id",
        event_text(eventId="a\x00b").encode(),
        "event: eventId: must not contain NUL characters (\\u0000)",
    ),
    (
        "a raw NUL",
        event_text('{"x":"a\x00"}').encode(),
        f"event: not valid JSON: Invalid control character (line 1, column {D + 7})",
    ),
    ("an array", b"[1, 2]", "event: must be a JSON object, not an array"),
    ("a string", b'"OrderCreated"', "event: must be a JSON object, not a string"),
    ("null", b"null", "event: must be a JSON object, not null"),
    (
        "wrong field types",
        b'{"eventId":"e-1","eventType":7,"timestamp":"soon","data":[]}',
        "event 'e-1': eventType: Input should be a valid string; timestamp: Input should be a "
        "valid datetime or date, input is too short; data: Input should be a valid dictionary",
    ),
    (
        "a field unknown",
        event_text(extra=1).encode(),
        "event 'e-1': extra: Extra inputs are not permitted",
    ),
    (
        "a saga id too long",
        event_text(sagaId="s" * 65).encode(),
        "event 'e-1': sagaId: at most 64 characters, not 65",
    ),
    (
        "an engine event type",
        event_text(eventType="sagas.HandlerSucceeded").encode(),
        f"event 'e-1': event type 'sagas.HandlerSucceeded' {ENGINE_TYPE_HINT}",
    ),
    (
        "an operator request",
        event_text(eventType="sagas.RetryRequested").encode(),
        f"event 'e-1': event type 'sagas.RetryRequested' {ENGINE_TYPE_HINT}",
    ),
    (
        "an engine type in capitals",
        event_text(eventType="SAGAS.TimerFired").encode(),
        f"event 'e-1': event type 'SAGAS.TimerFired' {ENGINE_TYPE_HINT}",
    ),
    (
        "data 65 levels deep",
        event_text(deep_data(65)).encode(),
        f"event 'e-1': data{'.a' * 64}: nested deeper than 64 levels",
    ),
    (
        "data 100 levels deep",
        event_text(deep_data(100)).encode(),
        f"event 'e-1': data{'.a' * 64}: nested deeper than 64 levels",
    ),
    (
        "data 100000 levels deep",
        DEEPEST.encode(),
        f"event: nested deeper than 128 levels (line 1, column {column_of_bracket(DEEPEST, 129)})"
        "; event data may nest 64 levels",
    ),
    (
        "just over 1 MiB",
        padded(MIB + 1).encode(),
        "event: 1,048,577 bytes is more than the limit of 1,048,576 bytes",
    ),
]
ENGINE_ONLY = {"a NUL in the event id", "an escaped NUL", "a saga id too long"}
ENGINE_ONLY |= {name for name, _, _ in REFUSED if "engine" in name or "operator" in name}

ACCEPTED: list[tuple[str, bytes]] = [
    ("data 10 levels deep", event_text(deep_data(10)).encode()),
    ("data 64 levels deep", event_text(deep_data(64)).encode()),
    ("exactly 1 MiB", padded(MIB).encode()),
    ("NaN as text", event_text('{"note":"NaN and Infinity","n":-0.5e-3}').encode()),
    ("non-ASCII", event_text('{"name":"Zoë \\ud83d\\ude00 東京"}').encode()),
]

ids = [name for name, _, _ in REFUSED]


@pytest.mark.parametrize(("name", "text", "message"), REFUSED, ids=ids)
def test_the_intake_refuses_with_a_clear_message(name: str, text: bytes, message: str) -> None:
    with pytest.raises(EventError) as refused:
        Intake().from_json(text)
    assert str(refused.value) == message
    if name == "bytes not UTF-8":  # a str cannot hold that byte: it holds a surrogate instead
        message = 'event: text with a lone surrogate (\\udcff) after \'ta":{"x":"\''
    with pytest.raises(EventError) as refused_str:
        Intake().from_json(text.decode("utf-8", "surrogateescape"))
    assert str(refused_str.value) == message


@pytest.mark.parametrize(("name", "text", "message"), REFUSED, ids=ids)
def test_event_from_json_is_as_strict_but_for_the_intake_rules(
    name: str, text: bytes, message: str
) -> None:
    if name in ENGINE_ONLY:
        assert Event.from_json(text).event_id  # a well-formed event: the intake's rules only
        return
    with pytest.raises(EventError) as refused:
        Event.from_json(text)
    assert str(refused.value) == message


@pytest.mark.parametrize(("name", "text"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
def test_the_intake_accepts_what_can_be_kept(name: str, text: bytes) -> None:
    event = Intake().from_json(text)
    assert event.event_id == "e-1"
    assert Intake().check(event) is event
    assert Event.from_json(event.to_json(), max_bytes=None) == event


# -- sagas publish ------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A SQLite database holding one queued event, ``good-0``."""
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    good = order_created("o-0", datetime.now(UTC), event_id="good-0")
    result = publish_cli(url, good.to_json())
    assert result.exit_code == 0, result.output
    return url


def queued_ids(url: str) -> list[str]:
    store = SQLStore(url)
    try:
        assert store.queue_depth() == len(store.queued(100))
        return [item.event.event_id for item in store.queued(100)]
    finally:
        store.close()


def publish_cli(url: str, *args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["publish", *args, "--db", url], input=stdin)


@pytest.mark.parametrize(("name", "text", "message"), REFUSED, ids=ids)
def test_publish_refuses_an_argument(db: str, name: str, text: bytes, message: str) -> None:
    result = publish_cli(db, os.fsdecode(text))  # as sys.argv holds bytes that are not UTF-8
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\n"
    assert queued_ids(db) == ["good-0"]


@pytest.mark.parametrize(("name", "text", "message"), REFUSED, ids=ids)
def test_publish_refuses_standard_input_naming_the_line(
    db: str, name: str, text: bytes, message: str
) -> None:
    result = publish_cli(db, "-", stdin=b"\n\n" + text + b"\n")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: <stdin>: 1 of 1 event(s) refused, none accepted:\n  <stdin>:3: {message}\n"
    )
    assert queued_ids(db) == ["good-0"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [case for case in REFUSED if case[0] != "empty"],  # a blank line in a file is skipped
    ids=[name for name in ids if name != "empty"],
)
def test_publish_refuses_a_file_of_json_lines_and_queues_none_of_it(
    db: str, tmp_path: Path, name: str, text: bytes, message: str
) -> None:
    good = [order_created(f"o-{n}", datetime.now(UTC), event_id=f"g-{n}") for n in (1, 2)]
    lines = [good[0].to_json().encode(), b"", text, good[1].to_json().encode()]
    file = tmp_path / "events.jsonl"
    file.write_bytes(b"\n".join(lines) + b"\n")
    result = publish_cli(db, "--file", str(file))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {file}: 1 of 3 event(s) refused, none accepted:\n  {file}:3: {message}\n"
        "nothing was queued\n"
    )
    assert queued_ids(db) == ["good-0"]


def test_publish_reads_several_events_and_reports_every_refused_one(
    db: str, tmp_path: Path
) -> None:
    lines = [event_text(eventId=f"f-{n}") for n in range(5)]
    lines[1] = event_text('{"x":NaN}', eventId="f-1")
    lines[3] = event_text(eventType="sagas.TimerFired", eventId="f-3")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines))
    good = tmp_path / "good.jsonl"
    good.write_text("\r\n".join(event_text(eventId=f"ok-{n}") for n in range(3)) + "\r\n")
    result = publish_cli(db, "--file", str(good), "--file", str(bad))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: {bad}: 2 of 5 event(s) refused, none accepted:",
        f"  {bad}:2: event: NaN is not a JSON number (line 1, column {D + 5})",
        f"  {bad}:4: event 'f-3': event type 'sagas.TimerFired' {ENGINE_TYPE_HINT}",
        "nothing was queued",
    ]
    assert queued_ids(db) == ["good-0"]
    result = publish_cli(db, "--file", str(good))
    assert result.output == "3 events: 3 queued, 0 already known\n"
    assert queued_ids(db) == ["good-0", "ok-0", "ok-1", "ok-2"]


def test_publish_takes_one_event_spanning_lines_from_standard_input(db: str) -> None:
    event = json.loads(event_text(eventId="pretty-1"))
    result = publish_cli(db, "-", stdin=json.dumps(event, indent=2).encode())
    assert result.output == "OrderCreated pretty-1: queued\n"
    assert queued_ids(db) == ["good-0", "pretty-1"]
    result = publish_cli(db, "-", stdin=b'{\n  "eventId": "p-2",\n  "data": {"x": NaN}\n}')
    assert result.output == (
        "Error: <stdin>: 1 of 1 event(s) refused, none accepted:\n"
        "  <stdin>:1: event: NaN is not a JSON number (line 3, column 17)\n"
    )


def test_publish_limits_the_size_just_under_and_just_over(db: str, tmp_path: Path) -> None:
    limit = ["--max-event-bytes", "2048"]
    fits = padded(2048).replace('"e-1"', '"e-2"')
    assert publish_cli(db, fits, *limit).output == "OrderCreated e-2: queued\n"
    over = padded(2049)
    refused = "event: 2,049 bytes is more than the limit of 2,048 bytes"
    assert publish_cli(db, over, *limit).output == f"Error: {refused}\n"
    file = tmp_path / "big.jsonl"
    file.write_text(fits + "\n" + over + "\n" + "x" * 10_000 + "\n" + fits + "\n")
    assert publish_cli(db, "--file", str(file), *limit).output.splitlines()[1:3] == [
        f"  {file}:2: {refused}",
        f"  {file}:3: event: 10,000 bytes is more than the limit of 2,048 bytes",
    ]
    pretty = json.dumps(json.loads(over), indent=1).encode()
    assert publish_cli(db, "-", *limit, stdin=pretty).output.splitlines()[1] == (
        "  <stdin>:1: event: larger than the limit of 2,048 bytes"
    )
    assert queued_ids(db) == ["good-0", "e-2"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"x": NaN}', "NaN is not a JSON number (line 1, column 7)"),
        ('{"x": 1, "x": 2}', "key 'x' appears twice in one object"),
        ('{"x": "\\u0000"}', "data.x: must not contain NUL characters (\\u0000)"),
        (
            '{"x": "\\udfff"}',
            "a string with a lone surrogate (\\udfff), which UTF-8 cannot hold (line 1, column 8)",
        ),
        ("[1, 2]", 'must be a JSON object, e.g. \'{"orderId": "o-1"}\''),
        ("", "not valid JSON: Expecting value (line 1, column 1)"),
        (deep_data(65), f"data{'.a' * 64}: nested deeper than 64 levels"),
        (deep_data(100_000), f"nested deeper than 128 levels (line 1, column {5 * 128 + 1})"),
        (
            "{oops",
            "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
    ],
)
def test_data_given_by_hand_is_parsed_as_strictly(db: str, data: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_data(data)
    published = publish_cli(db, "--type", "OrderCreated", "--data", data)
    assert published.exit_code == 2
    assert f"Invalid value for '--data': {message}" in published.output.replace("\n", " ")
    skipped = CliRunner().invoke(
        cli, ["skip", "no-such-saga", "--step", "ship", "--data", data, "--db", db]
    )
    assert skipped.exit_code == 2
    assert f"Invalid value for '--data': {message}" in skipped.output.replace("\n", " ")


def test_publish_type_refuses_the_engines_own_types(db: str) -> None:
    result = publish_cli(db, "--type", "sagas.CancelRequested", "--saga-id", "s-1")
    assert result.exit_code == 1
    assert result.output.startswith("Error: event '")
    assert f"event type 'sagas.CancelRequested' {ENGINE_TYPE_HINT}" in result.output


def test_publish_takes_one_source_only(db: str, tmp_path: Path) -> None:
    assert "give one of" in publish_cli(db).output
    assert "give one of" in publish_cli(db, "-", "--type", "X").output
    assert "--data and --saga-id go with --type" in publish_cli(db, "-", "--data", "{}").output


def test_bytes_that_are_not_utf8_on_a_real_command_line_and_stdin(db: str) -> None:
    """Through a real process: argv and stdin carry the bytes as they are."""
    text = event_text('{"x":"\xff"}').encode("latin-1")
    sagas = [str(Path(sys.executable).parent / "sagas"), "publish", "--db", db]
    for args, stdin in (([text], b""), ([b"-"], text)):
        done = subprocess.run(
            [*sagas, *args], input=stdin, capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 1
        assert b"Traceback" not in done.stderr
        assert f"event: not UTF-8: byte 0xff at offset {D + 5}".encode() in done.stderr


# -- the bus ------------------------------------------------------------------------------


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock) as engine:
        yield engine


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


BUS_REFUSED: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("NaN", {"x": math.nan}, {}, "data.x: nan is not a JSON number"),
    ("-Infinity", {"x": [1, -math.inf]}, {}, "data.x.1: -inf is not a JSON number"),
    (
        "a lone surrogate",
        {"x": "\ud800"},
        {},
        "data.x: a string with a lone surrogate, which UTF-8 cannot hold",
    ),
    (
        "a lone surrogate in a key",
        {"\udc00": 1},
        {},
        "data: a key with a lone surrogate, which UTF-8 cannot hold",
    ),
    ("a NUL", {"x": ["a\x00"]}, {}, "data.x.0: must not contain NUL characters (\\u0000)"),
    ("a NUL in a key", {"k\x00": 1}, {}, "data: a key must not contain NUL characters (\\u0000)"),
    (
        "a NUL in the correlation id",
        {},
        {"correlation_id": "c\x00"},
        "correlationId: must not contain NUL characters (\\u0000)",
    ),
    ("a huge integer", {"n": 10**5000}, {}, "data.n: an integer of more than 4,300 digits"),
    ("data 65 levels deep", nested(65), {}, f"data{'.a' * 64}: nested deeper than 64 levels"),
    (
        "data 100000 levels deep",
        nested(100_000),
        {},
        f"data{'.a' * 64}: nested deeper than 64 levels",
    ),
    (
        "not JSON at all",
        {"x": object()},
        {},
        "data: cannot be written as JSON: Unable to serialize unknown type: <class 'object'>",
    ),
    ("a saga id too long", {}, {"saga_id": "s" * 65}, "sagaId: at most 64 characters, not 65"),
]


@pytest.mark.parametrize(
    ("name", "data", "meta", "message"), BUS_REFUSED, ids=[c[0] for c in BUS_REFUSED]
)
def test_the_bus_refuses_and_queues_nothing(
    engine: Engine,
    clock: ManualClock,
    name: str,
    data: dict[str, Any],
    meta: dict[str, Any],
    message: str,
) -> None:
    event = Event.create("OrderCreated", data, at=clock.now(), event_id="b-1", **meta)
    with pytest.raises(EventError) as refused:
        engine.publish(event)
    assert str(refused.value) == f"event 'b-1': {message}"
    with pytest.raises(EventError) as published:
        engine.bus.publish("OrderCreated", data, event_id="b-2", **meta)
    assert str(published.value) == f"event 'b-2': {message}"
    assert engine.store.queue_depth() == 0


def test_the_bus_takes_exactly_the_limit(engine: Engine, clock: ManualClock) -> None:
    def sized(pad: int, event_id: str) -> Event:
        return Event.create("OrderCreated", {"pad": "x" * pad}, at=clock.now(), event_id=event_id)

    pad = MIB - event_size(sized(0, "b-1"))
    assert event_size(sized(pad, "b-1")) == MIB
    assert engine.publish(sized(pad, "b-1"))
    with pytest.raises(EventError) as refused:
        engine.publish(sized(pad + 1, "b-2"))
    assert str(refused.value) == (
        "event 'b-2': 1,048,577 bytes is more than the limit of 1,048,576 bytes"
    )
    assert engine.store.queue_depth() == 1


@pytest.mark.parametrize("event_type", ["sagas.HandlerFailed", "sagas.SkipRequested"])
def test_the_bus_refuses_the_engines_own_types(
    engine: Engine, clock: ManualClock, event_type: str
) -> None:
    command = order_created("o-1", clock.now(), event_id="cmd-1")
    with pytest.raises(EventError) as refused:
        engine.bus.reply(command, event_type, {"step": "ship"})
    assert str(refused.value) == f"event 'cmd-1/{event_type}': event type {event_type!r} " + (
        ENGINE_TYPE_HINT
    )
    assert engine.store.queue_depth() == 0


def test_a_subscriber_publishing_an_engine_event_is_refused_and_dead_lettered(
    engine: Engine, clock: ManualClock
) -> None:
    """A participant is outside input even when it publishes from inside the engine's run."""

    def forge(event: Event) -> None:
        engine.bus.reply(event, "sagas.HandlerSucceeded", {"step": "take_payment"})

    engine.bus.subscribe("OrderCreated", forge)
    engine.publish(order_created("o-1", clock.now(), event_id="created-1"))
    engine.run_until_idle()

    [letter] = engine.store.dead_letters()
    assert letter.event_id == "created-1"
    assert "event type 'sagas.HandlerSucceeded' is not accepted from outside" in letter.reason
    assert all(e.event.event_type != "sagas.HandlerSucceeded" for e in engine.store.log_from(0, 99))
    assert engine.store.queue_depth() == 0


def test_the_engines_own_events_still_flow_inside(
    engine: Engine, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    """Handler outcomes, fired timers and operator requests never go through the intake."""
    answers = {"ReserveInventory": "InventoryReserved", "ShipOrder": "OrderShipped"}

    def answer(command: Event) -> None:
        if command.data["orderId"] == "o-1":  # o-2 is never answered: its step times out
            engine.bus.reply(command, answers[command.event_type], {})

    for command_type in answers:
        engine.bus.subscribe(command_type, answer)
    Participants(fail_rate=0.0).register(engine.handlers)
    engine.register(order_definition)
    for order in ("o-1", "o-2"):
        engine.publish(order_created(order, clock.now()))
    engine.run_until_idle()
    clock.advance(timedelta(seconds=31))
    engine.run_until_idle()
    completed, waiting = (saga_id_for("order_fulfillment", o) for o in ("o-1", "o-2"))
    assert engine.store.instance(completed).state.status == InstanceStatus.COMPLETED
    request = ActionRequest(OperatorAction.COMPENSATE, "bob", "test", None, {})
    assert Operations(engine.store).act(waiting, request).outcome == Outcome.APPLIED

    assert "sagas.HandlerSucceeded" in {e.event.event_type for e in engine.store.log(completed)}
    logged = {entry.event.event_type for entry in engine.store.log(waiting)}
    assert {"sagas.TimerFired", "sagas.CompensationRequested"} <= logged


# -- configuration ------------------------------------------------------------------------


def test_the_limit_is_configured_in_the_engine_table(tmp_path: Path, database: str) -> None:
    assert load_config(ROOT / "engine" / "sagas.toml").max_event_bytes == DEFAULT_MAX_EVENT_BYTES
    file = tmp_path / "small.toml"
    file.write_text("[engine]\nmax_event_bytes = 100\n")
    with pytest.raises(Exception, match=r"engine\.max_event_bytes: Input should be greater"):
        load_config(file)
    engine = build_engine(EngineConfig(max_event_bytes=4096), database_url=database)
    try:
        assert engine.bus.intake == Intake(max_event_bytes=4096)
        with pytest.raises(EventError, match="more than the limit of 4,096 bytes"):
            engine.bus.publish("OrderCreated", {"pad": "x" * 5000})
        assert engine.store.queue_depth() == 0
    finally:
        engine.close()


def test_refused_events_of_one_input_are_listed_up_to_a_bound() -> None:
    lines = b"\n".join(event_text(eventId=f"n-{n}", data="[]").encode() for n in range(30))
    with pytest.raises(RefusedEventsError) as refused:
        Intake().read(io.BytesIO(lines), "many.jsonl")
    message = str(refused.value)
    assert message.startswith("many.jsonl: 30 of 30 event(s) refused, none accepted:\n")
    assert message.endswith("\n  ... and 10 more")
    assert len(refused.value.errors) == 30


# -- any input ----------------------------------------------------------------------------

VALID = event_text('{"orderId":"o-1","items":[{"sku":"a","n":2}],"total":12.5}').encode()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid event with a few bytes replaced, inserted or cut."""
    text = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.binary(max_size=4) | st.sampled_from([b"NaN", b"\\u0000", b"[", b"{"]))
        cut = draw(st.integers(0, 3))
        text[at : at + cut] = piece
    return bytes(text)


@settings(max_examples=500, deadline=None)
@given(text=mutated() | st.binary(max_size=200) | st.text(max_size=200))
def test_any_input_gives_an_event_or_an_event_error(text: bytes | str) -> None:
    intake = Intake(max_event_bytes=4096)
    try:
        event = intake.from_json(text)
    except EventError as exc:
        refusal = str(exc)
    else:
        assert intake.check(event) is event, "what the text path takes, the bus takes"
        refusal = "event: none"
    assert refusal.startswith("event"), refusal


def test_a_huge_schema_version_counts_in_the_size(clock: ManualClock) -> None:
    intake = Intake(max_event_bytes=2048)
    event = Event.create("OrderCreated", {}, at=clock.now(), event_id="v", schema_version=10**3000)
    with pytest.raises(EventError) as refused:
        intake.check(event)
    assert str(
        refused.value
    ) == f"event 'v': {event_size(event):,} bytes is more than the limit " + ("of 2,048 bytes")


@pytest.mark.parametrize(
    ("args", "meta", "problem"),
    [
        (("OrderShipped", {}), {"saga_id": "\ud800"}, "sagaId: a lone surrogate (\\ud800)"),
        (("OrderShipped", {}), {"correlation_id": "a\udfffb"}, "correlationId: a lone surrogate"),
        (("OrderShipped", {}), {"event_id": 10**5000}, "event_id: Input should be a valid string"),
        (("OrderShipped", {"n": 10**5000}), {}, "an integer of more than 4,300 digits"),
    ],
)
def test_the_bus_refuses_ids_with_lone_surrogates_and_unprintable_values(
    args: tuple[str, dict[str, object]], meta: dict[str, object], problem: str, tmp_path: Path
) -> None:
    # Found by the fuzzing campaign: these escaped as PydanticSerializationError or ValueError.
    with saga_engine(f"sqlite:///{tmp_path / 'bus.db'}", clock=ManualClock()) as engine:
        with pytest.raises(EventError) as refused:
            engine.bus.publish(*args, **meta)  # type: ignore[arg-type]
        assert problem in str(refused.value)
        assert engine.store.queue_depth() == 0
