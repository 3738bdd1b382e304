"""Worker logs at the default levels carry ids and outcomes, never the saga's data: a concurrency
conflict is one short line naming the instances (not the SQL statement with the saga's data in
its parameters); failed handlers and subscribers are named with the error's type, its message
(which often quotes data) only at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sagas import parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.store.base import RoundTx
from sagas.store.records import Changes
from sagas.testing import ManualClock, saga_engine

SECRET = "4111-1111-1111-1111"
CARD = """
name: card
trigger: CardGiven
correlation: id
steps:
  - name: charge
    handler: charge
    pivot: true
  - name: notify
    command: {type: Notify, success: Notified}
"""
SAGA_ID = saga_id_for("card", "c-1")


def given_card() -> Event:
    return Event.create(
        "CardGiven", {"id": "c-1", "card": SECRET}, at=ManualClock().now(), event_id="card-1"
    )


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("sagas")]


def assert_no_saga_data(records: list[logging.LogRecord]) -> None:
    for record in records:
        text = record.getMessage()
        assert SECRET not in text, f"saga data in a {record.levelname} line: {text}"
        assert "INSERT" not in text
        assert "\n" not in text


def test_a_concurrency_conflict_is_one_short_line_without_the_saga_data(
    database: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with saga_engine(database, clock=clock, handlers={"charge": lambda c: None}) as engine:
        engine.register(parse_definition(CARD))
        engine.publish(given_card())
        with (
            rival_creates_the_instance_first(engine),
            caplog.at_level(logging.INFO, logger="sagas"),
        ):
            assert engine.run_once() == 1

        conflicts = [r for r in lines(caplog) if "another worker" in r.getMessage()]
        (line,) = conflicts
        assert line.levelno == logging.WARNING
        assert SAGA_ID in line.getMessage()
        assert len(line.getMessage()) < 200
        assert line.exc_info is None
        assert_no_saga_data(lines(caplog))
        # Nothing was written; the next round decides the event.
        engine.run_until_idle()
        state = engine.store.instance(SAGA_ID).state
        assert state.steps["charge"].status.value == "succeeded"
        assert [entry.seq for entry in engine.store.log(SAGA_ID)][:1] == [1]


@contextmanager
def rival_creates_the_instance_first(engine: Engine) -> Iterator[None]:
    """During the engine's next round, the instance it creates is written first, in the same
    transaction, as another worker would have: its own insert then violates the key."""
    store = engine.store
    real_round = store.round
    used = False

    @contextmanager
    def round_with_rival() -> Iterator[RoundTx]:
        nonlocal used
        with real_round() as tx:
            real_apply = tx.apply

            def apply(changes: Changes) -> None:
                nonlocal used
                if changes.created and not used:
                    used = True
                    real_apply(Changes(created=list(changes.created)))
                real_apply(changes)

            tx.apply = apply  # type: ignore[method-assign]
            yield tx

    store.round = round_with_rival  # type: ignore[method-assign]
    try:
        yield
    finally:
        store.round = real_round  # type: ignore[method-assign]
    assert used, "the rival never wrote"


def test_failed_handlers_and_subscribers_are_logged_without_their_messages_at_info(
    database: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def charge(context: StepContext) -> None:
        raise RuntimeError(f"card {context.data['card']} refused by the bank")

    def notify(command: Event) -> None:
        raise RuntimeError(f"cannot notify about {command.data}")

    with saga_engine(database, clock=clock, handlers={"charge": charge}) as engine:
        engine.register(parse_definition(CARD))
        engine.bus.subscribe("CardGiven", notify)
        engine.publish(given_card())
        with caplog.at_level(logging.INFO, logger="sagas"):
            engine.run_until_idle()

        records = lines(caplog)
        failed = [r for r in records if "failed" in r.getMessage()]
        assert {r.name for r in failed} >= {"sagas.relay", "sagas.engine"}
        assert any("RuntimeError" in r.getMessage() for r in failed)
        assert_no_saga_data(records)
        # The message is kept where it belongs: in the stored outcome and the dead letter.
        (letter,) = engine.store.dead_letters()
        assert SECRET in letter.reason
        assert engine.store.instance(SAGA_ID).state.status != InstanceStatus.COMPLETED


def test_at_debug_the_messages_are_logged(
    database: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def charge(context: StepContext) -> None:
        raise RuntimeError("bank says no")

    with saga_engine(database, clock=clock, handlers={"charge": charge}) as engine:
        engine.register(parse_definition(CARD))
        engine.publish(given_card())
        with caplog.at_level(logging.DEBUG, logger="sagas"):
            engine.run_until_idle()

    (line,) = [r for r in lines(caplog) if r.name == "sagas.relay"]
    assert line.levelno == logging.INFO
    assert "bank says no" in line.getMessage()
