"""The store's reads for people — instances by id or filter, counts, throughput, the backlog,
logs, timers, the queue's depth — a mixin of :class:`~sagas.store.sql.SQLStore`: what the
CLI, the API, the dashboard and the metrics read, apart from a worker's round."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import Connection, func, select

from sagas.engine.state import InstanceStatus, SagaState
from sagas.store import queries, rows
from sagas.store import schema as t
from sagas.store.base import UnknownSagaError
from sagas.store.filters import InstanceFilter
from sagas.store.records import Backlog, InstanceRecord, LogEntry, TimerRecord

__all__ = ["SQLReads"]


class SQLReads:
    """Reads for people, on the store's connections."""

    @abstractmethod
    def _read(self, doing: str) -> AbstractContextManager[Connection]: ...

    @abstractmethod
    def instances(self, saga_ids: Collection[str]) -> dict[str, InstanceRecord]: ...

    def instance(self, saga_id: str) -> InstanceRecord:
        record = self.instances([saga_id]).get(saga_id)
        if record is None:
            raise UnknownSagaError(saga_id)
        return record

    def list_instances(
        self, where: InstanceFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[InstanceRecord]:
        columns = select(t.instances.c.state, t.instances.c.version)
        query = queries.listing(columns, where or InstanceFilter(), limit, offset)
        with self._read("listing instances") as conn:
            return [rows.instance(row) for row in conn.execute(query)]

    def instance_ids(
        self, where: InstanceFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[str]:
        query = queries.listing(
            select(t.instances.c.saga_id), where or InstanceFilter(), limit, offset
        )
        with self._read("listing instance ids") as conn:
            return list(conn.scalars(query))

    def count_matching(self, where: InstanceFilter | None = None) -> int:
        with self._read("counting instances") as conn:
            return int(conn.scalar(queries.count_matching(where or InstanceFilter())) or 0)

    def count_instances(self) -> dict[tuple[str, InstanceStatus], int]:
        query = select(t.instances.c.saga_name, t.instances.c.status, func.count()).group_by(
            t.instances.c.saga_name, t.instances.c.status
        )
        with self._read("counting instances") as conn:
            return {(name, InstanceStatus(status)): n for name, status, n in conn.execute(query)}

    def throughput(self, since: datetime) -> dict[tuple[str, InstanceStatus], tuple[int, int, int]]:
        with self._read("counting recent instances") as conn:
            return {
                (name, InstanceStatus(status)): (count, started, ended)
                for name, status, count, started, ended in conn.execute(queries.throughput(since))
            }

    def recent_states(self, since: datetime, limit: int) -> list[SagaState]:
        with self._read("reading recent instances") as conn:
            found = conn.scalars(queries.recently_updated(since, limit))
            return [SagaState.model_validate_json(state) for state in found]

    def backlog(self, now: datetime) -> Backlog:
        with self._read("measuring the backlog") as conn:
            queued, outbox, expired, overdue, timers = (
                conn.execute(query).one() for query in queries.health(now)
            )
        return Backlog(
            queued=queued[0],
            outbox=outbox[0],
            outbox_oldest=outbox[1],
            outbox_expired=expired[0],
            timers=timers[0],
            timers_overdue=overdue[0],
            overdue_since=overdue[1],
        )

    def log(self, saga_id: str) -> list[LogEntry]:
        query = select(t.event_log).where(t.event_log.c.saga_id == saga_id)
        with self._read("reading a log") as conn:
            return [rows.log_entry(row) for row in conn.execute(query.order_by(t.event_log.c.seq))]

    def log_from(self, position: int, limit: int) -> list[LogEntry]:
        query = (
            select(t.event_log)
            .where(t.event_log.c.position > position)
            .order_by(t.event_log.c.position)
            .limit(limit)
        )
        with self._read("reading the log") as conn:
            return [rows.log_entry(row) for row in conn.execute(query)]

    def timers(self, saga_id: str | None = None) -> list[TimerRecord]:
        query = select(t.timers.c.saga_id, t.timers.c.timer).order_by(t.timers.c.due_at)
        if saga_id is not None:
            query = query.where(t.timers.c.saga_id == saga_id)
        with self._read("reading timers") as conn:
            return [rows.timer(row) for row in conn.execute(query)]

    def queue_depth(self) -> int:
        with self._read("counting the queue") as conn:
            return int(conn.scalar(select(func.count()).where(t.inbox.c.queued)) or 0)
