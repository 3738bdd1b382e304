"""A worker's round on SQL: claims with row locks, reads, and the writes of its decisions."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, exists, select, update

from sagas.engine.effects import outbox_adapter
from sagas.events import Event
from sagas.store import rows
from sagas.store import schema as t
from sagas.store.base import RoundTx
from sagas.store.dialect import notify
from sagas.store.records import Changes, InstanceRecord, OutboxItem, QueuedEvent, TimerRecord

if TYPE_CHECKING:
    from sagas.store.sql import SQLStore

__all__ = ["SQLRound"]


class SQLRound(RoundTx):
    """A :class:`RoundTx` on one connection inside one transaction."""

    def __init__(self, store: SQLStore, conn: Connection) -> None:
        self._store = store
        self._conn = conn
        self._locks = store.dialect == "postgresql"  # SQLite: the round holds the write lock

    def queued(self, limit: int) -> list[QueuedEvent]:
        inbox = t.inbox
        query = select(inbox.c.position, inbox.c.event, inbox.c.enqueued_at).where(inbox.c.queued)
        if self._locks:
            earlier = inbox.alias("earlier")
            query = query.where(
                ~exists().where(
                    and_(
                        earlier.c.queued,
                        earlier.c.saga_id == inbox.c.saga_id,
                        earlier.c.position < inbox.c.position,
                    )
                )
            )
        query = query.order_by(inbox.c.position).limit(limit)
        if self._locks:
            query = query.with_for_update(skip_locked=True, of=inbox)
        return [
            QueuedEvent(row.position, Event.model_validate_json(row.event), row.enqueued_at)
            for row in self._conn.execute(query)
        ]

    def due_timers(self, now: datetime, limit: int) -> list[TimerRecord]:
        timers = t.timers
        query = (
            select(timers.c.saga_id, timers.c.timer)
            .where(timers.c.due_at <= now)
            .order_by(timers.c.due_at)
            .limit(limit)
        )
        if self._locks:
            query = query.with_for_update(skip_locked=True)
        return [rows.timer(row) for row in self._conn.execute(query)]

    def earliest_waiting(self, claimed: Collection[int]) -> datetime | None:
        inbox = t.inbox
        # In receipt order on the partial index: at most len(claimed) rows are passed over.
        query = select(inbox.c.enqueued_at).where(inbox.c.queued)
        if claimed:
            query = query.where(inbox.c.position.not_in(list(claimed)))
        found: datetime | None = self._conn.scalar(query.order_by(inbox.c.enqueued_at).limit(1))
        return found

    def expired_outbox(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxItem]:
        outbox = t.outbox
        query = (
            select(outbox.c.id, outbox.c.saga_id, outbox.c.effect)
            .where(outbox.c.lease_until <= now)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self._locks:
            query = query.with_for_update(skip_locked=True)
        found = list(self._conn.execute(query))
        if found:
            self._conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([row.id for row in found]))
                .values(lease_until=lease_until)
            )
        return [
            OutboxItem(row.id, row.saga_id, outbox_adapter.validate_json(row.effect))
            for row in found
        ]

    def seen(self, event_ids: Collection[str]) -> set[str]:
        if not event_ids:
            return set()
        query = select(t.inbox.c.event_id).where(t.inbox.c.event_id.in_(list(event_ids)))
        return set(self._conn.scalars(query))

    def versions(self, saga_ids: Collection[str]) -> dict[str, int]:
        if not saga_ids:
            return {}
        instances = t.instances
        # Locking in saga id order: two rounds never wait for each other in a cycle.
        query = (
            select(instances.c.saga_id, instances.c.version)
            .where(instances.c.saga_id.in_(sorted(saga_ids)))
            .order_by(instances.c.saga_id)
        )
        if self._locks:
            query = query.with_for_update()
        return {row.saga_id: row.version for row in self._conn.execute(query)}

    def instances(self, saga_ids: Collection[str]) -> dict[str, InstanceRecord]:
        if not saga_ids:
            return {}
        query = select(t.instances.c.state, t.instances.c.version).where(
            t.instances.c.saga_id.in_(list(saga_ids))
        )
        records = [rows.instance(row) for row in self._conn.execute(query)]
        return {record.saga_id: record for record in records}

    def notify(self) -> None:
        notify(self._conn)

    def apply(self, changes: Changes) -> None:
        self._store._apply(self._conn, changes)
