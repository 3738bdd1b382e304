"""The engine's hot lookups can use an index on PostgreSQL (the partial index on queued events
included: its predicate must match the queries'), so their cost does not grow with the tables.

PostgreSQL only: the SQLite plans are checked in ``test_sqlite_query_plans.py``. With empty
tables the planner rightly prefers a sequential scan, so sequential scans are priced out: a
plan that still has one found no index it could use.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.sql import Select

from sagas.store import SQLStore, queries
from sagas.store import schema as t

QUERIES = {
    "queued events": select(t.inbox.c.position)
    .where(t.inbox.c.queued)
    .order_by(t.inbox.c.position)
    .limit(10),
    "seen event ids": select(t.inbox.c.event_id).where(t.inbox.c.event_id.in_(["a", "b"])),
    "earliest queued event a round did not claim": select(t.inbox.c.enqueued_at)
    .where(t.inbox.c.queued, t.inbox.c.position.not_in([1, 2]))
    .order_by(t.inbox.c.enqueued_at)
    .limit(1),
    "due timers": select(t.timers.c.timer_id)
    .where(t.timers.c.due_at <= datetime(2030, 1, 1, tzinfo=UTC))
    .order_by(t.timers.c.due_at),
    "instance log": select(t.event_log.c.seq).where(t.event_log.c.saga_id == "x"),
    "instances by id": select(t.instances.c.state).where(t.instances.c.saga_id.in_(["x"])),
    "instance by correlation key": select(t.instances.c.state).where(
        t.instances.c.saga_name == "order_fulfillment", t.instances.c.correlation_key == "o-1"
    ),
    "running instances per definition version": queries.running_per_version(),
    "definition version by digest": queries.definition_with_digest("order_fulfillment", "0" * 64),
}


def plan(store: SQLStore, query: Select[tuple[object, ...]]) -> str:
    compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
    with store.engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        rows = conn.exec_driver_sql(f"EXPLAIN {compiled}").all()
    return " | ".join(str(row[0]).strip() for row in rows)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@pytest.mark.parametrize("name", QUERIES)
def test_hot_query_can_be_answered_from_an_index(name: str, database: str) -> None:
    store = SQLStore(database)
    try:
        found = plan(store, QUERIES[name])
    finally:
        store.close()
    assert "Index" in found, found
    assert "Seq Scan" not in found, found
