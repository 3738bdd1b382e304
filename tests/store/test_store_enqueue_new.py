"""``Store.enqueue_new``: per event, whether it was newly queued, exact on every backend even
while other writers queue the same ids."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sagas.events import Event
from sagas.store.sql import SQLStore

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def event(event_id: str) -> Event:
    return Event.create("OrderCreated", {"orderId": event_id}, at=NOW, event_id=event_id)


def test_new_ids_are_queued_and_known_ones_are_not(database: str) -> None:
    store = SQLStore(database)
    try:
        assert store.enqueue_new([event("a")], received_at=NOW) == [True]
        answers = store.enqueue_new(
            [event("a"), event("b"), event("b"), event("c")], received_at=NOW
        )
        assert answers == [False, True, False, True]
        assert store.enqueue_new([], received_at=NOW) == []
        assert sorted(q.event.event_id for q in store.queued(10)) == ["a", "b", "c"]
        assert {q.received_at for q in store.queued(10)} == {NOW}
    finally:
        store.close()


def test_more_ids_than_one_query_holds(database: str) -> None:
    store = SQLStore(database)
    try:
        first = [event(f"e-{n}") for n in range(0, 1200, 2)]
        assert all(store.enqueue_new(first, received_at=NOW))
        every = [event(f"e-{n}") for n in range(1200)]
        answers = store.enqueue_new(every, received_at=NOW)
        assert answers == [n % 2 == 1 for n in range(1200)]
        assert store.queue_depth() == 1200
    finally:
        store.close()


def test_writers_racing_on_the_same_ids_each_get_exact_answers(database: str) -> None:
    """Four writers queue overlapping ids at once: every id is accepted by exactly one."""
    stores = [SQLStore(database) for _ in range(4)]
    ids = [f"race-{n}" for n in range(300)]
    results: list[list[tuple[str, bool]]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    failures: list[BaseException] = []

    def write(index: int) -> None:
        try:
            queue(index)
        except BaseException as exc:
            failures.append(exc)
            raise

    def queue(index: int) -> None:
        start.wait()
        for chunk in range(0, len(ids), 20):
            events = [event(one) for one in ids[chunk : chunk + 20]]
            if index % 2:
                events.reverse()
            answers = stores[index].enqueue_new(events, received_at=NOW)
            results[index] += [(e.event_id, new) for e, new in zip(events, answers, strict=True)]

    threads = [threading.Thread(target=write, args=(n,)) for n in range(len(stores))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
        assert not failures, failures
        accepted = sorted(one for found in results for one, new in found if new)
        assert accepted == sorted(ids)
        assert stores[0].queue_depth() == len(ids)
    finally:
        for store in stores:
            store.close()


def test_writers_queueing_the_same_ids_in_opposite_orders_never_fail(database: str) -> None:
    """``Store.enqueue`` (what ``sagas publish`` and the bus use) queues each id once, even when
    two writers insert the same ids in opposite orders (a deadlock on PostgreSQL: the victim
    is tried again)."""
    stores = [SQLStore(database) for _ in range(4)]
    ids = [f"both-{n}" for n in range(300)]
    queued = [0 for _ in stores]
    failures: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def write(index: int) -> None:
        try:
            start.wait()
            for chunk in range(0, len(ids), 20):
                events = [event(one) for one in ids[chunk : chunk + 20]]
                if index % 2:
                    events.reverse()
                queued[index] += stores[index].enqueue(events, received_at=NOW)
        except BaseException as exc:
            failures.append(exc)
            raise

    threads = [threading.Thread(target=write, args=(n,)) for n in range(len(stores))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
        assert not failures, failures
        assert sum(queued) == len(ids)
        assert stores[0].queue_depth() == len(ids)
    finally:
        for store in stores:
            store.close()
