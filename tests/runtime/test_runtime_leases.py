"""Handler leases: a worker renews the lease of the outbox rows it is carrying out while their
handlers run, so a handler slower than the lease is not run a second time by another worker;
the rows of a worker that stopped are still taken over once their lease ran out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from sagas import parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.store import schema as t
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

SLOW = """
name: slow
trigger: Go
correlation: id
steps:
  - name: work
    handler: work
    pivot: true
"""
SAGA_ID = saga_id_for("slow", "s-1")
LEASE = timedelta(seconds=0.3)
Eventually = Callable[..., None]


class SlowHandler:
    """A handler whose first call blocks until released; every call is counted."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, context: StepContext) -> dict[str, int]:
        self.calls.append(context.attempt)
        if len(self.calls) == 1:
            self.started.set()
            assert self.release.wait(30), "never released"
        return {"calls": len(self.calls)}


@pytest.fixture
def handler() -> Iterator[SlowHandler]:
    handler = SlowHandler()
    yield handler
    handler.release.set()  # whatever happened, no thread stays blocked


def worker(database: str, clock: ManualClock, handler: SlowHandler) -> Engine:
    engine = Engine(SQLStore(database), clock=clock, lease=LEASE, handlers={"work": handler})
    engine.register(parse_definition(SLOW))
    return engine


def lease_until(engine: Engine) -> datetime | None:
    """The lease of the one outbox row (``None``: the outbox is empty)."""
    store = engine.store
    assert isinstance(store, SQLStore)
    with store.engine.connect() as conn:
        found: datetime | None = conn.scalar(select(t.outbox.c.lease_until))
    return found


def start_in_thread(engine: Engine, handler: SlowHandler) -> threading.Thread:
    """Queue the trigger and run the engine's first round in a thread: it commits the handler's
    outbox row and then blocks in the handler."""
    engine.publish(Event.create("Go", {"id": "s-1"}, at=engine.clock.now()))
    thread = threading.Thread(target=engine.run_once, name="first-worker")
    thread.start()
    assert handler.started.wait(10), "the handler never started"
    return thread


def test_a_handler_slower_than_the_lease_is_not_run_again_by_another_worker(
    database: str, clock: ManualClock, handler: SlowHandler, eventually: Eventually
) -> None:
    first, second = worker(database, clock, handler), worker(database, clock, handler)
    try:
        thread = start_in_thread(first, handler)
        for _ in range(3):
            clock.advance("1s")  # far beyond the lease the row was written with
            eventually(lambda: (lease_until(first) or clock.now()) > clock.now(), timeout=10)
            assert second.run_until_idle() == 0, "the second worker took nothing"

        handler.release.set()
        thread.join(10)
        assert not thread.is_alive()
        first.run_until_idle()
        second.run_until_idle()

        assert handler.calls == [1]
        record = first.store.instance(SAGA_ID)
        assert record.state.status == InstanceStatus.COMPLETED
        assert record.state.data["calls"] == 1
        assert lease_until(first) is None, "the row was marked done"
    finally:
        handler.release.set()
        first.close()
        second.close()


def test_the_rows_of_a_worker_that_stopped_are_taken_over_after_the_lease(
    database: str, clock: ManualClock, handler: SlowHandler
) -> None:
    first, second = worker(database, clock, handler), worker(database, clock, handler)
    try:
        thread = start_in_thread(first, handler)
        first.close()  # the worker is gone: nobody renews its lease any more
        clock.advance("1s")

        second.run_until_idle()

        assert handler.calls == [1, 1], "carried out again, at least once"
        record = second.store.instance(SAGA_ID)
        assert record.state.status == InstanceStatus.COMPLETED
        assert lease_until(second) is None
    finally:
        handler.release.set()
        thread.join(10)
        second.close()
