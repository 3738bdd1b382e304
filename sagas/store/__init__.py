"""The store: definitions, instances, their logs, the queue, outbox and timers, in one database."""

from sagas.store.base import ConcurrencyConflictError, Store, StoreError, UnknownSagaError
from sagas.store.records import (
    Changes,
    DeadLetter,
    InstanceRecord,
    LogEntry,
    OutboxItem,
    QueuedEvent,
    TimerRecord,
)
from sagas.store.sql import DEFAULT_DATABASE_URL, SQLStore, database_url

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Changes",
    "ConcurrencyConflictError",
    "DeadLetter",
    "InstanceRecord",
    "LogEntry",
    "OutboxItem",
    "QueuedEvent",
    "SQLStore",
    "Store",
    "StoreError",
    "TimerRecord",
    "UnknownSagaError",
    "database_url",
]
