"""Reading for people: the queries behind listings, counts and statistics (no writes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.sql.expression import Executable

from sagas.engine.effects import TimerKind
from sagas.engine.state import InstanceStatus
from sagas.store import schema as t
from sagas.store.filters import InstanceFilter

__all__ = [
    "count_matching",
    "definition_versions",
    "definition_with_digest",
    "filtered",
    "health",
    "listing",
    "recently_updated",
    "running_per_version",
    "throughput",
]


def filtered(query: Select[Any], where: InstanceFilter) -> Select[Any]:
    """``query`` on ``saga_instances`` restricted to the instances ``where`` selects."""
    c = t.instances.c
    if where.status:
        query = query.where(c.status.in_([status.value for status in where.status]))
    if where.saga is not None:
        query = query.where(c.saga_name == where.saga)
    if where.version is not None:
        query = query.where(c.definition_version == where.version)
    if where.key is not None:
        query = query.where(c.correlation_key == where.key)
    if where.failed_step is not None:
        query = query.where(c.failed_step == where.failed_step)
    if where.waiting_timer:
        asleep = select(t.timers.c.saga_id).where(
            t.timers.c.kind.in_([TimerKind.RETRY, TimerKind.DELAY])
        )
        query = query.where(c.saga_id.in_(asleep))
    bounds = (
        (c.created_at, where.started_after, where.started_before),
        (c.updated_at, where.updated_after, where.updated_before),
    )
    for column, after, before in bounds:
        if after is not None:
            query = query.where(column >= after)
        if before is not None:
            query = query.where(column < before)
    return query


def listing(columns: Select[Any], where: InstanceFilter, limit: int, offset: int) -> Select[Any]:
    """``columns`` of a page of the instances ``where`` selects, most recently updated first."""
    c = t.instances.c
    query = filtered(columns, where).order_by(c.updated_at.desc(), c.saga_id)
    return query.limit(limit).offset(offset)


def count_matching(where: InstanceFilter) -> Select[Any]:
    """How many instances ``where`` selects."""
    return filtered(select(func.count()).select_from(t.instances), where)


def throughput(since: datetime) -> Select[Any]:
    """Per saga and status, how many instances there are, how many started and how many ended
    since ``since``: rows of (saga name, status, count, started, ended)."""
    c = t.instances.c
    ended = c.status.in_([s.value for s in InstanceStatus if s.terminal])
    return select(
        c.saga_name,
        c.status,
        func.count(),
        func.count().filter(c.created_at >= since),
        func.count().filter(and_(ended, c.updated_at >= since)),
    ).group_by(c.saga_name, c.status)


def running_per_version() -> Select[Any]:
    """How many instances have not ended, per definition version: rows of (saga name, version,
    count). Read through the status index, so its cost grows with the instances still running,
    not with all those kept."""
    c = t.instances.c
    running = [s.value for s in InstanceStatus if not s.terminal]
    return (
        select(c.saga_name, c.definition_version, func.count().label("count"))
        .where(c.status.in_(running))
        .group_by(c.saga_name, c.definition_version)
    )


def definition_versions(name: str | None) -> Select[Any]:
    """Rows of (saga name, version, last registered, running instances) of every registered
    version (of ``name``), oldest first per saga."""
    d = t.definitions.c
    running = running_per_version().subquery()
    query = (
        select(d.name, d.version, d.registered_at, func.coalesce(running.c.count, 0))
        .outerjoin_from(
            t.definitions,
            running,
            and_(running.c.saga_name == d.name, running.c.definition_version == d.version),
        )
        .order_by(d.name, d.version)
    )
    return query if name is None else query.where(d.name == name)


def definition_with_digest(name: str, digest: str) -> Select[Any]:
    """The version of saga ``name`` whose content has ``digest``, if one was registered (the
    primary key's ``name`` narrows it to that saga's few versions)."""
    d = t.definitions.c
    return select(d.version).where(d.name == name, d.digest == digest).order_by(d.version).limit(1)


def recently_updated(since: datetime, limit: int) -> Select[Any]:
    """The states of the instances updated since ``since``, latest first (a sample of at most
    ``limit`` for step latencies)."""
    c = t.instances.c
    return select(c.state).where(c.updated_at >= since).order_by(c.updated_at.desc()).limit(limit)


def health(now: datetime) -> list[Executable]:
    """The backlog queries, in the order :class:`sagas.store.records.Backlog` takes them."""
    outbox, timers = t.outbox.c, t.timers.c
    return [
        select(func.count()).select_from(t.inbox).where(t.inbox.c.queued),
        select(func.count(), func.min(outbox.created_at)).select_from(t.outbox),
        select(func.count()).select_from(t.outbox).where(outbox.lease_until <= now),
        select(func.count(), func.min(timers.due_at))
        .select_from(t.timers)
        .where(timers.due_at <= now),
        select(func.count()).select_from(t.timers),
    ]
