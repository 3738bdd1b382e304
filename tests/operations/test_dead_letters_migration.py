"""Migration 0004 on SQLite and PostgreSQL: dead letters written at 0003 are kept, marked as
from the engine's rounds (one attempt, text); ids are never given twice afterwards (SQLite
copies the table for AUTOINCREMENT); it downgrades to 0003 and upgrades again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, text

from sagas.operations.dead_letters import DeadLetters, Fate
from sagas.store.dead_letters import dead_letter_of
from sagas.store.dialect import lock_schema
from sagas.store.sql import SQLStore, _alembic_config

T0 = datetime(2030, 1, 1, tzinfo=UTC)
OLD_ROWS = [
    ("e-1", "OrderPlaced", None, '{"eventId": "e-1"}', "no saga instance 'x'"),
    ("e-2", "Booked", "s-2", '{"eventId": "e-2"}', "subscriber failed: café ☕"),
]


@pytest.fixture
def at_0003(database: str) -> Iterator[SQLStore]:
    store = SQLStore(database, migrate=False)
    try:
        store.upgrade("0003")
        with store.engine.begin() as conn:
            for event_id, event_type, saga_id, payload, reason in OLD_ROWS:
                conn.execute(
                    text(
                        "INSERT INTO saga_dead_letters "
                        "(event_id, event_type, saga_id, payload, reason, created_at) "
                        "VALUES (:i, :t, :s, :p, :r, :c)"
                    ),
                    {
                        "i": event_id,
                        "t": event_type,
                        "s": saga_id,
                        "p": payload,
                        "r": reason,
                        "c": T0.replace(tzinfo=None),
                    },
                )
        yield store
    finally:
        store.close()


def columns(store: SQLStore) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns("saga_dead_letters")}


def test_upgrading_keeps_the_dead_letters_and_never_reuses_an_id(at_0003: SQLStore) -> None:
    store = at_0003
    assert "source" not in columns(store)

    store.upgrade()

    assert {"source", "attempts", "encoding"} <= columns(store)
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("saga_dead_letters")}
    assert "ix_saga_dead_letters_created" in indexes
    letters = sorted(store.find_dead_letters(), key=lambda letter: letter.id)
    assert [(d.event_id, d.saga_id, d.reason, d.payload) for d in letters] == [
        (i, s, r, p) for i, _, s, p, r in OLD_ROWS
    ]
    assert {(d.source, d.attempts, d.encoding) for d in letters} == {("runtime", 1, "text")}
    assert all(letter.created_at == T0 for letter in letters)

    last = letters[-1].id
    assert [r.fate for r in DeadLetters(store).drop([last])] == [Fate.DROPPED]
    fresh = store.record_dead_letter(dead_letter_of(b"\xff", "garbled", source="nats", at=T0))
    assert fresh > last  # the id of the dropped one is not given again


def test_it_downgrades_to_0003_and_upgrades_again_keeping_the_rows(at_0003: SQLStore) -> None:
    store = at_0003
    store.upgrade()
    with store.engine.begin() as conn:
        lock_schema(conn)
        command.downgrade(_alembic_config(conn), "0003")
    assert store.current_revision() == "0003"
    assert "source" not in columns(store)

    store.upgrade()

    assert store.current_revision() == "0004"
    assert [d.event_id for d in store.find_dead_letters()] == ["e-2", "e-1"]
