"""Two engines in two schemas of one PostgreSQL database neither wake nor block each other: the
wake-up channel and the advisory lock of migrations and registrations are the schema's own."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from sagas import parse_definition
from sagas.store import SQLStore, StoreError
from sagas.store.dialect import NOTIFY_CHANNEL, lock_schema, notify, notify_channel

Eventually = Callable[..., None]

T0 = datetime(2026, 12, 2, tzinfo=UTC)
DEFINITION = parse_definition(
    "name: s\ntrigger: Started\ncorrelation: id\n"
    "steps:\n  - name: approve\n    wait: {event: Approved}\n"
)


@pytest.fixture
def two_schemas(postgres_database: Any) -> Iterator[tuple[SQLStore, SQLStore]]:
    first = SQLStore(postgres_database.create_schema())
    second = SQLStore(postgres_database.create_schema())
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def schema_of(store: SQLStore) -> str:
    options = make_url(store.url).query["options"]
    assert isinstance(options, str)
    return options.removeprefix("-csearch_path=")


def test_each_schema_has_its_own_channel(two_schemas: tuple[SQLStore, SQLStore]) -> None:
    channels = []
    for store in two_schemas:
        with store.engine.connect() as conn:
            channels.append(notify_channel(conn))
    assert channels == [f"{NOTIFY_CHANNEL}.{schema_of(store)}" for store in two_schemas]


def wake_workers(store: SQLStore) -> None:
    """What queueing events or committing timers does after its writes."""
    with store.engine.begin() as conn:
        notify(conn)


def test_a_notification_in_one_schema_does_not_wake_the_other(
    two_schemas: tuple[SQLStore, SQLStore], eventually: Eventually
) -> None:
    first, second = two_schemas
    woken = {"first": 0, "second": 0}
    lock = threading.Lock()

    def waker(name: str) -> Callable[[], None]:
        def wake() -> None:
            with lock:
                woken[name] += 1

        return wake

    stops = [first.listen(waker("first")), second.listen(waker("second"))]
    try:
        wake_workers(second)
        eventually(lambda: woken["second"] == 1)
        # The same notification reaches every listener of its channel at once: give the first
        # schema's listener a bounded while to (wrongly) hear it.
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < quiet_until:
            assert woken["first"] == 0, "woken by a notification in another schema"
            time.sleep(0.02)
        wake_workers(first)
        eventually(lambda: woken["first"] == 1)
        assert woken == {"first": 1, "second": 1}
    finally:
        for stop in stops:
            assert stop is not None
            stop()


def test_a_held_schema_lock_does_not_block_registration_in_another_schema(
    two_schemas: tuple[SQLStore, SQLStore], postgres_database: Any
) -> None:
    first, second = two_schemas
    registered: list[int] = []
    with first.engine.connect() as holder, holder.begin():
        lock_schema(holder)  # held until the block ends, as by a slow migration

        # In the other schema: a new store (it migrates) and a registration, both under the lock.
        def register() -> None:
            late = SQLStore(postgres_database.create_schema())
            try:
                registered.append(late.register_definition(DEFINITION, T0))
                registered.append(second.register_definition(DEFINITION, T0))
            finally:
                late.close()

        thread = threading.Thread(target=register, daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "blocked by the lock of another schema"
        assert registered == [1, 1]

        # In the same schema the lock still holds: a registration gives up at its lock_timeout.
        url = make_url(first.url)
        options = f"{url.query['options']} -clock_timeout=200"
        same = SQLStore(
            url.update_query_dict({"options": options}).render_as_string(False), migrate=False
        )
        try:
            with pytest.raises(StoreError, match="lock timeout"):
                same.register_definition(DEFINITION, T0)
        finally:
            same.close()
    assert first.register_definition(DEFINITION, T0) == 1  # released with the transaction


def test_a_schema_name_too_long_for_a_channel_gets_a_hashed_channel(
    postgres_database: Any, eventually: Eventually
) -> None:
    schema = "Long-Schema." + "x" * 51  # 63 bytes, the longest name, with characters to quote
    url = make_url(postgres_database.create_schema())
    admin = SQLStore(url.render_as_string(False), migrate=False)
    try:
        with admin.engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        admin.close()
    options = {"options": f'-csearch_path="{schema}"'}
    store = SQLStore(url.update_query_dict(options).render_as_string(False))
    woken: list[int] = []
    stop = store.listen(lambda: woken.append(1))
    try:
        with store.engine.connect() as conn:
            channel = notify_channel(conn)
        assert channel == f"{NOTIFY_CHANNEL}#{hashlib.md5(schema.encode()).hexdigest()}"
        wake_workers(store)
        eventually(lambda: woken == [1])
    finally:
        assert stop is not None
        stop()
        store.close()
