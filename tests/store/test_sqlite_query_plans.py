"""The engine's hot lookups use indexes on SQLite, so their cost does not grow with the tables.

(The outbox holds only effects not yet carried out, read in primary-key order.)

SQLite only: ``EXPLAIN QUERY PLAN`` and its wording are SQLite's; PostgreSQL's plans are checked
in ``test_postgresql_query_plans.py``."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.sql import Select

from sagas.store import SQLStore, queries
from sagas.store import schema as t


def plan(store: SQLStore, query: Select[tuple[object, ...]]) -> str:
    compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    return " | ".join(str(row[-1]) for row in rows)


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
    "due timers": select(t.timers.c.timer_id).where(
        t.timers.c.due_at <= datetime(2030, 1, 1, tzinfo=UTC)
    ),
    "instance log": select(t.event_log.c.seq).where(t.event_log.c.saga_id == "x"),
    "instances by id": select(t.instances.c.state).where(t.instances.c.saga_id.in_(["x"])),
    "running instances per definition version": queries.running_per_version(),
    "definition version by digest": queries.definition_with_digest("order_fulfillment", "0" * 64),
}


@pytest.mark.parametrize("name", QUERIES)
def test_hot_query_is_answered_from_an_index(name: str, tmp_path: Path) -> None:
    store = SQLStore(str(tmp_path / "plans.db"))
    try:
        found = plan(store, QUERIES[name])
    finally:
        store.close()
    # A partial index scanned in order is fine; a bare "SCAN table" reads every row.
    assert "USING" in found, found
    assert all("USING" in step for step in found.split(" | ") if step.startswith("SCAN")), found
