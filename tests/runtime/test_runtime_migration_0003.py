"""Migration 0003 on SQLite and PostgreSQL: a database at 0002 holding a log entry and a queued
event is upgraded; the log gets ``received_at`` (empty in the old entry, which still reads), the
inbox the index of queued events by receipt time; an engine then decides the queued event at the
time it was queued; and it downgrades to 0002 and upgrades again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import insert, inspect

from sagas.events import Event
from sagas.store import schema as t
from sagas.store.dialect import lock_schema
from sagas.store.sql import SQLStore, _alembic_config

T0 = datetime(2030, 1, 1, tzinfo=UTC)
OLD_EVENT = Event.create("OrderCreated", {"orderId": "o-1"}, at=T0, event_id="old-1")
QUEUED = Event.create("OrderCreated", {"orderId": "o-2"}, at=T0, event_id="queued-1")


@pytest.fixture
def at_0002(database: str) -> Iterator[SQLStore]:
    """A store on a database at 0002, with a log entry and a queued event written then."""
    store = SQLStore(database, migrate=False)
    try:
        store.upgrade("0002")
        assert "received_at" not in columns(store, "saga_event_log")
        with store.engine.begin() as conn:
            conn.execute(
                insert(t.event_log).values(
                    saga_id="s-1",
                    seq=1,
                    event_id=OLD_EVENT.event_id,
                    event_type=OLD_EVENT.event_type,
                    event=OLD_EVENT.to_json(),
                    note="saga started",
                    effects="[]",
                    ignored=False,
                    recorded_at=T0,
                )
            )
            conn.execute(
                insert(t.inbox).values(
                    event_id=QUEUED.event_id,
                    event_type=QUEUED.event_type,
                    saga_id=None,
                    event=QUEUED.to_json(),
                    queued=True,
                    enqueued_at=T0 + timedelta(seconds=3),
                )
            )
        yield store
    finally:
        store.close()


def columns(store: SQLStore, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table)}


def indexes(store: SQLStore, table: str) -> set[str]:
    return {i["name"] or "" for i in inspect(store.engine).get_indexes(table)}


def test_upgrading_adds_receipt_times_and_keeps_what_was_written(at_0002: SQLStore) -> None:
    store = at_0002
    store.upgrade("0003")

    assert store.current_revision() == "0003"
    assert "received_at" in columns(store, "saga_event_log")
    assert "ix_saga_inbox_queued_received" in indexes(store, "saga_inbox")
    (old,) = store.log("s-1")
    assert (old.event, old.recorded_at, old.received_at) == (OLD_EVENT, T0, None)
    (queued,) = store.queued(10)
    assert (queued.event, queued.received_at) == (QUEUED, T0 + timedelta(seconds=3))


def test_downgrading_to_0002_and_upgrading_again(at_0002: SQLStore) -> None:
    store = at_0002
    store.upgrade("0003")
    upgraded = (columns(store, "saga_event_log"), indexes(store, "saga_inbox"))

    with store.engine.begin() as conn:
        lock_schema(conn)
        command.downgrade(_alembic_config(conn), "0002")

    assert store.current_revision() == "0002"
    assert "received_at" not in columns(store, "saga_event_log")
    assert "ix_saga_inbox_queued_received" not in indexes(store, "saga_inbox")
    with store.engine.connect() as conn:
        assert conn.scalar(t.event_log.select().with_only_columns(t.event_log.c.event_id)) == (
            "old-1"
        ), "the log stays"

    store.upgrade("0003")

    assert (columns(store, "saga_event_log"), indexes(store, "saga_inbox")) == upgraded
    assert store.log("s-1")[0].received_at is None
